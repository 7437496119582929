"""The notebooks: written by notebooks/build.py (checked here), and run top
to bottom (nbclient), small: the cell tagged `parameters` is replaced, as
papermill would. An exception in any cell fails."""

import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SMALL = '''DATA = "shapes"
IMAGE_SIZE = 16
VARIANT = "paper"
N_G, N_D = 8, 8
BATCH_SIZE = 16
EPOCHS = 1
LR_G, LR_D = 0.002, 0.0005
NUM_IMAGES = 64
MAX_STEPS = None
OUT = "run"'''


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


def test_notebooks_are_what_the_template_writes():
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / "build.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.slow
def test_framework_notebook_runs(fw, tmp_path):  # fw: each installed framework (conftest)
    nb = execute(f"dcgan_{fw}.ipynb", SMALL, tmp_path)
    text = outputs(nb)
    assert "class G_block" in text and "class D_block" in text  # the project's code, shown
    assert "examples/sec on" in text                            # the book's closing line
    assert (tmp_path / "run" / "samples" / "epoch_001.png").exists()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the data grid, the LeakyReLU plot, the live training plot

# compare.ipynb runs in test_compare.py, beside the comparison it reports (one per test process).


def parameters(name: str) -> dict:
    """The notebook's `parameters` cell, run: its default settings."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    values = {}
    exec(cell.source, {}, values)
    return values


def test_the_notebooks_defaults_are_make_demos_settings():
    # The Makefile's DEMO_FLAGS are what README "What make demo shows" measured; the notebooks
    # say they train the same (the compare notebook's FLAGS once kept 8 epochs after the demo's
    # went to 5).
    makefile = (NOTEBOOKS.parent / "Makefile").read_text()
    defaults = {k.strip(): v.strip() for k, v in (l.split("?=", 1) for l in makefile.splitlines()
                                                   if "?=" in l and not l.startswith("#"))}
    demo = re.sub(r"\$\((\w+)\)", lambda m: defaults[m.group(1)], defaults["DEMO_FLAGS"]).split()
    assert parameters("compare.ipynb")["FLAGS"] == demo
    flags = dict(zip(demo[::2], demo[1::2]))
    for fw in ("torch", "tf", "mx"):
        p = parameters(f"dcgan_{fw}.ipynb")
        mine = {"--data": p["DATA"], "--image-size": p["IMAGE_SIZE"], "--variant": p["VARIANT"], "--n-g": p["N_G"],
                "--n-d": p["N_D"], "--batch-size": p["BATCH_SIZE"], "--num-images": p["NUM_IMAGES"],
                "--epochs": p["EPOCHS"], "--lr-g": p["LR_G"], "--lr-d": p["LR_D"]}
        assert {k: str(v) for k, v in mine.items()} == flags, fw
