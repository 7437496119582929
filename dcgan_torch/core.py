"""The PyTorch backend's adapter (docs/design.md §3): devices, tensors in and
out as NumPy, and a forward pass in training or inference mode. Common code
(sampling, parity, describe, the tests) reaches PyTorch only through these."""

from __future__ import annotations

import numpy as np

from common.errors import UsageError
from dcgan_torch.compat import torch

LAYOUT = "NCHW"


def pick_device(choice: str):
    """auto: the first GPU if there is one, else the CPU."""
    if choice == "gpu" and not torch.cuda.is_available():
        raise UsageError("--device gpu: PyTorch sees no GPU")
    return torch.device("cuda:0" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def describe_device(device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def to_device(net, device):
    """The net, its parameters and buffers on `device`."""
    return net.to(device)


def convert_to_tensor(x, device=None):
    """A NumPy array (laid out as LAYOUT) as a tensor of the same dtype, on `device` (default: the CPU)."""
    tensor = torch.from_numpy(np.ascontiguousarray(x))
    return tensor if device is None else tensor.to(device)


def convert_to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy()


def forward(net, X, training: bool = False):
    """net(X), recording nothing for gradients: batch norm on batch statistics
    (training) or on its running statistics (inference). The net's mode is
    restored afterwards."""
    was_training = net.training
    net.train(training)
    try:
        with torch.no_grad():
            return net(X)
    finally:
        net.train(was_training)


def synchronize(device) -> None:
    """Wait until the work queued on `device` is done. On the CPU PyTorch runs
    each op before returning; a GPU runs ahead of Python."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def versions() -> dict:
    return {"torch": torch.__version__}
