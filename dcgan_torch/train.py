"""Train the DCGAN in PyTorch: the canonical step of DESIGN §6, the loop, main.

    python -m dcgan_torch.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_tf/train.py and dcgan_mx/train.py.
"""

from __future__ import annotations

import math
import sys

import torch
from torch import nn

# PyTorch's optimizers import torch._dynamo, and with it triton, the first time
# one is created; triton loaded after TensorFlow >= 2.19 crashes the process
# (README, "Import order"). So it is loaded here, at import, where the import
# order is decided, and a process that already holds TensorFlow gets a clear
# error instead of a crash in the middle of a run.
if "tensorflow" in sys.modules and "torch._dynamo" not in sys.modules:
    raise ImportError("import dcgan_torch.train (or create a torch optimizer) before TensorFlow: "
                      "torch's optimizers load triton, which crashes a process that already loaded "
                      "TensorFlow (see README, Import order)")
import torch._dynamo  # noqa: E402,F401

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig
from common.errors import UsageError
from common.run import Run
from dcgan_torch.model import LAYOUT, build_discriminator, build_generator, count_params
from dcgan_torch.sample import generate
from dcgan_torch.weights import export_canonical, parameters


def pick_device(choice: str) -> torch.device:
    """auto: the first GPU if there is one, else the CPU."""
    if choice == "gpu" and not torch.cuda.is_available():
        raise UsageError("--device gpu: PyTorch sees no GPU")
    return torch.device("cuda:0" if choice != "cpu" and torch.cuda.is_available() else "cpu")


def describe_device(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def make_optimizers(G, D, lr: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (DESIGN §4)."""
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=(BETA1, BETA2), eps=epsilon)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=(BETA1, BETA2), eps=epsilon)
    return opt_G, opt_D


def fold_epsilon(opt) -> None:
    """Make the coming Adam step add epsilon where Keras and Gluon do.

    PyTorch divides by sqrt(v / (1 - beta2^t)) + eps; Keras and Gluon fold the
    bias correction into the step size and divide by sqrt(v) + eps. With
    eps_t = eps / sqrt(1 - beta2^t) PyTorch's update is theirs, exactly.
    """
    for group in opt.param_groups:
        epsilon = group.setdefault("epsilon", group["eps"])  # the configured value, kept on first use
        state = opt.state.get(group["params"][0], {})
        t = int(state["step"]) + 1 if "step" in state else 1
        group["eps"] = epsilon / math.sqrt(1 - group["betas"][1] ** t)


loss = nn.BCEWithLogitsLoss()  # BCE on logits, mean over the batch


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors."""
    real_logits = D(X).reshape(-1)
    fake_logits = D(fake).reshape(-1)
    loss_D = (loss(real_logits, torch.ones_like(real_logits))
              + loss(fake_logits, torch.zeros_like(fake_logits))) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = D(fake).reshape(-1)
    return loss(fake_logits, torch.ones_like(fake_logits))


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of DESIGN §6; returns loss_D, loss_G, d_real, d_fake as 0-d tensors."""
    fake = G(Z)
    # (1) Update D, with G's output held fixed.
    opt_D.zero_grad(set_to_none=True)
    loss_D, real_logits, fake_logits = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    fold_epsilon(opt_D)
    opt_D.step()
    # (2) Update G through the same fake, with the updated D.
    opt_G.zero_grad(set_to_none=True)
    loss_G = generator_loss(D, fake)
    loss_G.backward()
    fold_epsilon(opt_G)
    opt_G.step()
    with torch.no_grad():
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach(),
                "d_real": torch.sigmoid(real_logits).mean(), "d_fake": torch.sigmoid(fake_logits).mean()}


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    running statistics."""
    fake = G(Z)
    loss_D, _, _ = discriminator_loss(D, X, fake.detach())
    loss_G = generator_loss(D, fake)
    keys_D, params_D = zip(*parameters(D))
    keys_G, params_G = zip(*parameters(G))
    grads = dict(zip(keys_D, torch.autograd.grad(loss_D, params_D)))
    grads.update(zip(keys_G, torch.autograd.grad(loss_G, params_G)))
    return ({"loss_D": loss_D.item(), "loss_G": loss_G.item()},
            {k: g.detach().cpu().numpy() for k, g in grads.items()})


def save_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    torch.save({"G": G.state_dict(), "D": D.state_dict(),
                "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                "torch_rng": torch.get_rng_state()}, directory / "state.pt")


def load_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    state = torch.load(directory / "state.pt", map_location=next(G.parameters()).device, weights_only=True)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G.load_state_dict(state["opt_G"])
    opt_D.load_state_dict(state["opt_D"])
    torch.set_rng_state(state["torch_rng"].cpu())


def versions() -> dict:
    return {"torch": torch.__version__}


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    device = pick_device(config.device)
    G = build_generator(config.spec, config.seed, config.dtype).to(device)
    D = build_discriminator(config.spec, config.seed + 1, config.dtype).to(device)
    run = Run.open(config, "torch", versions(), describe_device(device),
                   {"G": count_params(G), "D": count_params(D)}, progress, callback=callback)
    opt_G, opt_D = make_optimizers(G, D, config.lr)
    if run.resuming:
        load_checkpoint(run.checkpoint_dir, G, D, opt_G, opt_D)
    fixed_Z = run.fixed_noise(LAYOUT)
    for epoch in run.epochs():
        G.train()
        D.train()
        for X, Z in run.batches(epoch, LAYOUT):
            X, Z = torch.from_numpy(X).to(device), torch.from_numpy(Z).to(device)
            run.step_done(train_step(G, D, opt_G, opt_D, X, Z))
        run.epoch_done(generate(G, fixed_Z), LAYOUT,
                       lambda d: save_checkpoint(d, G, D, opt_G, opt_D), export_canonical(G))
    return run.finish()


def main(argv=None) -> int:
    return train_main("torch", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
