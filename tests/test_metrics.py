"""common.metrics (SWD, the shapes judge, Fréchet distance, KID, the command line) and
common.fid (FID/KID plumbing with a randomly initialised FID Inception, never the real weights).

Sizes are kept small (16-32 px, 64-256 images) so that the file runs in seconds; the judge is
trained once per session into a temporary cache."""

import importlib.util
import json
import subprocess
import threading
import time

import numpy as np
import pytest

from common import metrics
from common.data import COLOUR_NAMES, SHAPE_KINDS, SHAPES_VERSION, cache_dir, make_shapes
from common.metrics import (as_float_nhwc, feature_fd, frechet_distance, gaussian_blur, image_colours, kid,
                            laplacian_pyramid, load_judge, swd)


def to_float(images_uint8):
    """uint8 NHWC -> float32 in [-1, 1], as the generators produce."""
    return images_uint8.astype(np.float32) / np.float32(127.5) - np.float32(1)


def paint(mask, rng, channels=3):
    """Boolean masks (N, S, S) -> uint8 NHWC images coloured as make_shapes colours its shapes."""
    return np.round(metrics._paint(mask, channels, rng) * 255).astype(np.uint8)


def glint(images, labels):
    """Two white pixels in the middle of each shape that is not white -> (images, their indices)."""
    glinted = images.copy()
    lit = np.flatnonzero(labels["fg"] != COLOUR_NAMES.index("white"))
    for i in lit:
        y, x = int(labels["cy"][i]), int(labels["cx"][i])
        glinted[i, y:y + 2, x] = 255
    return glinted, lit


# -- the input convention --------------------------------------------------------------------

def test_layouts_and_dtypes_are_one_convention():
    u8 = make_shapes(4, 16, seed=3)  # NHWC uint8
    expected = u8.astype(np.float32) / 255
    for images in (u8, u8.transpose(0, 3, 1, 2), to_float(u8), to_float(u8).transpose(0, 3, 1, 2)):
        np.testing.assert_allclose(as_float_nhwc(images), expected, atol=1e-6)
    gray = make_shapes(4, 16, channels=1, seed=3)
    assert as_float_nhwc(gray.transpose(0, 3, 1, 2)).shape == (4, 16, 16, 1)
    assert as_float_nhwc(np.full((1, 3, 8, 8), 5.0)).max() == 1.0  # floats outside [-1, 1] are clipped


@pytest.mark.parametrize("bad,message", [
    (np.zeros((2, 5, 6, 7), np.float32), "cannot tell the layout"),
    (np.zeros((16, 16, 3), np.float32), "4-d batch"),
    (np.zeros((2, 16, 16, 3), np.int32), "uint8"),
    (np.full((2, 16, 16, 3), np.nan, np.float32), "NaN"),
])
def test_bad_images_are_a_clear_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        as_float_nhwc(bad)


# -- sliced Wasserstein distance ----------------------------------------------------------------

def test_pyramid_is_the_reference_one():
    # Karras et al.'s code builds it with scipy.ndimage.convolve(mode='mirror') (as cv2.pyrDown/pyrUp).
    ndimage = pytest.importorskip("scipy.ndimage")
    g = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]]) / 256
    x = make_shapes(4, 64, seed=1).transpose(0, 3, 1, 2).astype(np.float32)
    ref = [x.copy()]
    for _ in range(2):
        low = ndimage.convolve(ref[-1], g[None, None], mode="mirror")[:, :, ::2, ::2]
        up = np.zeros(ref[-1].shape, np.float32)
        up[:, :, ::2, ::2] = low
        ref[-1] = ref[-1] - ndimage.convolve(up, g[None, None] * 4, mode="mirror")
        ref.append(low)
    ours = laplacian_pyramid(x.transpose(0, 2, 3, 1), 3)
    for a, b in zip(ref, ours):
        np.testing.assert_allclose(b.transpose(0, 3, 1, 2), a, atol=1e-3)  # of values up to 255


@pytest.fixture(scope="module")
def swd_sets():
    real = make_shapes(256, 32, seed=0)
    other = make_shapes(256, 32, seed=1)
    rng = np.random.default_rng(5)
    f = to_float(other)
    return real, {"other real": other,
                  "blurred": gaussian_blur(f, 1.0),
                  "noisy": f + np.float32(0.3) * rng.standard_normal(f.shape, np.float32),
                  "uniform noise": rng.uniform(-1, 1, f.shape).astype(np.float32)}


def test_swd_ranks_degradations_of_the_project_data(swd_sets):
    # Measured (256 vs 256 at 32x32, seed 0): other real 19, blurred (sigma 1 px) 51, noisy
    # (N(0, 0.3) in [-1, 1]: the shapes' colours are at -1 and +1, so weaker noise is half
    # clipped away) 90, uniform noise 219. Each must beat the one before by 30%.
    real, sets = swd_sets
    values = {name: swd(real, images)["swd"] for name, images in sets.items()}
    names = list(values)
    for a, b in zip(names, names[1:]):
        assert values[a] * 1.3 < values[b], values
    assert 10 < values["other real"] < 40 and 150 < values["uniform noise"] < 350, values


def test_swd_levels_seed_and_layout():
    real, fake = make_shapes(64, 32, seed=0), make_shapes(64, 32, seed=1)
    result = swd(real, fake, seed=3)
    assert list(result["levels"]) == [32, 16]
    assert result["swd"] == pytest.approx(np.mean(list(result["levels"].values())))
    assert swd(real, fake, seed=3) == result  # same seed, same value, exactly
    other_seed = swd(real, fake, seed=4)["swd"]
    assert other_seed != result["swd"] and other_seed == pytest.approx(result["swd"], rel=0.15)
    # Every accepted form of the same images: the same value (to float32 rounding).
    for r, f in ((real.transpose(0, 3, 1, 2), fake), (to_float(real), to_float(fake).transpose(0, 3, 1, 2))):
        assert swd(r, f, seed=3)["swd"] == pytest.approx(result["swd"], rel=1e-4)
    assert list(swd(make_shapes(8, 64), make_shapes(8, 64, seed=1), nhoods_per_image=4)["levels"]) == [64, 32, 16]
    assert list(swd(make_shapes(8, 16), make_shapes(8, 16, seed=1), nhoods_per_image=4)["levels"]) == [16]


def test_swd_histograms_match_sorting():
    # The default 1-d distances come from 4096-bin histograms over the real projections' range
    # (what falls outside adds its exact distance to the edge); exact=True sorts, as the reference.
    real = make_shapes(64, 32, seed=0)
    for shift in (0.05, 0.8):  # a little, and mostly, outside the real images' range
        fake = to_float(make_shapes(64, 32, seed=1)) + shift
        fast, exact = swd(real, fake), swd(real, fake, exact=True)
        for res in fast["levels"]:
            assert fast["levels"][res] == pytest.approx(exact["levels"][res], rel=2e-3), shift


def test_swd_projects_the_real_images_once(monkeypatch):
    # A run measures itself every epoch against the same real images: a call projects the fakes alone.
    measure = metrics.SWD(make_shapes(32, 32, seed=0))
    calls = []
    real_project = metrics._project
    monkeypatch.setattr(metrics, "_project", lambda desc, *a, **k: calls.append(len(desc)) or real_project(desc, *a, **k))
    first, again = measure(make_shapes(16, 32, seed=1)), measure(make_shapes(16, 32, seed=1))
    assert first == again and calls == [16 * 128] * 2 * 2 * 4  # two calls x two levels x four direction sets


def test_swd_refuses_mismatched_sets():
    with pytest.raises(ValueError, match="differ in image shape"):
        swd(make_shapes(4, 32), make_shapes(4, 16))
    with pytest.raises(ValueError, match="at least 16"):
        swd(make_shapes(4, 8), make_shapes(4, 8))


# -- Fréchet distance and KID ----------------------------------------------------------------------

def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((200, 16)), rng.standard_normal((300, 16)) @ rng.standard_normal((16, 16)) * 0.5 + 1
    mu1, s1, mu2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-8)
    assert feature_fd(a, b) == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-9)


def test_feature_fd_with_fewer_vectors_than_dimensions_is_exact():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((10, 300)), rng.standard_normal((12, 300)) + 0.1
    full = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # (The 300-d computation is the less accurate one: square roots of ~1e-15 eigenvalues that
    # should be 0 add ~1e-8 each.)
    assert feature_fd(a, b) == pytest.approx(full, rel=1e-6)
    assert feature_fd(a, a) == pytest.approx(0, abs=1e-8)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((400, 32))
    same, _ = kid(a, b, subsets=20, subset_size=200)
    shifted, _ = kid(a, b + 0.5, subsets=20, subset_size=200)
    assert abs(same) < 0.01 and shifted > 0.1


# -- the shapes judge ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def judge_cache():
    # The suite's cache (conftest.py): the training runs of other tests use the same 16x16 judge.
    return cache_dir()


@pytest.fixture(scope="session")
def judge(judge_cache):
    return load_judge(16, 3, cache=judge_cache)


def degraded_sets(real_uint8, rng):
    """Degradations the judge never saw in training, as visible as those it did (blur of a
    pixel or more, noise of tens of grey levels, patterns a person sees): other blur kernels,
    another noise law, multiplicative and one-pixel-in-four period-2 patterns, other odd shapes."""
    n, size = len(real_uint8), real_uint8.shape[1]
    x = to_float(real_uint8)
    box3 = lambda z: sum(np.pad(z, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")[:, a:a + size, b:b + size]
                         for a in range(3) for b in range(3)) / 9
    i, j = np.mgrid[0:size, 0:size]
    checker = ((-1.0) ** (i + j))[None, :, :, None]
    one_in_four = ((i % 2 == 0) & (j % 2 == 0))[None, :, :, None] - 0.25
    y, xg = np.mgrid[0:size, 0:size] + 0.5
    cx, cy = (rng.uniform(0.4, 0.6, (2, n, 1, 1)) * size)
    r0 = rng.uniform(0.2, 0.3, (n, 1, 1)) * size
    dx, dy = xg[None] - cx, y[None] - cy
    return {
        "box blur 3x3, twice": box3(box3(x)),
        "gaussian blur 2 px": gaussian_blur(x, 2.0),
        "uniform noise +-0.4": x + rng.uniform(-0.4, 0.4, x.shape),
        "multiplicative checkerboard": (x + 1) * (1 + 0.3 * checker) - 1,
        "one pixel in four": x + 0.6 * one_in_four,
        "crosses": paint(((abs(dx) < 0.3 * r0) & (abs(dy) < r0)) | ((abs(dy) < 0.3 * r0) & (abs(dx) < r0)), rng),
        "two discs": paint((np.hypot(dx - 0.9 * r0, dy) < 0.6 * r0) | (np.hypot(dx + 0.9 * r0, dy) < 0.6 * r0), rng),
        "thin ellipses": paint((dx / r0) ** 2 + (dy / (0.3 * r0)) ** 2 <= 1, rng),
    }


def test_judge_recognises_real_shapes_and_their_kinds(judge):
    real, labels = make_shapes(400, 16, seed=4242, labels=True)  # not a seed used in training
    kinds, probs = judge.classify(real)
    assert (kinds >= 0).mean() >= 0.95  # measured: 0.99
    assert (kinds == labels["kind"]).mean() >= 0.95
    report = judge.report(real)
    assert report["recognised"] == pytest.approx((kinds >= 0).mean())
    truth = np.bincount(labels["kind"][kinds >= 0], minlength=3)
    assert report["kinds"] == dict(zip(SHAPE_KINDS, truth.tolist()))
    assert report["fd"] < 2 and report["fd_real"] < 2  # measured: about 0.2


def test_judge_reads_colours_from_pixels(judge):
    real, labels = make_shapes(200, 16, seed=77, labels=True)
    bg, fg = image_colours(real)
    assert (bg == labels["bg"]).all() and (fg == labels["fg"]).all()
    report = judge.report(real)
    assert report["colours"]["bg"]["black"] == 200
    assert report["colours"]["fg"] == {name: int((labels["fg"] == k).sum()) for k, name in enumerate(COLOUR_NAMES)} | {"other": 0}


def test_judge_reads_the_shape_colour_past_a_glint_of_another(judge):
    # A GAN's red triangle with a few white pixels: white is farther from black than red, and
    # must not be read as the shape's colour (the judge then sees a half-lit shape).
    real, labels = make_shapes(200, 16, seed=78, labels=True)
    glinted, lit = glint(real, labels)
    assert (image_colours(glinted)[1] == labels["fg"]).all()
    assert (judge.classify(glinted)[0][lit] == labels["kind"][lit]).mean() >= 0.9


def test_judge_rejects_degraded_images_and_its_fd_ranks_them(judge):
    real = make_shapes(300, 16, seed=4243)
    base = judge.report(real)
    for name, images in degraded_sets(real, np.random.default_rng(0)).items():
        report = judge.report(np.clip(images, -1, 1).astype(np.float32) if images.dtype != np.uint8 else images,
                          baseline=False)
        assert report["recognised"] <= 0.2, (name, report["recognised"])  # measured: 0 to 0.01
        assert report["fd"] > 20 * base["fd"], (name, report["fd"], base["fd"])  # measured: > 100x


def test_judge_accepts_flaws_too_faint_to_see_and_turns_away_as_they_become_visible(judge):
    """A person recognises a shape under noise of a few grey levels; so must the judge (the
    first judge turned away real shapes with noise of sigma 0.02). Strengths in [0, 1] units."""
    x = make_shapes(300, 16, seed=4245).astype(np.float32) / 255
    rng = np.random.default_rng(1)
    i, j = np.mgrid[0:16, 0:16]
    checker = ((-1.0) ** (i + j))[None, :, :, None].astype(np.float32)
    recognised = lambda images: judge.report(np.clip(images, 0, 1) * 2 - 1, baseline=False)["recognised"]
    faint = {"noise 0.015": x + 0.015 * rng.standard_normal(x.shape, np.float32),
             "checkerboard 0.015": x + 0.015 * checker, "blur 0.4 px": gaussian_blur(x, 0.4)}
    for name, images in faint.items():
        assert recognised(images) >= 0.9, name  # measured: 0.99-1.0
    noise = [recognised(x + s * rng.standard_normal(x.shape, np.float32)) for s in (0.01, 0.04, 0.1)]
    assert noise[0] > noise[1] > noise[2] and noise[2] <= 0.05, noise  # measured: 1.0, 0.39, 0.0


@pytest.mark.slow
def test_judge_works_for_one_channel(judge_cache):
    judge = load_judge(16, 1, cache=judge_cache)
    real = make_shapes(200, 16, channels=1, seed=4244)
    report = judge.report(real)
    assert report["recognised"] >= 0.95 and report["colours"] is None
    # Uniform noise of +-0.3 in [-1, 1] (sigma 0.09 in [0, 1] units): visible grain. (+-0.1, sigma
    # 0.03, is too faint to see, and the judge takes such images as shapes.)
    noisy = to_float(real) + np.random.default_rng(0).uniform(-0.3, 0.3, real.shape).astype(np.float32)
    assert judge.report(np.clip(noisy, -1, 1), baseline=False)["recognised"] <= 0.2
    # A glint of white in a grey shape: in one channel it is "near" the shape's grey and farther
    # from black (before the median rule: 30% of glinted green shapes recognised, 0% of blue).
    grey, labels = make_shapes(200, 16, channels=1, seed=78, labels=True)
    glinted, lit = glint(grey, labels)
    assert (judge.classify(glinted)[0][lit] == labels["kind"][lit]).mean() >= 0.9


def test_judge_cache_is_reused_and_rebuilt_when_unreadable(judge, judge_cache, tmp_path, monkeypatch):
    path = metrics.judge_path(16, 3, judge_cache)
    assert path.is_file() and SHAPES_VERSION in path.name and metrics.JUDGE_VERSION in path.name
    again = load_judge(16, 3, cache=judge_cache)  # from the file: same weights
    assert all(np.array_equal(a, b) for a, b in zip(again.mlp.weights, judge.mlp.weights))
    calls = []
    monkeypatch.setattr(metrics, "train_judge", lambda *a, **k: calls.append(a) or judge)
    broken = metrics.judge_path(16, 3, tmp_path)
    broken.parent.mkdir(parents=True)
    for contents in (b"not a judge", path.read_bytes()[:5000]):  # garbage, a truncated file
        broken.write_bytes(contents)
        load_judge(16, 3, cache=tmp_path)
    assert calls == [(16, 3)] * 2
    assert metrics.Judge.load(broken, 16, 3).meta["image_size"] == 16  # rewritten, sound
    with pytest.raises(ValueError):
        metrics.Judge.load(broken, 16, 1)  # a judge for 3 channels is not one for 1


def test_processes_started_together_train_the_judge_once(judge, tmp_path, monkeypatch):
    # Two at once on an empty cache (a clean machine's comparison or sweep): the second waits
    # for the first one's judge and loads it. (filelock's lock holds between threads as between
    # processes: each takes it through its own open file.)
    calls = []

    def slow_training(*args):
        calls.append(args)
        time.sleep(0.5)
        return judge

    monkeypatch.setattr(metrics, "train_judge", slow_training)
    loaded = []
    threads = [threading.Thread(target=lambda: loaded.append(load_judge(16, 3, cache=tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [(16, 3)] and len(loaded) == 2
    assert all(np.array_equal(a, b) for a, b in zip(loaded[1].mlp.weights, judge.mlp.weights))


# -- the command line (in-process) -------------------------------------------------------------------

@pytest.fixture
def fakes_npy(tmp_path):
    """64 shapes images as `sample --npy` writes them: float32 NCHW in [-1, 1]."""
    path = tmp_path / "samples.npy"
    np.save(path, to_float(make_shapes(64, 16, seed=9)).transpose(0, 3, 1, 2))
    return path


def run_main(capsys, *argv):
    status = metrics.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_swd_json(capsys, fakes_npy):
    status, out, err = run_main(capsys, "swd", "--fake", fakes_npy, "--num", 64, "--num-images", 500, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert set(result) >= {"swd", "levels"} and list(result["levels"]) == ["16"]
    assert result["num_real"] == result["num_fake"] == 64 and result["swd"] > 0
    status, out, _ = run_main(capsys, "swd", "--fake", fakes_npy, "--num", 64, "--num-images", 500)
    assert status == 0 and "16x16" in out and "mean" in out


def test_cli_judge(capsys, fakes_npy, judge, judge_cache):
    argv = ["judge", "--fake", fakes_npy, "--num-images", 500, "--cache-dir", judge_cache]
    status, out, err = run_main(capsys, *argv, "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["recognised"] >= 0.95 and sum(result["kinds"].values()) == round(64 * result["recognised"])
    # With 64 images the kind mix alone moves the Fréchet distance (measured: 10.5 here, 0.3-5 for
    # other real draws, fd_real 1.6 on average); degraded sets score hundreds.
    assert set(result["colours"]) == {"bg", "fg"} and result["fd"] < 30 and 0 < result["fd_real"] < 30
    status, out, err = run_main(capsys, *argv)
    assert status == 0 and "recognised" in out and "FD vs real" in out


def test_cli_samples_a_generator_npz_through_the_backend(capsys, tmp_path, monkeypatch):
    # The subprocess is replaced by a stand-in that writes what `sample --npy` would.
    import common.backends as frameworks

    calls = []

    def fake_run_module(framework, module, args, **kwargs):
        calls.append((framework, module, [str(a) for a in args]))
        npy = args[args.index("--npy") + 1]
        np.save(npy, to_float(make_shapes(int(args[args.index("--num") + 1]), 16, seed=1)).transpose(0, 3, 1, 2))
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(frameworks, "run_module", fake_run_module)
    monkeypatch.setattr(frameworks, "is_installed", lambda name: True)
    weights = tmp_path / "generator.npz"
    weights.write_bytes(b"")
    status, out, err = run_main(capsys, "swd", "--fake", weights, "--framework", "mx", "--num", 32,
                                "--seed", 7, "--num-images", 300, "--json")
    assert status == 0, err
    (framework, module, args), = calls
    assert (framework, module) == ("mx", "sample") and args[:6] == ["--weights", str(weights), "--num", "32",
                                                                    "--seed", "7"]
    assert json.loads(out)["num_fake"] == 32
    # A backend that is not installed: one line, status 2.
    monkeypatch.setattr(frameworks, "is_installed", lambda name: False)
    status, out, err = run_main(capsys, "swd", "--fake", weights, "--framework", "tf")
    assert status == 2 and len(err.strip().splitlines()) == 1 and "tensorflow is not installed" in err


@pytest.mark.parametrize("argv,message", [
    (["swd", "--fake", "{tmp}/absent.npy"], "no such file"),
    (["swd", "--fake", "{tmp}/wrong.npy"], "cannot tell the layout"),
    (["swd", "--fake", "{tmp}/flat.npy"], "4-d batch"),
    (["swd", "--fake", "{tmp}/notes.txt"], "expected images in an .npy"),
    (["swd", "--fake", "{tmp}/garbage.npy"], "not a readable .npy"),
    (["swd", "--fake", "{fakes}", "--image-size", "32"], "--image-size 32 but the fakes"),
    (["swd", "--fake", "{fakes}", "--num", "0"], "--num must be >= 1"),
    (["judge", "--fake", "{fakes}", "--data", "fashion-mnist"], "the judge knows only the built-in shapes"),
    (["fid", "--fake", "{fakes}"], "pt_inception-2015-12-05-6726825d.pth"),
    (["fid", "--fake", "{fakes}", "--inception-weights", "{tmp}/absent.pth"], "no such file"),
    (["swd"], "the following arguments are required: --fake"),
])
def test_cli_misuse_is_one_line_and_status_2(capsys, tmp_path, fakes_npy, argv, message):
    np.save(tmp_path / "wrong.npy", np.zeros((4, 5, 6, 7), np.float32))
    np.save(tmp_path / "flat.npy", np.zeros((16, 16, 3), np.float32))
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    argv = [a.format(tmp=tmp_path, fakes=fakes_npy) for a in argv]
    try:
        status, out, err = run_main(capsys, *argv)
    except SystemExit as e:  # argparse's own errors exit from parse_args
        status, (out, err) = e.code, capsys.readouterr()
    assert status == 2
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err, err
    if argv[0] == "fid" and "absent" not in " ".join(argv):
        assert "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" in err
        assert "--inception-weights PATH" in err


# -- FID and KID plumbing: a randomly initialised FID Inception ----------------------------------

@pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("torch", "torchvision", "pytorch_fid")),
                    reason="needs torch, torchvision and pytorch-fid")
@pytest.mark.slow
def test_fid_plumbing_with_a_random_inception(tmp_path, monkeypatch, capsys):
    # In this process: conftest.py loaded torchvision before TensorFlow (README, Import order).
    import torch
    import torch.hub
    import pytorch_fid.inception as pfi
    from common import fid

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    weights = fid.save_random_inception(tmp_path / "random-inception.pth", seed=0)
    net = fid.build_inception()
    net.load_state_dict(torch.load(weights, weights_only=True))
    model = fid.pool3_extractor(net)
    a, b = make_shapes(4, 32, seed=1), make_shapes(4, 32, seed=2)
    fa, fb = fid.inception_features(a, model), fid.inception_features(b, model)
    scale = float(np.abs(fa).mean())
    assert fa.shape == (4, 2048) and np.isfinite(fa).all() and np.isfinite(fb).all() and scale > 1e-3
    # pytorch-fid's own wrapper, given the same network, must give the same features.
    monkeypatch.setattr(pfi, "fid_inception_v3", lambda: net)
    reference = pfi.InceptionV3([3]).eval()
    with torch.no_grad():
        ref = reference(torch.from_numpy(a[:1].transpose(0, 3, 1, 2).astype(np.float32) / 255))[0].flatten(1)
    assert float(np.abs(ref.double().numpy() - fa[:1]).max()) < 1e-4 * max(scale, 1)
    same, other = fid.scores(fa, fa), fid.scores(fa, fb)
    assert same["fid"] == pytest.approx(0, abs=1e-6 * other["fid"])
    assert other["fid"] > 0.1 and other["kid"] > same["kid"]
    fakes = tmp_path / "fakes.npy"
    np.save(fakes, (b[:2].astype(np.float32) / 127.5 - 1).transpose(0, 3, 1, 2))
    capsys.readouterr()
    status = metrics.main(["fid", "--fake", str(fakes), "--num", "2", "--num-images", "50",
                           "--inception-weights", str(weights), "--device", "cpu", "--json"])
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert status == 0 and set(cli) >= {"fid", "kid", "kid_std"}
    assert np.isfinite([cli["fid"], cli["kid"]]).all() and cli["num_real"] == cli["num_fake"] == 2
