"""Train an ALBERT-style SentencePiece Unigram tokenizer, deterministically, and load it into `tokenizers`.

Training runs Google's `sentencepiece` (same input -> same pieces in every fresh process); the result is a `transformers.AlbertTokenizer` (the fast, tokenizers-backed class in transformers 5) with the
pipeline albert-base-v2 uses: `` and '' -> ", optional NFKD + accent stripping and lowercasing, whitespace split +
Metaspace `▁`, and the `[CLS] A [SEP] B [SEP]` template. Special ids match albert-base-v2: <pad>=0, <unk>=1,
[CLS]=2, [SEP]=3, [MASK]=4. A saved folder loads with `AutoTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import io
import logging
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

from tqdm.auto import tqdm
from transformers import AlbertTokenizer

from .errors import InputError
from .io_utils import atomic_directory

logger = logging.getLogger(__name__)

ALBERT_SPECIAL_TOKENS = ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, as in albert-base-v2


def _albert_tokenizer(vocab, lowercase: bool, strip_accents: bool, model_max_length: int) -> AlbertTokenizer:
    return AlbertTokenizer(
        vocab=vocab,
        do_lower_case=lowercase,
        keep_accents=not strip_accents,
        model_max_length=model_max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def _texts_from_documents(documents: Iterable[list[str]]) -> Iterator[str]:
    for document in documents:
        yield from document


def reservoir_sample(items: Iterable[str], k: int, seed: int) -> list[str]:
    """A uniform sample of at most `k` items of a stream of any length, in stream order, the same for a seed.

    Algorithm R with Python's seeded `random.Random` (stable across processes and Python versions). Written here
    because SentencePiece's own sampler is not reproducible (see `train_unigram_tokenizer`). A stream of at most
    `k` items comes back whole, in order.
    """
    rng = random.Random(seed)
    kept: list[tuple[int, str]] = []
    for i, item in enumerate(items):
        if i < k:
            kept.append((i, item))
        else:
            j = rng.randrange(i + 1)
            if j < k:
                kept[j] = (i, item)
    kept.sort(key=lambda pair: pair[0])
    return [item for _, item in kept]


# SentencePiece's trainer runs its EM steps on this many threads, whatever the machine: the result depends on the
# thread count (partial sums are added per thread), so a fixed count gives the same pieces on every machine.
SPM_NUM_THREADS = 8


def train_unigram_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 30_000,
    lowercase: bool = True,
    strip_accents: bool = True,
    model_max_length: int = 512,
    max_piece_length: int = 16,
    total: int | None = None,
    show_progress: bool = True,
    output_dir: str | Path | None = None,
    max_sentences: int = 2_000_000,
    seed: int = 0,
    character_coverage: float = 1.0,
) -> AlbertTokenizer:
    """Train on an iterable of texts (sentences, lines or documents) streamed once; optionally save atomically.

    The Unigram model is trained by Google's `sentencepiece` (the trainer ALBERT's own vocabulary came from), which
    gives the same pieces and scores in every fresh process for the same input; `tokenizers`' UnigramTrainer does
    not (its word counts live in a randomly seeded hash map, so the EM sums run in a different order each time).
    The pieces are then loaded into the fast, `tokenizers`-backed `AlbertTokenizer`, whose normalizer is applied to
    every text before SentencePiece sees it, so training and use agree.

    Memory: texts are streamed; at most `max_sentences` of them are kept, a uniform sample drawn with `seed`
    (reservoir sampling, `reservoir_sample`) when there are more, so a corpus of any size trains in bounded memory.
    The sample is ours, not SentencePiece's: its own sampler gives a different sample in every process whatever
    `set_random_generator_seed` says (measured: two runs, two vocabularies), which broke same-seed reproducibility
    on corpora larger than `max_sentences`.
    `total` (the number of texts, if known) only feeds the progress bar. A small corpus may yield fewer pieces
    than `vocab_size` (the trainer stops when it runs out). `character_coverage` 1.0 keeps every character seen.
    """
    try:
        import sentencepiece as spm
    except ImportError:  # pragma: no cover - an install without the train extra
        raise ImportError("training a tokenizer needs sentencepiece: pip install 'albert-recipes[train]'") from None

    if vocab_size <= len(ALBERT_SPECIAL_TOKENS):
        raise InputError(f"vocab_size={vocab_size} must be larger than the {len(ALBERT_SPECIAL_TOKENS)} special tokens")
    if max_sentences < 1:
        raise InputError(f"max_sentences={max_sentences} must be >= 1")
    # Normalise exactly as the final tokenizer will, so training and use agree.
    normalizer = _albert_tokenizer(None, lowercase, strip_accents, model_max_length).backend_tokenizer.normalizer
    seen = 0
    failure: list[BaseException] = []  # sentencepiece turns an error raised while it reads into a RuntimeError

    def normalized() -> Iterator[str]:
        nonlocal seen
        for text in tqdm(texts, total=total, desc="tokenizer: reading", unit=" texts", disable=not show_progress):
            if not isinstance(text, str):
                raise InputError(f"tokenizer training expects strings, got {type(text).__name__}: {text!r:.80}")
            text = " ".join(normalizer.normalize_str(text).split())  # whitespace as WhitespaceSplit sees it
            if text:
                seen += 1
                yield text

    def sample() -> Iterator[str]:
        try:
            kept = reservoir_sample(normalized(), max_sentences, seed)
        except Exception as err:
            failure.append(err)
            raise
        for i in range(len(kept)):  # hand each text over and drop our reference: SentencePiece keeps its own copy
            text, kept[i] = kept[i], None
            yield text

    model = io.BytesIO()
    spm.set_random_generator_seed(seed)  # whatever else in the trainer draws random numbers
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sample(),
            model_writer=model,
            model_type="unigram",
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # a small corpus gives fewer pieces instead of an error
            normalization_rule_name="identity",  # already normalised above
            add_dummy_prefix=True,  # every word starts with ▁, as Metaspace(prepend_scheme="always") does
            split_by_whitespace=True,
            character_coverage=character_coverage,
            max_sentencepiece_length=max_piece_length,
            max_sentence_length=1 << 20,  # bytes; the corpus readers already drop overlong "sentences"
            input_sentence_size=max_sentences,
            shuffle_input_sentence=True,
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            pad_piece="<pad>", unk_piece="<unk>",
            control_symbols=list(ALBERT_SPECIAL_TOKENS[2:]),  # [CLS] [SEP] [MASK] -> ids 2, 3, 4
            num_threads=SPM_NUM_THREADS,
            minloglevel=2,
        )
    except RuntimeError as err:
        if failure:  # the corpus reader's own error (e.g. InputError naming the file and line), not a wrapper
            raise failure[0] from None
        if seen == 0:
            raise InputError("no text to train the tokenizer on (the corpus is empty or blank)") from None
        raise RuntimeError(f"sentencepiece training failed on {seen} texts: {err}") from err
    if seen == 0:
        raise InputError("no text to train the tokenizer on (the corpus is empty or blank)")
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    assert [piece for piece, _ in vocab[: len(ALBERT_SPECIAL_TOKENS)]] == list(ALBERT_SPECIAL_TOKENS), vocab[:5]
    vocab[: len(ALBERT_SPECIAL_TOKENS)] = [(piece, 0.0) for piece in ALBERT_SPECIAL_TOKENS]
    tokenizer = _albert_tokenizer(vocab, lowercase, strip_accents, model_max_length)
    logger.info("trained a Unigram tokenizer on %d texts: %d pieces (asked for %d)", seen, len(vocab), vocab_size)
    if output_dir is not None:
        save_tokenizer(tokenizer, output_dir)
    return tokenizer


def train_tokenizer_on_documents(documents: Iterable[list[str]], **kwargs) -> AlbertTokenizer:
    """`train_unigram_tokenizer` on the sentences of documents (as returned by `albert_recipes.corpus`), streamed:
    a generator or a `datasets` column iterator never becomes a list of the whole corpus."""
    return train_unigram_tokenizer(_texts_from_documents(documents), **kwargs)


def save_tokenizer(
    tokenizer: AlbertTokenizer, output_dir: str | Path, extra_files: dict[str, str] | None = None
) -> Path:
    """Write the tokenizer folder (plus `extra_files`: name -> text) in one atomic rename, never half a folder."""
    with atomic_directory(output_dir) as tmp:
        tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    logger.info("saved tokenizer to %s", output_dir)
    return Path(output_dir)
