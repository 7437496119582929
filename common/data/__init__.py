"""Data for all three backends (docs/design.md §7): the only code that touches
the network or the disk for data. The backends receive NumPy batches only.

    DataSource(name, data_dir, data_url, cache_dir, num_images, cifar_class)   what to load, validated once
    load_images(name, image_size, channels=3, **options) -> uint8 (N, H, W, C)
    iterate_batches(images, batch_size, seed, epoch, layout) -> float32 batches in [-1, 1]

`python -m common.data show NAME` (common/data/__main__.py) draws a dataset.

Datasets (REGISTRY):
    pokemon        the book's sprites: <base>/pokemon.zip, SHA-1 checked, an ImageFolder
    fashion-mnist  the book's exercise: the official train images, MD5 as published
    mnist          the official train images (MD5 as published), from PyTorch's mirror
    cifar10        the official python archive (MD5 as published); --cifar-class picks one class
    folder         any directory of images (--data-dir), ImageFolder or flat
    celeba         aligned-and-cropped faces, fetched by hand (--data-dir): centre 108x108, resized
    lsun           one category exported to a folder by LSUN's own script (--data-dir)
    shapes         built in: discs, squares and triangles in four colours (or greys) on black, from the seed

Downloads stream to a temporary file in the cache directory, are checked
against the registry's digest, then renamed into place. Archives are extracted
into a temporary directory (refusing links and paths that leave it), then
renamed into place. Decoded images are cached as one uint8 .npy beside the
archive, keyed by the archive's digest, the size, the channels and DECODE_RULES.
The cache directory is checked for writing before anything is downloaded or
decoded.

Images decode to what a viewer shows: the first frame, EXIF orientation
applied, 16-bit samples scaled (not clipped) to 8 bits, CMYK and palettes
converted, transparency composited onto white. Oversized images (Pillow's
decompression-bomb limit) are skipped and counted, except JPEGs, which libjpeg
decodes at a reduced scale (`draft`). Folders are walked following links to
sub-folders, each real directory and file once.

Cache directory: --cache-dir, else $DCGAN_CACHE_DIR, else $XDG_CACHE_HOME/dcgan,
else ~/.cache/dcgan. Base URL: --data-url, else $DCGAN_DATA_URL, else the
dataset's own.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import socket
import stat
import struct
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from common.errors import DataError, UsageError
from common.files import atomic_write
from common.options import flag_of, option

D2L_DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# MNIST's own host (http://yann.lecun.com/exdb/mnist/) often refuses downloads;
# torchvision falls back to PyTorch's S3 mirror, which serves the same files
# (same MD5s). --data-url or $DCGAN_DATA_URL names another.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"
CELEBA_PAGE = "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
LSUN_REPO = "https://github.com/fyu/lsun"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# DCGAN-tensorflow's CelebA convention (--input_height 108 --crop): the central
# 108x108 of the 178x218 aligned faces (the face, little background), resized to 64.
CELEBA_CROP = 108
DOWNLOAD_TIMEOUT = 30  # seconds without data before a download gives up
# Bump when decoding changes (compositing, resampling, cropping): old caches are then not reused.
# v2: EXIF orientation, 16-bit scaled, first frame, oversized JPEGs drafted, links followed.
DECODE_RULES = "rgb-white-bicubic-centercrop-v2"
DEFAULT_NUM_SHAPES = 10_000


@dataclass(frozen=True)
class Dataset:
    name: str
    # "archive" (zip/tar of images), "idx" (gzipped IDX images), "cifar" (CIFAR-10's
    # pickled batches in a tar), "folder" (images on the user's disk: --data-dir), "shapes"
    kind: str
    filename: str = ""  # the file to download; for a folder dataset, the archive --data-dir may hold
    base_url: str = ""
    digest: str = ""
    algorithm: str = "sha1"  # what the publisher gives: SHA-1 for d2l, MD5 for the others
    description: str = ""
    crop: int = 0  # a centre square of this many source pixels, resized; 0: shorter side resized, centre cropped
    by_hand: str = ""  # how to get it where no script can: the errors say it ({data_dir}: the flag)


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    REGISTRY[dataset.name] = dataset
    return dataset


CELEBA_BY_HAND = (f'download "Align&Cropped Images" (img_align_celeba.zip, 1.4 GB) by hand from {CELEBA_PAGE} '
                  "(its Google Drive cannot be scripted), and pass the directory holding it, or the extracted "
                  "img_align_celeba/ folder, as {data_dir} DIR")
LSUN_BY_HAND = (f"LSUN ships LMDB databases: with its scripts ({LSUN_REPO}) run `python download.py -c bedroom`, "
                "unzip bedroom_train_lmdb.zip, `python data.py export bedroom_train_lmdb --out_dir DIR --flat`, "
                "and pass {data_dir} DIR")

register(Dataset("pokemon", "archive", "pokemon.zip", D2L_DATA_URL,
                 "c065c0e2593b8b161a2d7873e42418bf6a21106c", "sha1",
                 "the book's Pokemon sprites (d2l data hub)"))
register(Dataset("fashion-mnist", "idx", "train-images-idx3-ubyte.gz", FASHION_MNIST_URL,
                 "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "md5",
                 "Fashion-MNIST training images (Zalando Research), 28x28 grayscale"))
register(Dataset("mnist", "idx", "train-images-idx3-ubyte.gz", MNIST_URL,
                 "f68b3c2dcbeaaa9fbdd348bbdeb94873", "md5",
                 "MNIST training digits (LeCun, Cortes, Burges), 28x28 grayscale"))
register(Dataset("cifar10", "cifar", "cifar-10-python.tar.gz", CIFAR_URL,
                 "c58f30108f718f92721af3b95e74349a", "md5",
                 "CIFAR-10 training images (Krizhevsky), 32x32 colour; one class: --cifar-class"))
register(Dataset("folder", "folder", description="a directory of images: --data-dir"))
register(Dataset("celeba", "folder", "img_align_celeba.zip", digest="00d2c5bc6d35e252742224ab0c1e8fcb",
                 algorithm="md5", description="CelebA aligned-and-cropped faces, 178x218, fetched by hand: "
                                              "--data-dir", crop=CELEBA_CROP, by_hand=CELEBA_BY_HAND))
register(Dataset("lsun", "folder", description="one LSUN category exported to a folder: --data-dir",
                 by_hand=LSUN_BY_HAND))
register(Dataset("shapes", "shapes", description="built-in coloured shapes, no download"))

URL_SCHEMES = ("http", "https", "file")


def _one_of(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


@dataclass(frozen=True)
class DataSource:
    """Which images to train on: the data flags of every command, validated
    here and nowhere else."""

    name: str = option("shapes", "dataset (default shapes: built in, no download)", flag="--data")
    data_dir: str | None = option(None, "the directory of images for --data folder, celeba or lsun")
    data_url: str | None = option(None, "base URL to download from (default: the dataset's; "
                                        "env DCGAN_DATA_URL)")
    cache_dir: str | None = option(None, "where downloads and decoded caches live "
                                         "(default ~/.cache/dcgan; env DCGAN_CACHE_DIR)")
    num_images: int | None = option(None, "use only the first N images (shapes: generate N, default 10000)")
    cifar_class: str | None = option(None, "--data cifar10: train on one class (" + " ".join(CIFAR10_CLASSES)
                                     + ") or all (default)")

    def __post_init__(self):
        flag = lambda name: flag_of(DataSource, name)
        if self.name not in REGISTRY:
            raise UsageError(f"unknown dataset {self.name!r}; choose from {', '.join(REGISTRY)}")
        dataset = REGISTRY[self.name]
        takes = lambda kind: _one_of(n for n, d in REGISTRY.items() if d.kind == kind)
        if dataset.kind == "folder" and not self.data_dir:
            how = f": {dataset.by_hand.format(data_dir=flag('data_dir'))}" if dataset.by_hand else ""
            raise UsageError(f"{flag('name')} {self.name} needs {flag('data_dir')} DIR{how}")
        if self.data_dir and dataset.kind != "folder":
            raise UsageError(f"{flag('data_dir')} is read only with {flag('name')} {takes('folder')} "
                             f"(this run's {flag('name')} is {self.name})")
        if self.data_dir and not Path(self.data_dir).expanduser().is_dir():
            raise UsageError(f"{flag('data_dir')} {self.data_dir} is not a directory")
        if self.data_url and urllib.parse.urlsplit(self.data_url).scheme not in URL_SCHEMES:
            raise UsageError(f"{flag('data_url')} must be a URL ({', '.join(s + '://' for s in URL_SCHEMES)}), "
                             f"got {self.data_url!r}")
        if self.num_images is not None and self.num_images < 1:
            raise UsageError(f"{flag('num_images')} must be >= 1, got {self.num_images}")
        if self.cifar_class is not None:
            if self.cifar_class not in (*CIFAR10_CLASSES, "all"):
                raise UsageError(f"{flag('cifar_class')} must be one of {', '.join(CIFAR10_CLASSES)} or all, "
                                 f"got {self.cifar_class!r}")
            if dataset.kind != "cifar":
                raise UsageError(f"{flag('cifar_class')} is read only with {flag('name')} {takes('cifar')} "
                                 f"(this run's {flag('name')} is {self.name})")
            if self.cifar_class == "all":  # the default, spelt out: one value for one meaning
                object.__setattr__(self, "cifar_class", None)

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


def writable_cache_dir(override=None) -> Path:
    """cache_dir(override), created if missing and checked for writing now, before
    anything is downloaded or decoded: a UsageError (exit 2) names it otherwise."""
    path = cache_dir(override)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(prefix=".dcgan-write-test.", dir=path):
            pass
    except OSError as e:
        named = (flag_of(DataSource, "cache_dir") if override else
                 "$DCGAN_CACHE_DIR" if os.environ.get("DCGAN_CACHE_DIR") else "the cache directory")
        reason = "a file, not a directory" if path.exists() and not path.is_dir() else e.strerror or str(e)
        raise UsageError(f"{named} {path} is not a writable directory ({reason}); "
                         f"choose another with {flag_of(DataSource, 'cache_dir')} DIR") from None
    return path


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
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process (a second rank of a distributed run) extracted it first: the same files.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _check_member(name: str, archive):
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DataError(f"{archive}: refusing entry {name!r}, which would land outside the target directory")


# -- decoding ----------------------------------------------------------------------

# What a file that is not an image (or is damaged, or too large) raises: it is skipped and counted.
def _unreadable():
    from PIL import Image

    return (OSError, ValueError, SyntaxError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            Image.DecompressionBombError)


def decode_image(path, image_size: int, channels: int = 3, crop: int = 0) -> np.ndarray:
    """One file (a path or a binary file object) -> uint8 (H, W, C), as a viewer
    shows it. The format is sniffed from the content, not the name; the first
    frame of an animation is used; EXIF orientation is applied; 16-bit samples
    are scaled to 8 bits; CMYK, palette and grayscale become RGB (or L for one
    channel); transparency is composited onto white. Then either the shorter
    side is resized to image_size (bicubic) and the centre cropped, or, with
    `crop`, the central crop x crop pixels are resized to image_size.

    An image over Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS) is
    refused with DecompressionBombError, unless it is a JPEG, which libjpeg
    decodes directly at 1/2, 1/4 or 1/8 scale (`draft`) when that still leaves
    image_size pixels. Past twice the limit Pillow refuses every format at open.
    """
    from PIL import Image

    with warnings.catch_warnings():  # the limit is enforced below, as an error
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        img = Image.open(path)
    with img:
        width, height = img.size
        if Image.MAX_IMAGE_PIXELS and width * height > Image.MAX_IMAGE_PIXELS:
            reference = min(crop, width, height) if crop else min(width, height)
            scale = image_size / reference
            if img.format != "JPEG" or not img.draft(None, (max(1, round(width * scale)),
                                                            max(1, round(height * scale)))):
                raise Image.DecompressionBombError(f"{width}x{height} pixels is over the limit of "
                                                   f"{Image.MAX_IMAGE_PIXELS}")
        img.seek(0)
        img.load()
        reduced = img.size[0] / width  # < 1 where draft decoded at a reduced scale
        img = _viewable(img, channels)
        w, h = img.size
        if crop:
            side = max(1, min(round(crop * reduced), w, h))
            left, top = (w - side) // 2, (h - side) // 2
            img = img.resize((image_size, image_size), Image.BICUBIC, box=(left, top, left + side, top + side))
        else:
            from PIL import ImageOps

            img = ImageOps.fit(img, (image_size, image_size), method=Image.BICUBIC)
    array = np.asarray(img, dtype=np.uint8)
    return array[..., None] if channels == 1 else array


def _viewable(img, channels: int):
    """A loaded image as the viewer shows it, in mode RGB (channels 3) or L (1)."""
    from PIL import Image, ImageOps

    try:
        ImageOps.exif_transpose(img, in_place=True)  # orientations 2 to 8: upright
    except (SyntaxError, ValueError, TypeError, KeyError, struct.error, OSError):
        pass  # EXIF that cannot be read: shown as stored, as a viewer does
    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit gray: 65535 is white, scaled not clipped
        wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        img = Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img.alpha_composite(rgba)
    target = "RGB" if channels == 3 else "L"
    if img.mode == "F":
        img = img.convert("L")  # floating-point gray: Pillow's clip to 0..255
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # CMYK (Adobe's inverted too), YCbCr, palette, bilevel
    return img if img.mode == target else img.convert(target)


def image_files(folder: Path) -> list[Path]:
    """Every file under `folder` (flat or in class sub-folders), sorted, hidden
    ones skipped. Links to folders are followed, each real directory once (a
    link cycle ends there); a file reached twice (a link to it) is listed once;
    a broken link is listed (and then counted unreadable); pipes, sockets and
    devices are not."""
    files, seen_dirs, seen_files = [], set(), set()
    stack = [Path(folder)]
    while stack:  # depth first, in name order: a folder's files, then each sub-folder's
        directory = stack.pop()
        real_dir = os.path.realpath(directory)
        if real_dir in seen_dirs:
            continue
        seen_dirs.add(real_dir)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            continue  # an unreadable sub-folder is left out, as os.walk does
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir:
                if entry.name != "__MACOSX":
                    subdirs.append(Path(entry.path))
                continue
            if not _is_file_or_broken_link(entry):
                continue  # a pipe, socket or device: opening it could block, and it is no image
            real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_dir, entry.name)
            if real not in seen_files:
                seen_files.add(real)
                files.append(Path(entry.path))
        stack += reversed(subdirs)
    return files


def _is_file_or_broken_link(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path))
    except OSError:
        return False


def _decode_all(items, count: int, where, image_size: int, channels: int, crop: int, progress,
                hint: str = "") -> np.ndarray:
    """Decode (name, opener) items; unreadable ones are skipped and counted in one
    warning. No readable image at all is a DataError (with `hint`, if any)."""
    from tqdm import tqdm

    images = np.empty((count, image_size, image_size, channels), np.uint8)  # filled in place: one copy in memory
    done, skipped = 0, []
    unreadable = _unreadable()
    for name, opener in tqdm(items, total=count, desc=f"decode {Path(str(where)).name}", unit="img",
                             disable=not progress, file=sys.stderr, leave=False):
        try:
            images[done] = decode_image(opener(), image_size, channels, crop)
            done += 1
        except unreadable:
            skipped.append(name)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) of {count} in {where} "
                      f"(first: {PurePosixPath(skipped[0]).name})", stacklevel=3)
    if not done:
        raise DataError(f"no readable image in {where}" + (f"; {hint}" if hint else ""))
    return images[:done]


def decode_folder(folder: Path, image_size: int, channels: int = 3, progress=True, crop: int = 0,
                  hint: str = "") -> np.ndarray:
    """Decode every readable image under `folder`; unreadable files (and broken
    links) are skipped and counted in one warning. No readable image at all is
    a DataError."""
    files = image_files(folder)
    return _decode_all(((p.name, lambda p=p: p) for p in files), len(files), folder, image_size, channels,
                       crop, progress, hint)


def decode_zip(archive: Path, image_size: int, channels: int = 3, progress=True, crop: int = 0,
               hint: str = "") -> np.ndarray:
    """Decode every readable image in a zip, in name order, straight from its
    entries (nothing is extracted, so no entry can land anywhere); hidden and
    __MACOSX entries are skipped, unreadable ones counted."""
    try:
        z = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{archive} is not a readable zip archive ({e})") from None
    with z:
        entries = sorted((i for i in z.infolist() if not i.is_dir() and not any(
            part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(i.filename).parts)),
            key=lambda i: i.filename)
        return _decode_all(((i.filename, lambda i=i: io.BytesIO(z.read(i))) for i in entries), len(entries),
                           archive, image_size, channels, crop, progress, hint)


def read_idx_images(path: Path) -> np.ndarray:
    """Images of a gzipped IDX file (MNIST's format) as uint8 (N, rows, cols)."""
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a gzipped IDX file ({e})") from None
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


def resize_rgb(rgb: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """(N, h, w, 3) RGB -> (N, S, S, channels): to gray first for one channel (as
    decode_image does), then resized bicubic where the size differs."""
    from PIL import Image

    if channels == 3 and rgb.shape[1:3] == (image_size, image_size):
        return rgb
    out = np.empty((len(rgb), image_size, image_size, channels), np.uint8)
    for i, pixels in enumerate(rgb):
        img = Image.fromarray(pixels)
        if channels == 1:
            img = img.convert("L")
        if img.size != (image_size, image_size):
            img = img.resize((image_size, image_size), Image.BICUBIC)
        out[i] = np.asarray(img).reshape(image_size, image_size, channels)
    return out


# -- CIFAR-10's python archive -------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


class _BatchUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickled dicts of bytes, lists and one NumPy array:
    nothing else may be named, so a tampered pickle cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}")
        return super().find_class(module, name)


def read_cifar_images(archive: Path, cifar_class: str | None = None) -> np.ndarray:
    """The training images of CIFAR-10's python archive as uint8 (N, 32, 32, 3):
    cifar-10-batches-py/data_batch_1..5, each a pickled dict with b"data" (N, 3072)
    in CHW order and b"labels", read straight from the tar (only regular files;
    nothing is extracted). `cifar_class` (a name of CIFAR10_CLASSES) keeps that class."""
    batches = {}
    try:
        with tarfile.open(archive) as t:
            for member in t:
                path = PurePosixPath(member.name)
                if path.parent != PurePosixPath(CIFAR_FOLDER) or path.name not in CIFAR_BATCHES:
                    continue
                if not member.isfile():
                    raise DataError(f"{archive}: refusing {member.name!r}, which is not a regular file")
                batches[path.name] = _read_batch(t.extractfile(member), f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive} is not a readable tar archive ({e})") from None
    missing = [b for b in CIFAR_BATCHES if b not in batches]
    if missing:
        raise DataError(f"{archive} is not CIFAR-10's python archive: no {CIFAR_FOLDER}/{missing[0]}")
    data = np.concatenate([batches[b][0] for b in CIFAR_BATCHES])
    labels = np.concatenate([batches[b][1] for b in CIFAR_BATCHES])
    if cifar_class is not None:
        data = data[labels == CIFAR10_CLASSES.index(cifar_class)]
        if not len(data):
            raise DataError(f"no {cifar_class} image in {archive}")
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def _read_batch(f, where: str):
    try:
        batch = _BatchUnpickler(f, encoding="bytes").load()
        data, labels = batch[b"data"], np.asarray(batch[b"labels"], np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DataError(f"{where} is not a CIFAR-10 batch ({e})") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == 3 * 32 * 32 and labels.shape == (len(data),)):
        raise DataError(f"{where} is not a CIFAR-10 batch (data {getattr(data, 'shape', '?')}, "
                        f"{len(labels)} labels)")
    return data, labels


# -- the built-in shapes -------------------------------------------------------------

# Saturated colours: every channel is 0 or 255, i.e. -1 or +1 after scaling, where a generator's
# tanh output saturates and so flattens its own noise. One background, black, and four shape
# colours that differ from each other in at least two channels. Measured in PyTorch
# at 32x32 (README, "Choosing the demo's settings"): shapes-v2's six mid-tone colours, any two as
# background and shape, gave speckled blobs and split backgrounds that the judge never recognised
# (0% after 2,048 steps); this palette on random backgrounds still gave split backgrounds (2%);
# on black, 20-34% after 1,280 steps and about 55% after 6,000.
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
COLOUR_NAMES = ("red", "green", "blue", "white", "black")
BACKGROUND = 4  # black: the index into PALETTE of every background
# In one channel each colour is its own grey, evenly spaced in [-1, 1] (-0.5, 0, 0.5, 1) in the
# order of their luminance: luminance itself would draw blue shapes at 29 of 255, barely visible.
GRAY_PALETTE = np.array([[128], [191], [64], [255], [0]], np.uint8)
assert len(COLOUR_NAMES) == len(PALETTE) == len(GRAY_PALETTE) and COLOUR_NAMES[BACKGROUND] == "black"
SHAPE_KINDS = ("disc", "square", "triangle")
# Bump when make_shapes draws different images for the same seed: caches keyed by it
# (a quality judge trained on shapes, say) are then rebuilt.
SHAPES_VERSION = "shapes-v3"
TRIANGLE_SLOPE = 0.58  # half-width over height of the upright triangle
# Of the image size: the disc's radius, the square's half side / 0.85, the triangle's half height
# (its half base is 1.16 times that). A shape may touch the border, and a large triangle near a
# side is cut by it (measured: 5% of triangles at 32x32), as a photographed object may be.
SHAPE_RADIUS = (0.26, 0.40)
SHAPE_CENTRE = (0.40, 0.60)  # of the image size, for each coordinate


def palette(channels: int) -> np.ndarray:
    """The shapes' colours as uint8 (colours, channels): PALETTE, or GRAY_PALETTE for 1 channel."""
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    return PALETTE if channels == 3 else GRAY_PALETTE


def shape_colours(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, background) palette indices of n shapes: any colour but black on black."""
    fg = rng.integers(0, len(PALETTE) - 1, n)
    return np.where(fg >= BACKGROUND, fg + 1, fg), np.full(n, BACKGROUND)


def make_shapes(num_images: int, image_size: int, channels: int = 3, seed: int = 0, labels: bool = False):
    """Discs, squares and triangles in four colours on black, uint8 (N, S, S, C);
    with channels=1 in GRAY_PALETTE's greys (the same drawing, the same seed).
    Edges are anti-aliased, as a drawing program renders them: a pixel on an
    edge mixes the two colours by the share of it the shape covers
    (clamp(d + 1/2, 0, 1) for d the pixel centre's signed distance inside the
    edge, in pixels). Deterministic in the seed; about a second for 10,000 at 64x64.

    labels=True also returns what each image is: a dict of (N,) arrays "kind"
    (an index into SHAPE_KINDS), "fg" and "bg" (indices into PALETTE), and the
    shape's "radius", "cx" and "cy" in pixels.
    """
    if num_images < 1:
        raise UsageError(f"num_images must be >= 1, got {num_images}")
    rng = np.random.default_rng(seed)
    S = image_size
    kind = rng.integers(0, 3, num_images)
    fg, bg = shape_colours(num_images, rng)
    r = rng.uniform(*SHAPE_RADIUS, num_images) * S
    cx = rng.uniform(*SHAPE_CENTRE, num_images) * S
    cy = rng.uniform(*SHAPE_CENTRE, num_images) * S
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) + 0.5
    colours = palette(channels)
    out = np.empty((num_images, S, S, channels), np.uint8)
    slant = np.float32(np.sqrt(1 + TRIANGLE_SLOPE**2))

    def inside(k, dx, dy, rr):
        """Signed distance inside the edge of shape kind k, in pixels (positive inside)."""
        if k == 0:
            return rr - np.sqrt(dx**2 + dy**2)
        if k == 1:
            return rr * np.float32(0.85) - np.maximum(np.abs(dx), np.abs(dy))
        # An upright triangle: apex at dy = -r, base at dy = +r.
        return np.minimum(rr - dy, ((dy + rr) * np.float32(TRIANGLE_SLOPE) - np.abs(dx)) / slant)

    for k in range(len(SHAPE_KINDS)):
        which = np.flatnonzero(kind == k)
        for start in range(0, len(which), 1024):  # chunks keep the arrays small
            i = which[start:start + 1024]
            dx = x[None] - cx[i, None, None].astype(np.float32)
            dy = y[None] - cy[i, None, None].astype(np.float32)
            cover = np.clip(inside(k, dx, dy, r[i, None, None].astype(np.float32)) + np.float32(0.5), 0, 1)[..., None]
            out[i] = np.round(cover * colours[fg[i]][:, None, None] + (1 - cover) * colours[bg[i]][:, None, None])
    if labels:
        return out, {"kind": kind, "fg": fg, "bg": bg, "radius": r, "cx": cx, "cy": cy}
    return out


# -- loading, with the uint8 cache ---------------------------------------------------

def load_images(name: str, image_size: int, channels: int = 3, *, data_dir=None, data_url=None,
                cache=None, num_images=None, seed: int = 0, progress=True, cifar_class=None) -> np.ndarray:
    """The dataset `name` as uint8 (N, image_size, image_size, channels), NHWC.

    Decoded once and cached; every framework and every run reuse the cache.
    """
    return DataSource(name, data_dir, data_url, cache, num_images, cifar_class).load(
        image_size, channels, seed, progress)


def _load(source: DataSource, image_size: int, channels: int, seed: int, progress) -> np.ndarray:
    if channels not in (1, 3):
        raise UsageError(f"channels must be 1 or 3, got {channels}")
    dataset, num_images = REGISTRY[source.name], source.num_images
    if dataset.kind == "shapes":
        return make_shapes(num_images or DEFAULT_NUM_SHAPES, image_size, channels, seed)
    root = writable_cache_dir(source.cache_dir)  # before any download or decoding
    if dataset.kind == "folder":
        images = _load_local(dataset, Path(source.data_dir).expanduser(), root, image_size, channels, progress)
    else:
        archive = download(dataset, root, source.data_url, progress)
        stem = archive.name.split(".")[0]
        subset = f"-{source.cifar_class or 'all'}" if dataset.kind == "cifar" else ""
        cache_file = archive.with_name(f"{stem}-{dataset.digest[:12]}{subset}-{image_size}px-c{channels}.npy")
        if dataset.kind == "archive":
            build = lambda: decode_folder(extract(archive, archive.with_name(stem)), image_size, channels, progress)
        elif dataset.kind == "cifar":
            build = lambda: resize_rgb(read_cifar_images(archive, source.cifar_class), image_size, channels)
        else:
            build = lambda: resize_all(read_idx_images(archive), image_size, channels)
        images = _cached(cache_file, image_size, channels, build)
    return images[:num_images] if num_images else images


def _load_local(dataset: Dataset, data_dir: Path, root: Path, image_size: int, channels: int, progress):
    """A dataset on the user's disk: --data-dir is a folder of images, or holds the
    dataset's folder (img_align_celeba/) or archive (img_align_celeba.zip)."""
    hint = dataset.by_hand.format(data_dir=flag_of(DataSource, "data_dir"))
    source = data_dir
    if dataset.filename:
        folder, archive = data_dir / dataset.filename.split(".")[0], data_dir / dataset.filename
        source = folder if folder.is_dir() else archive if archive.is_file() else data_dir
    elif (data_dir / "data.mdb").is_file():
        raise DataError(f"{data_dir} holds an LMDB database, not images" + (f"; {hint}" if hint else ""))
    key = _local_key(source, dataset.crop)
    name = source.resolve().name.split(".")[0] if source.is_file() else source.resolve().name
    cache_file = root / dataset.name / f"{name}-{key[:12]}-{image_size}px-c{channels}.npy"
    if source.is_file():
        def build():
            _check_by_hand_archive(source, dataset)
            return decode_zip(source, image_size, channels, progress, dataset.crop, hint)
    else:
        build = lambda: decode_folder(source, image_size, channels, progress, dataset.crop, hint)
    return _cached(cache_file, image_size, channels, build)


def _check_by_hand_archive(archive: Path, dataset: Dataset):
    """A fetched-by-hand archive is used as it is; one that is not the published
    file (a re-zipped copy, say) gets a warning, not a refusal."""
    if dataset.digest and (actual := file_digest(archive, dataset.algorithm)) != dataset.digest:
        warnings.warn(f"{archive} is not the published {dataset.filename} ({dataset.algorithm.upper()} "
                      f"{actual}, published {dataset.digest}); using it anyway", stacklevel=3)


def _local_key(source: Path, crop: int = 0) -> str:
    """A digest of the rules and of a folder's listing (names, sizes, modification
    times) or of one archive's size and modification time."""
    h = hashlib.sha1(f"{DECODE_RULES}-crop{crop}".encode())
    for path in image_files(source) if source.is_dir() else [source]:
        try:
            st = path.stat()
        except OSError:  # a broken link: listed (and counted unreadable), keyed by the link itself
            try:
                st = path.lstat()
            except OSError:
                continue  # gone since the listing
        relative = path.relative_to(source) if path != source else path.name
        h.update(f"{relative}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
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
                    layout: str = "NCHW", start: int = 0, shard: tuple[int, int] = (0, 1)):
    """Yield the epoch's batches as float32 in [-1, 1], laid out NCHW or NHWC.

    The order depends only on (seed, epoch), so every framework gets the same
    batches in the same order, and a resumed run can start at batch `start`.
    shard (rank, size): only that contiguous part of each batch, for one of
    `size` processes sharing it (common.distributed).
    """
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
    if batch_size > len(images):
        raise DataError(f"batch size {batch_size} is larger than the dataset ({len(images)} images)")
    order = np.random.default_rng([seed, epoch]).permutation(len(images))
    rank, size = shard
    per = batch_size // size
    for b in range(start, num_batches(len(images), batch_size)):
        batch = images[order[b * batch_size + rank * per:b * batch_size + (rank + 1) * per]]
        if layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        yield np.ascontiguousarray(batch, dtype=np.float32) / np.float32(127.5) - np.float32(1.0)
