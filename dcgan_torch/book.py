"""The book's own DCGAN code, PyTorch tab: the benchmark's reference, not used for training.

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
step in the same run. `dcgan_tf/book.py` and `dcgan_mx/book.py` are its mirror
images, with the same public names.

What is the book's, unchanged: the classes `G_block` and `D_block`, the two
`nn.Sequential` nets (with `n_G`, `n_D` as arguments instead of module
constants), the weight initialisation, loss and optimizers exactly as the
book's `train` creates them (`nn.init.normal_(w, 0, 0.02)` on *every*
parameter, batch-norm scales and shifts included; `nn.BCEWithLogitsLoss(
reduction='sum')`; Adam with lr, betas [0.5, 0.999]), `update_D` and
`update_G` verbatim, and the body of `train`'s inner loop in `book_step`
(draw Z with `torch.normal`, move X and Z to the device, `update_D`, then
`update_G`). The book's learning rate for PyTorch is `BOOK_LR` = 0.005
(`latent_dim, lr, num_epochs = 100, 0.005, 20`). Execution is eager, the nets
stay in train mode (batch statistics), as in the book.

Adaptations (everything else is verbatim):

1. `torch._dynamo` is imported at import time, with a clear ImportError if
   TensorFlow is already loaded (as `dcgan_torch/train.py` does): creating a
   torch optimizer loads triton, which crashes a process holding TensorFlow.
2. The book's `net_G` hard-codes the latent size in its first block
   (`in_channels=100`); `book_nets` takes it as `latent_dim` (default 100).
3. Random data replace the Pokemon loader: a fixed batch X, uniform in
   [-1, 1], shape (batch, 3, 64, 64), made on the host once, as the loader
   would hand it over; the step still runs the book's `X.to(device)` (into
   a new name, `X_`, since X belongs to the enclosing `book_step`).
4. The book's `d2l.try_gpu()` is `try_gpu` here; `device=` may override it.
5. `book_step` seeds torch's global RNG (`torch.manual_seed(seed)`) before it
   initialises the nets, so a seed gives the same nets and the same Z draws;
   the book seeds nothing.
6. The step ends with a host sync, `.item()` of both losses (the book's
   `d2l.Accumulator.add` calls `float()`, which torch 2.14 now warns about
   on a tensor that requires grad; `.item()` is the same sync, silent), plus
   `torch.cuda.synchronize()` on a GPU so that the last optimizer step is done.
   The book's animator, image grid and timers are left out.
7. torch is imported through `dcgan_torch.compat`, whose `load_dynamo()` loads
   triton now (the optimizers would) and refuses a process that already holds
   TensorFlow, with a clear error instead of a crash.
"""

from __future__ import annotations

import numpy as np

from dcgan_torch.compat import load_dynamo, torch

nn = torch.nn
load_dynamo()  # the book's train makes optimizers; see compat.py

__all__ = ["BOOK_LR", "G_block", "D_block", "update_D", "update_G", "book_nets", "book_step", "try_gpu"]

BOOK_LR = 0.005  # dcgan.md: `latent_dim, lr, num_epochs = 100, 0.005, 20` (PyTorch and MXNet tabs)


def try_gpu(i=0):
    """The book's `d2l.try_gpu`: gpu(i) if it exists, else the CPU."""
    if torch.cuda.device_count() >= i + 1:
        return torch.device(f'cuda:{i}')
    return torch.device('cpu')


# ---- The book, dcgan.md (PyTorch tab) --------------------------------------

class G_block(nn.Module):
    def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2,
                 padding=1, **kwargs):
        super(G_block, self).__init__(**kwargs)
        self.conv2d_trans = nn.ConvTranspose2d(in_channels, out_channels,
                                kernel_size, strides, padding, bias=False)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d_trans(X)))


class D_block(nn.Module):
    def __init__(self, out_channels, in_channels=3, kernel_size=4, strides=2,
                padding=1, alpha=0.2, **kwargs):
        super(D_block, self).__init__(**kwargs)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size,
                                strides, padding, bias=False)
        self.batch_norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.LeakyReLU(alpha, inplace=True)

    def forward(self, X):
        return self.activation(self.batch_norm(self.conv2d(X)))


# ---- The book, gan.md (PyTorch tab, #@save: d2l.update_D, d2l.update_G) ----

def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """Update discriminator."""
    batch_size = X.shape[0]
    ones = torch.ones((batch_size,), device=X.device)
    zeros = torch.zeros((batch_size,), device=X.device)
    trainer_D.zero_grad()
    real_Y = net_D(X)
    fake_X = net_G(Z)
    # Do not need to compute gradient for `net_G`, detach it from
    # computing gradients.
    fake_Y = net_D(fake_X.detach())
    loss_D = (loss(real_Y, ones.reshape(real_Y.shape)) +
              loss(fake_Y, zeros.reshape(fake_Y.shape))) / 2
    loss_D.backward()
    trainer_D.step()
    return loss_D


def update_G(Z, net_D, net_G, loss, trainer_G):
    """Update generator."""
    batch_size = Z.shape[0]
    ones = torch.ones((batch_size,), device=Z.device)
    trainer_G.zero_grad()
    # We could reuse `fake_X` from `update_D` to save computation
    fake_X = net_G(Z)
    # Recomputing `fake_Y` is needed since `net_D` is changed
    fake_Y = net_D(fake_X)
    loss_G = loss(fake_Y, ones.reshape(fake_Y.shape))
    loss_G.backward()
    trainer_G.step()
    return loss_G


# ---- The book's nets and its `train`, as callables --------------------------

def book_nets(n_G=64, n_D=64, latent_dim=100, *, device=None):
    """(net_G, net_D): the book's 64x64 nets, initialised as its `train` does
    and moved, as it does, to `device` (default the book's `d2l.try_gpu()`).

    Uses torch's global RNG (`book_step` seeds it)."""
    device = try_gpu() if device is None else torch.device(device)
    net_G = nn.Sequential(
        G_block(in_channels=latent_dim, out_channels=n_G*8,
                strides=1, padding=0),                  # Output: (64 * 8, 4, 4)
        G_block(in_channels=n_G*8, out_channels=n_G*4), # Output: (64 * 4, 8, 8)
        G_block(in_channels=n_G*4, out_channels=n_G*2), # Output: (64 * 2, 16, 16)
        G_block(in_channels=n_G*2, out_channels=n_G),   # Output: (64, 32, 32)
        nn.ConvTranspose2d(in_channels=n_G, out_channels=3,
                           kernel_size=4, stride=2, padding=1, bias=False),
        nn.Tanh())  # Output: (3, 64, 64)
    net_D = nn.Sequential(
        D_block(n_D),  # Output: (64, 32, 32)
        D_block(in_channels=n_D, out_channels=n_D*2),  # Output: (64 * 2, 16, 16)
        D_block(in_channels=n_D*2, out_channels=n_D*4),  # Output: (64 * 4, 8, 8)
        D_block(in_channels=n_D*4, out_channels=n_D*8),  # Output: (64 * 8, 4, 4)
        nn.Conv2d(in_channels=n_D*8, out_channels=1,
                  kernel_size=4, bias=False))  # Output: (1, 1, 1)
    # From the book's `train`:
    for w in net_D.parameters():
        nn.init.normal_(w, 0, 0.02)
    for w in net_G.parameters():
        nn.init.normal_(w, 0, 0.02)
    net_D, net_G = net_D.to(device), net_G.to(device)
    return net_G, net_D


def book_step(batch_size=64, n_G=64, n_D=64, latent_dim=100, lr=None, seed=0, *, device=None):
    """A zero-argument callable running ONE step of the book's `train` loop
    (draw Z, `update_D`, `update_G`) on a fixed random batch; it returns
    (loss_D, loss_G) as Python floats, after a host sync.

    lr=None: the book's, `BOOK_LR`. device=None: the book's `d2l.try_gpu()`.
    The losses are the book's: sums over the batch (reduction='sum')."""
    lr = BOOK_LR if lr is None else lr
    device = try_gpu() if device is None else torch.device(device)
    torch.manual_seed(seed)
    net_G, net_D = book_nets(n_G, n_D, latent_dim, device=device)
    X = torch.from_numpy(np.random.default_rng(seed).uniform(
        -1, 1, size=(batch_size, 3, 64, 64)).astype(np.float32))

    # The book's `train`, up to its loop:
    loss = nn.BCEWithLogitsLoss(reduction='sum')
    net_D, net_G = net_D.to(device), net_G.to(device)
    trainer_hp = {'lr': lr, 'betas': [0.5,0.999]}
    trainer_D = torch.optim.Adam(net_D.parameters(), **trainer_hp)
    trainer_G = torch.optim.Adam(net_G.parameters(), **trainer_hp)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

    def step():
        # The body of the book's loop `for X, _ in data_iter:`
        Z = torch.normal(0, 1, size=(batch_size, latent_dim, 1, 1))
        X_, Z = X.to(device), Z.to(device)
        loss_D = update_D(X_, Z, net_D, net_G, loss, trainer_D)
        loss_G = update_G(Z, net_D, net_G, loss, trainer_G)
        result = loss_D.item(), loss_G.item()
        sync()
        return result

    return step
