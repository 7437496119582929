"""DCGAN generator and discriminator in TensorFlow/Keras, built from `common.spec`.

The blocks keep the book's teaching shape (d2l, "Deep Convolutional GANs");
every framework default that differs between PyTorch, Keras and Gluon is set
explicitly (docs/design.md §5). Layout: NHWC, TensorFlow's native one on the CPU.

    G = build_generator(spec)                       # the framework's own initial weights
    load_canonical(G, init_weights(spec, seed))     # dcgan_tf.weights: DCGAN's, the same in every framework

Keras runs batch norm on its moving statistics unless a call passes
`training=True`; the blocks pass the flag through, and training must set it.
"""

from __future__ import annotations

import functools

from common.describe import backend_main
from common.spec import ModelSpec
from dcgan_tf.compat import keras, tf
from dcgan_tf.core import forward

BN_EPSILON = 1e-5  # Keras's default is 1e-3
BN_MOMENTUM = 0.9  # weight of the old moving statistic (Keras's default is 0.99)
LEAKY_SLOPE = 0.2  # Keras's default is 0.3


def _keras_padding(padding, kernel_size, strides):
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


@functools.cache
def _gpus() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))  # not logical: that would start the runtime


class _BatchNormalization(keras.layers.BatchNormalization):
    """Keras's batch norm, trained through TensorFlow's fused kernel.

    Keras 3 computes batch norm from separate ops (moments, then the
    normalisation), each a pass over the activations, and so does their
    backward; TensorFlow's FusedBatchNormV3 (oneDNN's on the CPU) is one op
    each way. Same numbers (outputs within 3e-6, gradients within 1e-6
    relative, float32), measured 1.08-1.15x the whole step (README,
    Performance). In training mode on float32 inputs (bf16 ones are upcast,
    as Keras does) it runs the fused kernel, and moves the moving statistics
    as Keras does, with the biased batch variance (the kernel returns the
    unbiased one). Anything else (float64, which the kernel lacks; --sync-bn's
    synchronized statistics; inference; a process that sees a GPU, where
    cuDNN's kernel wants epsilon above 1e-5 and no GPU was there to test it)
    is Keras's own call.
    """

    def __init__(self, name="batch_normalization", **kwargs):  # Keras would derive "__batch_normalization"
        super().__init__(name=name, **kwargs)

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and mask is None and not self.synchronized and not _gpus()
                and len(inputs.shape) == 4 and self.axis in (-1, 3)
                and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)):
            return super().call(inputs, training=training, mask=mask)
        X = tf.cast(inputs, tf.float32)
        Y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            X, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32), epsilon=self.epsilon,
            data_format="NHWC", is_training=True)
        n = tf.cast(tf.size(X) // tf.shape(X)[-1], tf.float32)  # values per channel in the batch
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum
                                    + variance * ((n - 1.0) / n) * (1.0 - self.momentum))
        return tf.cast(Y, self.compute_dtype)


class G_block(keras.layers.Layer):
    """ConvTranspose -> BatchNorm -> ReLU: doubles the spatial size by default."""

    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same", dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv2d_trans = keras.layers.Conv2DTranspose(
            out_channels, kernel_size, strides, _keras_padding(padding, kernel_size, strides),
            use_bias=False, dtype=dtype)
        self.batch_norm = _BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
        self.activation = keras.layers.ReLU(dtype=dtype)

    def call(self, X, training=None):
        return self.activation(self.batch_norm(self.conv2d_trans(X), training=training))


class D_block(keras.layers.Layer):
    """Conv -> BatchNorm -> LeakyReLU(0.2): halves the spatial size by default."""

    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same", alpha=LEAKY_SLOPE,
                 batch_norm=True, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        self.conv2d = keras.layers.Conv2D(
            out_channels, kernel_size, strides, _keras_padding(padding, kernel_size, strides),
            use_bias=False, dtype=dtype)
        # The paper's variant has no batch norm on D's input block.
        self.batch_norm = (_BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype)
                           if batch_norm else None)
        self.activation = keras.layers.LeakyReLU(negative_slope=alpha, dtype=dtype)

    def call(self, X, training=None):
        X = self.conv2d(X)
        if self.batch_norm is not None:
            X = self.batch_norm(X, training=training)
        return self.activation(X)


class Generator(keras.Sequential):
    """G's layers in order, and the spec they were built from."""

    role = "G"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__(list(layers), name=self.role)
        self.spec = spec


class Discriminator(keras.Sequential):
    """D's layers in order, and the spec they were built from."""

    role = "D"

    def __init__(self, spec: ModelSpec, *layers):
        super().__init__(list(layers), name=self.role)
        self.spec = spec


def build_generator(spec: ModelSpec, dtype: str = "float32") -> Generator:
    """G as in the book: G_blocks, then ConvTranspose -> tanh. dtype
    "float64" is for checking that the frameworks agree where rounding cannot
    hide a difference. Every layer gets the dtype explicitly: Keras 3's global
    dtype policy sticks after first use, so set_floatx would not reach them."""
    *blocks, last = spec.generator_layers()
    net = Generator(
        spec,
        # (1, 1, latent) -> (4, 4, 8 n_G) -> ... -> (size/2, size/2, n_G)
        *[G_block(out_channels=l.out_channels, kernel_size=l.kernel, strides=l.stride,
                  padding=l.padding, dtype=dtype) for l in blocks],
        # (size/2, size/2, n_G) -> (size, size, channels)
        keras.layers.Conv2DTranspose(last.out_channels, last.kernel, last.stride,
                                     _keras_padding(last.padding, last.kernel, last.stride),
                                     use_bias=False, dtype=dtype),
        keras.layers.Activation("tanh", dtype=dtype),
    )
    return _built(net, spec, dtype)


def build_discriminator(spec: ModelSpec, dtype: str = "float32") -> Discriminator:
    """D as in the book: D_blocks, then a 4x4 conv to one logit."""
    *blocks, last = spec.discriminator_layers()
    net = Discriminator(
        spec,
        # (size, size, channels) -> (size/2, size/2, n_D) -> ... -> (4, 4, 8 n_D)
        *[D_block(out_channels=l.out_channels, kernel_size=l.kernel, strides=l.stride,
                  padding=l.padding, batch_norm=l.batch_norm, dtype=dtype) for l in blocks],
        # (4, 4, 8 n_D) -> (1, 1, 1): a logit; the loss applies the sigmoid
        keras.layers.Conv2D(last.out_channels, last.kernel, last.stride,
                            _keras_padding(last.padding, last.kernel, last.stride), use_bias=False, dtype=dtype),
    )
    return _built(net, spec, dtype)


def _built(net, spec, dtype):
    """Keras creates a layer's variables on its first call: make them exist now."""
    forward(net, tf.zeros(spec.input_shape(net.role, 1, "NHWC"), dtype=dtype))
    return net


def layer_outputs(net, X) -> list:
    """The output of every spec layer of `net` on X in inference mode (a
    block, or the last conv with its activation), in order."""
    outputs = []
    for layer in net.layers:
        X = forward(layer, X) if isinstance(layer, (G_block, D_block)) else layer(X)
        if isinstance(layer, keras.layers.Activation):
            outputs[-1] = X
        else:
            outputs.append(X)
    return outputs


def count_params(net) -> int:
    """Trainable parameters (BN moving statistics are non-trainable, not counted)."""
    return sum(int(v.shape.num_elements()) for v in net.trainable_weights)


def main(argv=None) -> int:
    """python -m dcgan_tf.model: G's and D's per-layer output shapes."""
    return backend_main("tf", argv)


if __name__ == "__main__":
    raise SystemExit(main())
