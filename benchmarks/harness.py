"""What every benchmark here shares, so that a skeptic can trust the comparisons.

- Ours and the stock model run in the same process and the same run, interleaved: each repetition runs every
  variant once, in a rotated order, so a burst of load from elsewhere hits all variants alike. Ratios are therefore
  much more robust than absolute times on a shared machine.
- Several repetitions; the median and the spread (min-max) are reported, never a single best run.
- Model FLOP utilisation (MFU) against a matmul peak measured in the same run (fp32 square GEMM), with FLOPs counted
  by `torch.utils.flop_counter.FlopCounterMode` on the very step that is timed.
- Every benchmark writes `results/<name>.json` (settings, machine, raw times), `results/<name>.md` (a table) and
  `results/<name>.png` (medians with min-max bars).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT / ".." / "shared" / "data"


def add_pretraining_args(parser, repeats: int = 3) -> None:
    """The options every pretraining-step benchmark shares (real WikiText-2 SOP batches, repetitions, output)."""
    parser.add_argument("--batches", type=int, default=2, help="distinct real batches per repetition")
    parser.add_argument("--repeats", type=int, default=repeats, help="repetitions (median and min-max reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds (the FLOP count already ran each once)")
    parser.add_argument("--vocab-size", type=int, default=30000, help="Unigram tokenizer trained on WikiText-2")
    parser.add_argument("--max-documents", type=int, default=0, help="first N WikiText-2 articles only (0: all)")
    parser.add_argument("--config-overrides", default="{}", help="JSON of AlbertRecipesConfig fields over the preset")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    import transformers

    info = {
        "cpu": cpu_name(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def matmul_peak_flops(size: int = 1024, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of a (size x size) @ (size x size) fp32 matmul on this machine, right now."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)  # warm up (thread pool, caches)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (matmuls, attention, convolutions) that one call of `fn` performs, as PyTorch's FlopCounterMode counts."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def training_steps(model: torch.nn.Module, batches: Sequence[dict]) -> Callable[[], None]:
    """A call that runs one AdamW training step of `model` on each batch (the model in train mode, its own optimizer)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def run() -> None:
        for batch in batches:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return run


def measure(steps: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> tuple[dict, dict, float]:
    """(FLOPs per call, interleaved seconds per call, matmul peak FLOP/s measured before and after) of each variant."""
    flops = {name: count_flops(fn) for name, fn in steps.items()}  # also warms every variant up
    peak = matmul_peak_flops()
    times = interleave(steps, repeats=repeats, warmup=warmup)
    return flops, times, max(peak, matmul_peak_flops())


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def interleave(
    variants: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1, progress: bool = True
) -> dict[str, list[float]]:
    """Seconds per call of each variant: `warmup` untimed rounds, then `repeats` rounds in rotated order."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
        if progress:
            latest = ", ".join(f"{n}: {times[n][-1]:.3f}s" for n in names)
            print(f"  repetition {r + 1}/{repeats}: {latest}", flush=True)
    return times


def markdown_table(columns: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """columns: (header, key or format string like '{step_s[median]:.3f}') -> a Markdown table."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for _, spec in columns:
            try:
                cells.append(spec.format(**row) if "{" in spec else str(row.get(spec, "")))
            except (KeyError, TypeError, ValueError, IndexError):
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_bars(path: Path, title: str, labels: Sequence[str], stats: Sequence[dict[str, float]], xlabel: str) -> None:
    """Horizontal bars at the medians with min-max whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    medians = [s["median"] for s in stats]
    low = [s["median"] - s["min"] for s in stats]
    high = [s["max"] - s["median"] for s in stats]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(labels) + 1.4))
    colors = ["#999999" if "stock" in label else "#3b75af" for label in labels]
    ax.barh(range(len(labels)), medians, xerr=[low, high], color=colors, capsize=4)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(
    name: str, output_dir: Path, *, settings: dict, machine: dict, rows: list[dict], table: str, extra: dict | None = None
) -> None:
    """results/<name>.json (everything) and results/<name>.md (machine, settings, the table); the plot is separate."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(os, "getloadavg"):
        machine = {**machine, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    payload = {"settings": settings, "machine": machine, "results": rows, **(extra or {})}
    (output_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    load = machine.get("load_average_at_start"), machine.get("load_average_at_end")
    header = (
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['torch_threads']} torch threads; "
        f"torch {machine['torch']}, transformers {machine['transformers']}"
        + (f", onnxruntime {machine['onnxruntime']}" if "onnxruntime" in machine else "")
        + f". Load average (1, 5, 15 min) at start {load[0]}, at end {load[1]}.\n\n"
        f"Settings: {json.dumps(settings, default=str)}\n\n"
    )
    (output_dir / f"{name}.md").write_text(header + table)
    print(header + table)


def wikitext_sop_examples(seq_len: int, vocab_size: int = 30000, max_documents: int = 0, seed: int = 0):
    """(tokenizer, SOP examples) from the real WikiText-2 valid+test text, as the pretraining recipe builds them."""
    import logging

    from albert_recipes.corpus import iter_documents
    from albert_recipes.sop import build_sop_dataset
    from albert_recipes.tokenization import train_tokenizer_on_documents

    logging.getLogger("albert_recipes").setLevel(logging.WARNING)
    files = [SHARED_DATA / "wikitext-2" / "valid.txt", SHARED_DATA / "wikitext-2" / "test.txt"]
    documents = list(iter_documents(files, layout="wikitext"))
    if max_documents:
        documents = documents[:max_documents]
    tokenizer = train_tokenizer_on_documents(documents, vocab_size=vocab_size, show_progress=False)
    examples = build_sop_dataset(documents, tokenizer, max_seq_length=seq_len, seed=seed)
    return tokenizer, examples


def masked_batches(tokenizer, examples, batch_size: int, count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """`count` padded, n-gram-masked batches of `batch_size` consecutive (shuffled) SOP examples."""
    from albert_recipes.masking import NgramMaskingCollator

    collator = NgramMaskingCollator(tokenizer, seed=seed)
    if len(examples) < batch_size * count:
        raise SystemExit(f"only {len(examples)} SOP examples; need batch_size x batches = {batch_size * count}")
    return [collator([examples[i] for i in range(b * batch_size, (b + 1) * batch_size)]) for b in range(count)]
