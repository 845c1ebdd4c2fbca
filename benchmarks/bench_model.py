"""Pretraining step speed and peak memory: albert_recipes vs the stock transformers ALBERT, in one run.

Each variant runs in its own subprocess so that peak memory (max RSS on CPU, max allocated on CUDA) is its own.
Writes benchmarks/results/model.json and model.md and prints the table.

    python benchmarks/bench_model.py                       # ALBERT-base, batch 8 x 128 tokens
    python benchmarks/bench_model.py --preset large --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "stock transformers AlbertForPreTraining": {"stock": True},
    "albert_recipes (paper model)": {},
    "albert_recipes + sparse MLM head": {"sparse_mlm_prediction": True},
    "albert_recipes + sparse MLM + activation checkpointing": {"sparse_mlm_prediction": True, "checkpointing": True},
}


def run_variant(args: argparse.Namespace, options: dict) -> dict:
    """Time forward+backward+optimizer steps of one variant (runs inside the subprocess)."""
    import torch
    import transformers

    import albert_recipes

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = albert_recipes.AlbertRecipesConfig.from_preset(
        args.preset, vocab_size=30000, sparse_mlm_prediction=options.get("sparse_mlm_prediction", False)
    )
    if options.get("stock"):
        model = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_diff_dict()))
    else:
        model = albert_recipes.AlbertRecipesForPreTraining(config)
    if options.get("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    shape = (args.batch_size, args.seq_len)
    input_ids = torch.randint(5, config.vocab_size, shape, device=device)
    labels = torch.full(shape, -100, device=device)
    masked = torch.rand(shape, device=device) < 0.15  # the paper's 15% of positions carry an MLM target
    labels[masked] = input_ids[masked]
    sop = torch.randint(0, 2, (args.batch_size,), device=device)

    def step() -> float:
        start = time.perf_counter()
        loss = model(input_ids=input_ids, labels=labels, sentence_order_label=sop).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = [step() for _ in range(args.steps)]
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    median = statistics.median(times)
    return {
        "step_seconds": median,
        "tokens_per_second": args.batch_size * args.seq_len / median,
        "peak_memory_mb": peak_mb,
        "device": str(device),
        "threads": torch.get_num_threads(),
    }


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    baseline = rows[0]["step_seconds"]
    lines = [
        f"ALBERT-{args.preset} pretraining step (MLM + SOP, AdamW), batch {args.batch_size} x {args.seq_len} tokens, "
        f"median of {args.steps} steps on {rows[0]['device']} ({rows[0]['threads']} threads).",
        "",
        "| variant | step (s) | tokens/s | speed-up vs stock | peak memory (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['step_seconds']:.3f} | {row['tokens_per_second']:.0f} | "
            f"{baseline / row['step_seconds']:.2f}x | {row['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base", help="model size preset (tiny, base, large, ...)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one variant and print JSON
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(run_variant(args, VARIANTS[args.worker])))
        return

    rows = []
    for name in VARIANTS:
        print(f"running: {name}", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--worker", name, "--preset", args.preset, "--batch-size",
               str(args.batch_size), "--seq-len", str(args.seq_len), "--steps", str(args.steps),
               "--warmup", str(args.warmup)]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            sys.exit(f"variant {name!r} failed:\n{result.stderr[-2000:]}")
        rows.append({"variant": name, **json.loads(result.stdout.strip().splitlines()[-1])})

    args.output_dir.mkdir(parents=True, exist_ok=True)
    settings = {"preset": args.preset, "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": args.steps}
    (args.output_dir / "model.json").write_text(json.dumps({"settings": settings, "results": rows}, indent=2))
    table = markdown(rows, args)
    (args.output_dir / "model.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
