"""DCGAN generator and discriminator in MXNet Gluon, built from `common.spec`.

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs") as
HybridBlocks; every framework default that differs between PyTorch, Keras and
Gluon is set explicitly (DESIGN §4). Layout: NCHW.
"""

from __future__ import annotations

from common.cli import describe_main
from common.spec import ModelSpec
from common.weights import init_weights
from dcgan_mx.compat import mx
from dcgan_mx.weights import load_canonical

nn = mx.gluon.nn

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # weight of the old running statistic (Gluon's convention)
LEAKY_SLOPE = 0.2
LAYOUT = "NCHW"


class G_block(nn.HybridBlock):
    """ConvTranspose -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, channels, kernel_size=4, strides=2, padding=1, in_channels=0, **kwargs):
        super().__init__(**kwargs)
        self.conv2d_trans = nn.Conv2DTranspose(channels, kernel_size, strides, padding,
                                               use_bias=False, in_channels=in_channels)
        self.batch_norm = nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, in_channels=channels)
        self.activation = nn.Activation("relu")

    def hybrid_forward(self, F, X):
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

    def hybrid_forward(self, F, X):
        X = self.conv2d(X)
        if self.batch_norm is not None:
            X = self.batch_norm(X)
        return self.activation(X)


def build_generator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> nn.HybridSequential:
    """G as in the book: G_blocks, then ConvTranspose -> tanh.

    Weights come from `common.weights.init_weights(spec, seed)`, so the same
    seed gives the same net in every framework. dtype "float64" is for
    checking that the frameworks agree where rounding cannot hide a difference.
    """
    *blocks, last = spec.generator_layers()
    net = nn.HybridSequential()
    # (latent, 1, 1) -> (8 n_G, 4, 4) -> ... -> (n_G, size/2, size/2)
    net.add(*[G_block(l.out_channels, l.kernel, l.stride, l.padding, in_channels=l.in_channels)
              for l in blocks])
    # (n_G, size/2, size/2) -> (channels, size, size)
    net.add(nn.Conv2DTranspose(last.out_channels, last.kernel, last.stride, last.padding,
                               use_bias=False, in_channels=last.in_channels),
            nn.Activation("tanh"))
    return _with_canonical_init(net, spec, "G", seed, dtype)


def build_discriminator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> nn.HybridSequential:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = nn.HybridSequential()
    # (channels, size, size) -> (n_D, size/2, size/2) -> ... -> (8 n_D, 4, 4)
    net.add(*[D_block(l.out_channels, l.kernel, l.stride, l.padding, in_channels=l.in_channels,
                      batch_norm=l.batch_norm) for l in blocks])
    # (8 n_D, 4, 4) -> (1, 1, 1): a logit; the loss applies the sigmoid
    net.add(nn.Conv2D(last.out_channels, last.kernel, last.stride, last.padding,
                      use_bias=False, in_channels=last.in_channels))
    return _with_canonical_init(net, spec, "D", seed, dtype)


def layer_outputs(net: nn.HybridSequential, X):
    """The output of every spec layer of `net` on X (a block, or the last conv
    with its activation), in order."""
    outputs = []
    for block in net:
        X = block(X)
        if isinstance(block, nn.Activation):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def _with_canonical_init(net, spec, role, seed, dtype):
    net.spec, net.role = spec, role
    net.initialize(mx.init.Zero())  # every value is overwritten just below
    net.cast(dtype)
    load_canonical(net, init_weights(spec, seed, nets=(role,)))
    net.hybridize()
    return net


def count_params(net: nn.Block) -> int:
    """Trainable parameters (BN running statistics have grad_req 'null', not counted)."""
    return sum(int(p.data().size) for p in net.collect_params().values() if p.grad_req != "null")


def describe(spec: ModelSpec) -> dict:
    """Per-layer output shapes of G and D on a batch of one, and their sizes."""
    G, D = build_generator(spec), build_discriminator(spec)
    g = layer_outputs(G, mx.nd.zeros(spec.input_shape("G", 1, LAYOUT)))
    d = layer_outputs(D, mx.nd.zeros(spec.input_shape("D", 1, LAYOUT)))
    return {"framework": "mx", "version": mx.__version__, "layout": LAYOUT,
            "G": [list(o.shape) for o in g], "D": [list(o.shape) for o in d],
            "params": {"G": count_params(G), "D": count_params(D)}}


if __name__ == "__main__":
    raise SystemExit(describe_main("mx", describe))
