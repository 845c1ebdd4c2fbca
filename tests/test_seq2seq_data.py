"""Seq2seq data (WikiText heading pairs, synthetic copy/reverse, tokenization) and the offline ROUGE/BLEU metrics."""

import json
from pathlib import Path

import datasets
import evaluate
import pytest

from albert_recipes import seq2seq_data, seq2seq_metrics
from albert_recipes.errors import InputError

WIKITEXT = """ 
 = Alpha Article = 
 
 Alpha is a test article about the letter alpha , written for this test on purpose . 
 
 = = Early life = = 
 
 Alpha was born in 1 @,@ 900 in a small @-@ town village near the sea and grew up there quickly . 
 A second paragraph of the early life section that is never used as a source . 
 
 = = Career = = 
 
 = = = First steps = = = 
 
 Alpha first worked as a teacher for many years in the town where the family lived . 
 
 = = <unk> years = = 
 
 These were the unknown years of the life of alpha , about which little is known today . 
 
 = = Short = = 
 
 Too short . 
 
 = Beta Article = 
 
 Beta is another article with one section and a long enough paragraph below it . 
 
 = = Legacy = = 
 
 Beta left a legacy that many people still remember and talk about in the town . 
"""


@pytest.fixture
def wikitext_file(tmp_path):
    path = tmp_path / "wiki.txt"
    path.write_text(WIKITEXT, encoding="utf-8")
    return path


def test_wikitext_heading_pairs(wikitext_file):
    articles = seq2seq_data.read_wikitext_articles([wikitext_file])
    assert [title for title, _ in articles] == ["Alpha Article", "Beta Article"]
    pairs = seq2seq_data.wikitext_heading_pairs(articles, levels=(2, 3))
    # "Career" is followed by a deeper heading (empty section), "<unk> years" has an unknown word, "Short" is short
    assert [(p["target"], p["level"]) for p in pairs] == [("Early life", 2), ("First steps", 3), ("Legacy", 2)]
    assert pairs[0]["source"].startswith("Alpha was born in 1,900 in a small-town village")  # detokenized
    assert pairs[0]["article"] == "Alpha Article"
    assert [p["target"] for p in seq2seq_data.wikitext_heading_pairs(articles, levels=(2,))] == ["Early life", "Legacy"]


def test_build_wikitext_headings_splits_by_article(tmp_path):
    real = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "wikitext-2" / "valid.txt"
    stats = seq2seq_data.build_wikitext_headings([real], tmp_path / "headings", seed=0)
    splits = {name: [json.loads(line) for line in (tmp_path / "headings" / f"{name}.jsonl").open()]
              for name in ("train", "validation", "test")}
    assert {k: len(v) for k, v in splits.items()} == stats["pairs"]
    assert all(stats["pairs"][name] > 0 for name in splits)
    articles = {name: {row["article_key"] for row in rows} for name, rows in splits.items()}
    assert not articles["train"] & articles["validation"] and not articles["train"] & articles["test"]
    assert not any("<unk>" in row["target"] for rows in splits.values() for row in rows)
    # the pretraining corpus holds the training articles only: no held-out paragraph is in it
    corpus = (tmp_path / "headings" / "pretrain_corpus.txt").read_text(encoding="utf-8")
    held_out = splits["test"][0]["source"]
    assert seq2seq_data.detokenize_wikitext(corpus).find(held_out) == -1
    assert seq2seq_data.detokenize_wikitext(corpus).find(splits["train"][0]["source"]) >= 0
    # deterministic: the same seed gives the same files
    again = seq2seq_data.build_wikitext_headings([real], tmp_path / "again", seed=0)
    assert json.loads(json.dumps(again)) == json.loads(json.dumps(stats))
    assert (tmp_path / "again" / "test.jsonl").read_bytes() == (tmp_path / "headings" / "test.jsonl").read_bytes()


def test_build_wikitext_headings_bad_input(tmp_path, wikitext_file):
    with pytest.raises(InputError, match="not found"):
        seq2seq_data.build_wikitext_headings([tmp_path / "missing.txt"], tmp_path / "out")
    with pytest.raises(InputError, match="test_fraction=0.7"):
        seq2seq_data.build_wikitext_headings([wikitext_file], tmp_path / "out", test_fraction=0.7)
    plain = tmp_path / "plain.txt"
    plain.write_text("just text\nno titles\n", encoding="utf-8")
    with pytest.raises(InputError, match="no WikiText articles"):
        seq2seq_data.read_wikitext_articles([plain])
    assert not (tmp_path / "out").exists()


def test_synthetic_pairs():
    copy = seq2seq_data.synthetic_pairs("copy", 50, seed=1)
    reverse = seq2seq_data.synthetic_pairs("reverse", 50, seed=1)
    assert all(p["source"] == p["target"] for p in copy)
    assert [p["source"] for p in copy] == [p["source"] for p in reverse]
    assert all(p["target"].split() == p["source"].split()[::-1] for p in reverse)
    assert all(2 <= len(p["source"].split()) <= 6 for p in copy)
    assert seq2seq_data.synthetic_pairs("copy", 5, seed=2) != seq2seq_data.synthetic_pairs("copy", 5, seed=3)
    with pytest.raises(InputError, match="'sort'.*copy"):
        seq2seq_data.synthetic_pairs("sort", 5)


def test_tokenize_pairs(tiny_tokenizer):
    dataset = datasets.Dataset.from_list([{"source": "the cat sat on the mat today", "target": "a cat sat"},
                                          {"source": "short", "target": "one two three four five six seven"}])
    features = seq2seq_data.tokenize_pairs(dataset, tiny_tokenizer, max_source_length=6, max_target_length=4)
    start, end, pad = seq2seq_data.special_token_ids(tiny_tokenizer)
    assert (start, end, pad) == (tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id, tiny_tokenizer.pad_token_id)
    first = features[0]
    assert first["input_ids"][0] == start and first["input_ids"][-1] == end and len(first["input_ids"]) == 6
    assert first["labels"] == tiny_tokenizer("a cat sat", add_special_tokens=False)["input_ids"][:3] + [end]
    assert len(features[1]["labels"]) == 4 and features[1]["labels"][-1] == end  # truncated, end token kept
    with pytest.raises(InputError, match="max_target_length=1"):
        seq2seq_data.tokenize_pairs(dataset, tiny_tokenizer, 6, 1)


def test_first_words_baseline():
    assert seq2seq_data.first_words_baseline(["a b c d", "x"], 2) == ["a b", "x"]


def test_rouge_and_bleu_against_hand_values():
    predictions = ["the cat sat on the mat", "early life"]
    references = ["the cat sat on a mat", "early life and career"]
    scores = seq2seq_metrics.generation_metrics(predictions, references)
    # unigram overlap: 5 of 6 both ways -> F 5/6; "early life" vs 4 words: P 1, R 1/2 -> F 2/3
    assert scores["rouge1"] == pytest.approx((5 / 6 + 2 / 3) / 2)
    # bigrams: (the cat, cat sat, sat on) of 5 -> F 3/5; "early life" 1 of 1 vs 1 of 3 -> F 1/2
    assert scores["rouge2"] == pytest.approx((3 / 5 + 1 / 2) / 2)
    assert scores["exact_match"] == 0.0 and scores["prediction_words"] == 4.0
    perfect = seq2seq_metrics.generation_metrics(references, references)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["rougeL"] == pytest.approx(1.0) and perfect["exact_match"] == 1.0
    assert seq2seq_metrics.generation_metrics(["zebra"], ["cat"])["rouge1"] == 0.0


def test_metrics_are_evaluate_metrics_with_batches_and_multiple_references():
    rouge = seq2seq_metrics.Rouge(keep_in_memory=True)
    assert isinstance(rouge, evaluate.Metric)
    rouge.add_batch(predictions=["a b"], references=[["a b c", "x y"]])
    rouge.add_batch(predictions=["c"], references=[["d", "c"]])
    # best reference each: "a b" vs "a b c" -> F 0.8; "c" vs "c" -> 1
    assert rouge.compute()["rouge1"] == pytest.approx(0.9)
    bleu = seq2seq_metrics.SacreBleu(keep_in_memory=True)
    assert bleu.compute(predictions=["a b c d"], references=[["a b c d", "z"]])["bleu"] == pytest.approx(100.0)
    with pytest.raises(InputError, match="same number of references"):
        bleu.compute(predictions=["a", "b"], references=[["a"], ["b", "c"]])
    with pytest.raises(InputError, match="unknown rouge_types"):
        seq2seq_metrics.Rouge(keep_in_memory=True).compute(predictions=["a"], references=["a"], rouge_types=["rougeX"])
    with pytest.raises(ValueError):
        seq2seq_metrics.generation_metrics(["a"], ["a", "b"])
