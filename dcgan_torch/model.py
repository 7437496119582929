"""DCGAN generator and discriminator in PyTorch, built from `common.spec`.

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs");
every framework default that differs between PyTorch, Keras and Gluon is set
explicitly (DESIGN §4). Layout: NCHW.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.cli import describe_main
from common.spec import ModelSpec
from common.weights import init_weights
from dcgan_torch.weights import load_canonical

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.1  # weight of the new batch statistic (PyTorch's convention)
LEAKY_SLOPE = 0.2
LAYOUT = "NCHW"


class BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose running variance follows the *biased* batch variance.

    PyTorch updates running_var with the unbiased variance (n / (n - 1));
    Keras and Gluon use the biased one. This project runs one computation in
    all three (README, "How the book's three versions differ"), so here the
    normalisation is PyTorch's own and only the running-statistics update is
    done as the other two frameworks do it.
    """

    def forward(self, X):
        if not self.training:
            return super().forward(X)
        n = X.numel() // X.shape[1]  # values per channel in the batch
        old = self.running_var.clone()
        Y = super().forward(X)  # PyTorch's own kernel; it folds in the unbiased variance u
        with torch.no_grad():
            # new = (1 - m) old + m u, with u = b n / (n - 1); we want (1 - m) old + m b:
            # that is new (n - 1) / n + (1 - m) old / n. O(channels), no second pass over X.
            # A new tensor, not an in-place update: autograd saved the buffer for backward.
            self.running_var = self.running_var * ((n - 1) / n) + old * ((1 - self.momentum) / n)
        return Y


class G_block(nn.Module):
    """ConvTranspose -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2, padding=1):
        super().__init__()
        self.conv2d_trans = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, strides, padding, bias=False)
        self.batch_norm = BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
        self.activation = nn.ReLU()

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.Module):
    """Conv -> BatchNorm -> LeakyReLU(0.2): halves the spatial size by default."""

    def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2, padding=1,
                 alpha=LEAKY_SLOPE, batch_norm=True):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding, bias=False)
        # The paper's variant has no batch norm on D's input block.
        self.batch_norm = (BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
                           if batch_norm else nn.Identity())
        # TF's and MXNet's LeakyReLU keep the slope as a float32 attribute
        # (0.2 -> 0.20000000298); so does this one, which matters only in float64.
        self.activation = nn.LeakyReLU(float(np.float32(alpha)))

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


def build_generator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> nn.Sequential:
    """G as in the book: G_blocks, then ConvTranspose -> tanh.

    Weights come from `common.weights.init_weights(spec, seed)`, so the same
    seed gives the same net in every framework. dtype "float64" is for
    checking that the frameworks agree where rounding cannot hide a difference.
    """
    *blocks, last = spec.generator_layers()
    net = nn.Sequential(
        # (latent, 1, 1) -> (8 n_G, 4, 4) -> ... -> (n_G, size/2, size/2)
        *[G_block(l.out_channels, l.in_channels, l.kernel, l.stride, l.padding) for l in blocks],
        # (n_G, size/2, size/2) -> (channels, size, size)
        nn.ConvTranspose2d(last.in_channels, last.out_channels, last.kernel, last.stride,
                           last.padding, bias=False),
        nn.Tanh(),
    )
    return _with_canonical_init(net, spec, "G", seed, dtype)


def build_discriminator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> nn.Sequential:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = nn.Sequential(
        # (channels, size, size) -> (n_D, size/2, size/2) -> ... -> (8 n_D, 4, 4)
        *[D_block(l.out_channels, l.in_channels, l.kernel, l.stride, l.padding,
                  batch_norm=l.batch_norm) for l in blocks],
        # (8 n_D, 4, 4) -> (1, 1, 1): a logit; the loss applies the sigmoid
        nn.Conv2d(last.in_channels, last.out_channels, last.kernel, last.stride,
                  last.padding, bias=False),
    )
    return _with_canonical_init(net, spec, "D", seed, dtype)


def layer_outputs(net: nn.Sequential, X):
    """The output of every spec layer of `net` on X (a block, or the last conv
    with its activation), in order."""
    outputs = []
    for module in net:
        X = module(X)
        if isinstance(module, nn.Tanh):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def _with_canonical_init(net, spec, role, seed, dtype):
    net.spec, net.role = spec, role
    net.to(getattr(torch, dtype))
    load_canonical(net, init_weights(spec, seed, nets=(role,)))
    return net


def count_params(net: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def describe(spec: ModelSpec) -> dict:
    """Per-layer output shapes of G and D on a batch of one, and their sizes."""
    G, D = build_generator(spec).eval(), build_discriminator(spec).eval()
    with torch.no_grad():
        g = layer_outputs(G, torch.zeros(spec.input_shape("G", 1, LAYOUT)))
        d = layer_outputs(D, torch.zeros(spec.input_shape("D", 1, LAYOUT)))
    return {"framework": "torch", "version": torch.__version__, "layout": LAYOUT,
            "G": [list(o.shape) for o in g], "D": [list(o.shape) for o in d],
            "params": {"G": count_params(G), "D": count_params(D)}}


if __name__ == "__main__":
    raise SystemExit(describe_main("torch", describe))
