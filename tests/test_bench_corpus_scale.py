"""A tiny run of benchmarks/bench_corpus_scale.py, so the benchmark never rots (its figures are not checked here)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_tiny_corpus_scale_run(tmp_path):
    output = tmp_path / "result"
    command = [sys.executable, str(ROOT / "benchmarks" / "bench_corpus_scale.py"), "--sizes-mb", "0.05",
               "--steps", "2", "--batch-size", "4", "--max-seq-length", "32", "--vocab-size", "150",
               "--num-proc", "1", "--work-dir", str(tmp_path / "work"), "--output", str(output)]
    subprocess.run(command, check=True, timeout=600, cwd=ROOT)
    result = json.loads(output.with_suffix(".json").read_text())
    (run,) = result["runs"]
    cold, warm = run["cold"], run["warm"]
    assert cold["cache_files_written"] > 0 and warm["cache_files_written"] == 0  # the warm run read the cache
    assert warm["fingerprint"] == cold["fingerprint"] and warm["documents"] == cold["documents"] > 10
    assert cold["peak_rss_mb"] > 50 and warm["seconds_to_first_step"] > 0 and cold["train_tokens_per_s"] > 0
    table = output.with_suffix(".md").read_text()
    assert "| cold |" in table and "| warm |" in table and "only one corpus size measured" in table
    assert not (tmp_path / "work" / "cache-0.05MB").exists()  # the caches are removed, the corpus kept
