"""Run the recipes as their users do, cheaply: import one as a module, or run its command line several times in ONE
fresh interpreter (each separate child would spend most of its time importing torch)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]

# For each run: set (or, with null, unset) its environment variables, then `python recipes/NAME.py ARGV` via runpy;
# record the exit status and what it printed. HF_HUB_OFFLINE is also applied to huggingface_hub's constants, which
# read it once at import.
DRIVER = """
import contextlib, io, json, os, runpy, sys
recipe, runs = sys.argv[1], json.loads(sys.argv[2])
results = []
for run in runs:
    for key, value in run.get("env", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if "HF_HUB_OFFLINE" in run.get("env", {}):
        from huggingface_hub import constants
        constants.HF_HUB_OFFLINE = run["env"]["HF_HUB_OFFLINE"] == "1"
    sys.argv = [recipe, *run["argv"]]
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(recipe, run_name="__main__")
        except SystemExit as exit:
            code = exit.code
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""


def load_recipe(name: str) -> ModuleType:
    """recipes/NAME.py as a module (its dataclasses, `main`), without running its command line."""
    spec = importlib.util.spec_from_file_location(f"{name}_recipe", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def run_cli(name: str, runs: list[dict], env: dict[str, str] | None = None, timeout: int = 300) -> list[dict]:
    """`python recipes/NAME.py` once per run ({"argv": [...], "env": {...}}) in one child; per run code/stdout/stderr."""
    done = subprocess.run([sys.executable, "-c", DRIVER, f"recipes/{name}.py", json.dumps(runs)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])
