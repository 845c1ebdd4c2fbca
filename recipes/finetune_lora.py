"""Fine-tune ALBERT with LoRA (PEFT) or in full: sequence classification (single sentences, pairs, regression),
token classification, extractive question answering, on the training core the pretraining recipe uses
(albert_recipes.training); runs alone or under `accelerate launch`.

    python recipes/finetune_lora.py --config recipes/configs/finetune_lora/debug.yaml
    accelerate launch recipes/finetune_lora.py --config recipes/configs/finetune_lora/sst2.yaml
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml recipes/finetune_lora.py --config ...
    python recipes/finetune_lora.py --config ... train.resume=true       (continue after Ctrl-C, SIGTERM or a crash)

The base model is a pretrained folder (`model.name_or_path`, e.g. outputs/pretrain/small/final) or a random
`model.preset` (with `model.tokenizer_path`, or a Unigram tokenizer trained on the task's text). `train.batch_size`
is the global batch of one optimizer step. Checkpoints go to `output_dir/checkpoints/` every `train.save_every`
steps and at every evaluation that improves `train.best_metric`; the best one is kept and exported. Outputs under
`output_dir`: `adapter/` (LoRA; loads with AutoPeftModelFor... after `import albert_recipes`) or `model/` (full),
`base/` (the base the adapter names, with this task's labels), optional `merged/` (adapter merged into the base;
loads with plain AutoModelFor...), `predictions.jsonl`, `metrics.json` (with the trivial `baselines`: majority
class, training mean, most frequent tag, empty answer), `curves.png`, `confusion_matrix.png`, `recipe_config.yaml`,
`logs/`. Each export has its model card (README.md); recipes/predict.py runs any of them on a file of texts. A used
`output_dir` is refused unless `train.resume=true` or `train.overwrite_output_dir=true`.
ALBERT shares its layer across depth, so one LoRA adapter acts at every layer (see albert_recipes.lora).
"""

from __future__ import annotations

import collections
import json
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    DataCollatorForTokenClassification,
    DataCollatorWithPadding,
    default_data_collator,
)

import albert_recipes
from albert_recipes import finetune_data, metrics, qa
from albert_recipes.checkpointing import checkpoint_path, checkpoint_step
from albert_recipes.cli import ConfigError, config_to_dict, config_to_yaml, flat_hparams, run_cli
from albert_recipes.errors import InputError
from albert_recipes.io_utils import atomic_directory, atomic_write_text
from albert_recipes.lora import RECIPE_TARGET_MODULES, count_parameters, lora_config
from albert_recipes.training import (
    DebugSettings,
    RunningLoss,
    StopSignals,
    albert_schedule,
    build_optimizer,
    clear_previous_run,
    epoch_loader,
    interrupted,
    micro_batch_size,
    plot_curves,
    prepare_output_dir,
    read_trainer_state,
    save_training_checkpoint,
    setup_accelerator,
    train_loop,
)

logger = logging.getLogger("finetune_lora")
ROOT = Path(__file__).resolve().parents[1]

# metrics each task reports (albert_recipes.metrics), and which one picks the best checkpoint by default
TASK_METRICS = {"sequence_classification": ("accuracy", "f1", "matthews_correlation"),
                "regression": ("pearson", "spearmanr", "mse"),
                "token_classification": ("precision", "recall", "f1", "accuracy"),
                "question_answering": ("exact_match", "f1")}
BEST_METRIC_DEFAULTS = {"sequence_classification": "accuracy", "regression": "pearson", "token_classification": "f1",
                        "question_answering": "f1"}
LOWER_IS_BETTER = ("mse",)
NON_NEGATIVE_ZERO = {"data.max_train_samples": "all", "data.max_eval_samples": "all",
                     "data.synthetic_examples": "read data files", "data.num_labels": "from the data",
                     "data.doc_stride": "no overlap", "train.max_steps": "train.epochs decide",
                     "train.eval_every": "at each epoch's end", "train.save_every": "only the best checkpoints",
                     "train.keep_last": "keep all", "train.torch_threads": "torch's default",
                     "train.weight_decay": "no decay", "train.max_grad_norm": "no clipping"}
# AlbertRecipesConfig fields that model.config_overrides may set over a pretrained model: they add early-exit heads
# or change training, never the shape of a pretrained weight
PRETRAINED_OVERRIDES = ("early_exit_classifiers", "early_exit_patience", "early_exit_threshold", "layerdrop")
AUTO_MODELS = {
    "sequence_classification": AutoModelForSequenceClassification,
    "token_classification": AutoModelForTokenClassification,
    "question_answering": AutoModelForQuestionAnswering,
}
PEFT_TASK_TYPES = {"sequence_classification": "SEQ_CLS", "token_classification": "TOKEN_CLS",
                   "question_answering": "QUESTION_ANS"}


@dataclass
class ModelConfig:
    name_or_path: str = field(default="", metadata={"help": "pretrained model folder or Hub id (e.g. "
                              "outputs/pretrain/small/final); empty: random init from model.preset"})
    preset: str = field(default="", metadata={"help": "random-init size (tiny, base, ...) when no name_or_path"})
    config_overrides: dict = field(default_factory=dict, metadata={"help": "AlbertRecipesConfig fields over the "
                                   "preset, e.g. {hidden_size: 64}; over a pretrained model only "
                                   f"{', '.join(PRETRAINED_OVERRIDES)} apply, e.g. {{early_exit_classifiers: true, "
                                   "layerdrop: 0.1}: PABEE early exit, its heads trained and saved with the adapter"})
    tokenizer_path: str = field(default="", metadata={"help": "tokenizer folder; default: name_or_path's, or for a "
                                "preset a Unigram tokenizer trained on the training text"})
    tokenizer_vocab_size: int = field(default=2000, metadata={"help": "vocab size when training that tokenizer"})


@dataclass
class DataConfig:
    task: Literal["sequence_classification", "token_classification", "question_answering"] = field(
        default="sequence_classification", metadata={"help": "what to fine-tune for"})
    train_file: str = field(default="", metadata={"help": ".csv/.tsv/.json/.jsonl training file"})
    validation_file: str = field(default="", metadata={"help": "same for evaluation"})
    dataset_name: str = field(default="", metadata={"help": "datasets.load_dataset name when no files are given"})
    dataset_config: str = field(default="", metadata={"help": "its configuration name"})
    train_split: str = field(default="train", metadata={"help": "split of dataset_name to train on"})
    validation_split: str = field(default="validation", metadata={"help": "split of dataset_name to evaluate on"})
    synthetic_examples: int = field(default=0, metadata={"help": "N > 0: train on N generated examples of the "
                                    "task (and evaluate on N/4 more) instead of files; for smoke tests"})
    text_column: str = field(default="sentence", metadata={"help": "text (first sentence) column"})
    text_pair_column: str = field(default="", metadata={"help": "second sentence column for pair tasks"})
    label_column: str = field(default="label", metadata={"help": "label column (ids, names, or numbers)"})
    tokens_column: str = field(default="tokens", metadata={"help": "word list column (token classification)"})
    tags_column: str = field(default="tags", metadata={"help": "IOB2 tag list column (token classification)"})
    id_column: str = field(default="id", metadata={"help": "example id column (QA)"})
    question_column: str = field(default="question", metadata={"help": "question column (QA)"})
    context_column: str = field(default="context", metadata={"help": "context column (QA)"})
    answers_column: str = field(default="answers", metadata={"help": "SQuAD-format answers column (QA)"})
    label_names: list[str] = field(default_factory=list, metadata={"help": "class or tag names in id order; "
                                   "default: the sorted string labels of the training data"})
    num_labels: int = field(default=0, metadata={"help": "number of classes (0: from label_names or the data)"})
    regression: bool = field(default=False, metadata={"help": "sequence regression (float labels, MSE loss)"})
    max_length: int = field(default=128, metadata={"help": "max tokens per input (QA: per window)"})
    doc_stride: int = field(default=32, metadata={"help": "QA: tokens shared by neighbouring context windows"})
    max_train_samples: int = field(default=0, metadata={"help": "use only the first N training examples (0: all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "use only the first N evaluation examples (0: all)"})


@dataclass
class FinetuneConfig:
    mode: Literal["lora", "full"] = field(default="lora", metadata={"help": "LoRA adapter, or update every weight"})
    save_merged: bool = field(default=False, metadata={"help": "also save the adapter merged into the base"})


@dataclass
class LoraSection:
    r: int = field(default=8, metadata={"help": "LoRA rank"})
    alpha: float = field(default=16.0, metadata={"help": "LoRA scale numerator (update = alpha/r * B A)"})
    dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA input"})
    target_modules: list[str] = field(default_factory=list, metadata={"help": "module name suffixes to adapt; "
                                      "empty: albert_recipes.lora.RECIPE_TARGET_MODULES (the shared layer, the "
                                      "pooler and the word embeddings)"})
    modules_to_save: list[str] = field(default_factory=list, metadata={"help": "extra modules trained in full "
                                       "and saved with the adapter (the task head always is)"})


@dataclass
class TrainConfig:
    epochs: int = field(default=3, metadata={"help": "passes over the training data"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: epochs decide)"})
    batch_size: int = field(default=32, metadata={"help": "GLOBAL examples per optimizer step (split over processes "
                            "and accumulation steps); the tail of each shuffled epoch that fills no batch is skipped"})
    eval_batch_size: int = field(default=64, metadata={"help": "per-process evaluation batch size"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (LoRA wants ~10x a full "
                                 "fine-tune's)"})
    optimizer: Literal["adamw", "lamb"] = field(default="adamw", metadata={"help": "optimizer"})
    weight_decay: float = field(default=0.01, metadata={"help": "weight decay (not on bias/LayerNorm)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps with linear warmup (then linear "
                                "decay to 0, ALBERT's schedule)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the global gradient norm (0: off)"})
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(
        default="auto", metadata={"help": "auto: bf16 on GPUs that support it, else fp16 on GPU, no on CPU"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    seed: int = field(default=42, metadata={"help": "seed for init, shuffling and dropout"})
    torch_threads: int = field(default=0, metadata={"help": "CPU threads per process (0: torch's default); 1 is "
                               "fastest for tiny debug models and on busy machines"})
    log_every: int = field(default=20, metadata={"help": "log the training loss every N steps"})
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0: at the end of each epoch only)"})
    save_every: int = field(default=500, metadata={"help": "checkpoint every N steps (0: only the best ones); every "
                            "evaluation that improves train.best_metric is checkpointed too"})
    keep_last: int = field(default=2, metadata={"help": "periodic checkpoints kept (0: all); the best is always kept"})
    best_metric: str = field(default="", metadata={"help": "validation metric that picks the exported checkpoint; "
                             f"empty: {', '.join(f'{k}: {v}' for k, v in BEST_METRIC_DEFAULTS.items())}"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest complete checkpoint"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start over in a used output_dir"})
    report_to: Literal["tensorboard", "none"] = field(default="tensorboard", metadata={"help": "tracker"})


@dataclass
class QAConfig:
    n_best_size: int = field(default=20, metadata={"help": "start/end candidates per window"})
    max_answer_length: int = field(default=30, metadata={"help": "longest answer span in tokens"})
    version_2_with_negative: bool = field(default=False, metadata={"help": "allow unanswerable questions (SQuAD v2)"})
    null_score_diff_threshold: float = field(default=0.0, metadata={"help": "answer '' when the null score beats "
                                             "the best span's by more than this"})


@dataclass
class HubConfig:
    push_to_hub: bool = field(default=False, metadata={"help": "upload the export (merged model if saved, else "
                              "the adapter or full model) after training"})
    repo_id: str | None = field(default=None, metadata={"help": "namespace/name on the Hub"})
    private: bool = field(default=True, metadata={"help": "create the repository private"})
    revision: str | None = field(default=None, metadata={"help": "branch to push to (default main)"})


@dataclass
class FinetuneLoraConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    lora: LoraSection = field(default_factory=LoraSection)
    train: TrainConfig = field(default_factory=TrainConfig)
    qa: QAConfig = field(default_factory=QAConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    debug: DebugSettings = field(default_factory=DebugSettings)
    output_dir: str = field(default="outputs/finetune/debug", metadata={"help": "where every output goes"})

    @property
    def metric_task(self) -> str:
        return "regression" if self.data.regression else self.data.task

    @property
    def best_metric(self) -> str:
        return self.train.best_metric or BEST_METRIC_DEFAULTS[self.metric_task]

    def validate(self) -> None:
        if bool(self.model.name_or_path) == bool(self.model.preset):
            raise ConfigError("set exactly one of model.name_or_path (pretrained) and model.preset (random init)")
        if self.model.name_or_path:
            check_model_source(self.model.name_or_path)
        if self.model.preset and self.model.preset not in albert_recipes.PRESETS:
            raise ConfigError(f"model.preset={self.model.preset!r} is unknown; "
                              f"choose one of {sorted(albert_recipes.PRESETS)}")
        sources = [bool(self.data.train_file), bool(self.data.dataset_name), self.data.synthetic_examples > 0]
        if sum(sources) != 1:
            raise ConfigError("set exactly one data source: data.train_file (+ validation_file), data.dataset_name, "
                              "or data.synthetic_examples")
        if self.data.train_file and not self.data.validation_file:
            raise ConfigError("data.validation_file is required with data.train_file (metrics need held-out data)")
        if self.data.regression and self.data.task != "sequence_classification":
            raise ConfigError("data.regression applies to task sequence_classification only")
        if self.data.task == "question_answering" and not 0 <= self.data.doc_stride < self.data.max_length // 2:
            raise ConfigError(f"data.doc_stride={self.data.doc_stride} must be in [0, max_length/2)")
        for name in ("epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_every"):
            if getattr(self.train, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self.train, name)} must be at least 1")
        non_negative = {"data.max_train_samples": self.data.max_train_samples,
                        "data.max_eval_samples": self.data.max_eval_samples,
                        "data.synthetic_examples": self.data.synthetic_examples, "data.num_labels": self.data.num_labels,
                        "data.doc_stride": self.data.doc_stride, "train.max_steps": self.train.max_steps,
                        "train.eval_every": self.train.eval_every, "train.save_every": self.train.save_every,
                        "train.keep_last": self.train.keep_last, "train.torch_threads": self.train.torch_threads,
                        "train.weight_decay": self.train.weight_decay, "train.max_grad_norm": self.train.max_grad_norm}
        for key, value in non_negative.items():
            if value < 0:
                raise ConfigError(f"{key}={value} must be >= 0 (0 means: "
                                  f"{NON_NEGATIVE_ZERO.get(key, 'none')})")
        for key, value, low in (("data.max_length", self.data.max_length, 8), ("lora.r", self.lora.r, 1),
                                ("model.tokenizer_vocab_size", self.model.tokenizer_vocab_size, 100)):
            if value < low:
                raise ConfigError(f"{key}={value} must be >= {low}")
        if not 0 <= self.lora.dropout < 1:
            raise ConfigError(f"lora.dropout={self.lora.dropout} must be in [0, 1)")
        if not self.lora.alpha > 0:
            raise ConfigError(f"lora.alpha={self.lora.alpha} must be positive")
        if not self.train.learning_rate > 0:
            raise ConfigError(f"train.learning_rate={self.train.learning_rate} must be positive")
        if self.best_metric not in TASK_METRICS[self.metric_task]:
            raise ConfigError(f"train.best_metric={self.train.best_metric!r} is not a metric of this task; choose one "
                              f"of {list(TASK_METRICS[self.metric_task])}")
        if not 0 <= self.train.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio={self.train.warmup_ratio} must be in [0, 1)")
        if self.hub.push_to_hub and not self.hub.repo_id:
            raise ConfigError("hub.push_to_hub needs hub.repo_id")


def _pretraining_command(folder: str) -> str | None:
    """The shipped pretraining command (a make target when one runs it) whose export is `folder`, if any."""
    import yaml

    for config in sorted((ROOT / "recipes" / "configs" / "pretrain").glob("*.yaml")):
        output_dir = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("output_dir")
        if not output_dir or Path(output_dir) / "final" != Path(folder):
            continue
        relative = config.relative_to(ROOT).as_posix()
        makefile = ROOT / "Makefile"
        target = None
        for line in makefile.read_text(encoding="utf-8").splitlines() if makefile.is_file() else []:
            if re.match(r"^[A-Za-z0-9_.-]+:", line):
                target = line.split(":", 1)[0]
            elif line.startswith("\t") and relative in line and target:
                return f"make {target} (or: accelerate launch recipes/pretrain.py --config {relative})"
        return f"accelerate launch recipes/pretrain.py --config {relative}"
    return None


def check_model_source(name_or_path: str) -> None:
    """A local model folder must exist and hold a config.json; anything else must look like a Hub id."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.name_or_path={name_or_path}: the folder has no config.json; point it at a "
                              "model folder, e.g. a pretraining run's <output_dir>/final")
        return
    hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", name_or_path) and not path.parent.is_dir() or "/" not in name_or_path
    if path.exists() or not hub_id:
        command = _pretraining_command(name_or_path)
        how = (f"it is what `{command}` writes: run that first (from the repository root)" if command else
               "create it with recipes/pretrain.py (it writes <output_dir>/final) or point model.name_or_path at an "
               "existing model folder or a Hub id (namespace/name)")
        raise ConfigError(f"model.name_or_path={name_or_path}: model folder not found; {how}")


# ---------------------------------------------------------------- data


def _columns(data: DataConfig) -> dict[str, str | None]:
    if data.task == "sequence_classification":
        return {"text": data.text_column, "text_pair": data.text_pair_column or None, "label": data.label_column}
    if data.task == "token_classification":
        return {"tokens": data.tokens_column, "tags": data.tags_column}
    return {"id": data.id_column, "question": data.question_column, "context": data.context_column,
            "answers": data.answers_column}


def load_raw_splits(data: DataConfig, seed: int):
    """(train, eval) datasets in canonical columns, truncated to max_*_samples, before any label checks."""
    import datasets

    if data.synthetic_examples:
        train = datasets.Dataset.from_list(finetune_data.synthetic_examples(data.task, data.synthetic_examples, seed))
        evaluation = datasets.Dataset.from_list(
            finetune_data.synthetic_examples(data.task, max(data.synthetic_examples // 4, 8), seed + 1))
        names = (f"synthetic {data.task} train", f"synthetic {data.task} eval")
    else:
        dataset_config = data.dataset_config or None
        train = finetune_data.load_split(data.train_file, data.dataset_name, dataset_config, data.train_split)
        evaluation = finetune_data.load_split(data.validation_file, data.dataset_name, dataset_config,
                                              data.validation_split)
        names = (data.train_file or f"{data.dataset_name}[{data.train_split}]",
                 data.validation_file or f"{data.dataset_name}[{data.validation_split}]")
        train = finetune_data.require_columns(train, _columns(data), names[0])
        evaluation = finetune_data.require_columns(evaluation, _columns(data), names[1])
    if data.max_train_samples:
        train = train.select(range(min(data.max_train_samples, len(train))))
    if data.max_eval_samples:
        evaluation = evaluation.select(range(min(data.max_eval_samples, len(evaluation))))
    return train, evaluation, names


def encode_labels(train, evaluation, names, data: DataConfig, qa_cfg: QAConfig):
    """Labels to ids and checks, on both splits; returns (train, eval, label_names, num_labels)."""
    if data.task == "question_answering":
        for split, name in ((train, names[0]), (evaluation, names[1])):
            try:
                qa.validate_qa_examples(split)
            except ValueError as err:
                raise InputError(f"{name}: {err}") from None
            if not qa_cfg.version_2_with_negative and any(not a["text"] for a in split["answers"]):
                raise InputError(f"{name} has unanswerable questions (empty answers); set "
                                 "qa.version_2_with_negative=true for SQuAD v2-style data")
        return train, evaluation, [], 2
    if data.regression:
        return (finetune_data.encode_regression_labels(train, names[0]),
                finetune_data.encode_regression_labels(evaluation, names[1]), [], 1)
    if data.task == "token_classification":
        label_names = finetune_data.infer_label_names([t for tags in train["tags"] for t in tags], data.label_names)
        if not label_names:
            raise InputError("token classification needs tag names for entity F1: use IOB2 strings as tags or set "
                             "data.label_names")
        return (finetune_data.encode_tag_sequences(train, label_names, names[0]),
                finetune_data.encode_tag_sequences(evaluation, label_names, names[1]), label_names, len(label_names))
    label_names = finetune_data.infer_label_names(train["label"], data.label_names)
    num_labels = data.num_labels or len(label_names)
    if not num_labels:
        num_labels = max(int(v) for v in train["label"]) + 1
    if label_names and len(label_names) != num_labels:
        raise InputError(f"data.num_labels={num_labels} but there are {len(label_names)} label names {label_names}")
    if num_labels < 2:
        raise InputError(f"classification needs at least 2 labels, got num_labels={num_labels} "
                         "(set data.regression=true for a numeric target)")
    label_names = label_names or [str(i) for i in range(num_labels)]
    return (finetune_data.encode_class_labels(train, label_names, num_labels, names[0]),
            finetune_data.encode_class_labels(evaluation, label_names, num_labels, names[1]), label_names, num_labels)


def training_texts(train, task: str):
    if task == "sequence_classification":
        return [t for row in train for t in (row["text"], row.get("text_pair")) if t]
    if task == "token_classification":
        return [" ".join(tokens) for tokens in train["tokens"]]
    return [t for row in train for t in (row["question"], row["context"])]


# ---------------------------------------------------------------- model


def load_tokenizer(cfg: FinetuneLoraConfig, train):
    if cfg.model.tokenizer_path or cfg.model.name_or_path:
        return AutoTokenizer.from_pretrained(cfg.model.tokenizer_path or cfg.model.name_or_path)
    from albert_recipes.tokenization import train_unigram_tokenizer

    logger.info("no tokenizer given: training a %d-piece Unigram tokenizer on the training text",
                cfg.model.tokenizer_vocab_size)
    return train_unigram_tokenizer(training_texts(train, cfg.data.task), vocab_size=cfg.model.tokenizer_vocab_size,
                                   model_max_length=cfg.data.max_length, show_progress=False)


def build_model(cfg: FinetuneLoraConfig, tokenizer, label_names: list[str], num_labels: int):
    head: dict[str, Any] = {"num_labels": num_labels}
    if label_names:
        head["id2label"] = dict(enumerate(label_names))
        head["label2id"] = {name: i for i, name in enumerate(label_names)}
    if cfg.data.regression:
        head["problem_type"] = "regression"
    auto_model = AUTO_MODELS[cfg.data.task]
    if cfg.model.name_or_path:
        # over pretrained weights only the fields that add to them apply (sizes come from the checkpoint)
        extensions = {k: v for k, v in cfg.model.config_overrides.items() if k in PRETRAINED_OVERRIDES}
        model = auto_model.from_pretrained(cfg.model.name_or_path, **{**extensions, **head})
    else:
        config = albert_recipes.AlbertRecipesConfig.from_preset(
            cfg.model.preset, **{"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                                 **cfg.model.config_overrides, **head})
        model = auto_model.from_config(config)
    check_tokenizer_fits(cfg, tokenizer, model.config.vocab_size)
    if cfg.data.max_length > model.config.max_position_embeddings:
        raise InputError(f"data.max_length={cfg.data.max_length} exceeds the model's max_position_embeddings="
                         f"{model.config.max_position_embeddings}")
    return model


def check_tokenizer_fits(cfg: FinetuneLoraConfig, tokenizer, vocab_size: int) -> None:
    """The tokenizer's ids must index the model's embeddings, and mean what they meant in pretraining.

    A smaller vocabulary "fits" the embedding matrix and trains without any error while every id names another
    piece than the one the model learned: refuse a tokenizer that differs from the one saved with the model."""
    ids = tokenizer.get_vocab()
    if max(ids.values()) + 1 > vocab_size:
        raise InputError(f"the tokenizer ({cfg.model.tokenizer_path or cfg.model.name_or_path}) has ids up to "
                         f"{max(ids.values())} but the model only {vocab_size} embeddings; use the tokenizer the "
                         "model was pretrained with (leave model.tokenizer_path empty)")
    own = Path(cfg.model.name_or_path or "")
    if cfg.model.tokenizer_path and cfg.model.name_or_path and (own / "tokenizer_config.json").is_file():
        pretrained = AutoTokenizer.from_pretrained(own).get_vocab()
        if pretrained != ids:
            differ = sum(pretrained.get(piece) != i for piece, i in ids.items())
            raise InputError(f"model.tokenizer_path={cfg.model.tokenizer_path} does not match the tokenizer the model "
                             f"was pretrained with ({own}: {len(pretrained)} pieces, this one {len(ids)}, {differ} "
                             "with another id): every id would mean another piece. Leave model.tokenizer_path empty "
                             "to use the model's own")


def encode_splits(cfg: FinetuneLoraConfig, tokenizer, train, evaluation):
    """(train features, eval features fed to the model, eval features with QA offsets, collator)."""
    data = cfg.data
    if data.task == "question_answering":
        train_features = qa.build_train_features(train, tokenizer, data.max_length, data.doc_stride)
        eval_features = qa.build_eval_features(evaluation, tokenizer, data.max_length, data.doc_stride)
        return (train_features, eval_features.remove_columns(["example_id", "offset_mapping"]), eval_features,
                default_data_collator)
    if data.task == "token_classification":
        encode, collator = finetune_data.tokenize_token_classification, DataCollatorForTokenClassification(tokenizer)
    else:
        encode, collator = finetune_data.tokenize_classification, DataCollatorWithPadding(tokenizer)
    eval_features = encode(evaluation, tokenizer, data.max_length)
    return encode(train, tokenizer, data.max_length), eval_features, eval_features, collator


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model, loader, accelerator, task: str) -> dict[str, list]:
    """Model outputs on the whole eval set in dataset order, gathered from every process."""
    model.eval()
    out: dict[str, list] = {"predictions": [], "labels": [], "start_logits": [], "end_logits": []}
    for batch in tqdm(loader, desc="eval", leave=False, disable=not accelerator.is_main_process):
        outputs = model(**batch)
        if task == "question_answering":
            starts, ends = accelerator.gather_for_metrics((outputs.start_logits, outputs.end_logits))
            out["start_logits"].extend(starts.float().cpu().numpy())
            out["end_logits"].extend(ends.float().cpu().numpy())
        elif task == "token_classification":
            # batches differ in length across processes: pad before gathering, drop -100 positions after
            logits = accelerator.pad_across_processes(outputs.logits, dim=1)
            labels = accelerator.pad_across_processes(batch["labels"], dim=1, pad_index=-100)
            logits, labels = accelerator.gather_for_metrics((logits, labels))
            for row_logits, row_labels in zip(logits.argmax(-1).cpu(), labels.cpu()):
                keep = row_labels != -100
                out["predictions"].append(row_logits[keep].tolist())
                out["labels"].append(row_labels[keep].tolist())
        else:
            logits, labels = accelerator.gather_for_metrics((outputs.logits, batch["labels"]))
            out["predictions"].extend(logits.float().cpu().numpy())
            out["labels"].extend(labels.cpu().numpy())
    model.train()
    return out


def score(outputs: dict[str, list], cfg: FinetuneLoraConfig, evaluation, eval_features, label_names):
    """(metrics, prediction rows for predictions.jsonl, confusion matrix or None)."""
    task = cfg.data.task
    if task == "question_answering":
        answers, nbest = qa.postprocess_qa_predictions(
            evaluation, eval_features, outputs["start_logits"], outputs["end_logits"], cfg.qa.n_best_size,
            cfg.qa.max_answer_length, cfg.qa.version_2_with_negative, cfg.qa.null_score_diff_threshold)
        scores = metrics.squad_metrics(
            [{"id": i, "prediction_text": text} for i, text in answers.items()],
            [{"id": row["id"], "answers": row["answers"]} for row in evaluation])
        rows = [{"id": row["id"], "question": row["question"], "prediction_text": answers[row["id"]],
                 "answers": row["answers"]["text"],
                 "nbest": [{"text": c["text"], "probability": c["probability"]} for c in nbest[row["id"]][:5]]}
                for row in evaluation]
        return scores, rows, None
    if task == "token_classification":
        predicted = [[label_names[i] for i in row] for row in outputs["predictions"]]
        gold = [[label_names[i] for i in row] for row in outputs["labels"]]
        scores = metrics.entity_metrics(predicted, gold)
        matrix = metrics.confusion_matrix(np.concatenate(outputs["predictions"]).astype(int),
                                          np.concatenate(outputs["labels"]).astype(int), len(label_names))
        rows = [{"tokens": row["tokens"][: len(p)], "tags": g, "predicted_tags": p}
                for row, p, g in zip(evaluation, predicted, gold)]
        return scores, rows, matrix
    logits, labels = np.stack(outputs["predictions"]), np.asarray(outputs["labels"])
    if cfg.data.regression:
        predictions = logits[:, 0]
        rows = [{"text": row["text"], **({"text_pair": row["text_pair"]} if "text_pair" in row else {}),
                 "label": float(label), "prediction": float(p)}
                for row, label, p in zip(evaluation, labels, predictions)]
        return metrics.regression_metrics(predictions.tolist(), labels.tolist()), rows, None
    predictions = logits.argmax(-1)
    probabilities = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    rows = [{"text": row["text"], **({"text_pair": row["text_pair"]} if "text_pair" in row else {}),
             "label": label_names[label], "prediction": label_names[p],
             "probabilities": [round(float(x), 5) for x in probs]}
            for row, label, p, probs in zip(evaluation, labels, predictions, probabilities)]
    scores = metrics.classification_metrics(predictions.tolist(), labels.tolist(), len(label_names))
    return scores, rows, metrics.confusion_matrix(predictions, labels, len(label_names))


def trivial_baselines(cfg: FinetuneLoraConfig, train, evaluation, eval_features, label_names) -> dict:
    """The eval metrics of answering without looking at the input, learned from the training set only:
    classification the majority class, regression the training mean, token classification the most frequent tag
    (usually "O"), QA the better of the empty answer and the most frequent training answer."""
    task = cfg.data.task
    if task == "question_answering":
        answers = collections.Counter(a for row in train["answers"] for a in row["text"][:1])
        candidates = [""] + [answers.most_common(1)[0][0]] if answers else [""]
        references = [{"id": row["id"], "answers": row["answers"]} for row in evaluation]
        scored = [(metrics.squad_metrics([{"id": r["id"], "prediction_text": answer} for r in references], references),
                   answer) for answer in candidates]
        best, answer = max(scored, key=lambda pair: pair[0]["f1"])
        return {**best, "answer": answer}
    if task == "token_classification":
        tag = collections.Counter(t for tags in train["tags"] for t in tags).most_common(1)[0][0]
        gold = [[label_names[i] for i in row if i != -100] for row in eval_features["labels"]]
        scores = metrics.entity_metrics([[label_names[tag]] * len(g) for g in gold], gold)
        return {**scores, "tag": label_names[tag]}
    if cfg.data.regression:
        mean = float(np.mean(train["label"]))
        labels = np.asarray(evaluation["label"], dtype=float)
        return {"mse": float(np.mean((labels - mean) ** 2)), "prediction": mean}
    majority = collections.Counter(train["label"]).most_common(1)[0][0]
    scores = metrics.classification_metrics([majority] * len(evaluation), evaluation["label"], len(label_names))
    return {**scores, "class": label_names[majority]}


def curve_panels(cfg: FinetuneLoraConfig, baselines: dict) -> list[dict]:
    metric = cfg.best_metric
    baseline = {"trivial baseline": baselines[metric]} if metric in baselines else {}
    return [{"title": "training loss", "series": ["train/loss"], "labels": ["train"]},
            {"title": f"validation {metric}", "series": [f"eval/{metric}"], "labels": ["validation"],
             "baselines": baseline}]


# ---------------------------------------------------------------- saving


def save_folder(path: Path, write, tokenizer, config_yaml: str, metrics_json: str, card: dict | None = None) -> Path:
    """One export folder, written atomically with the tokenizer, merged config, metrics and model card."""
    from albert_recipes.hub import write_finetune_card

    with atomic_directory(path) as tmp:
        write(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "recipe_config.yaml").write_text(config_yaml, encoding="utf-8")
        (tmp / "metrics.json").write_text(metrics_json, encoding="utf-8")
        if card is not None:  # after save_pretrained, so PEFT's empty README template is replaced
            write_finetune_card(tmp, **card, repo_id=f"your-namespace/{path.parent.name}-{card['kind']}")
    return path


# Settings that may differ on resume: logging, evaluation output, checkpoint cadence, threads, where to push. The
# rest (data, model, LoRA, schedule, batch, seed, ...) shapes the training and is refused (training.resume_conflicts).
RESUME_CHANGEABLE = (
    "output_dir", "train.resume", "train.overwrite_output_dir", "train.log_every", "train.eval_batch_size",
    "train.save_every", "train.keep_last", "train.torch_threads", "train.report_to", "train.cpu",
    "train.gradient_accumulation_steps", "finetune.save_merged", "qa.n_best_size", "qa.max_answer_length",
    "qa.null_score_diff_threshold", "hub.", "debug.",
)
OUTPUTS = ("adapter", "model", "merged", "base", "metrics.json", "predictions.jsonl")  # a finished run
EARLIER_RUN = ("checkpoints", *OUTPUTS, "logs", "curves.png", "confusion_matrix.png", "recipe_config.yaml")


def main(cfg: FinetuneLoraConfig) -> dict:
    # ---- parse -> setup: refuse a used output_dir or an incompatible resume before anything is read or written
    t, task = cfg.train, cfg.data.task
    output_dir = Path(cfg.output_dir)
    accelerator = setup_accelerator(output_dir, gradient_accumulation_steps=t.gradient_accumulation_steps,
                                    mixed_precision=t.mixed_precision, cpu=t.cpu, log_with=t.report_to)
    micro_batch_size(t.batch_size, accelerator.num_processes, t.gradient_accumulation_steps)
    resume_from = prepare_output_dir(output_dir, config_to_dict(cfg), resume=t.resume,
                                     overwrite=t.overwrite_output_dir, changeable=RESUME_CHANGEABLE, outputs=OUTPUTS,
                                     defaults=config_to_dict(type(cfg)()))
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one INFO line per checkpoint file otherwise
    config_yaml = config_to_yaml(cfg)
    accelerator.print(config_yaml)
    set_seed(t.seed)
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)

    # every data problem surfaces here, before a model is built or anything is written
    train_raw, eval_raw, names = load_raw_splits(cfg.data, t.seed)
    train_raw, eval_raw, label_names, num_labels = encode_labels(train_raw, eval_raw, names, cfg.data, cfg.qa)
    logger.info("%s: %d training and %d evaluation examples from %s / %s", task, len(train_raw), len(eval_raw), *names)

    tokenizer = load_tokenizer(cfg, train_raw)
    model = build_model(cfg, tokenizer, label_names, num_labels)
    base_state = None
    if cfg.finetune.mode == "lora":
        from peft import get_peft_model

        # the adapter's base is saved beside it: a random init to be reloadable, a local pretrained model so that
        # the base PEFT's AutoPeftModel... loads carries this task's head config (num_labels, label names)
        if not cfg.model.name_or_path or Path(cfg.model.name_or_path).is_dir():
            base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        modules_to_save = list(cfg.lora.modules_to_save)
        if getattr(model.config, "early_exit_classifiers", False) and "exit_classifiers" not in modules_to_save:
            modules_to_save.append("exit_classifiers")  # new heads: trained in full and saved with the adapter
        peft_config = lora_config(PEFT_TASK_TYPES[task], cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout,
                                  cfg.lora.target_modules or RECIPE_TARGET_MODULES, modules_to_save)
        model = get_peft_model(model, peft_config)
    trainable, total = count_parameters(model)
    logger.info("%s fine-tuning: %s of %s parameters trainable (%.2f%%)", cfg.finetune.mode, f"{trainable:,}",
                f"{total:,}", 100 * trainable / total)

    with accelerator.main_process_first():
        train_features, eval_inputs, eval_features, collator = encode_splits(cfg, tokenizer, train_raw, eval_raw)
    baselines = trivial_baselines(cfg, train_raw, eval_raw, eval_features, label_names)
    steps_per_epoch = len(train_features) // t.batch_size
    if steps_per_epoch < 1:
        raise InputError(f"{len(train_features)} training features are fewer than one batch (train.batch_size="
                         f"{t.batch_size}, the global batch): use more data or a smaller batch")
    total_steps = min(t.max_steps or math.inf, t.epochs * steps_per_epoch)
    optimizer = build_optimizer(model, t.optimizer, t.learning_rate, t.weight_decay)
    scheduler = albert_schedule(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    eval_loader = DataLoader(eval_inputs, batch_size=t.eval_batch_size, collate_fn=collator)
    model, optimizer, eval_loader = accelerator.prepare(model, optimizer, eval_loader)
    accelerator.register_for_checkpointing(scheduler)  # stepped once per optimizer step by train_loop, not prepared

    step, state = 0, {"history": [], "best": None, "seconds_per_epoch": []}
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        step, state = checkpoint_step(resume_from), {**state, **read_trainer_state(resume_from)}
        logger.info("resumed from %s at step %d", resume_from, step)
    elif accelerator.is_main_process:  # a fresh start (train.overwrite_output_dir): no trace of an earlier run
        clear_previous_run(output_dir, EARLIER_RUN)
    accelerator.wait_for_everyone()
    accelerator.init_trackers("finetune_lora", config=flat_hparams(cfg))
    history, metric, sign = state["history"], cfg.best_metric, (-1 if cfg.best_metric in LOWER_IS_BETTER else 1)

    def save(step: int) -> Path:
        keep = [checkpoint_path(output_dir / "checkpoints", state["best"]["step"])] if state["best"] else []
        return save_training_checkpoint(accelerator, output_dir, step, config_yaml=config_yaml, state=state,
                                        keep_last=t.keep_last, keep=keep, debug=cfg.debug)

    def evaluate() -> tuple[dict, list, Any]:
        return score(predict(model, eval_loader, accelerator, task), cfg, eval_raw, eval_features, label_names)

    # ---- train
    progress = tqdm(total=total_steps, initial=step, desc=f"{task} ({cfg.finetune.mode})",
                    disable=not accelerator.is_main_process)
    losses = RunningLoss(accelerator.device)  # mean training loss since the last log
    last = {"eval": None, "eval_step": None, "saved": None, "epoch_start": time.perf_counter()}

    def compute_loss(batch: dict) -> torch.Tensor:
        return losses.add(model(**batch).loss)

    def after_step(step: int, end_of_epoch: bool) -> None:
        if step % t.log_every == 0 or step == total_steps:
            losses.log(accelerator, step, scheduler.get_last_lr()[0], history, progress)
        saved = False
        if end_of_epoch:
            state["seconds_per_epoch"].append(time.perf_counter() - last["epoch_start"])
            last["epoch_start"] = time.perf_counter()
        if end_of_epoch or step == total_steps or (t.eval_every and step % t.eval_every == 0):
            last["eval"], last["eval_step"] = evaluate(), step
            scores = last["eval"][0]
            accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=step)
            history.append({"step": step, "epoch": step / steps_per_epoch, **{f"eval/{k}": v for k, v in scores.items()}})
            logger.info("step %d (epoch %.2f): %s", step, step / steps_per_epoch,
                        ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
            if state["best"] is None or sign * scores[metric] > sign * state["best"]["value"]:
                state["best"] = {"step": step, "metric": metric, "value": scores[metric]}
                last["saved"], saved = (step, save(step)), True  # the exported model comes from this checkpoint
        if t.save_every and step % t.save_every == 0 and not saved:
            last["saved"] = (step, save(step))
        cfg.debug.after_step(step)

    with StopSignals(accelerator) as stop:
        step = train_loop(
            accelerator, model, optimizer, scheduler, max_steps=total_steps, start_step=step,
            loader_for_epoch=lambda epoch, skip: epoch_loader(train_features, collator, batch_size=t.batch_size,
                                                              accelerator=accelerator, seed=t.seed, epoch=epoch,
                                                              skip_steps=skip),
            steps_in_epoch=lambda epoch: steps_per_epoch, max_grad_norm=t.max_grad_norm, compute_loss=compute_loss,
            after_step=after_step, stop=stop, progress=progress)
        progress.close()
        if step < total_steps:  # Ctrl-C or SIGTERM: a checkpoint at this step, then one line on how to continue
            saved = last["saved"][1] if last["saved"] and last["saved"][0] == step else save(step)
            raise interrupted(stop, step, saved)

    # ---- the best checkpoint is what gets exported
    best = state["best"]
    if best is not None and best["step"] != last["eval_step"]:
        accelerator.load_state(str(checkpoint_path(output_dir / "checkpoints", best["step"])))
        last["eval"] = None
        logger.info("exporting the best checkpoint: step %d, %s=%.4f", best["step"], metric, best["value"])
    scores, rows, matrix = last["eval"] or evaluate()

    # ---- save
    result = {
        "task": task, "mode": cfg.finetune.mode, "eval": scores, "baselines": baselines,
        "best": {**best, "checkpoint": str(checkpoint_path(output_dir / "checkpoints", best["step"]))},
        "history": history, "parameters": {"trainable": trainable, "total": total},
        "train": {"examples": len(train_raw), "features": len(train_features), "steps": step,
                  "batch_size": t.batch_size, "seconds_per_epoch": state["seconds_per_epoch"]},
        "eval_examples": len(eval_raw), "label_names": label_names,
    }
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if not accelerator.is_main_process:
        return result
    logger.info("%s: %s (trivial baseline: %s)", "exported model", ", ".join(f"{k}={v:.4f}" for k, v in scores.items()),
                ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in baselines.items()))
    metrics_json = json.dumps(result, indent=2) + "\n"
    unwrapped = accelerator.unwrap_model(model)
    folders = {}
    hub_base = cfg.model.name_or_path if not Path(cfg.model.name_or_path or ".").exists() else None  # a Hub id
    card = {"result": result, "recipe_config": config_to_dict(cfg), "base_model": hub_base}  # for every export
    if cfg.finetune.mode == "lora":
        if base_state is not None:
            base = type(unwrapped.get_base_model())(unwrapped.get_base_model().config)
            base.load_state_dict(base_state)
            folders["base"] = save_folder(output_dir / "base", base.save_pretrained, tokenizer, config_yaml,
                                          metrics_json)
            unwrapped.peft_config["default"].base_model_name_or_path = str(folders["base"].resolve())
        folders["adapter"] = save_folder(output_dir / "adapter", unwrapped.save_pretrained, tokenizer, config_yaml,
                                         metrics_json, {"kind": "adapter", **card})
        if cfg.finetune.save_merged:
            merged = unwrapped.merge_and_unload()
            folders["merged"] = save_folder(output_dir / "merged", merged.save_pretrained, tokenizer, config_yaml,
                                            metrics_json, {"kind": "merged", **card})
    else:
        folders["model"] = save_folder(output_dir / "model", unwrapped.save_pretrained, tokenizer, config_yaml,
                                       metrics_json, {"kind": "model", **card})
    atomic_write_text(output_dir / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(output_dir / "metrics.json", metrics_json)
    atomic_write_text(output_dir / "recipe_config.yaml", config_yaml)
    plot_curves(history, curve_panels(cfg, baselines), output_dir / "curves.png")
    if matrix is not None:
        metrics.plot_confusion_matrix(matrix, label_names, output_dir / "confusion_matrix.png")
    logger.info("saved %s under %s", ", ".join(folders), output_dir)

    if cfg.hub.push_to_hub:
        from albert_recipes import hub

        export = folders.get("merged") or folders.get("adapter") or folders["model"]
        kind = next(k for k in ("merged", "adapter", "model") if k in folders)
        hub.write_finetune_card(export, kind=kind, **card, repo_id=cfg.hub.repo_id)
        hub.push_folder_to_hub(export, cfg.hub.repo_id, private=cfg.hub.private, revision=cfg.hub.revision)
    return {**result, "folders": {k: str(v) for k, v in folders.items()}}


if __name__ == "__main__":
    run_cli(main, FinetuneLoraConfig, __doc__)
