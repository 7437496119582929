"""DCGAN generator and discriminator in MXNet Gluon, built from `common.spec`,
in the book's NumPy interface (`mxnet.np` arrays, `forward(self, X)`).

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs");
every framework default that differs between PyTorch, Keras and Gluon is set
explicitly (docs/design.md §5). Layout: NCHW.

    G = build_generator(spec)                       # the framework's own initial weights
    load_canonical(G, init_weights(spec, seed))     # dcgan_mx.weights: DCGAN's, the same in every framework

The blocks are HybridBlocks whose forward(X) only calls other HybridBlocks,
so a net of them hybridizes into one graph (train.compile_step), and a block
alone runs eagerly on mxnet.np arrays as the book's cells do.
"""

from __future__ import annotations

from common.describe import backend_main
from common.spec import ModelSpec
from dcgan_mx.compat import gluon, init
from dcgan_mx.core import forward

nn = gluon.nn

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # weight of the old running statistic (Gluon's convention)
LEAKY_SLOPE = 0.2


class G_block(nn.HybridBlock):
    """ConvTranspose -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, channels, kernel_size=4, strides=2, padding=1, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.conv2d_trans = nn.Conv2DTranspose(channels, kernel_size, strides, padding,
                                               use_bias=False, in_channels=in_channels)
        self.batch_norm = nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, in_channels=channels)
        self.activation = nn.Activation("relu")

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.HybridBlock):
    """Conv -> BatchNorm -> LeakyReLU(0.2): halves the spatial size by default."""

    def __init__(self, channels, kernel_size=4, strides=2, padding=1, alpha=LEAKY_SLOPE,
                 in_channels=0, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.conv2d = nn.Conv2D(channels, kernel_size, strides, padding, use_bias=False,
                                in_channels=in_channels)
        # The paper's variant has no batch norm on D's input block.
        self.batch_norm = (nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, in_channels=channels)
                           if batch_norm else None)
        self.activation = nn.LeakyReLU(alpha)

    def forward(self, X):
        X = self.conv2d(X)
        if self.batch_norm is not None:
            X = self.batch_norm(X)
        return self.activation(X)


class Generator(nn.HybridSequential):
    """G's layers in order, and the spec they were built from."""

    role = "G"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__()
        self.add(*layers)
        self.spec = spec


class Discriminator(nn.HybridSequential):
    """D's layers in order, and the spec they were built from."""

    role = "D"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__()
        self.add(*layers)
        self.spec = spec


def build_generator(spec: ModelSpec, dtype: str = "float32") -> Generator:
    """G as in the book: G_blocks, then ConvTranspose -> tanh. dtype
    "float64" is for checking that the frameworks agree where rounding cannot
    hide a difference."""
    *blocks, last = spec.generator_layers()
    net = Generator(
        spec,
        # (latent, 1, 1) -> (8 n_G, 4, 4) -> ... -> (n_G, size/2, size/2)
        *[G_block(channels=l.out_channels, kernel_size=l.kernel, strides=l.stride, padding=l.padding,
                  in_channels=l.in_channels) for l in blocks],
        # (n_G, size/2, size/2) -> (channels, size, size)
        nn.Conv2DTranspose(last.out_channels, last.kernel, last.stride, last.padding,
                           use_bias=False, in_channels=last.in_channels),
        nn.Activation("tanh"),
    )
    return _initialized(net, dtype)


def build_discriminator(spec: ModelSpec, dtype: str = "float32") -> Discriminator:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = Discriminator(
        spec,
        # (channels, size, size) -> (n_D, size/2, size/2) -> ... -> (8 n_D, 4, 4)
        *[D_block(channels=l.out_channels, kernel_size=l.kernel, strides=l.stride, padding=l.padding,
                  in_channels=l.in_channels, batch_norm=l.batch_norm) for l in blocks],
        # (8 n_D, 4, 4) -> (1, 1, 1): a logit; the loss applies the sigmoid
        nn.Conv2D(last.out_channels, last.kernel, last.stride, last.padding,
                  use_bias=False, in_channels=last.in_channels),
    )
    return _initialized(net, dtype)


def _initialized(net, dtype):
    """Gluon creates parameters on initialize(); the book's init.Normal(0.02)."""
    net.initialize(init.Normal(0.02))
    net.cast(dtype)
    return net


def layer_outputs(net, X) -> list:
    """The output of every spec layer of `net` on X in inference mode (a
    block, or the last conv with its activation), in order."""
    outputs = []
    for layer in net:
        X = forward(layer, X)
        if isinstance(layer, nn.Activation):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def count_params(net) -> int:
    """Trainable parameters (BN running statistics have grad_req 'null', not counted)."""
    return sum(int(p.list_data()[0].size) for p in net.collect_params().values() if p.grad_req != "null")


def main(argv=None) -> int:
    """python -m dcgan_mx.model: G's and D's per-layer output shapes."""
    return backend_main("mx", argv)


if __name__ == "__main__":
    raise SystemExit(main())
