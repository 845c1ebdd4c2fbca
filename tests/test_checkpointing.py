"""Atomic checkpoints: complete-or-absent folders, keep-last-K, leftovers of killed writes ignored and cleaned."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from albert_recipes.checkpointing import (
    COMPLETE_MARKER,
    checkpoint_path,
    checkpoint_step,
    find_latest_checkpoint,
    list_checkpoints,
    save_checkpoint,
)


@pytest.fixture
def trained():
    """A prepared toy model + optimizer with one optimizer step taken, so there is optimizer state to save."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    yield accelerator, model, optimizer
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


def test_save_writes_a_complete_folder_and_load_restores_it(tmp_path, trained):
    accelerator, model, optimizer = trained
    path = save_checkpoint(accelerator, tmp_path, 7, files={"recipe_config.yaml": "a: 1\n"})
    assert path == checkpoint_path(tmp_path, 7) == tmp_path / "step-00000007"
    assert {"model.safetensors", "optimizer.bin", "random_states_0.pkl", "recipe_config.yaml", COMPLETE_MARKER} <= {
        p.name for p in path.iterdir()
    }
    assert json.loads((path / COMPLETE_MARKER).read_text()) == {"step": 7}
    assert checkpoint_step(path) == 7 and find_latest_checkpoint(tmp_path) == path

    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    accelerator.load_state(str(path))
    for name, value in model.state_dict().items():
        assert torch.equal(value, saved[name]), name


def test_keep_last_prunes_oldest_and_leftovers(tmp_path, trained):
    accelerator, _, _ = trained
    leftover = tmp_path / ".step-00000002.tmp-abc123"  # what a SIGKILL during a save leaves behind
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"partial")
    for step in (1, 2, 3, 4):
        save_checkpoint(accelerator, tmp_path, step, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000003", "step-00000004"]


def test_incomplete_and_temporary_folders_are_never_resumed(tmp_path, trained):
    accelerator, _, _ = trained
    good = save_checkpoint(accelerator, tmp_path, 5)
    (tmp_path / "step-00000009").mkdir()  # newer but without the marker: e.g. copied half-way
    (tmp_path / ".step-00000010.tmp-xyz").mkdir()
    (tmp_path / ".step-00000010.tmp-xyz" / COMPLETE_MARKER).write_text('{"step": 10}')
    (tmp_path / "notes").mkdir()
    assert find_latest_checkpoint(tmp_path) == good
    assert find_latest_checkpoint(tmp_path / "missing") is None
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        checkpoint_step(tmp_path / "step-00000009")


def test_a_failed_save_leaves_the_previous_checkpoint_untouched(tmp_path, trained):
    accelerator, _, _ = trained
    good = save_checkpoint(accelerator, tmp_path, 5, files={"history.json": "[1]"})
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def crash(folder):
        assert (folder / "model.safetensors").is_file() and not (folder / COMPLETE_MARKER).exists()
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(accelerator, tmp_path, 6, before_commit=crash)
    assert find_latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000005"]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
