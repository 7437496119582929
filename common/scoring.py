"""`python -m dcgan_<fw>.score`: how real D thinks each picture is, written
once for every backend over its adapter (common.backends).

    --weights discriminator.npz --images PATH [PATH ...] [--json] [--sort]

Each PATH is an image file or a directory (every image under it, sorted,
hidden files skipped: common.data.image_files). Every image is decoded as the
training data is (common.data.decode_image at the weights' image size and
channels: format sniffed, transparency onto white, the shorter side resized,
the centre cropped), scaled to [-1, 1], and scored by D in inference mode
(batch norm on its running statistics), so an image's score does not depend
on the others beside it. The output is one line per image, D's probability
that it is real, sigmoid(D(x)), then their mean:

    0.873  pictures/cat.png
    0.412  pictures/dog.jpg
    0.643  mean of 2 images

--sort         most real first (ties keep the order read).
--json         one JSON object instead: {"weights", "framework", "images":
               [{"path", "p_real", "logit"}, ...], "mean", "skipped"}.

Unreadable files are skipped and counted in one warning line on stderr. Bad
input (a weights file that holds no D, such as a generator.npz; a PATH that is
not there; a directory with no images; no readable image at all) is one line
and exit status 2. Nothing is written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from common.backends import Backend, load
from common.cli import ArgumentParser, run_cli
from common.errors import UsageError, WeightsError
from common.weights import NETS, load_weights, select

BATCH = 64  # images decoded and scored at a time


def sigmoid(logits) -> np.ndarray:
    """1 / (1 + exp(-logit)) in float64, without overflow for large |logit|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, np.float64)))


def to_unit_range(images_nhwc: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [-1, 1], as training's batches are scaled (common.data.iterate_batches)."""
    x = np.ascontiguousarray(np.asarray(images_nhwc).transpose(0, 3, 1, 2), dtype=np.float32)
    return x / np.float32(127.5) - np.float32(1.0)


def score_images(backend: Backend, D, images_nchw: np.ndarray, batch_size: int = BATCH):
    """(logits, probabilities) of D on float NCHW images in [-1, 1], in inference
    mode (BN on running statistics), `batch_size` at a time: both float64 arrays (N,)."""
    x = np.asarray(images_nchw, np.float32)
    logits = [backend.forward(D, x[i:i + batch_size]).reshape(-1) for i in range(0, len(x), batch_size)]
    logits = np.concatenate(logits).astype(np.float64) if logits else np.zeros(0)
    return logits, sigmoid(logits)


# -- the command --------------------------------------------------------------------

def load_discriminator(path):
    """(D's canonical arrays, spec) from `path`; a file without D (a generator.npz) is a WeightsError
    that says what is wanted."""
    arrays, spec = load_weights(path)  # validates whichever nets it holds
    if not any(k.startswith("D/") for k in arrays):
        held = [n for n in NETS if any(k.startswith(n + "/") for k in arrays)]
        what = f"holds {' and '.join(held)}'s weights only (a generator.npz?)" if held else "holds no weights"
        raise WeightsError(f"{path}: missing weight 'D/0/weight': it {what}; "
                           f"--weights needs a discriminator.npz, D's canonical weights")
    return select(arrays, "D"), spec


def image_paths(paths) -> list[Path]:
    """The files named, and every image file under the directories named, in the order given
    (each directory's sorted); a file reached twice is scored once."""
    from common.data import image_files

    found, seen = [], set()
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = image_files(path)
            if not files:
                raise UsageError(f"--images {given}: the directory holds no images")
        elif path.is_file():
            files = [path]
        elif path.exists():
            raise UsageError(f"--images {given}: not an image file or a directory")
        else:
            raise UsageError(f"--images {given}: no such file or directory")
        for f in files:
            key = str(f.resolve()) if f.exists() else str(f)  # a broken link: kept, then counted unreadable
            if key not in seen:
                seen.add(key)
                found.append(f)
    return found


def decoded_batches(paths, spec, skipped: list, batch_size: int = BATCH):
    """(paths, float32 NCHW images in [-1, 1]) of the readable files, batch by batch, decoded as
    training decodes; the unreadable ones are appended to `skipped`."""
    from common.data import _unreadable, decode_image

    unreadable = _unreadable()
    for start in range(0, len(paths), batch_size):
        names, images = [], []
        for path in paths[start:start + batch_size]:
            try:
                images.append(decode_image(path, spec.image_size, spec.channels))
                names.append(path)
            except unreadable:
                skipped.append(path)
        if images:
            yield names, to_unit_range(np.stack(images))


def score_main(framework: str, argv=None) -> int:
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.score",
                            description=f"D's probability that each image is real, with the {framework} backend "
                                        "(canonical weights from any framework).")
    parser.add_argument("--weights", required=True, help="a canonical discriminator.npz (any framework's)")
    parser.add_argument("--images", required=True, nargs="+", metavar="PATH",
                        help="image files, or directories of them (every image under each, sorted)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    parser.add_argument("--sort", action="store_true", help="most real first")

    def main(argv):
        args = parser.parse_args(argv)
        arrays, spec = load_discriminator(args.weights)
        paths = image_paths(args.images)
        backend, D, skipped = load(framework), None, []
        scored, logits = [], []
        for names, x in decoded_batches(paths, spec, skipped):
            if D is None:  # built once a readable image is found
                D = backend.discriminator(spec, arrays)
            scored += names
            logits.append(score_images(backend, D, x)[0])
        if not scored:
            raise UsageError(f"no readable image in --images {' '.join(args.images)} "
                             f"({len(paths)} file(s), none of them an image; first: {paths[0]})")
        if skipped:
            print(f"{parser.prog}: warning: skipped {len(skipped)} unreadable file(s) of {len(paths)} "
                  f"(first: {skipped[0]})", file=sys.stderr)
        logits = np.concatenate(logits)
        p_real = sigmoid(logits)
        order = np.argsort(-p_real, kind="stable") if args.sort else np.arange(len(scored))
        mean = float(p_real.mean())
        if args.json:
            print(json.dumps({
                "weights": str(args.weights), "framework": framework,
                "images": [{"path": str(scored[i]), "p_real": float(p_real[i]), "logit": float(logits[i])}
                           for i in order],
                "mean": mean, "skipped": len(skipped)}))
        else:
            for i in order:
                print(f"{p_real[i]:.3f}  {scored[i]}")
            print(f"{mean:.3f}  mean of {len(scored)} image{'s' if len(scored) != 1 else ''}")
        return 0

    return run_cli(parser.prog, main, argv)
