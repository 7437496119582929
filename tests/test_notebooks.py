"""The notebooks run top to bottom (nbclient), small: the cell tagged
`parameters` is replaced, as papermill would. An exception in any cell fails."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from common.frameworks import is_installed

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMALL = '''DATA = "shapes"
IMAGE_SIZE = 16
N_G = N_D = 8
BATCH_SIZE = 16
EPOCHS = 2
LR = 0.002
NUM_IMAGES = 64
MAX_STEPS = None
OUT = "run"'''
SMALL_COMPARE = '''FRAMEWORKS = "torch,tf,mx"
FLAGS = ["--image-size", "16", "--n-g", "8", "--n-d", "8", "--batch-size", "16", "--num-images", "64",
         "--epochs", "1"]
OUT = "compare"'''


def execute(name: str, parameters: str, tmp_path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: one cell tagged 'parameters'"
    tagged[0].source = parameters
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def outputs(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_framework_notebook_runs(fw, tmp_path):  # fw: each installed framework (conftest)
    nb = execute(f"dcgan_{fw}.ipynb", SMALL, tmp_path)
    text = outputs(nb)
    assert "class G_block" in text and "class D_block" in text  # the project's code, shown
    assert "examples/sec on" in text                            # the book's closing line
    assert (tmp_path / "run" / "samples" / "epoch_002.png").exists()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the data grid, the LeakyReLU plot, the live training plot


def test_compare_notebook_runs(tmp_path):
    if not all(map(is_installed, ("torch", "tf", "mx"))):
        pytest.skip("needs all three frameworks")
    nb = execute("compare.ipynb", SMALL_COMPARE, tmp_path)
    assert "exit status 0" in outputs(nb)
    report = (tmp_path / "compare" / "report.md").read_text()
    assert all(f"| {fw} |" in report for fw in ("torch", "tf", "mx"))
