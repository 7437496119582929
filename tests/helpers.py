"""The installed backends, loaded once in the one safe order (PyTorch and
MXNet before TensorFlow), as `common.backends.Backend`s: each test drives all
three through the same adapter, NCHW NumPy in and out. Imported by conftest.py."""

from __future__ import annotations

import hashlib
import importlib.util

from common.backends import SAFE_IMPORT_ORDER, is_installed, load

# torchvision (pytorch-fid's, the FID extra) before TensorFlow, as README "Import order" says:
# test_metrics.py computes FID in this process.
if importlib.util.find_spec("torchvision"):
    import torchvision  # noqa: F401
BACKENDS = {name: load(name) for name in SAFE_IMPORT_ORDER if is_installed(name)}
for _backend in BACKENDS.values():
    _backend.train  # imports the framework now, in order (train imports the rest)
# The backend whose process starts quickest (a tiny run: MXNet ~5.5 s of CPU, PyTorch with
# torch._dynamo ~7.9 s, TensorFlow ~9 s), for a test that needs a process but not a framework.
QUICKEST = next((name for name in ("mx", "torch", "tf") if name in BACKENDS), None)


def random_weights(spec, seed, nets=("G", "D")):
    """Canonical weights with non-trivial batch-norm values (common.parity's)."""
    from common.parity import randomize_batch_norm
    from common.weights import init_weights
    return randomize_batch_norm(init_weights(spec, seed, nets), seed)


def layer_shapes(backend, net, x_nchw) -> list[tuple[int, ...]]:
    """Output shape of each spec layer, in the backend's own layout."""
    return [tuple(map(int, o.shape)) for o in backend.model.layer_outputs(net, backend.to_tensor(x_nchw))]


def snapshot(folder) -> dict:
    """Every file under `folder` and its SHA-1: equal snapshots, untouched files."""
    return {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_main(main, argv) -> int:
    """A command's main(argv), in-process: its exit status (argparse's own errors exit via SystemExit)."""
    try:
        return main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


def one_line_error(capsys, status, code, message):
    """`code` is a CLI's exit status; it must be `status`, with one line on stderr holding `message`."""
    err = capsys.readouterr().err
    assert code == status, (code, err[-2000:])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err[-2000:]
