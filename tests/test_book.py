"""The book's own DCGAN code (`dcgan_<fw>/book.py`), kept as the benchmark's
reference: it runs and its nets have the book's shapes (tests/test_contract.py
checks that the three modules mirror each other).

The book modules are imported here, at the top, in the one safe order
(PyTorch, MXNet, then TensorFlow; `common.backends.SAFE_IMPORT_ORDER`),
after conftest.py has loaded the frameworks in that same order. `fw` is
parametrised by conftest.py over the installed frameworks.
"""

import importlib
import math

from common.backends import SAFE_IMPORT_ORDER, is_installed, package

BOOKS = {name: importlib.import_module(f"{package(name)}.book")
         for name in SAFE_IMPORT_ORDER if is_installed(name)}

# The book's learning rates: dcgan.md, `latent_dim, lr, num_epochs = ...`
BOOK_LRS = {"torch": 0.005, "mx": 0.005, "tf": 0.0005}


def test_book_step_runs_two_steps_with_finite_float_losses(fw):
    step = BOOKS[fw].book_step(batch_size=4, n_G=8, n_D=8)
    for _ in range(2):
        losses = step()
        assert len(losses) == 2
        assert all(type(v) is float and math.isfinite(v) for v in losses), losses


def _zeros(fw, shape, net):
    """Zeros on the device the net lives on (the book's try_gpu by default)."""
    if fw == "torch":
        import torch
        return torch.zeros(shape, device=next(net.parameters()).device)
    if fw == "mx":
        from mxnet import np
        return np.zeros(shape, ctx=BOOKS["mx"].try_gpu())
    from dcgan_tf.compat import tf
    return tf.zeros(shape)


def test_book_nets_have_the_books_shapes(fw):
    book = BOOKS[fw]
    net_G, net_D = book.book_nets(n_G=8, n_D=8)
    if fw == "tf":  # the book's TF tab is NHWC
        assert tuple(net_G(_zeros(fw, (1, 1, 1, 100), net_G)).shape) == (1, 64, 64, 3)
        assert tuple(net_D(_zeros(fw, (1, 64, 64, 3), net_D)).shape) == (1, 1, 1, 1)
    else:
        assert tuple(net_G(_zeros(fw, (1, 100, 1, 1), net_G)).shape) == (1, 3, 64, 64)
        assert tuple(net_D(_zeros(fw, (1, 3, 64, 64), net_D)).shape) == (1, 1, 1, 1)


def test_book_lr_is_the_books(fw):
    assert BOOKS[fw].BOOK_LR == BOOK_LRS[fw]
