"""Loads the installed backends once, in the one safe order: PyTorch and MXNet
before TensorFlow (TensorFlow first can crash a later triton or mxnet load;
see README and test_imports.py). Every test reaches a framework through the
`backends` fixture or `helpers.BACKENDS`, never by importing it first itself.

Markers (pyproject.toml): `slow` (a subprocess or a training run of seconds),
`cross_framework` (compares two or more frameworks). `make test-fast` runs
`-m "not slow"`."""

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The project's cache (the shapes judges; decoded datasets) for every test and the processes
# they start: one folder in .pytest_cache (`make clean` removes it), kept between runs so that
# a judge is trained once per checkout, and never the user's ~/.cache/dcgan. A DCGAN_CACHE_DIR
# that is set already (an empty one, to time a clean machine) wins.
SUITE_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "dcgan"
os.environ.setdefault("DCGAN_CACHE_DIR", str(SUITE_CACHE))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two test processes on two cores: one thread each (PyTorch
    # and MXNet read this, and the processes the tests start inherit it). Two
    # processes of MXNet's two-thread pool each stall one another (measured: a
    # comparison's test 14 s alone, 48 s beside the other worker).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from common.backends import quiet_env  # noqa: E402

COMPARE_FLAGS = ["--image-size", "16", "--n-g", "8", "--n-d", "8", "--batch-size", "16", "--num-images", "64",
                 "--epochs", "2", "--eval-samples", "64"]


def run_compare(*args, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "common.compare", *map(str, args)], capture_output=True,
                          text=True, env=env or quiet_env(), cwd=cwd, timeout=900)


def pytest_configure(config):
    # The frameworks, in order, in every process that runs tests; not in the process
    # that only hands them out to `make test`'s workers (pytest-xdist's controller: 13 s).
    controller = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if not controller:
        import helpers  # noqa: F401  (imports the frameworks, in order)


@pytest.fixture(scope="session")
def comparison(tmp_path_factory):
    """One comparison of all three frameworks (as `make demo` runs it, small),
    shared by test_compare.py and the compare notebook's test."""
    out = tmp_path_factory.mktemp("compare") / "cmp"
    return out, run_compare(*COMPARE_FLAGS, "--out", out)


@pytest.fixture(scope="session")
def backends():
    import helpers
    if not helpers.BACKENDS:
        pytest.skip("no framework installed")
    return helpers.BACKENDS


def pytest_generate_tests(metafunc):
    # `fw` parametrises a test over every installed framework; `fw_pair` over pairs.
    import helpers
    names = list(helpers.BACKENDS)
    if "fw" in metafunc.fixturenames:
        metafunc.parametrize("fw", names or [pytest.param(None, marks=pytest.mark.skip("no framework"))])
    if "fw_pair" in metafunc.fixturenames:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        metafunc.parametrize("fw_pair", pairs or [pytest.param(None, marks=pytest.mark.skip("need two"))],
                             ids=lambda p: f"{p[0]}-{p[1]}" if p else "none")


# Shared fixtures that train or compute for seconds: a test that uses one is slow.
SLOW_FIXTURES = {"trained", "results", "comparison", "finished", "judge", "evaluator"}
# The longest files first (measured: the seconds each took in `make test`), so that
# its two workers (one file each at a time) end together rather than one waiting on
# the last long file. The Makefile passes --no-loadscope-reorder: pytest-xdist would
# otherwise hand out the files with the most tests first, whatever they take.
LONGEST_FIRST = ("test_train.py", "test_distributed.py", "test_signals.py", "test_parity.py", "test_reliability.py",
                 "test_compare.py", "test_ddp.py", "test_imports.py", "test_notebooks.py", "test_bench.py",
                 "test_sweep.py", "test_metrics.py", "test_properties.py", "test_models.py", "test_tensorboard.py",
                 "test_cli.py")


def pytest_collection_modifyitems(items):
    rank = lambda item: (LONGEST_FIRST.index(item.path.name) if item.path.name in LONGEST_FIRST
                         else len(LONGEST_FIRST))
    items.sort(key=rank)  # stable: the order within a file is kept
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "fw_pair" in fixtures:
            item.add_marker(pytest.mark.cross_framework)
        if fixtures & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
