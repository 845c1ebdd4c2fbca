"""Pretrain ALBERT (masked LM + sentence-order prediction, LAMB) from raw text, as in Lan et al. (2019).

    python recipes/pretrain.py --config recipes/configs/pretrain/debug.yaml train.max_steps=20
    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain/tiny.yaml
    accelerate launch --num_processes 2 --cpu recipes/pretrain.py --config recipes/configs/pretrain/debug.yaml
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/pretrain.py --config ...
    python recipes/pretrain.py --config recipes/configs/pretrain/tiny.yaml train.resume=true   (or --train.resume=true)

With no data settings it trains on the embedded corpus (Python's reference documentation, no download) and a
Unigram tokenizer trained on it. Writes `<output_dir>/checkpoints/step-*/` (atomic, keep-last-K; `train.resume=true`
continues from the newest complete one, bit for bit), TensorBoard logs under `<output_dir>/logs`, and the Hub-ready
export `<output_dir>/final/` (model + tokenizer + config with auto_map + recipe_config.yaml + metrics.json +
curves.png).

Determinism: global batch s of epoch e is a fixed slice of a permutation seeded by (seed, e) and every example is
masked from (seed, e, example_id), so data and masks depend on neither the number of processes nor the
accumulation split (1 process x 2 accumulation steps trains on the same global batches as 2 processes x 1), nor on
where a run was interrupted; accelerate's checkpoints carry the model, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import AutoTokenizer

from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining
from albert_recipes.checkpointing import checkpoint_step, find_latest_checkpoint, list_checkpoints, save_checkpoint
from albert_recipes.cli import ConfigError, config_to_dict, config_to_yaml, flat_hparams, run_cli
from albert_recipes.configuration_albert_recipes import PRESETS
from albert_recipes.corpus import iter_documents, load_embedded_corpus
from albert_recipes.io_utils import atomic_directory, atomic_write_text
from albert_recipes.masking import NgramMaskingCollator
from albert_recipes.sop import build_sop_dataset
from albert_recipes.tokenization import save_tokenizer, train_tokenizer_on_documents
from albert_recipes.training import Throughput, build_optimizer, warmup_linear_decay


@dataclass
class ModelSettings:
    preset: str = field(default="tiny", metadata={"help": f"size preset: {', '.join(sorted(PRESETS))}"})
    embedding_size: int | None = field(default=None, metadata={"help": "E, overrides the preset"})
    hidden_size: int | None = field(default=None, metadata={"help": "H, overrides the preset"})
    num_hidden_layers: int | None = field(default=None, metadata={"help": "depth, overrides the preset"})
    num_attention_heads: int | None = field(default=None, metadata={"help": "heads, overrides the preset"})
    intermediate_size: int | None = field(default=None, metadata={"help": "FFN width, overrides the preset"})
    max_position_embeddings: int | None = field(default=None, metadata={"help": "must be >= data.max_seq_length"})
    hidden_dropout_prob: float | None = field(default=None, metadata={"help": "overrides the preset (v2: 0)"})
    attention_probs_dropout_prob: float | None = field(default=None, metadata={"help": "overrides the preset"})
    classifier_dropout_prob: float | None = field(
        default=None, metadata={"help": "dropout before the SOP classifier (preset: 0.1, as the stock head)"}
    )
    sparse_mlm_prediction: bool = field(
        default=True, metadata={"help": "decode only the masked positions in training (same loss, less time and "
                                "memory); the exported config turns it off again"},
    )


@dataclass
class DataSettings:
    train_file: list[str] = field(
        default_factory=list,
        metadata={"help": "one or more .txt (paragraph per line, blank line between documents, or WikiText), .jsonl "
                  "or .parquet files; empty, with no dataset_name: the embedded corpus (Python reference docs)"},
    )
    dataset_name: str | None = field(default=None, metadata={"help": "a Hub dataset for datasets.load_dataset"})
    dataset_config: str | None = field(default=None, metadata={"help": "the Hub dataset's configuration"})
    dataset_split: str = field(default="train", metadata={"help": "the Hub dataset's split"})
    text_column: str = field(default="text", metadata={"help": "text column of JSONL/Parquet/dataset records"})
    layout: Literal["auto", "blank_lines", "wikitext", "document_per_row"] = field(
        default="auto", metadata={"help": "how lines/rows form documents (albert_recipes.corpus.iter_documents)"}
    )
    eval_fraction: float = field(default=0.05, metadata={"help": "share of documents held out for evaluation"})
    tokenizer: str | None = field(
        default=None, metadata={"help": "tokenizer folder (recipes/train_tokenizer.py); empty: train one here"}
    )
    vocab_size: int = field(default=8000, metadata={"help": "vocabulary of the tokenizer trained here"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per [CLS] A [SEP] B [SEP] example"})
    short_seq_prob: float = field(default=0.1, metadata={"help": "share of shorter examples, as in the paper"})
    dupe_factor: int = field(default=1, metadata={"help": "times each document is cut into examples"})
    masking: Literal["ngram", "whole_word", "token"] = field(default="ngram", metadata={"help": "masking scheme"})
    mlm_probability: float = field(default=0.15, metadata={"help": "share of tokens to predict"})
    max_predictions_per_seq: int = field(default=20, metadata={"help": "cap on masked tokens per example"})
    max_ngram: int = field(default=3, metadata={"help": "longest masked n-gram (in words)"})
    num_proc: int | None = field(default=None, metadata={"help": "processes for building examples"})


@dataclass
class TrainSettings:
    seed: int = field(default=42, metadata={"help": "seeds the model, data order and masks"})
    batch_size: int = field(default=32, metadata={"help": "GLOBAL sequences per optimizer step (paper: 4096)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per step per process"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps (paper: 125000)"})
    optimizer: Literal["lamb", "adamw"] = field(default="lamb", metadata={"help": "LAMB as in the paper, or AdamW"})
    learning_rate: float = field(default=0.00176, metadata={"help": "peak rate (paper: 0.00176 at batch 4096)"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warmup, then linear decay to 0"})
    weight_decay: float = field(default=0.01, metadata={"help": "not applied to biases and LayerNorm"})
    adam_beta1: float = field(default=0.9, metadata={"help": "first-moment decay"})
    adam_beta2: float = field(default=0.999, metadata={"help": "second-moment decay"})
    adam_epsilon: float = field(default=1e-6, metadata={"help": "denominator epsilon"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "global gradient-norm clip (0: off)"})
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "auto: bf16 on GPUs that support it, else fp16 on GPU, no on CPU"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations (less memory)"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    log_every: int = field(default=10, metadata={"help": "steps between training log lines"})
    eval_every: int = field(default=100, metadata={"help": "steps between held-out evaluations (0: only at end)"})
    eval_batch_size: int = field(default=64, metadata={"help": "sequences per evaluation batch per process"})
    eval_max_examples: int = field(default=1000, metadata={"help": "held-out examples per evaluation"})
    save_every: int = field(default=200, metadata={"help": "steps between checkpoints (0: none)"})
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept (0: all)"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest complete checkpoint"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start over in a used output_dir"})
    report_to: Literal["tensorboard", "none"] = field(default="tensorboard", metadata={"help": "tracker"})


@dataclass
class HubSettings:
    push_to_hub: bool = field(default=False, metadata={"help": "upload <output_dir>/final when done"})
    repo_id: str | None = field(default=None, metadata={"help": "user/name on the Hub"})
    private: bool = field(default=True, metadata={"help": "create the repo private"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to"})


@dataclass
class DebugSettings:
    """Test hooks for the exact-resume tests: the process SIGKILLs itself at a precise point."""

    kill_at_step: int | None = field(default=None, metadata={"help": "test only: SIGKILL after optimizer step N"})
    kill_during_save_at_step: int | None = field(
        default=None, metadata={"help": "test only: SIGKILL inside the step-N checkpoint write, before its commit"}
    )


@dataclass
class PretrainConfig:
    output_dir: str = field(default="outputs/pretrain/default", metadata={"help": "where everything is written"})
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    hub: HubSettings = field(default_factory=HubSettings)
    debug: DebugSettings = field(default_factory=DebugSettings)

    def validate(self) -> None:
        t, d = self.train, self.data
        if self.model.preset not in PRESETS:
            raise ConfigError(f"model.preset={self.model.preset!r} is unknown; choose one of {sorted(PRESETS)}")
        for path in d.train_file:
            if not Path(path).is_file():
                raise ConfigError(f"data.train_file: file not found: {path}")
        if d.tokenizer and not Path(d.tokenizer).is_dir():
            raise ConfigError(f"data.tokenizer: folder not found: {d.tokenizer}")
        if d.train_file and d.dataset_name:
            raise ConfigError("set data.train_file or data.dataset_name, not both")
        if not 0.0 < d.eval_fraction < 1.0:
            raise ConfigError(f"data.eval_fraction={d.eval_fraction} must be between 0 and 1")
        positive = {"train.batch_size": t.batch_size, "train.max_steps": t.max_steps, "train.log_every": t.log_every,
                    "train.gradient_accumulation_steps": t.gradient_accumulation_steps,
                    "train.eval_batch_size": t.eval_batch_size, "train.eval_max_examples": t.eval_max_examples}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key}={value} must be >= 1")
        if not 0 <= t.warmup_steps <= t.max_steps:
            raise ConfigError(f"train.warmup_steps={t.warmup_steps} must be in [0, train.max_steps={t.max_steps}]")
        if min(t.eval_every, t.save_every, t.keep_last) < 0:
            raise ConfigError("train.eval_every, train.save_every and train.keep_last must be >= 0")
        if t.batch_size % t.gradient_accumulation_steps:
            raise ConfigError(
                f"train.batch_size={t.batch_size} is not divisible by "
                f"train.gradient_accumulation_steps={t.gradient_accumulation_steps}"
            )
        if self.hub.push_to_hub and not self.hub.repo_id:
            raise ConfigError("hub.push_to_hub=true needs hub.repo_id=user/name")


class GlobalBatchSampler:
    """This process's micro-batches (lists of example indices) for one epoch.

    Global batch s is positions [s*B, (s+1)*B) of a permutation seeded by (seed, epoch). It is cut into
    num_processes * accumulation micro-batches; at accumulation step a, process r takes micro-batch
    a * num_processes + r. Any split of the same B therefore trains on the same global batches (the micro-batch
    gradients are averaged either way). The tail that cannot fill a global batch is dropped.
    """

    def __init__(self, num_examples, batch_size, num_processes, process_index, accumulation, seed, epoch):
        self.num_examples, self.batch_size = num_examples, batch_size
        self.num_processes, self.process_index, self.accumulation = num_processes, process_index, accumulation
        self.micro_batch_size = batch_size // (num_processes * accumulation)
        self.seed, self.epoch = seed, epoch
        self.steps = num_examples // batch_size

    def __len__(self) -> int:
        return self.steps * self.accumulation

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_examples)
        for step in range(self.steps):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            for a in range(self.accumulation):
                j = a * self.num_processes + self.process_index
                yield batch[j * self.micro_batch_size : (j + 1) * self.micro_batch_size].tolist()


def check_hub_reachable(timeout: float = 3.0) -> None:
    """Fail fast with a useful message instead of hanging in retries when there is no network."""
    offline = [name for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(name, "0") not in ("0", "")]
    if offline:
        raise ConfigError(f"data.dataset_name needs the Hub but {offline[0]} is set; "
                          "pass local files with data.train_file=[a.txt,b.jsonl] instead")
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
    except OSError as err:
        raise ConfigError(f"cannot reach huggingface.co for data.dataset_name ({err}); no network? "
                          "Pass local files with data.train_file=[a.txt,b.jsonl] instead") from None


def load_documents(cfg: DataSettings) -> list[list[str]]:
    if cfg.dataset_name:
        check_hub_reachable()
        import datasets

        source = datasets.load_dataset(cfg.dataset_name, cfg.dataset_config, split=cfg.dataset_split)
        return list(iter_documents(source, text_field=cfg.text_column, layout=cfg.layout))
    if cfg.train_file:
        return list(iter_documents(cfg.train_file, text_field=cfg.text_column, layout=cfg.layout))
    return load_embedded_corpus()


def split_documents(documents: list, eval_fraction: float, seed: int) -> tuple[list, list]:
    if len(documents) < 2:
        raise ConfigError(f"the corpus has {len(documents)} document(s); at least 2 are needed (train + held-out)")
    order = np.random.default_rng([seed, 1]).permutation(len(documents))
    num_eval = min(len(documents) - 1, max(1, round(eval_fraction * len(documents))))
    return [documents[i] for i in order[num_eval:]], [documents[i] for i in order[:num_eval]]


def model_config(cfg: ModelSettings, max_seq_length: int) -> AlbertRecipesConfig:
    """The preset plus the overrides given; `vocab_size` is filled in once the tokenizer exists."""
    sizes = {k: v for k, v in vars(cfg).items() if k != "preset" and v is not None}
    config = AlbertRecipesConfig.from_preset(cfg.preset, **sizes)
    if config.max_position_embeddings < max_seq_length:
        raise ConfigError(f"data.max_seq_length={max_seq_length} exceeds model.max_position_embeddings="
                          f"{config.max_position_embeddings}")
    return config


def batch_stats(out, batch) -> dict[str, torch.Tensor]:
    """Summed losses and correct counts of one batch, so they can be added across batches and processes."""
    labels, masked = batch["labels"], batch["labels"] != -100
    logits = out.prediction_logits.float()
    if logits.dim() == 3:  # the dense head scores every position; the sparse one only the masked ones, in order
        logits = logits[masked]  # (N_masked, V)
    sop_logits = out.sop_logits.float()  # (B, 2)
    return {
        "mlm_loss": torch.nn.functional.cross_entropy(logits, labels[masked], reduction="sum"),
        "mlm_correct": (logits.argmax(-1) == labels[masked]).sum().float(),
        "mlm_count": masked.sum().float(),
        "sop_loss": torch.nn.functional.cross_entropy(sop_logits, batch["sentence_order_label"], reduction="sum"),
        "sop_correct": (sop_logits.argmax(-1) == batch["sentence_order_label"]).sum().float(),
        "sop_count": torch.tensor(float(len(sop_logits)), device=sop_logits.device),
    }


def summarize(totals: dict[str, torch.Tensor], accelerator: Accelerator, prefix: str) -> dict[str, float]:
    t = {k: v.item() for k, v in accelerator.reduce(totals, reduction="sum").items()}
    return {
        f"{prefix}/mlm_loss": t["mlm_loss"] / max(t["mlm_count"], 1),
        f"{prefix}/mlm_accuracy": t["mlm_correct"] / max(t["mlm_count"], 1),
        f"{prefix}/sop_loss": t["sop_loss"] / max(t["sop_count"], 1),
        f"{prefix}/sop_accuracy": t["sop_correct"] / max(t["sop_count"], 1),
    }


def add_stats(totals: dict | None, stats: dict) -> dict:
    return {k: v.detach() if totals is None else totals[k] + v.detach() for k, v in stats.items()}


@torch.no_grad()
def evaluate(model, eval_set, collator, accelerator: Accelerator, batch_size: int) -> dict[str, float]:
    model.eval()
    totals = None
    mine = list(range(accelerator.process_index, len(eval_set), accelerator.num_processes))
    for start in range(0, len(mine), batch_size):
        batch = collator([eval_set[i] for i in mine[start : start + batch_size]])
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        totals = add_stats(totals, batch_stats(model(**batch), batch))
    model.train()
    return summarize(totals, accelerator, "eval")


def plot_curves(history: list[dict], sop_baseline: float, path: Path) -> None:
    """Held-out MLM loss, MLM accuracy and SOP accuracy (against always guessing the majority label) by step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [h for h in history if "eval/mlm_loss" in h]
    trains = [h for h in history if "train/mlm_loss" in h]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = [("mlm_loss", "MLM loss"), ("mlm_accuracy", "MLM accuracy"), ("sop_accuracy", "SOP accuracy")]
    for ax, (key, title) in zip(axes, panels):
        ax.plot([h["step"] for h in trains], [h[f"train/{key}"] for h in trains], alpha=0.4, label="train")
        ax.plot([h["step"] for h in evals], [h[f"eval/{key}"] for h in evals], "o-", label="held-out")
        ax.set(title=title, xlabel="optimizer step")
        ax.grid(alpha=0.3)
    axes[2].axhline(sop_baseline, color="gray", linestyle="--", label="majority label")
    axes[0].legend()
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(cfg: PretrainConfig) -> dict:
    # ---- setup --------------------------------------------------------------------------------------------------
    t = cfg.train
    output_dir = Path(cfg.output_dir)
    mixed_precision = t.mixed_precision
    if mixed_precision == "auto":
        on_gpu = torch.cuda.is_available()
        mixed_precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if on_gpu else "no"
    # accelerate sets up no process group for launched CPU-only workers unless told to use the CPU
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        cpu=t.cpu or (launched_processes > 1 and not torch.cuda.is_available()),
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        mixed_precision=mixed_precision,
        log_with=None if t.report_to == "none" else t.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    if accelerator.num_processes != launched_processes:
        raise ConfigError(f"launched {launched_processes} processes but accelerate joined {accelerator.num_processes}; "
                          "for CPU workers pass train.cpu=true (or set ACCELERATE_USE_CPU=true)")
    per_step = accelerator.num_processes * t.gradient_accumulation_steps
    if t.batch_size % per_step:
        raise ConfigError(
            f"train.batch_size={t.batch_size} must be divisible by num_processes ({accelerator.num_processes}) x "
            f"train.gradient_accumulation_steps ({t.gradient_accumulation_steps}) = {per_step}"
        )
    checkpoints_dir = output_dir / "checkpoints"
    resume_from = find_latest_checkpoint(checkpoints_dir) if t.resume else None
    if t.resume and resume_from is None:
        accelerator.print(f"train.resume=true but {checkpoints_dir} has no complete checkpoint: starting fresh")
    if resume_from is None and list_checkpoints(checkpoints_dir) and not t.overwrite_output_dir:
        raise ConfigError(f"{output_dir} already holds checkpoints; pass train.resume=true to continue, "
                          "train.overwrite_output_dir=true to start over, or another output_dir")
    config = model_config(cfg.model, cfg.data.max_seq_length)
    accelerator.print(config_to_yaml(cfg))
    set_seed(t.seed)

    # ---- data: the main process trains the tokenizer and checks the corpus before anything is written -------------
    tokenizer_dir = output_dir / "tokenizer"
    with accelerator.main_process_first():
        documents = load_documents(cfg.data)
        train_docs, eval_docs = split_documents(documents, cfg.data.eval_fraction, t.seed)
        if cfg.data.tokenizer:
            tokenizer = AutoTokenizer.from_pretrained(cfg.data.tokenizer)
        elif resume_from is not None or not accelerator.is_main_process:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:
            tokenizer = train_tokenizer_on_documents(
                train_docs, vocab_size=cfg.data.vocab_size, model_max_length=config.max_position_embeddings,
                show_progress=False,
            )
        sop_args = dict(tokenizer=tokenizer, max_seq_length=cfg.data.max_seq_length, seed=t.seed,
                        short_seq_prob=cfg.data.short_seq_prob, num_proc=cfg.data.num_proc)
        train_set = build_sop_dataset(train_docs, dupe_factor=cfg.data.dupe_factor, **sop_args)
        eval_set = build_sop_dataset(eval_docs, **sop_args)
        eval_set = eval_set.select(range(min(len(eval_set), t.eval_max_examples)))
        if len(train_set) < t.batch_size:
            raise ConfigError(f"the corpus gives {len(train_set)} training examples, fewer than one batch "
                              f"(train.batch_size={t.batch_size}); use more text or a smaller batch")
        if accelerator.is_main_process and not cfg.data.tokenizer and resume_from is None:
            save_tokenizer(tokenizer, tokenizer_dir)
    collator_args = dict(tokenizer=tokenizer, mlm_probability=cfg.data.mlm_probability, mode=cfg.data.masking,
                         max_predictions_per_seq=cfg.data.max_predictions_per_seq, max_ngram=cfg.data.max_ngram)
    collator = NgramMaskingCollator(seed=t.seed, **collator_args)
    eval_collator = NgramMaskingCollator(seed=t.seed + 1, **collator_args)  # fixed masks: evals are comparable
    steps_per_epoch = len(train_set) // t.batch_size
    accelerator.print(f"{len(train_set)} training / {len(eval_set)} held-out examples; {steps_per_epoch} steps per "
                      f"epoch of global batch {t.batch_size} = {accelerator.num_processes} processes x "
                      f"{t.gradient_accumulation_steps} accumulation x {t.batch_size // per_step} sequences")

    config.vocab_size = len(tokenizer)
    model = AlbertRecipesForPreTraining(config)
    if t.gradient_checkpointing:  # renamed activation_checkpointing_enable in later transformers 5 releases
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    accelerator.print(f"model: {cfg.model.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
                      f"parameters, vocab {len(tokenizer)}, mixed precision {mixed_precision}")
    optimizer = build_optimizer(model, t.optimizer, t.learning_rate, t.weight_decay,
                                (t.adam_beta1, t.adam_beta2), t.adam_epsilon)
    # not passed to prepare(): accelerate would step it once per process; it steps once per optimizer step here
    scheduler = warmup_linear_decay(optimizer, t.warmup_steps, t.max_steps)
    if accelerator.state.deepspeed_plugin is not None:  # it cannot infer this: the recipe builds its own loaders
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = t.batch_size // per_step
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)

    completed_steps, history = 0, []
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        completed_steps = checkpoint_step(resume_from)
        history = json.loads((resume_from / "history.json").read_text(encoding="utf-8"))
        accelerator.print(f"resumed from {resume_from} at step {completed_steps}")
    if accelerator.is_main_process:
        if resume_from is None:  # train.overwrite_output_dir: a later resume must not find the old run's steps
            shutil.rmtree(checkpoints_dir, ignore_errors=True)
        atomic_write_text(output_dir / "recipe_config.yaml", config_to_yaml(cfg))
    accelerator.init_trackers("pretrain", config=flat_hparams(cfg))

    def save(step: int) -> None:
        kill = cfg.debug.kill_during_save_at_step == step
        files = {"recipe_config.yaml": config_to_yaml(cfg), "history.json": json.dumps(history)}
        save_checkpoint(accelerator, checkpoints_dir, step, files, keep_last=t.keep_last,
                        before_commit=(lambda _: kill_self()) if kill else None)

    # ---- train ---------------------------------------------------------------------------------------------------
    model.train()
    progress = tqdm(total=t.max_steps, initial=completed_steps, desc="pretrain", unit="step",
                    disable=not accelerator.is_local_main_process)
    throughput, run_tokens, run_start = Throughput(), 0, time.perf_counter()
    totals, last_eval = None, {}
    while completed_steps < t.max_steps:
        epoch = completed_steps // steps_per_epoch
        collator.set_epoch(epoch)
        sampler = GlobalBatchSampler(len(train_set), t.batch_size, accelerator.num_processes,
                                     accelerator.process_index, t.gradient_accumulation_steps, t.seed, epoch)
        # its own generator: creating an iterator draws a seed, which must not shift the global (dropout) RNG
        generator = torch.Generator().manual_seed(t.seed)
        loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collator, generator=generator)
        skip = (completed_steps % steps_per_epoch) * t.gradient_accumulation_steps
        if skip:
            loader = accelerator.skip_first_batches(loader, skip)
        for batch in loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with accelerator.accumulate(model):
                out = model(**batch)
                accelerator.backward(out.loss)
                if accelerator.sync_gradients and t.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), t.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad()
            totals = add_stats(totals, batch_stats(out, batch))
            tokens = batch["attention_mask"].sum().item()
            throughput.add(tokens)
            run_tokens += tokens
            if not accelerator.sync_gradients:
                continue
            if not accelerator.optimizer_step_was_skipped:  # fp16 overflow: keep the schedule in step
                scheduler.step()
            completed_steps += 1
            progress.update(1)

            if completed_steps % t.log_every == 0 or completed_steps == t.max_steps:
                logs = summarize(totals, accelerator, "train")
                rate = accelerator.reduce(torch.tensor(throughput.rate(), device=accelerator.device), "sum")
                logs.update({"train/tokens_per_s": rate.item(), "train/lr": scheduler.get_last_lr()[0]})
                totals = None
                accelerator.log(logs, step=completed_steps)
                history.append({"step": completed_steps, **logs})
                progress.set_postfix(loss=f"{logs['train/mlm_loss'] + logs['train/sop_loss']:.3f}",
                                     mlm_acc=f"{logs['train/mlm_accuracy']:.3f}",
                                     sop_acc=f"{logs['train/sop_accuracy']:.3f}", tok_s=f"{rate.item():.0f}")
                if accelerator.is_local_main_process:
                    progress.write(f"step {completed_steps}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if (t.eval_every and completed_steps % t.eval_every == 0) or completed_steps == t.max_steps:
                last_eval = evaluate(model, eval_set, eval_collator, accelerator, t.eval_batch_size)
                accelerator.log(last_eval, step=completed_steps)
                history.append({"step": completed_steps, **last_eval})
                if accelerator.is_local_main_process:
                    progress.write(f"eval at step {completed_steps}: "
                                   + ", ".join(f"{k}={v:.4f}" for k, v in last_eval.items()))
            if t.save_every and completed_steps % t.save_every == 0:
                save(completed_steps)
            if cfg.debug.kill_at_step == completed_steps:
                kill_self()
            if completed_steps == t.max_steps:
                break
    progress.close()
    if not last_eval:  # resumed from the last step's checkpoint
        last_eval = evaluate(model, eval_set, eval_collator, accelerator, t.eval_batch_size)
    elapsed = time.perf_counter() - run_start
    tokens_total = accelerator.reduce(torch.tensor(float(run_tokens), device=accelerator.device), "sum").item()

    # ---- save ----------------------------------------------------------------------------------------------------
    # single-sentence chunks always get label 1 (B from another document), so chance is not exactly 0.5
    swapped = sum(eval_set["sentence_order_label"]) / len(eval_set)
    sop_baseline = max(swapped, 1 - swapped)
    metrics = {**last_eval, "eval/sop_majority_baseline": sop_baseline,
               "train/tokens_per_s": tokens_total / max(elapsed, 1e-9), "steps": completed_steps,
               "train_seconds_this_run": elapsed, "history": history}
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP/DeepSpeed shards; collective
    final_dir = output_dir / "final"
    if accelerator.is_main_process:
        atomic_write_text(output_dir / "metrics.json", json.dumps(metrics, indent=2))
        plot_curves(history, sop_baseline, output_dir / "curves.png")
        with atomic_directory(final_dir) as tmp:
            exported = accelerator.unwrap_model(model)
            exported.config.sparse_mlm_prediction = False  # users of the export expect (B, T, V) logits
            exported.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)
            atomic_write_text(tmp / "recipe_config.yaml", config_to_yaml(cfg))
            atomic_write_text(tmp / "metrics.json", json.dumps(metrics, indent=2))
            plot_curves(history, sop_baseline, tmp / "curves.png")
            if cfg.hub.push_to_hub:
                from albert_recipes.hub import write_model_card

                summary = {k: v for k, v in metrics.items() if k.startswith("eval/")}
                write_model_card(tmp, metrics=summary, training_config=config_to_dict(cfg),
                                 pipeline_tag="fill-mask", tags=("albert", "pretraining"), repo_id=cfg.hub.repo_id)
        accelerator.print(f"final model: {final_dir} " + ", ".join(f"{k}={v:.4f}" for k, v in last_eval.items()))
        if cfg.hub.push_to_hub:
            from albert_recipes.hub import push_folder_to_hub

            url = push_folder_to_hub(final_dir, cfg.hub.repo_id, private=cfg.hub.private, revision=cfg.hub.revision)
            accelerator.print(f"pushed to {url}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


if __name__ == "__main__":
    run_cli(main, PretrainConfig, __doc__)
