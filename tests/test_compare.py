"""common.compare: every framework trained in its own process, one report."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from common import compare
from common.cli import ArgumentParser, add_data_args, add_model_args, add_train_args, config_argv
from common.config import TrainConfig, config_from_args
from common.frameworks import is_installed, quiet_env

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--image-size", "16", "--n-g", "8", "--n-d", "8", "--batch-size", "16", "--num-images", "64",
         "--epochs", "2"]
needs_all = pytest.mark.skipif(not all(map(is_installed, ("torch", "tf", "mx"))), reason="needs all three")


def run_compare(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "common.compare", *args], capture_output=True, text=True,
                          env=env or quiet_env(), cwd=cwd, timeout=900)


@needs_all
def test_compare_trains_all_three_and_reports(tmp_path):
    out = tmp_path / "cmp"
    proc = run_compare(*FLAGS, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    for fw in ("torch", "tf", "mx"):
        row = next(line for line in report.splitlines() if line.startswith(f"| {fw} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[3].replace(",", "")) > 0 and float(cells[5]) > 0  # params G, examples/sec
        assert float(cells[9]) < 1.0  # per-step losses stay close over 8 steps (same start, same data)
        assert (out / fw / "generator.npz").exists() and (out / f"{fw}.log").exists()
    assert (out / "compare.png").stat().st_size > 10_000
    assert "| torch |" in proc.stdout  # the table is printed too


@needs_all
def test_a_crash_in_one_framework_does_not_hide_the_others(tmp_path):
    # A dcgan_mx whose train module fails, found first on PYTHONPATH.
    fake = tmp_path / "fake" / "dcgan_mx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "train.py").write_text("raise RuntimeError('forced failure for the test')\n")
    env = dict(quiet_env(), PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]))
    out = tmp_path / "cmp"
    proc = run_compare(*FLAGS, "--out", out, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    report = (out / "report.md").read_text()
    assert "mx: failed" in report and "RuntimeError: forced failure for the test" in report
    for fw in ("torch", "tf"):
        assert (out / fw / "summary.json").exists()
        assert next(l for l in report.splitlines() if l.startswith(f"| {fw} |")).count("failed") == 0


def test_a_missing_framework_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "is_installed", lambda name: False)
    result = compare.run_framework("mx", TrainConfig(out=str(tmp_path / "x")), tmp_path)
    assert not result["ok"] and "pip install -e '.[mx]'" in result["error"]


def test_config_argv_round_trips():
    config = TrainConfig(image_size=32, n_G=8, n_D=16, data="shapes", num_images=100, lr=0.00123, epochs=3,
                         batch_size=7, max_steps=11, seed=5, log_every=2, variant="paper", dtype="float64",
                         preset="paper", out="x")
    parser = ArgumentParser()
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, "x")
    args = parser.parse_args(config_argv(config) + ["--out", "x"])
    assert config_from_args(args) == config


@pytest.mark.parametrize("args,message", [
    (["--frameworks", "jax"], "unknown framework jax"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--resume"], "--resume is not supported by compare"),
])
def test_misuse_is_one_line(tmp_path, args, message):
    proc = run_compare(*args, "--out", tmp_path / "cmp")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert not (tmp_path / "cmp").exists()


def test_a_used_out_directory_is_refused(tmp_path):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "report.md").write_text("an earlier comparison")
    proc = run_compare("--out", tmp_path / "cmp")
    assert proc.returncode == 2 and "is not empty" in proc.stderr
    assert (tmp_path / "cmp" / "report.md").read_text() == "an earlier comparison"
