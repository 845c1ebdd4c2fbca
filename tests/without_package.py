"""Run Python code in a fresh interpreter where `albert_recipes` cannot be imported, as on a machine without it.

The package is installed (editable) in the test environment, so a meta-path finder refuses it explicitly.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BLOCK_PACKAGE = textwrap.dedent(
    """
    import sys
    class _BlockAlbertRecipes:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "albert_recipes":
                raise ImportError("albert_recipes is deliberately not importable here")
    sys.meta_path.insert(0, _BlockAlbertRecipes())
    try:
        import albert_recipes
        raise SystemExit("albert_recipes should not be importable")
    except ImportError:
        pass
    """
)


def run_without_package(
    code: str, cwd: str | Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `code` (dedented) after the blocker; fails the test with the child's stderr if it exits non-zero."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_PACKAGE + textwrap.dedent(code)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done
