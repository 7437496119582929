"""Every quantity the cross-framework parity checks compare, computed with
TensorFlow/Keras (python -m common.parity runs this in its own process). NumPy
in and out in NCHW and canonical layout; NHWC only inside."""

from __future__ import annotations

import numpy as np

from common.parity import parity_main, run_steps
from dcgan_tf.compat import tf
from dcgan_tf.model import build_discriminator, build_generator
from dcgan_tf.train import compile_step, losses_and_gradients, make_optimizers
from dcgan_tf.weights import export_canonical, load_canonical


def nets(spec, arrays, dtype):
    return (load_canonical(build_generator(spec, dtype=dtype), arrays),
            load_canonical(build_discriminator(spec, dtype=dtype), arrays))


def nhwc(x, dtype):
    return tf.constant(np.ascontiguousarray(np.asarray(x, dtype).transpose(0, 2, 3, 1)))


def nchw(y):
    return y.numpy().transpose(0, 3, 1, 2)


def forward_and_gradients(spec, arrays, X, Z, dtype) -> dict:
    X, Z = nhwc(X, dtype), nhwc(Z, dtype)
    out = {}
    G, D = nets(spec, arrays, dtype)
    out["G_train"] = nchw(G(Z, training=True))
    out["D_real"] = nchw(D(X, training=True)).reshape(-1)
    out["D_fake"] = nchw(D(nhwc(out["G_train"], dtype), training=True)).reshape(-1)
    G, _ = nets(spec, arrays, dtype)  # fresh moving statistics
    out["G_eval"] = nchw(G(Z, training=False))
    losses, grads = losses_and_gradients(*nets(spec, arrays, dtype), X, Z)
    return {**out, **losses, **{f"grad/{k}": g for k, g in grads.items()}}


def training_steps(spec, arrays, batches, noises, lr, record, dtype, epsilon) -> dict:
    G, D = nets(spec, arrays, dtype)
    opt_G, opt_D = make_optimizers(G, D, lr, epsilon)
    compiled = compile_step(G, D, opt_G, opt_D)

    def step(X, Z):
        metrics = compiled(nhwc(X, dtype), nhwc(Z, dtype))
        return {k: float(v) for k, v in metrics.items()}

    return run_steps(step, lambda: {**export_canonical(G), **export_canonical(D)}, batches, noises, record)


if __name__ == "__main__":
    raise SystemExit(parity_main("tf", forward_and_gradients, training_steps))
