"""ONNX export: matches PyTorch (fp32), keeps predictions on real sentences (int8), clear errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import get_peft_model

import albert_recipes
from albert_recipes.errors import InputError
from albert_recipes.lora import lora_config
from albert_recipes.onnx_export import OnnxModel, export_model

ROOT = Path(__file__).resolve().parents[1]
SST2_DEV = ROOT / ".." / "shared" / "data" / "sst2" / "dev.tsv"
TINY = {"embedding_size": 32, "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
        "num_hidden_layers": 3}


def _sst2_sentences(count: int) -> list[str]:
    lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1 : count + 1]
    return [line.split("\t")[0] for line in lines]


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def merged_lora_classifier(tmp_path_factory, tiny_tokenizer):
    """A tiny classifier with a random LoRA adapter merged in (what the fine-tuning recipe's merged/ holds)."""
    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset("tiny", vocab_size=len(tiny_tokenizer), num_labels=2, **TINY)
    model = get_peft_model(albert_recipes.AlbertRecipesForSequenceClassification(config), lora_config("SEQ_CLS", r=4))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); make the merge change the weights
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    merged = model.merge_and_unload().eval()
    return _save(merged, tiny_tokenizer, tmp_path_factory.mktemp("merged") / "merged")


@pytest.fixture(scope="module")
def int8_export(merged_lora_classifier, tmp_path_factory):
    return export_model(merged_lora_classifier, tmp_path_factory.mktemp("onnx") / "int8", quantize="int8")


def _torch_logits(folder: Path, sentences: list[str]) -> tuple[np.ndarray, dict]:
    from transformers import AutoTokenizer

    model = albert_recipes.AlbertRecipesForSequenceClassification.from_pretrained(folder).eval()
    enc = AutoTokenizer.from_pretrained(folder)(sentences, padding=True, truncation=True, max_length=64,
                                                return_tensors="np")
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
    return logits, dict(enc)


def test_fp32_export_matches_pytorch_on_real_sentences(merged_lora_classifier, tmp_path):
    result = export_model(merged_lora_classifier, tmp_path / "fp32", optimize=False)
    files = sorted(p.name for p in (tmp_path / "fp32").iterdir())
    assert {"model.onnx", "config.json", "tokenizer.json", "onnx_export.json"} <= set(files)
    assert result.report["verification"]["fp32"]["max_abs_diff"]["logits"] <= 1e-4
    expected, enc = _torch_logits(merged_lora_classifier, _sst2_sentences(48))
    got = OnnxModel(tmp_path / "fp32")(**enc)["logits"]  # a batch shape the export never saw (dynamic axes)
    assert got.shape == expected.shape == (48, 2)
    assert np.abs(got - expected).max() <= 1e-4


def test_int8_export_is_small_and_keeps_predictions_on_real_sentences(int8_export, merged_lora_classifier):
    report = json.loads((int8_export.output_dir / "onnx_export.json").read_text())
    assert report["quantize"] == "int8" and report["verification"]["fp32_fused"]["max_abs_diff"]["logits"] <= 1e-4
    assert report["fused_operators"].get("SkipLayerNormalization", 0) >= 2
    # weights and the embedding table are int8: far below the fp32 file (a tiny model keeps more fp32 overhead)
    assert report["int8_size_bytes"] < 0.45 * report["fp32_size_bytes"]
    expected, enc = _torch_logits(merged_lora_classifier, _sst2_sentences(96))
    got = OnnxModel(int8_export.output_dir)(**enc)["logits"]
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert agreement >= 0.95, agreement
    assert np.abs(got - expected).max() > 0  # really quantized, not the fp32 graph under another name


@pytest.mark.parametrize("head", ["AlbertRecipesForQuestionAnswering", "AlbertRecipesForMultipleChoice"])
def test_other_heads_export_with_their_outputs_and_shapes(head, tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset("tiny", vocab_size=len(tiny_tokenizer), **TINY)
    folder = _save(getattr(albert_recipes, head)(config).eval(), tiny_tokenizer, tmp_path / "model")
    report = export_model(folder, tmp_path / "onnx", optimize=False).report
    expected = ["start_logits", "end_logits"] if head.endswith("Answering") else ["logits"]
    assert report["outputs"] == expected
    assert max(report["verification"]["fp32"]["max_abs_diff"].values()) <= 1e-4
    onnx = OnnxModel(tmp_path / "onnx")
    shape = (3, 4, 11) if head.endswith("Choice") else (3, 11)  # (B, choices, T) for multiple choice
    ids = np.random.default_rng(0).integers(5, len(tiny_tokenizer), shape)
    out = onnx(input_ids=ids, attention_mask=np.ones_like(ids))
    assert out[expected[0]].shape == ((3, 4) if head.endswith("Choice") else (3, 11))


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, merged_lora_classifier):
    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "readme.txt").write_text("hello")
    with pytest.raises(InputError, match="no config.json"):
        export_model(not_a_model, tmp_path / "out")
    with pytest.raises(InputError, match=r"quantize='int4' is not supported; choose one of \['none', 'int8'\]"):
        export_model(merged_lora_classifier, tmp_path / "out", quantize="int4")
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        export_model(merged_lora_classifier, used)
    assert not (tmp_path / "out").exists() and [p.name for p in used.iterdir()] == ["keep.txt"]


def test_cli_gives_one_line_and_exit_2(tmp_path):
    script = str(ROOT / "recipes" / "export_onnx.py")
    run = subprocess.run([sys.executable, script, "--model", str(tmp_path), "--output", str(tmp_path / "o"),
                          "--quantize", "int4"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2 and "quantize: 'int4' is not allowed; choose one of ['none', 'int8']" in run.stderr
    run = subprocess.run([sys.executable, script, "--model", str(tmp_path), "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [f"error: {tmp_path} is not a model folder: "
                                                                        "it has no config.json"]
    assert not (tmp_path / "o").exists()
