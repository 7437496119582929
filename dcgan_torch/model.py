"""DCGAN generator and discriminator in PyTorch, built from `common.spec`.

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs");
every framework default that differs between PyTorch, Keras and Gluon is set
explicitly (docs/design.md §5). Layout: NCHW.

    G = build_generator(spec)                       # the framework's own initial weights
    load_canonical(G, init_weights(spec, seed))     # dcgan_torch.weights: DCGAN's, the same in every framework
"""

from __future__ import annotations

import numpy as np

from common.describe import backend_main
from common.spec import ModelSpec
from dcgan_torch.compat import torch
from dcgan_torch.core import forward

nn = torch.nn

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.1  # weight of the new batch statistic (PyTorch's convention)
LEAKY_SLOPE = 0.2


class _BatchNorm2d(nn.BatchNorm2d):
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
        self.batch_norm = _BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
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
        self.batch_norm = (_BatchNorm2d(out_channels, eps=BN_EPSILON, momentum=BN_MOMENTUM)
                           if batch_norm else None)
        # TF's and MXNet's LeakyReLU keep the slope as a float32 attribute
        # (0.2 -> 0.20000000298); so does this one, which matters only in float64.
        self.activation = nn.LeakyReLU(float(np.float32(alpha)))

    def forward(self, X):
        X = self.conv2d(X)
        if self.batch_norm is not None:
            X = self.batch_norm(X)
        return self.activation(X)


class Generator(nn.Sequential):
    """G's layers in order, and the spec they were built from."""

    role = "G"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__(*layers)
        self.spec = spec


class Discriminator(nn.Sequential):
    """D's layers in order, and the spec they were built from."""

    role = "D"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__(*layers)
        self.spec = spec


def build_generator(spec: ModelSpec, dtype: str = "float32") -> Generator:
    """G as in the book: G_blocks, then ConvTranspose -> tanh. dtype
    "float64" is for checking that the frameworks agree where rounding cannot
    hide a difference."""
    *blocks, last = spec.generator_layers()
    net = Generator(
        spec,
        # (latent, 1, 1) -> (8 n_G, 4, 4) -> ... -> (n_G, size/2, size/2)
        *[G_block(out_channels=l.out_channels, in_channels=l.in_channels, kernel_size=l.kernel,
                  strides=l.stride, padding=l.padding) for l in blocks],
        # (n_G, size/2, size/2) -> (channels, size, size)
        nn.ConvTranspose2d(last.in_channels, last.out_channels, last.kernel, last.stride,
                           last.padding, bias=False),
        nn.Tanh(),
    )
    return net.to(getattr(torch, dtype))


def build_discriminator(spec: ModelSpec, dtype: str = "float32") -> Discriminator:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = Discriminator(
        spec,
        # (channels, size, size) -> (n_D, size/2, size/2) -> ... -> (8 n_D, 4, 4)
        *[D_block(out_channels=l.out_channels, in_channels=l.in_channels, kernel_size=l.kernel,
                  strides=l.stride, padding=l.padding, batch_norm=l.batch_norm) for l in blocks],
        # (8 n_D, 4, 4) -> (1, 1, 1): a logit; the loss applies the sigmoid
        nn.Conv2d(last.in_channels, last.out_channels, last.kernel, last.stride,
                  last.padding, bias=False),
    )
    return net.to(getattr(torch, dtype))


def layer_outputs(net, X) -> list:
    """The output of every spec layer of `net` on X in inference mode (a
    block, or the last conv with its activation), in order."""
    outputs = []
    for layer in net:
        X = forward(layer, X)
        if isinstance(layer, nn.Tanh):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def count_params(net) -> int:
    """Trainable parameters (BN running statistics are buffers, not counted)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def main(argv=None) -> int:
    """python -m dcgan_torch.model: G's and D's per-layer output shapes."""
    return backend_main("torch", argv)


if __name__ == "__main__":
    raise SystemExit(main())
