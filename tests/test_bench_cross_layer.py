"""Tiny end-to-end runs of benchmarks/bench_early_exit.py (fine-tuning recipe with early-exit heads, then the
patience/depth sweep) and benchmarks/bench_cross_layer_mlm.py (three pretraining runs, one per flag), so the
benchmarks never rot. Their figures are not checked here: the consistency of what they report is."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# both benchmarks in ONE child (each child spends seconds importing torch), each as `python benchmarks/NAME.py ...`
DRIVER = """
import json, runpy, sys
for script, argv in json.loads(sys.argv[1]):
    sys.argv = [script, *argv]
    runpy.run_path(script, run_name="__main__")
"""

POSITIVE = "good great fine lovely superb warm funny bright".split()
NEGATIVE = "bad awful dull boring weak cold grim flat".split()
FILLER = "the film movie story plot was is a an and it this very quite".split()


def write_sentiment(folder: Path, rows: int, seed: int) -> None:
    """sentence<TAB>label rows whose label is which word list their sentiment word comes from."""
    rng = random.Random(seed)
    lines = ["sentence\tlabel"]
    for i in range(rows):
        label = i % 2
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        lines.append(f"{' '.join(words)}\t{label}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("train.tsv" if rows > 100 else "dev.tsv")).write_text("\n".join(lines) + "\n")


def write_wikitext(path: Path, articles: int, seed: int) -> None:
    """WikiText layout: ` = Title = ` lines, paragraphs as lines, blank lines between them."""
    rng = random.Random(seed)
    words = FILLER + POSITIVE + NEGATIVE
    out = []
    for article in range(articles):
        out += ["", f" = Article {seed} {article} = ", ""]
        for _ in range(3):
            sentences = [" ".join(rng.choices(words, k=rng.randint(6, 12))) + " ." for _ in range(4)]
            out += [" " + " ".join(sentences), ""]
    path.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("bench_cross_layer")
    write_sentiment(work / "sst2", 160, seed=0)
    write_sentiment(work / "sst2", 48, seed=1)
    (work / "wikitext").mkdir()
    write_wikitext(work / "wikitext" / "valid.txt", 24, seed=0)
    write_wikitext(work / "wikitext" / "test.txt", 16, seed=1)
    early_exit = ["--data", work / "sst2", "--output-dir", work / "early_exit", "--results-dir", work / "results",
                  "--hidden-size", 16, "--embedding-size", 16, "--heads", 2, "--intermediate-size", 32, "--layers", 4,
                  "--vocab-size", 100, "--epochs", 2, "--batch-size", 16, "--max-length", 16, "--patience", "1,2",
                  "--repeats", 2]
    mlm = ["--data", work / "wikitext", "--output-dir", work / "mlm", "--results-dir", work / "results",
           "--hidden-size", 16, "--embedding-size", 8, "--heads", 2, "--intermediate-size", 32, "--layers", 3,
           "--vocab-size", 120, "--seq-length", 32, "--batch-size", 8, "--steps", 4, "--eval-every", 2,
           "--eval-examples", 16]
    plan = [[str(ROOT / "benchmarks" / "bench_early_exit.py"), [str(a) for a in early_exit]],
            [str(ROOT / "benchmarks" / "bench_cross_layer_mlm.py"), [str(a) for a in mlm]]]
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(plan)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return work


def test_tiny_early_exit_benchmark(runs):
    result = json.loads((runs / "results" / "early_exit.json").read_text())
    rows = {row["setting"]: row for row in result["rows"]}
    assert list(rows) == ["full depth", "patience 1", "patience 2", "depth 1", "depth 2", "depth 3", "depth 4"]
    full = rows["full depth"]
    assert full["mean_layers"] == 4 and full["speedup"] == 1.0 and full["accuracy_loss_points"] == 0
    for k in range(1, 5):  # a fixed depth runs exactly k applications; depth 4 is the full model's classifier
        assert rows[f"depth {k}"]["mean_layers"] == k
    assert rows["depth 4"]["accuracy"] == full["accuracy"]
    for p in (1, 2):  # PABEE: a row can stop after application p + 1 at the earliest
        row = rows[f"patience {p}"]
        assert p + 1 <= row["mean_layers"] <= row["mean_layers_if_batch_waits"] <= 4
    assert all(0 <= row["accuracy"] <= 1 and row["seconds"] > 0 for row in rows.values())
    assert result["meta"]["examples"] == 48
    table = (runs / "results" / "early_exit.md").read_text()
    assert table.count("\n| ") == 2 + len(rows) and "| patience 2 |" in table
    assert (runs / "results" / "early_exit.png").stat().st_size > 10_000
    # the recipe trained and saved the exit classifiers with the model
    config = json.loads((Path(result["meta"]["model"]) / "config.json").read_text())
    assert config["early_exit_classifiers"] is True and config["layerdrop"] == 0.1


def test_tiny_cross_layer_mlm_benchmark(runs):
    result = json.loads((runs / "results" / "cross_layer_mlm.json").read_text())
    rows = result["rows"]
    assert [row["run"].split(" (")[0] for row in rows] == ["baseline", "residual attention", "depth-weighted average"]
    losses = [row["eval/mlm_loss"] for row in rows]
    assert all(0 < loss < 10 for loss in losses) and len(set(losses)) == 3  # each flag changed the model
    assert all([h["step"] for h in row["history"] if "eval/mlm_loss" in h] == [2, 4] for row in rows)
    table = (runs / "results" / "cross_layer_mlm.md").read_text()
    assert table.count("\n| ") == 2 + 3 and "+0.0000" in table  # the baseline's own difference
    assert (runs / "results" / "cross_layer_mlm.png").stat().st_size > 10_000
    # each flag reached the pretrained model through the recipe's model.* settings and was exported with it
    for row, flag in zip(rows, [None, "residual_attention", "depth_weighted_average"]):
        config = json.loads((Path(row["output_dir"]) / "final" / "config.json").read_text())
        for name in ("residual_attention", "depth_weighted_average"):
            assert config[name] is (name == flag), (row["run"], name)
