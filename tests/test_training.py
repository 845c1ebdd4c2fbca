"""The training core (albert_recipes.training, pretraining_metrics): the loop's clipping and fp16-skip rules, epochs
of different sizes, resume safety, SOP metrics split by kind of pair, and evaluation over 2 gloo processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from torch import nn

from albert_recipes.errors import InputError
from albert_recipes.training import (
    GlobalBatchSampler,
    albert_schedule,
    locate_step,
    prepare_output_dir,
    resume_conflicts,
    train_loop,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def accelerator():
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def _toy(accelerator, lr=0.1):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    scheduler = albert_schedule(optimizer, 0, 10)
    model, optimizer = accelerator.prepare(model, optimizer)
    return model, optimizer, scheduler


def test_max_grad_norm_zero_means_no_clipping(accelerator):
    """A clip at 0 would multiply every gradient by 0 and leave the weights where they were."""
    model, optimizer, scheduler = _toy(accelerator)
    start = [p.detach().clone() for p in model.parameters()]
    x = torch.full((3, 4), 10.0)
    loss_fn = lambda batch: model(batch["x"]).pow(2).mean()  # noqa: E731  gradient norm >> 1
    train_loop(accelerator, model, optimizer, scheduler, loader_for_epoch=lambda e, s: [{"x": x}],
               steps_in_epoch=lambda e: 1, start_step=0, max_steps=1, max_grad_norm=0.0, compute_loss=loss_fn)
    expected = torch.nn.Linear(4, 1)
    with torch.no_grad():
        expected.weight.copy_(start[0]), expected.bias.copy_(start[1])
    expected(x).pow(2).mean().backward()
    for param, initial, reference in zip(model.parameters(), start, expected.parameters()):
        torch.testing.assert_close(param.detach(), initial - 0.1 * reference.grad)  # the full, unclipped step


def test_a_skipped_fp16_step_does_not_advance_the_schedule(accelerator):
    """A real GradScaler (torch's CPU one) skips the step whose gradients overflow; the schedule must not move."""
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
    model, optimizer, scheduler = _toy(accelerator)
    x, calls = torch.randn(3, 4), []

    def loss_fn(batch):
        calls.append(1)
        loss = model(batch["x"]).pow(2).mean()
        return loss * float("inf") if len(calls) == 2 else loss

    step = train_loop(accelerator, model, optimizer, scheduler, loader_for_epoch=lambda e, s: [{"x": x}] * (3 - s),
                      steps_in_epoch=lambda e: 3, start_step=0, max_steps=3, max_grad_norm=1.0, compute_loss=loss_fn)
    assert step == 3 and scheduler.last_epoch == 2  # 3 steps taken, 1 skipped by the scaler


def test_epochs_of_different_sizes_and_the_sampler():
    sizes = {0: 3, 1: 5, 2: 2}
    assert [locate_step(s, sizes.get) for s in (0, 2, 3, 7, 8, 9)] == [(0, 0), (0, 2), (1, 0), (1, 4), (2, 0),
                                                                      (2, 1)]
    with pytest.raises(InputError, match="fewer examples than one global batch"):
        locate_step(4, {0: 3, 1: 0}.get)
    # 2 processes x 2 accumulation steps cut each global batch of 8 into the micro-batches one process x 4 would
    one = list(GlobalBatchSampler(20, 8, 1, 0, 4, seed=3, epoch=1))
    two = [list(GlobalBatchSampler(20, 8, 2, rank, 2, seed=3, epoch=1)) for rank in (0, 1)]
    assert len(one) == 8 and [two[r][a] for a in range(2) for r in range(2)] == one[:4]
    assert list(GlobalBatchSampler(20, 8, 1, 0, 4, seed=3, epoch=1, skip_steps=1)) == one[4:]
    assert list(GlobalBatchSampler(20, 8, 1, 0, 4, seed=3, epoch=2)) != one


def test_resume_refuses_what_shapes_training_and_allows_the_rest(tmp_path):
    saved = {"output_dir": "a", "train": {"batch_size": 16, "log_every": 10, "seed": 1}, "model": {"hidden_size": 64}}
    changed = {"output_dir": "b", "train": {"batch_size": 32, "log_every": 5, "seed": 1}, "model": {"hidden_size": 32}}
    assert resume_conflicts(saved, changed, ["output_dir", "train.log_every"]) == [
        "model.hidden_size: 64 -> 32", "train.batch_size: 16 -> 32"]
    checkpoint = tmp_path / "out" / "checkpoints" / "step-00000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "COMPLETE").write_text('{"step": 4}')
    (checkpoint / "recipe_config.yaml").write_text(json.dumps(saved))
    args = dict(resume=True, overwrite=False, changeable=["output_dir", "train.log_every"])
    with pytest.raises(InputError, match=r"train\.batch_size: 16 -> 32.*train.overwrite_output_dir=true"):
        prepare_output_dir(tmp_path / "out", changed, **args)
    allowed = {**saved, "train": {**saved["train"], "log_every": 1}}
    assert prepare_output_dir(tmp_path / "out", allowed, **args) == checkpoint
    # a setting newer than the checkpoint is compared as its default: at the default it resumes, set it is refused
    newer = {**allowed, "data": {"packing": False}}
    with pytest.raises(InputError, match=r"data\.packing: '\(unset\)' -> False"):
        prepare_output_dir(tmp_path / "out", newer, **args)
    assert prepare_output_dir(tmp_path / "out", newer, **args, defaults={"data": {"packing": False}}) == checkpoint
    with pytest.raises(InputError, match=r"data\.packing: False -> True"):
        prepare_output_dir(tmp_path / "out", {**allowed, "data": {"packing": True}}, **args,
                           defaults={"data": {"packing": False}})
    with pytest.raises(InputError, match=r"already holds a run \(checkpoints/step-00000004\); pass train.resume=true"):
        prepare_output_dir(tmp_path / "out", allowed, resume=False, overwrite=False, changeable=[])
    assert prepare_output_dir(tmp_path / "out", allowed, resume=False, overwrite=True, changeable=[]) is None


def test_sop_metrics_split_by_kind_of_pair_count_each_example_once(tiny_tokenizer, accelerator):
    """Per-kind counts match the examples' `sop_random_document` column, the parts add up to the whole, and the
    majority-label baselines are computed from the training labels of each kind."""
    import datasets

    sys.path.insert(0, str(Path(__file__).parent))
    from eval_worker import examples

    from albert_recipes import pretraining_metrics as pm

    rows = examples(tiny_tokenizer, 7)
    out = pm.example_stats(
        type("Out", (), {"prediction_logits": torch.randn(7, 20, len(tiny_tokenizer)),
                         "sop_logits": torch.tensor([[0.0, 1.0]] * 4 + [[1.0, 0.0]] * 3)})(),
        {"labels": torch.where(torch.rand(7, 20) < 0.2, 5, -100),
         "sentence_order_label": torch.tensor([r["sentence_order_label"] for r in rows])},
        torch.tensor([r["sop_random_document"] for r in rows]))
    metrics = pm.summarize(out.sum(0), "eval")
    other = [r["sop_random_document"] for r in rows]
    assert metrics["eval/sop_examples"] == 7 and metrics["eval/sop_random_document_examples"] == sum(other) == 3
    assert metrics["eval/sop_same_document_examples"] == 4
    parts = sum(metrics[f"eval/sop_{p}_accuracy"] * metrics[f"eval/sop_{p}_examples"]
                for p in ("same_document", "random_document"))
    assert parts == pytest.approx(metrics["eval/sop_accuracy"] * 7)
    predicted = [1, 1, 1, 1, 0, 0, 0]
    labels = [r["sentence_order_label"] for r in rows]
    same = [p == y for p, y, o in zip(predicted, labels, other) if not o]
    assert metrics["eval/sop_same_document_accuracy"] == pytest.approx(sum(same) / len(same))

    train = datasets.Dataset.from_dict({"sentence_order_label": [1, 1, 1, 0, 0, 1], "sop_random_document": [1, 1, 1,
                                                                                                          0, 0, 0]})
    evaluation = datasets.Dataset.from_list(rows)
    baselines = pm.sop_majority_baselines(train, evaluation)
    assert baselines == {"sop_majority_accuracy": pytest.approx(3 / 7),  # majority 1: labels 1 at rows 1, 3, 5
                         "sop_same_document_majority_accuracy": pytest.approx(2 / 4),  # majority 0 of (0, 0, 1)
                         "sop_random_document_majority_accuracy": pytest.approx(1 / 3)}


def test_evaluation_over_two_processes_equals_one_process(tmp_path, tiny_tokenizer):
    """Prepared DataLoaders + gather_for_metrics: 5 and 7 examples (uneven over 2 processes x batch 2) and 1 example
    (fewer than the processes) give the same sums as one process: no example lost or counted twice."""
    single = tmp_path / "one.json"
    two = tmp_path / "two.json"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT / "tests")}
    worker = [str(ROOT / "tests" / "eval_worker.py"), tiny_tokenizer.name_or_path]
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "recipes" / "accelerate_configs" / "cpu_2proc.yaml")]
    done = subprocess.run(launcher + worker + [str(two)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    done = subprocess.run([sys.executable, *worker, str(single)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = json.loads(single.read_text()), json.loads(two.read_text())
    from albert_recipes.pretraining_metrics import STATS

    for size in ("1", "5", "7"):
        sums_one, sums_two = dict(zip(STATS, one[size]["sums"])), dict(zip(STATS, two[size]["sums"]))
        assert sums_one["sop_count"] == sums_two["sop_count"] == int(size)
        for name in STATS:
            assert sums_two[name] == pytest.approx(sums_one[name], rel=1e-5, abs=1e-6), (size, name)


def test_mlm_accuracy_at_mask_inputs_and_the_context_free_baseline_are_counted_from_what_the_model_saw():
    """Two examples, six predicted positions: four shown as [MASK], one kept (its own token), one replaced by a
    random token. `mlm_masked_accuracy` counts only the [MASK] inputs; the context-free baseline copies the visible
    token and answers the unigram token at [MASK]."""
    from albert_recipes import pretraining_metrics as pm

    MASK, THE, V = 4, 7, 12
    input_ids = torch.tensor([[1, MASK, 9, MASK, 2], [1, MASK, 10, MASK, 2]])
    labels = torch.tensor([[-100, THE, 9, 8, -100], [-100, 11, 5, THE, -100]])  # (0, 2) kept; (1, 2) replaced
    predicted = torch.tensor([[0, THE, 9, 3, 0], [0, 11, 10, 8, 0]])  # right at (0,1), (0,2), (1,1)
    logits = torch.nn.functional.one_hot(predicted, V).float()  # (B, T, V)
    out = type("Out", (), {"prediction_logits": logits, "sop_logits": torch.zeros(2, 2)})()
    batch = {"labels": labels, "input_ids": input_ids, "sentence_order_label": torch.tensor([0, 1])}
    log_probs = torch.log(torch.full((V,), 1.0 / V))
    log_probs[THE] = -0.5
    sums = pm.example_stats(out, batch, unigram_token_id=THE, mask_token_id=MASK, unigram_log_probs=log_probs).sum(0)
    metrics = pm.summarize(sums, "eval")
    # the unigram model's loss on the four [MASK] targets THE, 8, 11, THE; the model's own loss on the same four
    unigram_loss = (0.5 + 2 * math.log(V) + 0.5) / 4
    assert pm.context_free_baselines(sums)["mlm_masked_unigram_loss"] == pytest.approx(unigram_loss)
    token_loss = torch.nn.functional.cross_entropy(logits[input_ids == MASK], labels[input_ids == MASK])
    assert metrics["eval/mlm_masked_loss"] == pytest.approx(token_loss.item())
    assert metrics["eval/mlm_accuracy"] == pytest.approx(3 / 6)
    assert metrics["eval/mlm_masked_accuracy"] == pytest.approx(2 / 4)  # (0,1) and (1,1) of the four [MASK] inputs
    baselines = pm.context_free_baselines(sums)
    # copy/unigram guesses: THE, 9, THE, THE, 10, THE against THE, 9, 8, 11, 5, THE -> 3 right of 6
    assert baselines["mlm_context_free_accuracy"] == pytest.approx(3 / 6)
    assert baselines["mlm_masked_unigram_accuracy"] == pytest.approx(2 / 4)
    assert pm.unigram_accuracy(sums) == pytest.approx(2 / 6)
    # without the mask id the new columns stay empty and the metric is absent, as before
    plain = pm.summarize(pm.example_stats(out, batch, unigram_token_id=THE).sum(0), "eval")
    assert "eval/mlm_masked_accuracy" not in plain and plain["eval/mlm_accuracy"] == metrics["eval/mlm_accuracy"]
