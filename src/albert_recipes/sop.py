"""Sentence-order prediction (SOP) examples, built as google-research/albert `create_pretraining_data.py` does.

Per document: pick a target length (max_seq_length - 3, or with probability `short_seq_prob` a random one in
[2, max]); fill a chunk with whole sentences until it reaches the target (or the document ends); cut the chunk at a
random sentence boundary into A and B; with probability 0.5 swap them. Label 1 means swapped, 0 means original
order, which is what `AlbertForPreTraining`'s `sentence_order_label` expects. A chunk of a single sentence has no
boundary to cut at, so (as in the original) B is drawn from a random other document and the label is 1.
Pairs too long are trimmed one token at a time from the longer side, randomly from its front or back.

Determinism: each (document, dupe round) gets its own `random.Random` seeded from (seed, document index, round),
so the examples do not depend on `num_proc`, batch size or process state. Pretraining cuts epoch e with round e
(`albert_recipes.pretraining_data`), so every epoch sees new target lengths, boundaries, swaps and random B's.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError
from .mapped_pages import release_arrow_pages

logger = logging.getLogger(__name__)

Segments = list[list[int]]  # a tokenized document: token ids per sentence


def truncate_seq_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random) -> None:
    """Trim the longer of A and B, one token at a time from a random end, until they fit (in place)."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def create_sop_instances(
    document: Segments,
    rng: random.Random,
    max_seq_length: int,
    short_seq_prob: float,
    random_document: Callable[[random.Random], Segments],
) -> list[tuple[list[int], list[int], int, bool]]:
    """(tokens_a, tokens_b, sentence_order_label, b_from_random_document) from one tokenized document, before
    special tokens."""
    max_num_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)

    instances = []
    chunk: Segments = []
    chunk_length = 0
    i = 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for segment in chunk[:a_end] for t in segment]
            if len(chunk) == 1:
                # No sentence boundary to cut at: B comes from another document, as in the original.
                other = random_document(rng)
                tokens_b = []
                for segment in other[rng.randint(0, len(other) - 1):]:
                    tokens_b.extend(segment)
                    if len(tokens_b) >= target_length - len(tokens_a):
                        break
                label = 1
            else:
                tokens_b = [t for segment in chunk[a_end:] for t in segment]
                label = int(rng.random() < 0.5)
                if label:
                    tokens_a, tokens_b = tokens_b, tokens_a
            truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
            if tokens_a and tokens_b:
                instances.append((tokens_a, tokens_b, label, len(chunk) == 1))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def _document_rng(seed: int, document_index: int, dupe_round: int) -> random.Random:
    # String seeds are hashed with SHA-512 by `random`, independent of PYTHONHASHSEED and of the process.
    return random.Random(f"albert-sop:{seed}:{document_index}:{dupe_round}")


def _example_id(seed: int, document_index: int, dupe_round: int, position: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{document_index}:{dupe_round}:{position}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # non-negative int64, a stable key for per-example masking


def _pick_from(pool: Sequence[Segments], own_index: int) -> Callable[[random.Random], Segments]:
    def pick(rng: random.Random) -> Segments:
        # As the original: up to 10 draws to find another document, else the last one drawn. We also pass over
        # documents that tokenization left empty (the original drops those before cutting). One read per draw.
        document: Segments = []
        for _ in range(10):
            index = rng.randint(0, len(pool) - 1)
            document = pool[index]
            if index != own_index and document:
                break
        return document or pool[own_index]

    return pick


class _DatasetPool(Sequence):
    """Random access to the tokenized documents of a map-style dataset, read only when a draw needs one."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Segments:
        return self.dataset[index]["segments"]


def _tokenize_batch(batch: dict[str, list], indices: list[int] | None = None, *, tokenizer: Any,
                    column: str) -> dict[str, list]:
    documents = batch[column]
    flat = [sentence for document in documents for sentence in document]
    ids = tokenizer(
        flat, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False, verbose=False
    )
    ids = iter(ids["input_ids"])
    segments = [[s for s in (next(ids) for _ in document) if s] for document in documents]
    release_arrow_pages()  # the batch is in Python lists now: keep the scanned corpus out of this process's RSS
    if indices is None:
        return {"segments": segments}
    return {"segments": segments, "document": list(indices)}  # the document's index in the whole corpus


def _instances_batch(
    batch: dict[str, list],
    indices: list[int],
    pool: Sequence[Segments] | None,
    cls_id: int,
    sep_id: int,
    max_seq_length: int,
    short_seq_prob: float,
    rounds: Sequence[int],
    seed: int,
) -> dict[str, list]:
    """Examples of dupe `rounds` from a batch of tokenized documents.

    `indices` are the documents' positions in `pool` (the dataset being mapped), used to draw random other
    documents; each document's key for its random generator and example ids is its `document` column (its index
    in the whole corpus) when present, else its position.
    """
    documents = batch["segments"]
    keys = batch.get("document", indices)
    out: dict[str, list] = {"input_ids": [], "token_type_ids": [], "sentence_order_label": [], "example_id": [],
                            "document": [], "sop_random_document": []}
    for position, (document, index, key) in enumerate(zip(documents, indices, keys)):
        if not document:
            continue
        # A map-style dataset draws random documents from the whole split; a stream only from its current batch.
        random_document = _pick_from(pool, index) if pool is not None else _pick_from(documents, position)
        for dupe_round in rounds:
            rng = _document_rng(seed, key, dupe_round)
            instances = create_sop_instances(document, rng, max_seq_length, short_seq_prob, random_document)
            for k, (tokens_a, tokens_b, label, from_other) in enumerate(instances):
                out["input_ids"].append([cls_id, *tokens_a, sep_id, *tokens_b, sep_id])
                out["token_type_ids"].append([0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1))
                out["sentence_order_label"].append(label)
                out["example_id"].append(_example_id(seed, key, dupe_round, k))
                out["document"].append(key)
                # 1 when B came from a random other document (label forced to 1): the training core reports SOP
                # accuracy separately for these and for real order pairs.
                out["sop_random_document"].append(int(from_other))
    release_arrow_pages()  # pages of this batch and of the random documents drawn: out of RSS, still cached
    return out


def check_sop_settings(max_seq_length: int, dupe_factor: int, short_seq_prob: float) -> None:
    if max_seq_length < 5:
        raise InputError(f"max_seq_length={max_seq_length} must be at least 5 ([CLS] A [SEP] B [SEP])")
    if dupe_factor < 1:
        raise InputError(f"dupe_factor={dupe_factor} must be >= 1")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise InputError(f"short_seq_prob={short_seq_prob} must be in [0, 1]")


def _special_ids(tokenizer: Any) -> dict[str, int]:
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise InputError("the tokenizer needs [CLS] and [SEP] tokens (cls_token_id / sep_token_id are None)")
    return {"cls_id": tokenizer.cls_token_id, "sep_id": tokenizer.sep_token_id}


def _example_features():
    import datasets

    return datasets.Features({
        "input_ids": datasets.Sequence(datasets.Value("int32")),
        "token_type_ids": datasets.Sequence(datasets.Value("int8")),
        "sentence_order_label": datasets.Value("int8"),
        "example_id": datasets.Value("int64"),
        "document": datasets.Value("int64"),
        "sop_random_document": datasets.Value("int8"),
    })


def sop_examples(
    tokenized: Any,
    tokenizer: Any,
    rounds: Sequence[int],
    max_seq_length: int,
    short_seq_prob: float,
    seed: int,
    num_proc: int | None = None,
    cache_file: str | Path | None = None,
    fingerprint: str | None = None,
    batch_size: int = 256,
):
    """SOP examples of dupe `rounds` from a map-style dataset of tokenized documents (`segments`, optional
    `document`), unshuffled. With `cache_file` the result is written there (and read back if it exists already).

    Random other documents are drawn from `tokenized` itself, read by index: worker processes receive the dataset
    object, which for a memory-mapped dataset pickles as its file paths, not its rows.
    """
    settings = dict(max_seq_length=max_seq_length, short_seq_prob=short_seq_prob, rounds=list(rounds), seed=seed,
                    **_special_ids(tokenizer))
    cache = {"cache_file_name": str(cache_file), "new_fingerprint": fingerprint} if cache_file else {}
    return tokenized.map(
        _instances_batch, batched=True, batch_size=batch_size, num_proc=num_proc, with_indices=True,
        remove_columns=tokenized.column_names, features=_example_features(),
        fn_kwargs={"pool": _DatasetPool(tokenized), **settings}, desc=f"SOP: cutting round {list(rounds)}", **cache,
    )


def build_sop_dataset(
    documents: Any,
    tokenizer: Any,
    max_seq_length: int = 128,
    seed: int = 12345,
    dupe_factor: int = 1,
    short_seq_prob: float = 0.1,
    num_proc: int | None = None,
    shuffle: bool = True,
    column: str = "sentences",
    batch_size: int = 256,
):
    """SOP examples of dupe rounds 0..dupe_factor-1 from documents (lists of sentences), for small corpora and
    tests; `albert_recipes.pretraining_data.prepare_pretraining_data` is the cached, corpus-scale path.

    `documents`: a list of documents, a `datasets.Dataset` or an `IterableDataset` with a `column` of sentence
    lists (see `albert_recipes.corpus.documents_to_dataset`). Returns a dataset (iterable for iterable input) with
    `input_ids` ([CLS] A [SEP] B [SEP], unpadded), `token_type_ids`, `sentence_order_label`, `example_id` (a
    stable key the masking collator seeds from), `document` (the source document's index) and `sop_random_document`. Map-style output is shuffled with
    `seed` unless `shuffle=False`, like the original's final shuffle; shuffle a stream with `IterableDataset.shuffle`.
    """
    import datasets

    check_sop_settings(max_seq_length, dupe_factor, short_seq_prob)
    special = _special_ids(tokenizer)
    if isinstance(documents, list):
        from .corpus import documents_to_dataset

        documents = documents_to_dataset(documents)
    if documents.column_names is not None and column not in documents.column_names:
        raise InputError(f"the documents dataset has no '{column}' column (found {documents.column_names})")
    other_columns = [c for c in (documents.column_names or []) if c != "segments"]
    tokenize_args = {"fn_kwargs": {"tokenizer": tokenizer, "column": column}, "remove_columns": other_columns}

    if isinstance(documents, datasets.IterableDataset):
        tokenized = documents.map(_tokenize_batch, batched=True, batch_size=batch_size, **tokenize_args)
        return tokenized.map(
            _instances_batch, batched=True, batch_size=batch_size, with_indices=True, remove_columns=["segments"],
            fn_kwargs={"pool": None, "max_seq_length": max_seq_length, "short_seq_prob": short_seq_prob,
                       "rounds": list(range(dupe_factor)), "seed": seed, **special},
        )

    if len(documents) == 0:
        raise InputError("no documents: the corpus is empty")
    tokenized = documents.map(_tokenize_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
                              desc="SOP: tokenizing", **tokenize_args)
    examples = sop_examples(tokenized, tokenizer, range(dupe_factor), max_seq_length, short_seq_prob, seed,
                            num_proc=num_proc, batch_size=batch_size)
    if len(examples) == 0:
        raise InputError(
            f"no SOP examples from {len(documents)} documents: every document is empty after tokenization"
        )
    labels = examples["sentence_order_label"]
    logger.info(
        "built %d SOP examples from %d documents (dupe_factor=%d, %.1f%% swapped)",
        len(examples), len(documents), dupe_factor, 100.0 * sum(labels) / len(labels),
    )
    return examples.shuffle(seed=seed).flatten_indices() if shuffle else examples
