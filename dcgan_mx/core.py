"""The MXNet backend's adapter (docs/design.md §3): devices, arrays in and out
as NumPy, and a forward pass in training or inference mode. Common code
(sampling, parity, describe, the tests) reaches MXNet only through these."""

from __future__ import annotations

import numpy

from common.errors import UsageError
from dcgan_mx.compat import autograd, mx, np, npx

LAYOUT = "NCHW"


def pick_device(choice: str):
    """auto: the first GPU if there is one, else the CPU."""
    gpus = npx.num_gpus()
    if choice == "gpu" and not gpus:
        raise UsageError("--device gpu: MXNet sees no GPU (the mxnet wheel on PyPI is CPU-only; "
                         "see README, GPU)")
    return npx.gpu(0) if choice != "cpu" and gpus else npx.cpu()


def describe_device(device) -> str:
    return str(device)


def to_device(net, device):
    """The net, its parameters and running statistics on `device`."""
    net.collect_params().reset_ctx(device)
    return net


def convert_to_tensor(x, device=None):
    """A NumPy array (laid out as LAYOUT) as an mxnet.np array of the same dtype, on `device` (default: the CPU)."""
    x = numpy.asarray(x)
    return np.array(x, dtype=x.dtype, ctx=device or npx.cpu())


def convert_to_numpy(x) -> numpy.ndarray:
    return x.asnumpy()


def forward(net, X, training: bool = False):
    """net(X), recording nothing for gradients: batch norm on batch statistics
    (training) or on its running statistics (inference). Gluon takes the mode
    from the scope the call runs in."""
    with autograd.train_mode() if training else autograd.predict_mode():
        return net(X)


def synchronize(device) -> None:
    """Wait until the work queued on `device` is done. MXNet's engine runs
    ahead of Python on the CPU too: reading loss_G waits only for what
    loss_G needs, not for G's backward pass and update after it."""
    npx.waitall()


def versions() -> dict:
    return {"mxnet": mx.__version__}
