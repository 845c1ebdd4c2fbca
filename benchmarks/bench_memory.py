"""Peak memory of one pretraining step: ALBERT-large, seq 512, batch 8, ours vs the stock transformers ALBERT.

    python benchmarks/bench_memory.py                                # ALBERT-large, 8 x 512 real WikiText-2 SOP examples
    python benchmarks/bench_memory.py --preset base --seq-len 128

One real masked SOP batch (WikiText-2, our n-gram masking) is built once; each variant then runs in its own fresh
process (so its peak is its own): build the model and AdamW, run --steps training steps (forward, backward, optimizer
step) and report the peak resident memory of the process (CPU; max allocated on CUDA) and the process's memory right
before the first step (model + data), plus seconds per step. The stock model cannot checkpoint activations
(`gradient_checkpointing_enable` raises), so its row is the plain step. Writes results/memory.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402

VARIANTS = {
    "stock transformers AlbertForPreTraining": {"stock": True},
    "ours (paper model, dense MLM head)": {},
    "ours + sparse MLM head": {"sparse": True},
    "ours + sparse MLM head + activation checkpointing": {"sparse": True, "checkpointing": True},
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="large")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="training steps per variant (the peak covers all)")
    parser.add_argument("--vocab-size", type=int, default=30000)
    parser.add_argument("--max-documents", type=int, default=0, help="first N WikiText-2 articles only (0: all)")
    parser.add_argument("--config-overrides", default="{}", help="JSON of AlbertRecipesConfig fields over the preset")
    parser.add_argument("--variants", default="all", help=f"comma list of 1-based row numbers of {list(VARIANTS)} "
                        "(the first is the stock baseline and always runs)")
    parser.add_argument("--output-dir", type=Path, default=harness.RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one variant on --batch-file
    parser.add_argument("--batch-file", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def peak_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def model_config(args, vocab_size: int, sparse: bool):
    import albert_recipes

    return albert_recipes.AlbertRecipesConfig.from_preset(
        args.preset, vocab_size=vocab_size, sparse_mlm_prediction=sparse, max_position_embeddings=max(512, args.seq_len),
        **json.loads(args.config_overrides),
    )  # fmt: skip


def run_worker(args) -> dict:
    """One variant in this (fresh) process."""
    import transformers

    import albert_recipes

    options = VARIANTS[args.worker]
    batch = torch.load(args.batch_file, weights_only=True)
    config = model_config(args, int(batch.pop("vocab_size")), options.get("sparse", False))
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if options.get("stock"):
        model = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_diff_dict()))
    else:
        model = albert_recipes.AlbertRecipesForPreTraining(config)
    if options.get("checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {k: v.to(device) for k, v in batch.items()}
    before = current_mb()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"peak_mb": peak_mb(), "before_step_mb": before, "step_seconds": harness.spread(times),
            "device": str(device), "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(args)))
        return []
    machine = harness.machine_info()
    tokenizer, examples = harness.wikitext_sop_examples(args.seq_len, args.vocab_size, args.max_documents)
    # the longest examples first: a full (B, seq_len) batch, what the memory of a step is sized for
    longest = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))[: args.batch_size]
    batch = harness.masked_batches(tokenizer, examples.select(longest), args.batch_size, 1)[0]
    batch["vocab_size"] = torch.tensor(len(tokenizer))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as work:
        batch_file = Path(work) / "batch.pt"
        torch.save(batch, batch_file)
        names = list(VARIANTS)
        if args.variants != "all":
            names = [names[0]] + [names[int(i) - 1] for i in args.variants.split(",") if int(i) > 1]
        for name in names:
            print(f"running: {name}", flush=True)
            cmd = [sys.executable, __file__, "--worker", name, "--batch-file", str(batch_file), "--preset", args.preset,
                   "--seq-len", str(args.seq_len), "--steps", str(args.steps),
                   "--config-overrides", args.config_overrides]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise SystemExit(f"variant {name!r} failed:\n{result.stderr[-3000:]}")
            rows.append({"variant": name, **json.loads(result.stdout.strip().splitlines()[-1])})
    stock = rows[0]["peak_mb"]
    for row in rows:
        row["peak_vs_stock"] = row["peak_mb"] / stock
    shape = tuple(batch["input_ids"].shape)
    table = harness.markdown_table(
        [("variant", "variant"), ("peak memory (MB)", "{peak_mb:.0f}"), ("of stock", "{peak_vs_stock:.0%}"),
         ("before the step (MB)", "{before_step_mb:.0f}"), ("s per step (median)", "{step_seconds[median]:.2f}"),
         ("min-max", "{step_seconds[min]:.2f}-{step_seconds[max]:.2f}")],
        rows,
    )  # fmt: skip
    table = (f"ALBERT-{args.preset} training step (MLM + SOP, AdamW) on one real batch of {shape[0]} x {shape[1]} "
             f"WikiText-2 SOP tokens, {args.steps} steps per variant, each variant in its own process.\n\n") + table
    settings = {"preset": args.preset, "seq_len": args.seq_len, "batch_size": args.batch_size, "steps": args.steps,
                "batch_shape": shape, "config_overrides": json.loads(args.config_overrides)}  # fmt: skip
    harness.write_results("memory", args.output_dir, settings=settings, machine=machine, rows=rows, table=table)
    stats = [{"median": r["peak_mb"], "min": r["peak_mb"], "max": r["peak_mb"]} for r in rows]
    harness.plot_bars(args.output_dir / "memory.png", f"ALBERT-{args.preset}, {shape[0]} x {shape[1]}: peak memory",
                      [r["variant"] for r in rows], stats, "peak resident memory (MB)")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
