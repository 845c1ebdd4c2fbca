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


# ---------------------------------------------------------------- the model on packed rows

TINY = {"embedding_size": 16, "hidden_size": 32, "num_attention_heads": 4, "intermediate_size": 64,
        "num_hidden_layers": 3}


def _model(attn: str, tokenizer, cls_name: str = "AlbertRecipesForPreTraining"):
    import albert_recipes

    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset("tiny", vocab_size=len(tokenizer), **TINY)
    config._attn_implementation = attn
    return getattr(albert_recipes, cls_name)(config).eval()


def _per_example(out, batch, order=None):
    """(SOP logits, summed MLM loss per example), in the padded batch's example order."""
    losses = torch.nn.functional.cross_entropy(out.prediction_logits.transpose(1, 2), batch["labels"], reduction="none")
    if order is None:
        return out.sop_logits, losses.sum(-1)
    starts = batch["position_ids"] == 0
    example = (torch.cumsum(starts.flatten().long(), 0) - 1).view_as(starts)  # row-major example index per token
    mlm = torch.zeros(len(order)).index_add_(0, example.flatten(), losses.flatten())
    sop, per = torch.empty_like(out.sop_logits), torch.empty_like(mlm)
    sop[order], per[order] = out.sop_logits, mlm
    return sop, per


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_batches_give_the_same_per_example_losses_and_sop_logits(attn, tiny_tokenizer):
    features = _features([40, 12, 33, 64, 9, 25, 60, 17], seed=1)
    padded = NgramMaskingCollator(tiny_tokenizer, seed=3)(features)
    packed, order = pack_batch(padded, 64, tiny_tokenizer.pad_token_id)
    model = _model(attn, tiny_tokenizer)
    inputs = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    with torch.no_grad():
        out_padded = model(**{k: v for k, v in padded.items() if k in inputs})
        out_packed = model(**{k: v for k, v in packed.items() if k in inputs})
    sop_a, mlm_a = _per_example(out_padded, padded)
    sop_b, mlm_b = _per_example(out_packed, packed, order)
    assert out_packed.sop_logits.shape == (8, 2)  # one SOP prediction per packed example, read at its [CLS]
    torch.testing.assert_close(sop_b, sop_a, atol=1e-5, rtol=0)
    torch.testing.assert_close(mlm_b, mlm_a, atol=1e-5, rtol=1e-6)
    # the training losses agree too (same masked tokens, same examples)
    with torch.no_grad():
        loss_padded = model(**{k: v for k, v in padded.items() if k != "example_id"}).loss
        loss_packed = model(**packed).loss
    torch.testing.assert_close(loss_packed, loss_padded, atol=1e-5, rtol=0)


def test_no_attention_leaks_across_packed_examples(tiny_tokenizer):
    features = _features([20, 30, 14], seed=2)
    batch = NgramMaskingCollator(tiny_tokenizer, seed=0)(features)
    packed, order = pack_batch(batch, 64, tiny_tokenizer.pad_token_id)
    assert packed["input_ids"].shape[0] == 1  # all three share one row
    model = _model("sdpa", tiny_tokenizer, "AlbertRecipesModel")
    changed = {k: v.clone() for k, v in packed.items()}
    middle = (packed["position_ids"][0] == 0).nonzero().flatten()[1].item()  # the second example's [CLS]
    changed["input_ids"][0, middle + 1 : middle + 8] = 7  # rewrite the second example's tokens
    inputs = ("input_ids", "attention_mask", "token_type_ids", "position_ids")
    with torch.no_grad():
        before = model(**{k: packed[k] for k in inputs})
        after = model(**{k: changed[k] for k in inputs})
    owner = torch.cumsum(packed["position_ids"][0] == 0, 0) - 1  # example index of every token of the row
    others = owner != 1
    torch.testing.assert_close(after.last_hidden_state[0, others], before.last_hidden_state[0, others], atol=1e-6, rtol=0)
    assert not torch.allclose(after.last_hidden_state[0, ~others], before.last_hidden_state[0, ~others])
    assert before.pooler_output.shape == (3, 32)  # pooled at each example's [CLS]
    torch.testing.assert_close(after.pooler_output[[0, 2]], before.pooler_output[[0, 2]], atol=1e-6, rtol=0)
