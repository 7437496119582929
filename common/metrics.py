"""Image-quality metrics in NumPy alone: no deep-learning framework, no download.

    as_float_nhwc(images)              the one input convention, below
    swd(real, fake, seed=0)            multi-scale sliced Wasserstein distance (Karras et al. 2018)
    frechet_distance(mu1, s1, mu2, s2) the Fréchet distance between two Gaussians
    feature_fd(a, b)                   ... between two sets of feature vectors
    kid(a, b)                          kernel inception distance (Binkowski et al. 2018) on features
    load_judge(image_size, channels)   a small NumPy classifier of the built-in `shapes`, cached;
                                       Judge.report(images) -> recognised share, kinds, colours, FD

    python -m common.metrics swd   --fake samples.npy|generator.npz [--data shapes] [--image-size 32]
    python -m common.metrics judge --fake samples.npy|generator.npz [--image-size 32]
    python -m common.metrics fid   --fake ... --inception-weights pt_inception-2015-12-05-6726825d.pth

Input convention (every function here that takes images):
    * uint8 images are 0..255; float images (any float dtype) are a generator's
      tanh output, taken to be in [-1, 1] and clipped to it, as the reference
      SWD code's conversion of fakes to uint8 clips them;
    * the layout is inferred: a last axis of size 1 or 3 means NHWC, else an
      axis 1 of size 1 or 3 means NCHW; anything else is a ValueError;
    * 1 or 3 channels; always a batch (4 dimensions).
So `dcgan_<fw>.sample --npy` output (float32 NCHW), TensorFlow's NHWC batches
and `load_images` (uint8 NHWC) can all be passed as they are; the same images
in any of these forms give the same values (to float32 rounding).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from common.data import (COLOUR_NAMES, PALETTE, SHAPE_KINDS, SHAPES_VERSION, cache_dir, make_shapes, palette,
                         shape_colours)
from common.errors import DataError, UsageError
from common.files import atomic_write


# -- the input convention ---------------------------------------------------------------

def image_layout(shape) -> str:
    """'NHWC' or 'NCHW' for a 4-d image batch shape, by the rule in the module docstring."""
    if len(shape) != 4:
        raise ValueError(f"images must be a 4-d batch (N, H, W, C) or (N, C, H, W), got shape {tuple(shape)}")
    if shape[-1] in (1, 3):
        return "NHWC"
    if shape[1] in (1, 3):
        return "NCHW"
    raise ValueError(f"cannot tell the layout of images of shape {tuple(shape)}: neither the last axis "
                     f"(NHWC) nor axis 1 (NCHW) has 1 or 3 channels")


def as_float_nhwc(images) -> np.ndarray:
    """uint8 (0..255) or float ([-1, 1]) images, NHWC or NCHW -> float32 NHWC in [0, 1]."""
    images = np.asarray(images)
    layout = image_layout(images.shape)
    if images.dtype == np.uint8:
        out = images.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(images.dtype, np.floating):
        out = images.astype(np.float32)
        if not np.isfinite(out).all():
            raise ValueError("images contain NaN or infinity")
        out = np.clip((out + np.float32(1.0)) * np.float32(0.5), 0.0, 1.0)
    else:
        raise ValueError(f"images must be uint8 (0..255) or float ([-1, 1]), got {images.dtype}")
    if layout == "NCHW":
        out = out.transpose(0, 2, 3, 1)
    if len(out) == 0:
        raise ValueError("no images")
    return np.ascontiguousarray(out)


# -- multi-scale sliced Wasserstein distance -----------------------------------------------
#
# After Karras et al., "Progressive Growing of GANs" (2018), metrics/sliced_wasserstein.py of
# their code: a Laplacian pyramid from full resolution down to 16x16; at each level 128 random
# 7x7 neighbourhoods per image, each set's descriptors normalised per channel by that set's own
# mean and standard deviation (as the reference does); then 4 repeats of 128 random unit
# directions, the 1-d Wasserstein-1 distance of the projections, averaged, times 1e3.
#
# The one departure, for speed: the 1-d distances are computed from 4096-bin histograms over each
# direction's range instead of by sorting (exact=True sorts). Measured against sorting, the
# difference is below 0.1% per level (1e-4 on the mean of 512 vs 512 shapes at 32x32); sorting
# 65,536 projections per direction takes 5-10x longer with NumPy 1.26 on a core without AVX-512.

_BLUR = np.float32([1, 4, 6, 4, 1]) / np.float32(16)  # the 5x5 binomial of cv2.pyrDown, separable


def _blur_axis(x: np.ndarray, axis: int, step: int = 1) -> np.ndarray:
    """The 5-tap binomial along `axis` (1 or 2 of NHWC), mirrored at the edges (cv2's
    BORDER_REFLECT_101, scipy's 'mirror'), keeping every `step`-th output."""
    pad = [(0, 0)] * 4
    pad[axis] = (2, 2)
    p = np.pad(x, pad, mode="reflect")
    n = x.shape[axis]

    def tap(k):
        index = [slice(None)] * 4
        index[axis] = slice(k, k + n, step)
        return p[tuple(index)]

    return (tap(0) + tap(4)) * _BLUR[0] + (tap(1) + tap(3)) * _BLUR[1] + tap(2) * _BLUR[2]


def _pyr_down(x: np.ndarray) -> np.ndarray:
    return _blur_axis(_blur_axis(x, 1, 2), 2, 2)


def _up_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """Double `axis` as cv2.pyrUp does along it (zeros between samples, the binomial times 2,
    mirrored edges), computed per output phase: even outputs (x[k-1] + 6 x[k] + x[k+1]) / 8,
    odd ones (x[k] + x[k+1]) / 2, where the mirror makes x[-1] = x[1] and x[n] = x[n-1]."""
    n = x.shape[axis]
    take = lambda a, b: x[(slice(None),) * axis + (slice(a, b),)]
    prev = np.concatenate([take(1, 2) if n > 1 else take(0, 1), take(0, n - 1)], axis=axis)
    nxt = np.concatenate([take(1, n), take(n - 1, n)], axis=axis)
    even = (prev + nxt + x * np.float32(6)) * np.float32(0.125)
    odd = (x + nxt) * np.float32(0.5)
    return np.stack([even, odd], axis=axis + 1).reshape(x.shape[:axis] + (2 * n,) + x.shape[axis + 1:])


def _pyr_up(x: np.ndarray, shape) -> np.ndarray:
    return _up_axis(_up_axis(x, 1), 2)[:, :shape[1], :shape[2]]


def swd_resolutions(image_size: int, min_resolution: int = 16) -> list[int]:
    """The pyramid's levels: 64 -> [64, 32, 16]; 32 -> [32, 16]; 16 -> [16]."""
    levels, res = [], image_size
    while res >= min_resolution:
        levels.append(res)
        if res % 2:
            break
        res //= 2
    return levels


def laplacian_pyramid(images: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """float32 NHWC -> [band-pass levels..., the low-pass residual], finest first."""
    pyramid = [np.asarray(images, np.float32)]
    for _ in range(1, num_levels):
        low = _pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - _pyr_up(low, pyramid[-1].shape)
        pyramid.append(low)
    return pyramid


def _descriptors(level: np.ndarray, per_image: int, size: int, rng) -> np.ndarray:
    """`per_image` random size x size neighbourhoods of each image (wholly inside it), each set
    normalised per channel by its own mean and std -> float32 (N * per_image, C * size * size),
    components in the reference's (channel, y, x) order."""
    n, h, w, c = level.shape
    half = size // 2
    count = n * per_image
    img = np.repeat(np.arange(n), per_image)
    y = rng.integers(half, h - half, count) - half
    x = rng.integers(half, w - half, count) - half
    nchw = np.ascontiguousarray(level.transpose(0, 3, 1, 2))
    windows = np.lib.stride_tricks.sliding_window_view(nchw, (size, size), axis=(2, 3))  # n, c, h', w', s, s
    desc = np.empty((count, c, size, size), np.float32)
    for ch in range(c):  # one channel at a time: contiguous rows of `size` values, the fastest gather
        desc[:, ch] = windows[img, ch, y, x]
    desc = desc.reshape(count, -1)
    values = count * size * size
    mean = desc.sum(axis=0, dtype=np.float64).reshape(c, -1).sum(axis=1) / values
    square = np.einsum("ij,ij->j", desc, desc, dtype=np.float64).reshape(c, -1).sum(axis=1) / values
    std = np.sqrt(np.maximum(square - mean * mean, 0.0))
    desc -= np.repeat(mean, size * size).astype(np.float32)
    desc *= np.repeat(1.0 / np.maximum(std, 1e-8), size * size).astype(np.float32)
    return desc


def _project(desc: np.ndarray, dirs_t: np.ndarray, out: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """out (dirs, N) = dirs_t @ desc.T, one direction per row (contiguous, for the histograms),
    in blocks of descriptors (much faster in BLAS than one tall product)."""
    for i in range(0, len(desc), chunk):
        np.matmul(dirs_t, desc[i:i + chunk].T, out=out[:, i:i + chunk])
    return out


class _SlicedWasserstein:
    """W1 between the projections of one fixed (real) set of descriptors and any other set's, on
    each of a set of directions (the columns of dirs).

    Histogram method. The fixed side is projected once: per direction its range [lo, hi] and
    its cumulative histogram over `bins` bins spanning the range (positions rounded to the
    bin). The other set's projections are counted into the same bins; what falls outside the
    range adds its exact distance to the range's edge (there the fixed side's CDF is 0 or 1),
    so W1 = sum over bins of |F_a - F_b| times the bin's width, plus those tails."""

    def __init__(self, da: np.ndarray, dirs: np.ndarray, buffers: dict, bins: int = 4096):
        self.dirs_t, self.bins = np.ascontiguousarray(dirs.T), bins
        self.buffers = buffers  # work arrays, shared by every direction set of one SWD
        pa = _project(da, self.dirs_t, self._buffer("p", (len(self.dirs_t), len(da)), np.float32))
        self.lo, self.hi = pa.min(axis=1), pa.max(axis=1)
        # A direction on which every real projection is the same (blank images) still gets bins.
        self.width = np.maximum(self.hi - self.lo, np.float32(1e-6)) / np.float32(bins - 1)
        self.cdf, _ = self._counts(pa)

    def _buffer(self, name, shape, dtype):
        buf = self.buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self.buffers[name] = np.empty(shape, dtype)
        return buf

    def _counts(self, p: np.ndarray):
        """Counts the rows of p (overwritten) into the bins: (cdf, tails). cdf (dirs, bins), the
        share at or below each bin; tails (dirs,), the summed distance to the range's edge of
        the values outside it, in bins. Row i's bins are i * bins + k, k = 0 .. bins - 1."""
        ndirs, bins = len(p), self.bins
        scale = np.float32(1) / self.width
        first = np.arange(ndirs, dtype=np.float32)[:, None] * np.float32(bins)
        p *= scale[:, None]
        p += (first - (self.lo * scale)[:, None]) + np.float32(0.5)  # the range: [first + 0.5, first + bins - 0.5]
        total = lambda: p.sum(axis=1, dtype=np.float64)
        before = total()
        np.minimum(p, first + np.float32(bins - 0.5), out=p)
        clipped_high = total()
        np.maximum(p, first + np.float32(0.5), out=p)
        tails = (before - clipped_high) + (total() - clipped_high)
        index = self._buffer("index", p.shape, np.intp)
        np.copyto(index, p, casting="unsafe")  # truncation = floor: first + k for k = 0 .. bins - 1
        counts = np.bincount(index.ravel(), minlength=ndirs * bins).reshape(ndirs, bins)
        return np.cumsum(counts, axis=1) / np.float64(p.shape[1]), tails

    def distances(self, db: np.ndarray) -> np.ndarray:
        """W1 on each direction between the fixed set and `db` (descriptors, any number)."""
        pb = _project(db, self.dirs_t, self._buffer("p", (len(self.dirs_t), len(db)), np.float32))
        cdf, tails = self._counts(pb)
        width = self.width.astype(np.float64)
        return (np.abs(self.cdf - cdf).sum(axis=1) + tails / len(db)) * width


def _sorted_distances(da: np.ndarray, db: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """W1 on each direction by sorting both sets' projections, as the reference does (equal sizes)."""
    if len(da) != len(db):
        raise ValueError("exact=True needs the same number of descriptors on both sides")
    dirs_t = np.ascontiguousarray(dirs.T)
    pa = _project(da, dirs_t, np.empty((len(dirs_t), len(da)), np.float32))
    pb = _project(db, dirs_t, np.empty((len(dirs_t), len(db)), np.float32))
    return np.abs(np.sort(pa, axis=1) - np.sort(pb, axis=1)).mean(axis=1, dtype=np.float64)


def swd(real, fake, seed: int = 0, **params) -> dict:
    """Multi-scale sliced Wasserstein distance between two sets of images (x 1e3, lower is better).

    Returns {"swd": mean over levels, "levels": {resolution: value}}. Deterministic in `seed`
    (patch positions and directions); the two sets may differ in size, not in H, W or C.
    `params`: those of SWD below.
    """
    return SWD(real, seed, **params)(fake)


class SWD:
    """The SWD of any set of fakes against one fixed set of real images: the real side (its
    Laplacian pyramid, neighbourhoods, directions, and its projections on them, kept as
    histograms) is computed once, so a training run that measures itself every epoch pays for
    the fakes only (common.quality.Evaluator). Measured at 32x32, 512 vs 512 on one core: 0.84 s
    a call, against 1.33 s when the real side was projected again in each call; the values
    agree to 3e-4 (relative), as both agree with sorting (exact=True).

    Karras et al.'s code projects on 4 x 128 directions; 4 x 64 here. Measured on 512 vs 512
    shapes at 64x64 over 6 seeds: the same mean (14.97 vs 14.94 real vs real, 151.0 vs 151.2
    against noise), a spread of 0.24 vs 0.21, and 1.5 s instead of 2.4 s on one core (before the
    real side was kept as histograms). Fewer neighbourhoods per image would cost the same time
    but bias the value (16.7 at 64 per image).
    """

    def __init__(self, real, seed: int = 0, *, nhoods_per_image: int = 128, nhood_size: int = 7,
                 dir_repeats: int = 4, dirs_per_repeat: int = 64, min_resolution: int = 16, exact: bool = False):
        a = as_float_nhwc(real)
        if min(a.shape[1:3]) < max(min_resolution, nhood_size):
            raise ValueError(f"images must be at least {max(min_resolution, nhood_size)} pixels a side, "
                             f"got {a.shape[1]}x{a.shape[2]}")
        self.shape, self.seed = a.shape[1:], seed
        self.nhoods_per_image, self.nhood_size = nhoods_per_image, nhood_size
        self.resolutions = swd_resolutions(min(a.shape[1:3]), min_resolution)
        pyramid = laplacian_pyramid(a * np.float32(255), len(self.resolutions))  # the reference's scale
        self.distances = []  # per level, per direction set: W1 to the real side, a function of the fakes' descriptors
        buffers = {}  # two work arrays, (dirs, descriptors), float32 and intp: ~50 MB at 512 images
        for level, la in enumerate(pyramid):
            real = _descriptors(la, nhoods_per_image, nhood_size, np.random.default_rng([seed, level, 0]))
            rng = np.random.default_rng([seed, level, 2])
            repeats = []
            for _ in range(dir_repeats):
                dirs = rng.standard_normal((real.shape[1], dirs_per_repeat))
                dirs /= np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))
                repeats.append(dirs.astype(np.float32))
            # The real projections binned once; exact=True keeps the descriptors whole, to sort them.
            self.distances.append([functools.partial(_sorted_distances, real, dirs=dirs) if exact
                                   else _SlicedWasserstein(real, dirs, buffers).distances for dirs in repeats])

    def __call__(self, fake) -> dict:
        b = as_float_nhwc(fake)
        if b.shape[1:] != self.shape:
            raise ValueError(f"the two sets differ in image shape (H, W, C): {self.shape} vs {b.shape[1:]}")
        levels = {}
        pyramid = laplacian_pyramid(b * np.float32(255), len(self.resolutions))
        for level, (res, lb) in enumerate(zip(self.resolutions, pyramid)):
            db = _descriptors(lb, self.nhoods_per_image, self.nhood_size,
                              np.random.default_rng([self.seed, level, 1]))
            levels[res] = float(np.mean([distances(db).mean() for distances in self.distances[level]])) * 1e3
        return {"swd": float(np.mean(list(levels.values()))), "levels": levels}


# -- Fréchet distance and KID on feature vectors ----------------------------------------------

def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2), the Fréchet (2-Wasserstein)
    distance between two Gaussians; FID's formula. The trace of the matrix square root is taken
    as tr((S1^1/2 S2 S1^1/2)^1/2) (equal, and symmetric), by eigen-decomposition in float64,
    negative eigenvalues from rounding clipped to 0; the result is clipped at 0."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = len(mu1)
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"shapes do not fit: mu {mu1.shape}, {mu2.shape}; sigma {sigma1.shape}, {sigma2.shape}")
    diff = mu1 - mu2
    return max(float(diff @ diff) + _trace_term(sigma1, sigma2), 0.0)


def _trace_term(sigma1, sigma2) -> float:
    """tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)."""
    w, v = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(np.trace(sigma1) + np.trace(sigma2) - 2 * covmean)


def feature_fd(a, b) -> float:
    """The Fréchet distance between the Gaussians fitted to two sets of feature vectors (rows).
    With fewer vectors than dimensions the covariances are worked in the span of the centred
    vectors (the same value, much cheaper: 16 + 16 Inception features need a 32-d problem, not
    a 2048-d one)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays of the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("the Fréchet distance needs at least 2 vectors on each side")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    if len(a) + len(b) < a.shape[1]:
        q, _ = np.linalg.qr(np.concatenate([ca, cb]).T)  # an orthonormal basis of both spans
        ca, cb = ca @ q, cb @ q
    diff = mu_a - mu_b
    sa, sb = ca.T @ ca / (len(a) - 1), cb.T @ cb / (len(b) - 1)
    return max(float(diff @ diff) + _trace_term(sa, sb), 0.0)


def kid(a, b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018) between two sets of features (rows):
    the unbiased estimate of MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over
    `subsets` random subsets of min(subset_size, N_a, N_b) vectors from each side (drawn
    without replacement, seeded). Returns (mean, standard deviation over subsets)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need two (N, D) feature arrays of the same D, got {a.shape} and {b.shape}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 vectors on each side")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        values[i] = ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                     - 2 * kxy.mean())
    return float(values.mean()), float(values.std())


# -- the judge: a small NumPy classifier of the built-in shapes ---------------------------------
#
# What it sees. Each image is reduced to colour-free maps, from its own pixels:
#   b  the background colour: the median of the outermost ring of pixels;
#   f  the foreground colour: the mean of the pixels at least 90% as far from b as the
#      farthest one (the shape's inside, not its anti-aliased edge), among those near the
#      shape's mean colour (so that a few pixels of another colour, a white glint on a red
#      shape, say, do not make the foreground); in one channel, where a brighter glint is
#      always "near", the median of the pixels at least OFF_BACKGROUND from b;
#   s  each pixel's position on the line from b (0) to f (1)   (the shape's silhouette)
#   t  how far s is from 0 or 1, times 2, clipped to [0, 1]      (0 on a clean two-colour image)
#   r  the distance off that line, relative to |f - b|           (colour noise; 3 channels only)
# The maps are shifted so that the silhouette's centroid is at the centre (so a small MLP need
# not learn every position), then, above 32x32, pooled to 32x32 (s averaged; t and r max-pooled so
# that one-pixel artefacts survive). Five summary numbers of t and r are appended.
#
# What it learned. Four classes: disc, square, triangle (make_shapes images, anti-aliased edges
# included; half of them as drawn, half with a flaw a person looking at a grid does not see:
# Gaussian noise sigma <= 0.03 in [0, 1] units (8 grey levels), a period-2 pattern of amplitude
# <= 0.03, blur sigma <= 0.5 px, a smooth shading of the flat colours <= 0.05, or noise with
# blur; without them the judge turned away real shapes with noise of 5 grey levels) and
# "other": real images with the defects a person looking at a grid sees
# (Gaussian blur sigma 0.8-2 px; Gaussian noise 0.08-0.25 in [0, 1] units, 20-64 grey levels;
# random zero-mean period-2 pixel patterns, the artefact of transposed convolutions, of
# amplitude 0.1-0.3 added; two images blended, 30-50%, ghosts; blur with noise; blank images),
# and crisp non-shapes in palette colours (star-shaped blobs, ellipses of aspect
# 0.4-0.72, squares turned 15-45 degrees, upside-down triangles, rings, thresholded smooth random
# fields).
# An MLP (inputs -> 256 -> 64 -> 4, ReLU, Adam) trained on 8,000 + 8,000 such images, 6 epochs.
#
# What it reports. An image is *recognised* when the softmax gives one shape kind probability >=
# 0.9 (JUDGE_THRESHOLD). Colours are read from the pixels (b and f above, as the nearest palette
# colour; farther than 0.15 from every palette colour, in [0, 1] RGB, is "other"). The Fréchet
# distance is taken in the 64-d penultimate layer, against 2,048 fixed real images (seed 12345).

JUDGE_VERSION = "judge-v5"  # bump when anything above changes: cached judges are then retrained
JUDGE_THRESHOLD = 0.9
JUDGE_CLASSES = SHAPE_KINDS + ("other",)
OFF_PALETTE = 0.15  # farther than this from every palette colour ([0, 1] RGB) is "other"
OFF_BACKGROUND = 0.1  # one channel: a pixel this far from the background ([0, 1]) is the shape's
JUDGE_INPUT_SIZE = 32  # maps of larger images are pooled to this
JUDGE_HIDDEN = (256, 64)
JUDGE_TRAIN_IMAGES = 8000  # of each: clean, degraded
JUDGE_EPOCHS = 6
JUDGE_REAL_IMAGES, JUDGE_REAL_SEED = 2048, 12345


def _planes(x01: np.ndarray) -> np.ndarray:
    """float32 NHWC in [0, 1] (as_float_nhwc's output) -> (N, C, H, W)."""
    return np.ascontiguousarray(x01.transpose(0, 3, 1, 2))


def _colours_and_maps(planes: np.ndarray):
    """(N, C, H, W) in [0, 1] -> b (N, C), f (N, C), s, t, r (N, H, W; r None for 1 channel)."""
    n, c, h, w = planes.shape
    border = np.concatenate([planes[:, :, 0, :], planes[:, :, -1, :], planes[:, :, 1:-1, 0],
                             planes[:, :, 1:-1, -1]], axis=2)
    b = np.median(border, axis=2).astype(np.float32)
    diff = planes - b[:, :, None, None]
    d2 = sum(diff[:, k] * diff[:, k] for k in range(c))
    # The shape's pixels: at least half as far from b as the farthest one. Their mean colour is
    # the shape's colour, and f the mean of the pixels near it (within half of its distance from
    # b) that are at least 90% as far from b as the farthest of those: the shape's inside, not its
    # anti-aliased edge, and not a few pixels of another colour (a white glint on a red triangle
    # is farther from black than red is).
    shape = (d2 >= (0.25 * _image_max(d2))[:, None, None]) & (d2 > 0)
    colour = _masked_mean(planes, shape, b)
    near = shape & (sum((planes[:, k] - colour[:, k, None, None]) ** 2 for k in range(c))
                    <= 0.25 * ((colour - b) ** 2).sum(axis=1)[:, None, None])
    far = near & (d2 >= (0.81 * _image_max(np.where(near, d2, 0)))[:, None, None])
    f = _masked_mean(planes, far, colour)
    if c == 1:
        # In one channel every grey lies on one line from b, so a brighter glint is both "near" the
        # shape's grey and farther from b than it (and a dark grey shape falls below a quarter of a
        # white glint's distance): f is the median of the pixels clearly off the background.
        off = np.abs(diff[:, 0]) >= OFF_BACKGROUND
        some = off.any(axis=(1, 2))
        values = np.where(off, planes[:, 0], np.nan).reshape(n, -1)
        values[~some, 0] = 0  # no pixel off the background: f stays as read above
        f = np.where(some[:, None], np.nanmedian(values, axis=1)[:, None], f).astype(np.float32)
    e = f - b
    c2 = (e * e).sum(axis=1) + np.float32(1e-6)
    s = sum(diff[:, k] * (e[:, k] / c2)[:, None, None] for k in range(c))
    t = np.clip(2 * np.minimum(np.abs(s), np.abs(1 - s)), 0, 1)
    r = np.sqrt(np.clip(d2 / c2[:, None, None] - s * s, 0, 1)) if c == 3 else None
    return b, f, s.astype(np.float32), t.astype(np.float32), r if r is None else r.astype(np.float32)


def _image_max(maps: np.ndarray) -> np.ndarray:
    """(N, H, W) -> (N,): each map's largest value."""
    return maps.reshape(len(maps), -1).max(axis=1)


def _masked_mean(planes: np.ndarray, mask: np.ndarray, default: np.ndarray) -> np.ndarray:
    """(N, C): each image's mean colour over its pixels in mask (N, H, W); default where none is."""
    count = mask.sum(axis=(1, 2))
    mean = np.stack([(planes[:, k] * mask).sum(axis=(1, 2)) for k in range(planes.shape[1])], axis=1)
    return np.where((count > 0)[:, None], mean / np.maximum(count, 1)[:, None], default).astype(np.float32)


def judge_inputs(images) -> np.ndarray:
    """Images -> the judge's input vectors (N, D) float32 (see the comment above)."""
    return _judge_inputs(as_float_nhwc(images))


def _judge_inputs(x01: np.ndarray) -> np.ndarray:
    planes = _planes(x01)
    n, _, h, w = planes.shape
    _, _, s, t, r = _colours_and_maps(planes)
    # Centre the silhouette: shift (cyclically) so that the centroid of clip(s, 0, 1) is in the middle.
    mass = np.clip(s, 0, 1)
    total = mass.sum(axis=(1, 2))
    gy, gx = np.arange(h, dtype=np.float32) + 0.5, np.arange(w, dtype=np.float32) + 0.5
    cy = (mass.sum(axis=2) * gy).sum(axis=1) / np.maximum(total, 1e-6)
    cx = (mass.sum(axis=1) * gx).sum(axis=1) / np.maximum(total, 1e-6)
    sy = np.where(total > 1, np.round(h / 2 - cy), 0).astype(np.intp)
    sx = np.where(total > 1, np.round(w / 2 - cx), 0).astype(np.intp)
    iy = (np.arange(h)[None] - sy[:, None]) % h
    ix = (np.arange(w)[None] - sx[:, None]) % w
    rows = np.arange(n)[:, None, None], iy[:, :, None], ix[:, None, :]
    maps = [(s[rows], "mean"), (t[rows], "max")] + ([(r[rows], "max")] if r is not None else [])
    stats = [t.mean(axis=(1, 2)), (t > 0.1).mean(axis=(1, 2)), np.sqrt((t * t).mean(axis=(1, 2)))]
    if r is not None:
        stats += [r.mean(axis=(1, 2)), (r > 0.1).mean(axis=(1, 2))]
    ky, kx = max(1, h // JUDGE_INPUT_SIZE), max(1, w // JUDGE_INPUT_SIZE)
    parts = []
    for m, how in maps:
        m = m[:, :h - h % ky, :w - w % kx].reshape(n, h // ky, ky, w // kx, kx)
        m = m.mean(axis=(2, 4)) if how == "mean" else m.max(axis=(2, 4))
        parts.append(m.reshape(n, -1))
    parts[0] = np.clip(parts[0], -0.5, 1.5) - 0.5
    parts.append(np.stack(stats, axis=1) * 4)
    return np.concatenate(parts, axis=1).astype(np.float32)


def image_colours(images):
    """Per image: (background, foreground) palette indices read from the pixels, -1 where the
    colour is farther than OFF_PALETTE from every palette colour. 3-channel images only."""
    return _image_colours(as_float_nhwc(images))


def _image_colours(x01: np.ndarray):
    planes = _planes(x01)
    if planes.shape[1] != 3:
        raise ValueError("colours are read from 3-channel images only")
    b, f, *_ = _colours_and_maps(planes)
    rgb = PALETTE.astype(np.float32) / 255

    def nearest(colour):
        dist = np.sqrt(((colour[:, None, :] - rgb[None]) ** 2).sum(axis=2))
        index = dist.argmin(axis=1)
        return np.where(dist[np.arange(len(colour)), index] <= OFF_PALETTE, index, -1)

    return nearest(b), nearest(f)


# degradations and odd shapes, to teach the judge what a clean shape is not

def gaussian_blur(images: np.ndarray, sigma) -> np.ndarray:
    """float NHWC images, blurred with a Gaussian of `sigma` pixels (one per image, or one for
    all), mirrored edges."""
    images = np.asarray(images, np.float32)
    sigma = np.broadcast_to(np.asarray(sigma, np.float32), (len(images),))
    radius = max(1, int(np.ceil(3 * sigma.max())))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (taps[None] / np.maximum(sigma[:, None], 1e-3)) ** 2)
    kernel /= kernel.sum(axis=1, keepdims=True)
    out = images
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        p = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i in range(len(taps)):
            index = [slice(None)] * 4
            index[axis] = slice(i, i + n)
            acc += p[tuple(index)] * kernel[:, i, None, None, None]
        out = acc
    return out


def _paint(mask: np.ndarray, channels: int, rng) -> np.ndarray:
    """Boolean masks (N, S, S) -> float NHWC [0, 1] images coloured as make_shapes colours its shapes."""
    fg, bg = shape_colours(len(mask), rng)
    colours = palette(channels)
    return np.where(mask[..., None], colours[fg][:, None, None], colours[bg][:, None, None]).astype(np.float32) / 255


def smooth_field(n: int, size: int, rng, knots: int = 6) -> np.ndarray:
    """Smooth random fields (n, size, size): Gaussian bumps on a knots x knots grid of N(0, 1)."""
    grid = (np.arange(knots) + 0.5) / knots
    pos = (np.arange(size) + 0.5) / size
    basis = np.exp(-0.5 * ((pos[:, None] - grid[None]) * knots / 1.2) ** 2).astype(np.float32)
    return np.einsum("ij,njk,lk->nil", basis, rng.standard_normal((n, knots, knots)).astype(np.float32), basis)


def odd_shapes(n: int, size: int, channels: int, rng) -> np.ndarray:
    """Crisp two-colour images that are not a make_shapes shape: star-shaped blobs, ellipses
    (aspect 0.4-0.72), squares turned 15-45 degrees, upside-down triangles, rings (inner radius
    0.35-0.7 of the outer), thresholded smooth random fields. Float NHWC in [0, 1]."""
    r0 = rng.uniform(0.18, 0.32, n)[:, None, None] * size
    cx = rng.uniform(0.35, 0.65, n)[:, None, None] * size
    cy = rng.uniform(0.35, 0.65, n)[:, None, None] * size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x[None] - cx, y[None] - cy
    kind = rng.integers(0, 6, n)[:, None, None]
    # star-shaped: r(theta) = r0 (1 + sum_k a_k cos(k theta + phi_k)), k = 2..5, at least one a_k >= 0.15
    amps = rng.uniform(0.05, 0.25, (n, 4)) * (rng.random((n, 4)) < 0.6)
    amps[np.arange(n), rng.integers(0, 4, n)] = rng.uniform(0.15, 0.3, n)
    phase = rng.uniform(0, 2 * np.pi, (n, 4))
    theta = np.arctan2(dy, dx)
    radial = 1 + sum(amps[:, j, None, None] * np.cos((j + 2) * theta + phase[:, j, None, None]) for j in range(4))
    star = np.hypot(dx, dy) <= r0 * radial
    angle = rng.uniform(0, np.pi, n)[:, None, None]
    u, v = dx * np.cos(angle) + dy * np.sin(angle), -dx * np.sin(angle) + dy * np.cos(angle)
    ellipse = (u / r0) ** 2 + (v / (rng.uniform(0.4, 0.72, n)[:, None, None] * r0)) ** 2 <= 1
    turn = rng.uniform(np.pi / 12, np.pi / 4, n)[:, None, None]
    u, v = dx * np.cos(turn) + dy * np.sin(turn), -dx * np.sin(turn) + dy * np.cos(turn)
    turned = (np.abs(u) <= 0.85 * r0) & (np.abs(v) <= 0.85 * r0)
    upside_down = (-dy <= r0) & (np.abs(dx) <= (-dy + r0) * 0.58)
    ring = (np.hypot(dx, dy) <= r0) & (np.hypot(dx, dy) >= r0 * rng.uniform(0.35, 0.7, n)[:, None, None])
    field = smooth_field(n, size, rng)
    level = np.quantile(field.reshape(n, -1), 0.7, axis=1) + rng.uniform(-0.3, 0.3, n)
    field = field > level[:, None, None]
    mask = np.select([kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
                     [star, ellipse, turned, upside_down, ring], field)
    return _paint(mask, channels, rng)


def _period2(m: int, size: int, channels: int, rng) -> np.ndarray:
    """m random zero-mean period-2 pixel patterns (m, size, size, channels) of peak 1: the
    artefact of transposed convolutions; half of them the same in every channel."""
    tile = rng.standard_normal((m, 2, 2, channels)).astype(np.float32)
    shared = rng.random(m) < 0.5
    tile[shared] = tile[shared][..., :1]
    tile -= tile.mean(axis=(1, 2), keepdims=True)
    tile /= np.abs(tile).max(axis=(1, 2, 3), keepdims=True) + np.float32(1e-6)
    return np.tile(tile, (1, (size + 1) // 2, (size + 1) // 2, 1))[:, :size, :size]


def _groups(kind: np.ndarray, kinds: int):
    """(k, indices of the images of kind k) for each k in range(kinds) that some image has."""
    for k in range(kinds):
        i = np.flatnonzero(kind == k)
        if len(i):
            yield k, i


def perturb(images: np.ndarray, rng) -> np.ndarray:
    """Clean float NHWC [0, 1] images -> the same shapes with a flaw too faint to see, at a
    random strength (see the comment above the judge): half of them untouched, the rest get
    one of five. Taught as clean, so that the judge, like a person, asks whether the shape is
    there, not whether the pixels are exact."""
    n, size, _, channels = images.shape
    out = images.copy()
    kind = np.where(rng.random(n) < 0.5, -1, rng.integers(0, 5, n))
    for k, i in _groups(kind, 5):
        m, x = len(i), images[i]
        strength = lambda top: rng.uniform(0, top, (m, 1, 1, 1)).astype(np.float32)
        if k == 0:
            out[i] = x + strength(0.03) * rng.standard_normal(x.shape, np.float32)
        elif k == 1:
            out[i] = x + strength(0.03) * _period2(m, size, channels, rng)
        elif k == 2:
            out[i] = gaussian_blur(x, rng.uniform(0.2, 0.5, m))
        elif k == 3:
            shade = np.stack([smooth_field(m, size, rng, knots=3) for _ in range(channels)], axis=-1)
            shade /= np.abs(shade).max(axis=(1, 2, 3), keepdims=True) + np.float32(1e-6)
            out[i] = x + strength(0.05) * shade
        else:
            blurred = gaussian_blur(x, rng.uniform(0.2, 0.4, m))
            out[i] = blurred + strength(0.02) * rng.standard_normal(x.shape, np.float32)
    return np.clip(out, 0, 1)


def degrade(images: np.ndarray, rng) -> np.ndarray:
    """Clean float NHWC [0, 1] images -> the judge's "other" class: each image gets one of
    seven degradations (see the comment above the judge), at a random strength."""
    n, size, _, channels = images.shape
    out = images.copy()
    kind = rng.integers(0, 7, n)
    for k, i in _groups(kind, 7):
        m, x = len(i), images[i]
        if k == 0:
            out[i] = gaussian_blur(x, rng.uniform(0.8, 2.0, m))
        elif k == 1:
            sigma = rng.uniform(0.08, 0.25, (m, 1, 1, 1)).astype(np.float32)
            out[i] = x + sigma * rng.standard_normal(x.shape, np.float32)
        elif k == 2:
            out[i] = x + rng.uniform(0.1, 0.3, (m, 1, 1, 1)).astype(np.float32) * _period2(m, size, channels, rng)
        elif k == 3:
            weight = rng.uniform(0.3, 0.5, (m, 1, 1, 1)).astype(np.float32)
            out[i] = (1 - weight) * x + weight * images[rng.integers(0, n, m)]
        elif k == 4:
            out[i] = odd_shapes(m, size, channels, rng)
        elif k == 5:
            blurred = gaussian_blur(x, rng.uniform(0.7, 1.2, m))
            sigma = rng.uniform(0.04, 0.1, (m, 1, 1, 1)).astype(np.float32)
            out[i] = blurred + sigma * rng.standard_normal(x.shape, np.float32)
        else:
            noise = rng.uniform(0, 0.05, (m, 1, 1, 1)).astype(np.float32) * (rng.random((m, 1, 1, 1)) < 0.5)
            out[i] = x[:, :1, :1] + noise * rng.standard_normal(x.shape, np.float32)
    return np.clip(out, 0, 1)


class _MLP:
    """A ReLU multilayer perceptron with softmax cross-entropy, trained with Adam, in float32."""

    def __init__(self, weights, biases):
        self.weights, self.biases = list(weights), list(biases)

    @classmethod
    def init(cls, sizes, rng):
        return cls([(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(np.float32)
                    for a, b in zip(sizes[:-1], sizes[1:])], [np.zeros(b, np.float32) for b in sizes[1:]])

    def forward(self, x, upto=None):
        """Activations of every layer (the input first, the logits last)."""
        acts = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                np.maximum(x, 0, out=x)
            acts.append(x)
        return acts

    def train(self, x, y, epochs, rng, lr=2e-3, batch=128, weight_decay=1e-4):
        params = self.weights + self.biases
        m1 = [np.zeros_like(p) for p in params]
        m2 = [np.zeros_like(p) for p in params]
        steps, step = epochs * (len(x) // batch), 0
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for k in range(len(x) // batch):
                idx = order[k * batch:(k + 1) * batch]
                acts = self.forward(x[idx])
                g = _softmax(acts[-1])
                g[np.arange(batch), y[idx]] -= 1
                g /= batch
                grads_w, grads_b = [None] * len(self.weights), [None] * len(self.weights)
                for i in range(len(self.weights) - 1, -1, -1):
                    grads_w[i] = acts[i].T @ g + weight_decay * self.weights[i]
                    grads_b[i] = g.sum(axis=0)
                    if i:
                        g = (g @ self.weights[i].T) * (acts[i] > 0)
                step += 1
                rate = lr * 0.5 * (1 + np.cos(np.pi * step / steps))  # cosine decay to 0
                c1, c2 = 1 - 0.9 ** step, 1 - 0.999 ** step
                for p, g_, a, b in zip(params, grads_w + grads_b, m1, m2):
                    a *= 0.9
                    a += 0.1 * g_
                    b *= 0.999
                    b += 0.001 * g_ * g_
                    p -= (rate / c1) * a / (np.sqrt(b / c2) + 1e-8)


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _judge_training_set(image_size, channels, seed, chunk=2000):
    """Inputs and labels: JUDGE_TRAIN_IMAGES clean shapes (labels 0-2) and as many degraded
    ones (label 3), made and reduced in chunks so that large images do not fill memory."""
    rng = np.random.default_rng(seed)
    inputs, labels = [], []
    for start in range(0, JUDGE_TRAIN_IMAGES, chunk):
        n = min(chunk, JUDGE_TRAIN_IMAGES - start)
        clean, lab = make_shapes(n, image_size, channels, seed=seed * 1000 + start, labels=True)
        other = make_shapes(n, image_size, channels, seed=seed * 1000 + 500_000 + start)
        inputs += [_judge_inputs(perturb(clean.astype(np.float32) / np.float32(255), rng)),
                   _judge_inputs(degrade(other.astype(np.float32) / np.float32(255), rng))]
        labels += [lab["kind"], np.full(n, len(SHAPE_KINDS))]
    return np.concatenate(inputs), np.concatenate(labels)


class Judge:
    """A trained judge for `shapes` images of one size and channel count (see load_judge)."""

    def __init__(self, image_size: int, channels: int, mlp: _MLP, real_mu, real_sigma, meta: dict):
        self.image_size, self.channels, self.mlp = image_size, channels, mlp
        self.real_mu, self.real_sigma, self.meta = real_mu, real_sigma, meta

    def _check(self, images) -> np.ndarray:
        x = as_float_nhwc(images)
        if x.shape[1:] != (self.image_size, self.image_size, self.channels):
            raise ValueError(f"this judge is for {self.image_size}x{self.image_size}x{self.channels} images, "
                             f"got {x.shape[1]}x{x.shape[2]}x{x.shape[3]}")
        return x

    def _forward(self, x01, batch=1024):
        probs, feats = [], []
        for i in range(0, len(x01), batch):
            acts = self.mlp.forward(_judge_inputs(x01[i:i + batch]))
            probs.append(_softmax(acts[-1]))
            feats.append(acts[-2])
        return np.concatenate(probs), np.concatenate(feats)

    def probabilities(self, images) -> np.ndarray:
        """(N, 4) softmax over JUDGE_CLASSES: disc, square, triangle, other."""
        return self._forward(self._check(images))[0]

    def features(self, images) -> np.ndarray:
        """(N, 64) penultimate-layer activations, the space of the Fréchet distance."""
        return self._forward(self._check(images))[1]

    def classify(self, images, threshold: float = JUDGE_THRESHOLD):
        """Per image: the shape kind index (into SHAPE_KINDS), or -1 where no shape kind has
        probability >= threshold; and the probabilities."""
        probs = self.probabilities(images)
        return self._classify(probs, threshold), probs

    @staticmethod
    def _classify(probs, threshold):
        kind = probs[:, :len(SHAPE_KINDS)].argmax(axis=1)
        ok = probs[np.arange(len(probs)), kind] >= threshold
        return np.where(ok, kind, -1)

    def fd(self, images) -> float:
        """Fréchet distance between the images' features and the fixed real set's."""
        return self._fd(self.features(images))

    def _fd(self, features) -> float:
        f = np.asarray(features, np.float64)
        if len(f) < 2:
            raise ValueError("the Fréchet distance needs at least 2 images")
        return frechet_distance(f.mean(axis=0), np.cov(f, rowvar=False), self.real_mu, self.real_sigma)

    def report(self, images, threshold: float = JUDGE_THRESHOLD, baseline: bool = True) -> dict:
        """recognised (share of images with a shape kind at probability >= threshold), kinds
        (counts among the recognised), colours (counts of background and foreground palette
        colours over all images, "other" for off-palette; None for 1 channel), fd (Fréchet
        distance to the fixed real set, None for fewer than 2 images) and, with baseline=True,
        fd_real: the mean of the same for 5 sets of as many fresh real images (the floor at this
        sample size: with few images the mix of kinds alone moves the distance)."""
        x = self._check(images)
        probs, feats = self._forward(x)
        kinds = self._classify(probs, threshold)
        recognised = kinds >= 0
        out = {"images": len(x), "threshold": threshold, "recognised": float(recognised.mean()),
               "kinds": {name: int((kinds == k).sum()) for k, name in enumerate(SHAPE_KINDS)},
               "mean_confidence": float(probs[:, :len(SHAPE_KINDS)].max(axis=1).mean())}
        if self.channels == 3:
            bg, fg = _image_colours(x)
            names = COLOUR_NAMES + ("other",)
            out["colours"] = {side: {names[k]: int((idx == (k if k < len(PALETTE) else -1)).sum())
                                     for k in range(len(names))} for side, idx in (("bg", bg), ("fg", fg))}
        else:
            out["colours"] = None
        out["fd"] = self._fd(feats) if len(x) >= 2 else None
        if baseline:
            out["fd_real"] = float(np.mean([self.fd(make_shapes(len(x), self.image_size, self.channels,
                                                                seed=JUDGE_REAL_SEED + k)) for k in range(1, 6)])) \
                if len(x) >= 2 else None
        return out

    # -- persistence

    def save(self, path) -> Path:
        arrays = {f"w{i}": w for i, w in enumerate(self.mlp.weights)}
        arrays.update({f"b{i}": b for i, b in enumerate(self.mlp.biases)})
        arrays.update(real_mu=self.real_mu, real_sigma=self.real_sigma, meta=np.array(json.dumps(self.meta)))
        with atomic_write(path) as f:
            np.savez(f, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path, image_size: int, channels: int) -> "Judge":
        """The judge saved at `path`; ValueError (or OSError) if it is not a sound one for this
        size, channel count, SHAPES_VERSION and JUDGE_VERSION."""
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta != _judge_meta(image_size, channels) | {"train_s": meta.get("train_s")}:
                raise ValueError(f"{path} is a judge for {meta}")
            layers = len(JUDGE_HIDDEN) + 1
            mlp = _MLP([z[f"w{i}"] for i in range(layers)], [z[f"b{i}"] for i in range(layers)])
            judge = cls(image_size, channels, mlp, z["real_mu"], z["real_sigma"], meta)
        dims = [mlp.weights[0].shape[0], *JUDGE_HIDDEN, len(JUDGE_CLASSES)]
        if [w.shape for w in mlp.weights] != list(zip(dims[:-1], dims[1:])) or \
                judge.real_sigma.shape != (JUDGE_HIDDEN[-1],) * 2:
            raise ValueError(f"{path}: unexpected array shapes")
        return judge


def _judge_meta(image_size, channels) -> dict:
    return {"judge_version": JUDGE_VERSION, "shapes_version": SHAPES_VERSION, "image_size": image_size,
            "channels": channels}


def train_judge(image_size: int, channels: int = 3, seed: int = 0) -> Judge:
    """Train a judge from scratch (about 5-20 s on one core; see load_judge for the cached one)."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if image_size < 8:
        raise ValueError(f"the judge needs images of at least 8x8, got {image_size}")
    start = time.perf_counter()
    x, y = _judge_training_set(image_size, channels, seed)
    rng = np.random.default_rng(seed)
    mlp = _MLP.init([x.shape[1], *JUDGE_HIDDEN, len(JUDGE_CLASSES)], rng)
    mlp.train(x, y, JUDGE_EPOCHS, rng)
    meta = _judge_meta(image_size, channels) | {"train_s": round(time.perf_counter() - start, 1)}
    judge = Judge(image_size, channels, mlp, None, None, meta)
    f = judge.features(make_shapes(JUDGE_REAL_IMAGES, image_size, channels, seed=JUDGE_REAL_SEED)).astype(np.float64)
    judge.real_mu, judge.real_sigma = f.mean(axis=0), np.cov(f, rowvar=False)
    return judge


def judge_path(image_size: int, channels: int = 3, cache=None) -> Path:
    return cache_dir(cache) / "judge" / f"judge-{image_size}px-c{channels}-{SHAPES_VERSION}-{JUDGE_VERSION}.npz"


def load_judge(image_size: int, channels: int = 3, cache=None, progress: bool = False) -> Judge:
    """The judge for `shapes` images of this size and channel count: loaded from
    cache_dir(cache)/judge/, or trained once (seconds) and saved there atomically. A cached file
    that cannot be read, or was made for another SHAPES_VERSION or JUDGE_VERSION, is rebuilt."""
    path = judge_path(image_size, channels, cache)
    judge = _cached_judge(path, image_size, channels)
    if judge is not None:
        return judge
    with _training_lock(path):
        judge = _cached_judge(path, image_size, channels)  # another process may have trained it meanwhile
        if judge is not None:
            return judge
        if progress:
            print(f"training the shapes judge for {image_size}x{image_size}x{channels} images (once; "
                  f"cached in {path.parent})...", file=sys.stderr, flush=True)
        judge = train_judge(image_size, channels)
        judge.save(path)
        return judge


def _cached_judge(path: Path, image_size: int, channels: int):
    """The judge cached at `path`, or None if it is missing, unreadable or another judge's."""
    try:
        return Judge.load(path, image_size, channels)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


@contextlib.contextmanager
def _training_lock(path: Path):
    """A lock beside the judge to be trained (filelock), so that processes started together
    on a clean machine (a comparison's, a sweep's, a test run's) train it once: the others
    wait, then load it. Where no lock file can be made (a read-only cache), none is taken."""
    from filelock import FileLock
    lock = FileLock(f"{path}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


# -- python -m common.metrics ------------------------------------------------------------------

def load_fakes(path, framework: str = "torch", num: int = 512, seed: int = 0) -> tuple[np.ndarray, str]:
    """The fakes named by --fake: an .npy of images (any form as_float_nhwc accepts; the first
    `num`), or a canonical generator .npz, sampled (`num` images, `seed`) by running
    `python -m dcgan_<framework>.sample` in a subprocess. Returns (the images, as they are in
    the file: check them with as_float_nhwc's rules; a description). Misuse is a UsageError."""
    from common.backends import FRAMEWORKS, install_hint, is_installed, package, run_module

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise UsageError(f"--fake {path}: expected images in an .npy (as `sample --npy` writes) or a "
                         f"generator .npz (canonical weights), not a {suffix or 'suffix-less'} file")
    if not path.is_file():
        raise UsageError(f"--fake {path}: no such file")
    if num < 1:
        raise UsageError(f"--num must be >= 1, got {num}")
    if suffix == ".npz":
        if framework not in FRAMEWORKS:
            raise UsageError(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
        if not is_installed(framework):
            raise UsageError(install_hint(framework))
        with tempfile.TemporaryDirectory(prefix="dcgan-metrics-") as tmp:
            out = Path(tmp) / "fakes.npy"
            proc = run_module(framework, "sample", ["--weights", path, "--num", num, "--seed", seed,
                                                    "--npy", out, "--out", Path(tmp) / "grid.png"])
            if proc.returncode != 0 or not out.exists():
                lines = (proc.stderr or proc.stdout or "").strip().splitlines()
                why = lines[-1] if lines else f"exit status {proc.returncode}"
                error = UsageError if proc.returncode == 2 else DataError
                raise error(f"sampling {path} with {package(framework)}.sample failed: {why}")
            array = np.load(out, allow_pickle=False)
        what = f"{path} ({framework}, seed {seed})"
    else:
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r")
        except (OSError, ValueError, EOFError) as e:
            raise UsageError(f"--fake {path}: not a readable .npy file ({e})") from None
        array = np.asarray(array[:num]) if array.ndim >= 1 else array
        what = str(path)
    try:
        as_float_nhwc(array[:1])  # the checks, not the conversion
    except ValueError as e:
        raise UsageError(f"--fake {path}: {e}") from None
    return array, what


def _real_subset(args, image_size: int, channels: int, num: int) -> np.ndarray:
    """`num` images of the dataset (all if it has fewer), a subset fixed by --seed."""
    from common.cli import data_source_from_args

    images = data_source_from_args(args).load(image_size, channels, args.seed)
    if len(images) > num:
        images = images[np.sort(np.random.default_rng(args.seed).choice(len(images), num, replace=False))]
    return images


def _fakes(args):
    fakes, what = load_fakes(args.fake, args.framework, args.num, args.seed)
    fakes = as_float_nhwc(fakes) * np.float32(2) - np.float32(1)  # one layout for what follows: NHWC, [-1, 1]
    size = fakes.shape[1]
    if fakes.shape[1] != fakes.shape[2]:
        raise UsageError(f"--fake {args.fake}: images are {fakes.shape[1]}x{fakes.shape[2]}; square images expected")
    if args.image_size is not None and args.image_size != size:
        raise UsageError(f"--image-size {args.image_size} but the fakes in {args.fake} are {size}x{size}")
    if len(fakes) < 2:
        raise UsageError(f"--fake {args.fake}: need at least 2 images, got {len(fakes)}")
    return fakes, what


def _print_json(obj):
    print(json.dumps(obj))


def main(argv=None) -> int:
    from common.backends import FRAMEWORKS
    from common.cli import ArgumentParser, add_data_args, data_source_from_args, run_cli, seed as cli_seed

    parser = ArgumentParser(prog="python -m common.metrics",
                            description="Image-quality metrics of generated images against real ones.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, help_):
        p = sub.add_parser(name, help=help_, description=help_)
        p.error = parser.error
        p.add_argument("--fake", required=True, metavar="FILE",
                       help="samples.npy (float32 NCHW in [-1, 1], as `sample --npy` writes; or uint8, or "
                            "NHWC) or a canonical generator.npz to sample")
        p.add_argument("--framework", default="torch", choices=list(FRAMEWORKS),
                       help="which backend samples a generator.npz (default torch)")
        p.add_argument("--num", type=int, default=512, help="images on each side (default 512)")
        p.add_argument("--seed", type=cli_seed, default=0,
                       help="the real subset (and for shapes the images made), the generator's noise and the "
                            "metric's randomness (default 0, as training's)")
        p.add_argument("--image-size", type=int, help="default: the fakes' size; a different one is an error")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        add_data_args(p)
        return p

    command("swd", "Multi-scale sliced Wasserstein distance (Karras et al. 2018), x 1e3; lower is better.")
    command("judge", "The shapes judge: share recognised, kinds, colours, Fréchet distance in its feature space.")
    fid = command("fid", "FID and KID with your own copy of pytorch-fid's Inception weights (never downloaded).")
    fid.add_argument("--inception-weights", metavar="PATH",
                     help="pt_inception-2015-12-05-6726825d.pth (pytorch-fid's FID Inception weights)")
    fid.add_argument("--batch-size", type=int, default=50, help="Inception batch size (default 50)")
    fid.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: a GPU if there is one")
    fid.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    fid.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000; at most N)")

    def run(argv):
        args = parser.parse_args(argv)
        if args.num < 1:
            raise UsageError(f"--num must be >= 1, got {args.num}")
        source = data_source_from_args(args)  # the data flags' checks, before any work
        if args.command == "judge" and source.name != "shapes":
            raise UsageError(f"the judge knows only the built-in shapes (--data shapes), not --data {source.name}; "
                             f"use swd (or fid) for other data")
        if args.command == "fid":
            from common import fid as fid_module
            fid_module.check_available(args.inception_weights)  # before any work: a one-line error
        fakes, what = _fakes(args)
        size, channels = fakes.shape[1], fakes.shape[3]
        if args.command != "judge":  # the judge brings its own real images
            reals = _real_subset(args, size, channels, len(fakes))
            header = f"{len(fakes)} fakes from {what} vs {len(reals)} {source.name} images at {size}x{size}x{channels}"
        if args.command == "swd":
            result = swd(reals, fakes, seed=args.seed)
            if args.json:
                _print_json({"swd": result["swd"], "levels": {str(k): v for k, v in result["levels"].items()},
                             "num_real": len(reals), "num_fake": len(fakes), "image_size": size, "seed": args.seed})
                return 0
            print(f"SWD x 1e3 (lower is better), {header}:")
            for res, value in result["levels"].items():
                print(f"  {res:>4}x{res:<4} {value:9.2f}")
            print(f"  {'mean':9} {result['swd']:9.2f}")
            return 0
        if args.command == "judge":
            judge = load_judge(size, channels, cache=args.cache_dir, progress=True)
            result = judge.report(fakes)
            if args.json:
                _print_json(result)
                return 0
            print(f"shapes judge ({size}x{size}x{channels}, {JUDGE_VERSION}) on {len(fakes)} fakes from {what}:")
            kinds = ", ".join(f"{k} {v}" for k, v in result["kinds"].items())
            print(f"  recognised  {100 * result['recognised']:5.1f}%  (a shape kind at probability >= "
                  f"{result['threshold']}: {kinds})")
            fd_real = result.get("fd_real")
            print(f"  FD vs real  {result['fd']:9.3f}  (in the judge's feature space; as many fresh real "
                  f"images score {fd_real:.3f} on average)")
            if result["colours"]:
                for side, label in (("bg", "background"), ("fg", "foreground")):
                    counts = sorted(result["colours"][side].items(), key=lambda kv: -kv[1])
                    print(f"  {label}  " + ", ".join(f"{k} {v}" for k, v in counts if v))
            return 0
        result = fid_module.fid_kid(reals, fakes, args.inception_weights, batch_size=args.batch_size,
                                    device=args.device, kid_subsets=args.kid_subsets,
                                    kid_subset_size=args.kid_subset_size, seed=args.seed)
        if args.json:
            _print_json(result | {"num_real": len(reals), "num_fake": len(fakes), "image_size": size})
            return 0
        print(f"{header}:")
        print(f"  FID  {result['fid']:10.3f}")
        print(f"  KID  {result['kid']:10.5f} +- {result['kid_std']:.5f} ({result['kid_subsets']} subsets of "
              f"{result['kid_subset_size']})")
        return 0

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
