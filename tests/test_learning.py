"""Learning checks: the `debug` pretraining config learns from context on its own held-out set; the `debug_qa`
fine-tuning config finds answers (regression, token classification and classification: tests/test_finetune_lora.py).

Not a range check, and not the all-position accuracy: with the 80/10/10 rule a tenth of the predicted positions show
their own token, so a model that only copies them beats the unigram token there without using any context. At the
positions whose input is [MASK] only the context can help: the run must beat the unigram model there, in accuracy
(always answering the most frequent token) and in loss (the training data's unigram distribution), scored on the
same held-out masks.
"""

import json
import sys
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState, GradientState

from albert_recipes.cli import build_config
from recipe_runner import load_recipe

ROOT = Path(__file__).resolve().parents[1]
DEBUG_YAML = ROOT / "recipes" / "configs" / "pretrain" / "debug.yaml"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """accelerate's process-wide singletons, fresh for each recipe run in this process."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_debug_pretraining_beats_the_unigram_model_at_masked_held_out_positions(tmp_path):
    recipe = load_recipe("pretrain")
    overrides = [f"output_dir={tmp_path / 'debug'}", f"data.cache_dir={tmp_path / 'cache'}",
                 "train.report_to=none", "train.save_every=0"]  # a cache of its own, not the user's
    metrics = recipe.main(build_config(recipe.PretrainConfig, DEBUG_YAML, overrides))
    baselines = metrics["baselines"]
    assert metrics["eval/sop_examples"] >= 1000  # ~4,000 [MASK] positions: a point is ~2.5 standard errors
    # measured: 6.99% vs 5.74%, loss 5.918 vs 5.998 (at 64 tokens the same run sat on the unigram model)
    accuracy, baseline = metrics["eval/mlm_masked_accuracy"], baselines["mlm_masked_unigram_accuracy"]
    assert accuracy > baseline + 0.008, (accuracy, baseline)
    loss, unigram_loss = metrics["eval/mlm_masked_loss"], baselines["mlm_masked_unigram_loss"]
    assert loss < unigram_loss - 0.04, (loss, unigram_loss)
    assert metrics["eval/mlm_loss"] < min(h["eval/mlm_loss"] for h in metrics["history"] if "eval/mlm_loss" in h) + 1e-6
    samples = metrics["fill_mask_samples"]  # held-out sentences with a hidden word, and the export's guesses
    assert len(samples) == 8 and all(len(s["predictions"]) == 5 and "[MASK]" in s["text"] for s in samples)
    saved = json.loads((tmp_path / "debug" / "metrics.json").read_text())
    assert saved["baselines"] == baselines and saved["eval/mlm_masked_accuracy"] == accuracy

    # benchmarks/rescore_pretraining.py scores the export on the same held-out masks: the run's figures come back
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import rescore_pretraining

    rescored = rescore_pretraining.main(["--config", str(DEBUG_YAML), "--model", str(tmp_path / "debug" / "final"),
                                         "--output", str(tmp_path / "rescored.json"), *overrides])
    for key in ("eval/mlm_accuracy", "eval/mlm_masked_accuracy", "eval/mlm_masked_loss", "eval/sop_accuracy"):
        assert rescored[key] == pytest.approx(metrics[key], rel=1e-6), key
    mlm_baselines = {k: v for k, v in baselines.items() if k.startswith("mlm_") and k != "mlm_unigram_token"}
    assert rescored["baselines"].pop("mlm_unigram_token") == baselines["mlm_unigram_token"]
    assert rescored["baselines"] == pytest.approx(mlm_baselines)
    assert json.loads((tmp_path / "rescored.json").read_text())["eval/sop_examples"] == metrics["eval/sop_examples"]


def _qa_examples(count: int, seed: int) -> list[dict]:
    """SQuAD-style rows: a person's city stated once among filler sentences, asked for by name.

    One fact per context, so the answer is found by a lexical cue (the word after "lives in"), which a toy model
    learns in seconds; the words are few enough that the recipe's own tokenizer keeps each one whole."""
    import random

    rng = random.Random(seed)
    people = ["anna", "boris", "clara", "dmitri", "elena", "felix", "greta", "hugo", "irene", "jonas"]
    cities = ["paris", "rome", "oslo", "lima", "cairo", "delhi", "tokyo", "quito", "dakar", "hanoi"]
    filler = ["the weather was mild", "a train left early", "the market opened late", "some birds sang loudly",
              "the river looked calm", "a bell rang twice", "the shop sold bread", "the road was long"]
    rows = []
    for i in range(count):
        person, city = rng.choice(people), rng.choice(cities)
        sentences = rng.sample(filler, 3)
        fact = f"{person} lives in {city}"
        sentences.insert(rng.randrange(4), fact)
        context = ". ".join(sentences) + "."
        start = context.index(fact) + len(f"{person} lives in ")
        rows.append({"id": f"q{i}", "question": f"where does {person} live?", "context": context,
                     "answers": {"text": [city], "answer_start": [start]}})
    return rows


def test_debug_question_answering_learns_to_find_the_answer(tmp_path):
    """The debug_qa config as shipped (LoRA, its own tokenizer), on a task it can learn in a test's budget: the
    exported model's F1 is far above the trivial baseline's (the training set's most frequent answer: every question
    here has one) and its loss fell. Measured: F1 86 against 6 after 4 epochs."""
    recipe = load_recipe("finetune_lora")
    train = tmp_path / "train.jsonl"
    dev = tmp_path / "dev.jsonl"
    for path, rows in ((train, _qa_examples(512, seed=1)), (dev, _qa_examples(64, seed=2))):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes" / "configs" / "finetune_lora" / "debug_qa.yaml", [
        f"output_dir={tmp_path / 'out'}", "data.synthetic_examples=0", f"data.train_file={train}",
        f"data.validation_file={dev}", "train.report_to=none", "train.epochs=2"])
    recipe.main(cfg)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    losses = [h["train/loss"] for h in saved["history"] if "train/loss" in h]
    assert min(losses[-3:]) < losses[0] - 0.5, losses
    assert saved["eval"]["f1"] > saved["baselines"]["f1"] + 50, (saved["eval"], saved["baselines"])
