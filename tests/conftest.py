"""Loads the installed backends once, in the one safe order: PyTorch and MXNet
before TensorFlow (TensorFlow first can crash a later triton or mxnet load;
see README and test_imports.py). Every test reaches a framework through the
`backends` fixture or `helpers.BACKENDS`, never by importing it first itself."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

import helpers  # noqa: E402  (imports the frameworks, in order)


@pytest.fixture(scope="session")
def backends():
    if not helpers.BACKENDS:
        pytest.skip("no framework installed")
    return helpers.BACKENDS


def pytest_generate_tests(metafunc):
    # `fw` parametrises a test over every installed framework; `fw_pair` over pairs.
    names = list(helpers.BACKENDS)
    if "fw" in metafunc.fixturenames:
        metafunc.parametrize("fw", names or [pytest.param(None, marks=pytest.mark.skip("no framework"))])
    if "fw_pair" in metafunc.fixturenames:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        metafunc.parametrize("fw_pair", pairs or [pytest.param(None, marks=pytest.mark.skip("need two"))],
                             ids=lambda p: f"{p[0]}-{p[1]}" if p else "none")
