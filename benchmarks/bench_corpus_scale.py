"""Does pretraining data preparation hold at corpus scale? Peak memory and throughput at ~32 MB and ~256 MB of text.

    python benchmarks/bench_corpus_scale.py                       # 32 MB and 256 MB; long (tens of minutes on 2 cores)
    python benchmarks/bench_corpus_scale.py --sizes-mb 1 --steps 2 --output /tmp/smoke   # seconds: a smoke run
    # or one size per process, in parallel, then one report:
    python benchmarks/bench_corpus_scale.py --sizes-mb 32 --output outputs/scale-32 &
    python benchmarks/bench_corpus_scale.py --sizes-mb 256 --output outputs/scale-256; wait
    python benchmarks/bench_corpus_scale.py --combine outputs/scale-32.json outputs/scale-256.json

For each size it writes a corpus under --work-dir (never into git): WikiText-2 paragraphs and SST-2 sentences from
../shared/data, reshuffled and recombined into new documents, so the big corpus is not one file repeated verbatim.
Then, in a fresh child process each time, it runs `albert_recipes.pretraining_data.prepare_pretraining_data`
(read -> Arrow -> tokenizer trained on a bounded sentence sample -> token ids -> SOP cuts, `num_proc` workers) and
the first optimizer steps of a small ALBERT (masking collator, AdamW); twice: a cold run that builds the cache and
a warm run that reuses it. The parent samples the child's whole process tree (psutil) for peak RSS (all resident
pages, including the memory-mapped Arrow files' page cache) and peak anonymous RSS (RSS minus file-backed and
shared pages: the process's own heap). Targets: peak RSS at 256 MB within 15% of that at 32 MB; the warm run
reaches its first optimizer step in under 30 s.

Writes <output>.json and <output>.md (default benchmarks/results/corpus_scale.*) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
TARGET_RSS_RATIO = 1.15
TARGET_WARM_FIRST_STEP_S = 30.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[32, 256], help="corpus sizes in MB")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps after data preparation")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--tokenizer-sentences", type=int, default=200_000,
                        help="sentences sampled for tokenizer training (bounds its memory)")
    parser.add_argument("--num-proc", type=int, default=2, help="worker processes for tokenizing and cutting")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "outputs" / "bench_corpus_scale",
                        help="corpora and caches are written here (git-ignored outputs/ by default)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "corpus_scale")
    parser.add_argument("--combine", type=Path, nargs="+",
                        help="instead of measuring, report the runs of earlier results (.json), e.g. one run per "
                        "size made in parallel")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)  # internal: run one measurement
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --- the corpus --------------------------------------------------------------------------------------------------


def source_paragraphs() -> tuple[list[str], list[str]]:
    """WikiText-2 paragraphs (valid + test) and SST-2 training sentences."""
    wiki = []
    for name in ("valid.txt", "test.txt"):
        for line in (SHARED / "wikitext-2" / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("="):
                wiki.append(line.strip())
    sst = []
    for line in (SHARED / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        sentence = line.rsplit("\t", 1)[0].strip()
        if len(sentence.split()) >= 4:
            sst.append(sentence[0].upper() + sentence[1:] + ("" if sentence.endswith((".", "!", "?")) else " ."))
    return wiki, sst


def write_corpus(path: Path, size_mb: float, seed: int = 0) -> Path:
    """New documents of 3-12 paragraphs drawn at random (a review-like document is 4-20 SST-2 sentences), written
    with blank lines between documents until the file holds `size_mb` MB."""
    if path.is_file() and abs(path.stat().st_size - size_mb * 1e6) < 0.05 * size_mb * 1e6 + 1e5:
        return path
    wiki, sst = source_paragraphs()
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8") as f:
        while written < size_mb * 1e6:
            if rng.random() < 0.7:
                document = "\n".join(rng.sample(wiki, rng.randint(3, 12)))
            else:
                document = " ".join(rng.sample(sst, rng.randint(4, 20)))
            written += f.write(document + "\n\n")
    tmp.replace(path)
    return path


# --- one measured run (a child process) -------------------------------------------------------------------------


def _cache_files(cache: Path) -> set[Path]:
    """Data files in the cache (not the lock files `datasets` leaves beside them)."""
    return {p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"} if cache.is_dir() else set()


def child(args) -> None:
    import psutil
    import torch

    start = psutil.Process().create_time()
    import datasets

    from albert_recipes import AlbertRecipesConfig, AlbertRecipesForPreTraining
    from albert_recipes.masking import NgramMaskingCollator
    from albert_recipes.pretraining_data import prepare_pretraining_data

    datasets.disable_progress_bars()
    torch.manual_seed(0)
    before = _cache_files(args.cache)
    call_start = time.time()
    data = prepare_pretraining_data(
        seed=0, train_file=[str(args.child)], vocab_size=args.vocab_size, max_seq_length=args.max_seq_length,
        num_proc=args.num_proc, cache_dir=args.cache, tokenizer_max_sentences=args.tokenizer_sentences,
    )
    train_set = data.train_set(0)
    prepared, in_prepare = time.time() - start, time.time() - call_start
    written = len(_cache_files(args.cache) - before)
    config = AlbertRecipesConfig.from_preset(
        "tiny", vocab_size=len(data.tokenizer), max_position_embeddings=args.max_seq_length
    )
    model = AlbertRecipesForPreTraining(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    collator = NgramMaskingCollator(data.tokenizer, seed=0)
    sampler = torch.utils.data.RandomSampler(train_set, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, collate_fn=collator)
    first_step, tokens, step_start = None, 0, time.time()
    for step, batch in enumerate(loader):
        batch.pop("sop_random_document", None)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        if first_step is None:
            first_step = time.time() - start
        if step + 1 == args.steps:
            break
    train_seconds = time.time() - step_start
    print("RESULT " + json.dumps({
        "seconds_to_prepared_data": prepared,
        "seconds_in_prepare_call": in_prepare,  # without interpreter start and imports
        "seconds_to_first_step": first_step,
        "train_steps": args.steps,
        "train_tokens_per_s": tokens / train_seconds,
        "train_examples_epoch0": len(train_set),
        "eval_examples": len(data.eval_set),
        "documents": data.num_train_documents + data.num_eval_documents,
        "tokenizer_pieces": len(data.tokenizer),
        "fingerprint": data.fingerprint,
        "cache_files_written": written,
    }), flush=True)


def measure(args, corpus: Path, cache: Path) -> dict:
    """Run one child and sample its process tree's memory every 50 ms."""
    import psutil

    command = [sys.executable, __file__, "--child", str(corpus), "--cache", str(cache), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--max-seq-length", str(args.max_seq_length),
               "--vocab-size", str(args.vocab_size), "--tokenizer-sentences", str(args.tokenizer_sentences),
               "--num-proc", str(args.num_proc)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = {"rss": 0, "anon": 0}
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.is_set():
            rss = anon = 0
            try:
                for p in [root, *root.children(recursive=True)]:
                    info = p.memory_info()
                    rss += info.rss
                    anon += info.rss - getattr(info, "shared", 0)
            except psutil.Error:
                pass
            peak["rss"], peak["anon"] = max(peak["rss"], rss), max(peak["anon"], anon)
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    out, err = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"child failed ({process.returncode}):\n{err[-4000:]}")
    result = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")))
    return {**result, "wall_seconds": wall, "peak_rss_mb": peak["rss"] / 2**20, "peak_anon_rss_mb": peak["anon"] / 2**20}


def measure_sizes(args) -> list[dict]:
    """A cold and a warm run for every size; each size's cache is removed afterwards (its corpus is kept)."""
    import shutil

    if not (SHARED / "wikitext-2" / "valid.txt").is_file() or not (SHARED / "sst2" / "train.tsv").is_file():
        sys.exit(f"error: {SHARED} lacks wikitext-2/valid.txt or sst2/train.tsv (the shared data folder is expected "
                 "beside the repository)")
    runs = []
    for size in args.sizes_mb:
        corpus = write_corpus(args.work_dir / f"corpus-{size:g}MB.txt", size)
        cache = args.work_dir / f"cache-{size:g}MB"
        shutil.rmtree(cache, ignore_errors=True)
        cold = measure(args, corpus, cache)
        warm = measure(args, corpus, cache)
        corpus_mb = corpus.stat().st_size / 1e6
        runs.append({"corpus_mb": corpus_mb, "cold": cold, "warm": warm,
                     "prepare_mb_per_s": corpus_mb / cold["seconds_to_prepared_data"],
                     "load_average_after": os.getloadavg()[0]})
        print(f"{corpus_mb:.1f} MB: cold {cold['seconds_to_first_step']:.1f}s to first step, peak RSS "
              f"{cold['peak_rss_mb']:.0f} MB (anon {cold['peak_anon_rss_mb']:.0f} MB); warm "
              f"{warm['seconds_to_first_step']:.1f}s, peak RSS {warm['peak_rss_mb']:.0f} MB", flush=True)
        shutil.rmtree(cache, ignore_errors=True)
    return runs


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        child(args)
        return {}
    import torch

    from bench_data import write_results  # a sibling script: benchmarks/ is on sys.path when this one runs

    if args.combine:
        earlier = [json.loads(path.read_text()) for path in args.combine]
        runs = sorted((run for result in earlier for run in result["runs"]), key=lambda run: run["corpus_mb"])
        settings = earlier[0]["settings"]
    else:
        runs, settings = measure_sizes(args), {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                                               if k not in ("child", "cache", "combine")}
    small, large = runs[0], runs[-1]
    rss_ratio = large["cold"]["peak_rss_mb"] / small["cold"]["peak_rss_mb"]
    anon_ratio = large["cold"]["peak_anon_rss_mb"] / small["cold"]["peak_anon_rss_mb"]
    warm_first_step = max(r["warm"]["seconds_to_first_step"] for r in runs)
    result = {
        "runs": runs,
        "peak_rss_ratio_largest_to_smallest": rss_ratio,
        "peak_anon_rss_ratio_largest_to_smallest": anon_ratio,
        "target_rss_ratio": TARGET_RSS_RATIO,
        "warm_seconds_to_first_step_max": warm_first_step,
        "target_warm_first_step_s": TARGET_WARM_FIRST_STEP_S,
        "settings": settings,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
                   f"{os.getloadavg()[0]:.1f} at the end",
        "torch": torch.__version__,
    }
    lines = [
        f"Pretraining data at corpus scale: prepare_pretraining_data + {settings['steps']} AdamW steps of a tiny "
        f"ALBERT (batch {settings['batch_size']} x {settings['max_seq_length']} tokens, num_proc="
        f"{settings['num_proc']}); {result['machine']}",
        "",
        "| corpus | documents | run | in prepare call (s) | to data ready (s) | to first step (s) | peak RSS (MB) "
        "| peak anon RSS (MB) | train tokens/s |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        for kind in ("cold", "warm"):
            m = r[kind]
            in_call = f"{m['seconds_in_prepare_call']:.1f}" if "seconds_in_prepare_call" in m else "n/a"
            lines.append(f"| {r['corpus_mb']:.1f} MB | {m['documents']:,} | {kind} | {in_call} | "
                         f"{m['seconds_to_prepared_data']:.1f} "
                         f"| {m['seconds_to_first_step']:.1f} | {m['peak_rss_mb']:.0f} | {m['peak_anon_rss_mb']:.0f} "
                         f"| {m['train_tokens_per_s']:,.0f} |")
    lines += [
        "",
        f"Cold preparation throughput: " + ", ".join(f"{r['prepare_mb_per_s']:.2f} MB/s at {r['corpus_mb']:.1f} MB"
                                                      for r in runs) + ".",
        f"Peak RSS, largest / smallest corpus: {rss_ratio:.2f} (target <= {TARGET_RSS_RATIO}): "
        f"{'met' if rss_ratio <= TARGET_RSS_RATIO else 'NOT met'}; anonymous RSS: {anon_ratio:.2f}."
        if len(runs) > 1 else "Peak RSS ratio: only one corpus size measured.",
        f"Warm run (cache reused) reaches its first step in {warm_first_step:.1f} s at most "
        f"(target < {TARGET_WARM_FIRST_STEP_S:.0f} s): {'met' if warm_first_step < TARGET_WARM_FIRST_STEP_S else 'NOT met'}.",
    ]
    write_results(args.output, result, lines)
    return result


if __name__ == "__main__":
    main()
