"""The training core both recipes share: accelerator setup, the paper's LAMB and schedule, the global-batch sampler,
the accumulate/clip/step/schedule loop, clean stops on SIGINT/SIGTERM, safe resume and curve plots.

A recipe reads top to bottom around these pieces:

    accelerator = setup_accelerator(...)                          # also for CPU workers under `accelerate launch`
    resume_from = prepare_output_dir(...)                         # refuse a used folder or an incompatible resume
    ... data, model ...
    optimizer = build_optimizer(model, "lamb", lr, weight_decay)  # ALBERT's lamb_optimizer.py, exactly
    scheduler = albert_schedule(optimizer, warmup_steps, max_steps)
    with StopSignals(accelerator) as stop:
        step = train_loop(accelerator, model, optimizer, scheduler, loader_for_epoch=..., ...)

Determinism: global batch s of epoch e is a fixed slice of a permutation seeded by (seed, e), cut into micro-batches
so that any split of the same global batch over processes and accumulation steps trains on the same examples; the
DataLoader draws no seed from the global RNG (it has its own generator), so a resumed run consumes random numbers
(dropout) exactly as the uninterrupted one does after the checkpoint's RNG states are restored.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .errors import InputError
from .mapped_pages import release_arrow_pages

# ---------------------------------------------------------------------------------------------------- accelerator


def resolve_mixed_precision(setting: str) -> str:
    """"auto": bf16 on GPUs that support it, else fp16 on a GPU, "no" on the CPU; other values pass through."""
    if setting != "auto":
        return setting
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def setup_accelerator(
    output_dir: str | Path,
    *,
    gradient_accumulation_steps: int = 1,
    mixed_precision: str = "auto",
    cpu: bool = False,
    log_with: str | None = None,
):
    """An `Accelerator` that also works for CPU-only workers started by `accelerate launch`.

    accelerate sets up no process group for launched workers that see no GPU unless it is told to use the CPU;
    without that each worker would silently train alone. A mismatch between the launched and joined process count
    is refused rather than trained through.
    """
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    output_dir = Path(output_dir)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        cpu=cpu or (launched > 1 and not torch.cuda.is_available()),
        gradient_accumulation_steps=gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(mixed_precision),
        log_with=None if log_with in (None, "none") else log_with,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    if accelerator.num_processes != launched:
        raise InputError(f"launched {launched} processes but accelerate joined {accelerator.num_processes}; "
                         "for CPU workers pass train.cpu=true (or set ACCELERATE_USE_CPU=true)")
    return accelerator


def micro_batch_size(batch_size: int, num_processes: int, gradient_accumulation_steps: int) -> int:
    """Sequences per forward pass when `batch_size` is the GLOBAL batch of one optimizer step."""
    per_step = num_processes * gradient_accumulation_steps
    if batch_size % per_step:
        raise InputError(
            f"train.batch_size={batch_size} must be divisible by num_processes ({num_processes}) x "
            f"train.gradient_accumulation_steps ({gradient_accumulation_steps}) = {per_step}: it is the global "
            "batch of one optimizer step"
        )
    return batch_size // per_step


# ----------------------------------------------------------------------------------------------- optimizer, schedule

# google-research/albert optimization.py: exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"], matched with
# re.search (anywhere in the name), and lamb_optimizer.py uses the same list to skip the layer adaptation.
NO_DECAY_NAMES = ("LayerNorm", "layer_norm", "bias")


def is_no_decay(param_name: str) -> bool:
    return any(part in param_name for part in NO_DECAY_NAMES)


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
    """LAMB as google-research/albert's `lamb_optimizer.py` (from `pytorch_optimizer`, configured), or AdamW.

    ALBERT's rule per tensor: m, v as Adam without bias correction; u = m / (sqrt(v) + eps), plus wd * w unless the
    name is excluded; for non-excluded tensors trust = ||w|| / ||u|| (1 if either norm is 0); w -= lr * trust * u.
    The library's defaults differ in four places, set here: it clips ||w|| at 10 in the trust ratio (`Lamb.clamp`;
    at ALBERT-base sizes every embedding and FFN matrix is far above 10, so its steps would be 1.5-4x too short),
    it decays decoupled (`weight_decouple`), it divides the step by the first-moment bias correction unless
    `adam_debias=True`, and it can rescale gradients by their global norm (`pre_norm`; the recipes clip themselves).
    One difference remains: the library adds eps to ||u|| in the trust ratio, a relative change of eps/||u||
    (1e-6 / ||u||, below 1e-6 for any tensor that moves); tests/test_lamb.py measures it against a port of ALBERT's rule.
    """
    if not lr > 0:
        raise InputError(f"the learning rate must be positive, got {lr}")
    groups = param_groups(model, weight_decay)
    if name == "lamb":
        from pytorch_optimizer import Lamb

        optimizer = Lamb(groups, lr=lr, betas=betas, eps=eps, weight_decouple=False, pre_norm=False,
                         adam_debias=True)
        optimizer.clamp = math.inf  # no upper clip of ||w|| in the trust ratio (ALBERT has none)
        return optimizer
    if name == "adamw":
        for group in groups:
            group.pop("adam")
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)
    raise InputError(f"unknown optimizer {name!r}; choose 'lamb' or 'adamw'")


def albert_lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """ALBERT's `optimization.create_optimizer` schedule as a multiplier of the peak rate at optimizer step `step`.

    polynomial_decay(power 1, to 0 at total_steps) counts from step 0, and during warmup the rate is replaced by
    peak * step / warmup_steps: so the first step has rate 0 and the rate after warmup is peak * (1 - step/total),
    not the peak. transformers' `get_polynomial_decay_schedule_with_warmup` (and `get_linear_schedule_with_warmup`)
    instead decay from the end of warmup, (total - step) / (total - warmup), and no torch scheduler or chain of them
    gives this piecewise rule, which is why it is written here (one line, run by torch's LambdaLR).
    """
    if warmup_steps and step < warmup_steps:
        return step / warmup_steps
    return max(0.0, 1.0 - min(step, total_steps) / total_steps)


def albert_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup and linear (power 1) decay to 0 at `total_steps`, exactly as google-research/albert combines them."""
    if total_steps <= 0:
        raise InputError(f"total_steps must be positive, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise InputError(f"warmup_steps must be in [0, total_steps={total_steps}], got {warmup_steps}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: albert_lr_factor(step, warmup_steps, total_steps)
    )


# -------------------------------------------------------------------------------------------------------- data order


class GlobalBatchSampler:
    """This process's micro-batches (lists of example indices) for one epoch.

    Global batch s is positions [s*B, (s+1)*B) of a permutation seeded by (seed, epoch). It is cut into
    num_processes * accumulation micro-batches; at accumulation step a, process r takes micro-batch
    a * num_processes + r. Any split of the same B therefore trains on the same global batches (the micro-batch
    gradients are averaged either way). The tail that cannot fill a global batch is dropped (a new permutation
    every epoch drops other examples). `skip_steps` starts after that many global batches (resume).
    """

    def __init__(self, num_examples, batch_size, num_processes, process_index, accumulation, seed, epoch,
                 skip_steps: int = 0):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.num_processes, self.process_index, self.accumulation = num_processes, process_index, accumulation
        self.micro_batch_size = micro_batch_size(batch_size, num_processes, accumulation)
        self.seed, self.epoch = seed, epoch
        self.steps = num_examples // batch_size
        self.skip_steps = skip_steps

    def __len__(self) -> int:
        return max(0, self.steps - self.skip_steps) * self.accumulation

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_examples)
        for step in range(self.skip_steps, self.steps):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            for a in range(self.accumulation):
                j = a * self.num_processes + self.process_index
                yield batch[j * self.micro_batch_size : (j + 1) * self.micro_batch_size].tolist()


def epoch_loader(dataset, collate_fn, *, batch_size: int, accelerator, seed: int, epoch: int, skip_steps: int = 0):
    """A DataLoader over this process's share of epoch `epoch`'s global batches."""
    sampler = GlobalBatchSampler(len(dataset), batch_size, accelerator.num_processes, accelerator.process_index,
                                 accelerator.gradient_accumulation_steps, seed, epoch, skip_steps)
    # its own generator: creating an iterator draws a seed, which must not shift the global (dropout) RNG
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, generator=generator)


def locate_step(completed_steps: int, steps_in_epoch: Callable[[int], int]) -> tuple[int, int]:
    """(epoch, steps already taken in it) after `completed_steps` optimizer steps; epochs may differ in length."""
    epoch = 0
    while True:
        steps = steps_in_epoch(epoch)
        if steps < 1:
            raise InputError(f"epoch {epoch} has fewer examples than one global batch: nothing to train on")
        if completed_steps < steps:
            return epoch, completed_steps
        completed_steps -= steps
        epoch += 1


# -------------------------------------------------------------------------------------------------------- the loop


def train_loop(
    accelerator,
    model: nn.Module,
    optimizer,
    scheduler,
    *,
    loader_for_epoch: Callable[[int, int], Iterable[dict]],
    steps_in_epoch: Callable[[int], int],
    start_step: int,
    max_steps: int,
    max_grad_norm: float,
    compute_loss: Callable[[dict], torch.Tensor],
    after_step: Callable[[int, bool], None] | None = None,
    stop: StopSignals | None = None,
    progress=None,
) -> int:
    """Train from optimizer step `start_step` to `max_steps`; returns the step reached (less if a stop was asked).

    `loader_for_epoch(epoch, skip_steps)` yields this process's micro-batches of that epoch, after `skip_steps`
    global batches; `compute_loss(batch)` runs the forward pass (it may record statistics); `after_step(step,
    end_of_epoch)` logs, evaluates and saves. `max_grad_norm` <= 0 turns clipping off (a clip at 0 would zero every
    gradient). A step that fp16 loss scaling skipped (overflow) still counts as a step but does not advance the
    schedule, so the rate follows the optimizer's real updates.
    """
    step = start_step
    epoch, done = locate_step(step, steps_in_epoch)
    model.train()
    while step < max_steps:
        in_epoch = steps_in_epoch(epoch)
        for batch in loader_for_epoch(epoch, done):
            batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            with accelerator.accumulate(model):
                loss = compute_loss(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            step += 1
            done += 1
            if progress is not None:
                progress.update(1)
            if step % 100 == 0:  # the epoch's memory-mapped examples read so far: out of RSS (see mapped_pages)
                release_arrow_pages()
            if after_step is not None:
                after_step(step, done == in_epoch)
            if step >= max_steps or (stop is not None and stop.requested()):
                return step
        epoch, done = epoch + 1, 0
    return step


# ---------------------------------------------------------------------------------------------------- clean stops


class TrainingInterrupted(InputError):
    """SIGINT (Ctrl-C) or SIGTERM stopped training at a step boundary after a checkpoint was saved.

    An `InputError` so that the recipes' command line prints its one-line message (where the checkpoint is and how
    to continue) and exits non-zero, instead of a KeyboardInterrupt traceback from somewhere inside torch.
    """


class StopSignals:
    """Turns SIGINT and SIGTERM into a request to stop at the next optimizer-step boundary.

    With several processes the request is agreed on at every step (one all-reduce of one number), because a signal
    may reach only some of them and the checkpoint that follows is collective. A third signal stops at once
    (KeyboardInterrupt): `accelerate launch` forwards a terminal's Ctrl-C, so each worker may see two.
    """

    def __init__(self, accelerator) -> None:
        self.accelerator = accelerator
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        self.received.append(signum)
        if len(self.received) >= 3:
            raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        import threading

        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def requested(self) -> bool:
        local = float(bool(self.received))
        if self.accelerator.num_processes == 1:
            return bool(local)
        flag = torch.tensor(local, device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)

    @property
    def name(self) -> str:
        return signal.Signals(self.received[0]).name if self.received else "a signal on another process"


# ------------------------------------------------------------------------------------------------------ checkpoints


@dataclass
class DebugSettings:
    """Test hooks (both recipes): the process kills or signals itself at a precise point of training."""

    kill_at_step: int | None = field(default=None, metadata={"help": "test only: SIGKILL after optimizer step N"})
    kill_during_save_at_step: int | None = field(
        default=None, metadata={"help": "test only: SIGKILL inside the step-N checkpoint write, before its commit"}
    )
    signal_at_step: int | None = field(
        default=None, metadata={"help": "test only: send debug.signal to itself after optimizer step N"}
    )
    signal: Literal["SIGINT", "SIGTERM"] = field(default="SIGTERM", metadata={"help": "test only: which signal"})

    def after_step(self, step: int) -> None:
        if self.kill_at_step == step:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.signal_at_step == step:
            os.kill(os.getpid(), getattr(signal, self.signal))

    def before_commit(self, step: int) -> Callable[[Path], None] | None:
        if self.kill_during_save_at_step != step:
            return None
        return lambda _: os.kill(os.getpid(), signal.SIGKILL)


TRAINER_STATE = "trainer_state.json"


def save_training_checkpoint(accelerator, output_dir: str | Path, step: int, *, config_yaml: str, state: dict,
                             keep_last: int, keep: Iterable[str | Path] = (), debug: DebugSettings | None = None) -> Path:
    """Collective. accelerate's state (model, optimizer, scheduler, every process's RNG) plus the recipe's merged
    config and `state` (history, best checkpoint, ...) as JSON, atomically under `<output_dir>/checkpoints`."""
    from .checkpointing import save_checkpoint

    files = {"recipe_config.yaml": config_yaml, TRAINER_STATE: json.dumps(state)}
    return save_checkpoint(accelerator, Path(output_dir) / "checkpoints", step, files, keep_last=keep_last,
                           before_commit=debug.before_commit(step) if debug else None, keep=keep)


def read_trainer_state(checkpoint: str | Path) -> dict:
    path = Path(checkpoint) / TRAINER_STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def interrupted(stop: StopSignals, step: int, checkpoint: Path) -> TrainingInterrupted:
    """The one-line answer to Ctrl-C / SIGTERM, once the checkpoint is written."""
    return TrainingInterrupted(
        f"stopped by {stop.name} after optimizer step {step}; checkpoint saved in {checkpoint}. To continue, run the "
        "same command with train.resume=true"
    )


# ---------------------------------------------------------------------------------------------------- safe resume


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"train": {"seed": 1}} -> {"train.seed": 1}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def resume_conflicts(saved: dict, current: dict, changeable: Iterable[str], defaults: dict | None = None) -> list[str]:
    """`key: old -> new` for every setting that differs and is not in `changeable` (keys or `section.` prefixes).

    A setting the checkpoint predates (absent from `saved`, present in `defaults`) counts as its default: a new
    option's default keeps the old behaviour, so upgrading the package does not block resuming an older run."""
    changeable = tuple(changeable)
    old, new = {**flatten(defaults or {}), **flatten(saved)}, flatten(current)
    conflicts = []
    for key in sorted(set(old) | set(new)):
        if key in changeable or any(c.endswith(".") and key.startswith(c) for c in changeable):
            continue
        if old.get(key) != new.get(key):
            conflicts.append(f"{key}: {old.get(key, '(unset)')!r} -> {new.get(key, '(unset)')!r}")
    return conflicts


def check_resume_compatible(checkpoint: Path, current: dict, changeable: Iterable[str],
                            defaults: dict | None = None) -> None:
    """Refuse to resume when a setting that shapes data order, schedule or model differs from the checkpoint's."""
    import yaml

    saved_file = Path(checkpoint) / "recipe_config.yaml"
    if not saved_file.is_file():
        raise InputError(f"cannot resume from {checkpoint}: it has no recipe_config.yaml to compare the settings with")
    saved = yaml.safe_load(saved_file.read_text(encoding="utf-8")) or {}
    conflicts = resume_conflicts(saved, current, changeable, defaults)
    if conflicts:
        raise InputError(
            f"cannot resume from {checkpoint}: these settings differ from the checkpoint's and would change the "
            f"data order, schedule or model: {'; '.join(conflicts)}. Set them back, or start over with "
            "train.overwrite_output_dir=true (or another output_dir)"
        )


def prepare_output_dir(
    output_dir: str | Path,
    config: dict,
    *,
    resume: bool,
    overwrite: bool,
    changeable: Iterable[str],
    outputs: Iterable[str] = (),
    defaults: dict | None = None,
) -> Path | None:
    """Decide, before anything is written, whether this run resumes, starts fresh or must be refused.

    Returns the checkpoint to resume from (None: start fresh). A folder holding a finished or started run (complete
    checkpoints, or any of `outputs`) is refused unless `resume` (continue) or `overwrite` (start over).
    `defaults`: the recipe's default settings, for settings newer than the checkpoint (see `resume_conflicts`).
    """
    from .checkpointing import find_latest_checkpoint

    output_dir = Path(output_dir)
    latest = find_latest_checkpoint(output_dir / "checkpoints")
    if resume and latest is not None:
        check_resume_compatible(latest, config, changeable, defaults)
        return latest
    used = [name for name in outputs if (output_dir / name).exists()]
    if latest is not None:
        used.insert(0, f"checkpoints/{latest.name}")
    if used and not overwrite:
        if latest is not None:
            hint = "pass train.resume=true to continue, "
        elif resume:
            hint = "train.resume=true found no complete checkpoint to continue from; pass "
        else:
            hint = ""
        raise InputError(f"output_dir {output_dir} already holds a run ({', '.join(used)}); {hint}"
                         "train.overwrite_output_dir=true to start over, or choose another output_dir")
    return None


def clear_previous_run(output_dir: str | Path, names: Iterable[str]) -> None:
    """Remove an earlier run's checkpoints, logs and exports (train.overwrite_output_dir=true), so none are mixed in."""
    import shutil

    for name in names:
        path = Path(output_dir) / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


# ------------------------------------------------------------------------------------------------ logs and plots


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


class RunningLoss:
    """The mean training loss since the last log: summed on the device (no host sync per step), reduced over the
    processes only when it is logged."""

    def __init__(self, device: torch.device) -> None:
        self.totals = torch.zeros(2, dtype=torch.float64, device=device)  # (sum, count)

    def add(self, loss: torch.Tensor) -> torch.Tensor:
        self.totals += torch.stack([loss.detach().double(), torch.ones((), dtype=torch.float64, device=loss.device)])
        return loss

    def log(self, accelerator, step: int, learning_rate: float, history: list[dict], progress=None) -> dict:
        """Log {"train/loss", "train/lr"} to the trackers and `history` (and the progress bar), then start over."""
        total, count = accelerator.reduce(self.totals, reduction="sum").tolist()
        self.totals = torch.zeros_like(self.totals)
        logs = {"train/loss": total / max(count, 1), "train/lr": learning_rate}
        accelerator.log(logs, step=step)
        history.append({"step": step, **logs})
        if progress is not None:
            progress.set_postfix(loss=f"{logs['train/loss']:.4f}")
        return logs


def plot_curves(history: list[dict], panels: list[dict], path: str | Path) -> Path:
    """One PNG with a panel per metric: training values as a thin line, held-out values with markers.

    `panels`: dicts with `title`, `series` (history keys, e.g. "train/mlm_loss", "eval/mlm_loss"), optional
    `labels` (one per series) and `baselines` ({label: value}, drawn as dashed horizontal lines).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        labels = panel.get("labels") or panel["series"]
        for key, label in zip(panel["series"], labels):
            points = [(h["step"], h[key]) for h in history if key in h]
            if not points:
                continue
            steps, values = zip(*points)
            held_out = not key.startswith("train/")
            ax.plot(steps, values, "o-" if held_out else "-", alpha=1.0 if held_out else 0.45, label=label,
                    markersize=3)
        for (label, value), color in zip(panel.get("baselines", {}).items(), ("gray", "black", "brown", "olive")):
            ax.axhline(value, color=color, linestyle="--", linewidth=1, label=label)
        ax.set(title=panel["title"], xlabel="optimizer step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
