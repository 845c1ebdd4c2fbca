"""The Colab notebooks: stored without outputs, and executed top to bottom (nbclient) with their test settings."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_quickstart", "02_pretrain", "03_lora_finetune", "04_push_to_hub"]


def load(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def outputs_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") + str(output.get("data", {}).get("text/plain", "")))
            parts.append(output.get("data", {}).get("text/markdown", ""))
    return "\n".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_clean_and_installs_first(name):
    nb = load(name)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code), "clear the outputs"
    first = code[0].source
    assert "%pip install" in first and 'os.environ.get("ALBERT_RECIPES_NOTEBOOK_TEST")' in first


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory):
    """Shared by the four runs, in order, as one person would run them: 03 and 04 reuse 02's model."""
    out = tmp_path_factory.mktemp("notebooks")
    mp = pytest.MonkeyPatch()
    mp.setenv("ALBERT_RECIPES_NOTEBOOK_TEST", "1")
    mp.setenv("ALBERT_RECIPES_NOTEBOOK_OUT", str(out))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_HOME", str(out / "hf_home"))
    mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    yield out
    mp.undo()


CHECKS = {  # what each notebook must visibly produce, beyond running without an error
    "01_quickstart": (0, "identical outputs after the round trip: True"),
    "02_pretrain": (1, "eval/mlm_loss"),  # the loss plot
    "03_lora_finetune": (1, "parameters trained"),  # the confusion matrix
    "04_push_to_hub": (0, "[dry run] would upload"),
}


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, notebook_env):
    nb = load(name)
    client = NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any failure
    min_images, text = CHECKS[name]
    assert images(nb) >= min_images
    assert text in outputs_text(nb)
    if name == "04_push_to_hub":
        assert "refused:" in outputs_text(nb) and "optimizer.pt" in outputs_text(nb)
        assert (notebook_env / "hub-export" / "README.md").is_file()
