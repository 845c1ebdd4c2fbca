"""Packed pretraining batches: several SOP examples per row, so a step spends its time on text, not on padding.

A packed row holds whole examples one after another. Each example keeps its own `[CLS] A [SEP] B [SEP]` layout:
its position ids restart at 0, its segment ids (`token_type_ids`) are its own, its MLM labels are unchanged. The
model (`AlbertRecipesModel`) reads the packing from the position ids: attention is block-diagonal (a token sees only
the tokens of its own example), and the pooled output, hence the SOP logits, is read at every position whose position
id is 0, that is at each packed example's `[CLS]`, in row-major order. So a packed batch gives the same per-example
MLM losses and SOP logits as the padded one, and training on it follows the same trajectory (the batch still holds the
same examples: only the rows change).

`transformers.DataCollatorWithFlattening` cannot be used: it drops `token_type_ids` and `sentence_order_label` and
flattens everything into one row. Grouping the examples into rows is a bin-packing problem; it uses the maintained
`binpacking` package (largest examples first, each into the least-filled row it fits).

Padding after the last example of a row continues that example's positions (it is masked out by `attention_mask`),
so no padded token ever has position id 0 and no query row is fully masked (which would give NaN in sdpa).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import binpacking
import torch

from .errors import InputError

# Per-token tensors of a padded MLM/SOP batch, and the value their padding takes.
TOKEN_KEYS = {"input_ids": None, "attention_mask": 0, "token_type_ids": 0, "labels": -100}


def pack_into_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into rows whose lengths add up to at most `capacity` (few rows, deterministic).

    Each row lists its examples in ascending index order; rows are ordered by their first example.
    """
    if capacity < 1:
        raise InputError(f"packing capacity={capacity} must be >= 1 token")
    for index, length in enumerate(lengths):
        if not 1 <= length <= capacity:
            raise InputError(
                f"example {index} has {length} tokens; packing needs 1 <= length <= capacity={capacity} "
                "(set data.max_seq_length no larger than the packed row length)"
            )
    if not lengths:
        return []
    bins = binpacking.to_constant_volume({i: int(n) for i, n in enumerate(lengths)}, capacity)
    rows = [sorted(row) for row in bins if row]
    return sorted(rows, key=lambda row: row[0])


def pack_batch(batch: dict[str, torch.Tensor], max_length: int, pad_token_id: int) -> tuple[dict, torch.Tensor]:
    """Repack a padded (B, T) batch into (R, W) rows of whole examples; returns (packed batch, order).

    `order[k]` is the row of `batch` that became the k-th packed example (row-major over the packed rows): every
    per-example tensor of shape (B, ...) is returned in that order, e.g. `sentence_order_label`. Per-token keys
    (`input_ids`, `attention_mask`, `token_type_ids`, `labels`) are repacked; `position_ids` restart at each example.
    W is the longest packed row (at most `max_length`).
    """
    if "input_ids" not in batch or "attention_mask" not in batch:
        raise InputError("pack_batch needs 'input_ids' and 'attention_mask' in the batch")
    input_ids, mask = batch["input_ids"], batch["attention_mask"]
    batch_size, seq_len = input_ids.shape
    lengths = mask.sum(-1).tolist()
    for i, length in enumerate(lengths):
        if not bool(mask[i, :length].all()):
            raise InputError(f"row {i} of the batch is not right-padded; packing needs each example at the start")
    rows = pack_into_rows(lengths, max_length)
    width = max(sum(lengths[i] for i in row) for row in rows)

    packed = {}
    for key, fill in TOKEN_KEYS.items():
        if key in batch:
            value = pad_token_id if fill is None else fill
            packed[key] = torch.full((len(rows), width), value, dtype=batch[key].dtype)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            n = lengths[i]
            for key in packed:
                packed[key][r, start : start + n] = batch[key][i, :n]
            position_ids[r, start : start + n] = torch.arange(n)
            start += n
        # padding continues the last example's positions: never position 0, never a fully masked query row
        position_ids[r, start:] = torch.arange(start, width) - (start - n)
    packed["position_ids"] = position_ids

    order = torch.tensor([i for row in rows for i in row], dtype=torch.long)
    for key, value in batch.items():
        if key in packed or key == "position_ids":
            continue
        if not (isinstance(value, torch.Tensor) and value.dim() == 1 and value.shape[0] == batch_size):
            raise InputError(
                f"cannot pack batch key {key!r}: only the per-token keys {sorted(TOKEN_KEYS)} and per-example "
                f"(batch,) tensors can be packed"
            )
        packed[key] = value[order]
    return packed, order


class PackingCollator:
    """A DataLoader `collate_fn`: the masking collator's padded batch, repacked into rows of `max_length` tokens.

    The masks are exactly those of the wrapped collator (it runs first, on the same features), so packing changes
    nothing but the layout. Per-example outputs (`sentence_order_label`, `sop_random_document`, ...) come in packed
    order, which is the order of the model's SOP logits.
    """

    def __init__(self, collator: Callable[[Sequence[dict[str, Any]]], dict[str, torch.Tensor]], max_length: int):
        pad_token_id = getattr(collator, "pad_token_id", None)
        if pad_token_id is None:
            raise InputError("PackingCollator wraps a collator with a `pad_token_id` (e.g. NgramMaskingCollator)")
        if max_length < 1:
            raise InputError(f"max_length={max_length} must be >= 1")
        self.collator, self.max_length, self.pad_token_id = collator, max_length, pad_token_id

    def __getattr__(self, name: str) -> Any:  # set_epoch, state_dict, load_state_dict of the wrapped collator
        if name == "collator":
            raise AttributeError(name)
        return getattr(self.collator, name)

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        packed, _ = pack_batch(self.collator(features), self.max_length, self.pad_token_id)
        return packed


def packing_efficiency(batch: dict[str, torch.Tensor]) -> float:
    """Share of the batch's token slots that hold real tokens (1.0: no padding)."""
    mask = batch["attention_mask"]
    return float(mask.sum()) / mask.numel()


__all__ = ["PackingCollator", "pack_batch", "pack_into_rows", "packing_efficiency"]
