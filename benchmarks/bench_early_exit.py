"""Batched early exit (PABEE) and elastic depth on SST-2 dev: accuracy, mean layer applications and wall time for
patience 1..6 and fixed depths 1..12 against the full-depth model, in one run, batch 32.

    python benchmarks/bench_early_exit.py              # fine-tune (the recipe, 5-25 min on 2 busy CPU cores), measure
    python benchmarks/bench_early_exit.py --model outputs/bench_early_exit/finetune/model   # measure only

The model is a 12-application ALBERT (one shared layer) with an exit classifier after every application, trained
with PABEE's depth-weighted loss and LayerDrop by `recipes/finetune_lora.py` (full fine-tuning, random init, a
Unigram tokenizer trained on SST-2 train). Width H=64 (E=64, 4 heads, FFN 256): small enough to fine-tune on one
epoch of the 67k training sentences in minutes on a shared 2-core CPU; see --help for the knobs.

Timing: every setting runs over the same padded dev batches (file order, batch 32); the settings are interleaved
round-robin for --repeats rounds and the median is reported, so machine load affects all of them alike. Writes
benchmarks/results/early_exit.{json,md,png} (or --results-dir) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/harness.py, also under runpy
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SPEEDUP, TARGET_LOSS_POINTS = 1.5, 0.5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "sst2",
                        help="folder with train.tsv and dev.tsv (sentence<TAB>label)")
    parser.add_argument("--model", type=Path, default=None,
                        help="an already fine-tuned folder with early-exit heads: skip fine-tuning")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "outputs" / "bench_early_exit")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=12, help="layer applications (one shared layer)")
    parser.add_argument("--layerdrop", type=float, default=0.1)
    parser.add_argument("--vocab-size", type=int, default=8000, help="Unigram tokenizer trained on SST-2 train")
    parser.add_argument("--train-samples", type=int, default=0, help="first N training sentences (0: all 67,349)")
    parser.add_argument("--eval-samples", type=int, default=0, help="first N dev sentences (0: all 872)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32, help="training and measuring batch size")
    parser.add_argument("--patience", default="1,2,3,4,5,6", help="comma list of patience values")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadiest on a shared CPU)")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


def finetune(args: argparse.Namespace) -> Path:
    """Full fine-tuning with early-exit heads and LayerDrop by the fine-tuning recipe; returns the model folder."""
    sys.path.insert(0, str(ROOT / "recipes"))
    import finetune_lora as recipe

    from albert_recipes.cli import build_config

    architecture = {
        "embedding_size": args.embedding_size, "hidden_size": args.hidden_size, "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads, "intermediate_size": args.intermediate_size,
        "max_position_embeddings": max(128, args.max_length), "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "early_exit_classifiers": True, "layerdrop": args.layerdrop,
    }
    overrides = [
        "model.name_or_path=", "model.preset=tiny", f"model.config_overrides={json.dumps(architecture)}",
        f"model.tokenizer_vocab_size={args.vocab_size}",
        f"data.train_file={args.data / 'train.tsv'}", f"data.validation_file={args.data / 'dev.tsv'}",
        f"data.max_train_samples={args.train_samples}", f"data.max_eval_samples={args.eval_samples}",
        f"data.max_length={args.max_length}", "finetune.mode=full", "finetune.save_merged=false",
        f"train.epochs={args.epochs}", f"train.batch_size={args.batch_size}",
        f"train.learning_rate={args.learning_rate}",
        f"train.torch_threads={args.threads}", f"train.seed={args.seed}", "train.log_every=100", "train.save_every=0",
        "train.overwrite_output_dir=true",
        f"output_dir={args.output_dir / 'finetune'}",
    ]
    cfg = build_config(recipe.FinetuneLoraConfig, ROOT / "recipes/configs/finetune_lora/sst2.yaml", overrides)
    result = recipe.main(cfg)
    return Path(result["folders"]["model"])


def dev_batches(tokenizer, path: Path, batch_size: int, max_length: int, limit: int) -> tuple[list[dict], list[int]]:
    """The dev set as padded batches in file order (what a user's DataLoader would give), and the labels."""
    from albert_recipes.finetune_data import read_data_file

    dev = read_data_file(path)
    if limit:
        dev = dev.select(range(min(limit, len(dev))))
    sentences, labels = list(dev["sentence"]), [int(label) for label in dev["label"]]
    batches = [
        dict(tokenizer(sentences[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                       return_tensors="pt"))
        for i in range(0, len(sentences), batch_size)
    ]
    return batches, labels


def run_setting(model, batches: list[dict], patience: int, num_layers: int | None) -> tuple[list[int], list[int]]:
    """Predictions and exit depths of one pass over `batches`."""
    model.config.early_exit_patience = patience
    predictions, depths = [], []
    with torch.inference_mode():
        for batch in batches:
            out = model(**batch, num_layers=num_layers)
            predictions += out.logits.argmax(-1).tolist()
            depths += out.exit_layers.tolist()
    return predictions, depths


def measure(model, batches: list[dict], labels: list[int], settings: list[tuple[str, int, int | None]],
            repeats: int, batch_size: int) -> list[dict]:
    """Interleaved rounds over all settings (harness.interleave: rotated order, so no setting always runs first or
    last); accuracy and depths of every round must agree; the median time of all rounds."""
    import harness

    first: dict[str, tuple[list[int], list[int]]] = {}

    def runner(name: str, patience: int, num_layers: int | None):
        def run() -> None:
            result = run_setting(model, batches, patience, num_layers)
            if first.setdefault(name, result) != result:
                raise RuntimeError(f"{name}: predictions changed between rounds")
        return run

    run_setting(model, batches[:2], 0, None)  # warm-up (allocator, kernels)
    times = harness.interleave({setting[0]: runner(*setting) for setting in settings}, repeats,
                               warmup=0, progress=False)
    rows = []
    for name, patience, num_layers in settings:
        predictions, depths, spread = *first[name], harness.spread(times[name])
        # what the original PABEE costs in a batch: every row runs until the batch's slowest row exits
        waited = [max(depths[i : i + batch_size]) for i in range(0, len(depths), batch_size)]
        rows.append({
            "setting": name, "patience": patience, "num_layers": num_layers,
            "accuracy": sum(p == y for p, y in zip(predictions, labels)) / len(labels),
            "mean_layers": sum(depths) / len(depths),
            "mean_layers_if_batch_waits": sum(w * len(depths[i * batch_size : (i + 1) * batch_size])
                                              for i, w in enumerate(waited)) / len(depths),
            "seconds": spread["median"], "seconds_min": spread["min"], "seconds_max": spread["max"],
        })
    full = next(row for row in rows if row["setting"] == "full depth")
    for row in rows:
        row["speedup"] = full["seconds"] / row["seconds"]
        row["accuracy_loss_points"] = 100 * (full["accuracy"] - row["accuracy"])
        row["meets_target"] = row["speedup"] >= TARGET_SPEEDUP and row["accuracy_loss_points"] <= TARGET_LOSS_POINTS
    return rows


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Early exit (PABEE, batched) and elastic depth on SST-2 dev",
        "",
        f"{meta['examples']} dev sentences in file order, batch {meta['batch_size']}, padded per batch, CPU "
        f"({meta['threads']} thread(s)), fp32. Model: {meta['architecture']}, fine-tuned with an exit classifier "
        f"after every application (PABEE's depth-weighted loss) and LayerDrop {meta['layerdrop']}. Times: median of "
        f"{meta['repeats']} interleaved rounds (min-max in brackets); load average at start {meta['load_start']}, "
        f"at end {meta['load_end']}. Target: >= {TARGET_SPEEDUP}x faster than full depth at <= "
        f"{TARGET_LOSS_POINTS} points accuracy loss.",
        "",
        "'layers if batch waits': the mean depth the original PABEE would run, where a batch continues until its "
        "slowest row stops (transformers issue 13230); ours drops finished rows from the running batch.",
        "",
        "| setting | accuracy | loss (points) | mean layers | layers if batch waits | seconds | speed-up | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['accuracy']:.4f} | {row['accuracy_loss_points']:+.2f} | "
            f"{row['mean_layers']:.2f} | {row['mean_layers_if_batch_waits']:.2f} | {row['seconds']:.2f} "
            f"({row['seconds_min']:.2f}-{row['seconds_max']:.2f}) | {row['speedup']:.2f}x | "
            f"{'met' if row['meets_target'] else ''} |")
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    full = next(row for row in rows if row["setting"] == "full depth")
    fixed = [row for row in rows if row["num_layers"] is not None]
    patience = [row for row in rows if row["patience"] > 0]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([r["speedup"] for r in fixed], [100 * r["accuracy"] for r in fixed], "o-", label="fixed depth k")
    for r in fixed:
        ax.annotate(str(r["num_layers"]), (r["speedup"], 100 * r["accuracy"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    ax.plot([r["speedup"] for r in patience], [100 * r["accuracy"] for r in patience], "s-",
            label="early exit, patience p")
    for r in patience:
        ax.annotate(f"p={r['patience']}", (r["speedup"], 100 * r["accuracy"]), fontsize=7,
                    textcoords="offset points", xytext=(3, -9))
    ax.axhline(100 * full["accuracy"] - TARGET_LOSS_POINTS, color="grey", ls=":", lw=1,
               label=f"full depth - {TARGET_LOSS_POINTS} points")
    ax.axvline(TARGET_SPEEDUP, color="grey", ls="--", lw=1, label=f"{TARGET_SPEEDUP}x")
    ax.set_xlabel("speed-up over full depth (wall time, batch 32)")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import albert_recipes  # noqa: F401  (registers the Auto classes)
    from albert_recipes.io_utils import atomic_write_text

    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    folder = args.model or finetune(args)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not model.config.early_exit_classifiers:
        raise SystemExit(f"{folder} has no early-exit classifiers (config.early_exit_classifiers is false)")
    depth = model.config.num_hidden_layers
    batches, labels = dev_batches(tokenizer, args.data / "dev.tsv", args.batch_size, args.max_length,
                                  args.eval_samples)
    settings = [("full depth", 0, None)]
    settings += [(f"patience {p}", int(p), None) for p in args.patience.split(",")]
    settings += [(f"depth {k}", 0, k) for k in range(1, depth + 1)]
    rows = measure(model, batches, labels, settings, args.repeats, args.batch_size)
    config = model.config
    meta = {
        "examples": len(labels), "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "repeats": args.repeats, "layerdrop": config.layerdrop, "model": str(folder),
        "architecture": f"H={config.hidden_size}, E={config.embedding_size}, {config.num_attention_heads} heads, "
                        f"FFN {config.intermediate_size}, {depth} applications of one shared layer",
        "load_start": load_start, "load_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
        "command": "python benchmarks/bench_early_exit.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results_dir / "early_exit.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    atomic_write_text(args.results_dir / "early_exit.md", markdown(rows, meta))
    plot(rows, args.results_dir / "early_exit.png")
    print(markdown(rows, meta))
    return rows


if __name__ == "__main__":
    main()
