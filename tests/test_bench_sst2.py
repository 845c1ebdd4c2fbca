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


def test_unlabeled_corpus_keeps_whole_sentences_only_and_is_written_whole(tmp_path):
    tsv = tmp_path / "train.tsv"
    tsv.write_text("sentence\tlabel\na fine film\t1\nfine film\t1\na dull , dull plot\t0\ndull plot\t0\n"
                   "nothing else\t0\n", encoding="utf-8")
    output = tmp_path / "out" / "sentences.jsonl"
    assert bench_sst2.write_unlabeled_corpus(tsv, output) == output
    records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    # phrases of longer rows are dropped; longest first, ties alphabetical
    assert records == [{"text": "a dull , dull plot"}, {"text": "a fine film"}, {"text": "nothing else"}]
    assert sorted(p.name for p in output.parent.iterdir()) == ["sentences.jsonl"]  # no temp file left
