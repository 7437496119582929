"""The book's own DCGAN code, TensorFlow tab: the benchmark's reference, not used for training.

Transcribed from *Dive into Deep Learning* (d2l), chapter "Generative
Adversarial Networks": section "Deep Convolutional Generative Adversarial
Networks" (:label:`sec_dcgan`, source `chapter_generative-adversarial-networks/dcgan.md`
of github.com/d2l-ai/d2l-en, commit 0d12ac3410106558611f48850c3aef902491f870)
for `G_block`, `D_block`, `net_G`, `net_D` and `train`; and section "Generative
Adversarial Networks" (:label:`sec_basic_gan`, `gan.md`, same commit) for
`update_D` and `update_G`, which the book saves into the d2l library (`#@save`,
`d2l/tensorflow.py`) and its DCGAN `train` calls as `d2l.update_D` /
`d2l.update_G`.

Nothing in this project trains with this module. It exists so that a benchmark
can time "the book's code for this chapter" against this project's training
step in the same run. `dcgan_torch/book.py` and `dcgan_mx/book.py` are its
mirror images, with the same public names.

What is the book's, unchanged: the Keras layers `G_block` and `D_block`, the two
`tf.keras.Sequential` nets (with `n_G`, `n_D` as arguments instead of module
constants), NHWC layout, the weight initialisation as the book's `train` does
it (`w.assign(tf.random.normal(mean=0, stddev=0.02, ...))` on every *trainable*
variable: batch-norm scales and shifts too, moving statistics not), the loss
(`BinaryCrossentropy(from_logits=True, reduction=tf.keras.losses.Reduction.SUM)`,
which Keras 3 still accepts: `Reduction.SUM` is the string "sum"), Adam with
beta_1 0.5, beta_2 0.999, `update_D` and `update_G` verbatim, and the body of
`train`'s inner loop in `book_step` (draw Z with `tf.random.normal` in NHWC,
`update_D`, then `update_G`). The book's learning rate for TensorFlow is
`BOOK_LR` = 0.0005 (`latent_dim, lr, num_epochs = 100, 0.0005, 40`), a tenth of
the PyTorch/MXNet one. Execution is eager, as in the book: no `tf.function`.

As in the book, the nets are called without `training=`: Keras then runs
batch normalization in inference mode (moving statistics, which stay at their
initial 0 and 1, and are never updated), not with batch statistics as the
PyTorch and MXNet tabs do. This is the book's behaviour, kept.

Adaptations (everything else is verbatim):

1. TensorFlow is imported through `dcgan_tf.compat` (quiet logging, Keras 3 on
   the TensorFlow backend); `tf.keras` is Keras 3 there.
2. Keras 3's Adam no longer accepts `lr`: the book's
   `optimizer_hp = {"lr": lr, ...}` is `{"learning_rate": lr, ...}`.
   (The book's `tf.keras.layers.LeakyReLU(alpha)` passes alpha positionally,
   which Keras 3 takes as `negative_slope`: unchanged.)
3. The book builds the nets' variables with its shape-check cells
   (`net_G(tf.zeros((1, 1, 1, 100)))`, `net_D(tf.zeros((1, 64, 64, 3)))`)
   before `train` initialises them; `book_nets` runs the same two calls.
4. Random data replace the Pokemon loader: a fixed batch X, uniform in
   [-1, 1], shape (batch, 64, 64, 3), a `tf.Tensor` as the `tf.data` pipeline
   would hand it over.
5. `book_step` seeds TensorFlow's global RNG (`tf.random.set_seed(seed)`)
   before it initialises the nets; the book seeds nothing. The book's `train`
   takes `device=d2l.try_gpu()` but only prints it (TensorFlow places the ops);
   `device=` here, when given, runs the step under `tf.device(device)`.
6. The step ends with a host sync: `float()` of both losses (as the book's
   `d2l.Accumulator.add` does) and, where there is a GPU,
   `tf.test.experimental.sync_devices()` so that the last optimizer update is
   done. The book's animator, image grid and timers are left out.
"""

from __future__ import annotations

import contextlib

import numpy as np

from dcgan_tf.compat import tf

__all__ = ["BOOK_LR", "G_block", "D_block", "update_D", "update_G", "book_nets", "book_step", "try_gpu"]

BOOK_LR = 0.0005  # dcgan.md: `latent_dim, lr, num_epochs = 100, 0.0005, 40` (TensorFlow tab)


def try_gpu(i=0):
    """The book's `d2l.try_gpu` (d2l/tensorflow.py): gpu(i) if it exists, else the CPU."""
    if len(tf.config.experimental.list_physical_devices('GPU')) >= i + 1:
        return tf.device(f'/GPU:{i}')
    return tf.device('/CPU:0')


# ---- The book, dcgan.md (TensorFlow tab) ------------------------------------

class G_block(tf.keras.layers.Layer):
    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same",
                 **kwargs):
        super().__init__(**kwargs)
        self.conv2d_trans = tf.keras.layers.Conv2DTranspose(
            out_channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = tf.keras.layers.BatchNormalization()
        self.activation = tf.keras.layers.ReLU()

    def call(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(tf.keras.layers.Layer):
    def __init__(self, out_channels, kernel_size=4, strides=2, padding="same",
                 alpha=0.2, **kwargs):
        super().__init__(**kwargs)
        self.conv2d = tf.keras.layers.Conv2D(out_channels, kernel_size,
                                             strides, padding, use_bias=False)
        self.batch_norm = tf.keras.layers.BatchNormalization()
        self.activation = tf.keras.layers.LeakyReLU(alpha)

    def call(self, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


# ---- The book, gan.md (TensorFlow tab, #@save: d2l.update_D, d2l.update_G) --

def update_D(X, Z, net_D, net_G, loss, optimizer_D):
    """Update discriminator."""
    batch_size = X.shape[0]
    ones = tf.ones((batch_size,)) # Labels corresponding to real data
    zeros = tf.zeros((batch_size,)) # Labels corresponding to fake data
    # Do not need to compute gradient for `net_G`, so it's outside GradientTape
    fake_X = net_G(Z)
    with tf.GradientTape() as tape:
        real_Y = net_D(X)
        fake_Y = net_D(fake_X)
        # We multiply the loss by batch_size to match PyTorch's BCEWithLogitsLoss
        loss_D = (loss(ones, tf.squeeze(real_Y)) + loss(
            zeros, tf.squeeze(fake_Y))) * batch_size / 2
    grads_D = tape.gradient(loss_D, net_D.trainable_variables)
    optimizer_D.apply_gradients(zip(grads_D, net_D.trainable_variables))
    return loss_D


def update_G(Z, net_D, net_G, loss, optimizer_G):
    """Update generator."""
    batch_size = Z.shape[0]
    ones = tf.ones((batch_size,))
    with tf.GradientTape() as tape:
        # We could reuse `fake_X` from `update_D` to save computation
        fake_X = net_G(Z)
        # Recomputing `fake_Y` is needed since `net_D` is changed
        fake_Y = net_D(fake_X)
        # We multiply the loss by batch_size to match PyTorch's BCEWithLogits loss
        loss_G = loss(ones, tf.squeeze(fake_Y)) * batch_size
    grads_G = tape.gradient(loss_G, net_G.trainable_variables)
    optimizer_G.apply_gradients(zip(grads_G, net_G.trainable_variables))
    return loss_G


# ---- The book's nets and its `train`, as callables --------------------------

def book_nets(n_G=64, n_D=64, latent_dim=100, *, device=None):
    """(net_G, net_D): the book's 64x64 nets (NHWC), initialised as its `train` does.

    device=None: TensorFlow's own placement, as in the book; else a device
    string ("/CPU:0", "/GPU:0") to build them under. Uses TensorFlow's global
    RNG (`book_step` seeds it)."""
    with (tf.device(device) if device is not None else contextlib.nullcontext()):
        return _book_nets(n_G, n_D, latent_dim)


def _book_nets(n_G, n_D, latent_dim):
    net_G = tf.keras.Sequential([
        # Output: (4, 4, 64 * 8)
        G_block(out_channels=n_G*8, strides=1, padding="valid"),
        G_block(out_channels=n_G*4), # Output: (8, 8, 64 * 4)
        G_block(out_channels=n_G*2), # Output: (16, 16, 64 * 2)
        G_block(out_channels=n_G), # Output: (32, 32, 64)
        # Output: (64, 64, 3)
        tf.keras.layers.Conv2DTranspose(
            3, kernel_size=4, strides=2, padding="same", use_bias=False,
            activation="tanh")
    ])
    net_D = tf.keras.Sequential([
        D_block(n_D), # Output: (32, 32, 64)
        D_block(out_channels=n_D*2), # Output: (16, 16, 64 * 2)
        D_block(out_channels=n_D*4), # Output: (8, 8, 64 * 4)
        D_block(out_channels=n_D*8), # Outupt: (4, 4, 64 * 64)
        # Output: (1, 1, 1)
        tf.keras.layers.Conv2D(1, kernel_size=4, use_bias=False)
    ])
    # The book's shape-check cells, which create the variables:
    net_G(tf.zeros((1, 1, 1, latent_dim)))
    net_D(tf.zeros((1, 64, 64, 3)))
    # From the book's `train`:
    for w in net_D.trainable_variables:
        w.assign(tf.random.normal(mean=0, stddev=0.02, shape=w.shape))
    for w in net_G.trainable_variables:
        w.assign(tf.random.normal(mean=0, stddev=0.02, shape=w.shape))
    return net_G, net_D


def book_step(batch_size=64, n_G=64, n_D=64, latent_dim=100, lr=None, seed=0, *, device=None):
    """A zero-argument callable running ONE step of the book's `train` loop
    (draw Z, `update_D`, `update_G`) on a fixed random batch; it returns
    (loss_D, loss_G) as Python floats, after a host sync.

    lr=None: the book's, `BOOK_LR`. device=None: TensorFlow's own placement,
    as in the book; else a device string ("/CPU:0", "/GPU:0"). The losses
    are the book's: batch means times the batch size, i.e. sums."""
    lr = BOOK_LR if lr is None else lr
    scope = (lambda: tf.device(device)) if device is not None else contextlib.nullcontext
    with scope():
        tf.random.set_seed(seed)
        net_G, net_D = _book_nets(n_G, n_D, latent_dim)
        X = tf.constant(np.random.default_rng(seed).uniform(
            -1, 1, size=(batch_size, 64, 64, 3)).astype(np.float32))

        # The book's `train`, up to its loop:
        loss = tf.keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM)
        optimizer_hp = {"learning_rate": lr, "beta_1": 0.5, "beta_2": 0.999}
        optimizer_D = tf.keras.optimizers.Adam(**optimizer_hp)
        optimizer_G = tf.keras.optimizers.Adam(**optimizer_hp)
    gpu = bool(tf.config.list_logical_devices('GPU'))

    def step():
        with scope():
            # The body of the book's loop `for X, _ in data_iter:`
            Z = tf.random.normal(mean=0, stddev=1,
                                 shape=(batch_size, 1, 1, latent_dim))
            loss_D = update_D(X, Z, net_D, net_G, loss, optimizer_D)
            loss_G = update_G(Z, net_D, net_G, loss, optimizer_G)
            result = float(loss_D), float(loss_G)
            if gpu:
                tf.test.experimental.sync_devices()
        return result

    return step
