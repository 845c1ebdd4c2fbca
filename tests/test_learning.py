"""Learning checks: the `debug` pretraining config beats the trivial baseline on its own held-out set.

Not a range check: the unigram baseline (always predict the training data's most frequent masked token, scored on
the same held-out masks) is what a model that learned nothing from context reaches; the run must beat it.
"""

import importlib.util
import json
import sys
from pathlib import Path

from accelerate.state import AcceleratorState, GradientState

from albert_recipes.cli import build_config

ROOT = Path(__file__).resolve().parents[1]
DEBUG_YAML = ROOT / "recipes" / "configs" / "pretrain" / "debug.yaml"


def _recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe_learning", ROOT / "recipes" / "pretrain.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the config dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_debug_pretraining_beats_the_unigram_baseline_on_held_out_text(tmp_path):
    recipe = _recipe()
    cfg = build_config(recipe.PretrainConfig, DEBUG_YAML,
                       [f"output_dir={tmp_path / 'debug'}", "train.report_to=none", "train.save_every=0"])
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        metrics = recipe.main(cfg)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    baseline = metrics["baselines"]["mlm_unigram_accuracy"]
    accuracy = metrics["eval/mlm_accuracy"]
    # held-out masked tokens: enough that a point or two is not noise
    assert metrics["eval/sop_examples"] >= 500
    assert accuracy > baseline + 0.02, (accuracy, baseline)
    assert metrics["eval/mlm_loss"] < min(h["eval/mlm_loss"] for h in metrics["history"] if "eval/mlm_loss" in h) + 1e-6
    saved = json.loads((tmp_path / "debug" / "metrics.json").read_text())
    assert saved["baselines"]["mlm_unigram_accuracy"] == baseline
