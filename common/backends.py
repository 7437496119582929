"""The three backends as seen from framework-free code: the one place that
chooses a backend (docs/design.md §3).

`load("torch")` returns a `Backend`: the backend's modules (core, model,
weights, train, each imported on first use, so that sampling never loads what
only training needs) and an adapter that speaks NCHW NumPy in and out whatever
the framework's layout, in the manner of Keras's convert_to_tensor and
convert_to_numpy. Parity, describe, sampling and the tests are written once
over it.

Cross-framework tools run each framework in its own process (TensorFlow loaded
before triton or MXNet in one process can crash it; see README), so `run_module`
starts one; this module never imports a framework itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np

from common.spec import ModelSpec, convert_layout


@dataclass(frozen=True)
class Framework:
    package: str  # the backend package
    module: str   # the framework module it needs
    extra: str    # the pip extra that installs it
    version_key: str  # its name in config.json's versions


FRAMEWORKS = {
    "torch": Framework("dcgan_torch", "torch", "torch", "torch"),
    "tf": Framework("dcgan_tf", "tensorflow", "tf", "tensorflow"),
    "mx": Framework("dcgan_mx", "mxnet", "mx", "mxnet"),
}
# TensorFlow last: the one import order that works in every version measured.
SAFE_IMPORT_ORDER = ("torch", "mx", "tf")


def package(framework: str) -> str:
    return FRAMEWORKS[framework].package


def is_installed(framework: str) -> bool:
    return importlib.util.find_spec(FRAMEWORKS[framework].module) is not None


def install_hint(framework: str) -> str:
    fw = FRAMEWORKS[framework]
    return (f"{framework}: {fw.module} is not installed; install the extra: "
            f"pip install -e '.[{fw.extra}]' (or '.[all]')")


def parse_frameworks(text: str) -> list[str]:
    """'torch,tf' -> ['torch', 'tf']; unknown names raise ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise ValueError(f"unknown framework {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(FRAMEWORKS)}")
    return names


class Backend:
    """One framework's backend modules, and NCHW NumPy in and out of them."""

    MODULES = ("core", "model", "weights", "distributed", "train", "sample", "score")

    def __init__(self, name: str):
        self.name = name
        self.package = package(name)

    def __getattr__(self, module: str):
        if module not in Backend.MODULES:
            raise AttributeError(module)
        return importlib.import_module(f"{self.package}.{module}")

    def __repr__(self):
        return f"Backend({self.name!r})"

    @property
    def layout(self) -> str:
        return self.core.LAYOUT

    # -- the adapter -------------------------------------------------------------

    def to_tensor(self, x_nchw: np.ndarray, device=None):
        """An NCHW NumPy array as this framework's tensor, in its layout and the array's dtype."""
        x = np.asarray(x_nchw)
        return self.core.convert_to_tensor(convert_layout(x, "NCHW", self.layout) if x.ndim == 4 else x, device)

    def to_numpy(self, tensor) -> np.ndarray:
        """A tensor as NumPy; 4-d ones laid out NCHW."""
        x = self.core.convert_to_numpy(tensor)
        return convert_layout(x, self.layout, "NCHW") if x.ndim == 4 else x

    def forward(self, net, x_nchw: np.ndarray, training: bool = False) -> np.ndarray:
        """net(x) with batch norm on batch (training) or running statistics, NCHW NumPy in and out."""
        return self.to_numpy(self.core.forward(net, self.to_tensor(x_nchw), training))

    def generator(self, spec: ModelSpec, arrays: dict, dtype: str = "float32"):
        """G built from the spec, with the canonical arrays loaded."""
        return self.weights.load_canonical(self.model.build_generator(spec, dtype), arrays)

    def discriminator(self, spec: ModelSpec, arrays: dict, dtype: str = "float32"):
        return self.weights.load_canonical(self.model.build_discriminator(spec, dtype), arrays)


def load(name: str) -> Backend:
    """The backend `name` ("torch", "tf" or "mx"); its framework is imported on first use."""
    if name not in FRAMEWORKS:
        raise ValueError(f"unknown framework {name!r}; choose from {', '.join(FRAMEWORKS)}")
    return Backend(name)


# -- each framework in its own process ---------------------------------------------

def quiet_env() -> dict:
    """The environment for a backend subprocess, with TensorFlow's C++ logging quieted."""
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_module(framework: str, module: str, args, capture=True, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m <backend>.<module> args...` in a fresh process."""
    return subprocess.run([sys.executable, "-m", f"{package(framework)}.{module}", *map(str, args)],
                          capture_output=capture, text=True, env=quiet_env(), **kwargs)


def run_json(framework: str, module: str, args, **kwargs):
    """Run a backend module that prints one JSON document; return (data, error line)."""
    proc = run_module(framework, module, args, **kwargs)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return None, lines[-1] if lines else f"exit status {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None
