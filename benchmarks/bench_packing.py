"""Packed pretraining vs the stock transformers ALBERT: effective (non-padding) tokens/s on real SOP data, one run.

    python benchmarks/bench_packing.py                         # ALBERT-base, seq 128 (batch 32) and 512 (batch 8)
    python benchmarks/bench_packing.py --seq-lens 128 --batch-sizes 32 --repeats 5

Data: SOP examples built from WikiText-2 (valid+test) exactly as recipes/pretrain.py builds them, masked by our n-gram
collator; the same batches of examples for every variant. Variants, each with its own copy of one initialisation
and its own AdamW, interleaved step by step (a repetition = one training step of every variant on each batch):

- stock `transformers.AlbertForPreTraining`, batches padded to their longest example (the stock collators' default);
- ours as recipes/pretrain.py trains by default (sparse MLM head), padded the same way;
- ours with `data.packing: true`: the same examples packed into rows of seq_len tokens (albert_recipes.packing).

Effective tokens/s counts only real tokens (padding excluded), so packing and padding compare fairly. MFU: FLOPs of
the step as FlopCounterMode counts them (padding included: that is what the hardware computes) over a matmul peak
measured in the same run. Before timing, the packed and padded forward passes are compared per example (SOP logits,
MLM losses): the largest difference is reported. Writes results/packing.{json,md,png}.
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
    parser.add_argument("--preset", default="base")
    parser.add_argument("--seq-lens", default="128,512", help="comma list")
    parser.add_argument("--batch-sizes", default="32,8", help="examples per step for each --seq-lens entry")
    harness.add_pretraining_args(parser)
    return parser.parse_args(argv)


def per_example(model, batch: dict, order: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(SOP logits, MLM loss) per example in the padded batch's order; eval mode, dense MLM head."""
    with torch.no_grad():
        out = model.eval()(**{k: v for k, v in batch.items() if k not in ("labels", "sentence_order_label")})
    model.train()
    labels = batch["labels"]
    losses = torch.nn.functional.cross_entropy(out.prediction_logits.transpose(1, 2), labels, reduction="none")
    if order is None:
        per_row = losses.sum(-1)
        return out.sop_logits, per_row
    example_of_token = torch.cumsum(batch["position_ids"] == 0, -1) - 1  # (R, W) example within its row
    first = torch.cumsum(torch.nn.functional.pad((batch["position_ids"] == 0).sum(-1), (1, 0)), 0)[:-1]
    flat_example = (first[:, None] + example_of_token).flatten()
    summed = torch.zeros(len(order)).index_add_(0, flat_example, losses.flatten())
    sop, mlm = torch.empty_like(out.sop_logits), torch.empty(len(order))
    sop[order], mlm[order] = out.sop_logits, summed
    return sop, mlm


def run_length(args, seq_len: int, batch_size: int, machine: dict) -> list[dict]:
    import transformers

    import albert_recipes
    from albert_recipes.packing import pack_batch

    tokenizer, examples = harness.wikitext_sop_examples(seq_len, args.vocab_size, args.max_documents)
    padded = harness.masked_batches(tokenizer, examples, batch_size, args.batches)
    packed, orders = zip(*(pack_batch(b, seq_len, tokenizer.pad_token_id) for b in padded))
    real_tokens = sum(int(b["attention_mask"].sum()) for b in padded)

    config = albert_recipes.AlbertRecipesConfig.from_preset(
        args.preset, vocab_size=len(tokenizer), max_position_embeddings=max(512, seq_len),
        **json.loads(args.config_overrides),
    )  # fmt: skip
    torch.manual_seed(0)
    ours = albert_recipes.AlbertRecipesForPreTraining(config)
    stock = transformers.AlbertForPreTraining(transformers.AlbertConfig(**config.to_diff_dict()))
    stock.load_state_dict(ours.state_dict())

    # correctness first: packing changes the layout, not the per-example results
    sop_a, mlm_a = per_example(ours, padded[0], None)
    sop_b, mlm_b = per_example(ours, packed[0], orders[0])
    check = {"max_sop_logit_diff": float((sop_a - sop_b).abs().max()),
             "max_mlm_loss_diff": float((mlm_a - mlm_b).abs().max())}  # fmt: skip

    sparse = copy.deepcopy(ours)
    sparse.config.sparse_mlm_prediction = True
    packed_model = copy.deepcopy(sparse)
    variants = {
        "stock AlbertForPreTraining, padded": (stock, padded),
        "ours (sparse MLM head), padded": (sparse, padded),
        "ours (sparse MLM head), packed": (packed_model, packed),
    }
    steps = {name: harness.training_steps(model, batches) for name, (model, batches) in variants.items()}
    print(f"seq {seq_len}: timing {len(steps)} variants x {args.repeats} repetitions of {args.batches} steps", flush=True)
    flops, times, peak = harness.measure(steps, args.repeats, args.warmup)

    rows = []
    baseline = None
    for name, (_, batches) in variants.items():
        stats = harness.spread(times[name])
        slots = sum(b["input_ids"].numel() for b in batches)
        tokens_per_s = {k: real_tokens / stats[v] for k, v in (("median", "median"), ("min", "max"), ("max", "min"))}
        baseline = baseline or tokens_per_s["median"]
        rows.append({
            "seq_len": seq_len, "batch_size": batch_size, "variant": name, "seconds": stats,
            "effective_tokens_per_second": tokens_per_s, "speedup": tokens_per_s["median"] / baseline,
            "token_slots": slots, "real_tokens": real_tokens, "padding_share": 1 - real_tokens / slots,
            "rows_per_step": slots / batches[0]["input_ids"].shape[1] / len(batches),
            "gflops_per_repetition": flops[name] / 1e9, "mfu": flops[name] / stats["median"] / peak,
            "matmul_peak_gflops": peak / 1e9, **check,
        })  # fmt: skip
    return rows


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    seq_lens = [int(s) for s in args.seq_lens.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if len(seq_lens) != len(batch_sizes):
        raise SystemExit("--seq-lens and --batch-sizes need the same number of entries")
    machine = harness.machine_info()
    rows = [row for s, b in zip(seq_lens, batch_sizes) for row in run_length(args, s, b, machine)]
    table = harness.markdown_table(
        [("seq", "seq_len"), ("batch", "batch_size"), ("variant", "variant"),
         ("effective tokens/s (median)", "{effective_tokens_per_second[median]:.0f}"),
         ("min-max", "{effective_tokens_per_second[min]:.0f}-{effective_tokens_per_second[max]:.0f}"),
         ("speed-up vs stock", "{speedup:.2f}x"), ("padding", "{padding_share:.1%}"),
         ("rows/step", "{rows_per_step:.1f}"), ("MFU", "{mfu:.1%}"),
         ("packed vs padded: max SOP logit / MLM loss diff", "{max_sop_logit_diff:.1e} / {max_mlm_loss_diff:.1e}")],
        rows,
    )  # fmt: skip
    table = (f"ALBERT-{args.preset} pretraining steps (MLM + SOP, AdamW) on real WikiText-2 SOP examples; "
             f"{args.batches} distinct batches per repetition, {args.repeats} repetitions, fp32 on "
             f"{machine['cpu']}.\n\n") + table
    settings = {k: v for k, v in vars(args).items() if k != "output_dir"}
    harness.write_results("packing", args.output_dir, settings=settings, machine=machine, rows=rows, table=table)
    harness.plot_bars(args.output_dir / "packing.png", f"ALBERT-{args.preset}: effective tokens/s (higher is better)",
                      [f"seq {r['seq_len']}: {r['variant']}" for r in rows],
                      [r["effective_tokens_per_second"] for r in rows], "real tokens per second (median, min-max)")
    return rows


if __name__ == "__main__":
    main()
