"""common.data: the real download path against a local HTTP server, its
failures, decoding, the cache, and the batches every framework receives."""

import gzip
import hashlib
import http.server
import io
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common import data
from common.data import (DataError, Dataset, extract, iterate_batches, load_images, make_shapes,
                         num_batches, register)

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
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
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
    for img in a[:50]:  # a plain background and one shape of another colour
        colours = np.unique(img.reshape(-1, 3), axis=0)
        assert len(colours) == 2
        assert (img[0, 0] == img[-1, -1]).all()  # corners: background
        shape_fraction = 1 - (img == img[0, 0]).all(axis=-1).mean()
        assert 0.05 < shape_fraction < 0.6
    assert make_shapes(10, 16, channels=1).shape == (10, 16, 16, 1)
    assert load_images("shapes", 16, num_images=12).shape == (12, 16, 16, 3)


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
    (["show", "mnist"], 2, "invalid choice: 'mnist'"),
    (["show", "shapes", "--num-images", "0"], 2, "--num-images must be >= 1"),
    (["show", "shapes", "--data-dir", "."], 2, "--data-dir is read only with --data folder"),
    (["show", "pokemon", "--data-url", "some/plain/path"], 2, "--data-url must be a URL"),
    (["show", "pokemon", "--data-url", "http://127.0.0.1:9/", "--cache-dir", "{tmp}"], 1, "--data shapes"),
])
def test_show_errors_are_one_line(tmp_path, capsys, args, status, message):
    from common.data.__main__ import main
    from helpers import one_line_error, run_main

    args = [a.replace("{tmp}", str(tmp_path / "c")) for a in args]
    one_line_error(capsys, status, run_main(main, args), message)
    assert capsys.readouterr().out == ""
    assert files_in(tmp_path) == []
