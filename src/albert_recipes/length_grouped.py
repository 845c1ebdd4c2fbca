"""Fast batched inference for sequence classification: length-grouped batches, on PyTorch or ONNX Runtime.

Padding is the waste of batched inference: a batch of 32 sentences in file order is padded to its longest one,
so most rows compute on pad tokens. Here the texts are tokenized once (no padding), ordered by length, cut into
batches of neighbours in that order (so a batch is padded only to a length its rows nearly share, and a batch whose
rows all have one length carries no mask at all, which lets sdpa take its fast path), and the scores are put back
in input order. Padded positions never influence the real ones, so the predictions are those of the padded,
file-order run (the scores agree to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .errors import InputError

Forward = Callable[[dict[str, np.ndarray]], np.ndarray]  # padded int64 inputs -> (B, num_labels) scores


def length_grouped_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices cut into batches of `batch_size` after a stable sort by length (longest first)."""
    if batch_size < 1:
        raise InputError(f"batch_size={batch_size} must be >= 1")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(encodings: dict[str, list[list[int]]], rows: Sequence[int], pad_token_id: int) -> dict[str, np.ndarray]:
    """Right-pad the chosen rows of a tokenizer's unpadded output to their longest one (int64 numpy arrays)."""
    ids = [encodings["input_ids"][i] for i in rows]
    width = max(len(row) for row in ids)
    batch = {"input_ids": np.full((len(rows), width), pad_token_id, dtype=np.int64),
             "attention_mask": np.zeros((len(rows), width), dtype=np.int64),
             "token_type_ids": np.zeros((len(rows), width), dtype=np.int64)}  # fmt: skip
    segments = encodings.get("token_type_ids")
    for j, (i, row) in enumerate(zip(rows, ids)):
        batch["input_ids"][j, : len(row)] = row
        batch["attention_mask"][j, : len(row)] = 1
        if segments is not None:
            batch["token_type_ids"][j, : len(row)] = segments[i]
    return batch


def classify(
    texts: Sequence[str],
    tokenizer: Any,
    forward: Forward,
    *,
    text_pairs: Sequence[str] | None = None,
    batch_size: int = 32,
    max_length: int = 512,
) -> np.ndarray:
    """(N, num_labels) scores for `texts` in input order, computed on length-grouped batches."""
    if not len(texts):
        raise InputError("no texts to classify")
    encodings = tokenizer(list(texts), list(text_pairs) if text_pairs is not None else None, truncation=True,
                          max_length=max_length, padding=False)  # fmt: skip
    lengths = [len(ids) for ids in encodings["input_ids"]]
    scores: np.ndarray | None = None
    for rows in length_grouped_batches(lengths, batch_size):
        out = forward(pad_batch(encodings, rows, tokenizer.pad_token_id))
        if scores is None:
            scores = np.empty((len(texts), out.shape[-1]), dtype=out.dtype)
        scores[rows] = out
    return scores


def torch_forward(model: torch.nn.Module) -> Forward:
    """A `Forward` running a PyTorch classifier under inference mode (the model's device, fp32 in and out)."""
    device = next(model.parameters()).device

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            return model(**inputs).logits.float().cpu().numpy()

    return forward


def onnx_forward(onnx_model: Any, output: str = "logits") -> Forward:
    """A `Forward` running an exported model (`albert_recipes.onnx_export.OnnxModel`)."""

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        return onnx_model(**batch)[output]

    return forward


__all__ = ["classify", "length_grouped_batches", "onnx_forward", "pad_batch", "torch_forward"]
