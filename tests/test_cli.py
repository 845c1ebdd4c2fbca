"""Clear answers: every recipe's --help (choices, plain defaults, examples it really has), config type messages, and
data-file problems named with file and line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import datasets
import pytest

from albert_recipes import finetune_data
from albert_recipes.cli import ConfigError, _settings, build_config, format_value

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.py"))

# `python recipes/X.py --help` for every recipe, in ONE process (each child would spend most of its time importing
# torch): the recipe's help text, its exit status, and its settings (key, allowed values) read from its config class.
HELP_DRIVER = """
import contextlib, io, json, runpy, sys
from albert_recipes import cli
from albert_recipes.cli import _choices, _settings
parse = cli.parse_recipe_args
results = []
for path in json.loads(sys.argv[1]):
    seen = []
    # read the settings while the recipe runs (its type hints resolve in its own module)
    cli.parse_recipe_args = lambda cls, *args: (seen.append(
        [[key, [str(c) for c in _choices(tp) or () if c is not None]] for key, tp, _, _ in _settings(cls)]),
        parse(cls, *args))[1]
    sys.argv = [path, "--help"]
    out, code = io.StringIO(), 0
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_path(path, run_name="__main__")
        except SystemExit as exit:
            code = exit.code
    results.append({"path": path, "code": code, "help": out.getvalue(), "settings": seen[0]})
print(json.dumps(results))
"""

def test_every_recipe_help_lists_choices_plain_defaults_and_real_examples():
    done = subprocess.run([sys.executable, "-c", HELP_DRIVER, json.dumps([str(p) for p in RECIPES])], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    assert {Path(r["path"]).name for r in results} >= {"pretrain.py", "finetune_lora.py", "predict.py",
                                                       "push_to_hub.py", "train_tokenizer.py"}
    for result in results:
        name, text = Path(result["path"]).name, result["help"]
        keys = {key for key, _ in result["settings"]}
        assert result["code"] == 0 and "usage:" in text, name
        assert "PosixPath" not in text and "WindowsPath" not in text, name
        lines = text.splitlines()
        for key, choices in result["settings"]:
            at = next(i for i, line in enumerate(lines) if line.startswith(f"  {key} = "))
            assert all(re.search(rf"\(one of: .*\b{re.escape(c)}\b", lines[at + 1]) for c in choices), (name, key)
        # every `section.key=value` the help shows (examples included) is a setting this recipe has
        for mentioned in re.findall(r"(?<![\w./-])-{0,2}([a-z_]+(?:\.[a-z_]+)+)=", text):
            assert mentioned in keys, f"{name} --help mentions {mentioned}=..., which it does not have"
        assert re.search(r"dotted overrides such as [a-z_.]+=", text), name


@dataclass
class _Section:
    precision: Literal["no", "fp16", "bf16"] = "no"
    tracker: Literal["tensorboard", "none"] | None = None
    repo: str | None = None
    folder: Path = Path("out/x")
    tags: list[str] = field(default_factory=list)


@dataclass
class _Config:
    section: _Section = field(default_factory=_Section)
    steps: int = 3


def test_config_messages_and_yaml_words():
    # YAML 1.1 reads `no` as false: a choice spelled "no" must still be accepted as written on the command line
    assert build_config(_Config, None, ["section.precision=no"]).section.precision == "no"
    assert build_config(_Config, None, ["section.precision=bf16"]).section.precision == "bf16"
    with pytest.raises(ConfigError, match=r"section\.precision: 'fp8' is not allowed; choose one of \['no', 'fp16'"):
        build_config(_Config, None, ["section.precision=fp8"])
    with pytest.raises(ConfigError, match=r"section\.repo: expected a string or null, got \[1\]"):
        build_config(_Config, None, ["section.repo=[1]"])
    with pytest.raises(ConfigError, match=r"section\.tracker: expected one of \['tensorboard', 'none'\] or null"):
        build_config(_Config, None, ["section.tracker=wandb"])
    assert [format_value(v) for v in (Path("a/b"), None, False, "", 0.001, ["x", "y"])] == [
        "a/b", "null", "false", "''", "0.001", "[x, y]"]
    assert [key for key, *_ in _settings(_Config)] == ["section.precision", "section.tracker", "section.repo",
                                                       "section.folder", "section.tags", "steps"]


def _labels_of(path: Path, num_labels: int = 2):
    dataset = finetune_data.read_data_file(path)
    return finetune_data.encode_class_labels(dataset, [], num_labels, str(path))


@pytest.mark.parametrize(("name", "content", "message"), [
    # the header is line 1; blank lines and a quoted field spanning two lines still count as file lines
    ("a.tsv", "sentence\tlabel\ngood\t1\n\nbad\t0\nmeh\t7\n", r"a\.tsv, line 5: label 7 is outside num_labels=2"),
    ("b.csv", 'text,label\n"two\nlines",1\nfine,9\n', r"b\.csv, line 4: label 9 is outside"),
    ("c.jsonl", '{"text": "a", "label": 0}\n\n{"text": "b", "label": 3}\n', r"c\.jsonl, line 3: label 3"),
    ("d.json", '[{"text": "a", "label": 0}, {"text": "b", "label": 4}]', r"d\.json, record 2: label 4"),
])
def test_label_errors_cite_the_file_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        _labels_of(tmp_path / name)


def test_label_errors_of_a_hub_split_cite_the_example_index():
    dataset = datasets.Dataset.from_dict({"label": [0, 1, 5]})
    with pytest.raises(ValueError, match=r"glue\[validation\], example 2 \(counting from 0\): label 5"):
        finetune_data.encode_class_labels(dataset, [], 2, "glue[validation]")
    with pytest.raises(ValueError, match=r"glue\[train\], example 1 \(counting from 0\): regression label 'x'"):
        finetune_data.encode_regression_labels(datasets.Dataset.from_dict({"label": ["1.5", "x"]}), "glue[train]")


def test_data_file_problems_name_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path))} is a directory, not a data file"):
        finetune_data.read_data_file(tmp_path)
    for name, raw in (("latin.tsv", "sentence\tlabel\nok\t1\ncaf\xe9\t0\n"), ("latin.csv", "t,l\nok,1\ncaf\xe9,0\n")):
        (tmp_path / name).write_bytes(raw.encode("latin-1"))
        with pytest.raises(ValueError, match=rf"{name}, line 3: byte 0xe9 at column 4 is not valid UTF-8"):
            finetune_data.read_data_file(tmp_path / name)
    (tmp_path / "bom.csv").write_bytes("\ufefftext,label\nhi,1\n".encode())  # as Excel saves it
    assert finetune_data.read_data_file(tmp_path / "bom.csv").column_names == ["text", "label"]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n{"a": 2,}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: not valid JSON"):
        finetune_data.read_data_file(tmp_path / "bad.jsonl")
    (tmp_path / "texts.txt").write_text("one\n\n  \ntwo\n", encoding="utf-8")
    assert finetune_data.read_data_file(tmp_path / "texts.txt", suffixes=(".txt",))["text"] == ["one", "two"]
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
        finetune_data.read_data_file(tmp_path / "texts.txt")  # fine-tuning needs labelled records
