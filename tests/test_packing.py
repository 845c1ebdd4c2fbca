"""Packed pretraining batches: the collator keeps every example intact, the model sees each example on its own."""

from __future__ import annotations

import pytest
import torch

from albert_recipes.errors import InputError
from albert_recipes.masking import NgramMaskingCollator
from albert_recipes.packing import PackingCollator, pack_batch, pack_into_rows, packing_efficiency


def _features(lengths, seed=0, vocab=(5, 700)):
    g = torch.Generator().manual_seed(seed)
    features = []
    for k, n in enumerate(lengths):
        a = n // 2
        ids = [2, *torch.randint(*vocab, (a - 2,), generator=g).tolist(), 3]
        ids += [*torch.randint(*vocab, (n - a - 1,), generator=g).tolist(), 3]
        features.append({"input_ids": ids, "token_type_ids": [0] * a + [1] * (n - a),
                         "sentence_order_label": k % 2, "example_id": 1000 + k})
    return features


def test_pack_into_rows_fills_rows_without_overflow_and_uses_each_example_once():
    lengths = [120, 30, 64, 64, 100, 7, 20, 128, 1, 90]
    rows = pack_into_rows(lengths, 128)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 128 for row in rows)
    assert len(rows) == 5  # 624 tokens need at least 5 rows of 128
    assert rows == pack_into_rows(lengths, 128)  # deterministic
    assert all(row == sorted(row) for row in rows) and [r[0] for r in rows] == sorted(r[0] for r in rows)


@pytest.mark.parametrize("lengths", [[129], [0, 5]])
def test_pack_into_rows_rejects_examples_that_cannot_fit(lengths):
    with pytest.raises(InputError, match="capacity=128"):
        pack_into_rows(lengths, 128)


def test_packing_collator_keeps_masks_labels_segments_and_restarts_positions(tiny_tokenizer):
    lengths = [40, 12, 33, 64, 9, 25, 60, 17]
    features = _features(lengths)
    masking = NgramMaskingCollator(tiny_tokenizer, seed=3)
    padded = NgramMaskingCollator(tiny_tokenizer, seed=3)(features)
    packed, order = pack_batch(padded, max_length=64, pad_token_id=tiny_tokenizer.pad_token_id)
    assert PackingCollator(masking, max_length=64)(features).keys() == packed.keys()

    assert packed["input_ids"].shape[0] == 5 and packed["input_ids"].shape[1] <= 64  # 8 padded rows -> 5 packed
    assert packing_efficiency(packed) > packing_efficiency(padded)
    assert sorted(order.tolist()) == list(range(len(lengths)))
    assert torch.equal(packed["sentence_order_label"], padded["sentence_order_label"][order])

    # walk the packed rows: example k of the packed order sits where its position ids restart at 0
    starts = (packed["position_ids"] == 0).nonzero().tolist()
    assert len(starts) == len(lengths)
    for k, (r, c) in enumerate(starts):
        i, n = int(order[k]), lengths[int(order[k])]
        for key in ("input_ids", "labels", "token_type_ids", "attention_mask"):
            assert torch.equal(packed[key][r, c : c + n], padded[key][i, :n]), key
        assert torch.equal(packed["position_ids"][r, c : c + n], torch.arange(n))
    # padding: masked, no labels, positions continue the last example (so never 0)
    pad = packed["attention_mask"] == 0
    assert (packed["labels"][pad] == -100).all() and (packed["input_ids"][pad] == tiny_tokenizer.pad_token_id).all()
    assert int(packed["attention_mask"].sum()) == sum(lengths)


def test_pack_batch_rejects_left_padding_and_unknown_per_token_keys():
    batch = {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])}
    with pytest.raises(InputError, match="right-padded"):
        pack_batch(batch, 8, 0)
    batch["attention_mask"] = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    with pytest.raises(InputError, match="cannot pack batch key 'special_tokens_mask'"):
        pack_batch({**batch, "special_tokens_mask": torch.zeros(2, 4)}, 8, 0)

