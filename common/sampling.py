"""`python -m dcgan_<fw>.sample`: images from any framework's generator.npz,
written once for every backend over its adapter (common.backends).

    --weights generator.npz [--num 64] [--seed 0] [--out grid.png] [--npy samples.npy]
                            [--truncate S]
                            [--interpolate N [--slerp] [--gif walk.gif [--gif-ms 100]]]

Z comes from one NumPy generator seeded by --seed, so the same weights and
seed give the same images in every framework (to 1e-4), whatever the flags.

--num N        images in a near-square grid (with --interpolate: N walks).
--npy PATH     also the images, float32 NCHW in [-1, 1].
--truncate S   Z from a truncated normal, every |z| <= S (S > 0): each value
               of the ordinary draw outside [-S, S] is replaced by a draw from
               N(0, 1) conditioned on |z| <= S, taken from the same generator;
               values inside are kept, so a large S changes nothing. Smaller S
               trades variety for typical, cleaner images (BigGAN's
               "truncation trick"). With --interpolate it applies to the
               walks' end points.
--interpolate N
               --num walks through latent space, each N images from one random
               point to another (the paper's figure 4); the grid has one walk a
               row. The path is a straight line (lerp) unless --slerp.
--slerp        the walk follows the great circle between the two ends
               (spherical interpolation): a Gaussian latent's norm stays near
               the ends' (about sqrt(latent size)), where a straight line
               dips through the low-norm middle G never saw in training (to
               about 0.7x halfway, in 100 dimensions).
--gif PATH     (needs --interpolate) an animation of the walks: frame i is
               every walk's step i, the walks laid out as --num images are,
               played there and back so the loop is seamless (2N - 2 frames);
               --gif-ms, milliseconds a frame (default 100, at least 20).

Every file is written atomically; --out, --npy and --gif must differ. Bad
input is one line and exit status 2, before anything is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import numpy as np

from common.backends import Backend, load
from common.cli import ArgumentParser, run_cli, seed as cli_seed
from common.errors import UsageError
from common.files import atomic_write
from common.viz import MIN_FRAME_MS, ping_pong, save_gif, save_grid, scaled_grid, to_uint8
from common.weights import load_weights

SLERP_PARALLEL = 0.9995  # cosine above which the ends count as parallel and slerp falls back to lerp


# -- Z ------------------------------------------------------------------------------

def standard_normal(rng: np.random.Generator, shape, truncate: float | None = None) -> np.ndarray:
    """float32 N(0, 1) of `shape` from `rng`; with `truncate` S, every |z| <= S.

    The values are the untruncated draw's, except that each one outside
    [-S, S] is replaced, in order, by a draw from N(0, 1) conditioned on
    |z| <= S: the inverse normal CDF of a uniform from the same `rng`, which is
    what redrawing until it falls inside gives, in one pass at any S. So a
    seed gives the same Z everywhere, and an S no value reaches gives the
    untruncated Z exactly."""
    z = rng.standard_normal(shape, np.float32)
    if truncate is None:
        return z
    if not (math.isfinite(truncate) and truncate > 0):
        raise UsageError(f"--truncate must be a finite number > 0, got {truncate}")
    bound = np.float32(truncate)
    if bound > truncate:  # the float32 nearest S may lie above it: stay inside
        bound = np.nextafter(bound, np.float32(0))
    outside = np.abs(z) > bound
    if outside.any():
        normal = NormalDist()
        lo, hi = normal.cdf(-float(bound)), normal.cdf(float(bound))
        u = lo + (hi - lo) * rng.random(int(outside.sum()))
        u = np.clip(u, math.ulp(0.0), 1 - 2 ** -53)  # inv_cdf wants 0 < u < 1
        z[outside] = np.clip(np.array([normal.inv_cdf(x) for x in u]), -bound, bound).astype(np.float32)
    return z


def sample_noise(seed: int, num: int, latent_dim: int, truncate: float | None = None) -> np.ndarray:
    """Z ~ N(0, 1) (truncated to |z| <= truncate if given), NCHW (num, latent, 1, 1)."""
    rng = np.random.default_rng(seed)
    return standard_normal(rng, (num, latent_dim), truncate).reshape(num, latent_dim, 1, 1)


def lerp(p0: np.ndarray, p1: np.ndarray, t) -> np.ndarray:
    """Straight lines: p0, p1 (..., D), t (S,) -> (..., S, D), in p0's dtype."""
    t = np.asarray(t, p0.dtype)[:, None]
    return (1 - t) * p0[..., None, :] + t * p1[..., None, :]


def slerp(p0: np.ndarray, p1: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation: p0, p1 (..., D), t (S,) -> (..., S, D), in p0's dtype.

    sin((1 - t) W) / sin W * p0 + sin(t W) / sin W * p1, W the angle between
    p0 and p1 (Shoemake's formula, as White's "Sampling Generative Networks"
    uses it on latents): for ends of equal norm, the great circle from p0 to
    p1 in equal steps of angle, at their norm throughout; for Gaussian ends
    (norms within some 10% of each other) nearly so. Ends closer to parallel than
    SLERP_PARALLEL (or opposite, or zero) fall back to lerp, where the formula
    divides by ~0 and the two paths agree anyway."""
    a, b = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(a * b, axis=-1, keepdims=True) / (na * nb)
    degenerate = ~(np.abs(cos) < SLERP_PARALLEL)  # also a zero end (cos nan)
    omega = np.arccos(np.where(degenerate, 0.0, cos))[..., None, :]  # (..., 1, 1)
    sin = np.where(degenerate[..., None, :], 1.0, np.sin(omega))
    tt = np.asarray(t, np.float64)[:, None]  # (S, 1)
    w0, w1 = np.sin((1 - tt) * omega) / sin, np.sin(tt * omega) / sin
    path = w0 * a[..., None, :] + w1 * b[..., None, :]
    path = np.where(degenerate[..., None, :], lerp(a, b, tt[:, 0]), path)
    return path.astype(np.asarray(p0).dtype)


def interpolation_noise(seed: int, walks: int, steps: int, latent_dim: int, spherical: bool = False,
                        truncate: float | None = None) -> np.ndarray:
    """`walks` paths between pairs of random points, `steps` points each, walk by
    walk, NCHW (walks * steps, latent, 1, 1): straight lines, or great circles
    if `spherical`; `truncate` bounds the end points."""
    ends = standard_normal(np.random.default_rng(seed), (2, walks, latent_dim), truncate)
    t = np.linspace(0, 1, steps, dtype=np.float32)
    Z = (slerp if spherical else lerp)(ends[0], ends[1], t)  # (walks, steps, latent)
    return Z.reshape(walks * steps, latent_dim, 1, 1)


def generate(backend: Backend, G, Z: np.ndarray) -> np.ndarray:
    """G(Z) in inference mode (BN on running statistics), NCHW NumPy in [-1, 1]; Z is (num, latent, 1, 1)."""
    return backend.forward(G, np.asarray(Z, np.float32).reshape(len(Z), -1, 1, 1))


# -- pictures -----------------------------------------------------------------------

def grid_shape(num: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid of `num` images."""
    cols = math.ceil(math.sqrt(num))
    return math.ceil(num / cols), cols


def walk_frames(images: np.ndarray, walks: int, steps: int, scale: int = 1) -> list[np.ndarray]:
    """uint8 NHWC images of `walks` walks, walk by walk -> `steps` grids, the i-th
    holding every walk's step i (laid out as grid_shape(walks))."""
    by_step = images.reshape(walks, steps, *images.shape[1:]).swapaxes(0, 1)
    rows, cols = grid_shape(walks)
    return [scaled_grid(step, rows, cols, scale) for step in by_step]


def save_npy(path, array: np.ndarray) -> Path:
    with atomic_write(path) as f:
        np.save(f, array)
    return Path(path)


# -- the command --------------------------------------------------------------------

def check_args(args) -> None:
    """Every flag's rule, before anything is read or written (UsageError)."""
    if args.num < 1:
        raise UsageError(f"--num must be >= 1, got {args.num}")
    if args.truncate is not None and not (math.isfinite(args.truncate) and args.truncate > 0):
        raise UsageError(f"--truncate must be a finite number > 0, got {args.truncate}")
    if args.interpolate is not None and args.interpolate < 2:
        raise UsageError(f"--interpolate needs at least 2 steps, got {args.interpolate}")
    for flag, given in (("--slerp", args.slerp), ("--gif", args.gif is not None)):
        if given and args.interpolate is None:
            raise UsageError(f"{flag} needs --interpolate N (the walks it {'bends' if flag == '--slerp' else 'plays'})")
    if args.gif_ms is not None:
        if args.gif is None:
            raise UsageError("--gif-ms is read only with --gif")
        if args.gif_ms < MIN_FRAME_MS:
            raise UsageError(f"--gif-ms must be >= {MIN_FRAME_MS} (browsers play shorter frames at 100 ms), "
                             f"got {args.gif_ms}")
    outputs = [(flag, path) for flag, path in (("--out", args.out), ("--npy", args.npy), ("--gif", args.gif)) if path]
    for i, (flag, path) in enumerate(outputs):
        if Path(path).is_dir():
            raise UsageError(f"{flag} {path} is a directory; name a file")
        for other, other_path in outputs[:i]:
            if Path(path).resolve() == Path(other_path).resolve():
                raise UsageError(f"{other} and {flag} name the same file ({path})")
        if Path(path).resolve() == Path(args.weights).resolve():
            raise UsageError(f"{flag} {path} is the --weights file")


def sample_main(framework: str, argv=None) -> int:
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.sample",
                            description=f"Sample the {framework} backend's G from canonical weights.")
    parser.add_argument("--weights", required=True, help="a canonical generator.npz (any framework's)")
    parser.add_argument("--num", type=int, default=64, help="images (with --interpolate: walks); default 64")
    parser.add_argument("--seed", type=cli_seed, default=0)
    parser.add_argument("--out", default="grid.png", help="grid PNG to write (default grid.png)")
    parser.add_argument("--npy", help="also write the images as float32 NCHW in [-1, 1]")
    parser.add_argument("--truncate", type=float, metavar="S",
                        help="Z from a normal truncated to |z| <= S (S > 0): less variety, more typical images")
    walk = parser.add_argument_group("latent walks")
    walk.add_argument("--interpolate", type=int, metavar="N", help="latent walks of N images each")
    walk.add_argument("--slerp", action="store_true",
                      help="walk along the great circle between the ends (spherical), not the straight line")
    walk.add_argument("--gif", metavar="PATH", help="also write the walks as an animation, there and back")
    walk.add_argument("--gif-ms", type=int, metavar="MS", help="milliseconds a GIF frame (default 100)")

    def main(argv):
        args = parser.parse_args(argv)
        check_args(args)
        arrays, spec = load_weights(args.weights, nets=("G",))
        if args.interpolate:
            Z = interpolation_noise(args.seed, args.num, args.interpolate, spec.latent_dim, args.slerp, args.truncate)
            rows, cols = args.num, args.interpolate
        else:
            Z, (rows, cols) = sample_noise(args.seed, args.num, spec.latent_dim, args.truncate), grid_shape(args.num)
        backend = load(framework)
        images = generate(backend, backend.generator(spec, arrays), Z)  # NCHW in [-1, 1]
        pixels, scale = to_uint8(images, "NCHW"), max(1, 64 // spec.image_size)
        save_grid(pixels, rows, cols, args.out, scale=scale)
        written = [args.out]
        if args.npy:
            written.append(save_npy(args.npy, images.astype(np.float32)))
        if args.gif:
            frames = ping_pong(walk_frames(pixels, args.num, args.interpolate, scale))
            written.append(save_gif(frames, args.gif, args.gif_ms or 100))
        print(f"{len(images)} images from {args.weights} ({framework}) -> {', '.join(map(str, written))}")
        return 0

    return run_cli(parser.prog, main, argv)
