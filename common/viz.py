"""Pictures: image grids (Pillow), animated GIFs (Pillow) and loss curves
(matplotlib). Every write is atomic (common.files).

    python -m common.viz progress RUN --gif [--out RUN/progress.gif] [--ms 300]

animates a run's per-epoch sample grids, `RUN/samples/epoch_NNN.png` (the
fixed noise batch seen by G after each epoch, docs/design.md §9), in epoch
order, looping forever: the TensorFlow DCGAN tutorial's GIF, for any
framework's run. A RUN that is not a directory or holds no samples is one line
and exit status 2.

A GIF holds at most 256 colours a frame: Pillow picks each frame's palette, so
a frame of few colours is kept exactly and a richer one is quantised. Frame
durations are stored in hundredths of a second, and Pillow merges a frame
identical to the one before it into that one (adding up their durations).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from common.errors import UsageError
from common.files import atomic_write

MIN_FRAME_MS = 20  # browsers play shorter GIF frames (0 or 1 hundredths) at 100 ms
EPOCH_SAMPLE = re.compile(r"epoch_(\d+)\.png")


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


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """An (H, W, C) image with every pixel repeated `scale` times each way (nearest neighbour)."""
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


def scaled_grid(images: np.ndarray, nrows: int, ncols: int, scale: int = 1) -> np.ndarray:
    """grid(), scaled up by `scale` (for small images): what save_grid writes, and a GIF's frame."""
    return upscale(grid(images, nrows, ncols), scale)


def _pil(image: np.ndarray):
    from PIL import Image

    return Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image)


def save_png(image: np.ndarray, path) -> Path:
    """Write a uint8 (H, W, C) array as a PNG, atomically."""
    path = Path(path)
    with atomic_write(path) as f:
        _pil(image).save(f, format="PNG")
    return path


def save_grid(images: np.ndarray, nrows: int, ncols: int, path, scale: int = 1) -> Path:
    """uint8 NHWC images as an nrows x ncols grid PNG (scaled up by `scale` for small images)."""
    return save_png(scaled_grid(images, nrows, ncols, scale), path)


def ping_pong(frames: list) -> list:
    """frames, then back again without repeating either end: 0 1 2 3 2 1 (loops seamlessly)."""
    return list(frames) + list(frames[-2:0:-1])


def save_gif(frames, path, ms: int = 100) -> Path:
    """uint8 (H, W, C) frames, all one size, as a GIF looping forever, `ms` per frame, atomically."""
    frames = [_pil(np.asarray(f, np.uint8)) for f in frames]
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    if len({f.size for f in frames}) > 1:
        raise ValueError(f"GIF frames differ in size: {sorted({f.size for f in frames})}")
    path = Path(path)
    with atomic_write(path) as f:
        frames[0].save(f, format="GIF", save_all=True, append_images=frames[1:], loop=0, duration=ms)
    return path


# -- a run's progress ----------------------------------------------------------------

def epoch_samples(run) -> list[tuple[int, Path]]:
    """(epoch, path) of every `RUN/samples/epoch_NNN.png`, in epoch order."""
    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"{run} is not a directory (give a run's --out)")
    found = sorted((int(m.group(1)), p) for p in (run / "samples").glob("epoch_*.png")
                   if (m := EPOCH_SAMPLE.fullmatch(p.name)) and p.is_file())
    if not found:
        raise UsageError(f"{run} holds no per-epoch samples (samples/epoch_NNN.png); is it a training run's --out?")
    return found


def read_image(path) -> np.ndarray:
    """A picture file as uint8 (H, W, C): C is 1 for greyscale, else 3 (transparency dropped)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("L" if img.mode in ("1", "L", "I;16") else "RGB")
            return np.asarray(img)[..., None] if img.mode == "L" else np.asarray(img)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not a readable image ({e})") from None


def progress_gif(run, out=None, ms: int = 300) -> tuple[Path, list[int]]:
    """Animate RUN's per-epoch sample grids, in epoch order, into `out` (default
    RUN/progress.gif); returns (the GIF's path, the epochs in it)."""
    if ms < MIN_FRAME_MS:
        raise UsageError(f"--ms must be >= {MIN_FRAME_MS} (browsers play shorter frames at 100 ms), got {ms}")
    samples = epoch_samples(run)
    out = Path(out) if out is not None else Path(run) / "progress.gif"
    if out.resolve() in {p.resolve() for _, p in samples}:
        raise UsageError(f"--out {out} is one of the run's sample grids; name a new file")
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; name a file")
    frames = [read_image(p) for _, p in samples]
    if len({f.shape for f in frames}) > 1:
        first = samples[0][1]
        odd = next(p for (_, p), f in zip(samples, frames) if f.shape != frames[0].shape)
        raise UsageError(f"{odd} is not the size of {first}; the sample grids of one run are all one size")
    return save_gif(frames, out, ms), [epoch for epoch, _ in samples]


def main(argv=None) -> int:
    from common.cli import ArgumentParser, run_cli  # here: common.cli loads the data layer

    parser = ArgumentParser(prog="python -m common.viz", description="Pictures of a run.")
    sub = parser.add_subparsers(dest="command", required=True)
    progress = sub.add_parser("progress", help="animate RUN/samples/epoch_NNN.png, in epoch order, as a GIF")
    progress.error = parser.error
    progress.add_argument("run", metavar="RUN", help="a training run's directory (its --out)")
    progress.add_argument("--gif", action="store_true", help="write a GIF (the one format there is)")
    progress.add_argument("--out", help="GIF to write (default RUN/progress.gif)")
    progress.add_argument("--ms", type=int, default=300, help="milliseconds a frame (default 300)")

    def run(argv):
        args = parser.parse_args(argv)
        if not args.gif:
            raise UsageError("progress writes a GIF: add --gif")
        path, epochs = progress_gif(args.run, args.out, args.ms)
        print(f"{len(epochs)} epochs ({epochs[0]} to {epochs[-1]}), {args.ms} ms each -> {path}")
        return 0

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
