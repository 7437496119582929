"""Canonical weights (docs/design.md §6) in and out of the Gluon nets.

Gluon's layout is the canonical one (PyTorch's), so nothing is transposed here.
"""

from __future__ import annotations

from common.weights import BN_PARAMS, select, validate
from dcgan_mx.compat import gluon, np
from dcgan_mx.model import D_block, G_block


def spec_layers(net) -> list:
    """(conv, batch_norm or None) for each layer of the spec, in order."""
    layers = []
    for layer in net:
        if isinstance(layer, G_block):
            layers.append((layer.conv2d_trans, layer.batch_norm))
        elif isinstance(layer, D_block):
            layers.append((layer.conv2d, layer.batch_norm))
        elif isinstance(layer, (gluon.nn.Conv2DTranspose, gluon.nn.Conv2D)):
            layers.append((layer, None))
    return layers


def load_canonical(net, arrays: dict):
    """Copy canonical arrays (the keys of `net.role`, "G" or "D") into `net`, exactly; returns `net`."""
    arrays = select(arrays, net.role)
    validate(arrays, net.spec, (net.role,))
    for i, (conv, bn) in enumerate(spec_layers(net)):
        conv.weight.set_data(np.array(arrays[f"{net.role}/{i}/weight"], dtype=conv.weight.dtype))
        if bn is not None:
            for param in BN_PARAMS:
                target = getattr(bn, param)
                target.set_data(np.array(arrays[f"{net.role}/{i}/{param}"], dtype=target.dtype))
    return net


def export_canonical(net) -> dict:
    """The canonical arrays of `net`, as NumPy copies in the net's dtype (from
    its first device, on several: the one that samples)."""
    arrays = {}
    for i, (conv, bn) in enumerate(spec_layers(net)):
        arrays[f"{net.role}/{i}/weight"] = _first(conv.weight)
        if bn is not None:
            for param in BN_PARAMS:
                arrays[f"{net.role}/{i}/{param}"] = _first(getattr(bn, param))
    return arrays


def _first(parameter):
    return parameter.list_data()[0].asnumpy()


def parameters(net) -> list:
    """(canonical key, trainable parameter) for `net`, in spec order."""
    pairs = []
    for i, (conv, bn) in enumerate(spec_layers(net)):
        pairs.append((f"{net.role}/{i}/weight", conv.weight))
        if bn is not None:
            pairs += [(f"{net.role}/{i}/gamma", bn.gamma), (f"{net.role}/{i}/beta", bn.beta)]
    return pairs


def canonical_gradients(net, gradients) -> dict:
    """Gradients listed in the order of parameters(net), as canonical NumPy arrays."""
    return {key: g.asnumpy() for (key, _), g in zip(parameters(net), gradients)}
