"""Data for all three backends (docs/design.md §7): the only code that touches
the network or the disk for data. The backends receive NumPy batches only.

    DataSource(name, data_dir, data_url, cache_dir, num_images)   what to load, validated once
    load_images(name, image_size, channels=3, **options) -> uint8 (N, H, W, C)
    iterate_batches(images, batch_size, seed, epoch, layout) -> float32 batches in [-1, 1]

`python -m common.data show NAME` (common/data/__main__.py) draws a dataset.

Datasets (REGISTRY):
    pokemon        the book's sprites: <base>/pokemon.zip, SHA-1 checked, an ImageFolder
    fashion-mnist  the book's exercise: the official train images, MD5 as published
    folder         any directory of images (--data-dir), ImageFolder or flat
    shapes         built in: coloured discs, squares and triangles, generated from the seed

Downloads stream to a temporary file in the cache directory, are checked
against the registry's digest, then renamed into place. Archives are extracted
into a temporary directory (refusing links and paths that leave it), then
renamed into place. Decoded images are cached as one uint8 .npy beside the
archive, keyed by the archive's digest, the size, the channels and DECODE_RULES.

Cache directory: --cache-dir, else $DCGAN_CACHE_DIR, else $XDG_CACHE_HOME/dcgan,
else ~/.cache/dcgan. Base URL: --data-url, else $DCGAN_DATA_URL, else the
dataset's own.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import socket
import stat
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from common.errors import DataError, UsageError
from common.files import atomic_write
from common.options import flag_of, option

D2L_DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DOWNLOAD_TIMEOUT = 30  # seconds without data before a download gives up
# Bump when decoding changes (compositing, resampling, cropping): old caches are then not reused.
DECODE_RULES = "rgb-white-bicubic-centercrop-v1"
DEFAULT_NUM_SHAPES = 10_000


@dataclass(frozen=True)
class Dataset:
    name: str
    kind: str  # "archive" (zip/tar of images), "idx" (gzipped IDX images), "folder", "shapes"
    filename: str = ""
    base_url: str = ""
    digest: str = ""
    algorithm: str = "sha1"  # what the publisher gives: SHA-1 for d2l, MD5 for Fashion-MNIST
    description: str = ""


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    REGISTRY[dataset.name] = dataset
    return dataset


register(Dataset("pokemon", "archive", "pokemon.zip", D2L_DATA_URL,
                 "c065c0e2593b8b161a2d7873e42418bf6a21106c", "sha1",
                 "the book's Pokemon sprites (d2l data hub)"))
register(Dataset("fashion-mnist", "idx", "train-images-idx3-ubyte.gz", FASHION_MNIST_URL,
                 "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "md5",
                 "Fashion-MNIST training images (Zalando Research), 28x28 grayscale"))
register(Dataset("folder", "folder", description="a directory of images: --data-dir"))
register(Dataset("shapes", "shapes", description="built-in coloured shapes, no download"))

URL_SCHEMES = ("http", "https", "file")


@dataclass(frozen=True)
class DataSource:
    """Which images to train on: the data flags of every command, validated
    here and nowhere else."""

    name: str = option("shapes", "dataset (default shapes: built in, no download)", flag="--data")
    data_dir: str | None = option(None, "the directory of images for --data folder")
    data_url: str | None = option(None, "base URL to download from (default: the dataset's; "
                                        "env DCGAN_DATA_URL)")
    cache_dir: str | None = option(None, "where downloads and decoded caches live "
                                         "(default ~/.cache/dcgan; env DCGAN_CACHE_DIR)")
    num_images: int | None = option(None, "use only the first N images (shapes: generate N, default 10000)")

    def __post_init__(self):
        flag = lambda name: flag_of(DataSource, name)
        if self.name not in REGISTRY:
            raise UsageError(f"unknown dataset {self.name!r}; choose from {', '.join(REGISTRY)}")
        kind = REGISTRY[self.name].kind
        if kind == "folder" and not self.data_dir:
            raise UsageError(f"{flag('name')} folder needs {flag('data_dir')} DIR")
        if self.data_dir and kind != "folder":
            raise UsageError(f"{flag('data_dir')} is read only with {flag('name')} folder "
                             f"(this run's {flag('name')} is {self.name})")
        if self.data_dir and not Path(self.data_dir).expanduser().is_dir():
            raise UsageError(f"{flag('data_dir')} {self.data_dir} is not a directory")
        if self.data_url and urllib.parse.urlsplit(self.data_url).scheme not in URL_SCHEMES:
            raise UsageError(f"{flag('data_url')} must be a URL ({', '.join(s + '://' for s in URL_SCHEMES)}), "
                             f"got {self.data_url!r}")
        if self.num_images is not None and self.num_images < 1:
            raise UsageError(f"{flag('num_images')} must be >= 1, got {self.num_images}")

    def load(self, image_size: int, channels: int = 3, seed: int = 0, progress=True) -> np.ndarray:
        """The images as uint8 (N, image_size, image_size, channels)."""
        return _load(self, image_size, channels, seed, progress)


# -- where things live ---------------------------------------------------------

def cache_dir(override=None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get("DCGAN_CACHE_DIR"):
        return Path(os.environ["DCGAN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dcgan"


def dataset_url(dataset: Dataset, base_url=None) -> str:
    base = base_url or os.environ.get("DCGAN_DATA_URL") or dataset.base_url
    return base.rstrip("/") + "/" + dataset.filename


# -- download --------------------------------------------------------------------

def file_digest(path, algorithm="sha1") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(dataset: Dataset, cache=None, base_url=None, progress=True) -> Path:
    """The dataset's file in the cache, downloaded and verified if not there yet."""
    folder = cache_dir(cache) / dataset.name
    target = folder / dataset.filename
    if target.exists():
        actual = file_digest(target, dataset.algorithm)
        if actual != dataset.digest:
            # Never delete a file the user may have placed by hand: say what is wrong.
            raise DataError(f"{target} has {dataset.algorithm.upper()} {actual}, expected "
                            f"{dataset.digest}; delete it to download again")
        return target
    url = dataset_url(dataset, base_url)
    try:
        h = hashlib.new(dataset.algorithm)
        with atomic_write(target) as out:  # renamed into place only if the digest matches
            _fetch(url, out, h, progress)
            actual = h.hexdigest()
            if actual != dataset.digest:
                raise DataError(f"download of {url} is corrupt: {dataset.algorithm.upper()} {actual}, "
                                f"expected {dataset.digest}")
    except (urllib.error.URLError, OSError, socket.timeout) as e:
        reason = getattr(e, "reason", None) or e
        raise DataError(f"could not download {url} ({reason}); place the file by hand at "
                        f"{target}, or train offline with --data shapes") from None
    finally:
        _remove_if_empty(folder)
    return target


def _fetch(url, out, h, progress):
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}",
                  disable=not progress, file=sys.stderr, leave=False) as bar:
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))


def _remove_if_empty(folder: Path):
    try:
        folder.rmdir()
    except OSError:
        pass


# -- extraction --------------------------------------------------------------------

def extract(archive: Path, target: Path) -> Path:
    """Extract a zip or tar archive into `target` (created atomically, once).

    Entries that are links, devices, absolute paths or that climb out with
    `..` are refused, and nothing is left behind.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _check_member(info.filename, archive)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise DataError(f"{archive}: refusing link entry {info.filename!r}")
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    _check_member(m.name, archive)
                    if not (m.isfile() or m.isdir()):
                        raise DataError(f"{archive}: refusing {'link' if m.issym() or m.islnk() else 'special'} "
                                        f"entry {m.name!r}")
                t.extractall(tmp, members=members)
        else:
            raise DataError(f"{archive}: neither a zip nor a tar archive")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_member(name: str, archive):
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{archive}: refusing entry {name!r}, which would land outside the target directory")


# -- decoding ----------------------------------------------------------------------

def decode_image(path, image_size: int, channels: int = 3) -> np.ndarray:
    """One file -> uint8 (H, W, C). The format is sniffed from the content, not
    the name. Transparency is composited onto white; palette and grayscale
    become RGB (or L for one channel); the shorter side is resized to
    image_size (bicubic) and the centre cropped."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img.alpha_composite(rgba)
        img = img.convert("RGB" if channels == 3 else "L")
        img = ImageOps.fit(img, (image_size, image_size), method=Image.BICUBIC)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` (flat or in class sub-folders), sorted, hidden ones skipped."""
    files = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        files += [Path(root) / n for n in sorted(names) if not n.startswith(".")]
    return files


def decode_folder(folder: Path, image_size: int, channels: int = 3, progress=True) -> np.ndarray:
    """Decode every readable image under `folder`; unreadable files are skipped
    and counted in one warning. No readable image at all is a DataError."""
    from PIL import Image
    from tqdm import tqdm

    files = image_files(folder)
    images, skipped = [], []
    for path in tqdm(files, desc=f"decode {folder.name}", unit="img", disable=not progress,
                     file=sys.stderr, leave=False):
        try:
            images.append(decode_image(path, image_size, channels))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(path)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) of {len(files)} in {folder} "
                      f"(first: {skipped[0].name})", stacklevel=2)
    if not images:
        raise DataError(f"no readable image in {folder}")
    return np.stack(images)


def read_idx_images(path: Path) -> np.ndarray:
    """Images of a gzipped IDX file (MNIST's format) as uint8 (N, rows, cols)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = (int.from_bytes(data[i:i + 4], "big") for i in range(0, 16, 4))
    if magic != 2051 or len(data) != 16 + n * rows * cols:
        raise DataError(f"{path}: not an IDX image file")
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, rows, cols)


def resize_all(gray: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, h, w) grayscale -> (N, S, S, channels), bicubic, replicated to 3 channels if asked."""
    from PIL import Image

    if gray.shape[1:] != (image_size, image_size):
        gray = np.stack([np.asarray(Image.fromarray(g).resize((image_size, image_size), Image.BICUBIC))
                         for g in gray])
    return np.repeat(gray[..., None], channels, axis=-1)


# -- the built-in shapes -------------------------------------------------------------

PALETTE = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 250, 250], [30, 30, 30]],
                   np.uint8)
SHAPE_KINDS = ("disc", "square", "triangle")
# Bump when make_shapes draws different images for the same seed: caches keyed by it
# (a quality judge trained on shapes, say) are then rebuilt.
SHAPES_VERSION = "shapes-v1"


def make_shapes(num_images: int, image_size: int, channels: int = 3, seed: int = 0, labels: bool = False):
    """Coloured discs, squares and triangles on plain backgrounds, uint8 (N, S, S, C).
    Deterministic in the seed; about a second for 10,000 at 64x64.

    labels=True also returns what each image is: a dict of (N,) arrays "kind"
    (an index into SHAPE_KINDS), "fg" and "bg" (indices into PALETTE), and the
    shape's "radius", "cx" and "cy" in pixels.
    """
    if num_images < 1:
        raise UsageError(f"num_images must be >= 1, got {num_images}")
    rng = np.random.default_rng(seed)
    S = image_size
    kind = rng.integers(0, 3, num_images)
    bg = rng.integers(0, len(PALETTE), num_images)
    fg = (bg + rng.integers(1, len(PALETTE), num_images)) % len(PALETTE)  # never the background's
    r = rng.uniform(0.18, 0.32, num_images) * S
    cx = rng.uniform(0.35, 0.65, num_images) * S
    cy = rng.uniform(0.35, 0.65, num_images) * S
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    out = np.empty((num_images, S, S, 3), np.uint8)
    for start in range(0, num_images, 1024):  # chunks keep the masks small
        sl = slice(start, start + 1024)
        dx = x[None] - cx[sl, None, None]
        dy = y[None] - cy[sl, None, None]
        rr = r[sl, None, None]
        disc = dx**2 + dy**2 <= rr**2
        square = (np.abs(dx) <= rr * 0.85) & (np.abs(dy) <= rr * 0.85)
        # An upright triangle: apex at dy = -r, base at dy = +r.
        triangle = (dy <= rr) & (np.abs(dx) <= (dy + rr) * 0.58)
        k = kind[sl, None, None]
        mask = np.where(k == 0, disc, np.where(k == 1, square, triangle))
        out[sl] = np.where(mask[..., None], PALETTE[fg[sl]][:, None, None], PALETTE[bg[sl]][:, None, None])
    if channels == 1:
        gray = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = np.round(gray).astype(np.uint8)[..., None]
    if labels:
        return out, {"kind": kind, "fg": fg, "bg": bg, "radius": r, "cx": cx, "cy": cy}
    return out


# -- loading, with the uint8 cache ---------------------------------------------------

def load_images(name: str, image_size: int, channels: int = 3, *, data_dir=None, data_url=None,
                cache=None, num_images=None, seed: int = 0, progress=True) -> np.ndarray:
    """The dataset `name` as uint8 (N, image_size, image_size, channels), NHWC.

    Decoded once and cached; every framework and every run reuse the cache.
    """
    return DataSource(name, data_dir, data_url, cache, num_images).load(image_size, channels, seed, progress)


def _load(source: DataSource, image_size: int, channels: int, seed: int, progress) -> np.ndarray:
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    dataset, cache, num_images = REGISTRY[source.name], source.cache_dir, source.num_images
    if dataset.kind == "shapes":
        return make_shapes(num_images or DEFAULT_NUM_SHAPES, image_size, channels, seed)
    if dataset.kind == "folder":
        folder = Path(source.data_dir).expanduser()
        key = _folder_key(folder)
        cache_file = cache_dir(cache) / "folder" / f"{folder.resolve().name}-{key[:12]}-{image_size}px-c{channels}.npy"
        images = _cached(cache_file, image_size, channels,
                         lambda: decode_folder(folder, image_size, channels, progress))
    else:
        archive = download(dataset, cache, source.data_url, progress)
        cache_file = archive.with_name(f"{archive.name.split('.')[0]}-{dataset.digest[:12]}-"
                                       f"{image_size}px-c{channels}.npy")
        if dataset.kind == "archive":
            build = lambda: decode_folder(extract(archive, archive.with_name(archive.name.split(".")[0])),
                                          image_size, channels, progress)
        else:
            build = lambda: resize_all(read_idx_images(archive), image_size, channels)
        images = _cached(cache_file, image_size, channels, build)
    return images[:num_images] if num_images else images


def _folder_key(folder: Path) -> str:
    """A digest of the folder's listing (names, sizes, modification times) and the rules."""
    h = hashlib.sha1(DECODE_RULES.encode())
    for path in image_files(folder):
        st = path.stat()
        h.update(f"{path.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _cached(cache_file: Path, image_size: int, channels: int, build) -> np.ndarray:
    """Load the uint8 cache if it is there and sound; else build it and save it atomically."""
    cache_file = cache_file.with_name(cache_file.stem + f"-{DECODE_RULES}.npy")
    try:
        images = np.load(cache_file, allow_pickle=False)
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (image_size, image_size, channels):
            return images
    except (OSError, ValueError, EOFError):
        pass  # missing or unreadable: rebuild below
    images = np.ascontiguousarray(build(), dtype=np.uint8)
    with atomic_write(cache_file) as f:
        np.save(f, images)
    return images


# -- batches ---------------------------------------------------------------------------

def num_batches(num_images: int, batch_size: int) -> int:
    """Full batches per epoch (the last partial batch is dropped)."""
    return num_images // batch_size


def iterate_batches(images: np.ndarray, batch_size: int, seed: int, epoch: int,
                    layout: str = "NCHW", start: int = 0):
    """Yield the epoch's batches as float32 in [-1, 1], laid out NCHW or NHWC.

    The order depends only on (seed, epoch), so every framework gets the same
    batches in the same order, and a resumed run can start at batch `start`.
    """
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    if batch_size > len(images):
        raise DataError(f"batch size {batch_size} is larger than the dataset ({len(images)} images)")
    order = np.random.default_rng([seed, epoch]).permutation(len(images))
    for b in range(start, num_batches(len(images), batch_size)):
        batch = images[order[b * batch_size:(b + 1) * batch_size]]
        if layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        yield np.ascontiguousarray(batch, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
