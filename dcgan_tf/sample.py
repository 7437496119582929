"""Sample the Keras generator: python -m dcgan_tf.sample --weights generator.npz"""

from __future__ import annotations

import numpy as np

from common.sampling import sample_main
from dcgan_tf.compat import tf
from dcgan_tf.model import LAYOUT, build_generator
from dcgan_tf.weights import load_canonical


def load_generator(spec, arrays):
    return load_canonical(build_generator(spec), arrays)


def generate(G, Z: np.ndarray) -> np.ndarray:
    """G(Z) in inference mode (BN on moving statistics), as NumPy in LAYOUT
    (NHWC); Z is (num, latent, 1, 1) or (num, 1, 1, latent): the same values."""
    Z = np.asarray(Z).reshape(len(Z), 1, 1, -1)
    return G(tf.constant(Z, dtype=G.trainable_variables[0].dtype), training=False).numpy()


if __name__ == "__main__":
    raise SystemExit(sample_main("tf", load_generator, generate, LAYOUT))
