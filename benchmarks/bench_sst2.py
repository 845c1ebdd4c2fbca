"""SST-2 dev accuracy of the fine-tuning recipe: random init vs a pretrained export (by default what `make cpu-hour`
pretrains), each with LoRA (the recipe's default variant, recipes/configs/finetune_lora/sst2.yaml) and with full
fine-tuning, same recipe and budget; plus trainable parameters, seconds per epoch and the majority-class baseline.
By default the FULL training set (67,349 rows), 1 epoch, max_length 64; the full 872-sentence dev set.

    python benchmarks/bench_sst2.py                              # all rows; pretrained ones only if the export exists
    python benchmarks/bench_sst2.py --rows random --train-samples 8000 --threads 2
    python benchmarks/bench_sst2.py --rows pretrained            # adds/replaces those rows in the saved results
    python benchmarks/bench_sst2.py --write-unlabeled outputs/data/sst2_train_sentences.jsonl   # pretraining text

Random-init rows copy the pretrained export's (or --random-like's) architecture and tokenizer when it exists (a
like-for-like baseline); otherwise they use the `tiny` preset and a Unigram tokenizer trained on the training subset.
Writes benchmarks/results/sst2.{json,md} (and sst2.pretraining.png, the export's pretraining curves) and prints the
table.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import torch
from filelock import FileLock

from albert_recipes.io_utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
ARCHITECTURE_KEYS = ("embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "num_hidden_groups", "inner_group_num", "hidden_act", "max_position_embeddings",
                     "hidden_dropout_prob", "attention_probs_dropout_prob")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "sst2")
    parser.add_argument("--pretrained", type=Path, default=ROOT / "outputs" / "pretrain" / "cpu_hour" / "final")
    parser.add_argument("--random-like", type=Path, default=None,
                        help="folder whose config.json architecture and tokenizer the random-init rows copy "
                             "(default: --pretrained, when it exists)")
    parser.add_argument("--rows", default="random,pretrained", help="comma list of: random, pretrained")
    parser.add_argument("--modes", default="lora,full", help="comma list of: lora, full")
    parser.add_argument("--train-samples", type=int, default=0, help="first N training sentences (0: all)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lora-lr", type=float, default=1e-3, help="LoRA learning rate (LoRA's usual ~10x full)")
    parser.add_argument("--full-lr", type=float, default=1e-4, help="full fine-tuning learning rate")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads per run; 1 avoids thread thrashing on a shared CPU (0: torch default)")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "outputs" / "bench_sst2", help="run outputs")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where sst2.{json,md} go (and are merged)")
    parser.add_argument("--write-unlabeled", type=Path, default=None, metavar="JSONL",
                        help="only write SST-2's training sentences (no labels, no phrases) as pretraining text")
    return parser.parse_args(argv)


def unlabeled_sentences(train_tsv: Path) -> list[str]:
    """SST-2's training rows without labels, minus the rows that are a phrase of a longer row.

    SST-2 holds every phrase of its ~6,900 training sentences as its own row (67,349 rows, 634k words); as
    unlabeled pretraining text the phrases only repeat their sentences, so only rows that occur in no longer row
    are kept (133k words). Sorted longest first, ties alphabetical: the output does not depend on the file's order.
    """
    lines = train_tsv.read_text(encoding="utf-8").splitlines()
    rows = {line.split("\t")[0].strip() for line in lines[1:]} - {""}
    spans: set[str] = set()  # every word span of the rows kept so far
    kept = []
    for row in sorted(rows, key=lambda r: (-len(r.split()), r)):
        if row in spans:
            continue
        kept.append(row)
        words = row.split()
        spans.update(" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1))
    return kept


def write_unlabeled_corpus(train_tsv: Path, output: Path) -> Path:
    """`unlabeled_sentences` as JSONL, one single-sentence document per record (what pretraining reads)."""
    atomic_write_text(output, "".join(json.dumps({"text": s}) + "\n" for s in unlabeled_sentences(train_tsv)))
    return output


def _overrides(args, init: str, mode: str) -> list[str]:
    overrides = [
        f"data.train_file={args.data / 'train.tsv'}", f"data.validation_file={args.data / 'dev.tsv'}",
        f"data.max_train_samples={args.train_samples}", f"train.epochs={args.epochs}",
        f"train.learning_rate={args.lora_lr if mode == 'lora' else args.full_lr}",
        f"train.torch_threads={args.threads}", f"finetune.mode={mode}", "finetune.save_merged=false",
        f"output_dir={args.output_dir / f'{init}-{mode}'}", "train.log_every=50", "train.overwrite_output_dir=true",
        "train.save_every=0", "train.report_to=none",
    ]
    if init == "pretrained":
        return [*overrides, f"model.name_or_path={args.pretrained}"]
    overrides += ["model.name_or_path=", "model.preset=tiny"]
    like = args.random_like or args.pretrained
    if like.is_dir():
        config = json.loads((like / "config.json").read_text())
        architecture = {k: config[k] for k in ARCHITECTURE_KEYS if k in config}
        return [*overrides, f"model.tokenizer_path={like}",
                f"model.config_overrides={json.dumps(architecture)}"]
    return [*overrides, "model.tokenizer_vocab_size=8000"]


def _markdown(rows: list[dict], pretrained: Path) -> str:
    lines = [
        "# SST-2 dev accuracy (all 872 dev sentences), max_length 64, batch 32, CPU",
        "",
        f"Pretrained rows: `{pretrained.relative_to(ROOT) if pretrained.is_relative_to(ROOT) else pretrained}`; "
        "random-init rows: the same architecture and tokenizer, freshly initialised. AdamW, 10% warmup then linear "
        "decay, seed 42, learning rates LoRA 1e-3 and full 1e-4 unless the row says otherwise. LoRA: the recipe's "
        "default (recipes/configs/finetune_lora/sst2.yaml): r=8, alpha=16, dropout 0.1 on the shared layer's "
        "query/key/value/attention.dense/ffn/ffn_output, the pooler and the word embeddings; the classifier in full. "
        "Train subset 0 = all 67,349 rows. The majority class (positive) is 0.5092 of dev: a row at exactly that "
        "accuracy predicts one class for everything.",
        "",
        "| base model | fine-tuning | dev accuracy | dev F1 | majority baseline | trainable params | total params "
        "| s / epoch | train subset | epochs | lr | architecture | machine |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row.get("status") != "ok":
            lines.append(f"| {row['init']} | {row['mode']} | not run: {row['status']} |" + " |" * 10)
            continue
        majority = row.get("majority_accuracy")
        lines.append(
            f"| {row['init']} | {row['mode']} | {row['accuracy']:.4f} | {row['f1']:.4f} | "
            f"{'' if majority is None else f'{majority:.4f}'} | {row['trainable']:,} | {row['total']:,} | "
            f"{row['seconds_per_epoch']:.0f} | {row['train_samples']} | {row['epochs']} | {row['lr']} | "
            f"{row['architecture']} | {row['machine']} |")
    return "\n".join(lines) + "\n"


def save_rows(results_dir: Path, results: dict, pretrained: Path) -> tuple[list[dict], str]:
    """Merge this run's rows (keyed by base, mode, lr; they win) into results_dir/sst2.{json,md}; returns all rows
    and the Markdown table.

    Merged at the end of a run under a file lock, so row sets run side by side (`--rows random` and `--rows
    pretrained`, one per core: `make cpu-hour`) all land in one table; written atomically."""
    json_path = results_dir / "sst2.json"
    with FileLock(str(json_path) + ".lock"):
        previous = json.loads(json_path.read_text())["rows"] if json_path.is_file() else []
        results = {**{(r["init"], r["mode"], r.get("lr")): r for r in previous}, **results}
        # an "ok" row replaces the "not run" placeholder of the same base and mode
        results = {key: row for key, row in results.items() if row["status"] == "ok"
                   or not any(k[:2] == key[:2] and r["status"] == "ok" for k, r in results.items())}
        order = {"random": 0, "pretrained": 1, "lora": 0, "full": 1}
        rows = sorted(results.values(), key=lambda r: (order[r["init"]], order[r["mode"]], r.get("lr") or 0))
        table = _markdown(rows, pretrained)
        atomic_write_text(json_path, json.dumps({"rows": rows}, indent=2) + "\n")
        atomic_write_text(results_dir / "sst2.md", table)
    return rows, table


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.write_unlabeled:
        path = write_unlabeled_corpus(args.data / "train.tsv", args.write_unlabeled)
        print(f"wrote {path}")
        return []
    sys.path.insert(0, str(ROOT / "recipes"))
    import finetune_lora as recipe

    from albert_recipes.cli import build_config

    args.results_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for init in args.rows.split(","):
        for mode in args.modes.split(","):
            if init == "pretrained" and not args.pretrained.is_dir():
                results[(init, mode, None)] = {"init": init, "mode": mode,
                                               "status": f"no export at {args.pretrained}"}
                continue
            cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes/configs/finetune_lora/sst2.yaml",
                               _overrides(args, init, mode))
            start = time.perf_counter()
            result = recipe.main(cfg)
            config = json.loads((Path(result["folders"].get("base") or result["folders"].get("model")
                                      or cfg.model.name_or_path) / "config.json").read_text())
            results[(init, mode, cfg.train.learning_rate)] = {
                "init": init, "mode": mode, "status": "ok", "accuracy": result["eval"]["accuracy"],
                "f1": result["eval"]["f1"], "trainable": result["parameters"]["trainable"],
                "total": result["parameters"]["total"], "seconds_per_epoch": result["train"]["seconds_per_epoch"][0],
                "wall_seconds": time.perf_counter() - start,
                "architecture": "E{embedding_size} H{hidden_size} L{num_hidden_layers} A{num_attention_heads} "
                                "I{intermediate_size} V{vocab_size}".format(**config),
                "tokenizer": cfg.model.tokenizer_path or "Unigram trained on the training subset",
                "train_samples": args.train_samples, "epochs": args.epochs, "lr": cfg.train.learning_rate,
                "majority_accuracy": result.get("baselines", {}).get("accuracy"),
                "machine": f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), "
                           f"torch {torch.__version__}",
            }
    rows, table = save_rows(args.results_dir, results, args.pretrained)
    if (args.pretrained / "curves.png").is_file():
        shutil.copyfile(args.pretrained / "curves.png", args.results_dir / "sst2.pretraining.png")
    print(table)
    return rows


if __name__ == "__main__":
    main()
