"""The three backends as seen from framework-free code.

Cross-framework tools run each framework in its own process (TensorFlow loaded
before triton or MXNet in one process can crash it; see README), so this module
only finds backends and starts them; it never imports one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

# name -> (backend package, the framework module it needs, the pip extra, layout)
FRAMEWORKS = {
    "torch": ("dcgan_torch", "torch", "torch", "NCHW"),
    "tf": ("dcgan_tf", "tensorflow", "tf", "NHWC"),
    "mx": ("dcgan_mx", "mxnet", "mx", "NCHW"),
}
# TensorFlow last: the one import order that works in every version measured.
SAFE_IMPORT_ORDER = ("torch", "mx", "tf")


def package(framework: str) -> str:
    return FRAMEWORKS[framework][0]


def layout(framework: str) -> str:
    return FRAMEWORKS[framework][3]


def is_installed(framework: str) -> bool:
    return importlib.util.find_spec(FRAMEWORKS[framework][1]) is not None


def install_hint(framework: str) -> str:
    _, module, extra, _ = FRAMEWORKS[framework]
    return (f"{framework}: {module} is not installed; install the extra: "
            f"pip install -e '.[{extra}]' (or '.[all]')")


def parse_frameworks(text: str) -> list[str]:
    """'torch,tf' -> ['torch', 'tf']; unknown names raise ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FRAMEWORKS]
    if unknown or not names:
        raise ValueError(f"unknown framework {', '.join(unknown) or repr(text)}; "
                         f"choose from {', '.join(FRAMEWORKS)}")
    return names


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
