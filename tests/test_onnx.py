"""ONNX export: matches PyTorch (fp32), keeps predictions on real sentences (int8), clear errors, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import albert_recipes
from albert_recipes.errors import InputError
from albert_recipes.onnx_export import OnnxModel, export_model
from conftest import TINY_ONNX

ROOT = Path(__file__).resolve().parents[1]
SST2_DEV = ROOT / ".." / "shared" / "data" / "sst2" / "dev.tsv"


def _sst2_sentences(count: int) -> list[str]:
    lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1 : count + 1]
    return [line.split("\t")[0] for line in lines]


def _save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _torch_logits(folder: Path, sentences: list[str]) -> tuple[np.ndarray, dict]:
    from transformers import AutoTokenizer

    model = albert_recipes.AlbertRecipesForSequenceClassification.from_pretrained(folder).eval()
    enc = AutoTokenizer.from_pretrained(folder)(sentences, padding=True, truncation=True, max_length=64,
                                                return_tensors="np")
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy()
    return logits, dict(enc)


def test_fp32_export_matches_pytorch_on_real_sentences(onnx_exports):
    merged_lora_classifier, fp32, _ = onnx_exports
    files = sorted(p.name for p in fp32.iterdir())
    assert {"model.onnx", "config.json", "tokenizer.json", "onnx_export.json"} <= set(files)
    report = json.loads((fp32 / "onnx_export.json").read_text())
    assert report["verification"]["fp32"]["max_abs_diff"]["logits"] <= 1e-4 and not report["optimize"]
    expected, enc = _torch_logits(merged_lora_classifier, _sst2_sentences(48))
    got = OnnxModel(fp32)(**enc)["logits"]  # a batch shape the export never saw (dynamic axes)
    assert got.shape == expected.shape == (48, 2)
    assert np.abs(got - expected).max() <= 1e-4


def test_int8_export_is_small_and_keeps_predictions_on_real_sentences(onnx_exports):
    merged_lora_classifier, _, int8 = onnx_exports
    report = json.loads((int8 / "onnx_export.json").read_text())
    assert report["quantize"] == "int8" and report["verification"]["fp32_fused"]["max_abs_diff"]["logits"] <= 1e-4
    assert report["fused_operators"].get("SkipLayerNormalization", 0) >= 2
    # weights and the embedding table are int8: far below the fp32 file (a tiny model keeps more fp32 overhead)
    assert report["int8_size_bytes"] < 0.45 * report["fp32_size_bytes"]
    expected, enc = _torch_logits(merged_lora_classifier, _sst2_sentences(96))
    got = OnnxModel(int8)(**enc)["logits"]
    agreement = float((got.argmax(-1) == expected.argmax(-1)).mean())
    assert agreement >= 0.95, agreement
    assert np.abs(got - expected).max() > 0  # really quantized, not the fp32 graph under another name


@pytest.mark.parametrize("head", ["AlbertRecipesForQuestionAnswering", "AlbertRecipesForMultipleChoice"])
def test_other_heads_export_with_their_outputs_and_shapes(head, tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    config = albert_recipes.AlbertRecipesConfig.from_preset("tiny", vocab_size=len(tiny_tokenizer), **TINY_ONNX)
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


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path, onnx_exports):
    merged_lora_classifier = onnx_exports[0]
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


def test_cli_gives_one_line_and_exit_2(tmp_path, capsys):
    from albert_recipes.cli import parse_recipe_args

    sys.path.insert(0, str(ROOT / "recipes"))
    from export_onnx import ExportOnnxConfig, _flags_to_overrides

    argv = _flags_to_overrides(["--model", str(tmp_path), "--output", str(tmp_path / "o"), "--quantize", "int4"])
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(ExportOnnxConfig, argv)
    assert exit_info.value.code == 2
    assert "quantize: 'int4' is not allowed; choose one of ['none', 'int8']" in capsys.readouterr().err
    script = str(ROOT / "recipes" / "export_onnx.py")
    run = subprocess.run([sys.executable, script, "--model", str(tmp_path), "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [f"error: {tmp_path} is not a model folder: "
                                                                        "it has no config.json"]
    assert not (tmp_path / "o").exists()


def test_predict_recipe_on_onnx_and_length_grouped_gives_the_padded_pytorch_predictions(onnx_exports, tmp_path):
    from albert_recipes.cli import build_config
    from recipe_runner import load_recipe

    recipe = load_recipe("predict")
    model, fp32, int8 = onnx_exports
    data = tmp_path / "dev.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{i % 2}\n" for i, s in enumerate(_sst2_sentences(40))),
                    encoding="utf-8")  # fmt: skip

    def predictions(name: str, *overrides: str) -> list[dict]:
        cfg = build_config(recipe.PredictConfig, None, [f"output_dir={tmp_path / name}", f"model.path={model}",
                                                        f"data.file={data}", "run.batch_size=8", *overrides])
        threads = torch.get_num_threads()
        try:
            recipe.main(cfg)
        finally:
            torch.set_num_threads(threads)
        return [json.loads(line) for line in (tmp_path / name / "predictions.jsonl").read_text().splitlines()]

    padded = predictions("padded", "run.length_grouped=false")
    grouped = predictions("grouped")  # length-grouped is the default
    on_onnx = predictions("onnx", "model.backend=onnx", f"model.onnx_path={fp32}")
    on_int8 = predictions("int8", "model.backend=onnx", f"model.onnx_path={int8}")
    assert [r["prediction"] for r in grouped] == [r["prediction"] for r in padded] == [r["prediction"] for r in on_onnx]
    for rows in (grouped, on_onnx):
        np.testing.assert_allclose([r["score"] for r in rows], [r["score"] for r in padded], rtol=0, atol=1e-5)
    agree = np.mean([a["prediction"] == b["prediction"] for a, b in zip(on_int8, padded)])
    assert agree >= 0.95 and [r["text"] for r in on_int8] == [r["text"] for r in padded]
