"""Train the DCGAN in TensorFlow/Keras: the step of docs/design.md §8, the loop, main.

    python -m dcgan_tf.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_torch/train.py and dcgan_mx/train.py (the contract: docs/design.md §3).
"""

from __future__ import annotations

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig
from common.run import Run
from common.weights import init_weights
from dcgan_tf.compat import keras, tf
from dcgan_tf.core import LAYOUT, convert_to_numpy, convert_to_tensor, forward, to_device, versions
from dcgan_tf.distributed import mean_across, replicate, setup
from dcgan_tf.model import build_discriminator, build_generator, count_params
from dcgan_tf.weights import canonical_gradients, export_canonical, load_canonical, parameters


def make_optimizers(G, D, lr_G: float, lr_D: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (Keras's default is 1e-7).
    Built now, so a checkpoint can be restored into them before the first step."""
    opt_G = keras.optimizers.Adam(learning_rate=lr_G, beta_1=BETA1, beta_2=BETA2, epsilon=epsilon)
    opt_D = keras.optimizers.Adam(learning_rate=lr_D, beta_1=BETA1, beta_2=BETA2, epsilon=epsilon)
    opt_G.build(G.trainable_variables)
    opt_D.build(D.trainable_variables)
    return opt_G, opt_D


def loss(logits, y):
    """BCE on logits, mean over the batch. Keras's functional form: a
    keras.losses.BinaryCrossentropy object would compute in the float type of
    its construction, float32, even for float64 nets. Under a tf.distribute
    strategy each replica's mean is divided by the number of replicas, as
    tf.nn.compute_average_loss does: Keras's optimizers sum the replicas'
    gradients, which then are the global batch's mean."""
    mean = tf.reduce_mean(keras.losses.binary_crossentropy(y, logits, from_logits=True))
    replica = tf.distribute.get_replica_context()  # None only in a strategy's cross-replica context
    return mean / (replica.num_replicas_in_sync if replica else 1)


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors.
    training=True: without it Keras runs batch norm on its moving statistics
    (the book's TF version never passed it)."""
    real_logits = tf.reshape(D(X, training=True), (-1,))
    fake_logits = tf.reshape(D(fake, training=True), (-1,))
    loss_D = (loss(real_logits, tf.ones_like(real_logits))
              + loss(fake_logits, tf.zeros_like(fake_logits))) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = tf.reshape(D(fake, training=True), (-1,))
    return loss(fake_logits, tf.ones_like(fake_logits))


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of docs/design.md §8; returns loss_D, loss_G, d_real, d_fake as scalar tensors."""
    with tf.GradientTape() as tape_G:
        fake = G(Z, training=True)
        # (1) Update D, with G's output held fixed.
        with tf.GradientTape() as tape_D:
            loss_D, real_logits, fake_logits = discriminator_loss(D, X, tf.stop_gradient(fake))
        grads_D = tape_D.gradient(loss_D, D.trainable_variables)
        opt_D.apply_gradients(zip(grads_D, D.trainable_variables))
        # (2) Update G through the same fake, with the updated D.
        loss_G = generator_loss(D, fake)
    grads_G = tape_G.gradient(loss_G, G.trainable_variables)
    opt_G.apply_gradients(zip(grads_G, G.trainable_variables))
    return {"loss_D": loss_D, "loss_G": loss_G,
            "d_real": tf.reduce_mean(tf.sigmoid(real_logits)), "d_fake": tf.reduce_mean(tf.sigmoid(fake_logits))}


def compile_step(G, D, opt_G, opt_D, precision: str = "fp32", replicas=None):
    """train_step over these nets and optimizers, as one tf.function graph of (X, Z).
    precision "bf16" gives every layer Keras's "mixed_bfloat16" dtype policy:
    it computes in bfloat16 on its float32 weights; batch norm upcasts to
    float32 itself, and the two nets' last layers (G's tanh, D's logit conv)
    stay float32, so images, logits, losses and Adam are float32 as in fp32.
    Under a tf.distribute strategy
    (replicas from distributed.setup) each replica runs train_step on its
    contiguous part of the batch (strategy.run), and the metrics are reduced
    over the replicas. autograph=False: the step has no Python control flow
    on tensors to convert, and converting it cost 0.3 of the 1 s first call."""
    if precision == "bf16":
        _mixed_bfloat16(G)
        _mixed_bfloat16(D)
    if replicas is None or replicas.engine is None:
        @tf.function(autograph=False)
        def step(X, Z):
            return train_step(G, D, opt_G, opt_D, X, Z)
        return step
    G_, D_ = replicate(G, replicas), replicate(D, replicas)
    strategy, local, first = replicas.engine, replicas.devices, replicas.world.rank * replicas.devices

    def replica_step(X, Z):
        i = tf.distribute.get_replica_context().replica_id_in_sync_group - first  # this worker's i-th device
        b = tf.shape(X)[0] // local
        return train_step(G_, D_, opt_G, opt_D, X[i * b:(i + 1) * b], Z[i * b:(i + 1) * b])

    @tf.function(autograph=False)
    def step(X, Z):
        return mean_across(strategy.run(replica_step, args=(X, Z)), replicas)
    return step


def _mixed_bfloat16(net) -> None:
    """Keras's mixed precision on a built net: every layer, the blocks' own
    layers included, computes in bfloat16; the last stays float32."""
    for layer in net._flatten_layers(include_self=False):
        layer.dtype_policy = "mixed_bfloat16"
    net.layers[-1].dtype_policy = "float32"


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    moving statistics."""
    with tf.GradientTape(persistent=True) as tape:
        fake = G(Z, training=True)
        loss_D, _, _ = discriminator_loss(D, X, tf.stop_gradient(fake))
        loss_G = generator_loss(D, fake)
    grads_D = tape.gradient(loss_D, [v for _, v in parameters(D)])
    grads_G = tape.gradient(loss_G, [v for _, v in parameters(G)])
    return ({"loss_D": float(loss_D), "loss_G": float(loss_G)},
            {**canonical_gradients(D, grads_D), **canonical_gradients(G, grads_G)})


def save_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    tf.train.Checkpoint(G=G, D=D, opt_G=opt_G, opt_D=opt_D).write(str(directory / "tf_state"))


def load_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    tf.train.Checkpoint(G=G, D=D, opt_G=opt_G, opt_D=opt_D).read(str(directory / "tf_state")).assert_consumed()


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    run = Run.open(config, "tf", LAYOUT, progress, callback)
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
    return train_main("tf", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
