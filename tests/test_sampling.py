"""The latent-space tools of `python -m dcgan_<fw>.sample` (common/sampling.py)
and `python -m common.viz progress` (common/viz.py): spherical walks,
truncated noise, walk and progress GIFs. The maths is checked in NumPy; the
commands run in-process in every installed backend on one tiny generator, and
give the same images in all of them."""

import math

import numpy as np
import pytest
from PIL import Image

from common import viz
from common.errors import UsageError
from common.sampling import (generate, grid_shape, interpolation_noise, lerp, sample_noise, slerp,
                             standard_normal, walk_frames)
from common.spec import ModelSpec
from common.viz import ping_pong, save_gif, scaled_grid, to_uint8
from common.weights import init_weights, load_weights, save_weights
from helpers import BACKENDS, one_line_error, run_main, snapshot

SAMPLE_ATOL = 1e-4  # inference-mode G on the same weights: float32 kernels differ by ~1e-7 (as test_train.py)
LATENT = 100


def norms(x):
    return np.linalg.norm(np.asarray(x, np.float64), axis=-1)


def gaussian_ends(walks=200, dim=LATENT, seed=0):
    return np.random.default_rng(seed).standard_normal((2, walks, dim)).astype(np.float32)


# -- slerp ---------------------------------------------------------------------------

def test_slerp_keeps_the_norm_where_lerp_dips():
    p0, p1 = gaussian_ends()
    t = np.linspace(0, 1, 9)
    ends = (norms(p0) + norms(p1)) / 2
    straight, round_ = norms(lerp(p0, p1, t)), norms(slerp(p0, p1, t))
    assert 0.65 < (straight[:, 4] / ends).mean() < 0.75  # halfway down a straight line: ~1/sqrt(2)
    assert abs((round_[:, 4] / ends).mean() - 1) < 0.02
    low, high = np.minimum(norms(p0), norms(p1))[:, None], np.maximum(norms(p0), norms(p1))[:, None]
    assert (round_ >= 0.99 * low).all() and (round_ <= 1.01 * high).all()  # every point, every walk


def test_slerp_ends_are_lerps_ends():
    Z = {spherical: interpolation_noise(4, 6, 7, LATENT, spherical).reshape(6, 7, LATENT)
         for spherical in (False, True)}
    for i in (0, -1):
        np.testing.assert_array_equal(Z[True][:, i], Z[False][:, i])
    assert Z[True].dtype == np.float32
    assert not np.allclose(Z[True][:, 3], Z[False][:, 3])  # the middles differ


def test_slerp_steps_are_equal_in_angle():
    p0, p1 = gaussian_ends(walks=50)
    p1 = p1 * (norms(p0) / norms(p1))[:, None]  # ends of equal norm: the great circle itself
    steps = 8
    path = slerp(p0.astype(np.float64), p1.astype(np.float64), np.linspace(0, 1, steps))
    unit = path / norms(path)[..., None]
    between = np.arccos(np.clip(np.sum(unit[:, 1:] * unit[:, :-1], axis=-1), -1, 1))  # (walks, steps - 1)
    omega = np.arccos(np.sum(unit[:, 0] * unit[:, -1], axis=-1))
    np.testing.assert_allclose(between, np.repeat(omega[:, None] / (steps - 1), steps - 1, axis=1), atol=1e-9)
    np.testing.assert_allclose(norms(path), np.repeat(norms(p0)[:, None], steps, axis=1), rtol=1e-9)
    # Gaussian ends (norms a little apart): still one way round, the angle from p0 growing to omega.
    q0, q1 = gaussian_ends(walks=50, seed=1)
    unit = slerp(q0, q1, np.linspace(0, 1, steps)).astype(np.float64)
    unit /= norms(unit)[..., None]
    from_start = np.arccos(np.clip(np.sum(unit * unit[:, :1], axis=-1), -1, 1))
    assert (np.diff(from_start, axis=1) > 0).all()


@pytest.mark.parametrize("case", ["same", "scaled", "nearly-parallel", "opposite", "zero"])
def test_slerp_falls_back_to_lerp_when_the_angle_is_undefined(case):
    p = np.random.default_rng(2).standard_normal((3, LATENT)).astype(np.float32)
    q = {"same": p, "scaled": 2 * p, "nearly-parallel": p + 1e-3 * np.abs(p).mean(), "opposite": -p,
         "zero": np.zeros_like(p)}[case]
    t = np.linspace(0, 1, 5)
    got = slerp(p, q, t) if case != "zero" else slerp(q, p, t)
    want = lerp(p, q, t.astype(np.float32)) if case != "zero" else lerp(q, p, t.astype(np.float32))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_linear_walk_is_todays():
    seed, walks, steps = 9, 3, 5
    ends = np.random.default_rng(seed).standard_normal((2, walks, LATENT), np.float32)
    t = np.linspace(0, 1, steps, dtype=np.float32)[None, :, None]
    before = ((1 - t) * ends[0][:, None] + t * ends[1][:, None]).reshape(walks * steps, LATENT, 1, 1)
    np.testing.assert_array_equal(interpolation_noise(seed, walks, steps, LATENT), before)


# -- truncation ------------------------------------------------------------------------

@pytest.mark.parametrize("bound", [0.1, 0.5, 1.0, 2.0])
def test_truncated_noise_is_bounded_deterministic_and_keeps_what_is_inside(bound):
    plain = sample_noise(3, 64, LATENT)
    Z = sample_noise(3, 64, LATENT, truncate=bound)
    assert Z.shape == plain.shape and Z.dtype == np.float32
    np.testing.assert_array_equal(Z, sample_noise(3, 64, LATENT, truncate=bound))
    assert (np.abs(Z.astype(np.float64)) <= bound).all()
    inside = np.abs(plain) <= np.float32(bound)
    np.testing.assert_array_equal(Z[inside], plain[inside])  # only the values outside were redrawn
    assert not np.array_equal(Z[~inside], plain[~inside])


def test_a_bound_no_value_reaches_changes_nothing():
    np.testing.assert_array_equal(sample_noise(5, 64, LATENT, truncate=10.0), sample_noise(5, 64, LATENT))
    np.testing.assert_array_equal(interpolation_noise(5, 4, 6, LATENT, True, truncate=10.0),
                                  interpolation_noise(5, 4, 6, LATENT, True))


def test_truncated_noise_has_the_truncated_normals_spread():
    z = standard_normal(np.random.default_rng(0), (200_000,), truncate=1.0).astype(np.float64)
    phi, mass = math.exp(-0.5) / math.sqrt(2 * math.pi), math.erf(1 / math.sqrt(2))
    assert abs(z.mean()) < 0.005
    assert abs(z.std() - math.sqrt(1 - 2 * phi / mass)) < 0.005  # 0.5396 for |z| <= 1
    tiny = standard_normal(np.random.default_rng(0), (64, LATENT), truncate=1e-6)  # nearly all redrawn, at once
    assert (np.abs(tiny) <= 1e-6).all() and np.unique(tiny).size > 1000


def test_truncated_walks_bound_their_ends():
    Z = interpolation_noise(2, 8, 5, LATENT, truncate=0.5).reshape(8, 5, LATENT)
    assert (np.abs(Z[:, [0, -1]]) <= 0.5).all()


@pytest.mark.parametrize("bound", [0.0, -1.0, math.inf, math.nan])
def test_a_bound_must_be_finite_and_positive(bound):
    with pytest.raises(UsageError, match="--truncate must be a finite number > 0"):
        sample_noise(0, 4, LATENT, truncate=bound)


# -- GIF frames -------------------------------------------------------------------------

def frames_of(path, mode):
    with Image.open(path) as img:
        frames, durations = [], []
        for i in range(img.n_frames):
            img.seek(i)
            frames.append(np.asarray(img.convert(mode)))
            durations.append(img.info.get("duration"))
        return frames, durations, img.info.get("loop")


def test_ping_pong_goes_there_and_back_without_repeating_the_ends():
    assert ping_pong([0, 1, 2, 3]) == [0, 1, 2, 3, 2, 1]
    assert ping_pong([0, 1]) == [0, 1] and ping_pong([0]) == [0]


@pytest.mark.parametrize("channels", [1, 3])
def test_save_gif_keeps_frames_of_few_colours_exactly(tmp_path, channels):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (40, channels), dtype=np.uint8)
    frames = [palette[rng.integers(0, len(palette), (12, 20))] for _ in range(5)]
    path = save_gif(frames, tmp_path / "a.gif", ms=70)
    got, durations, loop = frames_of(path, "L" if channels == 1 else "RGB")
    assert len(got) == 5 and durations == [70] * 5 and loop == 0
    for g, f in zip(got, frames):
        np.testing.assert_array_equal(g, f[..., 0] if channels == 1 else f)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temporary left


def test_walk_frames_hold_every_walks_step(tmp_path):
    walks, steps = 5, 3
    images = np.arange(walks * steps, dtype=np.uint8)[:, None, None, None] * np.ones((1, 4, 4, 3), np.uint8)
    frames = walk_frames(images, walks, steps, scale=2)
    rows, cols = grid_shape(walks)
    assert len(frames) == steps and (rows, cols) == (2, 3)
    for i, frame in enumerate(frames):
        np.testing.assert_array_equal(frame, scaled_grid(images[i::steps], rows, cols, 2))


# -- the sample command, in every backend ---------------------------------------------

TINY = ModelSpec(image_size=16, n_G=8, n_D=8)
GREY = ModelSpec(image_size=16, n_G=8, n_D=8, channels=1)


def tiny_weights(spec, seed=1):
    """DCGAN's initialisation with the conv weights x5: an untrained G whose images are not blank."""
    return {k: v * 5 if k.endswith("weight") else v for k, v in init_weights(spec, seed, ("G",)).items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return {spec.channels: save_weights(folder / f"G{spec.channels}.npz", tiny_weights(spec), spec)
            for spec in (TINY, GREY)}


def sample(fw, npz, *args):
    return BACKENDS[fw].sample.main(["--weights", str(npz), *map(str, args)])


WALK = ("--num", 3, "--interpolate", 4, "--slerp", "--truncate", 1.5, "--seed", 5)


def test_sample_walks_slerp_truncated_into_a_gif(fw, tiny, tmp_path, capsys):
    out, npy, gif = tmp_path / "w.png", tmp_path / "w.npy", tmp_path / "w.gif"
    assert sample(fw, tiny[3], *WALK, "--out", out, "--npy", npy, "--gif", gif, "--gif-ms", 50) == 0
    assert f"12 images from {tiny[3]} ({fw}) -> {out}, {npy}, {gif}" in capsys.readouterr().out
    images = np.load(npy)
    b = BACKENDS[fw]
    Z = interpolation_noise(5, 3, 4, TINY.latent_dim, spherical=True, truncate=1.5)
    expected = generate(b, b.generator(TINY, load_weights(tiny[3])[0]), Z)
    np.testing.assert_allclose(images, expected, rtol=0, atol=SAMPLE_ATOL)
    assert images.shape == (12, 3, 16, 16) and images.std() > 0.05  # not blank
    side = 4 * (2 * 18 + 2)  # 3 walks in a 2x2 grid of 16px images, shown 4x
    with Image.open(out) as png:
        assert png.size == (4 * (4 * 18 + 2), 4 * (3 * 18 + 2))  # one walk a row, as before
    frames, durations, loop = frames_of(gif, "RGB")
    assert len(frames) == 2 * 4 - 2 and durations == [50] * 6 and loop == 0
    assert frames[0].shape == (side, side, 3)
    # Frame k is step ping_pong(0 1 2 3)[k] of every walk: the nearest of the four step grids, and
    # near it (a GIF frame holds 256 colours, these ~770; test_a_grey_walk_gif_is_exact is exact).
    steps = walk_frames(to_uint8(images, "NCHW"), 3, 4, scale=4)
    for k, got in enumerate(frames):
        errors = [np.abs(got.astype(int) - step).mean() for step in steps]
        assert int(np.argmin(errors)) == [0, 1, 2, 3, 2, 1][k] and min(errors) < 2, (k, errors)


def test_sample_truncated_grid(fw, tiny, tmp_path):
    assert sample(fw, tiny[3], "--num", 5, "--truncate", 0.7, "--seed", 2, "--out", tmp_path / "g.png",
                  "--npy", tmp_path / "g.npy") == 0
    b = BACKENDS[fw]
    expected = generate(b, b.generator(TINY, load_weights(tiny[3])[0]), sample_noise(2, 5, TINY.latent_dim, 0.7))
    np.testing.assert_allclose(np.load(tmp_path / "g.npy"), expected, rtol=0, atol=SAMPLE_ATOL)


def test_a_grey_walk_gif_is_exact(tiny, tmp_path):
    fw = next(iter(BACKENDS))  # the GIF is common code; one backend shows it
    gif, npy = tmp_path / "g.gif", tmp_path / "g.npy"
    assert sample(fw, tiny[1], "--num", 2, "--interpolate", 3, "--out", tmp_path / "g.png", "--npy", npy,
                  "--gif", gif) == 0
    frames, durations, _ = frames_of(gif, "L")
    want = ping_pong(walk_frames(to_uint8(np.load(npy), "NCHW"), 2, 3, scale=4))
    assert len(frames) == 4 and durations == [100] * 4
    for got, w in zip(frames, want):
        np.testing.assert_array_equal(got, w[..., 0])  # 256 greys: nothing lost


@pytest.mark.cross_framework
def test_walks_truncation_and_gifs_agree_across_frameworks(tiny, tmp_path, capsys):
    if len(BACKENDS) < 2:
        pytest.skip("needs two frameworks")
    walks, grids, gifs = {}, {}, {}
    for fw in BACKENDS:
        d = tmp_path / fw
        assert sample(fw, tiny[3], *WALK, "--out", d / "w.png", "--npy", d / "w.npy", "--gif", d / "w.gif") == 0
        assert sample(fw, tiny[3], "--num", 6, "--truncate", 1, "--out", d / "g.png", "--npy", d / "g.npy") == 0
        walks[fw], grids[fw] = np.load(d / "w.npy"), np.load(d / "g.npy")
        gifs[fw] = frames_of(d / "w.gif", "RGB")[0]
    capsys.readouterr()
    ref = next(iter(BACKENDS))
    assert np.abs(walks[ref]).max() > 0.1
    for fw in BACKENDS:
        np.testing.assert_allclose(walks[fw], walks[ref], rtol=0, atol=SAMPLE_ATOL, err_msg=f"{fw} walk")
        np.testing.assert_allclose(grids[fw], grids[ref], rtol=0, atol=SAMPLE_ATOL, err_msg=f"{fw} truncated")
        assert len(gifs[fw]) == len(gifs[ref])
        for a, r in zip(gifs[fw], gifs[ref]):  # the same pictures, up to a palette built on a pixel off by one
            assert np.abs(a.astype(int) - r).mean() < 1


@pytest.mark.parametrize("args,message", [
    (["--slerp"], "--slerp needs --interpolate N"),
    (["--gif", "w.gif"], "--gif needs --interpolate N"),
    (["--interpolate", "3", "--gif-ms", "50"], "--gif-ms is read only with --gif"),
    (["--interpolate", "3", "--gif", "w.gif", "--gif-ms", "5"], "--gif-ms must be >= 20"),
    (["--truncate", "0"], "--truncate must be a finite number > 0, got 0.0"),
    (["--truncate", "-2"], "--truncate must be a finite number > 0"),
    (["--truncate", "inf"], "--truncate must be a finite number > 0, got inf"),
    (["--truncate", "nan"], "--truncate must be a finite number > 0, got nan"),
    (["--truncate", "wide"], "invalid float value: 'wide'"),
    (["--interpolate", "3", "--gif", "keep.png"], "--out and --gif name the same file"),
    (["--npy", "keep.png"], "--out and --npy name the same file"),
    (["--interpolate", "3", "--gif", "sub"], "--gif sub is a directory"),
])
def test_bad_sample_input_is_one_line_and_touches_nothing(tiny, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.png").write_bytes(b"the user's file")
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    main = BACKENDS[next(iter(BACKENDS))].sample.main
    one_line_error(capsys, 2, run_main(main, ["--weights", tiny[3], "--out", "keep.png", *args]), message)
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["keep.png", "sub"]


# -- python -m common.viz progress ------------------------------------------------------

def fake_run(folder, epochs, size=(30, 20), mode="RGB"):
    """A run directory whose samples/epoch_NNN.png are distinct pictures of few colours; returns them."""
    rng = np.random.default_rng(len(epochs))
    pictures = {}
    for epoch in epochs:
        channels = 3 if mode == "RGB" else 1
        picture = rng.integers(0, 4, (size[1], size[0], channels), dtype=np.uint8) * 85
        viz.save_png(picture, folder / "samples" / f"epoch_{epoch:03d}.png")
        pictures[epoch] = picture if mode == "RGB" else picture[..., 0]
    return pictures


def test_progress_gif_plays_the_epochs_in_order(tmp_path, capsys):
    run = tmp_path / "run"
    pictures = fake_run(run, [2, 10, 999, 1000])  # epoch_1000.png sorts before epoch_999.png as text
    (run / "samples" / "notes.txt").write_text("not a sample")
    (run / "samples" / "epoch_best.png").write_bytes(b"not one either")
    assert viz.main(["progress", str(run), "--gif", "--ms", "120"]) == 0
    assert capsys.readouterr().out.strip() == f"4 epochs (2 to 1000), 120 ms each -> {run / 'progress.gif'}"
    frames, durations, loop = frames_of(run / "progress.gif", "RGB")
    assert len(frames) == 4 and durations == [120] * 4 and loop == 0
    for frame, epoch in zip(frames, [2, 10, 999, 1000]):
        np.testing.assert_array_equal(frame, pictures[epoch])
    with Image.open(run / "progress.gif") as gif:
        assert gif.size == (30, 20)


def test_progress_gif_to_out_and_in_grey(tmp_path, capsys):
    run = tmp_path / "run"
    pictures = fake_run(run, [1, 2, 3], mode="L")
    out = tmp_path / "elsewhere" / "p.gif"
    assert viz.main(["progress", str(run), "--gif", "--out", str(out)]) == 0
    frames, durations, _ = frames_of(out, "L")
    assert durations == [300] * 3 and not (run / "progress.gif").exists()
    for frame, epoch in zip(frames, [1, 2, 3]):
        np.testing.assert_array_equal(frame, pictures[epoch])
    assert "3 epochs (1 to 3), 300 ms each" in capsys.readouterr().out


@pytest.mark.parametrize("case,message", [
    ("absent", "is not a directory"),
    ("a-file", "is not a directory"),
    ("no-samples", "holds no per-epoch samples (samples/epoch_NNN.png)"),
    ("no-gif", "progress writes a GIF: add --gif"),
    ("short-frames", "--ms must be >= 20"),
    ("out-is-a-sample", "is one of the run's sample grids"),
    ("sizes-differ", "is not the size of"),
    ("unreadable", "not a readable image"),
])
def test_bad_progress_input_is_one_line_and_touches_nothing(tmp_path, capsys, case, message):
    run = tmp_path / "run"
    if case not in ("absent", "a-file", "no-samples"):
        fake_run(run, [1, 2])
    argv = ["progress", str(run), "--gif"]
    if case == "a-file":
        run.write_text("a file")
    elif case == "no-samples":
        (run / "samples").mkdir(parents=True)
        (run / "config.json").write_text("{}")
    elif case == "no-gif":
        argv.remove("--gif")
    elif case == "short-frames":
        argv += ["--ms", "10"]
    elif case == "out-is-a-sample":
        argv += ["--out", str(run / "samples" / "epoch_002.png")]
    elif case == "sizes-differ":
        fake_run(run, [3], size=(31, 20))
    elif case == "unreadable":
        (run / "samples" / "epoch_003.png").write_bytes(b"\x89PNG cut short")
    before = snapshot(tmp_path)
    one_line_error(capsys, 2, run_main(viz.main, argv), message)
    assert snapshot(tmp_path) == before
