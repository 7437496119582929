"""`python -m dcgan_<fw>.sample`: images from any framework's generator.npz,
written once for every backend over its adapter (common.backends).

    --weights generator.npz --num 64 --seed 0 --out grid.png [--npy samples.npy] [--interpolate 8]

Z comes from one NumPy generator seeded by --seed, so the same weights and
seed give the same images in every framework. --interpolate N draws --num
walks through latent space, each N images from one random point to another
(the paper's figure 4); the grid then has one walk per row.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from common.backends import Backend, load
from common.cli import ArgumentParser, run_cli
from common.errors import UsageError
from common.files import atomic_write
from common.viz import save_grid, to_uint8
from common.weights import load_weights


def sample_noise(seed: int, num: int, latent_dim: int) -> np.ndarray:
    """Z ~ N(0, 1), NCHW (num, latent, 1, 1)."""
    return np.random.default_rng(seed).standard_normal((num, latent_dim), np.float32).reshape(num, latent_dim, 1, 1)


def interpolation_noise(seed: int, walks: int, steps: int, latent_dim: int) -> np.ndarray:
    """`walks` straight lines between pairs of random points, `steps` points each, NCHW."""
    ends = np.random.default_rng(seed).standard_normal((2, walks, latent_dim), np.float32)
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    Z = (1 - t) * ends[0][:, None] + t * ends[1][:, None]  # (walks, steps, latent)
    return Z.reshape(walks * steps, latent_dim, 1, 1)


def generate(backend: Backend, G, Z: np.ndarray) -> np.ndarray:
    """G(Z) in inference mode (BN on running statistics), NCHW NumPy in [-1, 1]; Z is (num, latent, 1, 1)."""
    return backend.forward(G, np.asarray(Z, np.float32).reshape(len(Z), -1, 1, 1))


def sample_main(framework: str, argv=None) -> int:
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.sample",
                            description=f"Sample the {framework} backend's G from canonical weights.")
    parser.add_argument("--weights", required=True, help="a canonical generator.npz (any framework's)")
    parser.add_argument("--num", type=int, default=64, help="images (with --interpolate: walks); default 64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="grid.png", help="grid PNG to write (default grid.png)")
    parser.add_argument("--npy", help="also write the images as float32 NCHW in [-1, 1]")
    parser.add_argument("--interpolate", type=int, metavar="N", help="latent walks of N images each")

    def main(argv):
        args = parser.parse_args(argv)
        if args.num < 1:
            raise UsageError(f"--num must be >= 1, got {args.num}")
        if args.seed < 0:
            raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
        if args.interpolate is not None and args.interpolate < 2:
            raise UsageError(f"--interpolate needs at least 2 steps, got {args.interpolate}")
        arrays, spec = load_weights(args.weights, nets=("G",))
        if args.interpolate:
            Z, rows, cols = interpolation_noise(args.seed, args.num, args.interpolate, spec.latent_dim), args.num, args.interpolate
        else:
            cols = math.ceil(math.sqrt(args.num))
            Z, rows = sample_noise(args.seed, args.num, spec.latent_dim), math.ceil(args.num / cols)
        backend = load(framework)
        images = generate(backend, backend.generator(spec, arrays), Z)  # NCHW in [-1, 1]
        save_grid(to_uint8(images, "NCHW"), rows, cols, args.out, scale=max(1, 64 // spec.image_size))
        if args.npy:
            save_npy(args.npy, images.astype(np.float32))
        print(f"{len(images)} images from {args.weights} ({framework}) -> {args.out}"
              + (f", {args.npy}" if args.npy else ""))
        return 0

    return run_cli(parser.prog, main, argv)


def save_npy(path, array: np.ndarray) -> Path:
    with atomic_write(path) as f:
        np.save(f, array)
    return Path(path)
