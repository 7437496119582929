"""Train the DCGAN in MXNet Gluon: the canonical step of DESIGN §6, the loop, main.

    python -m dcgan_mx.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_torch/train.py and dcgan_tf/train.py.
"""

from __future__ import annotations

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig
from common.errors import UsageError
from common.run import Run
from dcgan_mx.compat import mx
from dcgan_mx.model import LAYOUT, build_discriminator, build_generator, count_params
from dcgan_mx.sample import generate
from dcgan_mx.weights import export_canonical, parameters

autograd, gluon = mx.autograd, mx.gluon


def pick_device(choice: str):
    """auto: the first GPU if there is one, else the CPU."""
    gpus = mx.context.num_gpus()
    if choice == "gpu" and not gpus:
        raise UsageError("--device gpu: MXNet sees no GPU")
    return mx.gpu(0) if choice != "cpu" and gpus else mx.cpu()


def describe_device(device) -> str:
    return str(device)


def make_optimizers(G, D, lr: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (DESIGN §4)."""
    adam = {"learning_rate": lr, "beta1": BETA1, "beta2": BETA2, "epsilon": epsilon}
    opt_G = gluon.Trainer(G.collect_params(), "adam", dict(adam))
    opt_D = gluon.Trainer(D.collect_params(), "adam", dict(adam))
    return opt_G, opt_D


loss = gluon.loss.SigmoidBCELoss()  # BCE on logits, one value per example


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors."""
    real_logits = D(X).reshape((-1,))
    fake_logits = D(fake).reshape((-1,))
    loss_D = (loss(real_logits, mx.nd.ones_like(real_logits)).mean()
              + loss(fake_logits, mx.nd.zeros_like(fake_logits)).mean()) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = D(fake).reshape((-1,))
    return loss(fake_logits, mx.nd.ones_like(fake_logits)).mean()


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of DESIGN §6; returns loss_D, loss_G, d_real, d_fake as 1-element NDArrays."""
    with autograd.record():
        fake = G(Z)
        # (1) Update D, with G's output held fixed.
        loss_D, real_logits, fake_logits = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    opt_D.step(1)  # the loss is already a batch mean: no further 1/batch scaling
    # (2) Update G through the same fake, with the updated D.
    with autograd.record():
        loss_G = generator_loss(D, fake)
    loss_G.backward()
    opt_G.step(1)
    return {"loss_D": loss_D, "loss_G": loss_G,
            "d_real": real_logits.sigmoid().mean(), "d_fake": fake_logits.sigmoid().mean()}


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    running statistics (which Gluon updates in the backward pass)."""
    with autograd.record():
        fake = G(Z)
        loss_D, _, _ = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    grads = {k: p.grad().asnumpy() for k, p in parameters(D)}
    with autograd.record():
        loss_G = generator_loss(D, fake)
    loss_G.backward()
    grads.update({k: p.grad().asnumpy() for k, p in parameters(G)})
    return {"loss_D": loss_D.asscalar(), "loss_G": loss_G.asscalar()}, grads


def save_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    G.save_parameters(str(directory / "G.params"))
    D.save_parameters(str(directory / "D.params"))
    opt_G.save_states(str(directory / "opt_G.states"))
    opt_D.save_states(str(directory / "opt_D.states"))


def load_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    G.load_parameters(str(directory / "G.params"), ctx=G.collect_params().list_ctx())
    D.load_parameters(str(directory / "D.params"), ctx=D.collect_params().list_ctx())
    opt_G.load_states(str(directory / "opt_G.states"))
    opt_D.load_states(str(directory / "opt_D.states"))


def versions() -> dict:
    return {"mxnet": mx.__version__}


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    device = pick_device(config.device)
    G = build_generator(config.spec, config.seed, config.dtype)
    D = build_discriminator(config.spec, config.seed + 1, config.dtype)
    run = Run.open(config, "mx", versions(), describe_device(device),
                   {"G": count_params(G), "D": count_params(D)}, progress,
                   to_float=lambda a: a.asscalar(), callback=callback)
    G.collect_params().reset_ctx(device)
    D.collect_params().reset_ctx(device)
    opt_G, opt_D = make_optimizers(G, D, config.lr)
    if run.resuming:
        load_checkpoint(run.checkpoint_dir, G, D, opt_G, opt_D)
    fixed_Z = run.fixed_noise(LAYOUT)
    for epoch in run.epochs():
        for X, Z in run.batches(epoch, LAYOUT):
            X, Z = mx.nd.array(X, ctx=device, dtype=X.dtype), mx.nd.array(Z, ctx=device, dtype=Z.dtype)
            run.step_done(train_step(G, D, opt_G, opt_D, X, Z))
        run.epoch_done(generate(G, fixed_Z), LAYOUT,
                       lambda d: save_checkpoint(d, G, D, opt_G, opt_D), export_canonical(G))
    return run.finish()


def main(argv=None) -> int:
    return train_main("mx", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
