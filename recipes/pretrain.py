"""Pretrain ALBERT (masked LM + sentence-order prediction, LAMB) from raw text, as in Lan et al. (2019).

    python recipes/pretrain.py --config recipes/configs/pretrain/debug.yaml train.max_steps=20
    accelerate launch recipes/pretrain.py --config recipes/configs/pretrain/tiny.yaml
    accelerate launch --config_file recipes/accelerate_configs/cpu_2proc.yaml recipes/pretrain.py --config \
        recipes/configs/pretrain/debug.yaml      (two CPU processes; a bare `--num_processes 2 --cpu` starts one)
    accelerate launch --config_file recipes/accelerate_configs/multi_gpu.yaml recipes/pretrain.py --config ...
    python recipes/pretrain.py --config recipes/configs/pretrain/tiny.yaml train.resume=true   (or --train.resume=true)

With no data settings it trains on the embedded corpus (Python's reference documentation, no download) and a
Unigram tokenizer trained on it. Data preparation (albert_recipes.pretraining_data: documents, tokenizer, token ids,
SOP examples with fresh cuts every epoch) streams into memory-mapped Arrow files cached under `data.cache_dir`. Writes `<output_dir>/checkpoints/step-*/` (atomic, keep-last-K; `train.resume=true`
continues from the newest complete one, bit for bit, and refuses if a setting that shapes the data order, schedule
or model changed), TensorBoard logs under `<output_dir>/logs`, and the Hub-ready export `<output_dir>/final/` (model
+ tokenizer + config with auto_map + recipe_config.yaml + metrics.json + curves.png). Ctrl-C or SIGTERM stops at the
next optimizer step with a checkpoint. Held-out SOP accuracy is reported for all pairs and separately for
same-document pairs (what the paper's 86.5% measures, chance 50%) and random-document pairs (always label 1), with
the trivial baselines (unigram MLM accuracy, majority SOP label) in metrics.json under `baselines`.

Determinism: global batch s of epoch e is a fixed slice of a permutation seeded by (seed, e) and every example is
masked from (seed, e, example_id), so data and masks depend on neither the number of processes nor the
accumulation split (1 process x 2 accumulation steps trains on the same global batches as 2 processes x 1), nor on
where a run was interrupted; accelerate's checkpoints carry the model, optimizer, scheduler and RNG states.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining
from albert_recipes import pretraining_metrics as pm
from albert_recipes.checkpointing import checkpoint_step
from albert_recipes.cli import ConfigError, config_to_dict, config_to_yaml, flat_hparams, run_cli
from albert_recipes.configuration_albert_recipes import PRESETS
from albert_recipes.errors import InputError
from albert_recipes.fill_mask import fill_mask_samples, format_samples, masked_lm_view
from albert_recipes.io_utils import atomic_directory, atomic_write_text
from albert_recipes.masking import NgramMaskingCollator
from albert_recipes.packing import PackingCollator
from albert_recipes.training import (
    DebugSettings,
    StopSignals,
    Throughput,
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
    residual_attention: bool = field(default=False, metadata={"help": "ours: RealFormer residual attention scores "
                                     "(eager attention only; see AlbertRecipesConfig)"})
    depth_weighted_average: bool = field(default=False, metadata={"help": "ours: DenseFormer depth-weighted "
                                         "average of earlier layer outputs"})
    layerdrop: float = field(default=0.0, metadata={"help": "ours: probability of skipping a whole layer "
                             "application in training, in [0, 1)"})
    init_embeddings: Literal["random", "word2vec"] = field(
        default="random", metadata={"help": "word2vec: start the (vocab, E) word embeddings from gensim Word2Vec "
                                    "trained on the tokenized training corpus (albert_recipes.word_vectors)"},
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
    dupe_factor: int = field(default=1, metadata={"help": "cutting rounds built ahead of time; epoch e always uses "
                             "round e (fresh segment boundaries, swaps and random-document draws every epoch)"})
    masking: Literal["ngram", "whole_word", "token"] = field(default="ngram", metadata={"help": "masking scheme"})
    mlm_probability: float = field(default=0.15, metadata={"help": "share of tokens to predict"})
    max_predictions_per_seq: int = field(default=20, metadata={"help": "cap on masked tokens per example"})
    max_ngram: int = field(default=3, metadata={"help": "longest masked n-gram (in words)"})
    num_proc: int | None = field(default=None, metadata={"help": "processes for building examples"})
    packing: bool = field(default=False, metadata={"help": "pack several whole examples into each training row of "
                          "data.max_seq_length tokens (ours; albert_recipes.packing): positions restart per example, "
                          "attention is block-diagonal, SOP is read at each [CLS]; same examples, less padding"})
    streaming: bool = field(default=False, metadata={"help": "read data.dataset_name as a stream (never downloaded "
                            "whole); its documents are still written once to the Arrow cache"})
    cache_dir: str | None = field(default=None, metadata={"help": "where documents, tokenizer, token ids and SOP "
                                  "examples are cached (empty: $HF_DATASETS_CACHE/albert_recipes); a second run with "
                                  "the same corpus and settings reads them instead of rebuilding"})


@dataclass
class TrainSettings:
    seed: int = field(default=42, metadata={"help": "seeds the model, data order and masks"})
    batch_size: int = field(default=32, metadata={"help": "GLOBAL sequences per optimizer step (paper: 4096)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per step per process"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps (paper: 125000)"})
    optimizer: Literal["lamb", "adamw"] = field(default="lamb", metadata={"help": "LAMB as in the paper, or AdamW"})
    learning_rate: float = field(default=0.00176, metadata={"help": "peak rate (paper: 0.00176 at batch 4096)"})
    warmup_steps: int = field(
        default=100, metadata={"help": "linear warmup from 0; the rate then decays linearly from step 0's line to 0 "
                               "at max_steps (ALBERT's schedule, albert_recipes.training.albert_lr_factor)"})
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
        if not 0.0 <= self.model.layerdrop < 1.0:
            raise ConfigError(f"model.layerdrop={self.model.layerdrop} must be in [0, 1) (a skip probability)")
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
                    "train.eval_batch_size": t.eval_batch_size, "train.eval_max_examples": t.eval_max_examples,
                    "data.vocab_size": d.vocab_size, "data.max_predictions_per_seq": d.max_predictions_per_seq,
                    "data.max_ngram": d.max_ngram, "data.dupe_factor": d.dupe_factor}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key}={value} must be >= 1")
        if d.num_proc is not None and d.num_proc < 1:
            raise ConfigError(f"data.num_proc={d.num_proc} must be >= 1 (or empty: one process)")
        if d.max_seq_length < 5:
            raise ConfigError(f"data.max_seq_length={d.max_seq_length} must be >= 5 ([CLS] A [SEP] B [SEP])")
        for key, value, low, high in (("data.mlm_probability", d.mlm_probability, 0.0, 1.0),
                                      ("train.adam_beta1", t.adam_beta1, 0.0, 1.0),
                                      ("train.adam_beta2", t.adam_beta2, 0.0, 1.0)):
            if not low < value < high:
                raise ConfigError(f"{key}={value} must be between {low} and {high} (exclusive)")
        if not 0.0 <= d.short_seq_prob <= 1.0:
            raise ConfigError(f"data.short_seq_prob={d.short_seq_prob} must be in [0, 1]")
        if not t.learning_rate > 0:
            raise ConfigError(f"train.learning_rate={t.learning_rate} must be positive (the paper: 0.00176 at "
                              "batch 4096)")
        for key, value in (("train.weight_decay", t.weight_decay), ("train.max_grad_norm", t.max_grad_norm),
                           ("train.adam_epsilon", t.adam_epsilon)):
            if value < 0:
                raise ConfigError(f"{key}={value} must be >= 0")
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


def model_config(cfg: ModelSettings, max_seq_length: int) -> AlbertRecipesConfig:
    """The preset plus the overrides given; `vocab_size` is filled in once the tokenizer exists."""
    sizes = {k: v for k, v in vars(cfg).items() if k not in ("preset", "init_embeddings") and v is not None}
    config = AlbertRecipesConfig.from_preset(cfg.preset, **sizes)
    if config.max_position_embeddings < max_seq_length:
        raise ConfigError(f"data.max_seq_length={max_seq_length} exceeds model.max_position_embeddings="
                          f"{config.max_position_embeddings}")
    return config


# Settings that may differ on resume: they change logging, evaluation, checkpoint cadence or how the same global
# batches are split over devices, never the data order, the schedule or the model. Any other change is refused.
RESUME_CHANGEABLE = (
    "output_dir", "train.resume", "train.overwrite_output_dir", "train.log_every", "train.eval_every",
    "train.eval_batch_size", "train.eval_max_examples", "train.save_every", "train.keep_last", "train.report_to",
    "train.cpu", "train.gradient_checkpointing", "train.gradient_accumulation_steps", "data.num_proc", "data.cache_dir",
    "data.dupe_factor", "hub.", "debug.",
)
OUTPUTS = ("final", "metrics.json")  # a finished run: refused unless train.resume or train.overwrite_output_dir
EARLIER_RUN = ("checkpoints", "final", "metrics.json", "curves.png", "logs", "tokenizer")  # removed when starting over


def prepare_data(cfg: PretrainConfig, accelerator, max_position_embeddings: int):
    """Documents -> tokenizer -> SOP examples (albert_recipes.pretraining_data: streamed, cached on disk, fresh cuts
    every epoch); the main process builds what the cache lacks, the others read it. Returns `.tokenizer`,
    `.eval_set`, `.train_set(epoch)` and `.fingerprint`."""
    from albert_recipes.pretraining_data import prepare_pretraining_data

    if cfg.data.dataset_name:
        check_hub_reachable()
    # the whole data section: the masking settings among it are the collator's, and prepare_... ignores them
    return prepare_pretraining_data(**vars(cfg.data), seed=cfg.train.seed, model_max_length=max_position_embeddings,
                                    main_process_first=accelerator.main_process_first)


def held_out_scoring(cfg: PretrainConfig, data):
    """What every held-out evaluation of a run scores against: the held-out examples, the masking settings, the
    held-out collator (fixed masks, so evaluations compare) and the training data's (V,) unigram log-probabilities.
    benchmarks/rescore_pretraining.py uses it to score an export exactly as its run did."""
    t = cfg.train
    eval_set = data.eval_set.select(range(min(len(data.eval_set), t.eval_max_examples)))
    collator_args = dict(tokenizer=data.tokenizer, mlm_probability=cfg.data.mlm_probability, mode=cfg.data.masking,
                         max_predictions_per_seq=cfg.data.max_predictions_per_seq, max_ngram=cfg.data.max_ngram)
    eval_collator = NgramMaskingCollator(seed=t.seed + 1, **collator_args)
    unigram = pm.unigram_log_probs(data.train_set(0), data.tokenizer.all_special_ids, len(data.tokenizer))
    return eval_set, collator_args, eval_collator, unigram


def main(cfg: PretrainConfig) -> dict:
    # ---- setup: refuse a used output_dir or an incompatible resume before any data work ---------------------------
    t = cfg.train
    output_dir = Path(cfg.output_dir)
    accelerator = setup_accelerator(output_dir, gradient_accumulation_steps=t.gradient_accumulation_steps,
                                    mixed_precision=t.mixed_precision, cpu=t.cpu, log_with=t.report_to)
    micro = micro_batch_size(t.batch_size, accelerator.num_processes, t.gradient_accumulation_steps)
    resume_from = prepare_output_dir(output_dir, config_to_dict(cfg), resume=t.resume, overwrite=t.overwrite_output_dir,
                                     changeable=RESUME_CHANGEABLE, outputs=OUTPUTS,
                                     defaults=config_to_dict(PretrainConfig()))
    if t.resume and resume_from is None:
        accelerator.print(f"train.resume=true but {output_dir / 'checkpoints'} has no complete checkpoint: starting fresh")
    config = model_config(cfg.model, cfg.data.max_seq_length)
    config_yaml = config_to_yaml(cfg)
    accelerator.print(config_yaml)
    set_seed(t.seed)

    # ---- data ---------------------------------------------------------------------------------------------------
    data = prepare_data(cfg, accelerator, config.max_position_embeddings)
    tokenizer = data.tokenizer
    epoch_steps: dict[str, int] = {}  # steps of each epoch seen; saved with checkpoints, so a resume rebuilds no epoch

    def steps_in_epoch(epoch: int) -> int:
        if str(epoch) not in epoch_steps:
            epoch_steps[str(epoch)] = len(data.train_set(epoch)) // t.batch_size
        return epoch_steps[str(epoch)]

    if steps_in_epoch(0) < 1:
        raise ConfigError(f"the corpus gives {len(data.train_set(0))} training examples, fewer than one batch "
                          f"(train.batch_size={t.batch_size}); use more text or a smaller batch")
    eval_set, collator_args, eval_collator, unigram = held_out_scoring(cfg, data)
    unigram_token = int(unigram.argmax())
    collator = NgramMaskingCollator(seed=t.seed, **collator_args)
    if cfg.data.packing:  # the same masked examples, only laid out in fewer rows
        collator = PackingCollator(collator, max_length=cfg.data.max_seq_length)
    baselines = {"mlm_unigram_token": tokenizer.convert_ids_to_tokens(unigram_token),
                 **pm.sop_majority_baselines(data.train_set(0), eval_set)}
    accelerator.print(f"{len(data.train_set(0))} training / {len(eval_set)} held-out examples; {steps_in_epoch(0)} "
                      f"steps per epoch of global batch {t.batch_size} = {accelerator.num_processes} processes x "
                      f"{t.gradient_accumulation_steps} accumulation x {micro} sequences")

    # ---- model, optimizer, schedule ----------------------------------------------------------------------------
    config.vocab_size = len(tokenizer)
    model = AlbertRecipesForPreTraining(config)
    if cfg.model.init_embeddings == "word2vec" and resume_from is None:  # a resume loads the trained rows instead
        from albert_recipes.word_vectors import init_embeddings_from_word2vec

        rows = init_embeddings_from_word2vec(model, data.train_set(0)["input_ids"], t.seed, tokenizer.all_special_ids)
        accelerator.print(f"word embeddings: {rows} rows from Word2Vec (E={config.embedding_size})")
    if t.gradient_checkpointing:  # renamed activation_checkpointing_enable in later transformers 5 releases
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    accelerator.print(f"model: {cfg.model.preset}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M "
                      f"parameters, vocab {len(tokenizer)}, mixed precision {accelerator.mixed_precision}")
    optimizer = build_optimizer(model, t.optimizer, t.learning_rate, t.weight_decay,
                                (t.adam_beta1, t.adam_beta2), t.adam_epsilon)
    # not passed to prepare(): accelerate would step it once per process; it steps once per optimizer step here
    scheduler = albert_schedule(optimizer, t.warmup_steps, t.max_steps)
    if accelerator.state.deepspeed_plugin is not None:  # it cannot infer this: the recipe builds its own loaders
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro
    eval_loader = torch.utils.data.DataLoader(eval_set, batch_size=t.eval_batch_size, collate_fn=eval_collator)
    model, optimizer, eval_loader = accelerator.prepare(model, optimizer, eval_loader)
    accelerator.register_for_checkpointing(scheduler)

    step, state = 0, {"history": [], "data_fingerprint": data.fingerprint, "epoch_steps": epoch_steps}
    if resume_from is not None:
        saved = read_trainer_state(resume_from).get("data_fingerprint")
        if saved not in (None, data.fingerprint):
            raise InputError(f"cannot resume from {resume_from}: the training data or tokenizer changed since it was "
                             f"written (fingerprint {saved} -> {data.fingerprint}); start over with "
                             "train.overwrite_output_dir=true or another output_dir")
        accelerator.load_state(str(resume_from))
        step, state = checkpoint_step(resume_from), {**state, **read_trainer_state(resume_from)}
        epoch_steps.update(state["epoch_steps"])
        state["epoch_steps"] = epoch_steps
        accelerator.print(f"resumed from {resume_from} at step {step}")
    elif accelerator.is_main_process:  # a fresh start (train.overwrite_output_dir): no trace of an earlier run
        clear_previous_run(output_dir, EARLIER_RUN)
    if accelerator.is_main_process:
        atomic_write_text(output_dir / "recipe_config.yaml", config_yaml)
    accelerator.wait_for_everyone()
    accelerator.init_trackers("pretrain", config=flat_hparams(cfg))
    history = state["history"]

    def save(step: int) -> Path:
        return save_training_checkpoint(accelerator, output_dir, step, config_yaml=config_yaml, state=state,
                                        keep_last=t.keep_last, debug=cfg.debug)

    # ---- train ---------------------------------------------------------------------------------------------------
    progress = tqdm(total=t.max_steps, initial=step, desc="pretrain", unit="step",
                    disable=not accelerator.is_local_main_process)
    throughput, run_tokens, run_slots, run_start = Throughput(), 0, 0, time.perf_counter()
    totals = torch.zeros(len(pm.STATS), dtype=torch.float64, device=accelerator.device)
    last = {"eval": {}, "eval_sums": None, "saved": None}

    def loader_for_epoch(epoch: int, skip_steps: int):
        collator.set_epoch(epoch)
        return epoch_loader(data.train_set(epoch), collator, batch_size=t.batch_size, accelerator=accelerator,
                            seed=t.seed, epoch=epoch, skip_steps=skip_steps)

    def compute_loss(batch: dict) -> torch.Tensor:
        nonlocal totals, run_tokens, run_slots
        random_document = batch.pop("sop_random_document", None)
        out = model(**batch)
        totals += pm.example_stats(out, batch, random_document, mask_token_id=tokenizer.mask_token_id).detach().sum(0)
        tokens = batch["attention_mask"].sum().item()
        throughput.add(tokens)
        run_tokens += tokens
        run_slots += batch["attention_mask"].numel()  # token slots computed, padding included
        return out.loss

    def evaluate() -> dict[str, float]:
        metrics, last["eval_sums"] = pm.evaluate(model, eval_loader, accelerator, unigram_token,
                                                 tokenizer.mask_token_id, unigram)
        return metrics

    def after_step(step: int, end_of_epoch: bool) -> None:
        nonlocal totals
        if step % t.log_every == 0 or step == t.max_steps:
            logs = pm.summarize(accelerator.reduce(totals, reduction="sum"), "train")
            rate = accelerator.reduce(torch.tensor(throughput.rate(), device=accelerator.device), "sum").item()
            logs.update({"train/tokens_per_s": rate, "train/lr": scheduler.get_last_lr()[0]})
            totals = torch.zeros_like(totals)
            accelerator.log(logs, step=step)
            history.append({"step": step, **logs})
            progress.set_postfix(loss=f"{logs['train/mlm_loss'] + logs['train/sop_loss']:.3f}",
                                 mlm_acc=f"{logs['train/mlm_accuracy']:.3f}",
                                 sop_acc=f"{logs['train/sop_accuracy']:.3f}", tok_s=f"{rate:.0f}")
            if accelerator.is_local_main_process:
                progress.write(f"step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        if (t.eval_every and step % t.eval_every == 0) or step == t.max_steps:
            last["eval"] = evaluate()
            accelerator.log(last["eval"], step=step)
            history.append({"step": step, **last["eval"]})
            if accelerator.is_local_main_process:
                progress.write(f"eval at step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in last["eval"].items()))
        if t.save_every and step % t.save_every == 0:
            last["saved"] = (step, save(step))
        cfg.debug.after_step(step)

    with StopSignals(accelerator) as stop:
        step = train_loop(accelerator, model, optimizer, scheduler, loader_for_epoch=loader_for_epoch,
                          steps_in_epoch=steps_in_epoch, start_step=step, max_steps=t.max_steps,
                          max_grad_norm=t.max_grad_norm, compute_loss=compute_loss, after_step=after_step,
                          stop=stop, progress=progress)
        progress.close()
        if step < t.max_steps:  # Ctrl-C or SIGTERM: a checkpoint at this step, then one line on how to continue
            saved = last["saved"][1] if last["saved"] and last["saved"][0] == step else save(step)
            raise interrupted(stop, step, saved)
    if not last["eval"]:  # resumed from the last step's checkpoint
        last["eval"] = evaluate()
    elapsed = time.perf_counter() - run_start
    tokens_total, slots_total = accelerator.reduce(
        torch.tensor([float(run_tokens), float(run_slots)], device=accelerator.device), "sum").tolist()

    # ---- save ----------------------------------------------------------------------------------------------------
    baselines.update(pm.context_free_baselines(last["eval_sums"]))
    metrics = {**last["eval"], "baselines": baselines, "train/tokens_per_s": tokens_total / max(elapsed, 1e-9),
               "train/real_token_share": tokens_total / max(slots_total, 1.0), "steps": step, "train_seconds_this_run": elapsed, "history": history}
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP/DeepSpeed shards; collective
    final_dir = output_dir / "final"
    if accelerator.is_main_process:
        exported = accelerator.unwrap_model(model)
        exported.config.sparse_mlm_prediction = False  # users of the export expect (B, T, V) logits
        # what a person looks at beside the accuracy: the export's guesses for a hidden word of held-out sentences
        metrics["fill_mask_samples"] = fill_mask_samples(masked_lm_view(exported), eval_set["input_ids"], tokenizer,
                                                         num=8, seed=t.seed)
        metrics_json = json.dumps(metrics, indent=2)
        atomic_write_text(output_dir / "metrics.json", metrics_json)
        panels = pm.curve_panels(baselines)
        plot_curves(history, panels, output_dir / "curves.png")
        with atomic_directory(final_dir) as tmp:
            exported.save_pretrained(tmp, state_dict=state_dict)
            tokenizer.save_pretrained(tmp)
            atomic_write_text(tmp / "recipe_config.yaml", config_yaml)
            atomic_write_text(tmp / "metrics.json", metrics_json)
            plot_curves(history, panels, tmp / "curves.png")
            if cfg.hub.push_to_hub:
                from albert_recipes.hub import write_model_card

                summary = {k: v for k, v in metrics.items() if k.startswith("eval/")}  # baselines: from metrics.json
                write_model_card(tmp, metrics=summary, training_config=config_to_dict(cfg),
                                 pipeline_tag="fill-mask", tags=("albert", "pretraining"), repo_id=cfg.hub.repo_id)
        accelerator.print(f"final model: {final_dir} " + ", ".join(f"{k}={v:.4f}" for k, v in last["eval"].items()))
        accelerator.print("fill-mask on held-out sentences (top 5 guesses):\n"
                          + format_samples(metrics["fill_mask_samples"]))
        accelerator.print("baselines: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                    for k, v in baselines.items()))
        if cfg.hub.push_to_hub:
            from albert_recipes.hub import push_folder_to_hub

            url = push_folder_to_hub(final_dir, cfg.hub.repo_id, private=cfg.hub.private, revision=cfg.hub.revision)
            accelerator.print(f"pushed to {url}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics

if __name__ == "__main__":
    run_cli(main, PretrainConfig, __doc__)
