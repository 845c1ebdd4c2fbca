"""Held-out masked-LM loss with and without RealFormer residual attention and DenseFormer depth-weighted averaging:
three short pretraining runs of equal budget (same data, tokenizer settings, seed, steps and batch), one per flag.

    python benchmarks/bench_cross_layer_mlm.py                     # ~3 x 10 min on 2 CPU cores
    python benchmarks/bench_cross_layer_mlm.py --steps 20 --hidden-size 32 ...   # smoke run

Each run is `recipes/pretrain.py` (MLM + SOP, LAMB) on WikiText-2 valid+test from ../shared/data with
`model.residual_attention` / `model.depth_weighted_average` set; the rest of the configuration is identical, so
all three start from the same initial weights (neither flag adds randomly initialised parameters). Writes
benchmarks/results/cross_layer_mlm.{json,md,png} (or --results-dir) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
RUNS = {
    "baseline (paper ALBERT)": {},
    "residual attention (RealFormer)": {"model.residual_attention": "true"},
    "depth-weighted average (DenseFormer)": {"model.depth_weighted_average": "true"},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "wikitext-2")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "outputs" / "bench_cross_layer_mlm")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--intermediate-size", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6, help="applications of the one shared layer")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-examples", type=int, default=512)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest on a busy CPU)")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma list of run names (default: all three)")
    return parser.parse_args(argv)


def overrides(args: argparse.Namespace, name: str) -> list[str]:
    settings = {
        "output_dir": args.output_dir / name.split(" (")[0].replace(" ", "_"),
        "data.train_file": json.dumps([str(args.data / "valid.txt"), str(args.data / "test.txt")]),
        "data.layout": "wikitext", "data.cache_dir": args.output_dir / "cache", "data.vocab_size": args.vocab_size,
        "data.max_seq_length": args.seq_length,
        "model.preset": "tiny", "model.embedding_size": args.embedding_size, "model.hidden_size": args.hidden_size,
        "model.num_hidden_layers": args.layers, "model.num_attention_heads": args.heads,
        "model.intermediate_size": args.intermediate_size, "model.max_position_embeddings": max(128, args.seq_length),
        "train.batch_size": args.batch_size, "train.max_steps": args.steps, "train.learning_rate": args.learning_rate,
        "train.warmup_steps": max(1, args.steps // 10), "train.eval_every": args.eval_every,
        "train.eval_max_examples": args.eval_examples, "train.save_every": args.steps, "train.seed": args.seed,
        "train.overwrite_output_dir": "true", "train.log_every": max(1, args.steps // 20),
        **RUNS[name],
    }
    return [f"{key}={value}" for key, value in settings.items()]


def markdown(rows: list[dict], meta: dict) -> str:
    base = rows[0]["eval/mlm_loss"]
    lines = [
        "# Cross-layer extensions: held-out MLM loss at equal budget",
        "",
        f"Pretraining recipe (MLM + SOP, LAMB), WikiText-2 valid+test, {meta['architecture']}, {meta['steps']} steps "
        f"of batch {meta['batch_size']} x {meta['seq_length']} tokens, seed {meta['seed']}; held-out loss on "
        f"{meta['eval_examples']} held-out sequences with fixed masks. One seed per row: differences of a few "
        f"hundredths are within run-to-run noise at this scale. Load average at start {meta['load_start']}, end "
        f"{meta['load_end']} (2 shared CPU cores): times are indicative.",
        "",
        "| run | held-out MLM loss | vs baseline | MLM accuracy | SOP accuracy | training s | tokens/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['run']} | {row['eval/mlm_loss']:.4f} | {row['eval/mlm_loss'] - base:+.4f} | "
            f"{row['eval/mlm_accuracy']:.4f} | {row['eval/sop_accuracy']:.4f} | {row['seconds']:.0f} | "
            f"{row['tokens_per_s']:.0f} |")
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        points = [(h["step"], h["eval/mlm_loss"]) for h in row["history"] if "eval/mlm_loss" in h]
        ax.plot(*zip(*points), "o-", ms=3, label=row["run"])
    ax.set_xlabel("step")
    ax.set_ylabel("held-out MLM loss")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "recipes"))
    import pretrain as recipe

    from albert_recipes.cli import build_config
    from albert_recipes.io_utils import atomic_write_text

    load_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    names = args.runs.split(",")
    unknown = [name for name in names if name not in RUNS]
    if unknown:  # before any run starts
        raise SystemExit(f"unknown run(s) {unknown}; choose from {list(RUNS)}")
    rows = []
    for name in names:
        cfg = build_config(recipe.PretrainConfig, None, overrides(args, name))
        metrics = recipe.main(cfg)
        evaluation = {k: v for k, v in metrics.items() if k.startswith("eval/")}
        rows.append({"run": name, "output_dir": cfg.output_dir, **evaluation,
                     "seconds": metrics["train_seconds_this_run"], "tokens_per_s": metrics["train/tokens_per_s"],
                     "history": metrics["history"]})
    meta = {
        "architecture": f"H={args.hidden_size}, E={args.embedding_size}, {args.heads} heads, FFN "
                        f"{args.intermediate_size}, {args.layers} applications of one shared layer",
        "steps": args.steps, "batch_size": args.batch_size, "seq_length": args.seq_length, "seed": args.seed,
        "eval_examples": args.eval_examples, "load_start": load_start,
        "load_end": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "command": "python benchmarks/bench_cross_layer_mlm.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results_dir / "cross_layer_mlm.json", json.dumps({"meta": meta, "rows": rows}, indent=2))
    atomic_write_text(args.results_dir / "cross_layer_mlm.md", markdown(rows, meta))
    plot(rows, args.results_dir / "cross_layer_mlm.png")
    print(markdown(rows, meta))
    return rows


if __name__ == "__main__":
    main()
