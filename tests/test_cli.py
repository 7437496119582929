"""The command lines: the demo table, and one-line errors with status 2 on misuse."""

import subprocess
import sys

import pytest

from common.frameworks import is_installed, quiet_env
from helpers import BACKENDS


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          env=quiet_env(), timeout=600)


@pytest.mark.skipif(not all(map(is_installed, ("torch", "tf", "mx"))), reason="needs all three")
def test_demo_prints_the_side_by_side_table():
    proc = run("common.describe", "--image-size", "32", "--n-g", "8", "--n-d", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    header = next(l for l in lines if l.startswith("net"))
    assert header.split() == ["net", "layer", "spec", "NCHW", "torch", "NCHW", "tf", "NHWC", "mx", "NCHW"]
    # G's last layer: NCHW for torch and mx, NHWC for tf, each checked against the spec.
    g_last = next(l for l in lines if l.startswith("G    3"))
    assert g_last.count("(1, 3, 32, 32) ok") == 2 and "(1, 32, 32, 3) ok" in g_last
    assert "MISMATCH" not in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--image-size", "48"], "image_size must be a power of two"),
    (["--n-g", "0"], "n_G must be >= 1"),
    (["--variant", "wgan"], "invalid choice: 'wgan'"),
    (["--image-size", "big"], "invalid int value: 'big'"),
    (["--frameworks", "jax"], "unknown framework jax"),
])
def test_demo_misuse_is_one_line_and_status_2(args, message):
    proc = run("common.describe", *args)
    assert proc.returncode == 2
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert message in proc.stderr


def test_backend_model_cli(fw):
    proc = run(f"dcgan_{fw}.model", "--image-size", "16", "--n-g", "8", "--n-d", "8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"G ({fw}, {BACKENDS[fw].layout}" in proc.stdout
    bad = run(f"dcgan_{fw}.model", "--image-size", "20")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
