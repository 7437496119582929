"""Canonical weights (DESIGN §5) in and out of the Gluon nets.

Gluon's layout is the canonical one (PyTorch's), so nothing is transposed here.
"""

from __future__ import annotations

import numpy as np

from common.weights import BN_PARAMS, select, validate
from dcgan_mx.compat import mx

nn = mx.gluon.nn


def spec_layers(net: nn.HybridSequential):
    """(conv, batch_norm or None) for each layer of the spec, in order."""
    layers = []
    for block in net:
        if isinstance(block, (nn.Conv2DTranspose, nn.Conv2D)):
            layers.append((block, None))
        elif hasattr(block, "batch_norm"):  # a G_block or D_block
            conv = block.conv2d_trans if hasattr(block, "conv2d_trans") else block.conv2d
            layers.append((conv, block.batch_norm))
    return layers


def load_canonical(net: nn.HybridSequential, arrays: dict) -> nn.HybridSequential:
    """Copy canonical arrays (the keys of `net.role`, "G" or "D") into `net`, exactly."""
    arrays = select(arrays, net.role)
    validate(arrays, net.spec, (net.role,))
    for i, (conv, bn) in enumerate(spec_layers(net)):
        conv.weight.set_data(mx.nd.array(arrays[f"{net.role}/{i}/weight"], dtype=conv.weight.dtype))
        if bn is not None:
            for param in BN_PARAMS:
                target = getattr(bn, param)
                target.set_data(mx.nd.array(arrays[f"{net.role}/{i}/{param}"], dtype=target.dtype))
    return net


def export_canonical(net: nn.HybridSequential) -> dict[str, np.ndarray]:
    """The canonical arrays of `net`, as NumPy copies in the net's dtype."""
    arrays = {}
    for i, (conv, bn) in enumerate(spec_layers(net)):
        arrays[f"{net.role}/{i}/weight"] = conv.weight.data().asnumpy()
        if bn is not None:
            for param in BN_PARAMS:
                arrays[f"{net.role}/{i}/{param}"] = getattr(bn, param).data().asnumpy()
    return arrays


def parameters(net: nn.HybridSequential) -> list:
    """(canonical key, trainable parameter) for `net`, in spec order."""
    pairs = []
    for i, (conv, bn) in enumerate(spec_layers(net)):
        pairs.append((f"{net.role}/{i}/weight", conv.weight))
        if bn is not None:
            pairs += [(f"{net.role}/{i}/gamma", bn.gamma), (f"{net.role}/{i}/beta", bn.beta)]
    return pairs
