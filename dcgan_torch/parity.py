"""Every quantity the cross-framework parity checks compare, computed with
PyTorch (python -m common.parity runs this in its own process). NumPy in,
NumPy out, NCHW and canonical layout."""

from __future__ import annotations

import torch

from common.parity import parity_main, run_steps
from dcgan_torch.model import build_discriminator, build_generator
from dcgan_torch.train import losses_and_gradients, make_optimizers, train_step
from dcgan_torch.weights import export_canonical, load_canonical


def nets(spec, arrays, dtype):
    return (load_canonical(build_generator(spec, dtype=dtype), arrays).train(),
            load_canonical(build_discriminator(spec, dtype=dtype), arrays).train())


def forward_and_gradients(spec, arrays, X, Z, dtype) -> dict:
    X, Z = torch.from_numpy(X.astype(dtype)), torch.from_numpy(Z.astype(dtype))
    out = {}
    with torch.no_grad():
        G, D = nets(spec, arrays, dtype)
        out["G_train"] = G(Z).numpy()
        out["D_real"] = D(X).numpy().reshape(-1)
        out["D_fake"] = D(torch.from_numpy(out["G_train"])).numpy().reshape(-1)
        G, _ = nets(spec, arrays, dtype)  # fresh running statistics
        out["G_eval"] = G.eval()(Z).numpy()
    losses, grads = losses_and_gradients(*nets(spec, arrays, dtype), X, Z)
    return {**out, **losses, **{f"grad/{k}": g for k, g in grads.items()}}


def training_steps(spec, arrays, batches, noises, lr, record, dtype, epsilon) -> dict:
    G, D = nets(spec, arrays, dtype)
    opt_G, opt_D = make_optimizers(G, D, lr, epsilon)

    def step(X, Z):
        metrics = train_step(G, D, opt_G, opt_D, torch.from_numpy(X.astype(dtype)), torch.from_numpy(Z.astype(dtype)))
        return {k: float(v) for k, v in metrics.items()}

    return run_steps(step, lambda: {**export_canonical(G), **export_canonical(D)}, batches, noises, record)


if __name__ == "__main__":
    raise SystemExit(parity_main("torch", forward_and_gradients, training_steps))
