"""SST-2 dev inference: ours (length-grouped PyTorch, ONNX fp32, ONNX int8) vs the stock transformers ALBERT, one run.

    python benchmarks/bench_inference.py --model outputs/bench/sst2-base/model       # a classifier our recipe fine-tuned
    python benchmarks/bench_inference.py --model DIR --onnx-int8 DIR8 --onnx-fp32 DIR32 --repeats 5

The stock model is `transformers.AlbertForSequenceClassification` holding the very same weights (the key names are
the stock ones). Two groups, every variant interleaved with the others in each repetition:

- end to end (tokenization included on both sides): the stock model in file order, batches of --batch-size padded
  to their longest text (`padding="longest"`), against ours with length-grouped batches
  (`albert_recipes.length_grouped.classify`) on PyTorch, on the fp32 ONNX export and on the int8 one;
- model only, on the very same file-order padded batches, tokenized beforehand: stock PyTorch against ONNX fp32/int8.

Reported: seconds per pass over the dev set (median, min-max), speed-up against the stock row of the group, accuracy,
predictions identical to the stock model's, model FLOP utilisation of the PyTorch rows against a matmul peak measured
in the same run, and the ONNX file sizes. Writes results/inference.{json,md,png}. The ONNX exports are made here
(recipes/export_onnx.py's code) unless given.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a fine-tuned sequence classifier folder")
    parser.add_argument("--data", type=Path, default=harness.SHARED_DATA / "sst2" / "dev.tsv")
    parser.add_argument("--limit", type=int, default=0, help="first N dev sentences only (0: all 872)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per variant (median and min-max)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--onnx-fp32", type=Path, help="existing fp32 export (default: export here)")
    parser.add_argument("--onnx-int8", type=Path, help="existing int8 export (default: export here)")
    parser.add_argument("--threads", type=int, default=0, help="torch and onnxruntime threads (0: all cores)")
    parser.add_argument("--output-dir", type=Path, default=harness.RESULTS)
    return parser.parse_args(argv)


def read_tsv(path: Path, limit: int) -> tuple[list[str], np.ndarray]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    rows = rows[:limit] if limit else rows
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def stock_copy(model):
    """transformers' own AlbertForSequenceClassification with our model's weights."""
    import transformers

    stock = transformers.AlbertForSequenceClassification(transformers.AlbertConfig(**model.config.to_diff_dict()))
    missing, unexpected = stock.load_state_dict(model.state_dict(), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"weights do not map onto the stock model: missing {missing}, unexpected {unexpected}")
    return stock.eval()


def main(argv=None) -> dict:
    from transformers import AutoTokenizer

    import albert_recipes
    from albert_recipes.length_grouped import classify, onnx_forward, torch_forward
    from albert_recipes.onnx_export import OnnxModel, export_model

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, labels = read_tsv(args.data, args.limit)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    ours = albert_recipes.AlbertRecipesForSequenceClassification.from_pretrained(args.model).eval()
    stock = stock_copy(ours)
    machine = harness.machine_info()

    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as work:
        fp32_dir = args.onnx_fp32 or export_model(args.model, Path(work) / "fp32").output_dir
        int8_dir = args.onnx_int8 or export_model(args.model, Path(work) / "int8", quantize="int8").output_dir
        onnx_fp32, onnx_int8 = OnnxModel(fp32_dir, args.threads), OnnxModel(int8_dir, args.threads)
        sizes = {"fp32": (fp32_dir / "model.onnx").stat().st_size, "int8": (int8_dir / "model.onnx").stat().st_size}

    n, bs = len(texts), args.batch_size

    def stock_end_to_end() -> np.ndarray:  # what a user of the stock model writes
        out = []
        with torch.inference_mode():
            for i in range(0, n, bs):
                enc = tokenizer(texts[i : i + bs], padding="longest", truncation=True, max_length=args.max_length,
                                return_tensors="pt")  # fmt: skip
                out.append(stock(**enc).logits.numpy())
        return np.concatenate(out)

    def grouped(forward):
        return lambda: classify(texts, tokenizer, forward, batch_size=bs, max_length=args.max_length)

    # model only: the same file-order padded batches for every variant, tokenized once beforehand
    padded = [dict(tokenizer(texts[i : i + bs], padding="longest", truncation=True, max_length=args.max_length,
                             return_tensors="np")) for i in range(0, n, bs)]  # fmt: skip
    padded = [{k: v.astype(np.int64) for k, v in b.items()} for b in padded]

    def on_padded(forward):
        return lambda: np.concatenate([forward(b) for b in padded])

    groups = {
        "end to end (tokenization included)": {
            "stock PyTorch, file order, padding=longest": stock_end_to_end,
            "ours PyTorch, length-grouped": grouped(torch_forward(ours)),
            "ours ONNX fp32, length-grouped": grouped(onnx_forward(onnx_fp32)),
            "ours ONNX int8, length-grouped": grouped(onnx_forward(onnx_int8)),
        },
        "model only, same padded batches": {
            "stock PyTorch, padded batches": on_padded(torch_forward(stock)),
            "ours ONNX fp32, padded batches": on_padded(onnx_forward(onnx_fp32)),
            "ours ONNX int8, padded batches": on_padded(onnx_forward(onnx_int8)),
        },
    }
    flops = {
        "stock PyTorch, file order, padding=longest": harness.count_flops(stock_end_to_end),
        "ours PyTorch, length-grouped": harness.count_flops(groups["end to end (tokenization included)"]["ours PyTorch, length-grouped"]),
        "stock PyTorch, padded batches": harness.count_flops(groups["model only, same padded batches"]["stock PyTorch, padded batches"]),
    }  # fmt: skip
    peak = harness.matmul_peak_flops()
    variants = {name: fn for group in groups.values() for name, fn in group.items()}
    predictions = {name: fn().argmax(-1) for name, fn in variants.items()}
    print(f"timing {len(variants)} variants x {args.repeats} passes over {n} sentences (batch {bs})", flush=True)
    times = harness.interleave(variants, repeats=args.repeats, warmup=args.warmup)
    peak = max(peak, harness.matmul_peak_flops())  # measured before and after the timings

    rows = []
    for group, members in groups.items():
        baseline = harness.spread(times[next(iter(members))])["median"]
        for name in members:
            stats = harness.spread(times[name])
            reference = predictions[next(iter(members))]
            row = {
                "group": group, "variant": name, "seconds": stats, "speedup": baseline / stats["median"],
                "sentences_per_second": n / stats["median"],
                "accuracy": float((predictions[name] == labels).mean()),
                "same_predictions_as_stock": int((predictions[name] == reference).sum()), "sentences": n,
            }  # fmt: skip
            if name in flops:
                row["gflops"] = flops[name] / 1e9
                row["mfu"] = flops[name] / stats["median"] / peak
            rows.append(row)
    table = harness.markdown_table(
        [("group", "group"), ("variant", "variant"), ("s per pass (median)", "{seconds[median]:.3f}"),
         ("min-max", "{seconds[min]:.3f}-{seconds[max]:.3f}"), ("speed-up vs stock", "{speedup:.2f}x"),
         ("sentences/s", "{sentences_per_second:.0f}"), ("accuracy", "{accuracy:.4f}"),
         ("same prediction as stock", "{same_predictions_as_stock}/{sentences}"), ("GFLOP", "{gflops:.1f}"),
         ("MFU", "{mfu:.1%}")],
        rows,
    )  # fmt: skip
    table += (f"\nONNX files: fp32 {sizes['fp32'] / 2**20:.1f} MiB, int8 {sizes['int8'] / 2**20:.1f} MiB "
              f"({100 * sizes['int8'] / sizes['fp32']:.0f}% of fp32). Matmul peak measured in this run: "
              f"{peak / 1e9:.1f} GFLOP/s (fp32).\n")  # fmt: skip
    settings = {"model": str(args.model), "sentences": n, "batch_size": bs, "max_length": args.max_length,
                "repeats": args.repeats, "warmup": args.warmup}  # fmt: skip
    harness.write_results("inference", args.output_dir, settings=settings, machine=machine, rows=rows, table=table,
                          extra={"raw_seconds": times, "onnx_bytes": sizes, "matmul_peak_flops": peak})  # fmt: skip
    harness.plot_bars(args.output_dir / "inference.png", f"SST-2 dev ({n} sentences), batch {bs}: s per pass",
                      [r["variant"] for r in rows], [r["seconds"] for r in rows], "seconds (median, min-max)")
    return {"rows": rows, "onnx_bytes": sizes}


if __name__ == "__main__":
    main()
