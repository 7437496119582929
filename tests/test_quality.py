"""A run measuring itself (common.quality): the Evaluator's numbers, and the
training-health warnings, each shown to fire on a constructed case and to stay
silent on a healthy one. Framework-free: G is a NumPy stand-in."""

import json
import types

import numpy as np
import pytest

from common import quality
from common.data import make_shapes
from common.quality import ADVICE, Evaluator, HealthMonitor, contrast, diversity


def to_nchw(images_uint8):
    return (images_uint8.astype(np.float32) / 127.5 - 1).transpose(0, 3, 1, 2)


def line(step, loss_G=1.0, d_fake=0.3, **extra):
    return {"step": step, "loss_D": 0.6, "loss_G": loss_G, "d_real": 0.7, "d_fake": d_fake, **extra}


def monitor_lines(lines):
    run = types.SimpleNamespace(warnings=[], dir=types.SimpleNamespace(start_step=0))  # a run from the start
    monitor = HealthMonitor()
    for m in lines:
        monitor.on_log(run, m)
    return run.warnings, lines


def test_d_winning_is_found_once_and_recorded(capsys):
    # one logged line per 100 steps (a per-epoch log): each line is a window of its own
    healthy = [line(100 * s, loss_G=1 + 0.1 * s, d_fake=0.3) for s in range(1, 6)]  # loss_G climbs, D(G(z)) is not ~0
    assert monitor_lines(healthy)[0] == []
    losing = [line(100, 1.0, 0.2), line(200, 2.0, 0.04), line(300, 3.0, 0.03), line(400, 4.0, 0.02), line(500, 5.0, 0.01)]
    warnings, lines = monitor_lines(losing)
    assert [(w["kind"], w["step"]) for w in warnings] == [("d_wins", 400)]  # three windows in a row, then once
    assert lines[3]["warnings"] == ["d_wins"] and "warnings" not in lines[4]
    err = capsys.readouterr().err
    assert err.count("warning at step 400: D is winning") == 1 and "--lr-d" in err
    # D near 0 but G's loss not climbing (it is recovering): no warning
    assert monitor_lines([line(100, 5.0, 0.01), line(200, 4.0, 0.01), line(300, 3.0, 0.01)])[0] == []


def test_d_winning_needs_hundreds_of_steps_not_three_logged_ones():
    # A log of every step (common.compare's): three steps with D(G(z)) near 0 and loss_G rising
    # happen by chance in a healthy run, and must not count as D winning.
    rng = np.random.default_rng(0)
    healthy = [line(s, loss_G=float(rng.uniform(1, 5)), d_fake=float(rng.choice([0.01, 0.3]))) for s in range(1, 1001)]
    healthy[10:13] = [line(11, 2.0, 0.01), line(12, 3.0, 0.01), line(13, 4.0, 0.01)]
    assert monitor_lines(healthy)[0] == []
    # D winning for good: D(G(z)) ~0 at every step while loss_G climbs, step by step; the warning
    # comes when the third window of D_WINS_WINDOW_STEPS steps closes.
    steps = quality.D_WINS_WINDOW_STEPS
    losing = [line(s, loss_G=1 + s / steps, d_fake=0.01) for s in range(1, 5 * steps + 1)]
    warnings, _ = monitor_lines(losing)
    assert [(w["kind"], w["step"]) for w in warnings] == [("d_wins", 3 * steps)]
    # the same lines logged every 10 steps (means over each ten) give the same verdict at the same step
    tens = [line(s, loss_G=1 + (s - 4.5) / steps, d_fake=0.01) for s in range(10, 5 * steps + 1, 10)]
    assert [(w["kind"], w["step"]) for w in monitor_lines(tens)[0]] == [("d_wins", 3 * steps)]


def test_a_resumed_runs_first_window_counts_from_where_it_resumed():
    # Resumed at step 5,000 and logging every step: the first line covers one step, not 5,001,
    # so it does not make a window of its own (which would make one noisy step count as one of three).
    steps = quality.D_WINS_WINDOW_STEPS
    run = types.SimpleNamespace(warnings=[], dir=types.SimpleNamespace(start_step=5000))
    monitor = HealthMonitor()
    lines = ([line(5001, 1.0, 0.01)] + [line(5001 + s, 2.0, 0.01) for s in range(1, steps + 1)]
             + [line(5001 + steps + s, 3.0, 0.01) for s in range(1, steps + 1)])
    for m in lines:
        monitor.on_log(run, m)
    assert run.warnings == []  # two windows so far, the first one's mean just under 2.0
    for s in range(1, steps + 1):
        monitor.on_log(run, line(5001 + 2 * steps + s, 4.0, 0.01))
    assert [(w["kind"], w["step"]) for w in run.warnings] == [("d_wins", 5000 + 3 * steps)]


def test_collapse_needs_formed_images_that_differ_little():
    grey_start = [line(1, diversity=0.1, contrast=0.1)]  # an untrained G: grey, alike, not a collapse
    assert monitor_lines(grey_start)[0] == []
    healthy = [line(1, diversity=0.9, contrast=0.9)]
    assert monitor_lines(healthy)[0] == []
    warnings, _ = monitor_lines([line(1, diversity=0.9, contrast=0.9), line(2, diversity=0.1, contrast=0.8),
                                 line(3, diversity=0.05, contrast=0.8)])
    assert [(w["kind"], w["step"]) for w in warnings] == [("g_collapse", 2)]
    assert "10% as diverse" in warnings[0]["message"]


def test_diversity_and_contrast_of_real_collapsed_and_grey_images():
    real = make_shapes(128, 16, seed=1)
    collapsed = np.repeat(real[:1], 128, axis=0)
    collapsed = np.clip(collapsed.astype(int) + np.random.default_rng(0).integers(-3, 4, collapsed.shape), 0, 255)
    grey = np.full_like(real, 128)
    assert diversity(collapsed.astype(np.uint8)) < 0.05 * diversity(real)
    assert contrast(grey) == 0 and contrast(real) > 0.2
    assert diversity(to_nchw(real)) == pytest.approx(diversity(real), rel=1e-5)  # one convention, any layout


@pytest.fixture(scope="module")
def evaluator():
    images = make_shapes(1024, 16, seed=2)  # the judge from the default cache, as training runs share it
    return images, Evaluator(images, seed=0, latent_dim=8, layout="NCHW", num=256, dtype="float32", judge=True)


def test_evaluator_ranks_real_images_above_noise_and_collapse(evaluator):
    images, ev = evaluator
    fresh = to_nchw(make_shapes(256, 16, seed=9))
    real = ev(lambda Z: fresh[:len(Z)])
    noise = ev(lambda Z: np.random.default_rng(1).uniform(-1, 1, (len(Z), 3, 16, 16)).astype(np.float32))
    one = ev(lambda Z: np.repeat(fresh[:1], len(Z), axis=0))
    assert real["swd"] < 0.5 * noise["swd"] and real["swd"] < one["swd"]
    assert real["judge_recognised"] > 0.9 and noise["judge_recognised"] < 0.05
    assert set(real["judge_kinds"]) == {"disc", "square", "triangle"} and min(real["judge_kinds"].values()) > 0
    assert 0.8 < real["diversity"] < 1.25 and one["diversity"] < 0.01 and one["contrast"] > 0.5
    # the collapse that the monitor words: formed images, alike
    warnings, _ = monitor_lines([line(1, **one)])
    assert [w["kind"] for w in warnings] == ["g_collapse"]
    assert monitor_lines([line(1, **real)])[0] == []
    json.dumps(real)  # goes into metrics.jsonl as it is


def test_evaluator_is_deterministic_and_calls_g_in_chunks(evaluator):
    images, ev = evaluator
    calls = []

    def G(Z):
        calls.append(Z.shape)
        return np.tanh(Z[:, :3].repeat(16, axis=2).repeat(16, axis=3) * np.ones((1, 3, 16, 16), np.float32))

    a, b = ev(G), ev(G)
    assert a == b and all(shape[0] <= quality.EVAL_CHUNK for shape in calls) and sum(s[0] for s in calls) == 512
    assert calls[0][1:] == (8, 1, 1)  # Z in the run's layout (NCHW here)
    nan = ev(lambda Z: np.full((len(Z), 3, 16, 16), np.nan, np.float32))  # the divergence check reports NaNs
    assert np.isfinite(nan["swd"])


def test_advice_names_a_flag_to_try():
    for kind, text in ADVICE.items():
        assert "--" in text, kind
