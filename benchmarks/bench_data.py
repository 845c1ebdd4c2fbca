"""Is the ALBERT data pipeline fast enough? Sequences/s for building SOP examples and for collating masked batches
on WikiText-2, beside the tokens/s that ALBERT-base pretraining (forward + backward + AdamW step) consumes here.

    python benchmarks/bench_data.py                 # about a minute on a 2-core CPU
    python benchmarks/bench_data.py --train-steps 5 --train-batch-size 16

Writes benchmarks/results/data_pipeline.{json,md} and prints the table. Target: data preparation at least 20x
faster than training consumes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "wikitext-2" / "valid.txt",
                        help="WikiText-layout text file (default: ../shared/data/wikitext-2/valid.txt)")
    parser.add_argument("--vocab-size", type=int, default=8000, help="tokenizer trained on --data first (not timed)")
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--collate-batch-size", type=int, default=64)
    parser.add_argument("--train-batch-size", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=2, help="timed steps after one warm-up step")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "data_pipeline")
    return parser.parse_args(argv)


def pretraining_model(vocab_size: int):
    """ALBERT-base with the paper's 30k vocabulary: ours once the core model exists, else stock transformers."""
    try:
        from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining

        return AlbertRecipesForPreTraining(AlbertRecipesConfig.from_preset("base", vocab_size=vocab_size))
    except ImportError:
        from transformers import AlbertConfig, AlbertForPreTraining

        config = AlbertConfig(vocab_size=vocab_size, hidden_size=768, num_attention_heads=12, intermediate_size=3072)
        return AlbertForPreTraining(config)


def time_training(batch_size: int, seq_len: int, steps: int, vocab_size: int = 30000) -> float:
    """Tokens per second through forward + backward + optimizer step on random token ids."""
    model = pretraining_model(vocab_size).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {
        "input_ids": torch.randint(5, vocab_size, (batch_size, seq_len)),
        "token_type_ids": torch.zeros(batch_size, seq_len, dtype=torch.long),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        "labels": torch.where(
            torch.rand(batch_size, seq_len) < 0.15, torch.randint(5, vocab_size, (batch_size, seq_len)), -100
        ),
        "sentence_order_label": torch.randint(0, 2, (batch_size,)),
    }
    for step in range(steps + 1):
        if step == 1:  # the first step pays for allocation; time the rest
            start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return batch_size * seq_len * steps / (time.perf_counter() - start)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not args.data.is_file():
        sys.exit(f"error: {args.data} not found; pass --data PATH to a WikiText-style text file "
                 "(the shared data folder ../shared/data/wikitext-2 is expected beside the repository)")
    import datasets

    from albert_recipes.corpus import load_documents
    from albert_recipes.masking import NgramMaskingCollator
    from albert_recipes.sop import build_sop_dataset
    from albert_recipes.tokenization import train_tokenizer_on_documents

    datasets.disable_progress_bars()
    tokenizer = train_tokenizer_on_documents(load_documents(args.data), vocab_size=args.vocab_size, show_progress=False)

    start = time.perf_counter()
    documents = load_documents(args.data)
    examples = build_sop_dataset(documents, tokenizer, max_seq_length=args.max_seq_length, seed=0)
    sop_seconds = time.perf_counter() - start
    features = examples.to_list()

    collator = NgramMaskingCollator(tokenizer, seed=0)
    start = time.perf_counter()
    for i in range(0, len(features), args.collate_batch_size):
        collator(features[i : i + args.collate_batch_size])
    collate_seconds = time.perf_counter() - start

    train_tokens_per_s = time_training(args.train_batch_size, args.max_seq_length, args.train_steps)
    train_seqs_per_s = train_tokens_per_s / args.max_seq_length
    sop_seqs_per_s = len(features) / sop_seconds
    collate_seqs_per_s = len(features) / collate_seconds
    pipeline_seqs_per_s = 1.0 / (1.0 / sop_seqs_per_s + 1.0 / collate_seqs_per_s)
    result = {
        "data": str(args.data),
        "sequences": len(features),
        "max_seq_length": args.max_seq_length,
        "tokenizer_pieces": len(tokenizer),
        "sop_build_seqs_per_s": sop_seqs_per_s,
        "mask_collate_seqs_per_s": collate_seqs_per_s,
        "pipeline_seqs_per_s": pipeline_seqs_per_s,
        "albert_base_train_tokens_per_s": train_tokens_per_s,
        "albert_base_train_seqs_per_s": train_seqs_per_s,
        "speedup_over_training": pipeline_seqs_per_s / train_seqs_per_s,
        "target_speedup": 20.0,
        "train_batch_size": args.train_batch_size,
        "train_steps": args.train_steps,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
    }
    rows = [
        ("raw text -> SOP examples (read, split, tokenize, pair)", sop_seqs_per_s),
        ("n-gram masking + padding collator", collate_seqs_per_s),
        ("whole data pipeline (both, one core)", pipeline_seqs_per_s),
        (f"ALBERT-base training consumes (batch {args.train_batch_size})", train_seqs_per_s),
    ]
    lines = [
        f"Data pipeline vs ALBERT-base training, seq len {args.max_seq_length}, {len(features)} WikiText-2 sequences "
        f"({result['machine']})",
        "",
        "| stage | sequences/s | tokens/s |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {rate:,.1f} | {rate * args.max_seq_length:,.0f} |" for name, rate in rows],
        "",
        f"Data preparation is **{result['speedup_over_training']:,.0f}x** faster than training consumes it "
        f"(target >= 20x): {'met' if result['speedup_over_training'] >= 20 else 'NOT met'}.",
    ]
    write_results(args.output, result, lines)
    return result


def write_results(output: Path, result: dict, lines: list[str]) -> None:
    """`output`.json and `output`.md (the table lines), each written atomically; the table is printed too."""
    from albert_recipes.io_utils import atomic_write_text

    table = "\n".join(lines) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    atomic_write_text(output.with_suffix(".md"), table)
    print(table)


if __name__ == "__main__":
    main()
