"""A thin adapter per framework so one test can drive all three with NumPy in
and NumPy (NCHW) out. Imported by conftest.py, in the safe order."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from common.frameworks import SAFE_IMPORT_ORDER, is_installed, layout, package


@dataclass
class Backend:
    name: str
    layout: str
    model: ModuleType
    weights: ModuleType
    train: ModuleType
    sample: ModuleType
    parity: ModuleType

    def to_native(self, x_nchw: np.ndarray):
        """An NCHW NumPy array as this framework's tensor, in its layout."""
        x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1) if self.layout == "NHWC" else x_nchw)
        if self.name == "torch":
            import torch
            return torch.from_numpy(x)
        if self.name == "mx":
            from dcgan_mx.compat import mx
            return mx.nd.array(x, dtype="float32")
        import tensorflow as tf
        return tf.constant(x)

    def to_nchw(self, y) -> np.ndarray:
        y = y.detach().numpy() if self.name == "torch" else y.asnumpy() if self.name == "mx" else y.numpy()
        return y.transpose(0, 3, 1, 2) if self.layout == "NHWC" else y

    def forward(self, net, x_nchw, training=False) -> np.ndarray:
        """net(x) with batch norm in training (batch statistics) or inference mode."""
        x = self.to_native(x_nchw)
        if self.name == "torch":
            import torch
            net.train(training)
            with torch.no_grad():
                return self.to_nchw(net(x))
        if self.name == "mx":
            from dcgan_mx.compat import mx
            with (mx.autograd.train_mode() if training else mx.autograd.predict_mode()):
                return self.to_nchw(net(x))
        return self.to_nchw(net(x, training=training))

    def layer_shapes(self, net, x_nchw) -> list[tuple[int, ...]]:
        """Output shape of each spec layer, in this framework's own layout."""
        return [tuple(o.shape) for o in self.model.layer_outputs(net, self.to_native(x_nchw))]


BACKENDS: dict[str, Backend] = {}
for _name in SAFE_IMPORT_ORDER:
    if is_installed(_name):
        BACKENDS[_name] = Backend(_name, layout(_name),
                                  *(importlib.import_module(f"{package(_name)}.{module}")
                                    for module in ("model", "weights", "train", "sample", "parity")))


def random_weights(spec, seed, nets=("G", "D")):
    """Canonical weights with non-trivial batch-norm values (common.parity's)."""
    from common.parity import randomize_batch_norm
    from common.weights import init_weights
    return randomize_batch_norm(init_weights(spec, seed, nets), seed)
