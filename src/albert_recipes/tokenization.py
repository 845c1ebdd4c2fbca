"""Train an ALBERT-style SentencePiece Unigram tokenizer with the `tokenizers` library.

The result is a `transformers.AlbertTokenizer` (the fast, tokenizers-backed class in transformers 5) with the
pipeline albert-base-v2 uses: `` and '' -> ", optional NFKD + accent stripping and lowercasing, whitespace split +
Metaspace `▁`, and the `[CLS] A [SEP] B [SEP]` template. Special ids match albert-base-v2: <pad>=0, <unk>=1,
[CLS]=2, [SEP]=3, [MASK]=4. A saved folder loads with `AutoTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import trainers
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
) -> AlbertTokenizer:
    """Train on an iterable of texts (sentences, lines or documents) streamed once; optionally save atomically.

    `total` (the number of texts, if known) only feeds the progress bar. Returns a fast ALBERT tokenizer.
    A small corpus may yield fewer pieces than `vocab_size` (the Unigram trainer stops when it runs out).
    """
    if vocab_size <= len(ALBERT_SPECIAL_TOKENS):
        raise InputError(f"vocab_size={vocab_size} must be larger than the {len(ALBERT_SPECIAL_TOKENS)} special tokens")
    seen = 0

    def counted() -> Iterator[str]:
        nonlocal seen
        for text in tqdm(texts, total=total, desc="tokenizer: reading", unit=" texts", disable=not show_progress):
            if not isinstance(text, str):
                raise InputError(f"tokenizer training expects strings, got {type(text).__name__}: {text!r:.80}")
            if text.strip():
                seen += 1
                yield text

    # Train the exact pipeline the final tokenizer runs, so normalisation at training and use time agree.
    backend = _albert_tokenizer(None, lowercase, strip_accents, model_max_length).backend_tokenizer
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(ALBERT_SPECIAL_TOKENS),
        unk_token="<unk>",
        max_piece_length=max_piece_length,
        show_progress=False,
    )
    backend.train_from_iterator(counted(), trainer=trainer)
    if seen == 0:
        raise InputError("no text to train the tokenizer on (the corpus is empty or blank)")
    vocab = [(piece, score) for piece, score in json.loads(backend.to_str())["model"]["vocab"]]
    tokenizer = _albert_tokenizer(vocab, lowercase, strip_accents, model_max_length)
    logger.info("trained a Unigram tokenizer on %d texts: %d pieces (asked for %d)", seen, len(vocab), vocab_size)
    if output_dir is not None:
        save_tokenizer(tokenizer, output_dir)
    return tokenizer


def train_tokenizer_on_documents(documents: Iterable[list[str]], **kwargs) -> AlbertTokenizer:
    """`train_unigram_tokenizer` on the sentences of documents (as returned by `albert_recipes.corpus`)."""
    documents = list(documents)
    return train_unigram_tokenizer(
        _texts_from_documents(documents), total=sum(map(len, documents)), **kwargs
    )


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
