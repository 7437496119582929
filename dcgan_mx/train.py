"""Train the DCGAN in MXNet Gluon: the step of docs/design.md §8, the loop, main.

    python -m dcgan_mx.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_torch/train.py and dcgan_tf/train.py (the contract: docs/design.md §3).
"""

from __future__ import annotations

import contextlib

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig, unsupported_precision
from common.run import Run
from common.weights import init_weights
from dcgan_mx.compat import autograd, gluon, np, npx
from dcgan_mx.core import LAYOUT, convert_to_numpy, convert_to_tensor, forward, to_device, versions
from dcgan_mx.distributed import mean_across, replicate, setup
from dcgan_mx.model import build_discriminator, build_generator, count_params
from dcgan_mx.weights import canonical_gradients, export_canonical, load_canonical, parameters


def make_optimizers(G, D, lr_G: float, lr_D: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (docs/design.md §5)."""
    adam = {"beta1": BETA1, "beta2": BETA2, "epsilon": epsilon}
    # kvstore "device" (Gluon's default, named): how the gradients of several devices are summed
    opt_G = gluon.Trainer(_in_order(G), "adam", {"learning_rate": lr_G, **adam}, kvstore="device")
    opt_D = gluon.Trainer(_in_order(D), "adam", {"learning_rate": lr_D, **adam}, kvstore="device")
    return opt_G, opt_D


def _in_order(net) -> dict:
    """The net's parameters, keyed so that the Trainer's sort by key keeps the
    net's order. Gluon names parameters from process-wide counters, and the
    Trainer numbers them by sorted name: a net built after `batchnorm9` has
    `batchnorm10`, which sorts first, and a resumed optimizer state would then
    meet another parameter (measured: a shape error, or silently wrong updates
    between layers of one width)."""
    return {f"{i:04d}": p for i, p in enumerate(net.collect_params().values())}


_bce = gluon.loss.SigmoidBCELoss()  # BCE on logits, one value per example


def loss(logits, y):
    """BCE on logits, mean over the batch."""
    return _bce(logits, y).mean()


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors."""
    real_logits = D(X).reshape(-1)
    fake_logits = D(fake).reshape(-1)
    loss_D = (loss(real_logits, np.ones_like(real_logits))
              + loss(fake_logits, np.zeros_like(fake_logits))) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = D(fake).reshape(-1)
    return loss(fake_logits, np.ones_like(fake_logits))


@contextlib.contextmanager
def _frozen(net):
    """Inside, backward computes no gradients for `net`'s own weights, only
    through it: the G step needs the gradient of loss_G with respect to G's
    output, not D's weight gradients, which it would throw away (TensorFlow's
    tape is asked for G's alone). Measured on the 2-core CPU at 64x64, widths
    64, batch 64: 1.08-1.17x the step, the same losses (README, Performance)."""
    trained = [p for p in net.collect_params().values() if p.grad_req != "null"]  # not BN's statistics
    for p in trained:
        p.grad_req = "null"
    try:
        yield
    finally:
        for p in trained:
            p.grad_req = "write"


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of docs/design.md §8; returns loss_D, loss_G, d_real, d_fake as 0-d arrays.
    X and Z may also be lists of per-device shards (split_and_load, distributed.py):
    each device then runs the step on its shard, the Trainers sum the devices'
    gradients, and each metric is a list with one value per device."""
    if isinstance(X, list):
        parts = _sharded_step(G, D, opt_G, opt_D, X, Z)
        return {k: [part[k] for part in parts] for k in parts[0]}
    with autograd.record():
        fake = G(Z)
        # (1) Update D, with G's output held fixed.
        loss_D, real_logits, fake_logits = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    opt_D.step(1)  # the loss is already a batch mean: no further 1/batch scaling
    # (2) Update G through the same fake, with the updated D.
    with _frozen(D):
        with autograd.record():
            loss_G = generator_loss(D, fake)
        loss_G.backward()
    opt_G.step(1)
    return {"loss_D": loss_D, "loss_G": loss_G,
            "d_real": npx.sigmoid(real_logits).mean(), "d_fake": npx.sigmoid(fake_logits).mean()}


def _sharded_step(G, D, opt_G, opt_D, Xs, Zs):
    """train_step's two updates over per-device shards, in the same order: each
    shard's loss is its own mean, the Trainers sum over the shards, and
    step(shards) makes that the mean over the process's batch."""
    shards = len(Xs)
    with autograd.record():
        fakes = [G(Z) for Z in Zs]
        # (1) Update D, with G's output held fixed.
        parts = [discriminator_loss(D, X, fake.detach()) for X, fake in zip(Xs, fakes)]
    autograd.backward([loss_D for loss_D, _, _ in parts])
    opt_D.step(shards)
    # (2) Update G through the same fakes, with the updated D.
    with _frozen(D):
        with autograd.record():
            losses_G = [generator_loss(D, fake) for fake in fakes]
        autograd.backward(losses_G)
    opt_G.step(shards)
    return [{"loss_D": loss_D, "loss_G": loss_G,
             "d_real": npx.sigmoid(real_logits).mean(), "d_fake": npx.sigmoid(fake_logits).mean()}
            for (loss_D, real_logits, fake_logits), loss_G in zip(parts, losses_G)]


def compile_step(G, D, opt_G, opt_D, precision: str = "fp32", replicas=None):
    """train_step over these nets and optimizers, as a function of (X, Z),
    with both nets hybridized: Gluon records each net's graph once and reruns it,
    with its memory allocated once (static_alloc; README, Performance). Not
    static_shape=True: with it MXNet 1.9.1 updates batch norm's running
    statistics wrongly in some processes (it depends on PYTHONHASHSEED; found
    by tests/twins.py). float32 only for now. With several devices (replicas from
    distributed.setup) each batch is split over them and the metrics averaged."""
    if precision != "fp32":
        raise unsupported_precision("MXNet", precision)
    G.hybridize(static_alloc=True)
    D.hybridize(static_alloc=True)
    G_, D_ = (replicate(G, replicas), replicate(D, replicas)) if replicas else (G, D)
    devices = replicas.placement if replicas and replicas.devices > 1 else None

    def step(X, Z):
        if devices:
            X, Z = gluon.utils.split_and_load(X, devices), gluon.utils.split_and_load(Z, devices)
        metrics = train_step(G_, D_, opt_G, opt_D, X, Z)
        return mean_across(metrics, replicas) if replicas else metrics
    return step


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    running statistics (which Gluon updates in the backward pass)."""
    with autograd.record():
        fake = G(Z)
        loss_D, _, _ = discriminator_loss(D, X, fake.detach())
    loss_D.backward()
    grads = canonical_gradients(D, [p.grad() for _, p in parameters(D)])
    with autograd.record():
        loss_G = generator_loss(D, fake)
    loss_G.backward()
    grads.update(canonical_gradients(G, [p.grad() for _, p in parameters(G)]))
    return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}, grads


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


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    run = Run.open(config, "mx", LAYOUT, progress, callback)
    with setup(config) as replicas, replicas.scope():
        device, spec, dtype = replicas.device, config.spec, config.dtype
        G = to_device(load_canonical(build_generator(spec, dtype), init_weights(spec, config.seed, ("G",))),
                      replicas.placement)
        D = to_device(load_canonical(build_discriminator(spec, dtype), init_weights(spec, config.seed + 1, ("D",))),
                      replicas.placement)
        opt_G, opt_D = make_optimizers(G, D, *config.learning_rates)
        step = compile_step(G, D, opt_G, opt_D, config.precision, replicas)
        if run.resuming:
            run.restore(load_checkpoint, G, D, opt_G, opt_D)
        run.start(versions(), replicas.description, {"G": count_params(G), "D": count_params(D)},
                  sample=lambda Z: convert_to_numpy(forward(G, convert_to_tensor(Z, device))),
                  save_checkpoint=lambda directory: save_checkpoint(directory, G, D, opt_G, opt_D),
                  export_nets=lambda: {**export_canonical(G), **export_canonical(D)}, world=replicas.world)
        for epoch in run.epochs():
            for X, Z in run.batches(epoch):
                run.step_done(step(convert_to_tensor(X, device), convert_to_tensor(Z, device)))
            run.epoch_done()
        return run.finish()


def main(argv=None) -> int:
    return train_main("mx", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
