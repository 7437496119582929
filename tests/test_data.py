"""common.data: the real download path against a local HTTP server, its
failures, decoding, the cache, and the batches every framework receives."""

import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import data
from common.data import (CIFAR10_CLASSES, DataError, Dataset, DataSource, UsageError, extract, iterate_batches,
                         load_images, make_shapes, num_batches, register)
from common.data.__main__ import main as data_main
from helpers import one_line_error, run_main

SHARED_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "pokemon-sprites-809.zip"
SHARED_SHA1 = "c905f930ce9b31d61a8425892321089887fd20bc"  # from ../shared/data/README.md
needs_shared = pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f"{SHARED_ZIP} not present")


class Server:
    """A static HTTP server on 127.0.0.1 for one directory, counting requests."""

    def __init__(self, root: Path):
        handler = lambda *a, **k: Handler(*a, directory=str(root), **k)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.requests = []
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)  # a short poll: stop() returns at once
        self.thread.start()

    @property
    def requests(self):
        return self.httpd.requests

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    server = Server(root)
    yield root, server
    server.stop()


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def files_in(folder: Path):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def sprites(served):
    root, server = served
    shutil.copy(SHARED_ZIP, root / SHARED_ZIP.name)  # the original is never written to
    name = "pokemon-809-test"
    register(Dataset(name, "archive", SHARED_ZIP.name, server.url, SHARED_SHA1, "sha1"))
    yield name, root, server
    data.REGISTRY.pop(name)


@needs_shared
def test_real_sprites_end_to_end(sprites, cache):
    name, _, server = sprites
    images = load_images(name, 32, cache=cache, progress=False)
    assert images.shape == (809, 32, 32, 3) and images.dtype == np.uint8
    assert server.requests == [f"/{SHARED_ZIP.name}"]
    # RGBA and palette sprites were composited onto white: their transparent
    # corners are white, not the black that dropping alpha would leave.
    assert (images[:, 0, 0] == 255).all(axis=1).sum() >= 522 + 199
    assert images.std() > 30  # real pictures, not a blank array
    # A second load uses the uint8 cache: no network, even with the server gone.
    server.stop()
    again = load_images(name, 32, cache=cache, progress=False)
    assert np.array_equal(images, again) and len(server.requests) == 1
    cached = [f for f in files_in(cache) if f.endswith(".npy")]
    assert len(cached) == 1 and SHARED_SHA1[:12] in cached[0] and "32px" in cached[0]
    # And batches come out of it.
    batch = next(iterate_batches(images, 16, seed=0, epoch=0, layout="NCHW"))
    assert batch.shape == (16, 3, 32, 32) and batch.dtype == np.float32


@needs_shared
def test_an_unreadable_cache_is_rebuilt_without_downloading(sprites, cache):
    name, _, server = sprites
    images = load_images(name, 16, cache=cache, progress=False)
    (npy,) = [p for p in cache.rglob("*.npy")]
    npy.write_bytes(b"not a numpy file")
    assert np.array_equal(load_images(name, 16, cache=cache, progress=False), images)
    assert len(server.requests) == 1


@needs_shared
def test_flipped_byte_is_a_digest_error_and_leaves_the_cache_empty(sprites, cache):
    name, root, server = sprites
    blob = bytearray(SHARED_ZIP.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (root / SHARED_ZIP.name).write_bytes(bytes(blob))
    actual = hashlib.sha1(blob).hexdigest()
    with pytest.raises(DataError) as e:
        load_images(name, 32, cache=cache, progress=False)
    assert SHARED_SHA1 in str(e.value) and actual in str(e.value) and "\n" not in str(e.value)
    assert files_in(cache) == []


def test_unreachable_host_gives_the_offline_message(served, cache):
    root, server = served
    server.stop()
    register(Dataset("gone", "archive", "gone.zip", server.url, "0" * 40))
    try:
        with pytest.raises(DataError) as e:
            load_images("gone", 32, cache=cache, progress=False)
    finally:
        data.REGISTRY.pop("gone")
    message = str(e.value)
    assert f"{server.url}gone.zip" in message and "\n" not in message
    assert f"place the file by hand at {cache / 'gone' / 'gone.zip'}" in message
    assert "--data shapes" in message
    assert files_in(cache) == []


def test_data_url_and_cache_dir_come_from_the_environment(served, tmp_path, monkeypatch):
    root, server = served
    archive = make_zip(root / "tiny.zip", {"a/x.png": png_bytes((255, 0, 0))})
    register(Dataset("tiny", "archive", "tiny.zip", "http://127.0.0.1:9/nowhere/",
                     hashlib.sha1(archive.read_bytes()).hexdigest()))
    monkeypatch.setenv("DCGAN_DATA_URL", server.url)
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(tmp_path / "envcache"))
    try:
        images = load_images("tiny", 16, progress=False)
    finally:
        data.REGISTRY.pop("tiny")
    assert images.shape == (1, 16, 16, 3) and tuple(images[0, 8, 8]) == (255, 0, 0)
    assert (tmp_path / "envcache" / "tiny" / "tiny.zip").exists()


def test_a_preexisting_file_with_a_wrong_digest_is_named_not_deleted(cache):
    register(Dataset("placed", "archive", "placed.zip", "http://127.0.0.1:9/", "0" * 40))
    target = cache / "placed" / "placed.zip"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"something the user put here")
    try:
        with pytest.raises(DataError, match="delete it to download again"):
            load_images("placed", 16, cache=cache, progress=False)
    finally:
        data.REGISTRY.pop("placed")
    assert target.read_bytes() == b"something the user put here"


# -- extraction ----------------------------------------------------------------

def png_bytes(color, size=(20, 12), mode="RGB"):
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


def make_zip(path, entries):
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)
    return path


@pytest.mark.parametrize("entry", ["../evil.png", "a/../../evil.png", "/abs/evil.png"])
def test_zip_entries_leaving_the_target_are_refused(tmp_path, entry):
    archive = make_zip(tmp_path / "bad.zip", {"ok/a.png": png_bytes((0, 0, 0)), entry: b"x"})
    target = tmp_path / "out" / "bad"
    with pytest.raises(DataError, match="refusing entry"):
        extract(archive, target)
    assert files_in(tmp_path) == ["bad.zip"]  # nothing extracted anywhere, no temp left


def test_zip_through_the_whole_path_is_refused_too(served, cache):
    root, server = served
    archive = make_zip(root / "evil.zip", {"../evil.png": png_bytes((0, 0, 0))})
    register(Dataset("evil", "archive", "evil.zip", server.url, hashlib.sha1(archive.read_bytes()).hexdigest()))
    try:
        with pytest.raises(DataError, match="refusing entry '../evil.png'"):
            load_images("evil", 16, cache=cache, progress=False)
    finally:
        data.REGISTRY.pop("evil")
    assert files_in(cache) == ["evil/evil.zip"]  # the verified download stays; nothing extracted


def test_tar_links_are_refused_and_plain_tars_extract(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as t:
        blob = png_bytes((0, 255, 0))
        info = tarfile.TarInfo("imgs/g.png")
        info.size = len(blob)
        t.addfile(info, io.BytesIO(blob))
    assert files_in(extract(good, tmp_path / "good")) == ["imgs/g.png"]
    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as t:
        link = tarfile.TarInfo("imgs/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(DataError, match="refusing link entry 'imgs/link.png'"):
        extract(bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# -- decoding and folders ------------------------------------------------------------

def test_folder_decodes_what_it_can_and_counts_the_rest(tmp_path, cache):
    folder = tmp_path / "imgs"
    (folder / "cats").mkdir(parents=True)
    (folder / "dogs").mkdir()
    Image.new("RGB", (40, 20), (0, 0, 255)).save(folder / "cats" / "wide.png")
    Image.new("RGBA", (16, 16), (255, 0, 0, 0)).save(folder / "cats" / "clear.png")   # fully transparent
    Image.new("L", (16, 16), 90).save(folder / "dogs" / "gray.png")
    Image.new("RGB", (16, 16), (0, 200, 0)).save(folder / "dogs" / "photo.png", format="JPEG")  # JPEG named .png
    Image.new("P", (16, 16), 3).save(folder / "dogs" / "palette.gif")
    (folder / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / ".DS_Store").write_bytes(b"\0\0")  # hidden: ignored, not counted
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\) of 6 .*broken.png"):
        images = load_images("folder", 16, data_dir=folder, cache=cache, progress=False)
    assert images.shape == (5, 16, 16, 3)
    by_name = dict(zip(["clear", "wide", "gray", "palette", "photo"], images))  # sorted walk order
    assert tuple(by_name["clear"][0, 0]) == (255, 255, 255)  # transparency -> white
    assert tuple(by_name["wide"][8, 8]) == (0, 0, 255)
    assert tuple(by_name["gray"][8, 8]) == (90, 90, 90)
    assert abs(int(by_name["photo"][8, 8, 1]) - 200) < 4  # decoded as the JPEG it is
    with pytest.warns(UserWarning, match="skipped 1"):
        gray = load_images("folder", 16, 1, data_dir=folder, cache=cache, progress=False)
    assert gray.shape == (5, 16, 16, 1)


def test_non_square_images_are_resized_on_the_short_side_and_centre_cropped(tmp_path):
    img = np.zeros((20, 60, 3), np.uint8)
    img[:, 20:40] = 255  # a white middle third
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = data.decode_image(tmp_path / "wide.png", 10)
    assert out.shape == (10, 10, 3)
    assert out[:, 2:8].min() > 200  # the crop kept the middle: mostly white


def test_a_folder_with_nothing_readable_is_an_error(tmp_path, cache):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning), pytest.raises(DataError, match="no readable image"):
        load_images("folder", 16, data_dir=tmp_path / "junk", cache=cache, progress=False)


def test_fashion_mnist_idx_is_resized_and_replicated(served, cache):
    root, server = served
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    blob = gzip.compress((2051).to_bytes(4, "big") + (7).to_bytes(4, "big") + (28).to_bytes(4, "big")
                         + (28).to_bytes(4, "big") + pixels.tobytes())
    (root / "train-images-idx3-ubyte.gz").write_bytes(blob)
    official = data.REGISTRY["fashion-mnist"]
    assert (official.algorithm, len(official.digest)) == ("md5", 32)
    register(Dataset("fmnist-test", "idx", official.filename, server.url, hashlib.md5(blob).hexdigest(), "md5"))
    try:
        three = load_images("fmnist-test", 32, 3, cache=cache, progress=False)
        one = load_images("fmnist-test", 28, 1, cache=cache, progress=False)
    finally:
        data.REGISTRY.pop("fmnist-test")
    assert three.shape == (7, 32, 32, 3)
    assert np.array_equal(three[..., 0], three[..., 2])
    assert np.array_equal(one[..., 0], pixels)  # 28 -> 28: untouched
    assert len(server.requests) == 1


# -- shapes -----------------------------------------------------------------------

def test_shapes_are_deterministic_in_the_seed():
    a, b, c = make_shapes(300, 32, seed=1), make_shapes(300, 32, seed=1), make_shapes(300, 32, seed=2)
    assert a.shape == (300, 32, 32, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    for img in a[:50]:  # a plain background and one shape of another colour, edges anti-aliased
        colours, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
        bg, fg = colours[np.argsort(counts)[::-1][:2]].astype(float)
        assert (img[0, 0] == img[-1, -1]).all() and (img[0, 0] == bg).all()  # corners: background
        assert counts[np.argsort(counts)[::-1][:2]].sum() >= 0.8 * 32 * 32  # mostly the two colours
        # every other colour is a mix of the two (an edge pixel), to rounding
        share = ((colours - bg) @ (fg - bg)) / ((fg - bg) @ (fg - bg))
        mix = bg + share[:, None] * (fg - bg)
        assert np.abs(colours - mix).max() <= 1.0 and (share > -0.01).all() and (share < 1.01).all()
        shape_fraction = 1 - (img == img[0, 0]).all(axis=-1).mean()
        assert 0.05 < shape_fraction < 0.6
    assert load_images("shapes", 16, num_images=12).shape == (12, 16, 16, 3)


def test_one_channel_shapes_draw_each_colour_as_a_visible_grey():
    rgb, labels = make_shapes(400, 16, seed=5, labels=True)
    grey = make_shapes(400, 16, channels=1, seed=5)
    assert grey.shape == (400, 16, 16, 1) and (grey[:, 0, 0] == 0).all()  # black backgrounds
    # one grey per colour, far apart: luminance would draw blue at 29
    level = {int(k): set(np.unique(grey[labels["fg"] == k].max(axis=(1, 2, 3)))) for k in np.unique(labels["fg"])}
    assert len(level) == 4 and all(len(v) == 1 for v in level.values())
    greys = sorted(next(iter(v)) for v in level.values())
    assert greys[0] >= 64 and min(np.diff(greys)) >= 60, greys
    # the same drawing as in RGB: each pixel's share of the shape, to the rounding of each
    share_grey = grey[..., 0] / grey.max(axis=(1, 2, 3))[:, None, None]
    share_rgb = rgb.max(axis=-1) / 255
    assert np.abs(share_grey - share_rgb).max() <= 0.5 / 64 + 0.5 / 255 + 1e-6


# -- batches -----------------------------------------------------------------------

IMAGES = make_shapes(100, 16, seed=0)


def test_batches_range_dtype_and_count():
    batches = list(iterate_batches(IMAGES, 32, seed=0, epoch=0))
    assert len(batches) == num_batches(100, 32) == 3  # the partial batch of 4 is dropped
    for b in batches:
        assert b.dtype == np.float32 and b.shape == (32, 3, 16, 16)
        assert b.min() >= -1.0 and b.max() <= 1.0
    assert {b.min() for b in batches} == {-1.0} or min(b.min() for b in batches) < -0.9


def test_layouts_agree():
    nchw = list(iterate_batches(IMAGES, 10, seed=3, epoch=1, layout="NCHW"))
    nhwc = list(iterate_batches(IMAGES, 10, seed=3, epoch=1, layout="NHWC"))
    for a, b in zip(nchw, nhwc):
        assert np.array_equal(a, b.transpose(0, 3, 1, 2))


def test_same_seed_same_batches_other_seed_or_epoch_different():
    first = np.stack(list(iterate_batches(IMAGES, 10, seed=3, epoch=0)))
    assert np.array_equal(first, np.stack(list(iterate_batches(IMAGES, 10, seed=3, epoch=0))))
    assert not np.array_equal(first, np.stack(list(iterate_batches(IMAGES, 10, seed=4, epoch=0))))
    assert not np.array_equal(first, np.stack(list(iterate_batches(IMAGES, 10, seed=3, epoch=1))))
    # A resumed epoch starts where it left off.
    rest = np.stack(list(iterate_batches(IMAGES, 10, seed=3, epoch=0, start=4)))
    assert np.array_equal(rest, first[4:])
    # Every image of the epoch is seen once: the batches are a permutation.
    seen = np.round((first.reshape(100, 3, 16, 16) + 1) * 127.5).astype(np.uint8)
    assert sorted(map(bytes, seen)) == sorted(map(bytes, IMAGES.transpose(0, 3, 1, 2)))


def test_batch_larger_than_dataset_is_an_error():
    with pytest.raises(DataError, match="larger than the dataset"):
        next(iterate_batches(IMAGES, 101, seed=0, epoch=0))


# -- python -m common.data show ---------------------------------------------------------

def test_show_writes_the_books_4x5_grid(tmp_path):
    out = tmp_path / "grid.png"
    proc = subprocess.run([sys.executable, "-m", "common.data", "show", "shapes", "--out", str(out),
                           "--image-size", "32", "--num-images", "30"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as img:
        assert img.size == (5 * 34 + 2, 4 * 34 + 2)  # 5 columns, 4 rows, 2-pixel gaps


@pytest.mark.parametrize("args,status,message", [
    (["show", "folder"], 2, "--data folder needs --data-dir"),
    (["show", "imagenet"], 2, "invalid choice: 'imagenet'"),
    (["show", "shapes", "--num-images", "0"], 2, "--num-images must be >= 1"),
    (["show", "shapes", "--data-dir", "."], 2, "--data-dir is read only with --data folder, celeba or lsun"),
    (["show", "folder", "--data-dir", "{tmp}"], 2, "is not a directory"),
    (["show", "shapes", "--image-size", "0"], 2, "--image-size must be >= 1"),
    (["show", "pokemon", "--data-url", "some/plain/path"], 2, "--data-url must be a URL"),
    (["show", "pokemon", "--data-url", "http://127.0.0.1:9/", "--cache-dir", "{tmp}"], 1, "--data shapes"),
])
def test_show_errors_are_one_line(tmp_path, capsys, args, status, message):
    args = [a.replace("{tmp}", str(tmp_path / "c")) for a in args]
    one_line_error(capsys, status, run_main(data_main, args), message)
    assert capsys.readouterr().out == ""
    assert files_in(tmp_path) == []


# -- the datasets DCGAN users train on: MNIST, CIFAR-10, CelebA, LSUN ------------------
# Each in its real format, written here, small; served locally or read from a folder.

def idx_gz(pixels: np.ndarray) -> bytes:
    """MNIST's format: a gzipped IDX file of uint8 images (N, rows, cols)."""
    n, rows, cols = pixels.shape
    return gzip.compress(b"".join(v.to_bytes(4, "big") for v in (2051, n, rows, cols)) + pixels.tobytes())


def cifar_tarball(path: Path, per_batch: int = 6, seed: int = 0, batches=range(1, 6)):
    """CIFAR-10's python archive in miniature: cifar-10-batches-py/data_batch_1..5 and
    batches.meta, pickled dicts with bytes keys (protocol 2, as the originals), gzipped.
    Labels are of the first nine classes (no truck). Returns all the images as (N, 3072)
    CHW rows and their labels."""
    rng = np.random.default_rng(seed)
    rows, labels = [], []
    with tarfile.open(path, "w:gz") as t:
        def add(name, obj):
            blob = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
        add("batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_cases_per_batch": per_batch,
                             b"num_vis": 3072})
        for b in batches:
            data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            lab = [int(x) for x in rng.integers(0, 9, per_batch)]
            add(f"data_batch_{b}", {b"batch_label": f"training batch {b} of 5".encode(), b"labels": lab,
                                    b"data": data,
                                    b"filenames": [f"img_{b}_{i}.png".encode() for i in range(per_batch)]})
            rows.append(data)
            labels += lab
    return np.concatenate(rows), np.array(labels)


def jpeg_bytes(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **options)
    return buf.getvalue()


def celeba_face(colour=(200, 30, 30)) -> Image.Image:
    """A 178x218 'aligned face': the central 116x116 one colour, the border blue.
    The 108x108 centre crop sees only the colour; the shorter-side crop (178x178)
    would show blue at the edges."""
    img = Image.new("RGB", (178, 218), (0, 0, 255))
    img.paste(colour, ((178 - 116) // 2, (218 - 116) // 2, (178 + 116) // 2, (218 + 116) // 2))
    return img


@pytest.fixture
def official(monkeypatch):
    """Give an official entry the digest of the tiny file a test serves (the real
    file's digest stays checked everywhere else)."""
    def swap(name, blob):
        dataset = data.REGISTRY[name]
        monkeypatch.setitem(data.REGISTRY, name, dataclasses.replace(
            dataset, digest=hashlib.new(dataset.algorithm, blob).hexdigest()))
    return swap


def test_the_official_entries_carry_the_published_digests():
    mnist, cifar, celeba = (data.REGISTRY[n] for n in ("mnist", "cifar10", "celeba"))
    # MNIST as published (and as torchvision checks it), from PyTorch's mirror of it.
    assert (mnist.kind, mnist.filename, mnist.algorithm) == ("idx", "train-images-idx3-ubyte.gz", "md5")
    assert mnist.digest == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert mnist.base_url == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert (cifar.kind, cifar.filename, cifar.algorithm) == ("cifar", "cifar-10-python.tar.gz", "md5")
    assert cifar.digest == "c58f30108f718f92721af3b95e74349a" and cifar.base_url == "https://www.cs.toronto.edu/~kriz/"
    assert (celeba.kind, celeba.filename, celeba.algorithm) == ("folder", "img_align_celeba.zip", "md5")
    assert celeba.crop == 108 and celeba.base_url == ""  # no download: fetched by hand
    for d in (mnist, cifar, celeba):
        assert len(d.digest) == 32 and int(d.digest, 16) >= 0
    assert data.DECODE_RULES != "rgb-white-bicubic-centercrop-v1"  # bumped: v1 caches are not reused


def test_mnist_downloads_from_the_given_mirror_and_is_cached(served, cache, official, monkeypatch):
    root, server = served
    pixels = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    blob = idx_gz(pixels)
    (root / "train-images-idx3-ubyte.gz").write_bytes(blob)
    official("mnist", blob)
    three = load_images("mnist", 32, data_url=server.url, cache=cache, progress=False)
    assert three.shape == (5, 32, 32, 3) and np.array_equal(three[..., 0], three[..., 1])
    monkeypatch.setenv("DCGAN_DATA_URL", server.url)  # the environment's mirror works the same
    one = load_images("mnist", 28, 1, cache=cache, progress=False)
    assert np.array_equal(one[..., 0], pixels)
    assert server.requests == ["/train-images-idx3-ubyte.gz"]  # downloaded once, decoded twice, cached
    again = load_images("mnist", 32, cache=cache, progress=False)
    assert np.array_equal(again, three) and len(server.requests) == 1
    assert sorted(files_in(cache)) == sorted(["mnist/train-images-idx3-ubyte.gz"] + [
        f"mnist/train-images-idx3-ubyte-{data.REGISTRY['mnist'].digest[:12]}-{s}-{data.DECODE_RULES}.npy"
        for s in ("32px-c3", "28px-c1")])


def test_cifar10_reads_the_pickled_batches_and_filters_a_class(served, cache, official):
    root, server = served
    rows, labels = cifar_tarball(root / "cifar-10-python.tar.gz")
    official("cifar10", (root / "cifar-10-python.tar.gz").read_bytes())
    expected = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> HWC images
    everything = load_images("cifar10", 32, data_url=server.url, cache=cache, progress=False)
    assert everything.shape == (30, 32, 32, 3) and np.array_equal(everything, expected)
    cats = load_images("cifar10", 32, data_url=server.url, cache=cache, progress=False, cifar_class="cat")
    assert np.array_equal(cats, expected[labels == CIFAR10_CLASSES.index("cat")]) and len(cats) >= 1
    spelt_out = load_images("cifar10", 32, data_url=server.url, cache=cache, progress=False, cifar_class="all")
    assert np.array_equal(spelt_out, everything)
    gray = load_images("cifar10", 16, 1, data_url=server.url, cache=cache, progress=False, cifar_class="cat")
    assert gray.shape == (len(cats), 16, 16, 1)
    assert server.requests == ["/cifar-10-python.tar.gz"]  # one archive, three caches
    npys = [f for f in files_in(cache) if f.endswith(".npy")]
    assert {("-all-" in f, "-cat-" in f) for f in npys} == {(True, False), (False, True)} and len(npys) == 3
    with pytest.raises(DataError, match="no truck image in"):
        load_images("cifar10", 32, data_url=server.url, cache=cache, progress=False, cifar_class="truck")


def test_cifar_archives_that_are_not_cifar_are_refused(tmp_path):
    broken = tmp_path / "short.tar.gz"
    cifar_tarball(broken, per_batch=2, batches=range(1, 5))
    with pytest.raises(DataError, match="no cifar-10-batches-py/data_batch_5"):
        data.read_cifar_images(broken)
    linked = tmp_path / "linked.tar"
    with tarfile.open(linked, "w") as t:
        link = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(DataError, match="refusing 'cifar-10-batches-py/data_batch_1', which is not a regular file"):
        data.read_cifar_images(linked)
    # A pickle naming anything but NumPy's array is refused before it can run.
    evil = tmp_path / "evil.tar"
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))
    with tarfile.open(evil, "w") as t:
        blob = pickle.dumps({b"data": Payload(), b"labels": []}, protocol=2)
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(blob)
        t.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match=r"is not a CIFAR-10 batch \(refusing (posix|os)\.mkdir\)"):
        data.read_cifar_images(evil)
    assert not marker.exists()


@pytest.mark.parametrize("changes,message", [
    ({"name": "cifar10", "cifar_class": "kitten"},
     "--cifar-class must be one of airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck or all, "
     "got 'kitten'"),
    ({"name": "mnist", "cifar_class": "cat"},
     "--cifar-class is read only with --data cifar10 (this run's --data is mnist)"),
    ({"name": "celeba"}, "--data celeba needs --data-dir DIR: download \"Align&Cropped Images\" (img_align_celeba.zip"),
    ({"name": "lsun"}, "--data lsun needs --data-dir DIR: LSUN ships LMDB databases"),
    ({"name": "mnist", "data_dir": "."}, "--data-dir is read only with --data folder, celeba or lsun"),
])
def test_data_source_rules(changes, message):
    with pytest.raises(UsageError) as e:
        DataSource(**changes)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_the_by_hand_instructions_say_what_to_fetch_and_where():
    with pytest.raises(UsageError) as e:
        DataSource("celeba")
    assert all(s in str(e.value) for s in ("img_align_celeba.zip", "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
                                           "Align&Cropped Images", "--data-dir DIR", "img_align_celeba/"))
    with pytest.raises(UsageError) as e:
        DataSource("lsun")
    assert all(s in str(e.value) for s in ("https://github.com/fyu/lsun", "python download.py -c bedroom",
                                           "python data.py export bedroom_train_lmdb --out_dir DIR --flat",
                                           "--data-dir DIR"))
    assert DataSource("cifar10", cifar_class="all").cifar_class is None  # the default, spelt out
    assert DataSource("celeba", data_dir=".").data_dir == "."


@pytest.fixture
def faces(tmp_path):
    """CelebA as it comes: img_align_celeba.zip of 178x218 JPEGs, and the same extracted."""
    colours = [(200, 30, 30), (30, 160, 30), (230, 200, 40)]
    blobs = {f"img_align_celeba/{i + 1:06d}.jpg": jpeg_bytes(celeba_face(c)) for i, c in enumerate(colours)}
    zipped = tmp_path / "zipped"
    zipped.mkdir()
    make_zip(zipped / "img_align_celeba.zip", blobs)
    extracted = tmp_path / "extracted"
    for name, blob in blobs.items():
        (extracted / name).parent.mkdir(parents=True, exist_ok=True)
        (extracted / name).write_bytes(blob)
    return zipped, extracted, colours


def test_celeba_from_the_zip_or_the_folder_crops_the_central_108(faces, cache):
    zipped, extracted, colours = faces
    with pytest.warns(UserWarning, match=r"is not the published img_align_celeba.zip \(MD5 [0-9a-f]{32}, "
                                         r"published 00d2c5bc6d35e252742224ab0c1e8fcb\); using it anyway"):
        from_zip = load_images("celeba", 16, data_dir=zipped, cache=cache, progress=False)
    from_folder = load_images("celeba", 16, data_dir=extracted, cache=cache, progress=False)
    the_folder = load_images("celeba", 16, data_dir=extracted / "img_align_celeba", cache=cache, progress=False)
    assert from_zip.shape == (3, 16, 16, 3)
    assert np.array_equal(from_zip, from_folder) and np.array_equal(from_folder, the_folder)
    for img, colour in zip(from_zip, colours):  # only the face's colour (JPEG's error aside): no blue border
        assert np.abs(img.astype(int) - colour).max() <= 24, (img.min(axis=(0, 1)), img.max(axis=(0, 1)), colour)
    # The shorter-side crop a plain folder gets would keep blue at the left and right edges.
    plain = load_images("folder", 16, data_dir=extracted, cache=cache, progress=False)
    assert (plain[:, 8, 0, 2] > 200).all() and (plain[:, 8, 0, 0] < 60).all()
    # The crop is a decoding rule: the caches are the crop's, apart from the plain folder's.
    assert len([f for f in files_in(cache) if f.startswith("celeba/")]) == 2  # zip, folder (twice the same key)


def test_celeba_cache_is_reused_and_the_zip_is_never_written(faces, cache, monkeypatch):
    zipped, _, _ = faces
    before = (zipped / "img_align_celeba.zip").read_bytes()
    with pytest.warns(UserWarning, match="not the published"):
        first = load_images("celeba", 8, data_dir=zipped, cache=cache, progress=False)
    monkeypatch.setattr(data, "decode_image", lambda *a, **k: pytest.fail("decoded again"))
    assert np.array_equal(load_images("celeba", 8, data_dir=zipped, cache=cache, progress=False), first)
    assert (zipped / "img_align_celeba.zip").read_bytes() == before and files_in(zipped) == ["img_align_celeba.zip"]


def test_celeba_dir_without_the_images_says_what_to_fetch(tmp_path, cache):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as e:
        load_images("celeba", 16, data_dir=tmp_path / "empty", cache=cache, progress=False)
    message = str(e.value)
    assert f"no readable image in {tmp_path / 'empty'}" in message and "img_align_celeba.zip" in message
    assert "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html" in message and "\n" not in message


def test_lsun_reads_an_exported_flat_folder(tmp_path, cache):
    folder = tmp_path / "bedroom"
    folder.mkdir()
    Image.new("RGB", (340, 256), (10, 20, 200)).save(folder / "0001a.webp", format="WEBP", lossless=True)
    Image.new("RGB", (256, 300), (200, 200, 20)).save(folder / "0001b.jpg", format="JPEG", quality=95)
    # LSUN's export names every image .webp, whatever it holds (the LMDB values are JPEGs).
    (folder / "0001c.webp").write_bytes(jpeg_bytes(Image.new("RGB", (256, 256), (20, 180, 40))))
    images = load_images("lsun", 32, data_dir=folder, cache=cache, progress=False)
    assert images.shape == (3, 32, 32, 3)
    for img, colour in zip(images, [(10, 20, 200), (200, 200, 20), (20, 180, 40)]):
        assert np.abs(img.astype(int) - colour).max() <= 6
    assert [f for f in files_in(cache) if f.startswith("lsun/bedroom-")]


def test_lsun_lmdb_instead_of_images_says_how_to_export(tmp_path, cache):
    lmdb = tmp_path / "bedroom_train_lmdb"
    lmdb.mkdir()
    (lmdb / "data.mdb").write_bytes(b"\0" * 64)
    with pytest.raises(DataError, match=r"holds an LMDB database, not images; .*data\.py export"):
        load_images("lsun", 32, data_dir=lmdb, cache=cache, progress=False)


def test_show_draws_each_dataset(served, tmp_path, capsys, official, faces):
    root, server = served
    pixels = np.random.default_rng(2).integers(0, 256, (25, 28, 28), dtype=np.uint8)
    (root / "train-images-idx3-ubyte.gz").write_bytes(idx_gz(pixels))
    official("mnist", (root / "train-images-idx3-ubyte.gz").read_bytes())
    _, labels = cifar_tarball(root / "cifar-10-python.tar.gz")
    official("cifar10", (root / "cifar-10-python.tar.gz").read_bytes())
    lsun = tmp_path / "lsun"
    lsun.mkdir()
    for i in range(3):
        Image.new("RGB", (300, 256), (80 * i, 50, 50)).save(lsun / f"{i}.webp", format="WEBP")
    zipped, _, _ = faces
    cats = int((labels == CIFAR10_CLASSES.index("cat")).sum())
    runs = [(["mnist", "--data-url", server.url], "mnist: 25 images of 32x32x3"),
            (["cifar10", "--data-url", server.url, "--cifar-class", "cat"], f"cifar10: {cats} images of 32x32x3"),
            (["celeba", "--data-dir", zipped], "celeba: 3 images of 32x32x3"),
            (["lsun", "--data-dir", lsun, "--channels", "1"], "lsun: 3 images of 32x32x1")]
    for args, line in runs:
        out = tmp_path / f"{args[0]}.png"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the test zip is not the published one
            status = run_main(data_main, ["show", *args, "--image-size", "32", "--cache-dir", tmp_path / "cache",
                                          "--out", out])
        captured = capsys.readouterr()
        assert status == 0, captured.err
        assert captured.out.startswith(line) and str(out) in captured.out
        with Image.open(out) as grid:
            assert grid.size == (5 * 34 + 2, 4 * 34 + 2)
    assert len(server.requests) == 2


def test_show_cifar_class_errors_are_one_line(capsys):
    one_line_error(capsys, 2, run_main(data_main, ["show", "cifar10", "--cifar-class", "kitten"]),
                   "--cifar-class must be one of airplane")
    one_line_error(capsys, 2, run_main(data_main, ["show", "mnist", "--cifar-class", "cat"]),
                   "--cifar-class is read only with --data cifar10")
    one_line_error(capsys, 2, run_main(data_main, ["show", "celeba"]), "--data celeba needs --data-dir DIR")


# -- odd image folders ---------------------------------------------------------------

def png_raw(pixels: np.ndarray, bit_depth: int = 16, size=None) -> bytes:
    """A minimal PNG writer (for what Pillow cannot save: 48-bit RGB). Gray (H, W) or
    RGB (H, W, 3), big-endian samples; `size` overrides the header's width and height."""
    colour_type = 2 if pixels.ndim == 3 else 0
    height, width = size or pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\0" + row.astype(dtype).tobytes() for row in pixels)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    gray = np.full((8, 8), 128 * 257, np.uint16)  # mid-gray; clipping would make it white
    gray[:, 4:] = 10 * 257
    Image.fromarray(gray).save(tmp_path / "gray16.png")
    with Image.open(tmp_path / "gray16.png") as img:
        assert img.mode == "I;16"
    out = data.decode_image(tmp_path / "gray16.png", 8)
    assert tuple(out[0, 0]) == (128, 128, 128) and tuple(out[0, 7]) == (10, 10, 10)
    assert data.decode_image(tmp_path / "gray16.png", 8, 1)[0, 0, 0] == 128
    white = np.full((4, 4), 65535, np.uint16)
    (tmp_path / "white16.png").write_bytes(png_raw(white))
    assert (data.decode_image(tmp_path / "white16.png", 4) == 255).all()
    # 48-bit RGB (Pillow reads it as 8-bit RGB, keeping each sample's high byte).
    rgb = np.zeros((8, 8, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 65535, 128 * 257, 30 * 257
    (tmp_path / "rgb48.png").write_bytes(png_raw(rgb))
    out = data.decode_image(tmp_path / "rgb48.png", 8)
    assert np.abs(out[4, 4].astype(int) - (255, 128, 30)).max() <= 1


def test_modes_decode_as_a_viewer_shows_them(tmp_path):
    (tmp_path / "cmyk.jpg").write_bytes(jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0))))  # Adobe, inverted
    with Image.open(tmp_path / "cmyk.jpg") as img:
        assert img.mode == "CMYK"
    assert np.abs(data.decode_image(tmp_path / "cmyk.jpg", 8)[4, 4].astype(int) - (255, 0, 0)).max() <= 4
    palette = [255, 0, 0, 0, 0, 255] + [0] * 762
    opaque = Image.new("P", (16, 16), 1)
    opaque.putpalette(palette)
    opaque.save(tmp_path / "palette.png")
    assert tuple(data.decode_image(tmp_path / "palette.png", 8)[4, 4]) == (0, 0, 255)
    clear = Image.new("P", (16, 16), 0)
    clear.putpalette(palette)
    clear.paste(1, (0, 0, 8, 16))
    clear.save(tmp_path / "clear.png", transparency=0)  # index 0 (red) is transparent: white shows
    out = data.decode_image(tmp_path / "clear.png", 16)
    assert tuple(out[8, 2]) == (0, 0, 255) and tuple(out[8, 12]) == (255, 255, 255)
    la = Image.new("LA", (16, 16), (40, 255))
    la.paste((40, 0), (8, 0, 16, 16))
    la.save(tmp_path / "la.png")
    out = data.decode_image(tmp_path / "la.png", 16, 1)
    assert out[8, 2, 0] == 40 and out[8, 12, 0] == 255


def test_animated_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (16, 16), c) for c in [(255, 0, 0), (0, 0, 255), (0, 255, 0)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    with Image.open(tmp_path / "anim.gif") as img:
        assert img.n_frames == 3
    assert tuple(data.decode_image(tmp_path / "anim.gif", 8)[4, 4]) == (255, 0, 0)


@pytest.mark.parametrize("orientation,stored_as", [(6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270)])
def test_exif_rotated_jpegs_are_decoded_upright(tmp_path, orientation, stored_as):
    upright = Image.new("RGB", (32, 32), (255, 0, 0))
    upright.paste((0, 0, 255), (0, 16, 32, 32))  # red above blue
    exif = Image.Exif()
    exif[0x0112] = orientation  # the camera's way: pixels sideways, the tag says how to turn them
    (tmp_path / "photo.jpg").write_bytes(jpeg_bytes(upright.transpose(stored_as), exif=exif))
    out = data.decode_image(tmp_path / "photo.jpg", 16).astype(int)
    assert np.abs(out[2, 8] - (255, 0, 0)).max() <= 8 and np.abs(out[13, 8] - (0, 0, 255)).max() <= 8


def test_oversized_images_are_skipped_or_drafted_never_a_hang(tmp_path, cache, monkeypatch):
    folder = tmp_path / "big"
    folder.mkdir()
    # A PNG whose header claims 30000x30000 (900 Mpx, past twice Pillow's limit): a few bytes on disk.
    (folder / "bomb.png").write_bytes(png_raw(np.zeros((1, 1), np.uint8), 8, size=(30000, 30000)))
    Image.new("RGB", (40, 40), (0, 200, 0)).save(folder / "ok.png")
    start = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\) of 2 .*bomb.png"):
            images = load_images("folder", 16, data_dir=folder, cache=cache, progress=False)
    assert images.shape == (1, 16, 16, 3) and time.monotonic() - start < 10
    # Between the limit and twice it: a PNG is skipped; a JPEG is decoded at a reduced scale.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    Image.new("RGB", (40, 40), (0, 0, 200)).save(tmp_path / "large.png")
    (tmp_path / "large.jpg").write_bytes(jpeg_bytes(Image.new("RGB", (40, 40), (200, 0, 0))))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(Image.DecompressionBombError, match="40x40 pixels is over the limit of 1000"):
            data.decode_image(tmp_path / "large.png", 16)
        drafted = data.decode_image(tmp_path / "large.jpg", 16)
    assert drafted.shape == (16, 16, 3) and np.abs(drafted[8, 8].astype(int) - (200, 0, 0)).max() <= 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(tmp_path / "large.jpg") as img:  # what draft does: libjpeg decodes at half scale here
            img.draft(None, (16, 16))
            assert img.size == (20, 20)


def test_links_in_folders_are_followed_once_and_cycles_end(tmp_path, cache):
    folder, other = tmp_path / "imgs", tmp_path / "elsewhere"
    (folder / "real").mkdir(parents=True)
    other.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(folder / "real" / "a.png")
    Image.new("RGB", (8, 8), (0, 255, 0)).save(folder / "real" / "b.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(other / "c.png")
    (folder / "link").symlink_to(folder / "real", target_is_directory=True)  # the same folder twice
    (folder / "loop").symlink_to(folder, target_is_directory=True)  # a cycle
    (other / "back").symlink_to(folder, target_is_directory=True)  # a cycle through another folder
    (folder / "outside").symlink_to(other, target_is_directory=True)  # followed: another real folder
    (folder / "alias.png").symlink_to(folder / "real" / "a.png")  # the same file twice
    (folder / "dangling.png").symlink_to(tmp_path / "gone.png")  # broken: counted unreadable
    os.mkfifo(folder / "pipe.png")  # opening it would block: not listed
    listed = [p.relative_to(folder).as_posix() for p in data.image_files(folder)]
    assert listed == ["alias.png", "dangling.png", "link/b.png", "outside/c.png"]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\) of 4 .*dangling.png"):
        images = load_images("folder", 8, data_dir=folder, cache=cache, progress=False)
    assert [tuple(img[4, 4]) for img in images] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_a_new_decoding_rule_rebuilds_the_cache(tmp_path, cache, monkeypatch):
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "imgs" / "x.png")
    first = load_images("folder", 8, data_dir=tmp_path / "imgs", cache=cache, progress=False)
    monkeypatch.setattr(data, "DECODE_RULES", "rgb-white-bicubic-centercrop-v999")
    calls = []
    real = data.decode_image
    monkeypatch.setattr(data, "decode_image", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert np.array_equal(load_images("folder", 8, data_dir=tmp_path / "imgs", cache=cache, progress=False), first)
    assert len(calls) == 1 and len([f for f in files_in(cache) if f.endswith(".npy")]) == 2


def _refuse_work(monkeypatch):
    monkeypatch.setattr(data, "decode_image", lambda *a, **k: pytest.fail("decoded before checking the cache"))
    monkeypatch.setattr(data, "_fetch", lambda *a, **k: pytest.fail("downloaded before checking the cache"))


def test_a_cache_dir_that_is_a_file_is_a_usage_error_before_any_work(tmp_path, served, capsys, monkeypatch):
    root, server = served
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    blocker = tmp_path / "cache-file"
    blocker.write_bytes(b"the user's file")
    register_tiny = Dataset("tiny-served", "archive", "tiny.zip", server.url, "0" * 40)
    monkeypatch.setitem(data.REGISTRY, "tiny-served", register_tiny)
    _refuse_work(monkeypatch)
    for name, options in [("folder", {"data_dir": tmp_path}), ("tiny-served", {})]:
        with pytest.raises(UsageError) as e:
            load_images(name, 8, cache=blocker, progress=False, **options)
        assert str(e.value).startswith(f"--cache-dir {blocker} is not a writable directory (a file, not a directory)")
    with pytest.raises(UsageError, match=r"--cache-dir .*cache-file/sub is not a writable directory"):
        load_images("folder", 8, data_dir=tmp_path, cache=blocker / "sub", progress=False)
    monkeypatch.setenv("DCGAN_CACHE_DIR", str(blocker))
    with pytest.raises(UsageError, match=r"^\$DCGAN_CACHE_DIR .* is not a writable directory"):
        load_images("folder", 8, data_dir=tmp_path, progress=False)
    monkeypatch.delenv("DCGAN_CACHE_DIR")
    one_line_error(capsys, 2, run_main(data_main, ["show", "folder", "--data-dir", tmp_path, "--cache-dir", blocker]),
                   "is not a writable directory")
    assert server.requests == [] and blocker.read_bytes() == b"the user's file"


def test_a_read_only_cache_dir_is_a_usage_error_before_any_work(tmp_path, capsys, monkeypatch):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        try:  # as root, permission bits do not stop writes: nothing to test then
            (locked / "probe").write_bytes(b"")
            (locked / "probe").unlink()
            pytest.skip("running as root: a 0o555 directory is writable")
        except PermissionError:
            pass
        _refuse_work(monkeypatch)
        one_line_error(capsys, 2, run_main(data_main, ["show", "folder", "--data-dir", tmp_path,
                                                       "--cache-dir", locked]),
                       f"--cache-dir {locked} is not a writable directory (Permission denied)")
        assert files_in(locked) == []
    finally:
        locked.chmod(0o755)


def test_a_cache_dir_refusing_writes_is_a_usage_error_even_as_root(tmp_path, monkeypatch):
    """What the test above checks with permission bits, for any user: the write probe fails."""
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    _refuse_work(monkeypatch)
    monkeypatch.setattr(data.tempfile, "TemporaryFile", refuse)
    with pytest.raises(UsageError, match=r"^--cache-dir .*/c is not a writable directory \(Permission denied\); "
                                         r"choose another with --cache-dir DIR$"):
        load_images("folder", 8, data_dir=tmp_path, cache=tmp_path / "c", progress=False)
