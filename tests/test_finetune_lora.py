"""End to end: the fine-tuning recipe's debug configs for every task type, outputs reloaded and checked; bad input."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.state import AcceleratorState, GradientState

from albert_recipes.cli import build_config
from albert_recipes.finetune_data import align_word_labels, read_data_file, synthetic_examples

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs" / "finetune_lora"
TINY_MODEL = ("model.config_overrides={embedding_size: 16, hidden_size: 32, num_attention_heads: 2, "
              "intermediate_size: 64, num_hidden_layers: 2}")


def _load_recipe():
    spec = importlib.util.spec_from_file_location("finetune_lora_recipe", ROOT / "recipes" / "finetune_lora.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()


@pytest.fixture(autouse=True)
def _isolate_runs():
    threads = torch.get_num_threads()  # the debug configs set 1 thread; keep other tests' setting
    AcceleratorState._reset_state(True)  # accelerate's process-wide singletons: fresh for every recipe run
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(threads)


def _config(variant: str, tmp_path: Path, tokenizer, *overrides: str):
    return build_config(recipe.FinetuneLoraConfig, CONFIGS / f"{variant}.yaml", [
        f"output_dir={tmp_path / 'out'}", f"model.tokenizer_path={tokenizer.name_or_path}", TINY_MODEL,
        "train.epochs=1", *overrides])


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _check_common_outputs(out: Path, cfg, folders: list[str]) -> dict:
    for folder in folders:
        assert (out / folder / "tokenizer_config.json").is_file()
        assert yaml.safe_load((out / folder / "recipe_config.yaml").read_text()) == recipe.config_to_dict(cfg)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["parameters"]["trainable"] < saved["parameters"]["total"] or cfg.finetune.mode == "full"
    assert len(saved["train"]["seconds_per_epoch"]) == cfg.train.epochs
    assert list((out / "logs").rglob("events.out.tfevents.*")), "no TensorBoard log written"
    return saved


def test_sequence_classification_lora_adapter_and_merged_model(tmp_path, tiny_tokenizer):
    from peft import AutoPeftModelForSequenceClassification
    from safetensors import safe_open
    from transformers import AutoModelForSequenceClassification

    cfg = _config("debug", tmp_path, tiny_tokenizer, "data.synthetic_examples=64")
    result = recipe.main(cfg)
    out = Path(cfg.output_dir)
    saved = _check_common_outputs(out, cfg, ["adapter", "merged", "base"])
    assert set(saved["eval"]) == {"accuracy", "f1", "matthews_correlation"}
    assert 0 <= saved["eval"]["accuracy"] <= 1 and saved["eval"] == result["eval"]
    assert (out / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"

    # the adapter folder reloads on its own (its random-init base was saved beside it) and reproduces the
    # predictions file; the merged model is a plain transformers model with the same outputs
    rows = _read_jsonl(out / "predictions.jsonl")
    assert len(rows) == saved["eval_examples"] == 16
    adapter = AutoPeftModelForSequenceClassification.from_pretrained(out / "adapter").eval()
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged").eval()
    batch = tiny_tokenizer([row["text"] for row in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        adapter_logits, merged_logits = adapter(**batch).logits, merged(**batch).logits
    torch.testing.assert_close(merged_logits, adapter_logits, rtol=1e-4, atol=1e-5)
    probabilities = torch.tensor([row["probabilities"] for row in rows])
    torch.testing.assert_close(adapter_logits.softmax(-1), probabilities, rtol=0, atol=1e-4)
    assert [row["prediction"] for row in rows] == [["0", "1"][i] for i in adapter_logits.argmax(-1).tolist()]
    # LoRA's B matrices start at zero: training must have moved them (gradients reach the adapter)
    with safe_open(out / "adapter" / "adapter_model.safetensors", framework="pt") as f:
        lora_b = [f.get_tensor(key) for key in f.keys() if "lora_B" in key]
    assert len(lora_b) == 7 and all(t.abs().sum() > 0 for t in lora_b)


def test_debug_config_lora_learns(tmp_path):
    """The debug config as shipped (tokenizer trained on the fly, random-init base): the adapter must learn the
    cue-word sentiment task well above the majority class (0.55 of the eval set)."""
    cfg = build_config(recipe.FinetuneLoraConfig, CONFIGS / "debug.yaml",
                       [f"output_dir={tmp_path / 'out'}", "finetune.save_merged=false"])
    history = recipe.main(cfg)["history"]
    assert len(history) == 4
    assert history[-1]["accuracy"] > 0.7 and history[-1]["matthews_correlation"] > 0.4, history


def test_sentence_pairs_regression_full_finetune_from_csv(tmp_path, tiny_tokenizer):
    from transformers import AutoConfig

    texts = [row["text"] for row in synthetic_examples("sequence_classification", 40, seed=3)]
    for split, count in (("train", 32), ("dev", 8)):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["first", "second", "score"])
            for i in range(count):
                writer.writerow([texts[i], texts[-i - 1], f"{(i % 5) * 1.25:.2f}"])
    cfg = _config("debug", tmp_path, tiny_tokenizer, "finetune.mode=full", "data.synthetic_examples=0",
                  f"data.train_file={tmp_path / 'train.csv'}", f"data.validation_file={tmp_path / 'dev.csv'}",
                  "data.text_column=first", "data.text_pair_column=second", "data.label_column=score",
                  "data.regression=true")
    recipe.main(cfg)
    out = Path(cfg.output_dir)
    saved = _check_common_outputs(out, cfg, ["model"])
    assert saved["parameters"]["trainable"] == saved["parameters"]["total"]
    assert set(saved["eval"]) == {"pearson", "spearmanr", "mse"}
    rows = _read_jsonl(out / "predictions.jsonl")
    assert rows[0]["text_pair"] == texts[-1] and rows[1]["label"] == 1.25
    assert not (out / "adapter").exists() and not (out / "confusion_matrix.png").exists()
    config = AutoConfig.from_pretrained(out / "model")
    assert config.num_labels == 1 and config.problem_type == "regression"


def test_token_classification_end_to_end_from_jsonl(tmp_path, tiny_tokenizer):
    train = _write_jsonl(tmp_path / "train.jsonl", synthetic_examples("token_classification", 48, seed=1))
    dev = _write_jsonl(tmp_path / "dev.jsonl", synthetic_examples("token_classification", 12, seed=2))
    cfg = _config("debug_ner", tmp_path, tiny_tokenizer, "data.synthetic_examples=0",
                  f"data.train_file={train}", f"data.validation_file={dev}")
    recipe.main(cfg)
    out = Path(cfg.output_dir)
    saved = _check_common_outputs(out, cfg, ["adapter"])
    assert saved["label_names"] == ["B-LOC", "B-PER", "I-PER", "O"]
    assert set(saved["eval"]) == {"precision", "recall", "f1", "accuracy"}
    rows = _read_jsonl(out / "predictions.jsonl")
    gold = [json.loads(line) for line in dev.read_text().splitlines()]
    assert [row["tags"] for row in rows] == [g["tags"] for g in gold]  # one prediction per word, in order
    assert all(len(row["predicted_tags"]) == len(row["tokens"]) for row in rows)
    assert (out / "confusion_matrix.png").is_file()


def test_align_word_labels_marks_first_subtoken_only():
    # [CLS] w0 w0 w1 w2 w2 w2 [SEP]
    assert align_word_labels([None, 0, 0, 1, 2, 2, 2, None], [3, 1, 2]) == [-100, 3, -100, 1, 2, -100, -100, -100]


def test_question_answering_end_to_end_with_unanswerable(tmp_path, tiny_tokenizer):
    from safetensors import safe_open

    train = tmp_path / "train.json"
    train.write_text(json.dumps({"data": synthetic_examples("question_answering", 32, seed=1)}), encoding="utf-8")
    dev = _write_jsonl(tmp_path / "dev.jsonl", synthetic_examples("question_answering", 8, seed=2))
    cfg = _config("debug_qa", tmp_path, tiny_tokenizer, "data.synthetic_examples=0", "data.max_length=32",
                  "data.doc_stride=8", f"data.train_file={train}", f"data.validation_file={dev}")
    recipe.main(cfg)
    out = Path(cfg.output_dir)
    saved = _check_common_outputs(out, cfg, ["adapter"])
    assert set(saved["eval"]) == {"exact_match", "f1"} and 0 <= saved["eval"]["f1"] <= 100
    rows = _read_jsonl(out / "predictions.jsonl")
    assert [row["id"] for row in rows] == [f"q{i}" for i in range(8)]
    contexts = {e["id"]: e["context"] for e in synthetic_examples("question_answering", 8, seed=2)}
    for row in rows:  # answers are context substrings (or "" for no answer) and n-best is ranked
        assert row["prediction_text"] in contexts[row["id"]]
        probabilities = [c["probability"] for c in row["nbest"]]
        assert probabilities == sorted(probabilities, reverse=True)
    with safe_open(out / "adapter" / "adapter_model.safetensors", framework="pt") as f:
        assert any("qa_outputs" in key for key in f.keys())  # the QA head is saved with the adapter


def test_two_process_accelerate_launch(tmp_path):
    """2 gloo workers: each trains on half the data per step; evaluation gathers every example exactly once."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "recipes" / "accelerate_configs" / "cpu_2proc.yaml"),
               str(ROOT / "recipes" / "finetune_lora.py"),
               "--config", str(CONFIGS / "debug_ner.yaml"), "data.synthetic_examples=64", "train.epochs=1",
               f"output_dir={tmp_path / 'out'}"]
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["train"]["steps"] == 2  # 64 examples / (2 processes x batch 16)
    rows = _read_jsonl(tmp_path / "out" / "predictions.jsonl")
    assert len(rows) == saved["eval_examples"] == 16
    expected = synthetic_examples("token_classification", 16, seed=43)
    assert [row["tags"] for row in rows] == [e["tags"] for e in expected]  # dataset order, no duplicates


# ---------------------------------------------------------------- bad input


def _run_bad(tmp_path, tokenizer, variant: str, train_text: str, suffix: str, *overrides: str):
    train = tmp_path / f"train{suffix}"
    train.write_text(train_text, encoding="utf-8")
    cfg = _config(variant, tmp_path, tokenizer, "data.synthetic_examples=0", f"data.train_file={train}",
                  f"data.validation_file={train}", *overrides)
    recipe.main(cfg)


@pytest.mark.parametrize(("text", "suffix", "overrides", "message"), [
    ("sentence\tlabel\ngood film\t1\n", ".tsv", ["data.label_column=polarity"],
     r"no column 'polarity' \(needed as the label column\); the columns are \['sentence', 'label'\]"),
    ("sentence\tlabel\ngood film\t1\nbad film\t5\n", ".tsv", ["data.num_labels=2"],
     r"train\.tsv, line 3: label 5 is outside num_labels=2"),
    ("sentence,label\ngood,positive\nbad,awful\n", ".csv", ["data.label_names=[negative,positive]"],
     r"label 'awful' is outside num_labels=2; allowed are the names \['negative', 'positive'\]"),
    ("", ".tsv", [], r"train\.tsv is empty"),
    ("sentence\tlabel\n", ".tsv", [], r"train\.tsv has no examples"),
    ("sentence\tlabel\ngood\t1\textra\n", ".tsv", [], r"train\.tsv, line 2: 3 fields but the header \['sentence', 'label'\] has 2"),
])
def test_bad_classification_data_fails_early(tmp_path, tiny_tokenizer, text, suffix, overrides, message):
    with pytest.raises(ValueError, match=message):
        _run_bad(tmp_path, tiny_tokenizer, "debug", text, suffix, *overrides)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_qa_answer_not_in_context_fails_early(tmp_path, tiny_tokenizer):
    row = {"id": "x1", "question": "where?", "context": "anna lives in oslo.",
           "answers": {"text": ["lima"], "answer_start": [14]}}
    with pytest.raises(ValueError, match=r"example 'x1': answer 'lima' is not in the context at answer_start=14"):
        _run_bad(tmp_path, tiny_tokenizer, "debug_qa", json.dumps(row) + "\n", ".jsonl")


def test_read_data_file_formats(tmp_path):
    (tmp_path / "a.tsv").write_text('sentence\tlabel\nsays "hi"\t1\n', encoding="utf-8")
    assert read_data_file(tmp_path / "a.tsv")[0] == {"sentence": 'says "hi"', "label": 1}  # TSV: quotes verbatim
    (tmp_path / "b.json").write_text('[{"text": "x", "label": 0}]', encoding="utf-8")
    assert read_data_file(tmp_path / "b.json")[0] == {"text": "x", "label": 0}
    (tmp_path / "c.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
        read_data_file(tmp_path / "c.txt")
    (tmp_path / "d.jsonl").write_text('{"a": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_data_file(tmp_path / "d.jsonl")
    with pytest.raises(ValueError, match="data file not found"):
        read_data_file(tmp_path / "missing.csv")


def test_cli_reports_bad_input_with_nonzero_exit(tmp_path):
    empty = tmp_path / "train.csv"
    empty.write_text("", encoding="utf-8")
    command = [sys.executable, str(ROOT / "recipes" / "finetune_lora.py"), "--config", str(CONFIGS / "debug.yaml"),
               "data.synthetic_examples=0", f"data.train_file={empty}", f"data.validation_file={empty}",
               f"output_dir={tmp_path / 'out'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert f"error: {empty} is empty" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()
