"""Training helpers shared by the recipes: parameter groups, optimizers, schedules, throughput."""

from __future__ import annotations

import time

import torch
from torch import nn

from .errors import InputError

# ALBERT (like BERT) applies no weight decay and no LAMB layer adaptation to biases and LayerNorm parameters.
NO_DECAY_SUFFIXES = ("bias", "LayerNorm.weight", "layer_norm.weight", "layer_norm_weight")


def is_no_decay(param_name: str) -> bool:
    return param_name.endswith(NO_DECAY_SUFFIXES) or "LayerNorm" in param_name or "layer_norm" in param_name


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed matrices, and undecayed biases/LayerNorm (tagged so LAMB skips their trust ratio)."""
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, param in model.named_parameters():
        # tied parameters appear once in named_parameters(); the id check also guards user-shared ones
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (no_decay if is_no_decay(name) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay, "adam": False}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, "adam": True})
    return groups


def build_optimizer(
    model: nn.Module,
    name: str,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-6,
) -> torch.optim.Optimizer:
    """LAMB (the paper's optimizer, from `pytorch_optimizer`) or AdamW, with ALBERT's decay exclusions."""
    groups = param_groups(model, weight_decay)
    if name == "lamb":
        from pytorch_optimizer import Lamb

        # weight_decouple=False: the paper's LAMB adds the decay to the Adam ratio before the trust ratio;
        # max_grad_norm/pre_norm off because the recipe clips the global norm itself.
        # adam_debias=True turns off the library's default first-moment bias correction of the step size:
        # ALBERT's (and BERT's) LAMB uses no bias correction at all (tests/test_lamb.py checks the rule).
        return Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decouple=False, pre_norm=False, adam_debias=True)
    if name == "adamw":
        for group in groups:
            group.pop("adam")
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    raise InputError(f"unknown optimizer {name!r}; choose 'lamb' or 'adamw'")


def warmup_linear_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup to the peak rate, then linear decay to zero at `total_steps` (the paper's schedule)."""
    if total_steps <= 0:
        raise InputError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise InputError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Throughput:
    """Tokens per second over the window since the last `rate()` call."""

    def __init__(self) -> None:
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, tokens: int) -> None:
        self.tokens += tokens

    def rate(self) -> float:
        now = time.perf_counter()
        value = self.tokens / max(now - self.start, 1e-9)
        self.tokens, self.start = 0, now
        return value
