"""benchmarks/bench_sst2.py's result table: row sets written by separate runs (one per core) merge into one."""

import json
import multiprocessing
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_sst2  # noqa: E402


def _row(init: str, mode: str, accuracy: float) -> dict:
    return {"init": init, "mode": mode, "status": "ok", "accuracy": accuracy, "f1": accuracy, "trainable": 1,
            "total": 2, "seconds_per_epoch": 1.0, "train_samples": 0, "epochs": 1, "lr": 1e-3,
            "architecture": "E8 H8", "machine": "test", "majority_accuracy": 0.5}


def _save(results_dir: str, init: str) -> None:
    rows = {(init, mode, 1e-3): _row(init, mode, 0.6 if mode == "lora" else 0.7) for mode in ("lora", "full")}
    bench_sst2.save_rows(Path(results_dir), rows, Path(results_dir) / "no-export")


def test_concurrent_row_sets_merge(tmp_path):
    # an earlier "not run" placeholder for the pretrained rows is replaced, a stale random row is overwritten
    (tmp_path / "sst2.json").write_text(json.dumps({"rows": [
        {"init": "pretrained", "mode": "lora", "lr": None, "status": "no export at x"},
        {**_row("random", "full", 0.1)},
    ]}))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_save, args=(str(tmp_path), init)) for init in ("random", "pretrained")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    rows = json.loads((tmp_path / "sst2.json").read_text())["rows"]
    assert [(r["init"], r["mode"], r["accuracy"]) for r in rows] == [
        ("random", "lora", 0.6), ("random", "full", 0.7), ("pretrained", "lora", 0.6), ("pretrained", "full", 0.7)]
    table = (tmp_path / "sst2.md").read_text()
    assert table.count("| pretrained |") == 2 and "not run" not in table
    assert not list(tmp_path.glob("*tmp*"))  # no temporary file of the atomic writes is left
