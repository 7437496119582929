"""The command lines: the side-by-side shape table, one framework's shapes,
and one-line errors with status 2 on misuse. In-process where a subprocess
adds nothing (common.describe starts one per framework itself)."""

import json

import pytest

from common import describe
from common.backends import is_installed
from helpers import BACKENDS, one_line_error, run_main


@pytest.mark.slow
@pytest.mark.cross_framework
@pytest.mark.skipif(not all(map(is_installed, ("torch", "mx"))), reason="needs torch and mxnet")
def test_describe_prints_the_side_by_side_table(capsys):
    # One process per framework; TensorFlow's (the slowest to start) answers the
    # same describe() as test_backend_model_cli checks in-process.
    assert describe.main(["--image-size", "32", "--n-g", "8", "--n-d", "8", "--frameworks", "torch,mx"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(l for l in lines if l.startswith("net"))
    assert header.split() == ["net", "layer", "spec", "NCHW", "torch", "NCHW", "mx", "NCHW"]
    g_last = next(l for l in lines if l.startswith("G    3"))
    assert g_last.count("(1, 3, 32, 32) ok") == 2
    assert not any("MISMATCH" in l for l in lines)


def test_the_table_shows_each_framework_in_its_own_layout(backends):
    info = {fw: describe.describe(b, describe.ModelSpec(image_size=32, n_G=8, n_D=8)) for fw, b in backends.items()}
    table = describe.shape_table(describe.ModelSpec(image_size=32, n_G=8, n_D=8), info)
    g_last = next(l for l in table.splitlines() if l.startswith("G    3"))
    assert ("(1, 32, 32, 3) ok" in g_last) == ("tf" in info) and "MISMATCH" not in table


@pytest.mark.parametrize("args,message", [
    (["--image-size", "48"], "image_size must be a power of two"),
    (["--n-g", "0"], "n_G must be >= 1"),
    (["--variant", "wgan"], "invalid choice: 'wgan'"),
    (["--image-size", "big"], "invalid int value: 'big'"),
    (["--frameworks", "jax"], "unknown framework jax"),
])
def test_describe_misuse_is_one_line_and_status_2(capsys, args, message):
    one_line_error(capsys, 2, run_main(describe.main, args), message)


def test_backend_model_cli(fw, capsys):
    main = BACKENDS[fw].model.main
    assert main(["--image-size", "16", "--n-g", "8", "--n-d", "8"]) == 0
    assert f"G ({fw}, {BACKENDS[fw].layout}" in capsys.readouterr().out
    assert main(["--image-size", "16", "--n-g", "8", "--n-d", "8", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["framework"] == fw and len(info["G"]) == len(info["D"]) == 3
    one_line_error(capsys, 2, run_main(main, ["--image-size", "20"]), "image_size must be a power of two")
