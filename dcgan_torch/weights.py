"""Canonical weights (docs/design.md §6) in and out of the PyTorch nets.

PyTorch's layout is the canonical one, so nothing is transposed here.
"""

from __future__ import annotations

import numpy as np

from common.weights import BN_PARAMS, select, validate
from dcgan_torch.compat import torch
from dcgan_torch.model import D_block, G_block

_BN_ATTRS = {"gamma": "weight", "beta": "bias", "running_mean": "running_mean",
             "running_var": "running_var"}


def spec_layers(net) -> list:
    """(conv, batch_norm or None) for each layer of the spec, in order."""
    layers = []
    for layer in net:
        if isinstance(layer, G_block):
            layers.append((layer.conv2d_trans, layer.batch_norm))
        elif isinstance(layer, D_block):
            layers.append((layer.conv2d, layer.batch_norm))
        elif isinstance(layer, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)):
            layers.append((layer, None))
    return layers


def load_canonical(net, arrays: dict):
    """Copy canonical arrays (the keys of `net.role`, "G" or "D") into `net`, exactly; returns `net`."""
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


def export_canonical(net) -> dict:
    """The canonical arrays of `net`, as NumPy copies in the net's dtype."""
    arrays = {}
    for i, (conv, bn) in enumerate(spec_layers(net)):
        arrays[f"{net.role}/{i}/weight"] = conv.weight.detach().cpu().numpy().copy()
        if bn is not None:
            for param in BN_PARAMS:
                arrays[f"{net.role}/{i}/{param}"] = (
                    getattr(bn, _BN_ATTRS[param]).detach().cpu().numpy().copy())
    return arrays


def parameters(net) -> list:
    """(canonical key, trainable parameter) for `net`, in spec order."""
    pairs = []
    for i, (conv, bn) in enumerate(spec_layers(net)):
        pairs.append((f"{net.role}/{i}/weight", conv.weight))
        if bn is not None:
            pairs += [(f"{net.role}/{i}/gamma", bn.weight), (f"{net.role}/{i}/beta", bn.bias)]
    return pairs


def canonical_gradients(net, gradients) -> dict:
    """Gradients listed in the order of parameters(net), as canonical NumPy arrays."""
    return {key: g.detach().cpu().numpy() for (key, _), g in zip(parameters(net), gradients)}
