"""The TensorFlow backend's adapter (docs/design.md §3): devices, tensors in
and out as NumPy, and a forward pass in training or inference mode. Common
code (sampling, parity, describe, the tests) reaches TensorFlow only through these."""

from __future__ import annotations

import numpy as np

from common.errors import UsageError
from dcgan_tf.compat import keras, tf

LAYOUT = "NHWC"  # TensorFlow's native layout on the CPU


def pick_device(choice: str):
    """auto: the first GPU if there is one, else the CPU.

    TensorFlow places variables and operations itself (a GPU when it sees
    one), so --device cpu on a machine with a GPU hides the GPUs from this
    process, before TensorFlow first uses a device."""
    gpus = tf.config.list_physical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UsageError("--device gpu: TensorFlow sees no GPU")
    if choice == "cpu" and gpus:
        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            raise UsageError("--device cpu: TensorFlow already uses the GPU in this process; "
                             "start a new one, or set CUDA_VISIBLE_DEVICES=") from None
    return "/device:GPU:0" if choice != "cpu" and gpus else "/device:CPU:0"


def describe_device(device) -> str:
    return device


def to_device(net, device):
    """The net, unchanged: TensorFlow created its variables on the device pick_device left visible."""
    return net


def convert_to_tensor(x, device=None):
    """A NumPy array (laid out as LAYOUT) as a tensor of the same dtype."""
    return tf.convert_to_tensor(np.ascontiguousarray(x))


def convert_to_numpy(x) -> np.ndarray:
    return np.asarray(x)


def forward(net, X, training: bool = False):
    """net(X), recording nothing for gradients: batch norm on batch statistics
    (training=True) or on its moving statistics (inference). Keras takes the
    mode as an argument of every call."""
    return net(X, training=training)


def synchronize(device) -> None:
    """Wait until the work queued on `device` is done: a tf.function returns
    once its ops have run on the CPU, but a GPU runs ahead of Python."""
    tf.test.experimental.sync_devices()


def versions() -> dict:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}
