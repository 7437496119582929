"""Sample the PyTorch generator: python -m dcgan_torch.sample --weights generator.npz"""

from __future__ import annotations

import numpy as np
import torch

from common.sampling import sample_main
from dcgan_torch.model import LAYOUT, build_generator
from dcgan_torch.weights import load_canonical


def load_generator(spec, arrays):
    return load_canonical(build_generator(spec), arrays)


def generate(G, Z: np.ndarray) -> np.ndarray:
    """G(Z) in inference mode (BN on running statistics), as NumPy in LAYOUT
    (NCHW); Z is (num, latent, 1, 1). G's mode is restored afterwards."""
    was_training = G.training
    G.eval()
    weight = next(G.parameters())
    with torch.no_grad():
        images = G(torch.from_numpy(np.asarray(Z).reshape(len(Z), -1, 1, 1)).to(weight.device, weight.dtype))
    G.train(was_training)
    return images.cpu().numpy()


if __name__ == "__main__":
    raise SystemExit(sample_main("torch", load_generator, generate, LAYOUT))
