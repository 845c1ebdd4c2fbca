"""N-gram whole-word masking for ALBERT pretraining, as a DataLoader `collate_fn`.

Words: a token starts a word as in ALBERT's `_is_start_piece_sp` (see `is_start_piece`: a `▁` piece, or a piece
that is not made only of ASCII letters and punctuation, so punctuation pieces, digits and non-ASCII pieces are
words of their own); other tokens continue the word before them. Two deliberate differences from the original: the
first token after a special token always starts a word (the original would join a continuation piece right after
[SEP] to the last word of segment A, so one masked span could straddle the separator), and special tokens (<unk>
and <pad> as well as [CLS], [SEP], [MASK]) are never masked (the original only skips [CLS] and [SEP], so it can
ask the model to predict <unk>). Per sequence, a budget of
min(max_predictions_per_seq, max(1, round(0.15 * length))) tokens is filled with spans of n whole words, n drawn
with p(n) = (1/n) / sum_k(1/k), k <= max_ngram (6/11, 3/11, 2/11 for n <= 3, as in the ALBERT paper). Each span is
placed uniformly among the positions where it fits (no overlap, within the remaining budget); if none exists the
span shrinks to n-1 words, as the original shrinks spans that exceed the budget. Every chosen token becomes
[MASK] 80% of the time, a random non-special token 10%, and stays 10%; `labels` hold the original ids there and
-100 elsewhere. Modes: "ngram" (above), "whole_word" (n = 1) and "token" (every token its own word, n = 1).

Determinism: each example is masked with `numpy.random.default_rng((seed, epoch, example_id))` when the feature
carries an `example_id` (as `albert_recipes.sop.build_sop_dataset` writes), so a resumed run, any batch size and
any number of DataLoader workers reproduce the same masks after `set_epoch(epoch)`. Without `example_id` the key is
the collator's own batch counter, saved by `state_dict()`; that is exact only with `num_workers=0`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from .errors import InputError

MaskingMode = Literal["ngram", "whole_word", "token"]


# The punctuation of ALBERT's `_is_start_piece_sp` (its string lacks the apostrophe, '<', '=' and '>'; its "€" and
# "£" are added as bytes and so never match a piece under Python 3).
_START_PUNCTUATION = frozenset('!"#$%&()*+,-./:;?@[\\]^_`{|}~')
_CONTINUATION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz") | _START_PUNCTUATION


def is_start_piece(piece: str) -> bool:
    """Does this SentencePiece piece start a word? ALBERT's `_is_start_piece_sp` rule: yes for a `▁` piece, a piece
    starting with '<', a single punctuation character, and any piece holding a character that is neither an ASCII
    letter (either case) nor that punctuation (digits, apostrophes, non-ASCII letters: "for foreign characters, we
    always treat them as a whole piece"). So "ing" and "s" continue a word; ".", "1" and "'s" start one."""
    return (
        piece.startswith(("▁", "<"))
        or piece in _START_PUNCTUATION
        or any(ch.lower() not in _CONTINUATION_CHARS for ch in piece)
    )


def ngram_probabilities(max_ngram: int) -> np.ndarray:
    """p(n) proportional to 1/n for n = 1..max_ngram, favouring short spans as ALBERT does."""
    weights = 1.0 / np.arange(1, max_ngram + 1)
    return weights / weights.sum()


def sample_ngram_spans(
    word_lengths: np.ndarray, budget: int, ngram_probs: np.ndarray, rng: np.random.Generator
) -> list[tuple[int, int]]:
    """Non-overlapping (first_word, n_words) spans whose token count adds up to at most `budget`."""
    num_words = len(word_lengths)
    covered = np.zeros(num_words, dtype=np.int64)
    tokens_before = np.concatenate([[0], np.cumsum(word_lengths)])  # (W + 1,)
    spans = []
    remaining = budget
    # At most `budget` spans are placed (each costs >= 1 token), so their lengths are drawn up front in one call.
    lengths = np.searchsorted(np.cumsum(ngram_probs)[:-1], rng.random(budget), side="right") + 1
    for n in lengths.tolist():
        if remaining <= 0:
            break
        covered_before = np.concatenate([[0], np.cumsum(covered)])
        for size in range(min(n, num_words), 0, -1):
            span_tokens = tokens_before[size:] - tokens_before[:-size]  # (W - size + 1,) tokens per start
            span_covered = covered_before[size:] - covered_before[:-size]
            starts = np.flatnonzero((span_covered == 0) & (span_tokens <= remaining))
            if starts.size:
                start = int(starts[rng.integers(starts.size)])
                covered[start : start + size] = 1
                remaining -= int(span_tokens[start])
                spans.append((start, size))
                break
        else:
            break  # not even one free word fits the remaining budget
    return spans


class NgramMaskingCollator:
    """Pads a list of features and masks them; returns torch tensors ready for `*ForPreTraining`/`*ForMaskedLM`.

    Features: `input_ids` (required), optional `token_type_ids`, `attention_mask`, `sentence_order_label`,
    `example_id`, `sop_random_document`. Output: `input_ids`, `attention_mask`, `token_type_ids`, `labels`
    (+ `sentence_order_label`, `sop_random_document`: pop the latter before the forward pass; the model has no such
    input).
    """

    def __init__(
        self,
        tokenizer: Any,
        mlm_probability: float = 0.15,
        max_predictions_per_seq: int = 20,
        mode: MaskingMode = "ngram",
        max_ngram: int = 3,
        seed: int = 0,
        pad_to_multiple_of: int | None = None,
    ):
        if tokenizer.mask_token_id is None:
            raise InputError("the tokenizer has no mask token ([MASK]); masked-LM pretraining needs one")
        if tokenizer.pad_token_id is None:
            raise InputError("the tokenizer has no padding token (<pad>); the collator pads batches with it")
        if not 0.0 < mlm_probability < 1.0:
            raise InputError(f"mlm_probability={mlm_probability} must be between 0 and 1")
        if max_predictions_per_seq < 1:
            raise InputError(f"max_predictions_per_seq={max_predictions_per_seq} must be >= 1")
        if mode not in ("ngram", "whole_word", "token"):
            raise InputError(f"mode={mode!r} is not allowed; choose 'ngram', 'whole_word' or 'token'")
        if max_ngram < 1:
            raise InputError(f"max_ngram={max_ngram} must be >= 1")
        self.mask_token_id = tokenizer.mask_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.mlm_probability = mlm_probability
        self.max_predictions_per_seq = max_predictions_per_seq
        self.mode = mode
        self.ngram_probs = ngram_probabilities(max_ngram if mode == "ngram" else 1)
        self.seed = seed
        self.pad_to_multiple_of = pad_to_multiple_of
        self.epoch = 0
        self.batches_collated = 0

        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self.starts_word = np.array([piece is not None and is_start_piece(piece) for piece in pieces])
        self.is_special = np.zeros(len(pieces), dtype=bool)
        self.is_special[tokenizer.all_special_ids] = True
        self.random_token_ids = np.flatnonzero(~self.is_special)  # replacements are never special tokens

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_collated": self.batches_collated}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.batches_collated = int(state["batches_collated"])

    def mask_sequence(self, input_ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(masked input_ids, labels) for one unpadded sequence."""
        candidate = ~self.is_special[input_ids]
        after_special = np.concatenate([[True], ~candidate[:-1]])
        if self.mode == "token":
            starts = candidate
        else:
            starts = candidate & (self.starts_word[input_ids] | after_special)
        word_of_token = np.cumsum(starts) - 1  # (T,) index of the word each token belongs to
        word_lengths = np.bincount(word_of_token[candidate], minlength=int(starts.sum()))
        budget = min(self.max_predictions_per_seq, max(1, round(len(input_ids) * self.mlm_probability)))
        chosen_words = np.zeros(len(word_lengths) + 1, dtype=bool)  # last slot: "not a word"
        for start, size in sample_ngram_spans(word_lengths, budget, self.ngram_probs, rng):
            chosen_words[start : start + size] = True
        positions = np.flatnonzero(candidate & chosen_words[np.where(candidate, word_of_token, -1)])

        labels = np.full_like(input_ids, -100)
        labels[positions] = input_ids[positions]
        masked = input_ids.copy()
        draw = rng.random(len(positions))
        masked[positions[draw < 0.8]] = self.mask_token_id
        replace = positions[(draw >= 0.8) & (draw < 0.9)]
        masked[replace] = self.random_token_ids[rng.integers(len(self.random_token_ids), size=len(replace))]
        return masked, labels

    def _rng(self, feature: dict[str, Any], position: int) -> np.random.Generator:
        if "example_id" in feature:
            return np.random.default_rng([self.seed, self.epoch, 0, int(feature["example_id"])])
        return np.random.default_rng([self.seed, self.epoch, 1, self.batches_collated, position])

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise InputError("cannot collate an empty list of features")
        rows = [np.asarray(f["input_ids"], dtype=np.int64) for f in features]
        width = max(len(r) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": np.full((len(rows), width), self.pad_token_id, dtype=np.int64),
            "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(rows), width), dtype=np.int64),
            "labels": np.full((len(rows), width), -100, dtype=np.int64),
        }
        for i, (feature, ids) in enumerate(zip(features, rows)):
            if ids.size and (ids.min() < 0 or ids.max() >= len(self.is_special)):
                raise InputError(f"feature {i}: token id out of range [0, {len(self.is_special)}) for this tokenizer")
            masked, labels = self.mask_sequence(ids, self._rng(feature, i))
            batch["input_ids"][i, : len(ids)] = masked
            batch["labels"][i, : len(ids)] = labels
            batch["attention_mask"][i, : len(ids)] = feature.get("attention_mask", 1)
            if "token_type_ids" in feature:
                batch["token_type_ids"][i, : len(ids)] = feature["token_type_ids"]
        for name in ("sentence_order_label", "sop_random_document"):  # the second: for split SOP metrics only
            if name in features[0]:
                batch[name] = np.array([f[name] for f in features], dtype=np.int64)
        self.batches_collated += 1
        return {name: torch.from_numpy(array) for name, array in batch.items()}
