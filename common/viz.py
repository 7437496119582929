"""Pictures: image grids (Pillow) and loss curves (matplotlib). Writes are atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.files import atomic_write


def to_uint8(images: np.ndarray, layout: str = "NHWC") -> np.ndarray:
    """Float images in [-1, 1] (a generator's tanh output) -> uint8 NHWC."""
    if layout == "NCHW":
        images = images.transpose(0, 2, 3, 1)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, nrows: int, ncols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """uint8 (N, H, W, C) -> one uint8 (H', W', C) image, row by row, white gaps; N <= nrows*ncols."""
    n, h, w, c = images.shape
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), fill, np.uint8)
    for i in range(min(n, nrows * ncols)):
        r, col = divmod(i, ncols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = images[i]
    return out


def save_png(image: np.ndarray, path) -> Path:
    """Write a uint8 (H, W, C) array as a PNG, atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_write(path) as f:
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(f, format="PNG")
    return path


def save_grid(images: np.ndarray, nrows: int, ncols: int, path, scale: int = 1) -> Path:
    """uint8 NHWC images as an nrows x ncols grid PNG (scaled up by `scale` for small images)."""
    g = grid(images, nrows, ncols)
    if scale > 1:
        g = g.repeat(scale, axis=0).repeat(scale, axis=1)
    return save_png(g, path)
