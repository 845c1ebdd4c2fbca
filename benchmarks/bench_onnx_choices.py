"""Which ONNX export choices pay off: graph fusion and int8 quantization options, measured on SST-2 dev batches.

    python benchmarks/bench_onnx_choices.py --model outputs/bench/sst2-tiny/model

From one fine-tuned classifier: the plain dynamo export; onnxruntime's BERT fusions; dynamic int8 quantization of
the MatMuls only, or of MatMuls + embedding tables (Gather / EmbedLayerNormalization), per tensor or per channel, on
the plain or the fused graph. Each variant runs the same file-order padded batches (batch 32, tokenized beforehand),
interleaved with the others and with the PyTorch model. Reported: file size (and share of the plain fp32 file),
seconds per pass (median, min-max), speed-up against PyTorch fp32, agreement of predictions with PyTorch and
accuracy. recipes/export_onnx.py uses the choice this table supports (fused, int8 MatMul + embeddings, per tensor).
Writes results/onnx_choices.{json,md,png}.
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
from bench_inference import read_tsv  # noqa: E402

CHOICES = {  # name -> (fused graph?, quantized op types or None for fp32, per channel)
    "fp32, plain export": (False, None, False),
    "fp32, fused": (True, None, False),
    "int8 MatMul, plain": (False, ("MatMul",), False),
    "int8 MatMul + embeddings, plain": (False, ("MatMul", "Gather"), False),
    "int8 MatMul, fused": (True, ("MatMul",), False),
    "int8 MatMul + embeddings, fused": (True, ("MatMul", "Gather", "EmbedLayerNormalization", "Attention"), False),
    "int8 MatMul + embeddings, fused, per channel": (True, ("MatMul", "Gather", "EmbedLayerNormalization"), True),
}


def main(argv=None) -> list[dict]:
    from transformers import AutoTokenizer

    from albert_recipes.onnx_export import OnnxModel, export_fp32, fuse, load_model_folder, quantize_int8

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=harness.SHARED_DATA / "sst2" / "dev.tsv")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--output-dir", type=Path, default=harness.RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    machine = harness.machine_info()
    texts, labels = read_tsv(args.data, args.limit)
    model, _ = load_model_folder(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    batches = [{k: v.astype(np.int64) for k, v in tokenizer(texts[i : i + args.batch_size], padding="longest",
                                                             return_tensors="np").items()}
               for i in range(0, len(texts), args.batch_size)]  # fmt: skip

    def torch_pass() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy()
                                   for b in batches])  # fmt: skip

    reference = torch_pass().argmax(-1)
    variants, sizes = {"PyTorch fp32": torch_pass}, {}
    with tempfile.TemporaryDirectory(prefix="onnx-choices-") as work:
        work = Path(work)
        export_fp32(model, work / "plain.onnx")
        fuse(work / "plain.onnx", work / "fused.onnx", model.config)
        for name, (fused, op_types, per_channel) in CHOICES.items():
            source = work / ("fused.onnx" if fused else "plain.onnx")
            folder = work / f"v{len(sizes)}"
            folder.mkdir()
            if op_types is None:
                (folder / "model.onnx").write_bytes(source.read_bytes())
            else:
                quantize_int8(source, folder / "model.onnx", op_types, per_channel)
            sizes[name] = (folder / "model.onnx").stat().st_size
            onnx = OnnxModel(folder, args.threads)
            variants[name] = lambda onnx=onnx: np.concatenate([onnx(**b)["logits"] for b in batches])
        predictions = {name: fn().argmax(-1) for name, fn in variants.items()}
        times = harness.interleave(variants, repeats=args.repeats, warmup=args.warmup)

    base = harness.spread(times["PyTorch fp32"])["median"]
    rows = []
    for name in variants:
        stats = harness.spread(times[name])
        rows.append({
            "variant": name, "seconds": stats, "speedup": base / stats["median"],
            "bytes": sizes.get(name), "size_vs_fp32": sizes[name] / sizes["fp32, plain export"] if name in sizes else None,
            "agreement": float((predictions[name] == reference).mean()),
            "accuracy": float((predictions[name] == labels).mean()),
        })  # fmt: skip
    table = harness.markdown_table(
        [("variant", "variant"), ("file (MiB)", "{bytes:,}"), ("of fp32 file", "{size_vs_fp32:.0%}"),
         ("s per pass (median)", "{seconds[median]:.3f}"), ("min-max", "{seconds[min]:.3f}-{seconds[max]:.3f}"),
         ("speed-up vs PyTorch", "{speedup:.2f}x"), ("same prediction as PyTorch", "{agreement:.2%}"),
         ("accuracy", "{accuracy:.4f}")],
        rows,
    ).replace("file (MiB)", "file (bytes)")  # fmt: skip
    table = (f"{len(texts)} SST-2 dev sentences, file-order batches of {args.batch_size} padded to their longest, model "
             f"{args.model}.\n\n") + table
    settings = {k: str(v) for k, v in vars(args).items() if k != "output_dir"}
    harness.write_results("onnx_choices", args.output_dir, settings=settings, machine=machine, rows=rows, table=table,
                          extra={"raw_seconds": times})  # fmt: skip
    harness.plot_bars(args.output_dir / "onnx_choices.png", "SST-2 dev, same padded batches: seconds per pass",
                      list(variants), [r["seconds"] for r in rows], "seconds (median, min-max)")
    return rows


if __name__ == "__main__":
    main()
