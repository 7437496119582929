"""The book's own DCGAN code, MXNet tab: the benchmark's reference, not used for training.

Transcribed from *Dive into Deep Learning* (d2l), chapter "Generative
Adversarial Networks": section "Deep Convolutional Generative Adversarial
Networks" (:label:`sec_dcgan`, source `chapter_generative-adversarial-networks/dcgan.md`
of github.com/d2l-ai/d2l-en, commit 0d12ac3410106558611f48850c3aef902491f870)
for `G_block`, `D_block`, `net_G`, `net_D` and `train`; and section "Generative
Adversarial Networks" (:label:`sec_basic_gan`, `gan.md`, same commit) for
`update_D` and `update_G`, which the book saves into the d2l library (`#@save`)
and its DCGAN `train` calls as `d2l.update_D` / `d2l.update_G`.

Nothing in this project trains with this module. It exists so that a benchmark
can time "the book's code for this chapter" against this project's training
step in the same run. `dcgan_torch/book.py` and `dcgan_tf/book.py` are its
mirror images, with the same public names.

What is the book's, unchanged: the Gluon blocks `G_block` and `D_block`
(`nn.Block`s, not hybridized), the two `nn.Sequential` nets (with `n_G`, `n_D`
as arguments instead of module constants), MXNet's NumPy interface
(`from mxnet import np, npx, ...; npx.set_np()`), the initialisation, loss and
trainers exactly as the book's `train` creates them
(`initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)`, which
leaves batch norm's gamma at 1 and beta at 0: those parameters carry their own
initializers, which win over the global one; `gluon.loss.SigmoidBCELoss()`;
`gluon.Trainer(..., 'adam', {'learning_rate': lr, 'beta1': 0.5})`),
`update_D` and `update_G` verbatim, and the body of `train`'s inner loop in
`book_step` (draw Z with `np.random.normal`, `as_in_ctx(device)`, `update_D`,
then `update_G`). The book's learning rate for MXNet is `BOOK_LR` = 0.005
(`latent_dim, lr, num_epochs = 100, 0.005, 20`).

Adaptations (everything else is verbatim):

1. MXNet 1.9.1 is imported through `dcgan_mx.compat` (it restores the NumPy
   aliases MXNet needs and sizes its OpenMP pool; common.bench's worker for
   this module sets DCGAN_MX_THREADS=default so that the pool stays MXNet's
   own, as the book runs), then
   `from mxnet import np, npx, gluon, autograd, init` as the book does.
2. `npx.set_np()` is the book's, and `dcgan_mx.compat` has already called it
   for the whole process (this project's backend runs in the same mode).
3. The book's `update_D`/`update_G` rely on that mode: `np` in them is
   `mxnet.np`, as in the book (this module's `np` is MXNet's, never NumPy's).
4. Random data replace the Pokemon loader: a fixed batch X, uniform in
   [-1, 1], shape (batch, 3, 64, 64), an `mxnet.np` array on the CPU as the
   loader would hand it over; the step still runs the book's
   `X.as_in_ctx(device)` (into a new name, `X_`, since X belongs to the
   enclosing `book_step`).
5. The book's `d2l.try_gpu()` is `try_gpu` here; `device=` may override it.
   The book creates its nets before `train` and shape-checks them with
   `initialize()` and a forward pass; `book_nets` goes straight to `train`'s
   `initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)`, with
   deferred shapes, which gives the same parameters.
6. `book_step` seeds MXNet's global RNG (`mx.random.seed(seed)`) before it
   initialises the nets; the book seeds nothing.
7. The step ends with a host sync: the book's own `float(loss.sum())` in
   `update_D`/`update_G`, then `npx.waitall()` so that the last trainer step
   (asynchronous in MXNet's engine) is done. The book's animator, image grid
   and timers are left out.
"""

from __future__ import annotations

import numpy as onp

from dcgan_mx.compat import autograd, gluon, init, mx, np, npx

nn = gluon.nn

__all__ = ["BOOK_LR", "G_block", "D_block", "update_D", "update_G", "book_nets", "book_step", "try_gpu"]

BOOK_LR = 0.005  # dcgan.md: `latent_dim, lr, num_epochs = 100, 0.005, 20` (PyTorch and MXNet tabs)


def try_gpu(i=0):
    """The book's `d2l.try_gpu`: gpu(i) if it exists, else the CPU."""
    return npx.gpu(i) if npx.num_gpus() >= i + 1 else npx.cpu()


# ---- The book, dcgan.md (MXNet tab) -----------------------------------------

class G_block(nn.Block):
    def __init__(self, channels, kernel_size=4,
                 strides=2, padding=1, **kwargs):
        super(G_block, self).__init__(**kwargs)
        self.conv2d_trans = nn.Conv2DTranspose(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        self.activation = nn.Activation('relu')

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.Block):
    def __init__(self, channels, kernel_size=4, strides=2,
                 padding=1, alpha=0.2, **kwargs):
        super(D_block, self).__init__(**kwargs)
        self.conv2d = nn.Conv2D(
            channels, kernel_size, strides, padding, use_bias=False)
        self.batch_norm = nn.BatchNorm()
        self.activation = nn.LeakyReLU(alpha)

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


# ---- The book, gan.md (MXNet tab, #@save: d2l.update_D, d2l.update_G) -------

def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update discriminator."""
    batch_size = X.shape[0]
    ones = np.ones((batch_size,), ctx=X.ctx)
    zeros = np.zeros((batch_size,), ctx=X.ctx)
    with autograd.record():
        real_Y = net_D(X)
        fake_X = net_G(Z)
        # Do not need to compute gradient for `net_G`, detach it from
        # computing gradients.
        fake_Y = net_D(fake_X.detach())
        loss_D = (loss(real_Y, ones) + loss(fake_Y, zeros)) / 2
    loss_D.backward()
    trainer_D.step(batch_size)
    return float(loss_D.sum())


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update generator."""
    batch_size = Z.shape[0]
    ones = np.ones((batch_size,), ctx=Z.ctx)
    with autograd.record():
        # We could reuse `fake_X` from `update_D` to save computation
        fake_X = net_G(Z)
        # Recomputing `fake_Y` is needed since `net_D` is changed
        fake_Y = net_D(fake_X)
        loss_G = loss(fake_Y, ones)
    loss_G.backward()
    trainer_G.step(batch_size)
    return float(loss_G.sum())


# ---- The book's nets and its `train`, as callables --------------------------

def book_nets(n_G=64, n_D=64, latent_dim=100, *, device=None):
    """(net_G, net_D): the book's 64x64 nets, initialised as its `train` does
    (on `device`, default the book's `d2l.try_gpu()`).

    The latent size is inferred at the first call (deferred initialisation);
    `latent_dim` is accepted for symmetry with the other frameworks. Uses
    MXNet's global RNG (`book_step` seeds it)."""
    device = try_gpu() if device is None else device
    net_G = nn.Sequential()
    net_G.add(G_block(n_G*8, strides=1, padding=0),  # Output: (64 * 8, 4, 4)
              G_block(n_G*4),  # Output: (64 * 4, 8, 8)
              G_block(n_G*2),  # Output: (64 * 2, 16, 16)
              G_block(n_G),    # Output: (64, 32, 32)
              nn.Conv2DTranspose(
                  3, kernel_size=4, strides=2, padding=1, use_bias=False,
                  activation='tanh'))  # Output: (3, 64, 64)
    net_D = nn.Sequential()
    net_D.add(D_block(n_D),   # Output: (64, 32, 32)
              D_block(n_D*2),  # Output: (64 * 2, 16, 16)
              D_block(n_D*4),  # Output: (64 * 4, 8, 8)
              D_block(n_D*8),  # Output: (64 * 8, 4, 4)
              nn.Conv2D(1, kernel_size=4, use_bias=False))  # Output: (1, 1, 1)
    # From the book's `train`:
    net_D.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    net_G.initialize(init=init.Normal(0.02), force_reinit=True, ctx=device)
    return net_G, net_D


def book_step(batch_size=64, n_G=64, n_D=64, latent_dim=100, lr=None, seed=0, *, device=None):
    """A zero-argument callable running ONE step of the book's `train` loop
    (draw Z, `update_D`, `update_G`) on a fixed random batch; it returns
    (loss_D, loss_G) as Python floats, after a host sync.

    lr=None: the book's, `BOOK_LR`. device=None: the book's `d2l.try_gpu()`.
    The losses are the book's: sums over the batch of per-example means."""
    lr = BOOK_LR if lr is None else lr
    device = try_gpu() if device is None else device
    mx.random.seed(seed)
    net_G, net_D = book_nets(n_G, n_D, latent_dim, device=device)
    X = np.array(onp.random.default_rng(seed).uniform(
        -1, 1, size=(batch_size, 3, 64, 64)).astype(onp.float32))

    # The book's `train`, up to its loop:
    loss = gluon.loss.SigmoidBCELoss()
    trainer_hp = {'learning_rate': lr, 'beta1': 0.5}
    trainer_D = gluon.Trainer(net_D.collect_params(), 'adam', trainer_hp)
    trainer_G = gluon.Trainer(net_G.collect_params(), 'adam', trainer_hp)

    def step():
        # The body of the book's loop `for X, _ in data_iter:`
        Z = np.random.normal(0, 1, size=(batch_size, latent_dim, 1, 1))
        X_, Z = X.as_in_ctx(device), Z.as_in_ctx(device),
        result = (update_D(X_, Z, net_D, net_G, loss, trainer_D),
                  update_G(Z, net_D, net_G, loss, trainer_G))
        npx.waitall()
        return result

    return step
