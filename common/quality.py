"""Every training run measures itself (docs/design.md §9): image quality at
each epoch end (and every --eval-every N steps), and training health in words.

    Evaluator       G on a fixed noise batch against a fixed, seeded subset of the
                    real data: the SWD (common.metrics, the same value as
                    `python -m common.metrics swd` on the run's generator), for the
                    built-in shapes the judge's share recognised and its Frechet
                    distance, and the samples' diversity relative to the data's.
    HealthMonitor   a callback that words what the numbers show, once each:
                    D winning, G collapsing (a NaN stops the run: common.run).

Framework-free: G is reached through the run's `sample(Z)`.
"""

from __future__ import annotations

import sys

import numpy as np

from common.callbacks import Callback
from common.metrics import SWD, as_float_nhwc, load_judge
from common.spec import latent_shape

EVAL_CHUNK = 128  # G's batch when sampling for an evaluation
DIVERSITY_PAIRS = 128  # images whose pairwise distances measure diversity


def contrast(images) -> float:
    """Mean over images of each image's pixel standard deviation: grey, unformed images score near 0."""
    x = as_float_nhwc(images)
    return float(x.reshape(len(x), -1).std(axis=1).mean())


def diversity(images) -> float:
    """Mean pairwise L2 distance of up to DIVERSITY_PAIRS images (any form as_float_nhwc takes)."""
    x = as_float_nhwc(images)[:DIVERSITY_PAIRS].reshape(min(len(images), DIVERSITY_PAIRS), -1).astype(np.float64)
    square = np.sum(x * x, axis=1)
    d2 = np.maximum(square[:, None] + square[None, :] - 2 * x @ x.T, 0.0)
    n = len(x)
    return float(np.sqrt(d2)[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0


class Evaluator:
    """What an evaluation compares: `num` real images drawn once from the data
    with the run's seed, and the fixed noise G is sampled on, each time."""

    def __init__(self, images: np.ndarray, seed: int, latent_dim: int, layout: str, num: int, dtype: str,
                 judge: bool, cache=None):
        rng = np.random.default_rng([seed, 3])
        real = images[np.sort(rng.choice(len(images), min(num, len(images)), replace=False))]
        self.swd = SWD(real, seed)
        self.real_diversity, self.real_contrast = diversity(real), contrast(real)
        Z = np.random.default_rng([seed, 4]).standard_normal((num, latent_dim), np.float32)
        self.noise = Z.reshape(latent_shape(num, latent_dim, layout)).astype(dtype)
        size, channels = images.shape[1], images.shape[3]
        self.judge = load_judge(size, channels, cache=cache, progress=True) if judge else None

    def __call__(self, sample) -> dict:
        """sample(Z) -> G(Z) in inference mode, in the run's layout: the metrics of a log line."""
        fakes = np.concatenate([sample(self.noise[i:i + EVAL_CHUNK]) for i in range(0, len(self.noise), EVAL_CHUNK)])
        fakes = np.nan_to_num(fakes.astype(np.float32), nan=0.0)  # a NaN is the divergence check's to report
        relative = lambda value, real: value / real if real else 0.0
        metrics = {"swd": self.swd(fakes)["swd"],
                   "diversity": relative(diversity(fakes), self.real_diversity),
                   "contrast": relative(contrast(fakes), self.real_contrast)}
        if self.judge is not None:
            report = self.judge.report(fakes, baseline=False)
            metrics.update(judge_recognised=report["recognised"], judge_fd=report["fd"],
                           judge_kinds=report["kinds"])
        return metrics


# -- training health, in words ----------------------------------------------------------------

# D winning: the mean D(G(z)) below D_WINS_D_FAKE and the mean loss_G higher than in the window
# before, in D_WINS_WINDOWS windows in a row, each window at least D_WINS_WINDOW_STEPS steps of
# logged lines (one line of a per-epoch log, or many of a --log-every 1 log, as common.compare
# writes). Not three single steps: in a healthy run of the demo's settings for 12,800 steps,
# logged every step, 40% of the steps had D(G(z)) < 0.05, and a rule on three logged lines fired
# at step 2,621 while the judge's share went on rising to 70% (measured on that run: windows of
# 25 and 50 steps fired at steps 5,000 and later, windows of 100 steps never).
D_WINS_WINDOWS = 3
D_WINS_WINDOW_STEPS = 100
D_WINS_D_FAKE = 0.05   # mean D(G(z)) below this: D calls every fake fake
# Collapse: formed images (each with at least half the data's contrast: an untrained G's
# grey samples are not a collapse) that differ from one another less than a quarter as
# much as the data's images do (mean pairwise distance).
COLLAPSE_DIVERSITY, FORMED_CONTRAST = 0.25, 0.5

ADVICE = {
    "d_wins": "D is winning: D(G(z)) has stayed near 0 while loss_G climbed, over {n} stretches of {steps} steps "
              "in a row, so G is losing ground. Try a smaller --lr-d (or a larger --lr-g), or fewer D parameters "
              "(--n-d).",
    "g_collapse": "G is collapsing: its samples on the fixed noise are formed images but only {ratio:.0%} as "
                  "diverse as the data (mean pairwise distance), so G maps different z to nearly the same "
                  "image. Try a smaller "
                  "--lr-g, a larger batch, or restart from an earlier checkpoint.",
}


class HealthMonitor(Callback):
    """Words for what the metrics show, each printed once, added to the metrics
    line it was found in (`warnings`) and to summary.json. Runs before the
    metrics writer, so the line is written with its warnings."""

    def __init__(self):
        self.windows = []  # (mean d_fake, mean loss_G) of each closed window, oldest first
        self._steps = self._d_fake = self._loss_G = 0  # the open window: its steps, and the two summed over them
        self._last_step = None  # the step of the line before; first: the step the run started (or resumed) at

    def _window_closed(self, run, line) -> bool:
        """Add the line (the means over its steps) to the open window; whether that closed it."""
        steps = line["step"] - (run.dir.start_step if self._last_step is None else self._last_step)
        self._last_step = line["step"]
        self._steps += steps
        self._d_fake += steps * line["d_fake"]
        self._loss_G += steps * line["loss_G"]
        if self._steps < D_WINS_WINDOW_STEPS:
            return False
        self.windows.append((self._d_fake / self._steps, self._loss_G / self._steps))
        self._steps = self._d_fake = self._loss_G = 0
        return True

    def on_log(self, run, line):
        found = []
        recent = self.windows[-D_WINS_WINDOWS:] if self._window_closed(run, line) else []
        if (len(recent) == D_WINS_WINDOWS and all(d_fake < D_WINS_D_FAKE for d_fake, _ in recent)
                and all(b[1] > a[1] for a, b in zip(recent, recent[1:]))):
            found.append(("d_wins", ADVICE["d_wins"].format(n=D_WINS_WINDOWS, steps=D_WINS_WINDOW_STEPS)))
        if "diversity" in line and line["diversity"] < COLLAPSE_DIVERSITY and line["contrast"] >= FORMED_CONTRAST:
            found.append(("g_collapse", ADVICE["g_collapse"].format(ratio=line["diversity"])))
        for kind, message in found:
            if kind in {w["kind"] for w in run.warnings}:
                continue
            run.warnings.append({"kind": kind, "step": line["step"], "message": message})
            line.setdefault("warnings", []).append(kind)
            print(f"warning at step {line['step']}: {message}", file=sys.stderr)
