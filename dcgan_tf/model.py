"""DCGAN generator and discriminator in TensorFlow/Keras, built from `common.spec`.

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs");
every framework default that differs between PyTorch, Keras and Gluon is set
explicitly (DESIGN §4). Layout: NHWC, TensorFlow's native one on the CPU.

Keras runs batch norm on its moving statistics unless a call passes
`training=True`; the blocks pass the flag through, and training must set it.
"""

from __future__ import annotations

from common.cli import describe_main
from common.spec import ModelSpec
from common.weights import init_weights
from dcgan_tf.compat import keras, tf
from dcgan_tf.weights import load_canonical

BN_EPSILON = 1e-5  # Keras's default is 1e-3
BN_MOMENTUM = 0.9  # weight of the old moving statistic (Keras's default is 0.99)
LEAKY_SLOPE = 0.2  # Keras's default is 0.3
LAYOUT = "NHWC"


def keras_padding(padding, kernel_size, strides):
    """The Keras padding mode equal to an explicit padding of the spec.

    p = 0 is "valid"; p = (k - s) / 2 is what "same" pads for the even sizes
    used here (k=4, s=2, p=1). A string is passed through.
    """
    if isinstance(padding, str):
        return padding
    if padding == 0:
        return "valid"
    if 2 * padding == kernel_size - strides:
        return "same"
    raise ValueError(f"padding={padding} with kernel_size={kernel_size}, strides={strides} "
                     "has no Keras equivalent")


class G_block(keras.layers.Layer):
    """ConvTranspose -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same", dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv2d_trans = keras.layers.Conv2DTranspose(
            out_channels, kernel_size, strides, keras_padding(padding, kernel_size, strides),
            use_bias=False, dtype=dtype)
        self.batch_norm = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
        self.activation = keras.layers.ReLU(dtype=dtype)

    def call(self, X, training=None):
        return self.activation(self.batch_norm(self.conv2d_trans(X), training=training))


class D_block(keras.layers.Layer):
    """Conv -> BatchNorm -> LeakyReLU(0.2): halves the spatial size by default."""

    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same", alpha=LEAKY_SLOPE,
                 batch_norm=True, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv2d = keras.layers.Conv2D(
            out_channels, kernel_size, strides, keras_padding(padding, kernel_size, strides),
            use_bias=False, dtype=dtype)
        # The paper's variant has no batch norm on D's input block.
        self.batch_norm = (keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
                           if batch_norm else None)
        self.activation = keras.layers.LeakyReLU(negative_slope=alpha, dtype=dtype)

    def call(self, X, training=None):
        X = self.conv2d(X)
        if self.batch_norm is not None:
            X = self.batch_norm(X, training=training)
        return self.activation(X)


def build_generator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> keras.Sequential:
    """G as in the book: G_blocks, then ConvTranspose -> tanh.

    Weights come from `common.weights.init_weights(spec, seed)`, so the same
    seed gives the same net in every framework. dtype "float64" is for
    checking that the frameworks agree where rounding cannot hide a difference.
    """
    *blocks, last = spec.generator_layers()
    net = keras.Sequential(
        # (1, 1, latent) -> (4, 4, 8 n_G) -> ... -> (size/2, size/2, n_G)
        [G_block(l.out_channels, l.kernel, l.stride, l.padding, dtype=dtype) for l in blocks]
        # (size/2, size/2, n_G) -> (size, size, channels)
        + [keras.layers.Conv2DTranspose(
               last.out_channels, last.kernel, last.stride,
               keras_padding(last.padding, last.kernel, last.stride), use_bias=False, dtype=dtype),
           keras.layers.Activation("tanh", dtype=dtype)],
        name="G")
    return _with_canonical_init(net, spec, "G", seed, dtype)


def build_discriminator(spec: ModelSpec, seed: int = 0, dtype: str = "float32") -> keras.Sequential:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = keras.Sequential(
        # (size, size, channels) -> (size/2, size/2, n_D) -> ... -> (4, 4, 8 n_D)
        [D_block(l.out_channels, l.kernel, l.stride, l.padding, batch_norm=l.batch_norm, dtype=dtype)
         for l in blocks]
        # (4, 4, 8 n_D) -> (1, 1, 1): a logit; the loss applies the sigmoid
        + [keras.layers.Conv2D(last.out_channels, last.kernel, last.stride,
                               keras_padding(last.padding, last.kernel, last.stride),
                               use_bias=False, dtype=dtype)],
        name="D")
    return _with_canonical_init(net, spec, "D", seed, dtype)


def layer_outputs(net: keras.Sequential, X, training=False):
    """The output of every spec layer of `net` on X (a block, or the last conv
    with its activation), in order."""
    outputs = []
    for layer in net.layers:
        if isinstance(layer, (G_block, D_block)):
            X = layer(X, training=training)
        else:
            X = layer(X)
        if isinstance(layer, keras.layers.Activation):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def _with_canonical_init(net, spec, role, seed, dtype):
    net.spec, net.role = spec, role
    net(tf.zeros(spec.input_shape(role, 1, "NHWC"), dtype=dtype), training=False)  # creates the variables
    load_canonical(net, init_weights(spec, seed, nets=(role,)))
    return net


def count_params(net: keras.Model) -> int:
    """Trainable parameters (BN moving statistics are non-trainable, not counted)."""
    return sum(int(v.shape.num_elements()) for v in net.trainable_weights)


def describe(spec: ModelSpec) -> dict:
    """Per-layer output shapes of G and D on a batch of one, and their sizes."""
    G, D = build_generator(spec), build_discriminator(spec)
    g = layer_outputs(G, tf.zeros(spec.input_shape("G", 1, LAYOUT)))
    d = layer_outputs(D, tf.zeros(spec.input_shape("D", 1, LAYOUT)))
    return {"framework": "tf", "version": tf.__version__, "layout": LAYOUT,
            "G": [list(o.shape) for o in g], "D": [list(o.shape) for o in d],
            "params": {"G": count_params(G), "D": count_params(D)}}


if __name__ == "__main__":
    raise SystemExit(describe_main("tf", describe))
