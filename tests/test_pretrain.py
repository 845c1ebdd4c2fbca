"""The pretraining recipe end to end: learning, export, 1-vs-2-process equivalence, exact resume, bad input.

Budget: every run is a toy ALBERT (hidden 32) for a handful of steps; subprocesses are used only where a real
process boundary is the point (accelerate launch with 2 gloo processes, SIGKILL, the CLI's exit status).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from safetensors.torch import load_file

from albert_recipes.checkpointing import COMPLETE_MARKER, checkpoint_step, find_latest_checkpoint
from albert_recipes.cli import ConfigError, build_config, parse_recipe_args
from albert_recipes.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "pretrain.py"
DEBUG_YAML = ROOT / "recipes" / "configs" / "pretrain" / "debug.yaml"
CPU_2PROC = ROOT / "recipes" / "accelerate_configs" / "cpu_2proc.yaml"
TOY = [
    "model.embedding_size=16", "model.hidden_size=32", "model.num_attention_heads=2", "model.intermediate_size=64",
    "data.max_seq_length=32", "data.max_predictions_per_seq=5", "train.report_to=none", "train.log_every=1",
    "train.eval_every=0", "train.eval_max_examples=16", "train.batch_size=8", "train.warmup_steps=1",
]


def load_recipe():
    spec = importlib.util.spec_from_file_location("pretrain_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the config dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


recipe = load_recipe()


def run_main(cfg) -> dict:
    """`main(cfg)` in this process, with accelerate's process-wide singletons reset around it."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        return recipe.main(cfg)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


CACHE: dict[str, Path] = {}


@pytest.fixture(scope="module", autouse=True)
def data_cache(tmp_path_factory):
    """One data cache for this module's runs (as a user's runs share $HF_DATASETS_CACHE), not the user's own."""
    CACHE["dir"] = tmp_path_factory.mktemp("data-cache")


def run(overrides: list[str]) -> dict:
    return run_main(build_config(recipe.PretrainConfig, DEBUG_YAML, [f"data.cache_dir={CACHE['dir']}", *overrides]))


def run_subprocess(args: list[str], launcher: list[str] | None = None, timeout: int = 240):
    command = (launcher or [sys.executable]) + [str(RECIPE), "--config", str(DEBUG_YAML),
                                                f"data.cache_dir={CACHE['dir']}", *args]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "final" / "model.safetensors")


@pytest.fixture(scope="module")
def tokenizer_dir(tiny_tokenizer) -> str:
    return tiny_tokenizer.name_or_path


def test_debug_config_learns_checkpoints_and_exports(tmp_path):
    from transformers import AutoModel, AutoModelForPreTraining, AutoTokenizer

    out = tmp_path / "debug"
    metrics = run([f"output_dir={out}", "train.max_steps=24", "train.save_every=12", "train.eval_every=12",
                   "train.log_every=4", "train.eval_max_examples=32"])

    train_losses = [h["train/mlm_loss"] + h["train/sop_loss"] for h in metrics["history"] if "train/mlm_loss" in h]
    assert train_losses[-1] < train_losses[0] - 0.3, train_losses
    assert [h["step"] for h in metrics["history"] if "eval/mlm_loss" in h] == [12, 24]
    assert metrics["train/tokens_per_s"] > 0
    # SOP accuracy split by kind of pair: 32 held-out examples, each counted once, in exactly one part
    assert metrics["eval/sop_examples"] == 32
    assert metrics["eval/sop_same_document_examples"] + metrics["eval/sop_random_document_examples"] == 32
    assert metrics["eval/sop_random_document_examples"] > 0 and metrics["eval/sop_same_document_examples"] > 0
    baselines = metrics["baselines"]
    assert baselines["mlm_unigram_token"] == "▁the" and 0 < baselines["mlm_unigram_accuracy"] < 0.2
    assert baselines["sop_random_document_majority_accuracy"] == 1.0  # B from another document: always label 1
    assert set(baselines) == {"mlm_unigram_token", "mlm_unigram_accuracy", "sop_majority_accuracy",
                              "sop_same_document_majority_accuracy", "sop_random_document_majority_accuracy",
                              "mlm_context_free_accuracy", "mlm_masked_unigram_accuracy", "mlm_masked_unigram_loss"}
    # 80/10/10: a tenth of the predicted positions show their own token, so copying them beats the unigram token
    assert baselines["mlm_context_free_accuracy"] > baselines["mlm_unigram_accuracy"] + 0.05
    assert 0 <= metrics["eval/mlm_masked_accuracy"] <= 1

    checkpoint = find_latest_checkpoint(out / "checkpoints")
    assert checkpoint.name == "step-00000024" and checkpoint_step(checkpoint) == 24
    names = {p.name for p in checkpoint.iterdir()}
    expected = {COMPLETE_MARKER, "model.safetensors", "optimizer.bin", "random_states_0.pkl",
                "custom_checkpoint_0.pkl", "recipe_config.yaml", "trainer_state.json"}
    assert expected <= names, names
    assert "max_steps: 24" in (checkpoint / "recipe_config.yaml").read_text()
    assert list((out / "logs").rglob("events.out.tfevents*")), "no TensorBoard events"
    (hparams,) = (out / "logs").rglob("hparams.yml")  # the merged config, flattened, as the tracker received it
    assert "train.max_steps: 24" in hparams.read_text()

    final = out / "final"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "recipe_config.yaml", "metrics.json",
                 "curves.png", "modeling_albert_recipes.py", "configuration_albert_recipes.py"):
        assert (final / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary folders left behind"
    model = AutoModel.from_pretrained(final)
    assert type(model).__name__ == "AlbertRecipesModel"
    pretraining = AutoModelForPreTraining.from_pretrained(final)
    assert not pretraining.config.sparse_mlm_prediction  # trained sparse, exported with the paper's dense head
    trained = final_weights(out)
    for name, param in pretraining.state_dict().items():
        if name in trained:
            assert torch.equal(param, trained[name]), name
    tokenizer = AutoTokenizer.from_pretrained(final)
    with torch.no_grad():
        logits = pretraining(**tokenizer("The tuple is an immutable sequence.", return_tensors="pt")).prediction_logits
    assert logits.shape[-1] == len(tokenizer)


def test_two_processes_match_one_process_with_double_accumulation(tmp_path, tokenizer_dir):
    """Global batch 8 as 2 gloo processes (`accelerate launch` with the shipped cpu_2proc.yaml) x 1 micro-batch
    of 4, and as 1 process x 2 accumulated micro-batches of 4.

    `GlobalBatchSampler` gives both the same global batches (micro-batch j = accumulation_step * processes + rank),
    the masks come from (seed, epoch, example_id), and DDP's gradient mean equals accelerate's accumulation mean,
    so the parameters must agree up to float summation order. Dropout is off (the SOP head has 0.1 by default):
    each process draws its own masks."""
    common = TOY + [f"data.tokenizer={tokenizer_dir}", "train.max_steps=4", "train.save_every=0",
                    "model.classifier_dropout_prob=0.0"]  # dropout masks would differ: one RNG stream per process
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC)]
    two = run_subprocess(common + [f"output_dir={tmp_path / 'two'}"], launcher=launcher)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 processes x 1 accumulation x 4 sequences" in two.stdout
    run(common + [f"output_dir={tmp_path / 'one'}", "train.gradient_accumulation_steps=2"])

    one, two = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    assert one.keys() == two.keys()
    worst = max((one[k] - two[k]).abs().max().item() for k in one)
    assert worst < 1e-5, worst
    # and the runs did train: a different seed ends elsewhere by far more than the tolerance
    run(common + [f"output_dir={tmp_path / 'other'}", "train.seed=7"])
    other = final_weights(tmp_path / "other")
    assert max((one[k] - other[k]).abs().max().item() for k in one) > 1e-2


RESUME = TOY + ["train.max_steps=8", "train.save_every=3", "train.keep_last=2"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tokenizer_dir) -> tuple[dict[str, torch.Tensor], Path]:
    out = tmp_path_factory.mktemp("uninterrupted")
    run(RESUME + [f"data.tokenizer={tokenizer_dir}", f"output_dir={out}"])
    return final_weights(out), out


@pytest.mark.parametrize(
    "kill, exit_code, resumes_from",
    [("debug.kill_at_step=5", -9, 3), ("debug.kill_during_save_at_step=6", -9, 3), ("debug.signal_at_step=5", 2, 5)],
    ids=["at_step_boundary", "during_save", "sigterm"],
)
def test_interrupted_then_resume_is_exact(tmp_path, tokenizer_dir, uninterrupted, kill, exit_code, resumes_from):
    """`debug.kill_at_step=N` SIGKILLs the process right after optimizer step N; `debug.kill_during_save_at_step=N`
    inside the step-N checkpoint write, after accelerate's files but before the COMPLETE marker and the rename;
    `debug.signal_at_step=N` sends SIGTERM, which stops cleanly with a checkpoint and one line on how to continue."""
    out = tmp_path / "run"
    settings = RESUME + [f"data.tokenizer={tokenizer_dir}", f"output_dir={out}"]
    killed = run_subprocess(settings + [kill])
    assert killed.returncode == exit_code, killed.stderr[-3000:]
    if exit_code == 2:
        assert killed.stderr.strip().splitlines()[-1] == (
            f"error: stopped by SIGTERM after optimizer step 5; checkpoint saved in {out}/checkpoints/step-00000005. "
            "To continue, run the same command with train.resume=true")
        assert "Traceback" not in killed.stderr
    assert not (out / "final").exists()
    latest = find_latest_checkpoint(out / "checkpoints")
    assert checkpoint_step(latest) == resumes_from
    leftovers = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".step-00000006.tmp-")]
    assert len(leftovers) == (1 if "during_save" in kill else 0), leftovers

    metrics = run(settings + ["train.resume=true"])
    assert metrics["steps"] == 8
    resumed = final_weights(out)
    for name, expected in uninterrupted[0].items():
        assert torch.equal(resumed[name], expected), name
    assert [p.name for p in (out / "checkpoints").iterdir()] != [] and not [
        p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")
    ], "the killed write was not cleaned up"


def test_resume_refuses_changed_sizes_and_accepts_a_changed_log_cadence(tmp_path, tokenizer_dir, uninterrupted):
    """A resume that would change the batch or the model is refused before anything is read or written, naming
    each setting with its old and new value; one that changes only logging continues, bit-exact."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted[1], out)
    shutil.rmtree(out / "final")
    (out / "metrics.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    settings = RESUME + [f"data.tokenizer={tokenizer_dir}", f"output_dir={out}", "train.resume=true"]
    with pytest.raises(InputError, match=r"cannot resume from .*step-00000006: these settings differ from the "
                                         r"checkpoint's and would change the data order, schedule or model: "
                                         r"model\.hidden_size: 32 -> 48; train\.batch_size: 8 -> 16\. Set them back"):
        run(settings + ["train.batch_size=16", "model.hidden_size=48"])
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    metrics = run(settings + ["train.log_every=2"])
    assert metrics["steps"] == 8 and [h["step"] for h in metrics["history"] if "train/mlm_loss" in h] == [
        1, 2, 3, 4, 5, 6, 8]
    resumed = final_weights(out)
    assert all(torch.equal(resumed[name], expected) for name, expected in uninterrupted[0].items())


def test_two_fresh_runs_give_identical_tokenizer_and_weights(tmp_path):
    """Same config and seed, separate caches (nothing reused): the tokenizer trained inside the run and every
    weight agree bit for bit."""
    common = TOY + ["train.max_steps=2", "train.save_every=0", "data.vocab_size=500"]
    for name in ("a", "b"):
        run([*common, f"output_dir={tmp_path / name}", f"data.cache_dir={tmp_path / name}-cache"])
    assert (tmp_path / "a" / "final" / "tokenizer.json").read_bytes() == (
        tmp_path / "b" / "final" / "tokenizer.json").read_bytes()
    a, b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_help_shows_the_two_process_command_that_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(recipe.PretrainConfig, ["--help"], recipe.__doc__)
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--num_processes 2 --cpu recipes" not in help_text
    assert "accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml recipes/pretrain.py" in help_text


def test_cli_rejects_a_typo_with_exit_status_2(tmp_path):
    out = tmp_path / "typo"
    result = run_subprocess([f"output_dir={out}", "train.max_step=5"])
    assert result.returncode == 2
    assert "unknown config key 'train.max_step'; did you mean 'train.max_steps'?" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "yaml_text, args, message",
    [
        ("train:\n  max_stepz: 3\n", [], "unknown config key 'train.max_stepz'"),
        ("", ["data.train_file=[/nonexistent/corpus.txt]"], "file not found: /nonexistent/corpus.txt"),
        ("", ["train.batch_size=6", "train.gradient_accumulation_steps=4"], "not divisible"),
        ("", ["model.preset=huge"], "model.preset='huge' is unknown"),
        ("", ["train.learning_rate=-0.001"], "train.learning_rate=-0.001 must be positive"),
        ("", ["train.learning_rate=0"], "train.learning_rate=0.0 must be positive"),
        ("", ["data.mlm_probability=1.5"], "data.mlm_probability=1.5 must be between 0.0 and 1.0"),
    ],
    ids=["unknown_yaml_key", "missing_file", "indivisible_accumulation", "unknown_preset", "negative_lr", "zero_lr",
         "mlm_probability"],
)
def test_bad_config_exits_2_with_a_clear_message(tmp_path, capsys, yaml_text, args, message):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    with pytest.raises(SystemExit) as exit_info:
        parse_recipe_args(recipe.PretrainConfig, ["--config", str(config), f"output_dir={tmp_path / 'o'}", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_corpus_smaller_than_one_batch_fails_before_writing(tmp_path, tokenizer_dir):
    corpus = tmp_path / "small.txt"
    corpus.write_text("A first sentence is here. A second sentence follows it.\n\n"
                      "Another document starts. It has two sentences.\n\nA third one. With a second line.\n")
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"gives \d+ training examples, fewer than one batch"):
        run(TOY + [f"data.train_file=[{corpus}]", f"data.tokenizer={tokenizer_dir}", f"output_dir={out}"])
    assert not out.exists()


def test_batch_not_divisible_across_processes_and_accumulation(tmp_path, tokenizer_dir):
    """The recipe's own check (it knows the process count, which the config validation cannot)."""
    cfg = build_config(recipe.PretrainConfig, DEBUG_YAML, TOY + [f"output_dir={tmp_path / 'out'}"])
    cfg.train.batch_size, cfg.train.gradient_accumulation_steps = 6, 4  # bypasses validate(), as 2 processes would
    with pytest.raises(InputError, match=r"batch_size=6 must be divisible by num_processes \(1\) x .* = 4"):
        run_main(cfg)
    assert not (tmp_path / "out").exists()


def test_used_output_dir_needs_resume_or_overwrite(tmp_path, tokenizer_dir):
    out = tmp_path / "out"
    (out / "checkpoints" / "step-00000003").mkdir(parents=True)
    (out / "checkpoints" / "step-00000003" / COMPLETE_MARKER).write_text('{"step": 3}')
    with pytest.raises(InputError, match=r"already holds a run \(checkpoints/step-00000003\); pass train.resume=true"):
        run(TOY + [f"data.tokenizer={tokenizer_dir}", f"output_dir={out}"])


def test_hub_dataset_without_network_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match=r"HF_HUB_OFFLINE is set; pass local files with data.train_file="):
        run(TOY + ["data.dataset_name=wikitext", f"output_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


def test_gradient_checkpointing_trains_the_same_parameters(tmp_path, tokenizer_dir):
    """Recomputing activations in the backward pass must not change the result (dropout off: 0 everywhere)."""
    common = TOY + [f"data.tokenizer={tokenizer_dir}", "train.max_steps=2", "train.save_every=0",
                    "model.classifier_dropout_prob=0.0"]
    run(common + [f"output_dir={tmp_path / 'plain'}"])
    run(common + [f"output_dir={tmp_path / 'recompute'}", "train.gradient_checkpointing=true"])
    plain, recompute = final_weights(tmp_path / "plain"), final_weights(tmp_path / "recompute")
    assert max((plain[k] - recompute[k]).abs().max().item() for k in plain) < 1e-6


def test_packing_trains_on_the_same_examples_with_less_padding(tmp_path, tokenizer_dir):
    """`data.packing=true` lays the same masked examples out in fewer rows (short_seq_prob=0.5 makes many short ones):
    the per-step losses (averaged over the same examples and masked tokens) and the weights follow the unpacked run
    up to float summation order, while far fewer padding slots are computed."""
    common = TOY + [f"data.tokenizer={tokenizer_dir}", "train.max_steps=3", "train.save_every=0",
                    "data.short_seq_prob=0.5", "data.max_seq_length=128", "model.classifier_dropout_prob=0.0"]
    plain = run(common + [f"output_dir={tmp_path / 'plain'}"])
    packed = run(common + [f"output_dir={tmp_path / 'packed'}", "data.packing=true"])

    def losses(metrics):
        return [(h["train/mlm_loss"], h["train/sop_loss"]) for h in metrics["history"] if "train/mlm_loss" in h]

    assert len(losses(plain)) == 3
    torch.testing.assert_close(losses(packed), losses(plain), rtol=1e-4, atol=1e-5)
    assert packed["train/real_token_share"] > plain["train/real_token_share"] + 0.1, (plain, packed)
    one, two = final_weights(tmp_path / "plain"), final_weights(tmp_path / "packed")
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-4
