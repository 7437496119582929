"""Property-based tests (hypothesis) of every command line: random flags with
random values, valid and not, random files where files are expected, random
directory states. The property, for every command:

- the exit status is 0, 2 or another documented one (common/errors.py: 1 data
  or files that cannot be had, 3 a diverged run), never an uncaught exception
  (a traceback);
- a failed command (status 2, or 1) changes no file that existed before; a
  successful one changes only what it was asked to write (its --out).

CI runs a bounded, derandomized profile (a fixed seed: the same examples every
run). A longer one by hand:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_properties.py -p no:cacheprovider
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from common import compare, parity
from common.backends import SAFE_IMPORT_ORDER
from common.data import REGISTRY
from common.spec import ModelSpec
from common.weights import init_weights, save_weights
from helpers import BACKENDS, run_main, snapshot

settings.register_profile("ci", max_examples=12, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("long", max_examples=300, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DOCUMENTED = {0, 1, 2, 3}
pytestmark = pytest.mark.slow

# -- the world the commands meet: files of every kind, run directories in every state --------------

PATHS = ["text.txt", "image.png", "weights.npz", "images.npy", "renamed.npz", "junk.npz", "emptydir",
         "dir_with_file", "dir_with_file/x.txt", "run", "damaged_run", "new_run", "nested/new/out.png",
         "text.txt/under_a_file", "missing.npz", "images_bad_shape.npy"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A template of the files; each example works on a fresh copy."""
    root = tmp_path_factory.mktemp("world")
    spec = ModelSpec(image_size=16, n_G=4, n_D=4)
    (root / "text.txt").write_text("a note the user keeps")
    from PIL import Image
    Image.new("RGB", (16, 16), (200, 30, 30)).save(root / "image.png")
    save_weights(root / "weights.npz", init_weights(spec, 0, nets=("G",)), spec)
    np.save(root / "images.npy", np.random.default_rng(0).uniform(-1, 1, (8, 3, 16, 16)).astype(np.float32))
    np.save(root / "images_bad_shape.npy", np.zeros((3, 5), np.float32))
    shutil.copy(root / "images.npy", root / "renamed.npz")
    (root / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "emptydir").mkdir()
    (root / "dir_with_file").mkdir()
    (root / "dir_with_file" / "x.txt").write_text("keep")
    fw = next(iter(BACKENDS))
    from common.config import TrainConfig
    for name in ("run", "damaged_run"):
        BACKENDS[fw].train.train(TrainConfig().replace(image_size=16, n_G=4, n_D=4, num_images=16, batch_size=4,
                                                       epochs=1, out=str(root / name)), progress=False)
    victim = max((root / "damaged_run" / "checkpoint").iterdir(), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:10])
    return root


@contextlib.contextmanager
def sandbox(world):
    with tempfile.TemporaryDirectory(prefix="dcgan-prop-") as tmp:
        root = Path(tmp) / "w"
        shutil.copytree(world, root, symlinks=True)
        old = os.environ.get("DCGAN_DATA_URL")
        os.environ["DCGAN_DATA_URL"] = "http://127.0.0.1:9/"  # no download can succeed, at once
        try:
            yield root
        finally:
            if old is None:
                os.environ.pop("DCGAN_DATA_URL", None)
            else:
                os.environ["DCGAN_DATA_URL"] = old


def path_values():
    return st.sampled_from(PATHS).map(lambda p: f"{{root}}/{p}")


NUMBERS = st.sampled_from(["0", "1", "2", "-1", "4", "16", "abc", "", "1e3", "3.5"])
FLOATS = st.sampled_from(["0.001", "0.5", "1e6", "nan", "inf", "-inf", "0", "-1", "x", "2e-4"])


def argv_for(flags: dict) -> st.SearchStrategy:
    """0-6 of `flags` (name -> strategy of values, or None for a switch), in any order."""
    def one(name):
        values = flags[name]
        return st.just([name]) if values is None else values.map(lambda v: [name, v])
    return st.lists(st.sampled_from(sorted(flags)).flatmap(one), max_size=6).map(lambda parts: sum(parts, []))


def expand(argv, root):
    return [a.replace("{root}", str(root)) for a in argv]


def named_outputs(argv, names, root) -> list[Path]:
    """The paths given to output flags (the last occurrence wins, as in argparse)."""
    out = {}
    for i, a in enumerate(argv[:-1]):
        if a in names:
            out[a] = Path(argv[i + 1])
    return list(out.values())


def check(code, capsys, before, root, allowed: list[Path], may_write: bool):
    """The property: a documented status, no traceback, and pre-existing files
    changed only under `allowed` and only if the command succeeded."""
    err = capsys.readouterr().err
    assert code in DOCUMENTED, (code, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    if code == 2:
        assert "error:" in err.strip().splitlines()[-1], err[-2000:]
    after = snapshot(root)
    changed = [p for p, digest in before.items() if after.get(p) != digest]
    inside = lambda p: any(p == a or a in p.parents for a in allowed)
    bad = [p for p in changed if not (may_write and inside(p))]
    assert not bad, (code, bad, err[-2000:])


# -- train ------------------------------------------------------------------------------------

TRAIN_FLAGS = {
    "--image-size": st.sampled_from(["16", "32", "8", "48", "-16", "x"]),
    "--n-g": st.sampled_from(["1", "4", "0", "-2"]), "--n-d": st.sampled_from(["2", "4", "0"]),
    "--latent-dim": st.sampled_from(["1", "8", "0"]), "--channels": st.sampled_from(["1", "3", "2"]),
    "--variant": st.sampled_from(["d2l", "paper", "wgan"]),
    "--data": st.sampled_from(sorted(REGISTRY) + ["bogus"]), "--data-dir": path_values(),
    "--data-url": st.sampled_from(["http://127.0.0.1:9/", "some/plain/path", "file:///nowhere/"]),
    "--cache-dir": path_values(), "--num-images": st.sampled_from(["1", "4", "16", "40", "0", "-5"]),
    "--preset": st.sampled_from(["d2l", "paper", "gan"]), "--batch-size": st.sampled_from(["1", "4", "8", "0", "64"]),
    "--epochs": st.sampled_from(["1", "2", "0", "-1"]), "--max-steps": st.sampled_from(["1", "3", "0"]),
    "--lr": FLOATS, "--lr-g": FLOATS, "--lr-d": FLOATS, "--seed": st.sampled_from(["0", "7", "-1", "18446744073709551616"]),
    "--out": path_values(), "--resume": None, "--log-every": st.sampled_from(["0", "1", "-1"]),
    "--device": st.sampled_from(["cpu", "auto", "gpu", "tpu"]), "--dtype": st.sampled_from(["float32", "float64", "int8"]),
    "--dry-run": None, "--bogus-flag": NUMBERS,
    "--eval": None, "--eval-every": st.sampled_from(["0", "1", "-1"]), "--eval-samples": st.sampled_from(["2", "1", "16"]),
}
# Small by default, so an example that trains does so in a blink; random flags after these override them
# (--eval among them: the quality measure, which for shapes trains a judge into the example's fresh cache).
TRAIN_BASE = ["--image-size", "16", "--n-g", "4", "--n-d", "4", "--num-images", "16", "--batch-size", "4",
              "--max-steps", "2", "--no-progress", "--no-eval", "--out", "{root}/new_run", "--cache-dir", "{root}/cache"]


@given(fw=st.sampled_from([n for n in SAFE_IMPORT_ORDER if n in BACKENDS]), argv=argv_for(TRAIN_FLAGS))
def test_train_command(world, capsys, fw, argv):
    with sandbox(world) as root:
        args = expand(TRAIN_BASE + argv, root)
        before = snapshot(root)
        code = run_main(BACKENDS[fw].train.main, args)
        check(code, capsys, before, root, named_outputs(args, ("--out",), root), may_write=code in (0, 3))


# -- sample -----------------------------------------------------------------------------------

SAMPLE_FLAGS = {
    "--weights": path_values(), "--num": NUMBERS, "--seed": st.sampled_from(["0", "3", "-1"]),
    "--out": path_values(), "--npy": path_values(), "--interpolate": NUMBERS, "--slerp": None,
    "--gif": path_values(), "--gif-ms": st.sampled_from(["100", "5", "-1"]),
    "--truncate": st.sampled_from(["0.5", "2", "0", "-1", "nan", "inf"]),
}


@given(fw=st.sampled_from([n for n in SAFE_IMPORT_ORDER if n in BACKENDS]), argv=argv_for(SAMPLE_FLAGS),
       weights=st.sampled_from(["weights.npz", "junk.npz", "renamed.npz", "text.txt", "missing.npz", "emptydir"]))
def test_sample_command(world, capsys, fw, argv, weights):
    with sandbox(world) as root:
        args = expand(["--weights", f"{{root}}/{weights}", "--out", "{root}/new_run/grid.png", *argv], root)
        before = snapshot(root)
        code = run_main(BACKENDS[fw].sample.main, args)
        check(code, capsys, before, root, named_outputs(args, ("--out", "--npy", "--gif"), root), may_write=code == 0)


# -- data show, describe, metrics --------------------------------------------------------------

DATA_FLAGS = {"--out": path_values(), "--image-size": st.sampled_from(["16", "8", "0", "x"]),
              "--channels": st.sampled_from(["1", "3", "4"]), "--seed": st.sampled_from(["0", "-1"]),
              "--data-dir": path_values(), "--data-url": TRAIN_FLAGS["--data-url"],
              "--cache-dir": path_values(), "--num-images": TRAIN_FLAGS["--num-images"]}


@given(name=st.sampled_from(sorted(REGISTRY) + ["bogus"]), argv=argv_for(DATA_FLAGS))
@example(name="shapes", argv=["--seed", "-1"])  # found by the long profile: a traceback from NumPy
def test_data_show_command(world, capsys, name, argv):
    from common.data.__main__ import main
    with sandbox(world) as root:
        args = expand(["show", name, "--out", "{root}/new_run/grid.png", "--num-images", "20",
                       "--image-size", "16", *argv], root)
        before = snapshot(root)
        code = run_main(main, args)
        check(code, capsys, before, root, named_outputs(args, ("--out",), root), may_write=code == 0)


@given(fw=st.sampled_from([n for n in SAFE_IMPORT_ORDER if n in BACKENDS]),
       argv=argv_for({k: TRAIN_FLAGS[k] for k in ("--image-size", "--n-g", "--n-d", "--latent-dim", "--channels",
                                                 "--variant")} | {"--json": None}))
def test_model_command(world, capsys, fw, argv):
    with sandbox(world) as root:
        before = snapshot(root)
        check(run_main(BACKENDS[fw].model.main, argv), capsys, before, root, [], may_write=False)


METRICS_FLAGS = {"--fake": path_values(), "--num": NUMBERS, "--seed": st.sampled_from(["0", "-1"]),
                 "--image-size": st.sampled_from(["16", "32", "x"]), "--json": None,
                 "--data": TRAIN_FLAGS["--data"], "--num-images": TRAIN_FLAGS["--num-images"],
                 "--framework": st.sampled_from(["torch", "mx", "jax"])}


@given(command=st.sampled_from(["swd", "judge", "fid", "nope"]), argv=argv_for(METRICS_FLAGS),
       fake=st.sampled_from(["images.npy", "images_bad_shape.npy", "renamed.npz", "text.txt", "missing.npz"]))
def test_metrics_command(world, capsys, command, argv, fake):
    from common.metrics import main
    with sandbox(world) as root:
        args = expand([command, "--fake", f"{{root}}/{fake}", "--num", "8", "--num-images", "40", *argv], root)
        before = snapshot(root)
        code = run_main(main, args)  # a judge it needs: from the suite's cache (conftest.py)
        check(code, capsys, before, root, [], may_write=False)


# -- compare and parity: their own logic, with the frameworks' processes replaced ---------------

@given(argv=argv_for({"--frameworks": st.sampled_from(["torch,tf,mx", "torch", "jax", "", "torch,torch"]),
                      "--out": path_values(), "--resume": None, "--epochs": TRAIN_FLAGS["--epochs"],
                      "--lr": FLOATS, "--n-g": TRAIN_FLAGS["--n-g"], "--data": TRAIN_FLAGS["--data"]}))
@example(argv=["--out", "{root}/text.txt"])  # found: --out naming a file was a traceback
def test_compare_command(world, capsys, monkeypatch, argv):
    failed = lambda name, config, out, stop=None: {"framework": name, "ok": False, "status": "failed",
                                                   "error": f"{name}: failed (a stand-in)", "wall_s": 0.0}
    monkeypatch.setattr(compare, "run_framework", failed)
    with sandbox(world) as root:
        args = expand(["--out", "{root}/new_run", *argv], root)
        before = snapshot(root)
        code = run_main(compare.main, args)
        check(code, capsys, before, root, named_outputs(args, ("--out",), root), may_write=code in (0, 1))


@given(argv=argv_for({"--frameworks": st.sampled_from(["torch,tf", "torch", "jax", "torch,mx,tf"]),
                      "--image-size": TRAIN_FLAGS["--image-size"], "--steps": NUMBERS, "--batch-size": NUMBERS,
                      "--n-g": TRAIN_FLAGS["--n-g"], "--lr": FLOATS, "--seed": st.sampled_from(["0", "-1"])}))
@example(argv=["--seed", "-1"])  # found by the long profile
def test_parity_command(world, capsys, monkeypatch, argv):
    class Failed:
        returncode, stderr, stdout = 1, "a stand-in worker failed", ""

    monkeypatch.setattr(parity, "run_worker", lambda *a: Failed())
    with sandbox(world) as root:
        before = snapshot(root)
        check(run_main(parity.main, argv), capsys, before, root, [], may_write=False)
