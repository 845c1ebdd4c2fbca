"""Fine-tune ALBERT as an encoder-decoder (`transformers.EncoderDecoderModel`, ALBERT on both sides) for
summarization or translation: source text in, target text out. A plain accelerate loop on the shared training core;
runs alone or under `accelerate launch`.

    python recipes/finetune_seq2seq.py --config recipes/configs/finetune_seq2seq/debug.yaml
    python -m albert_recipes.seq2seq_data ../shared/data/wikitext-2/valid.txt ../shared/data/wikitext-2/test.txt \
        --output outputs/seq2seq/wikitext_headings
    python recipes/finetune_seq2seq.py --config recipes/configs/finetune_seq2seq/wikitext_headings.yaml

Warm start (Rothe et al. 2020, arXiv 1907.12461): `model.name_or_path` is a pretrained export (recipes/pretrain.py's
`final/`); encoder and decoder both start from it, the decoder with a causal mask and a fresh cross-attention
sublayer, shared across depth like the rest of ALBERT (`model.tie_encoder_decoder=true` also shares the encoder's
and decoder's weights). Or a random `model.preset`, the baseline that shows what pretraining adds. Decoder mode is
this project's extension of ALBERT, not the paper's.

Evaluations during training decode greedily on the validation split and keep the best checkpoint by
`train.best_metric`; the exported model is re-scored with `generation.*` (beam search by default) on validation and
test, next to trivial baselines: the first words of the source, and the most frequent training target.
Outputs under `output_dir`: `model/` (EncoderDecoderModel + tokenizer + the two model files; loads with
`EncoderDecoderModel.from_pretrained` after `import albert_recipes`), `predictions.jsonl` (per split),
`metrics.json`, `curves.png`, `recipe_config.yaml`, `checkpoints/`, `logs/` (TensorBoard).
"""

from __future__ import annotations

import collections
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorForSeq2Seq

import albert_recipes
from albert_recipes import finetune_data, seq2seq, seq2seq_data, seq2seq_metrics
from albert_recipes.checkpointing import checkpoint_path, checkpoint_step
from albert_recipes.cli import ConfigError, config_to_dict, config_to_yaml, flat_hparams, run_cli
from albert_recipes.errors import InputError
from albert_recipes.io_utils import atomic_write_text
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

logger = logging.getLogger("finetune_seq2seq")

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "exact_match")


@dataclass
class ModelConfig:
    name_or_path: str = field(default="", metadata={"help": "pretrained export that warm-starts both sides (e.g. "
                              "outputs/pretrain/small/final); empty: random init from model.preset"})
    decoder_name_or_path: str = field(default="", metadata={"help": "a different export for the decoder (default: "
                                      "name_or_path)"})
    preset: str = field(default="", metadata={"help": "random-init size (tiny, base, ...) when no name_or_path"})
    config_overrides: dict = field(default_factory=dict, metadata={"help": "AlbertRecipesConfig fields over the "
                                   "preset, e.g. {hidden_size: 64}"})
    tie_encoder_decoder: bool = field(default=False, metadata={"help": "one set of weights for encoder and decoder "
                                      "(not their cross-attention): Rothe et al.'s share, half the parameters"})
    tokenizer_path: str = field(default="", metadata={"help": "tokenizer folder; default: name_or_path's, or for a "
                                "preset a Unigram tokenizer trained on the training sources and targets"})
    tokenizer_vocab_size: int = field(default=2000, metadata={"help": "vocab size when training that tokenizer"})


@dataclass
class DataConfig:
    train_file: str = field(default="", metadata={"help": ".csv/.tsv/.json/.jsonl training pairs"})
    validation_file: str = field(default="", metadata={"help": "same for validation (model selection)"})
    test_file: str = field(default="", metadata={"help": "optional held-out test pairs, scored once at the end"})
    dataset_name: str = field(default="", metadata={"help": "datasets.load_dataset name when no files are given"})
    dataset_config: str = field(default="", metadata={"help": "its configuration name"})
    train_split: str = field(default="train", metadata={"help": "split of dataset_name to train on"})
    validation_split: str = field(default="validation", metadata={"help": "split of dataset_name for validation"})
    test_split: str = field(default="", metadata={"help": "split of dataset_name for the test (empty: none)"})
    source_column: str = field(default="source", metadata={"help": "input text column"})
    target_column: str = field(default="target", metadata={"help": "output text column (summary, translation)"})
    synthetic_task: Literal["", "copy", "reverse"] = field(default="", metadata={"help": "generated pairs instead of "
                                                           "files: copy or reverse random words (smoke tests)"})
    synthetic_examples: int = field(default=512, metadata={"help": "training pairs of synthetic_task (validation: "
                                    "a quarter as many)"})
    max_source_length: int = field(default=128, metadata={"help": "source tokens kept (incl. [CLS]/[SEP])"})
    max_target_length: int = field(default=32, metadata={"help": "target tokens kept (incl. the end token)"})
    max_train_samples: int = field(default=0, metadata={"help": "use only the first N training pairs (0: all)"})
    max_eval_samples: int = field(default=0, metadata={"help": "use only the first N validation/test pairs (0: all)"})


@dataclass
class GenerationConfig:
    num_beams: int = field(default=4, metadata={"help": "beam width for the final scores (1: greedy)"})
    max_new_tokens: int = field(default=0, metadata={"help": "longest output (0: data.max_target_length)"})
    length_penalty: float = field(default=1.0, metadata={"help": "beam score / length**penalty"})
    no_repeat_ngram_size: int = field(default=0, metadata={"help": "forbid repeating n-grams (0: off)"})
    baseline_words: int = field(default=0, metadata={"help": "first-words baseline length (0: the mean training "
                                "target length in words, rounded)"})


@dataclass
class TrainConfig:
    epochs: int = field(default=10, metadata={"help": "passes over the training data"})
    max_steps: int = field(default=0, metadata={"help": "stop after this many optimizer steps (0: epochs decide)"})
    batch_size: int = field(default=32, metadata={"help": "GLOBAL training batch (all processes x accumulation)"})
    eval_batch_size: int = field(default=64, metadata={"help": "per-process batch for evaluation and generation"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    optimizer: Literal["adamw", "lamb"] = field(default="adamw", metadata={"help": "optimizer"})
    weight_decay: float = field(default=0.01, metadata={"help": "weight decay (not on bias/LayerNorm)"})
    warmup_ratio: float = field(default=0.1, metadata={"help": "fraction of steps with linear warmup"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the global gradient norm (0: off)"})
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = field(default="auto", metadata={"help": "autocast"})
    seed: int = field(default=42, metadata={"help": "seed for init, data order and dropout"})
    torch_threads: int = field(default=0, metadata={"help": "CPU threads per process (0: torch's default)"})
    log_every: int = field(default=20, metadata={"help": "log the training loss every N steps"})
    eval_every: int = field(default=0, metadata={"help": "evaluate every N steps (0: at each epoch's end)"})
    save_every: int = field(default=0, metadata={"help": "checkpoint every N steps (0: only the best ones)"})
    keep_last: int = field(default=2, metadata={"help": "periodic checkpoints kept (0: all); the best is kept"})
    best_metric: Literal["rouge1", "rouge2", "rougeL", "rougeLsum", "bleu", "chrf", "exact_match"] = field(
        default="rougeL", metadata={"help": "validation metric that picks the exported checkpoint"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest complete checkpoint"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "start over in a used output_dir"})
    cpu: bool = field(default=False, metadata={"help": "train on the CPU even if a GPU is present"})
    report_to: Literal["tensorboard", "none"] = field(default="tensorboard", metadata={"help": "tracker"})


@dataclass
class FinetuneSeq2SeqConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    debug: DebugSettings = field(default_factory=DebugSettings)
    output_dir: str = field(default="outputs/seq2seq/debug", metadata={"help": "where every output goes"})

    def validate(self) -> None:
        if bool(self.model.name_or_path) == bool(self.model.preset):
            raise ConfigError("set exactly one of model.name_or_path (warm start) and model.preset (random init)")
        if self.model.preset and self.model.preset not in albert_recipes.PRESETS:
            raise ConfigError(f"model.preset={self.model.preset!r} is unknown; "
                              f"choose one of {sorted(albert_recipes.PRESETS)}")
        if self.model.decoder_name_or_path and not self.model.name_or_path:
            raise ConfigError("model.decoder_name_or_path needs model.name_or_path for the encoder")
        sources = [bool(self.data.train_file), bool(self.data.dataset_name), bool(self.data.synthetic_task)]
        if sum(sources) != 1:
            raise ConfigError("set exactly one data source: data.train_file (+ validation_file), data.dataset_name, "
                              "or data.synthetic_task")
        if self.data.train_file and not self.data.validation_file:
            raise ConfigError("data.validation_file is required with data.train_file (model selection needs it)")
        for name in ("max_source_length", "synthetic_examples"):
            if getattr(self.data, name) < 4:
                raise ConfigError(f"data.{name}={getattr(self.data, name)} must be at least 4")
        if self.data.max_target_length < 2:
            raise ConfigError(f"data.max_target_length={self.data.max_target_length} must be at least 2 "
                              "(one token and the end token)")
        for name in ("max_train_samples", "max_eval_samples"):
            if getattr(self.data, name) < 0:
                raise ConfigError(f"data.{name}={getattr(self.data, name)} must be >= 0 (0: all)")
        if self.generation.num_beams < 1 or self.generation.max_new_tokens < 0 or self.generation.baseline_words < 0:
            raise ConfigError("generation.num_beams must be >= 1, max_new_tokens and baseline_words >= 0")
        for name in ("epochs", "batch_size", "eval_batch_size", "gradient_accumulation_steps", "log_every"):
            if getattr(self.train, name) < 1:
                raise ConfigError(f"train.{name}={getattr(self.train, name)} must be at least 1")
        if self.train.max_steps < 0 or self.train.eval_every < 0 or self.train.save_every < 0:
            raise ConfigError("train.max_steps, eval_every and save_every must be >= 0")
        if not self.train.learning_rate > 0:
            raise ConfigError(f"train.learning_rate={self.train.learning_rate} must be positive")
        if not 0 <= self.train.warmup_ratio < 1:
            raise ConfigError(f"train.warmup_ratio={self.train.warmup_ratio} must be in [0, 1)")


# ---------------------------------------------------------------- data


def load_pairs(data: DataConfig, seed: int) -> dict[str, tuple]:
    """{split: (dataset with source/target columns, name)} for train, validation and (if given) test."""
    import datasets

    if data.synthetic_task:
        made = {"train": seq2seq_data.synthetic_pairs(data.synthetic_task, data.synthetic_examples, seed),
                "validation": seq2seq_data.synthetic_pairs(data.synthetic_task,
                                                           max(data.synthetic_examples // 4, 16), seed + 1)}
        return {split: (datasets.Dataset.from_list(rows), f"synthetic {data.synthetic_task} {split}")
                for split, rows in made.items()}
    files = {"train": data.train_file, "validation": data.validation_file, "test": data.test_file}
    splits = {"train": data.train_split, "validation": data.validation_split, "test": data.test_split}
    pairs = {}
    for split in ("train", "validation", "test"):
        if not files[split] and not (data.dataset_name and splits[split]):
            continue
        dataset = finetune_data.load_split(files[split], data.dataset_name, data.dataset_config or None, splits[split])
        name = files[split] or f"{data.dataset_name}[{splits[split]}]"
        dataset = finetune_data.require_columns(
            dataset, {"source": data.source_column, "target": data.target_column}, name)
        for row, example in enumerate(dataset):
            if not isinstance(example["source"], str) or not isinstance(example["target"], str):
                raise InputError(f"{name}, row {row}: source and target must be text, got {example['source']!r:.60} "
                                 f"and {example['target']!r:.60}")
        limit = data.max_train_samples if split == "train" else data.max_eval_samples
        if limit:
            dataset = dataset.select(range(min(limit, len(dataset))))
        pairs[split] = (dataset, name)
    return pairs


def load_tokenizer(cfg: FinetuneSeq2SeqConfig, train):
    if cfg.model.tokenizer_path or cfg.model.name_or_path:
        return AutoTokenizer.from_pretrained(cfg.model.tokenizer_path or cfg.model.name_or_path)
    from albert_recipes.tokenization import train_unigram_tokenizer

    logger.info("no tokenizer given: training a %d-piece Unigram tokenizer on the training text",
                cfg.model.tokenizer_vocab_size)
    texts = [text for row in train for text in (row["source"], row["target"])]
    return train_unigram_tokenizer(texts, vocab_size=cfg.model.tokenizer_vocab_size,
                                   model_max_length=cfg.data.max_source_length, show_progress=False)


def build_model(cfg: FinetuneSeq2SeqConfig, tokenizer):
    m = cfg.model
    if m.name_or_path:
        model = seq2seq.warm_started(m.name_or_path, m.decoder_name_or_path or None, tie=m.tie_encoder_decoder)
    else:
        config = albert_recipes.AlbertRecipesConfig.from_preset(
            m.preset, **{"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, **m.config_overrides})
        model = seq2seq.random_init(config, tie=m.tie_encoder_decoder)
    for side in ("encoder", "decoder"):
        config = getattr(model.config, side)
        if len(tokenizer) > config.vocab_size:
            raise InputError(f"the tokenizer has {len(tokenizer)} tokens but the {side} only {config.vocab_size} "
                             "embeddings; use the tokenizer the model was pretrained with")
    for name, length, side in (("max_source_length", cfg.data.max_source_length, "encoder"),
                               ("max_target_length", cfg.data.max_target_length, "decoder")):
        positions = getattr(model.config, side).max_position_embeddings
        if length > positions:
            raise InputError(f"data.{name}={length} exceeds the {side}'s max_position_embeddings={positions}")
    seq2seq.set_special_tokens(model, *seq2seq_data.special_token_ids(tokenizer))
    return model


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def predict(model, loader, accelerator, tokenizer, generate_kwargs: dict) -> tuple[list[str], float]:
    """Decoded outputs for the whole split in dataset order (gathered from every process), and the mean
    teacher-forced loss."""
    model.eval()
    unwrapped = accelerator.unwrap_model(model)
    texts, losses = [], []
    for batch in tqdm(loader, desc="generate", leave=False, disable=not accelerator.is_main_process):
        losses.append(accelerator.gather(model(**batch).loss.detach().reshape(1)).float().mean())
        generated = unwrapped.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                       **generate_kwargs)
        generated = accelerator.pad_across_processes(generated, dim=1, pad_index=tokenizer.pad_token_id)
        texts.extend(t.strip() for t in tokenizer.batch_decode(accelerator.gather_for_metrics(generated),
                                                                skip_special_tokens=True))
    model.train()
    return texts, float(torch.stack(losses).mean())


def trivial_baselines(train, evaluation, words: int) -> tuple[dict, dict]:
    """Scores of the first `words` source words, and of always answering the most frequent training target."""
    references = evaluation["target"]
    most_frequent = collections.Counter(train["target"]).most_common(1)[0][0]
    outputs = {f"first_{words}_words": seq2seq_data.first_words_baseline(evaluation["source"], words),
               "most_frequent_target": [most_frequent] * len(references)}
    scores = {name: seq2seq_metrics.generation_metrics(texts, references) for name, texts in outputs.items()}
    return scores, outputs


def curve_panels(metric: str, baselines: dict) -> list[dict]:
    return [
        {"title": "loss", "series": ["train/loss", "eval/loss"], "labels": ["train", "validation"]},
        {"title": f"validation {metric} (greedy)", "series": [f"eval/{metric}"], "labels": [metric],
         "baselines": {name: scores[metric] for name, scores in baselines.items()}},
    ]


RESUME_CHANGEABLE = (
    "output_dir", "train.resume", "train.overwrite_output_dir", "train.log_every", "train.eval_batch_size",
    "train.save_every", "train.keep_last", "train.torch_threads", "train.report_to", "train.cpu",
    "train.gradient_accumulation_steps", "generation.", "debug.",
)
OUTPUTS = ("model", "metrics.json", "predictions.jsonl")  # a finished run
EARLIER_RUN = ("checkpoints", *OUTPUTS, "logs", "curves.png", "recipe_config.yaml")


def main(cfg: FinetuneSeq2SeqConfig) -> dict:
    # ---- parse -> setup: refuse a used output_dir or an incompatible resume before anything is read or written
    t, g = cfg.train, cfg.generation
    output_dir = Path(cfg.output_dir)
    accelerator = setup_accelerator(output_dir, gradient_accumulation_steps=t.gradient_accumulation_steps,
                                    mixed_precision=t.mixed_precision, cpu=t.cpu, log_with=t.report_to)
    micro_batch_size(t.batch_size, accelerator.num_processes, t.gradient_accumulation_steps)
    resume_from = prepare_output_dir(output_dir, config_to_dict(cfg), resume=t.resume,
                                     overwrite=t.overwrite_output_dir, changeable=RESUME_CHANGEABLE, outputs=OUTPUTS,
                                     defaults=config_to_dict(type(cfg)()))
    logging.basicConfig(level=logging.INFO if accelerator.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)
    config_yaml = config_to_yaml(cfg)
    accelerator.print(config_yaml)
    set_seed(t.seed)
    if t.torch_threads:
        torch.set_num_threads(t.torch_threads)

    # every data or model-source problem surfaces here, before a model is built or anything is written
    for source in (cfg.model.name_or_path, cfg.model.decoder_name_or_path, cfg.model.tokenizer_path):
        if source:
            seq2seq.check_pretrained_source(source)
    pairs = load_pairs(cfg.data, t.seed)
    train_raw, eval_raw = pairs["train"][0], pairs["validation"][0]
    logger.info("%s", ", ".join(f"{split}: {len(ds)} pairs from {name}" for split, (ds, name) in pairs.items()))
    tokenizer = load_tokenizer(cfg, train_raw)
    model = build_model(cfg, tokenizer)
    parameters = len({id(p) for p in model.parameters()}), sum(p.numel() for p in model.parameters())
    logger.info("EncoderDecoderModel (%s, %s): %s parameters",
                "warm-started from " + cfg.model.name_or_path if cfg.model.name_or_path else "random init",
                "encoder and decoder tied" if cfg.model.tie_encoder_decoder else "untied", f"{parameters[1]:,}")

    with accelerator.main_process_first():
        features = {split: seq2seq_data.tokenize_pairs(ds, tokenizer, cfg.data.max_source_length,
                                                       cfg.data.max_target_length) for split, (ds, _) in pairs.items()}
    collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
    words = g.baseline_words or max(1, round(sum(len(x.split()) for x in train_raw["target"]) / len(train_raw)))
    baselines, _ = trivial_baselines(train_raw, eval_raw, words)
    steps_per_epoch = len(features["train"]) // t.batch_size
    if steps_per_epoch < 1:
        raise InputError(f"{len(features['train'])} training pairs are fewer than one batch (train.batch_size="
                         f"{t.batch_size}, the global batch): use more data or a smaller batch")
    total_steps = min(t.max_steps or math.inf, t.epochs * steps_per_epoch)
    optimizer = build_optimizer(model, t.optimizer, t.learning_rate, t.weight_decay)
    scheduler = albert_schedule(optimizer, int(t.warmup_ratio * total_steps), total_steps)
    eval_loaders = {split: DataLoader(features[split], batch_size=t.eval_batch_size, collate_fn=collator)
                    for split in pairs if split != "train"}
    model, optimizer, *prepared = accelerator.prepare(model, optimizer, *eval_loaders.values())
    eval_loaders = dict(zip(eval_loaders, prepared))
    accelerator.register_for_checkpointing(scheduler)

    step, state = 0, {"history": [], "best": None}
    if resume_from is not None:
        accelerator.load_state(str(resume_from))
        step, state = checkpoint_step(resume_from), read_trainer_state(resume_from)
        logger.info("resumed from %s at step %d", resume_from, step)
    elif accelerator.is_main_process:
        clear_previous_run(output_dir, EARLIER_RUN)
    accelerator.wait_for_everyone()
    accelerator.init_trackers("finetune_seq2seq", config=flat_hparams(cfg))
    history, metric = state["history"], t.best_metric
    max_new_tokens = g.max_new_tokens or cfg.data.max_target_length
    greedy = {"max_new_tokens": max_new_tokens, "num_beams": 1, "do_sample": False}

    def save(step: int) -> Path:
        keep = [checkpoint_path(output_dir / "checkpoints", state["best"]["step"])] if state["best"] else []
        return save_training_checkpoint(accelerator, output_dir, step, config_yaml=config_yaml, state=state,
                                        keep_last=t.keep_last, keep=keep, debug=cfg.debug)

    # ---- train
    progress = tqdm(total=total_steps, initial=step, desc="seq2seq", disable=not accelerator.is_main_process)
    losses = RunningLoss(accelerator.device)
    last = {"saved": None, "start": time.perf_counter()}

    def compute_loss(batch: dict) -> torch.Tensor:
        return losses.add(model(**batch).loss)

    def after_step(step: int, end_of_epoch: bool) -> None:
        if step % t.log_every == 0 or step == total_steps:
            losses.log(accelerator, step, scheduler.get_last_lr()[0], history, progress)
        saved = False
        if (t.eval_every and step % t.eval_every == 0) or (not t.eval_every and end_of_epoch) or step == total_steps:
            texts, loss = predict(model, eval_loaders["validation"], accelerator, tokenizer, greedy)
            scores = {**seq2seq_metrics.generation_metrics(texts, eval_raw["target"]), "loss": loss}
            accelerator.log({f"eval/{k}": v for k, v in scores.items()}, step=step)
            history.append({"step": step, "epoch": step / steps_per_epoch, **{f"eval/{k}": v for k, v in scores.items()}})
            logger.info("step %d (epoch %.1f): %s", step, step / steps_per_epoch,
                        ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
            if state["best"] is None or scores[metric] > state["best"]["value"]:
                state["best"] = {"step": step, "metric": metric, "value": scores[metric]}
                last["saved"], saved = (step, save(step)), True  # the exported model comes from this checkpoint
        if t.save_every and step % t.save_every == 0 and not saved:
            last["saved"] = (step, save(step))
        cfg.debug.after_step(step)

    with StopSignals(accelerator) as stop:
        step = train_loop(
            accelerator, model, optimizer, scheduler, max_steps=total_steps, start_step=step,
            loader_for_epoch=lambda epoch, skip: epoch_loader(features["train"], collator, batch_size=t.batch_size,
                                                              accelerator=accelerator, seed=t.seed, epoch=epoch,
                                                              skip_steps=skip),
            steps_in_epoch=lambda epoch: steps_per_epoch, max_grad_norm=t.max_grad_norm, compute_loss=compute_loss,
            after_step=after_step, stop=stop, progress=progress)
        progress.close()
        if step < total_steps:  # Ctrl-C or SIGTERM: a checkpoint at this step, then one line on how to continue
            saved = last["saved"][1] if last["saved"] and last["saved"][0] == step else save(step)
            raise interrupted(stop, step, saved)
    train_seconds = time.perf_counter() - last["start"]

    # ---- the best checkpoint, decoded with generation.* (beam search by default), is what gets exported
    best = state["best"]
    if best["step"] != step:
        accelerator.load_state(str(checkpoint_path(output_dir / "checkpoints", best["step"])))
        logger.info("exporting the best checkpoint: step %d, %s=%.4f", best["step"], metric, best["value"])
    final = {"max_new_tokens": max_new_tokens, "num_beams": g.num_beams, "length_penalty": g.length_penalty,
             "no_repeat_ngram_size": g.no_repeat_ngram_size, "do_sample": False}
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.generation_config.update(**final)  # saved with the model: generate() defaults to what was scored
    results, rows = {}, []
    for split, loader in eval_loaders.items():
        texts, loss = predict(model, loader, accelerator, tokenizer, final)
        dataset = pairs[split][0]
        split_baselines, baseline_texts = trivial_baselines(train_raw, dataset, words)
        results[split] = {"model": {**seq2seq_metrics.generation_metrics(texts, dataset["target"]), "loss": loss},
                          "baselines": split_baselines, "examples": len(dataset)}
        rows += [{"split": split, "source": row["source"], "reference": row["target"], "prediction": text,
                  **{f"baseline_{name}": outs[i] for name, outs in baseline_texts.items()}}
                 for i, (row, text) in enumerate(zip(dataset, texts))]

    # ---- save
    result = {
        "scores": results, "best": best, "history": history, "generation": final,
        "model": {"warm_start": cfg.model.name_or_path or None, "tie_encoder_decoder": cfg.model.tie_encoder_decoder,
                  "parameters": parameters[1]},
        "train": {"pairs": len(train_raw), "steps": step, "batch_size": t.batch_size, "seconds": train_seconds},
    }
    accelerator.wait_for_everyone()
    accelerator.end_training()
    if not accelerator.is_main_process:
        return result
    for split, scores in results.items():
        logger.info("%s: model %s | %s", split, ", ".join(f"{k}={scores['model'][k]:.4f}" for k in ("rouge1", "rougeL",
                    "bleu", "exact_match")), " | ".join(f"{name} rougeL={b['rougeL']:.4f}"
                                                        for name, b in scores["baselines"].items()))
    metrics_json = json.dumps(result, indent=2) + "\n"
    folder = seq2seq.save_encoder_decoder(unwrapped, output_dir / "model", tokenizer,
                                          extra_files={"recipe_config.yaml": config_yaml, "metrics.json": metrics_json})
    atomic_write_text(output_dir / "predictions.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write_text(output_dir / "metrics.json", metrics_json)
    atomic_write_text(output_dir / "recipe_config.yaml", config_yaml)
    plot_curves(history, curve_panels(metric, baselines), output_dir / "curves.png")
    logger.info("saved the model to %s", folder)
    return {**result, "folder": str(folder)}


if __name__ == "__main__":
    run_cli(main, FinetuneSeq2SeqConfig, __doc__)
