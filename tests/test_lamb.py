"""The LAMB and the schedule that `albert_recipes.training` builds equal google-research/albert's, checked against
ports of `lamb_optimizer.LAMBOptimizer.apply_gradients` and `optimization.create_optimizer`'s learning rate.

ALBERT's update, per tensor w with gradient g (no bias correction, eps = 1e-6):
    m = b1*m + (1-b1)*g ;  v = b2*v + (1-b2)*g^2 ;  u = m / (sqrt(v) + eps)
    u += wd * w                      unless the name contains LayerNorm, layer_norm or bias (re.search)
    r = ||w|| / ||u||                (1 if either norm is 0) unless excluded by the same names, else r = 1
    w = w - lr * r * u
No clip of ||w|| (pytorch_optimizer's Lamb clips it at 10 by default), no eps in r's denominator (the library's
one remaining difference, relative size eps/||u||). The weights here have norms of 40-2000, so a clip at 10 would
shrink their steps 4-200x, and a zero-initialised matrix exercises the norm-0 rule.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from albert_recipes.training import albert_lr_factor, albert_schedule, build_optimizer

LR, WD, BETAS, EPS = 0.01, 0.01, (0.9, 0.999), 1e-6
EXCLUDE = ["LayerNorm", "layer_norm", "bias"]  # optimization.py's exclude_from_weight_decay


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.Embedding(50, 16)
        self.dense = nn.Linear(16, 32)
        self.LayerNorm = nn.LayerNorm(32)
        self.full_layer_layer_norm = nn.LayerNorm(32)
        self.zero_init = nn.Linear(32, 8, bias=False)  # ||w|| = 0 at the start, like a LoRA B matrix
        self.decoder = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.full_layer_layer_norm(self.LayerNorm(self.dense(self.embeddings(ids).mean(1)))))
        return self.decoder(self.zero_init(h) + h[:, :8])


def albert_lamb_step(params, grads, m, v, lr=LR, clip_weight_norm=None, bias_correction_step=None):
    """One `LAMBOptimizer.apply_gradients`, in float64; `clip_weight_norm`/`bias_correction_step` give the
    library's other readings, to show the test can tell them apart."""
    for name, w in params.items():
        g = grads[name].double()
        m[name] = BETAS[0] * m[name] + (1 - BETAS[0]) * g
        v[name] = BETAS[1] * v[name] + (1 - BETAS[1]) * g * g
        m_hat, v_hat = m[name], v[name]
        if bias_correction_step:
            m_hat = m_hat / (1 - BETAS[0] ** bias_correction_step)
        update = m_hat / (v_hat.sqrt() + EPS)
        excluded = any(re.search(pattern, name) for pattern in EXCLUDE)
        if not excluded:
            update = update + WD * w
        ratio = 1.0
        if not excluded:
            w_norm, g_norm = w.norm(), update.norm()
            if clip_weight_norm is not None:
                w_norm = w_norm.clamp(max=clip_weight_norm)
            ratio = (w_norm / g_norm).item() if w_norm > 0 and g_norm > 0 else 1.0
        params[name] = w - ratio * lr * update


def run(steps: int = 4, **reference_options):
    """Train TinyNet with `build_optimizer(..., "lamb")`; replay the same gradients through the port."""
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.embeddings.weight.mul_(30.0)  # ||w|| ~ 850
        model.dense.weight.mul_(40.0)  # ||w|| ~ 130
        model.decoder.weight.mul_(400.0)  # ||w|| ~ 1100
        model.zero_init.weight.zero_()
        model.LayerNorm.weight.uniform_(0.5, 1.5)
    start = {n: p.detach().clone().double() for n, p in model.named_parameters()}
    assert min(start[n].norm() for n in ("embeddings.weight", "dense.weight", "decoder.weight")) > 40
    optimizer = build_optimizer(model, "lamb", lr=LR, weight_decay=WD, betas=BETAS, eps=EPS)
    ids, y = torch.randint(0, 50, (16, 5)), torch.randint(0, 3, (16,))
    params, m, v = dict(start), {n: torch.zeros_like(p) for n, p in start.items()}, {
        n: torch.zeros_like(p) for n, p in start.items()}
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(ids), y).backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        optimizer.step()
        options = dict(reference_options)
        if options.pop("bias_correction", False):
            options["bias_correction_step"] = step
        albert_lamb_step(params, grads, m, v, **options)
    return model, start, params


def relative_error(model, expected) -> dict[str, float]:
    return {n: ((p.detach().double() - expected[n]).norm() / expected[n].norm()).item()
            for n, p in model.named_parameters()}


def test_lamb_equals_albert_lamb_optimizer_on_large_weights():
    model, start, expected = run()
    errors = relative_error(model, expected)
    assert max(errors.values()) < 1e-6, errors
    for name, param in model.named_parameters():  # every tensor moved (no vacuous match), by the port's amount
        moved = (param.detach().double() - start[name]).norm()
        assert moved > 0, name
        torch.testing.assert_close(moved, (expected[name] - start[name]).norm(), rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.parametrize("reading", [{"clip_weight_norm": 10.0}, {"bias_correction": True}],
                         ids=["clip_at_10", "bias_correction"])
def test_the_other_readings_are_visibly_different(reading):
    """pytorch_optimizer's defaults (clip at 10, bias-corrected step) differ from the optimizer by far more than
    the tolerance above: the test could tell if the configuration slipped back."""
    model, _, other = run(**reading)
    assert max(relative_error(model, other).values()) > 1e-3


def test_exclusions_follow_albert_names():
    model = TinyNet()
    optimizer = build_optimizer(model, "lamb", lr=LR, weight_decay=WD)
    decayed, excluded = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == [
        "decoder.weight", "dense.weight", "embeddings.weight", "zero_init.weight"]
    assert sorted(names[id(p)] for p in excluded["params"]) == [
        "LayerNorm.bias", "LayerNorm.weight", "decoder.bias", "dense.bias", "full_layer_layer_norm.bias",
        "full_layer_layer_norm.weight"]
    assert decayed["weight_decay"] == WD and not decayed["adam"]
    assert excluded["weight_decay"] == 0.0 and excluded["adam"]  # adam: trust ratio 1, no layer adaptation


def albert_learning_rate(global_step: int, init_lr: float, num_train_steps: int, num_warmup_steps: int) -> float:
    """Port of optimization.create_optimizer's rate: tf.train.polynomial_decay(power=1, end 0, cycle=False), then
    replaced by init_lr * step / warmup while step < warmup."""
    step = min(global_step, num_train_steps)
    learning_rate = (init_lr - 0.0) * (1 - step / num_train_steps) ** 1.0 + 0.0
    if num_warmup_steps:
        is_warmup = float(global_step < num_warmup_steps)
        learning_rate = (1.0 - is_warmup) * learning_rate + is_warmup * init_lr * global_step / num_warmup_steps
    return learning_rate


@pytest.mark.parametrize("warmup, total", [(10, 50), (0, 7), (3, 3)])
def test_schedule_equals_albert_optimization_py(warmup, total):
    """The rate each optimizer step uses (step s uses global_step s: step 0 has rate 0 during warmup), and after
    `total` steps the rate stays 0."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.00176)
    scheduler = albert_schedule(optimizer, warmup, total)
    for step in range(total + 3):
        expected = albert_learning_rate(step, 0.00176, total, warmup)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-12), step
        assert 0.00176 * albert_lr_factor(step, warmup, total) == pytest.approx(expected, abs=1e-12)
        optimizer.step()
        scheduler.step()
    # the rate after warmup continues the decay line from step 0, not from the peak (transformers' schedules)
    if 0 < warmup < total:
        assert albert_lr_factor(warmup, warmup, total) == pytest.approx(1 - warmup / total)
