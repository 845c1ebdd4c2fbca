import math

import datasets
import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from albert_reference import is_start_piece_sp
from albert_recipes.corpus import load_embedded_corpus
from albert_recipes.masking import NgramMaskingCollator, ngram_probabilities, sample_ngram_spans
from albert_recipes.sop import build_sop_dataset

datasets.disable_progress_bars()
CHI2_CRITICAL_DF2_P001 = 13.816  # chi-square critical value, 2 degrees of freedom, p = 0.001


@pytest.fixture(scope="module")
def features(tiny_tokenizer):
    ds = build_sop_dataset(load_embedded_corpus()[:40], tiny_tokenizer, max_seq_length=128, seed=0)
    return [ds[i] for i in range(min(len(ds), 400))]


def _word_ids(ids, tokenizer):
    """Independent word segmentation: a word starts where ALBERT's `_is_start_piece_sp` (ported in
    albert_reference.py) says so, or right after a special token."""
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(ids)
    words, current, previous_special = [], -1, True
    for token_id, piece in zip(ids, pieces):
        if token_id in special:
            words.append(None)
            previous_special = True
            continue
        if is_start_piece_sp(piece) or previous_special:
            current += 1
        words.append(current)
        previous_special = False
    return words


def test_ngram_length_distribution_matches_one_over_n():
    probs = ngram_probabilities(3)
    np.testing.assert_allclose(probs, [6 / 11, 3 / 11, 2 / 11])
    rng = np.random.default_rng(0)
    counts = np.zeros(3)
    for _ in range(60):
        spans = sample_ngram_spans(np.ones(512, dtype=np.int64), 77, probs, rng)
        # The last spans may be shortened to fit the remaining budget (< 3 tokens); leave them out.
        for _, size in spans[:-2]:
            counts[size - 1] += 1
    expected = probs * counts.sum()
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.sum() > 2000
    assert chi2 < CHI2_CRITICAL_DF2_P001, (counts, expected, chi2)
    # The test can fail: uniform lengths are rejected by a wide margin.
    uniform = np.full(3, counts.sum() / 3)
    assert ((uniform - expected) ** 2 / expected).sum() > 10 * CHI2_CRITICAL_DF2_P001


def test_masked_fraction_cap_and_80_10_10(tiny_tokenizer, features):
    collator = NgramMaskingCollator(tiny_tokenizer, seed=1)
    special = torch.tensor(tiny_tokenizer.all_special_ids)
    fractions, mask, random_, kept, total = [], 0, 0, 0, 0
    for start in range(0, len(features), 32):
        chunk = features[start : start + 32]
        batch = collator(chunk)
        originals = torch.full_like(batch["input_ids"], tiny_tokenizer.pad_token_id)
        for i, f in enumerate(chunk):
            originals[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        chosen = batch["labels"] != -100
        lengths = batch["attention_mask"].sum(1)
        budget = torch.clamp(torch.round(lengths * 0.15), min=1, max=20)
        assert (chosen.sum(1) <= budget).all()  # never over 15% nor over max_predictions_per_seq
        fractions += (chosen.sum(1) / lengths).tolist()
        assert (batch["labels"][chosen] == originals[chosen]).all()
        assert not torch.isin(originals[chosen], special).any()  # never a special token or padding
        assert not torch.isin(batch["input_ids"][~chosen], torch.tensor([tiny_tokenizer.mask_token_id])).any()
        assert (batch["input_ids"][~chosen] == originals[~chosen]).all()
        new = batch["input_ids"][chosen]
        mask += (new == tiny_tokenizer.mask_token_id).sum().item()
        swapped = (new != tiny_tokenizer.mask_token_id) & (new != originals[chosen])
        assert not torch.isin(new[swapped], special).any()  # random replacements are never special tokens
        random_ += swapped.sum().item()
        kept += (new == originals[chosen]).sum().item()
        total += chosen.sum().item()
    assert 0.14 < np.mean(fractions) <= 0.15 + 1e-6  # 19 of 128 tokens: just under 15% when full
    sigma = math.sqrt(0.1 * 0.9 / total)
    assert abs(mask / total - 0.8) < 4 * math.sqrt(0.16 / total)
    # A random draw can hit the original token (1 in ~800), which then counts as kept.
    assert abs(random_ / total - 0.1) < 4 * sigma + 0.002
    assert abs(kept / total - 0.1) < 4 * sigma + 0.002


@pytest.mark.parametrize("mode", ["ngram", "whole_word"])
def test_masked_spans_are_whole_words(tiny_tokenizer, features, mode):
    collator = NgramMaskingCollator(tiny_tokenizer, mode=mode, seed=2)
    batch = collator(features[:64])
    partial_words = 0
    for i, f in enumerate(features[:64]):
        chosen = (batch["labels"][i, : len(f["input_ids"])] != -100).tolist()
        by_word = {}
        for word, is_chosen in zip(_word_ids(f["input_ids"], tiny_tokenizer), chosen):
            if word is not None:
                by_word.setdefault(word, set()).add(is_chosen)
        partial_words += sum(len(flags) == 2 for flags in by_word.values())
    assert partial_words == 0
    assert (batch["labels"] != -100).sum() > 64 * 10


def test_token_mode_masks_single_tokens_to_the_budget(tiny_tokenizer, features):
    collator = NgramMaskingCollator(tiny_tokenizer, mode="token", max_predictions_per_seq=7, seed=3)
    batch = collator(features[:64])
    lengths = batch["attention_mask"].sum(1)
    expected = torch.clamp(torch.round(lengths * 0.15), min=1, max=7)
    assert ((batch["labels"] != -100).sum(1) == expected).all()


def test_padding_and_dataloader(tiny_tokenizer, features):
    collator = NgramMaskingCollator(tiny_tokenizer, seed=4, pad_to_multiple_of=8)
    loader = torch.utils.data.DataLoader(features[:20], batch_size=8, collate_fn=collator)
    padded_rows = 0
    for batch, start in zip(loader, range(0, 20, 8)):
        assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels", "sentence_order_label",
                              "sop_random_document"}
        assert batch["input_ids"].shape[1] % 8 == 0
        for i, f in enumerate(features[start : min(start + 8, 20)]):
            n = len(f["input_ids"])
            padded_rows += n < batch["input_ids"].shape[1]
            assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (batch["input_ids"].shape[1] - n)
            assert (batch["input_ids"][i, n:] == tiny_tokenizer.pad_token_id).all()
            assert (batch["labels"][i, n:] == -100).all()
            assert batch["token_type_ids"][i, :n].tolist() == f["token_type_ids"]
            assert batch["sentence_order_label"][i] == f["sentence_order_label"]
    assert padded_rows > 0


def test_determinism_epochs_and_resume(tiny_tokenizer, features):
    batch = features[:16]
    a = NgramMaskingCollator(tiny_tokenizer, seed=5)(batch)
    b = NgramMaskingCollator(tiny_tokenizer, seed=5)(list(reversed(batch)))
    assert torch.equal(a["labels"], b["labels"].flip(0))  # per-example, independent of batch order
    assert not torch.equal(a["labels"], NgramMaskingCollator(tiny_tokenizer, seed=6)(batch)["labels"])
    next_epoch = NgramMaskingCollator(tiny_tokenizer, seed=5)
    next_epoch.set_epoch(1)
    assert not torch.equal(a["labels"], next_epoch(batch)["labels"])

    # Without example_id the key is the batch counter, restored by load_state_dict.
    plain = [{k: v for k, v in f.items() if k != "example_id"} for f in batch]
    first = NgramMaskingCollator(tiny_tokenizer, seed=5)
    first(plain)
    state = first.state_dict()
    expected = first(plain)
    resumed = NgramMaskingCollator(tiny_tokenizer, seed=5)
    resumed.load_state_dict(state)
    assert torch.equal(resumed(plain)["input_ids"], expected["input_ids"])


def test_bad_input(tiny_tokenizer):
    no_mask = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel({"<pad>": 0, "<unk>": 1, "a": 2}, unk_token="<unk>")),
        pad_token="<pad>", unk_token="<unk>",
    )
    with pytest.raises(ValueError, match=r"no mask token \(\[MASK\]\)"):
        NgramMaskingCollator(no_mask)
    with pytest.raises(ValueError, match="mode='span' is not allowed"):
        NgramMaskingCollator(tiny_tokenizer, mode="span")
    with pytest.raises(ValueError, match="mlm_probability=1.5"):
        NgramMaskingCollator(tiny_tokenizer, mlm_probability=1.5)
    collator = NgramMaskingCollator(tiny_tokenizer)
    with pytest.raises(ValueError, match="token id out of range"):
        collator([{"input_ids": [2, 5, 99999, 3]}])
    with pytest.raises(ValueError, match="empty list"):
        collator([])


def test_batches_train_albert_recipes_for_pretraining(tiny_tokenizer, features):
    from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining

    torch.manual_seed(0)
    model = AlbertRecipesForPreTraining(AlbertRecipesConfig.from_preset("tiny", vocab_size=len(tiny_tokenizer)))
    batch = NgramMaskingCollator(tiny_tokenizer, seed=0)(features[:4])
    out = model(**batch)
    assert out.prediction_logits.shape == (*batch["input_ids"].shape, len(tiny_tokenizer))
    assert out.sop_logits.shape == (4, 2)
    assert torch.isfinite(out.loss) and out.loss > 0
    out.loss.backward()
