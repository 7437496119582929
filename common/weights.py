"""Canonical, framework-neutral weights (docs/design.md §6).

A weight set is a dict of float32 NumPy arrays keyed `G/<i>/<param>` and
`D/<i>/<param>`, `i` being the layer's index in the spec and `param` one of
`weight`, `gamma`, `beta`, `running_mean`, `running_var`. Conv weights are in
PyTorch's layout, which Gluon shares:

    conv            (out, in, kh, kw)
    conv_transpose  (in, out, kh, kw)

On disk a set is an `.npz` that also records the `ModelSpec` it was made for,
so a file can be loaded without being told its architecture.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from common.errors import WeightsError
from common.files import atomic_write
from common.spec import ModelSpec

NETS = ("G", "D")
BN_PARAMS = ("gamma", "beta", "running_mean", "running_var")
SPEC_KEY = "__spec__"
INIT_STD = 0.02


def canonical_shapes(spec: ModelSpec, nets=NETS) -> dict[str, tuple[int, ...]]:
    """Every key of the canonical format for `nets`, in order, with its shape."""
    shapes = {}
    for net in nets:
        for i, layer in enumerate(spec.layers(net)):
            shapes[f"{net}/{i}/weight"] = layer.weight_shape
            if layer.batch_norm:
                for param in BN_PARAMS:
                    shapes[f"{net}/{i}/{param}"] = (layer.out_channels,)
    return shapes


def init_weights(spec: ModelSpec, seed: int = 0, nets=NETS) -> dict[str, np.ndarray]:
    """DCGAN's initialisation: conv weights N(0, 0.02); BN gamma 1, beta 0,
    running mean 0, running var 1. Drawn in key order from one NumPy generator,
    so a seed gives the same nets in every framework."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for key, shape in canonical_shapes(spec, nets).items():
        param = key.rsplit("/", 1)[1]
        if param == "weight":
            arrays[key] = rng.normal(0.0, INIT_STD, size=shape).astype(np.float32)
        elif param in ("gamma", "running_var"):
            arrays[key] = np.ones(shape, np.float32)
        else:
            arrays[key] = np.zeros(shape, np.float32)
    return arrays


def select(arrays: dict[str, np.ndarray], net: str) -> dict[str, np.ndarray]:
    """The arrays of one net ("G" or "D")."""
    return {k: v for k, v in arrays.items() if k.startswith(net + "/")}


def validate(arrays: dict[str, np.ndarray], spec: ModelSpec, nets=NETS) -> None:
    """Raise WeightsError naming the first missing key, unexpected key or wrong shape."""
    expected = canonical_shapes(spec, nets)
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise WeightsError(f"missing weight {missing[0]!r} ({len(missing)} missing in all)")
    unexpected = sorted(k for k in arrays if k not in expected)
    if unexpected:
        raise WeightsError(f"unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected in all)")
    for key, shape in expected.items():
        actual = tuple(np.shape(arrays[key]))
        if actual != shape:
            raise WeightsError(f"weight {key!r} has shape {actual}, expected {shape}")


def save_weights(path, arrays: dict[str, np.ndarray], spec: ModelSpec) -> Path:
    """Write `arrays` and their spec to `path` (.npz), atomically."""
    nets = tuple(n for n in NETS if any(k.startswith(n + "/") for k in arrays))
    validate(arrays, spec, nets)
    path = Path(path)
    payload = {k: np.asarray(v, np.float32) for k, v in arrays.items()}
    payload[SPEC_KEY] = np.array(spec.to_json())
    with atomic_write(path) as f:
        np.savez(f, **payload)
    return path


def load_weights(path, spec: ModelSpec | None = None, nets=None):
    """Read a canonical .npz; return (arrays, spec).

    `spec`, when given, must equal the file's. `nets` ("G", "D" or both) are the
    nets the file must hold; by default, whichever it holds.
    """
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):  # an .npy, whatever its name
            raise WeightsError(f"{path}: not a canonical DCGAN weights file (an array, not an .npz archive)")
        with data:
            if SPEC_KEY not in data.files:
                raise WeightsError(f"{path}: not a canonical DCGAN weights file (no {SPEC_KEY!r} record)")
            file_spec = ModelSpec.from_dict(json.loads(str(data[SPEC_KEY])))
            arrays = {k: data[k] for k in data.files if k != SPEC_KEY}
    except WeightsError:
        raise
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise WeightsError(f"{path}: not a readable .npz weights file ({e})") from None
    if spec is not None and spec != file_spec:
        diffs = [
            f"{name}={getattr(file_spec, name)!r} (expected {getattr(spec, name)!r})"
            for name in spec.to_dict()
            if getattr(spec, name) != getattr(file_spec, name)
        ]
        raise WeightsError(f"{path}: made for another spec: {', '.join(diffs)}")
    if nets is None:
        nets = tuple(n for n in NETS if any(k.startswith(n + "/") for k in arrays))
    try:
        validate(arrays, file_spec, nets)
    except WeightsError as e:
        raise WeightsError(f"{path}: {e}") from None
    return arrays, file_spec
