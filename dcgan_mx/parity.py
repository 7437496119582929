"""Every quantity the cross-framework parity checks compare, computed with
MXNet Gluon (python -m common.parity runs this in its own process). NumPy in,
NumPy out, NCHW and canonical layout."""

from __future__ import annotations

from common.parity import parity_main, run_steps
from dcgan_mx.compat import mx
from dcgan_mx.model import build_discriminator, build_generator
from dcgan_mx.train import losses_and_gradients, make_optimizers, train_step
from dcgan_mx.weights import export_canonical, load_canonical


def nets(spec, arrays, dtype):
    return (load_canonical(build_generator(spec, dtype=dtype), arrays),
            load_canonical(build_discriminator(spec, dtype=dtype), arrays))


def forward_and_gradients(spec, arrays, X, Z, dtype) -> dict:
    X, Z = mx.nd.array(X, dtype=dtype), mx.nd.array(Z, dtype=dtype)
    out = {}
    with mx.autograd.train_mode():
        G, D = nets(spec, arrays, dtype)
        out["G_train"] = G(Z).asnumpy()
        out["D_real"] = D(X).asnumpy().reshape(-1)
        out["D_fake"] = D(mx.nd.array(out["G_train"], dtype=dtype)).asnumpy().reshape(-1)
    G, _ = nets(spec, arrays, dtype)  # fresh running statistics
    with mx.autograd.predict_mode():
        out["G_eval"] = G(Z).asnumpy()
    losses, grads = losses_and_gradients(*nets(spec, arrays, dtype), X, Z)
    return {**out, **losses, **{f"grad/{k}": g for k, g in grads.items()}}


def training_steps(spec, arrays, batches, noises, lr, record, dtype, epsilon) -> dict:
    G, D = nets(spec, arrays, dtype)
    opt_G, opt_D = make_optimizers(G, D, lr, epsilon)

    def step(X, Z):
        metrics = train_step(G, D, opt_G, opt_D, mx.nd.array(X, dtype=dtype), mx.nd.array(Z, dtype=dtype))
        return {k: float(v.asscalar()) for k, v in metrics.items()}

    return run_steps(step, lambda: {**export_canonical(G), **export_canonical(D)}, batches, noises, record)


if __name__ == "__main__":
    raise SystemExit(parity_main("mx", forward_and_gradients, training_steps))
