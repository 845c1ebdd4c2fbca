"""Atomic, resumable training checkpoints on top of `accelerator.save_state`.

Layout: `<root>/step-00000100/` holds accelerate's state (model, optimizer, scaler, RNG states of every process,
registered objects such as the LR scheduler), the recipe's extra files, and, written last, the `COMPLETE` marker.
The folder is built under a temporary dot-name and renamed into place in one step (`io_utils.atomic_directory`),
so a kill at any moment leaves either the previous checkpoints untouched plus an ignored temporary folder, or the
new complete one. `find_latest_checkpoint` also insists on the marker, so a folder copied half-way is never resumed.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from albert_recipes.io_utils import atomic_directory, atomic_write_text

COMPLETE_MARKER = "COMPLETE"
_CHECKPOINT_NAME = re.compile(r"^step-(\d{8})$")
# leftovers of interrupted writes: atomic_directory's temporary and trash folders
_LEFTOVER_NAME = re.compile(r"^\.step-\d{8}\.(tmp|old)-")


def checkpoint_path(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def is_complete(path: str | Path) -> bool:
    path = Path(path)
    return bool(_CHECKPOINT_NAME.match(path.name)) and (path / COMPLETE_MARKER).is_file()


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a complete checkpoint was taken after (read from its marker)."""
    marker = Path(path) / COMPLETE_MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {COMPLETE_MARKER} marker)")
    return int(json.loads(marker.read_text(encoding="utf-8"))["step"])


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first; temporary and unmarked folders are skipped."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_complete(p)]
    return sorted(found, key=lambda p: int(_CHECKPOINT_NAME.match(p.name).group(1)))


def find_latest_checkpoint(root: str | Path) -> Path | None:
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def prune_checkpoints(root: str | Path, keep_last: int, keep: Iterable[str | Path] = ()) -> None:
    """Keep the newest `keep_last` complete checkpoints (0 keeps all) plus those in `keep` (e.g. the best one), and
    drop leftovers of killed writes."""
    root = Path(root)
    checkpoints = list_checkpoints(root)
    kept = {Path(p).name for p in keep}
    stale = [p for p in checkpoints[:-keep_last] if p.name not in kept] if keep_last > 0 else []
    stale += [p for p in root.iterdir() if _LEFTOVER_NAME.match(p.name)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    accelerator: Accelerator,
    root: str | Path,
    step: int,
    files: dict[str, str] | None = None,
    keep_last: int = 0,
    before_commit: Callable[[Path], None] | None = None,
    keep: Iterable[str | Path] = (),
) -> Path:
    """Collective: every process must call it. Returns the final checkpoint folder.

    `files` maps file names to text saved beside the state (e.g. the recipe config). `before_commit` runs on
    every process after everything but the marker is written; tests use it to simulate a kill mid-save. `keep`:
    checkpoints that pruning must not remove whatever their age (the best one so far).
    """
    final = checkpoint_path(root, step)
    if accelerator.is_main_process:
        with atomic_directory(final) as tmp:
            _write_state(accelerator, tmp, step, files or {}, before_commit)
        prune_checkpoints(root, keep_last, keep)
    else:
        _write_state(accelerator, None, step, files or {}, before_commit)
    accelerator.wait_for_everyone()
    return final


def _write_state(
    accelerator: Accelerator,
    tmp: Path | None,
    step: int,
    files: dict[str, str],
    before_commit: Callable[[Path], None] | None,
) -> None:
    # every rank writes its own RNG state file, so all of them need the main process's temporary folder
    (folder,) = broadcast_object_list([str(tmp) if tmp is not None else None])
    folder = Path(folder)
    accelerator.save_state(str(folder))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name, text in files.items():
            atomic_write_text(folder / name, text)
    if before_commit is not None:
        before_commit(folder)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(folder / COMPLETE_MARKER, json.dumps({"step": step}) + "\n")
