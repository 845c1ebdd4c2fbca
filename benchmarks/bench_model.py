"""Pretraining step speed: albert_recipes vs the stock transformers ALBERT, interleaved in one run, on real batches.

    python benchmarks/bench_model.py                       # ALBERT-base, batches of 8 x 128 WikiText-2 SOP tokens
    python benchmarks/bench_model.py --preset large --seq-len 512 --repeats 3

Every variant starts from the same weights, has its own AdamW, and runs one training step (MLM + SOP) on each of
--batches real masked SOP batches per repetition; the variants take turns (harness.interleave), so load from
elsewhere hits them alike. Reported: seconds per step (median, min-max over repetitions), speed-up against the stock
model, and model FLOP utilisation against a matmul peak measured in the same run. Peak memory needs a process per
variant: see bench_memory.py. Writes results/model.{json,md,png}.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="base", help="model size preset (tiny, base, large, ...)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    harness.add_pretraining_args(parser)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    import transformers

    import albert_recipes

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = harness.machine_info()
    tokenizer, examples = harness.wikitext_sop_examples(args.seq_len, args.vocab_size, args.max_documents)
    batches = harness.masked_batches(tokenizer, examples, args.batch_size, args.batches)
    config = albert_recipes.AlbertRecipesConfig.from_preset(
        args.preset, vocab_size=len(tokenizer), max_position_embeddings=max(512, args.seq_len),
        **json.loads(args.config_overrides),
    )  # fmt: skip
    torch.manual_seed(0)
    paper = albert_recipes.AlbertRecipesForPreTraining(config)
    stock = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_diff_dict()))
    stock.load_state_dict(paper.state_dict())
    sparse = copy.deepcopy(paper)
    sparse.config.sparse_mlm_prediction = True
    checkpointed = copy.deepcopy(sparse)
    checkpointed.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    models = {
        "stock transformers AlbertForPreTraining": stock,
        "albert_recipes (paper model)": paper,
        "albert_recipes + sparse MLM head": sparse,
        "albert_recipes + sparse MLM + activation checkpointing": checkpointed,
    }
    steps = {name: harness.training_steps(model, batches) for name, model in models.items()}
    flops, times, peak = harness.measure(steps, args.repeats, args.warmup)

    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    rows = []
    for name in models:
        per_step = harness.spread([t / len(batches) for t in times[name]])
        rows.append({
            "variant": name, "step_seconds": per_step, "tokens_per_second": tokens / len(batches) / per_step["median"],
            "speedup": None, "mfu": flops[name] / (per_step["median"] * len(batches)) / peak,
        })  # fmt: skip
    for row in rows:
        row["speedup"] = rows[0]["step_seconds"]["median"] / row["step_seconds"]["median"]
    table = harness.markdown_table(
        [("variant", "variant"), ("s per step (median)", "{step_seconds[median]:.3f}"),
         ("min-max", "{step_seconds[min]:.3f}-{step_seconds[max]:.3f}"), ("real tokens/s", "{tokens_per_second:.0f}"),
         ("speed-up vs stock", "{speedup:.2f}x"), ("MFU", "{mfu:.1%}")],
        rows,
    )  # fmt: skip
    shape = tuple(batches[0]["input_ids"].shape)
    table = (f"ALBERT-{args.preset} pretraining step (MLM + SOP, AdamW) on real WikiText-2 SOP batches of {shape[0]} x "
             f"~{shape[1]} tokens, {args.batches} batches x {args.repeats} repetitions, interleaved. Matmul peak "
             f"measured in this run: {peak / 1e9:.1f} GFLOP/s.\n\n") + table
    settings = {k: v for k, v in vars(args).items() if k != "output_dir"}
    harness.write_results("model", args.output_dir, settings=settings, machine=machine, rows=rows, table=table,
                          extra={"raw_seconds": times, "matmul_peak_flops": peak})  # fmt: skip
    harness.plot_bars(args.output_dir / "model.png", f"ALBERT-{args.preset} pretraining step: seconds (lower is better)",
                      list(models), [r["step_seconds"] for r in rows], "seconds per step (median, min-max)")
    return rows


if __name__ == "__main__":
    main()
