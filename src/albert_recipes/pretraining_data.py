"""Pretraining data at corpus scale: documents -> Arrow on disk -> tokenizer -> token ids -> SOP examples per epoch.

    data = prepare_pretraining_data(train_file=["wiki.txt"], seed=42, cache_dir="~/.cache/...",
                                    main_process_first=accelerator.main_process_first)
    data.tokenizer, data.eval_set, data.train_set(epoch), data.fingerprint

Every stage is written incrementally to memory-mapped Arrow files (`datasets`), so memory stays flat in the corpus
size, and every stage is cached under `cache_dir` with a key made of everything that decides its content:

    documents  corpus fingerprint (files' paths, sizes and mtimes, or a `datasets` fingerprint) + layout/column
    tokenizer  documents key + held-out split (seed, eval_fraction) + vocab_size + model_max_length
    token ids  documents key + the tokenizer's fingerprint (its serialized pipeline and vocabulary)
    SOP round  token ids key + split + max_seq_length + short_seq_prob + seed + round

so a restart or a second run with the same settings reads the cache (nothing is read, trained or tokenized again)
and a change of tokenizer or data settings builds only what it changes. Held-out documents are chosen by a
permutation seeded by `seed`; their SOP examples are cut once (round 0) and shuffled, so every evaluation sees the
same pairs. Training examples are cut afresh every epoch: epoch e uses dupe round e (new target lengths, A/B
boundaries, swaps and random-document draws), deterministic per (seed, document, round) and independent of
`num_proc`. `dupe_factor` rounds are built ahead of time; later rounds are built (and cached) when first asked for.
`num_proc` workers read documents by index from the memory-mapped files; no document pool is ever pickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ContextManager

import numpy as np

from .errors import InputError
from .mapped_pages import release_arrow_pages

logger = logging.getLogger(__name__)

# Bump when the bytes a stage writes change for the same inputs (parsing, cutting, tokenizer training), so that
# caches written by an older version are not reused.
DOCUMENTS_VERSION = 1
TOKENIZER_VERSION = 2  # 2: our own seeded sample of max_sentences (SentencePiece's was not reproducible)
SOP_VERSION = 1


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def default_cache_dir() -> Path:
    """`$HF_DATASETS_CACHE/albert_recipes` (by default ~/.cache/huggingface/datasets/albert_recipes)."""
    import datasets

    return Path(datasets.config.HF_DATASETS_CACHE) / "albert_recipes"


# --- documents -------------------------------------------------------------------------------------------------


def _source_spec(train_file, dataset_name, dataset_config, dataset_split, text_column, layout, streaming) -> dict:
    if train_file and dataset_name:
        raise InputError("set train_file or dataset_name, not both")
    if dataset_name:
        return {"kind": "dataset", "name": dataset_name, "config": dataset_config, "split": dataset_split,
                "streaming": bool(streaming), "text_column": text_column, "layout": layout}
    if train_file:
        files = [train_file] if isinstance(train_file, (str, os.PathLike)) else list(train_file)
        for path in files:
            if not Path(path).is_file():
                raise InputError(f"train_file: file not found: {path}")
        return {"kind": "files", "files": [str(Path(p).resolve()) for p in files], "text_column": text_column,
                "layout": layout}
    return {"kind": "embedded"}


def _load_source(spec: dict):
    import datasets

    return datasets.load_dataset(spec["name"], spec["config"], split=spec["split"], streaming=spec["streaming"])


def _corpus_fingerprint(spec: dict) -> str:
    """What identifies the corpus without reading it whole: file stats, a dataset's own fingerprint."""
    if spec["kind"] == "files":
        stats = [(path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in spec["files"]]
        return _digest(spec, stats)
    if spec["kind"] == "embedded":
        from .corpus import load_embedded_corpus

        return _digest(spec, load_embedded_corpus())  # ~300 KB: hash the content itself
    local = Path(spec["name"])
    if local.exists():  # a local folder or file given as the dataset: its files' stats, as for train_file
        paths = sorted(p for p in ([local] if local.is_file() else local.rglob("*")) if p.is_file())
        return _digest(spec, [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths])
    source = _load_source(spec)
    if spec["streaming"]:
        # A stream has no content fingerprint; its name, configuration, split and the builder's recorded
        # version/checksums identify it (a stream of a changing Hub dataset: use another cache_dir to refresh).
        info = source.info
        return _digest(spec, str(info.version), info.download_checksums, info.dataset_size, source.n_shards)
    return _digest(spec, source._fingerprint)


def _generate_documents(spec: dict) -> Iterator[dict]:
    """Rows for `Dataset.from_generator`: one document (its list of sentences) at a time, never the corpus."""
    from .corpus import iter_documents, load_embedded_corpus

    if spec["kind"] == "embedded":
        documents = iter(load_embedded_corpus())
    elif spec["kind"] == "files":
        documents = iter_documents(spec["files"], text_field=spec["text_column"], layout=spec["layout"])
    else:
        documents = iter_documents(_load_source(spec), text_field=spec["text_column"], layout=spec["layout"])
    for sentences in documents:
        yield {"sentences": sentences}


def _write_documents(spec: dict, key: str, cache_dir: Path):
    import datasets
    from datasets.exceptions import DatasetGenerationError

    features = datasets.Features({"sentences": datasets.Sequence(datasets.Value("string"))})
    try:
        return datasets.Dataset.from_generator(
            _generate_documents, features=features, gen_kwargs={"spec": spec}, cache_dir=str(cache_dir / "documents"),
            fingerprint=f"documents-{key}",
        )
    except DatasetGenerationError as err:  # our own validation errors stay one clear line
        cause = err.__cause__
        if isinstance(cause, InputError):
            raise cause from None
        raise


def split_indices(num_documents: int, eval_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) document indices, each sorted: a seeded permutation picks the held-out documents."""
    if num_documents < 2:
        raise InputError(f"the corpus has {num_documents} document(s); at least 2 are needed (train + held-out)")
    if not 0.0 < eval_fraction < 1.0:
        raise InputError(f"eval_fraction={eval_fraction} must be between 0 and 1")
    order = np.random.default_rng([seed, 1]).permutation(num_documents)
    num_eval = min(num_documents - 1, max(1, round(eval_fraction * num_documents)))
    return np.sort(order[num_eval:]), np.sort(order[:num_eval])


# --- tokenizer -------------------------------------------------------------------------------------------------


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Changes whenever the tokenizer would produce other ids: its whole serialized pipeline and vocabulary."""
    # Not its truncation/padding: a fast tokenizer keeps the last call's settings there, which change no ids here.
    pipeline = json.loads(tokenizer.backend_tokenizer.to_str())
    pipeline.pop("truncation", None), pipeline.pop("padding", None)
    return _digest(type(tokenizer).__name__, json.dumps(pipeline, sort_keys=True), tokenizer.all_special_ids)


# --- the prepared data -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class PretrainingData:
    """What a pretraining run consumes. `train_set(epoch)` is epoch `epoch`'s examples (cut with dupe round
    `epoch`), unshuffled and memory-mapped: the sampler shuffles it. Its length changes from epoch to epoch."""

    tokenizer: Any
    eval_set: Any
    fingerprint: str
    num_train_documents: int
    num_eval_documents: int
    _build_round: Callable[[int], Any] = dataclasses.field(repr=False)
    _rounds: dict = dataclasses.field(default_factory=dict, repr=False)

    def train_set(self, epoch: int):
        if epoch < 0:
            raise InputError(f"epoch={epoch} must be >= 0")
        if epoch not in self._rounds:
            self._rounds = {epoch: self._build_round(epoch)}  # keep only the current epoch mapped
        return self._rounds[epoch]


def prepare_pretraining_data(
    *,
    seed: int,
    train_file: list[str] | str | None = None,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    dataset_split: str = "train",
    text_column: str = "text",
    layout: str = "auto",
    streaming: bool = False,
    eval_fraction: float = 0.05,
    tokenizer: Any = None,
    vocab_size: int = 8000,
    model_max_length: int = 512,
    max_seq_length: int = 128,
    short_seq_prob: float = 0.1,
    dupe_factor: int = 1,
    num_proc: int | None = None,
    cache_dir: str | Path | None = None,
    main_process_first: Callable[[], ContextManager] | None = None,
    tokenizer_max_sentences: int = 2_000_000,
    **unused: Any,
) -> PretrainingData:
    """Read, split, tokenize and cut the corpus, reusing whatever `cache_dir` already holds (see the module doc).

    Sources: `train_file` (.txt, .jsonl, .parquet, .csv/.tsv files), `dataset_name` (+ config, split; `streaming`
    reads it as a stream, never downloading it whole), or neither: the embedded corpus. `tokenizer`: a tokenizer
    object or folder; None trains a `vocab_size` Unigram tokenizer on the training documents (cached too).
    `main_process_first`: e.g. `accelerator.main_process_first`, so that in a multi-process run the main process
    builds the cache and the others read it. Keyword arguments this function does not use (such as the masking
    settings of a recipe's data section) are accepted and ignored, so a recipe can pass its whole data section.
    """
    from transformers import AutoTokenizer

    from .sop import check_sop_settings, sop_examples
    from .tokenization import train_tokenizer_on_documents

    del unused
    check_sop_settings(max_seq_length, dupe_factor, short_seq_prob)
    first = main_process_first or contextlib.nullcontext
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    spec = _source_spec(train_file, dataset_name, dataset_config, dataset_split, text_column, layout, streaming)

    with first():
        cache.mkdir(parents=True, exist_ok=True)
        documents_key = _digest("documents", DOCUMENTS_VERSION, _corpus_fingerprint(spec))
        documents = _write_documents(spec, documents_key, cache)
        train_idx, eval_idx = split_indices(len(documents), eval_fraction, seed)
        split_key = _digest(documents_key, seed, eval_fraction)

        if tokenizer is None:
            key = _digest(split_key, TOKENIZER_VERSION, vocab_size, model_max_length, tokenizer_max_sentences)
            folder = cache / f"tokenizer-{key}"
            if not (folder / "tokenizer.json").is_file():
                train_documents = documents.select(
                    train_idx, indices_cache_file_name=str(cache / f"documents-train-indices-{split_key}.arrow"),
                    new_fingerprint=f"documents-train-{split_key}",
                )
                train_tokenizer_on_documents(
                    _DocumentSentences(train_documents),
                    vocab_size=vocab_size, model_max_length=model_max_length, show_progress=False,
                    max_sentences=tokenizer_max_sentences, seed=seed, output_dir=folder,
                )
            else:
                logger.info("tokenizer: reusing %s", folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer)

        tokens_key = _digest(documents_key, tokenizer_fingerprint(tokenizer))
        tokens = tokenize_documents(documents, tokenizer, cache / f"tokens-{tokens_key}.arrow", tokens_key, num_proc)
        splits = {}
        for name, idx in (("train", train_idx), ("eval", eval_idx)):
            splits[name] = tokens.select(
                idx, indices_cache_file_name=str(cache / f"{name}-indices-{split_key}-{tokens_key}.arrow"),
                new_fingerprint=f"{name}-{split_key}-{tokens_key}",
            )
        sop_settings = dict(tokenizer=tokenizer, max_seq_length=max_seq_length, short_seq_prob=short_seq_prob,
                            seed=seed, num_proc=num_proc)
        sop_key = _digest(SOP_VERSION, tokens_key, split_key, max_seq_length, short_seq_prob, seed)

        def build_round(dupe_round: int, split: str = "train"):
            key = f"{sop_key}-{split}-round{dupe_round}"
            return sop_examples(splits[split], rounds=[dupe_round], cache_file=cache / f"sop-{key}.arrow",
                                fingerprint=key, **sop_settings)

        eval_set = build_round(0, "eval")
        if len(eval_set) == 0:
            raise InputError(f"the {len(eval_idx)} held-out documents give no SOP examples; raise eval_fraction")
        eval_set = eval_set.shuffle(
            seed=seed, indices_cache_file_name=str(cache / f"sop-{sop_key}-eval-order.arrow")
        ).flatten_indices(
            cache_file_name=str(cache / f"sop-{sop_key}-eval-shuffled.arrow"), new_fingerprint=f"{sop_key}-eval-s"
        )
        for dupe_round in range(dupe_factor):  # materialised ahead of time
            built = build_round(dupe_round)
            if len(built) == 0:
                raise InputError(f"no SOP examples from {len(train_idx)} training documents: every document is "
                                 "empty after tokenization")

    def train_round(epoch: int):
        with first():
            built = build_round(epoch)
        # Rounds past the ones materialised ahead are built on demand; drop those two epochs old (disk, not RAM).
        for old in range(dupe_factor, epoch - 1):
            for path in cache.glob(f"sop-{sop_key}-train-round{old}[._]*arrow"):
                path.unlink(missing_ok=True)
        return built

    fingerprint = _digest(sop_key, "data")  # not dupe_factor: it changes when rounds are built, not what they hold
    logger.info("pretraining data %s: %d training / %d held-out documents, %d held-out examples, cache %s",
                fingerprint, len(train_idx), len(eval_idx), len(eval_set), cache)
    return PretrainingData(tokenizer=tokenizer, eval_set=eval_set, fingerprint=fingerprint,
                           num_train_documents=len(train_idx), num_eval_documents=len(eval_idx),
                           _build_round=train_round)


class _DocumentSentences:
    """Iterates the documents (sentence lists) of a memory-mapped dataset in batches, never all at once."""

    def __init__(self, documents):
        self.documents = documents

    def __iter__(self) -> Iterator[list[str]]:
        for batch in self.documents.iter(batch_size=1000):
            release_arrow_pages()  # the scan would otherwise leave the whole corpus counted in this process's RSS
            yield from batch["sentences"]


def tokenize_documents(documents, tokenizer, cache_file: Path, fingerprint: str, num_proc: int | None):
    """Token ids per sentence per document (`segments`, int32) plus each document's index (`document`)."""
    import datasets

    from .sop import _tokenize_batch

    features = datasets.Features({
        "segments": datasets.Sequence(datasets.Sequence(datasets.Value("int32"))),
        "document": datasets.Value("int64"),
    })
    return documents.map(
        _tokenize_batch, batched=True, batch_size=256, num_proc=num_proc, with_indices=True,
        remove_columns=documents.column_names, features=features, cache_file_name=str(cache_file),
        new_fingerprint=fingerprint, fn_kwargs={"tokenizer": tokenizer, "column": "sentences"},
        desc="pretraining data: tokenizing",
    )
