"""Train the DCGAN in TensorFlow/Keras: the canonical step of DESIGN §6, the loop, main.

    python -m dcgan_tf.train --data shapes --image-size 32 --epochs 5

The same steps, in the same order and under the same names, are in
dcgan_torch/train.py and dcgan_mx/train.py.
"""

from __future__ import annotations

from common.cli import train_main
from common.config import ADAM_EPSILON, BETA1, BETA2, TrainConfig
from common.errors import UsageError
from common.run import Run
from dcgan_tf.compat import keras, tf
from dcgan_tf.model import LAYOUT, build_discriminator, build_generator, count_params
from dcgan_tf.sample import generate
from dcgan_tf.weights import export_canonical, parameters, to_canonical


def pick_device(choice: str) -> str:
    """auto: the first GPU if there is one, else the CPU."""
    gpus = tf.config.list_logical_devices("GPU")
    if choice == "gpu" and not gpus:
        raise UsageError("--device gpu: TensorFlow sees no GPU")
    return gpus[0].name if choice != "cpu" and gpus else "/device:CPU:0"


def describe_device(device: str) -> str:
    return device


def make_optimizers(G, D, lr: float, epsilon: float = ADAM_EPSILON):
    """Adam with the DCGAN betas; epsilon set explicitly (Keras's default is 1e-7).
    Built now, so a checkpoint can be restored into them before the first step."""
    opt_G = keras.optimizers.Adam(learning_rate=lr, beta_1=BETA1, beta_2=BETA2, epsilon=epsilon)
    opt_D = keras.optimizers.Adam(learning_rate=lr, beta_1=BETA1, beta_2=BETA2, epsilon=epsilon)
    opt_G.build(G.trainable_variables)
    opt_D.build(D.trainable_variables)
    return opt_G, opt_D


def loss(y, logits):
    """BCE on logits, mean over the batch. Keras's functional form: a
    keras.losses.BinaryCrossentropy object would compute in the float type of
    its construction, float32, even for float64 nets."""
    return tf.reduce_mean(keras.losses.binary_crossentropy(y, logits, from_logits=True))


def discriminator_loss(D, X, fake):
    """1/2 [BCE(D(X), 1) + BCE(D(fake), 0)], real and fake in separate passes
    (separate batch statistics); also returns the two logit vectors.
    training=True: without it Keras runs batch norm on its moving statistics
    (the book's TF version never passed it)."""
    real_logits = tf.reshape(D(X, training=True), (-1, 1))
    fake_logits = tf.reshape(D(fake, training=True), (-1, 1))
    loss_D = (loss(tf.ones_like(real_logits), real_logits)
              + loss(tf.zeros_like(fake_logits), fake_logits)) / 2
    return loss_D, real_logits, fake_logits


def generator_loss(D, fake):
    """BCE(D(fake), 1): G is rewarded when D calls its images real."""
    fake_logits = tf.reshape(D(fake, training=True), (-1, 1))
    return loss(tf.ones_like(fake_logits), fake_logits)


def train_step(G, D, opt_G, opt_D, X, Z):
    """One step of DESIGN §6; returns loss_D, loss_G, d_real, d_fake as scalar tensors."""
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


def losses_and_gradients(G, D, X, Z):
    """What the step computes before it updates anything: the losses, and the
    gradients of loss_D with respect to D and of loss_G with respect to G,
    keyed canonically. For the parity checks; nothing is updated but BN's
    moving statistics."""
    keys_D, vars_D = zip(*parameters(D))
    keys_G, vars_G = zip(*parameters(G))
    with tf.GradientTape(persistent=True) as tape:
        fake = G(Z, training=True)
        loss_D, _, _ = discriminator_loss(D, X, tf.stop_gradient(fake))
        loss_G = generator_loss(D, fake)
    grads = dict(zip(keys_D, tape.gradient(loss_D, vars_D)))
    grads.update(zip(keys_G, tape.gradient(loss_G, vars_G)))
    return ({"loss_D": float(loss_D), "loss_G": float(loss_G)},
            {k: to_canonical(k, g.numpy()) for k, g in grads.items()})


def compile_step(G, D, opt_G, opt_D):
    """train_step as one tf.function graph over these nets and optimizers."""
    @tf.function
    def step(X, Z):
        return train_step(G, D, opt_G, opt_D, X, Z)
    return step


def save_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    tf.train.Checkpoint(G=G, D=D, opt_G=opt_G, opt_D=opt_D).write(str(directory / "tf_state"))


def load_checkpoint(directory, G, D, opt_G, opt_D) -> None:
    tf.train.Checkpoint(G=G, D=D, opt_G=opt_G, opt_D=opt_D).read(str(directory / "tf_state")).assert_consumed()


def versions() -> dict:
    return {"tensorflow": tf.__version__, "keras": keras.__version__}


def train(config: TrainConfig, progress=None, callback=None) -> dict:
    """Train as `config` says; callback(epoch, metrics, samples) runs at every epoch end."""
    device = pick_device(config.device)
    with tf.device(device):
        G = build_generator(config.spec, config.seed, config.dtype)
        D = build_discriminator(config.spec, config.seed + 1, config.dtype)
        run = Run.open(config, "tf", versions(), describe_device(device),
                       {"G": count_params(G), "D": count_params(D)}, progress, callback=callback)
        opt_G, opt_D = make_optimizers(G, D, config.lr)
        if run.resuming:
            load_checkpoint(run.checkpoint_dir, G, D, opt_G, opt_D)
        step = compile_step(G, D, opt_G, opt_D)
        fixed_Z = run.fixed_noise(LAYOUT)
        for epoch in run.epochs():
            for X, Z in run.batches(epoch, LAYOUT):
                run.step_done(step(tf.constant(X), tf.constant(Z)))
            run.epoch_done(generate(G, fixed_Z), LAYOUT,
                           lambda d: save_checkpoint(d, G, D, opt_G, opt_D), export_canonical(G))
    return run.finish()


def main(argv=None) -> int:
    return train_main("tf", train, argv)


if __name__ == "__main__":
    raise SystemExit(main())
