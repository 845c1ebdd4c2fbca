"""The seq2seq recipe end to end: it learns the debug copy task, its outputs reload and generate what was scored;
files and warm starts work; bad input is one clear line."""

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from transformers import AutoTokenizer, EncoderDecoderModel

from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining, seq2seq
from albert_recipes.cli import build_config
from albert_recipes.errors import InputError
from recipe_runner import ROOT, load_recipe, run_cli

DEBUG = ROOT / "recipes" / "configs" / "finetune_seq2seq" / "debug.yaml"
recipe = load_recipe("finetune_seq2seq")


@pytest.fixture(autouse=True)
def _isolate_runs():
    threads = torch.get_num_threads()  # the debug config sets 1 thread; keep other tests' setting
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    torch.set_num_threads(threads)


def _run(tmp_path: Path, *overrides: str, name: str = "out") -> dict:
    cfg = build_config(recipe.FinetuneSeq2SeqConfig, DEBUG, [f"output_dir={tmp_path / name}", "train.report_to=none",
                                                               *overrides])
    return recipe.main(cfg)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_debug_recipe_learns_to_copy_and_exports_a_model_that_generates_it(tmp_path):
    result = _run(tmp_path)
    out = tmp_path / "out"
    scores = json.loads((out / "metrics.json").read_text())["scores"]["validation"]
    model_exact = scores["model"]["exact_match"]
    baselines = scores["baselines"]
    # learned: from a chance-level loss (ln 64 ~ 4.2 over the letters) to (nearly) every string, far above the
    # trivial answers
    losses = [h["train/loss"] for h in result["history"] if "train/loss" in h]
    assert losses[0] > 1.5 and losses[-1] < 0.2, losses
    assert model_exact >= 0.95, scores
    assert model_exact > baselines["first_4_words"]["exact_match"] + 0.2
    assert model_exact > baselines["most_frequent_target"]["exact_match"] + 0.5
    assert scores["model"]["rougeL"] > baselines["first_4_words"]["rougeL"]
    rows = _rows(out / "predictions.jsonl")
    assert len(rows) == scores["examples"] and {"source", "reference", "prediction"} <= set(rows[0])
    assert (out / "curves.png").stat().st_size > 0 and (out / "model" / "recipe_config.yaml").is_file()

    # the export: encoder and decoder tied again on load; generate() defaults to the scored beam search
    folder = out / "model"
    model = seq2seq.load_encoder_decoder(folder).eval()
    assert model.decoder.albert.embeddings.word_embeddings.weight is model.encoder.embeddings.word_embeddings.weight
    assert model.generation_config.num_beams == 2
    plain = EncoderDecoderModel.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sources = [row["source"] for row in rows[:4]]
    for loaded in (model, plain):
        texts = seq2seq.generate_texts(loaded, tokenizer, sources, max_source_length=16)
        assert texts == [row["prediction"] for row in rows[:4]]


def test_files_with_custom_columns_and_a_warm_start(tmp_path, tiny_tokenizer):
    # a pretrained folder (weights + tokenizer), as recipes/pretrain.py exports it
    config = AlbertRecipesConfig(vocab_size=len(tiny_tokenizer), embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    pretrained = AlbertRecipesForPreTraining(config)
    pretrained.save_pretrained(tmp_path / "pretrained")
    tiny_tokenizer.save_pretrained(tmp_path / "pretrained")
    pairs = [{"text": f"the value {i} is stored", "summary": f"value {i}"} for i in range(40)]
    train = tmp_path / "train.tsv"
    train.write_text("text\tsummary\n" + "".join(f"{p['text']}\t{p['summary']}\n" for p in pairs), encoding="utf-8")
    valid = tmp_path / "valid.jsonl"
    valid.write_text("".join(json.dumps(p) + "\n" for p in pairs[:8]), encoding="utf-8")
    result = _run(tmp_path, "model.preset=", f"model.name_or_path={tmp_path / 'pretrained'}",
                  "model.tie_encoder_decoder=false", "data.synthetic_task=", f"data.train_file={train}",
                  f"data.validation_file={valid}", f"data.test_file={valid}", "data.source_column=text",
                  "data.target_column=summary", "data.max_source_length=24", "data.max_target_length=8",
                  "train.max_steps=2", "train.batch_size=8", "generation.num_beams=1")
    assert result["model"]["warm_start"] == str(tmp_path / "pretrained")
    assert set(result["scores"]) == {"validation", "test"}
    assert {row["split"] for row in _rows(tmp_path / "out" / "predictions.jsonl")} == {"validation", "test"}
    model = EncoderDecoderModel.from_pretrained(tmp_path / "out" / "model")
    assert model.decoder.config.add_cross_attention and not model.encoder.config.is_decoder


def test_bad_input_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"document": "text", "summary": "t"}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match="no column 'source'.*data.source_column"):
        _run(tmp_path, "data.synthetic_task=", f"data.train_file={bad}", f"data.validation_file={bad}", name="a")
    with pytest.raises(InputError, match=r"data.max_source_length=40 exceeds the encoder's max_position_embeddings=32"):
        _run(tmp_path, "data.max_source_length=40", name="b")
    with pytest.raises(InputError, match="pretrained model folder not found: .*missing"):
        _run(tmp_path, "model.preset=", f"model.name_or_path={tmp_path / 'missing'}", name="c")
    (tmp_path / "used" / "model").mkdir(parents=True)
    with pytest.raises(InputError, match="already holds a run"):
        _run(tmp_path, name="used")
    # the command line: exit status 2 and one line naming the bad setting and the allowed values
    (done,) = run_cli("finetune_seq2seq", [{"argv": ["--config", str(DEBUG), "data.synthetic_task=sort",
                                                     f"output_dir={tmp_path / 'cli'}"]}])
    assert done["code"] == 2
    assert "data.synthetic_task: 'sort' is not allowed; choose one of ['', 'copy', 'reverse']" in done["stderr"]
    assert "Traceback" not in done["stderr"] and not (tmp_path / "cli").exists()
