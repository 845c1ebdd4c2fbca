"""Extractive question answering: SQuAD-style features with offset mappings, and n-best span decoding.

Examples have the SQuAD columns `id`, `question`, `context` and `answers = {"text": [...], "answer_start": [...]}`
(character offsets into the context); an empty `answers["text"]` marks an unanswerable question (SQuAD v2).
A context longer than `max_length` is split into overlapping windows (`stride` tokens shared between
neighbours), so one example can have several features; decoding takes the best span over all of them.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import datasets
import numpy as np

from .errors import InputError


def validate_qa_examples(dataset: datasets.Dataset) -> None:
    """Fail early, naming the example, when an answer is not where `answer_start` says it is."""
    for example in dataset:
        answers = example["answers"]
        if len(answers["text"]) != len(answers["answer_start"]):
            raise InputError(f"example {example['id']!r}: answers has {len(answers['text'])} texts but "
                             f"{len(answers['answer_start'])} answer_start values")
        for text, start in zip(answers["text"], answers["answer_start"]):
            found = example["context"][start : start + len(text)] if start is not None and start >= 0 else None
            if not text or found != text:
                raise InputError(
                    f"example {example['id']!r}: answer {text!r} is not in the context at answer_start={start} "
                    f"(the context has {found!r} there); answers must be exact substrings of their context"
                )


def _check_fast(tokenizer) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise InputError("extractive QA needs a fast (Rust `tokenizers`) tokenizer for offset mappings; "
                         f"got {type(tokenizer).__name__}")
    if tokenizer.padding_side != "right":
        raise InputError(f"extractive QA expects padding_side='right', got {tokenizer.padding_side!r}")


def _tokenize(examples: dict, tokenizer, max_length: int, stride: int):
    # questions go first and are never truncated: only the context is split into windows
    return tokenizer(
        [q.lstrip() for q in examples["question"]],
        examples["context"],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding="max_length",
    )


def _context_bounds(sequence_ids: list) -> tuple[int, int]:
    first = sequence_ids.index(1)
    last = len(sequence_ids) - 1 - sequence_ids[::-1].index(1)
    return first, last


def prepare_train_features(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Batched `datasets.map` function: token `start_positions`/`end_positions` of the first answer, or the
    [CLS] index for windows that do not contain the whole answer and for unanswerable questions."""
    encoded = _tokenize(examples, tokenizer, max_length, stride)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    offsets_per_feature = encoded.pop("offset_mapping")
    encoded["start_positions"], encoded["end_positions"] = [], []
    for i, offsets in enumerate(offsets_per_feature):
        cls_index = encoded["input_ids"][i].index(tokenizer.cls_token_id)
        answers = examples["answers"][sample_map[i]]
        start, end = cls_index, cls_index
        if answers["text"]:
            start_char = answers["answer_start"][0]
            end_char = start_char + len(answers["text"][0])
            first, last = _context_bounds(encoded.sequence_ids(i))
            if offsets[first][0] <= start_char and offsets[last][1] >= end_char:
                start = first
                while start + 1 <= last and offsets[start + 1][0] <= start_char:
                    start += 1
                end = last
                while end - 1 >= first and offsets[end - 1][1] >= end_char:
                    end -= 1
        encoded["start_positions"].append(start)
        encoded["end_positions"].append(end)
    return encoded


def prepare_eval_features(examples: dict, tokenizer, max_length: int, stride: int) -> dict:
    """Batched `datasets.map` function: keeps each window's `example_id`, and its offsets for context tokens
    only (None elsewhere), so decoding can never return part of the question."""
    encoded = _tokenize(examples, tokenizer, max_length, stride)
    sample_map = encoded.pop("overflow_to_sample_mapping")
    encoded["example_id"] = []
    for i in range(len(encoded["input_ids"])):
        sequence_ids = encoded.sequence_ids(i)
        encoded["example_id"].append(examples["id"][sample_map[i]])
        encoded["offset_mapping"][i] = [
            list(offset) if sequence_ids[k] == 1 else None for k, offset in enumerate(encoded["offset_mapping"][i])
        ]
    return encoded


def _map_features(dataset: datasets.Dataset, prepare, tokenizer, max_length: int, stride: int, desc: str):
    _check_fast(tokenizer)
    return dataset.map(
        prepare,
        batched=True,
        remove_columns=dataset.column_names,
        fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "stride": stride},
        desc=desc,
    )


def build_train_features(dataset: datasets.Dataset, tokenizer, max_length: int, stride: int) -> datasets.Dataset:
    return _map_features(dataset, prepare_train_features, tokenizer, max_length, stride, "QA train features")


def build_eval_features(dataset: datasets.Dataset, tokenizer, max_length: int, stride: int) -> datasets.Dataset:
    return _map_features(dataset, prepare_eval_features, tokenizer, max_length, stride, "QA eval features")


def postprocess_qa_predictions(
    examples: datasets.Dataset | Sequence[dict],
    features: datasets.Dataset | Sequence[dict],
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
) -> tuple[dict[str, str], dict[str, list[dict]]]:
    """Best answer text per example id, and its n-best list (text, score, probability).

    Candidate spans combine the `n_best_size` best start and end tokens of every window, must lie in the
    context, end after they start and span at most `max_answer_length` tokens. With
    `version_2_with_negative`, the answer is "" when the best null score (start and end on [CLS], minimum over
    windows) beats the best span's score by more than `null_score_diff_threshold`.
    """
    if len(features) != len(start_logits) or len(features) != len(end_logits):
        raise InputError(f"{len(features)} features but {len(start_logits)} start and {len(end_logits)} end logits")
    if isinstance(features, datasets.Dataset):
        example_ids, all_offsets = features["example_id"], features["offset_mapping"]
    else:
        example_ids, all_offsets = [f["example_id"] for f in features], [f["offset_mapping"] for f in features]
    features_per_example = collections.defaultdict(list)
    for index, example_id in enumerate(example_ids):
        features_per_example[example_id].append(index)

    predictions, nbest = {}, {}
    for example in examples:
        min_null_score, candidates = None, []
        for index in features_per_example[example["id"]]:
            starts, ends = np.asarray(start_logits[index]), np.asarray(end_logits[index])
            offsets = all_offsets[index]
            # [CLS] sits at position 0 with right padding (checked when the features were built)
            null_score = float(starts[0] + ends[0])
            min_null_score = null_score if min_null_score is None else min(min_null_score, null_score)
            for start in np.argsort(starts)[::-1][:n_best_size]:
                for end in np.argsort(ends)[::-1][:n_best_size]:
                    if start >= len(offsets) or end >= len(offsets) or offsets[start] is None or offsets[end] is None:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    start_char, end_char = offsets[start][0], offsets[end][1]
                    candidates.append({
                        "text": example["context"][start_char:end_char].strip(),
                        "start_char": int(start_char),
                        "score": float(starts[start] + ends[end]),
                    })
        candidates = sorted(candidates, key=lambda c: c["score"], reverse=True)[:n_best_size]
        best_text = candidates[0]["text"] if candidates else ""
        if version_2_with_negative and min_null_score is not None:
            candidates.append({"text": "", "start_char": -1, "score": min_null_score})
            best_span_score = max((c["score"] for c in candidates if c["text"]), default=float("-inf"))
            if min_null_score - best_span_score > null_score_diff_threshold:
                best_text = ""
            candidates.sort(key=lambda c: c["score"], reverse=True)
        if candidates:
            scores = np.array([c["score"] for c in candidates])
            probabilities = np.exp(scores - scores.max())
            probabilities /= probabilities.sum()
            for candidate, probability in zip(candidates, probabilities):
                candidate["probability"] = float(probability)
        predictions[example["id"]] = best_text
        nbest[example["id"]] = candidates
    return predictions, nbest
