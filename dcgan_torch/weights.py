"""Canonical weights (DESIGN §5) in and out of the PyTorch nets.

PyTorch's layout is the canonical one, so nothing is transposed here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.weights import BN_PARAMS, select, validate

_BN_ATTRS = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
             "running_var": "running_var"}


def spec_layers(net: nn.Sequential):
    """(conv, batch_norm or None) for each layer of the spec, in order."""
    layers = []
    for module in net:
        if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d)):
            layers.append((module, None))
        elif hasattr(module, "batch_norm"):  # a G_block or D_block
            conv = module.conv2d_trans if hasattr(module, "conv2d_trans") else module.conv2d
            bn = module.batch_norm if isinstance(module.batch_norm, nn.BatchNorm2d) else None
            layers.append((conv, bn))
    return layers


def load_canonical(net: nn.Sequential, arrays: dict) -> nn.Sequential:
    """Copy canonical arrays (the keys of `net.role`, "G" or "D") into `net`, exactly."""
    arrays = select(arrays, net.role)
    validate(arrays, net.spec, (net.role,))
    with torch.no_grad():
        for i, (conv, bn) in enumerate(spec_layers(net)):
            conv.weight.copy_(torch.from_numpy(np.asarray(arrays[f"{net.role}/{i}/weight"])))
            if bn is not None:
                for param in BN_PARAMS:
                    getattr(bn, _BN_ATTRS[param]).copy_(
                        torch.from_numpy(np.asarray(arrays[f"{net.role}/{i}/{param}"])))
    return net


def export_canonical(net: nn.Sequential) -> dict[str, np.ndarray]:
    """The canonical arrays of `net`, as NumPy copies in the net's dtype."""
    arrays = {}
    for i, (conv, bn) in enumerate(spec_layers(net)):
        arrays[f"{net.role}/{i}/weight"] = conv.weight.detach().cpu().numpy().copy()
        if bn is not None:
            for param in BN_PARAMS:
                arrays[f"{net.role}/{i}/{param}"] = (
                    getattr(bn, _BN_ATTRS[param]).detach().cpu().numpy().copy())
    return arrays


def parameters(net: nn.Sequential) -> list:
    """(canonical key, trainable parameter) for `net`, in spec order."""
    pairs = []
    for i, (conv, bn) in enumerate(spec_layers(net)):
        pairs.append((f"{net.role}/{i}/weight", conv.weight))
        if bn is not None:
            pairs += [(f"{net.role}/{i}/gamma", bn.weight), (f"{net.role}/{i}/beta", bn.bias)]
    return pairs
