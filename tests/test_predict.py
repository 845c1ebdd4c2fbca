"""recipes/predict.py: predictions equal the model's own outputs for model, adapter, regression and token folders;
metrics and baselines from the fine-tuning metric functions; bad input answered in one line with nothing written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from albert_recipes import (
    AlbertRecipesConfig, AlbertRecipesForPreTraining, AlbertRecipesForSequenceClassification,
    AlbertRecipesForTokenClassification, inference, metrics,
)  # fmt: skip
from albert_recipes.cli import build_config

from recipe_runner import load_recipe, run_cli

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["a gripping and moving story", "the plot was dull", "it is a film", "wonderful acting, awful script",
         "nothing happens for two hours", "the best film of the year", "quite charming"]  # fmt: skip
GOLD = ["positive", "negative", "neutral", "neutral", "negative", "positive", "positive"]


recipe = load_recipe("predict")


def tiny_config(tokenizer, **overrides) -> AlbertRecipesConfig:
    sizes = dict(embedding_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                 max_position_embeddings=64, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                 initializer_range=0.5)  # outputs that differ from text to text
    return AlbertRecipesConfig.from_preset("tiny", **{**sizes, **overrides})


def _spread_head(model, tokenizer) -> None:
    """A random model predicts one class for everything; centre its head on TEXTS so that predictions differ."""
    with torch.no_grad():
        model.classifier.bias.zero_()
        logits = model.eval()(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
        mask = torch.ones(logits.shape[:-1], dtype=torch.bool)
        if logits.dim() == 3:  # token classification: centre over real tokens
            mask = tokenizer(TEXTS, padding=True, return_tensors="pt")["attention_mask"].bool()
        model.classifier.bias.sub_(logits[mask].mean(0))


def _predict(tmp_path: Path, *overrides: str) -> tuple[dict, Path]:
    out = tmp_path / "out"
    cfg = build_config(recipe.PredictConfig, None, [f"output_dir={out}", *overrides])
    threads = torch.get_num_threads()
    try:
        return recipe.main(cfg), out
    finally:
        torch.set_num_threads(threads)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A full fine-tune's model/ folder: 3 named classes."""
    folder = tmp_path_factory.mktemp("ft") / "model"
    torch.manual_seed(0)
    config = tiny_config(tiny_tokenizer, num_labels=3, id2label=dict(enumerate(LABELS)),
                         label2id={n: i for i, n in enumerate(LABELS)})
    model = AlbertRecipesForSequenceClassification(config)
    _spread_head(model, tiny_tokenizer)
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def _reference(folder: Path, texts, pairs=None, model=None) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = model or AutoModelForSequenceClassification.from_pretrained(folder)
    batch = AutoTokenizer.from_pretrained(folder)(texts, pairs, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


def test_model_folder_with_labels_predictions_metrics_and_both_formats(tmp_path, model_dir):
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{t}\t{g}\n" for t, g in zip(TEXTS, GOLD)), encoding="utf-8")
    result, out = _predict(tmp_path, f"model.path={model_dir}", f"data.file={data}", "output.formats=[jsonl,csv]",
                           "run.batch_size=3")
    probabilities = _reference(model_dir, TEXTS).softmax(-1)
    expected = probabilities.argmax(-1).tolist()
    assert len(set(expected)) > 1, "the fixture model should not predict one class for everything"

    rows = _jsonl(out / "predictions.jsonl")
    assert [r["text"] for r in rows] == TEXTS and [r["label"] for r in rows] == GOLD
    assert [r["prediction"] for r in rows] == [LABELS[i] for i in expected]
    got = torch.tensor([[r["probabilities"][name] for name in LABELS] for r in rows])
    torch.testing.assert_close(got, probabilities, rtol=0, atol=2e-6)
    assert [r["score"] for r in rows] == [r["probabilities"][r["prediction"]] for r in rows]
    with open(out / "predictions.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [row["prediction"] for row in table] == [r["prediction"] for r in rows]
    assert [float(row["p_neutral"]) for row in table] == [r["probabilities"]["neutral"] for r in rows]

    gold_ids = [LABELS.index(g) for g in GOLD]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"] == metrics.classification_metrics(expected, gold_ids, 3) == result["metrics"]
    # majority class of the file: positive (3 of 7)
    assert saved["baselines"]["majority_class_accuracy"] == pytest.approx(3 / 7)
    assert saved["examples"] == 7 and saved["label_names"] == LABELS
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "predict_config.yaml").is_file()


def test_batching_does_not_change_the_logits(model_dir):
    classifier = inference.load_classifier(model_dir)
    features = inference.encode(classifier, TEXTS)
    backend = inference.TorchBackend(classifier, device="cpu")
    one, many = inference.run(backend, features, 1), inference.run(backend, features, 4)
    np.testing.assert_allclose(np.stack(one), np.stack(many), rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.stack(many), _reference(model_dir, TEXTS).numpy(), rtol=0, atol=1e-5)


def test_adapter_on_an_unlabelled_base_keeps_its_label_names(tmp_path, tiny_tokenizer):
    """PEFT's AutoPeftModel reads the labels from the base's config; a pretrained base has none and a 2-class
    default that would not even fit this 3-class head. The run's label names must come through."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    base_dir = tmp_path / "pretrained"
    AlbertRecipesForPreTraining(tiny_config(tiny_tokenizer)).save_pretrained(base_dir)  # as pretraining exports
    model = AlbertRecipesForSequenceClassification.from_pretrained(base_dir, num_labels=3)
    _spread_head(model, tiny_tokenizer)
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=4, target_modules=["query"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    adapter = tmp_path / "run" / "adapter"
    model.save_pretrained(adapter)
    tiny_tokenizer.save_pretrained(adapter)
    (adapter / "metrics.json").write_text(json.dumps({"task": "sequence_classification", "label_names": LABELS}))
    text_file = tmp_path / "texts.txt"
    text_file.write_text("\n".join(TEXTS[:4]) + "\n\n", encoding="utf-8")  # a trailing blank line is no text

    _, out = _predict(tmp_path, f"model.path={adapter}", f"data.file={text_file}")
    expected = _reference(adapter, TEXTS[:4], model=model).softmax(-1)
    rows = _jsonl(out / "predictions.jsonl")
    assert [r["prediction"] for r in rows] == [LABELS[i] for i in expected.argmax(-1).tolist()]
    torch.testing.assert_close(torch.tensor([[r["probabilities"][n] for n in LABELS] for r in rows]), expected,
                               rtol=0, atol=1e-5)
    assert "label" not in rows[0] and not (out / "metrics.json").exists()  # no labels, no metrics


def test_regression_with_sentence_pairs_from_jsonl(tmp_path, tiny_tokenizer):
    folder = tmp_path / "reg"
    torch.manual_seed(2)
    AlbertRecipesForSequenceClassification(tiny_config(tiny_tokenizer, num_labels=1, problem_type="regression")
                                           ).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    records = [{"first": a, "second": b, "score": float(i)} for i, (a, b) in enumerate(zip(TEXTS, TEXTS[::-1]))]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result, out = _predict(tmp_path, f"model.path={folder}", f"data.file={data}", "data.text_column=first",
                           "data.text_pair_column=second", "data.label_column=score")
    expected = _reference(folder, TEXTS, TEXTS[::-1])[:, 0]
    rows = _jsonl(out / "predictions.jsonl")
    assert [r["text_pair"] for r in rows] == TEXTS[::-1]
    np.testing.assert_allclose([r["prediction"] for r in rows], expected.numpy(), rtol=0, atol=1e-5)
    gold = [r["score"] for r in records]
    assert result["metrics"] == pytest.approx(metrics.regression_metrics([r["prediction"] for r in rows], gold))
    assert result["baselines"]["mean_prediction_mse"] == pytest.approx(4.0)  # variance of 0..6
    assert not (out / "confusion_matrix.png").exists()


def test_token_classification_tags_per_word(tmp_path, tiny_tokenizer):
    from transformers import AutoTokenizer

    tags = ["O", "B-PER", "I-PER", "B-LOC"]
    folder = tmp_path / "ner"
    torch.manual_seed(3)
    model = AlbertRecipesForTokenClassification(tiny_config(tiny_tokenizer, num_labels=4,
                                                            id2label=dict(enumerate(tags)),
                                                            label2id={t: i for i, t in enumerate(tags)}))
    _spread_head(model, tiny_tokenizer)
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    sentences = [["anna", "novak", "moved", "to", "lagos"], ["oslo", "welcomed", "boris", "yesterday"]]
    gold = [["B-PER", "I-PER", "O", "O", "B-LOC"], ["B-LOC", "O", "B-PER", "O"]]
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps({"tokens": s, "tags": g}) + "\n" for s, g in zip(sentences, gold)))
    result, out = _predict(tmp_path, f"model.path={folder}", f"data.file={data}")

    tokenizer = AutoTokenizer.from_pretrained(folder)
    expected = []
    for words in sentences:  # the tag at each word's first sub-token
        encoded = tokenizer(words, is_split_into_words=True, return_tensors="pt")
        with torch.no_grad():
            best = model.eval()(**encoded).logits[0].argmax(-1).tolist()
        word_ids, firsts = encoded.word_ids(0), []
        for position, word in enumerate(word_ids):
            if word is not None and word not in [word_ids[p] for p in firsts]:
                firsts.append(position)
        expected.append([tags[best[p]] for p in firsts])
    rows = _jsonl(out / "predictions.jsonl")
    assert [r["predicted_tags"] for r in rows] == expected
    assert [r["tags"] for r in rows] == gold and [r["tokens"] for r in rows] == sentences
    assert result["metrics"] == metrics.entity_metrics(expected, gold)
    assert result["baselines"]["majority_tag_accuracy"] == pytest.approx(4 / 9)  # "O" is 4 of 9 tags


def test_cli_bad_input_one_line_and_nothing_written(tmp_path, model_dir):
    files = {
        "empty.txt": b"",
        "latin1.tsv": "sentence\tlabel\ngood\tpositive\nna\xefve\tneutral\n".encode("latin-1"),
        "nolabel.csv": b"text\nfine\n",
        "unknown.tsv": b"sentence\tlabel\ngood\tpositive\n\nbad\tterrible\n",
        "ok.txt": b"fine\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep me")
    adapter = tmp_path / "orphan"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS",
                                                             "base_model_name_or_path": str(tmp_path / "gone")}))
    model, out = f"model.path={model_dir}", f"output_dir={tmp_path / 'out'}"
    cases = [  # argv, expected message
        ([model, out, f"data.file={tmp_path / 'empty.txt'}"], "empty.txt is empty"),
        ([model, out, f"data.file={tmp_path / 'latin1.tsv'}"], "latin1.tsv, line 3: byte 0xef at column 3 is not "
         "valid UTF-8"),
        ([model, out, f"data.file={tmp_path / 'nolabel.csv'}", "data.label_column=gold"],
         "no label column 'gold'; the columns are ['text']"),
        ([model, out, f"data.file={tmp_path / 'unknown.tsv'}"], "unknown.tsv, line 4: label 'terrible' is outside "
         "num_labels=3; allowed are the names ['negative', 'neutral', 'positive']"),
        ([f"model.path={tmp_path}", out, f"data.file={tmp_path / 'ok.txt'}"],
         "is neither a model folder (config.json) nor a LoRA adapter folder"),
        ([f"model.path={adapter}", out, f"data.file={tmp_path / 'ok.txt'}"], f"the adapter's base model "
         f"{tmp_path / 'gone'}"),
        ([model, out, f"data.file={tmp_path}"], "is a directory, not a data file"),
        ([model, f"output_dir={used}", f"data.file={tmp_path / 'ok.txt'}"], f"output_dir {used} already exists"),
    ]
    for (argv, message), result in zip(cases, run_cli("predict", [{"argv": argv} for argv, _ in cases])):
        lines = [line for line in result["stderr"].splitlines() if line.startswith("error:")]
        assert result["code"] == 2 and len(lines) == 1 and message in lines[0], (argv, result["stderr"][-2000:])
        assert "Traceback" not in result["stderr"]
    assert not (tmp_path / "out").exists()
    assert [p.name for p in used.iterdir()] == ["mine.txt"]
