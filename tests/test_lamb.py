"""The LAMB that `build_optimizer` returns follows the paper's update rule, checked against a reference here.

Reference (You et al. 2019, Algorithm 2, as ALBERT's own `lamb_optimizer.py` implements it):
    m = b1*m + (1-b1)*g ;  v = b2*v + (1-b2)*g^2
    r = m / (sqrt(v) + eps)            # no bias correction: ALBERT/BERT's TF LAMB has none, and neither does
                                       # pytorch_optimizer's default (`adam_debias=False`); tested below
    u = r + wd*w                       # decay inside the ratio, before the trust ratio
    trust = phi(||w||) / ||u||         # phi(z) = min(z, 10): the paper's upper clip; the library also adds eps
                                       # to ||u|| and uses 1 when either norm is 0
    w = w - lr * trust * u
Biases and LayerNorm weights: no decay (u = r) and trust ratio 1 (a plain Adam step without bias correction).
"""

from __future__ import annotations

import torch
from torch import nn

from albert_recipes.training import build_optimizer

LR, WD, BETAS, EPS = 0.01, 0.01, (0.9, 0.999), 1e-6
WEIGHT_NORM_CLIP = 10.0


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(6, 8)
        self.LayerNorm = nn.LayerNorm(8)
        self.decoder = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.tanh(self.LayerNorm(self.dense(x))))


def reference_lamb(params: dict[str, torch.Tensor], grads_per_step, bias_correction: bool = False):
    """Plain-tensor LAMB over a list of {name: grad} dicts; returns the final parameters."""
    params = {n: p.detach().clone().double() for n, p in params.items()}
    m = {n: torch.zeros_like(p) for n, p in params.items()}
    v = {n: torch.zeros_like(p) for n, p in params.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for name, w in params.items():
            g = grads[name].double()
            m[name] = BETAS[0] * m[name] + (1 - BETAS[0]) * g
            v[name] = BETAS[1] * v[name] + (1 - BETAS[1]) * g * g
            m_hat, v_hat = m[name], v[name]
            if bias_correction:
                m_hat, v_hat = m_hat / (1 - BETAS[0] ** t), v_hat / (1 - BETAS[1] ** t)
            r = m_hat / (v_hat.sqrt() + EPS)
            exclude = name.endswith("bias") or "LayerNorm" in name
            if exclude:
                update, trust = r, 1.0
            else:
                update = r + WD * w
                w_norm, u_norm = w.norm().clamp(max=WEIGHT_NORM_CLIP), update.norm()
                trust = (w_norm / (u_norm + EPS)).item() if w_norm > 0 and u_norm > 0 else 1.0
            params[name] = w - LR * trust * update
    return params


def run_library_lamb(steps: int = 5):
    """Train TinyNet with the library LAMB; record the gradients each step saw, for the reference to replay."""
    torch.manual_seed(0)
    model = TinyNet()
    with torch.no_grad():
        model.dense.weight.mul_(40.0)  # ||w|| > 10: exercises the trust-ratio clip
        model.LayerNorm.weight.uniform_(0.5, 1.5)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, "lamb", lr=LR, weight_decay=WD, betas=BETAS, eps=EPS)
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    grads_per_step = []
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        grads_per_step.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})
        optimizer.step()
    return model, start, grads_per_step


def test_lamb_matches_paper_update_rule():
    model, start, grads = run_library_lamb()
    expected = reference_lamb(start, grads)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.detach().double(), expected[name], atol=1e-6, rtol=1e-6, msg=name)


def test_reference_is_sensitive_to_the_choices_it_encodes():
    """Guards against a vacuous match: each alternative reading of the paper gives a visibly different result."""
    model, start, grads = run_library_lamb()
    trained = {n: p.detach().double() for n, p in model.named_parameters()}
    with_bias_correction = reference_lamb(start, grads, bias_correction=True)
    assert max((trained[n] - with_bias_correction[n]).abs().max().item() for n in trained) > 1e-4

    optimizer = build_optimizer(model, "lamb", lr=LR, weight_decay=WD, betas=BETAS, eps=EPS)
    decayed, excluded = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in decayed["params"]) == ["decoder.weight", "dense.weight"]
    assert sorted(names[id(p)] for p in excluded["params"]) == [
        "LayerNorm.bias", "LayerNorm.weight", "decoder.bias", "dense.bias"
    ]
    assert decayed["weight_decay"] == WD and excluded["weight_decay"] == 0.0 and excluded["adam"]


def test_trust_ratio_is_applied_to_matrices_only():
    """One step from zero moments: r = (1-b1)/sqrt(1-b2) * sign(g), about 3.16 per element where |g| >> eps
    (no bias correction).
    Excluded parameters move by lr*|r| per element; matrices by lr*phi(||w||) in norm whatever their size, since the
    trust ratio rescales the whole update u = r + wd*w to the weight norm. A missing trust ratio or a bias correction
    shows up as a wrong step length."""
    model, start, (grads,) = run_library_lamb(steps=1)
    for name, param in model.named_parameters():
        step = (param.detach() - start[name]).norm().item()
        if name.endswith("bias") or "LayerNorm" in name:
            g = grads[name].abs()
            expected = LR * ((1 - BETAS[0]) * g / ((1 - BETAS[1]) ** 0.5 * g + EPS)).norm().item()
            assert abs(step - expected) < 1e-3 * expected, (name, step, expected)
        else:
            expected = LR * min(start[name].norm().item(), WEIGHT_NORM_CLIP)
            assert abs(step - expected) < 1e-5, (name, step, expected)
