"""Canonical weights (docs/design.md §6) in and out of the Keras nets.

The canonical layout is PyTorch's. Keras keeps kernels spatial-first:

    Conv2D           canonical (out, in, kh, kw)  <->  Keras (kh, kw, in, out)
    Conv2DTranspose  canonical (in, out, kh, kw)  <->  Keras (kh, kw, out, in)

Both are the same permutation, (2, 3, 1, 0); its inverse, Keras -> canonical,
is (3, 2, 0, 1).
"""

from __future__ import annotations

import numpy as np

from common.weights import BN_PARAMS, select, validate
from dcgan_tf.compat import keras
from dcgan_tf.model import D_block, G_block

_TO_KERAS = (2, 3, 1, 0)
_TO_CANONICAL = (3, 2, 0, 1)
_BN_ATTRS = {"gamma": "gamma", "beta": "beta", "running_mean": "moving_mean",
             "running_var": "moving_variance"}


def spec_layers(net) -> list:
    """(conv, batch_norm or None) for each layer of the spec, in order."""
    layers = []
    for layer in net.layers:
        if isinstance(layer, G_block):
            layers.append((layer.conv2d_trans, layer.batch_norm))
        elif isinstance(layer, D_block):
            layers.append((layer.conv2d, layer.batch_norm))
        elif isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.Conv2D)):
            layers.append((layer, None))
    return layers


def load_canonical(net, arrays: dict):
    """Copy canonical arrays (the keys of `net.role`, "G" or "D") into `net`, exactly; returns `net`."""
    arrays = select(arrays, net.role)
    validate(arrays, net.spec, (net.role,))
    for i, (conv, bn) in enumerate(spec_layers(net)):
        conv.kernel.assign(np.transpose(arrays[f"{net.role}/{i}/weight"], _TO_KERAS))
        if bn is not None:
            for param in BN_PARAMS:
                getattr(bn, _BN_ATTRS[param]).assign(arrays[f"{net.role}/{i}/{param}"])
    return net


def export_canonical(net) -> dict:
    """The canonical arrays of `net`, as NumPy copies in the net's dtype."""
    arrays = {}
    for i, (conv, bn) in enumerate(spec_layers(net)):
        arrays[f"{net.role}/{i}/weight"] = np.ascontiguousarray(
            np.transpose(conv.kernel.numpy(), _TO_CANONICAL))
        if bn is not None:
            for param in BN_PARAMS:
                arrays[f"{net.role}/{i}/{param}"] = getattr(bn, _BN_ATTRS[param]).numpy()
    return arrays


def parameters(net) -> list:
    """(canonical key, trainable variable) for `net`, in spec order."""
    pairs = []
    for i, (conv, bn) in enumerate(spec_layers(net)):
        pairs.append((f"{net.role}/{i}/weight", conv.kernel))
        if bn is not None:
            pairs += [(f"{net.role}/{i}/gamma", bn.gamma), (f"{net.role}/{i}/beta", bn.beta)]
    return pairs


def canonical_gradients(net, gradients) -> dict:
    """Gradients listed in the order of parameters(net), as canonical NumPy arrays
    (kernels transposed from Keras's layout)."""
    out = {}
    for (key, _), g in zip(parameters(net), gradients):
        g = np.asarray(g)
        out[key] = np.ascontiguousarray(np.transpose(g, _TO_CANONICAL)) if g.ndim == 4 else g
    return out
