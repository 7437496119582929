"""`python -m dcgan_<fw>.score` (common/scoring.py): D's probability that each
image is real. The command runs in-process in every installed backend, on tiny
discriminators: a random one gives the same numbers in all of them; hand-set
ones give the probabilities worked out here in NumPy (the logit of a D whose
convolutions each read one pixel is a formula), and one built to measure
brightness ranks grey pictures by it."""

import json

import numpy as np
import pytest
from PIL import Image

from common.parity import randomize_batch_norm
from common.scoring import score_images, sigmoid, to_unit_range
from common.spec import ModelSpec
from common.weights import BN_PARAMS, init_weights, save_weights
from common.data import decode_image, make_shapes
from helpers import BACKENDS, one_line_error, random_weights, run_main, snapshot

SCORE_ATOL = 1e-4  # inference-mode D on the same weights: float32 kernels differ by ~1e-7 (as test_sampling.py)
BN_EPSILON, LEAKY_SLOPE = 1e-5, 0.2
TINY = ModelSpec(image_size=16, n_G=4, n_D=4)  # D: 16 -> 8 -> 4 -> one logit


def score_module(fw):
    return BACKENDS[fw].score


def score(fw, capsys, *args):
    """The command's --json output, in-process."""
    capsys.readouterr()
    assert run_main(score_module(fw).main, [*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def save_png(pixels, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, np.uint8).squeeze()).save(path)
    return path


# -- hand-set discriminators ------------------------------------------------------------

def one_tap(arrays, seed=0):
    """Every block's conv keeps only kernel tap (1, 1), at random values: with stride 2 and padding 1
    it reads input pixel (2i, 2j), never the padding, so the block is a 1x1 conv on every other pixel.
    The last layer's weights are random too, large enough for logits of both signs and all sizes."""
    rng = np.random.default_rng(seed)
    out = dict(arrays)
    for i in range(TINY.num_blocks):
        w = np.zeros_like(arrays[f"D/{i}/weight"])
        w[:, :, 1, 1] = rng.normal(0, 1, w.shape[:2])
        out[f"D/{i}/weight"] = w
    last = f"D/{TINY.num_blocks}/weight"
    out[last] = rng.normal(0, 0.3, arrays[last].shape).astype(np.float32)
    return out


def by_hand(arrays, x):
    """The logit of a one_tap D on NCHW images in [-1, 1], in float64 NumPy: each block samples every
    other pixel, mixes channels, normalises with the running statistics, LeakyReLU(0.2); the last
    layer is a 4x4 conv over the 4x4 map, one dot product."""
    a = np.asarray(x, np.float64)
    for i in range(TINY.num_blocks):
        s = np.einsum("oc,nchw->nohw", arrays[f"D/{i}/weight"][:, :, 1, 1], a[:, :, ::2, ::2])
        gamma, beta, mean, var = (arrays[f"D/{i}/{p}"].astype(np.float64)[None, :, None, None]
                                  for p in BN_PARAMS)
        y = gamma * (s - mean) / np.sqrt(var + BN_EPSILON) + beta
        a = np.where(y >= 0, y, LEAKY_SLOPE * y)
    return np.einsum("chw,nchw->n", arrays[f"D/{TINY.num_blocks}/weight"][0], a)


def brightness_meter():
    """A D whose logit grows with an image's brightness: each block averages its input's channels
    at one tap, batch norm is (nearly) the identity, and the last layer adds up the 4x4 map with
    one positive weight, so a grey picture of value v in [-1, 1] has the logit 4 leaky(leaky(v'))
    (v' = v / sqrt(1 + eps) at each block)."""
    arrays = init_weights(TINY, 0, ("D",))  # BN: gamma 1, beta 0, running mean 0, running var 1
    for i in range(TINY.num_blocks):
        w = np.zeros_like(arrays[f"D/{i}/weight"])
        w[:, :, 1, 1] = 1 / w.shape[1]
        arrays[f"D/{i}/weight"] = w
    last = arrays[f"D/{TINY.num_blocks}/weight"]
    arrays[f"D/{TINY.num_blocks}/weight"] = np.full_like(last, 4 / last[0].size)
    return arrays


def grey_logit(v):
    leaky = lambda y: y if y >= 0 else LEAKY_SLOPE * y
    a = v
    for _ in range(TINY.num_blocks):
        a = leaky(a / np.sqrt(1 + BN_EPSILON))
    return 4 * a


def test_a_hand_set_D_gives_the_logit_worked_out_by_hand(fw, tmp_path, capsys):
    arrays = one_tap(random_weights(TINY, 3, ("D",)))
    weights = save_weights(tmp_path / "discriminator.npz", arrays, TINY)
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)  # 16x16 RGB: decoded exactly as stored
    paths = [save_png(p, tmp_path / "pics" / f"{i}.png") for i, p in enumerate(pixels)]
    got = score(fw, capsys, "--weights", weights, "--images", tmp_path / "pics")
    assert [r["path"] for r in got["images"]] == [str(p) for p in paths]
    want = by_hand(arrays, pixels.transpose(0, 3, 1, 2) / 127.5 - 1)
    assert want.std() > 1  # logits of all sizes, both signs: the probabilities are far apart
    logits = np.array([r["logit"] for r in got["images"]])
    np.testing.assert_allclose(logits, want, rtol=1e-5, atol=SCORE_ATOL)
    np.testing.assert_allclose([r["p_real"] for r in got["images"]], sigmoid(want), rtol=0, atol=SCORE_ATOL)
    assert got["mean"] == pytest.approx(np.mean([r["p_real"] for r in got["images"]]), abs=1e-12)
    assert (got["weights"], got["framework"], got["skipped"]) == (str(weights), fw, 0)


def test_a_brightness_meter_ranks_grey_pictures_by_brightness(fw, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_weights("D.npz", brightness_meter(), TINY)
    levels = {"a": 64, "b": 255, "c": 0, "d": 191, "e": 128}  # the names' order is not the levels'
    for name, level in levels.items():
        save_png(np.full((24, 40, 3), level), tmp_path / "greys" / f"{name}.png")  # wide: resized and cropped
    clear = np.zeros((20, 30, 4), np.uint8)  # fully transparent: composited onto white, as training decodes
    Image.fromarray(clear, "RGBA").save(tmp_path / "clear.png")
    assert run_main(score_module(fw).main, ["--weights", "D.npz", "--images", "greys", "clear.png", "--sort"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    expected = {f"greys/{n}.png": sigmoid(grey_logit(v / 127.5 - 1)) for n, v in levels.items()}
    expected["clear.png"] = sigmoid(grey_logit(1.0))
    ranked = sorted(expected, key=lambda p: -expected[p])  # white (and clear) first, stable: as read
    assert ranked[:2] == ["greys/b.png", "clear.png"] and ranked[-1] == "greys/c.png"
    assert lines[:-1] == [f"{expected[p]:.3f}  {p}" for p in ranked]
    assert lines[-1] == f"{np.mean(list(expected.values())):.3f}  mean of 6 images"
    assert expected["greys/b.png"] > 0.98 and expected["greys/c.png"] < 0.47  # 4 (white) and -0.16 (black)


def test_a_random_D_tells_pictures_apart_and_sort_follows_it(tmp_path, capsys):
    fw = next(iter(BACKENDS))
    arrays = {k: v * 10 if k.endswith("weight") else v for k, v in random_weights(TINY, 5, ("D",)).items()}
    weights = save_weights(tmp_path / "D.npz", arrays, TINY)
    for i, picture in enumerate(make_shapes(8, 16, seed=2)):
        save_png(picture, tmp_path / "shapes" / f"{i}.png")
    plain = score(fw, capsys, "--weights", weights, "--images", tmp_path / "shapes")
    p = np.array([r["p_real"] for r in plain["images"]])
    assert np.ptp(p) > 0.05 and len(np.unique(p.round(3))) > 4  # D's answer depends on the picture
    ranked = score(fw, capsys, "--weights", weights, "--images", tmp_path / "shapes", "--sort")
    assert ranked["images"] == sorted(plain["images"], key=lambda r: -r["p_real"])
    assert ranked["mean"] == plain["mean"]


def test_scores_do_not_depend_on_the_batch(tmp_path):
    backend = next(iter(BACKENDS.values()))
    arrays = random_weights(TINY, 6, ("D",))
    D = backend.discriminator(TINY, arrays)
    x = to_unit_range(make_shapes(10, 16, seed=3))
    logits, p = score_images(backend, D, x)
    one_by_one, _ = score_images(backend, D, x, batch_size=3)
    np.testing.assert_allclose(one_by_one, logits, rtol=0, atol=1e-6)  # inference mode: running statistics
    np.testing.assert_array_equal(p, sigmoid(logits))
    assert logits.shape == (10,) and logits.dtype == np.float64


def test_sigmoid_is_stable_at_the_ends():
    np.testing.assert_array_equal(sigmoid([-1e4, 0, 1e4]), [0, 0.5, 1])
    assert sigmoid(2.0) == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-15)


@pytest.mark.cross_framework
def test_scores_agree_across_frameworks(tmp_path, capsys):
    if len(BACKENDS) < 2:
        pytest.skip("needs two frameworks")
    arrays = {k: v * 10 if k.endswith("weight") else v for k, v in random_weights(TINY, 7, ("D",)).items()}
    weights = save_weights(tmp_path / "D.npz", arrays, TINY)
    grey = ModelSpec(image_size=16, n_G=4, n_D=4, channels=1, variant="paper")  # no BN on D's input block
    grey_weights = save_weights(tmp_path / "grey.npz", {k: v * 10 if k.endswith("weight") else v for k, v in
                                                        randomize_batch_norm(init_weights(grey, 8, ("D",)),
                                                                             8).items()}, grey)
    for i, picture in enumerate(make_shapes(6, 24, seed=4)):
        save_png(picture, tmp_path / "pics" / ("sub" if i % 2 else "") / f"{i}.png")
    runs = {fw: [score(fw, capsys, "--weights", w, "--images", tmp_path / "pics") for w in (weights, grey_weights)]
            for fw in BACKENDS}
    ref = next(iter(BACKENDS))
    for run in runs[ref]:
        assert np.ptp([r["p_real"] for r in run["images"]]) > 0.05
    for fw in BACKENDS:
        for got, want in zip(runs[fw], runs[ref]):
            assert [r["path"] for r in got["images"]] == [r["path"] for r in want["images"]]
            for key in ("p_real", "logit"):
                np.testing.assert_allclose([r[key] for r in got["images"]], [r[key] for r in want["images"]],
                                           rtol=0, atol=SCORE_ATOL, err_msg=f"{fw} {key}")


# -- what is read, and bad input ---------------------------------------------------------

@pytest.fixture
def folder(tmp_path, monkeypatch):
    """In tmp_path: D.npz and G.npz, pics/ (two images, one in a sub-folder, a hidden image and a
    file that is no image), one.png, empty/."""
    monkeypatch.chdir(tmp_path)
    save_weights("D.npz", random_weights(TINY, 1, ("D",)), TINY)
    save_weights("G.npz", init_weights(TINY, 1, ("G",)), TINY)
    shapes = make_shapes(4, 16, seed=5)
    save_png(shapes[0], tmp_path / "pics" / "a.png")
    save_png(shapes[1], tmp_path / "pics" / "sub" / "b.jpg")
    save_png(shapes[2], tmp_path / "pics" / ".hidden.png")
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    save_png(shapes[3], tmp_path / "one.png")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_files_and_folders_mixed_hidden_files_left_out_unreadable_counted(folder, capsys):
    fw = next(iter(BACKENDS))
    before = snapshot(folder)
    argv = ["--weights", "D.npz", "--images", "pics", "one.png", "pics/a.png", "--json"]  # a.png twice: once
    assert run_main(score_module(fw).main, argv) == 0
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert [r["path"] for r in got["images"]] == ["pics/a.png", "pics/sub/b.jpg", "one.png"]
    assert got["skipped"] == 1
    assert err.strip() == (f"python -m dcgan_{fw}.score: warning: skipped 1 unreadable file(s) of 4 "
                           "(first: pics/notes.txt)")
    D = BACKENDS[fw].discriminator(TINY, random_weights(TINY, 1, ("D",)))
    x = to_unit_range(np.stack([decode_image(p, 16, 3) for p in ("pics/a.png", "pics/sub/b.jpg", "one.png")]))
    np.testing.assert_allclose([r["logit"] for r in got["images"]], score_images(BACKENDS[fw], D, x)[0],
                               rtol=0, atol=1e-6)
    assert snapshot(folder) == before  # nothing written


@pytest.mark.parametrize("argv,message", [
    (["--weights", "G.npz", "--images", "pics"], "G.npz: missing weight 'D/0/weight': it holds G's weights only "
                                                 "(a generator.npz?); --weights needs a discriminator.npz"),
    (["--weights", "absent.npz", "--images", "pics"], "absent.npz: no such file"),
    (["--weights", "one.png", "--images", "pics"], "one.png: not a readable .npz weights file"),
    (["--weights", "D.npz", "--images", "pics", "nowhere"], "--images nowhere: no such file or directory"),
    (["--weights", "D.npz", "--images", "empty"], "--images empty: the directory holds no images"),
    (["--weights", "D.npz", "--images", "pics/notes.txt"], "no readable image in --images pics/notes.txt"),
    (["--weights", "D.npz"], "the following arguments are required: --images"),
    (["--weights", "D.npz", "--images"], "argument --images: expected at least one argument"),
])
def test_bad_score_input_is_one_line_status_2_and_touches_nothing(folder, capsys, argv, message):
    before = snapshot(folder)
    fw = next(iter(BACKENDS))
    one_line_error(capsys, 2, run_main(score_module(fw).main, argv), message)
    assert snapshot(folder) == before


def test_a_file_holding_G_and_D_is_scored_by_its_D(folder, capsys):
    fw = next(iter(BACKENDS))
    both = {**init_weights(TINY, 1, ("G",)), **random_weights(TINY, 1, ("D",))}
    save_weights("GD.npz", both, TINY)
    assert score(fw, capsys, "--weights", "GD.npz", "--images", "pics")["images"] == \
        score(fw, capsys, "--weights", "D.npz", "--images", "pics")["images"]
