"""A training run's framework-free half (DESIGN §8): the run directory, data,
noise, metrics, pictures, checkpoints and the closing line. Each backend's
train.py owns the nets, the step and the framework-native checkpoint files,
and calls into a `Run` in the same order:

    run = Run.open(config, framework, versions, device, params)
    for epoch in run.epochs():
        for X, Z in run.batches(epoch, LAYOUT):
            run.step_done(train_step(...))
        run.epoch_done(samples, LAYOUT, save_checkpoint, generator_arrays)
    return run.finish()

Outputs in `config.out`:

    config.json            the resolved config, framework, device and library versions
    metrics.jsonl          one line per epoch (and per --log-every N steps)
    samples/epoch_NNN.png  a 3x7 grid from a fixed noise batch
    losses.png             loss_D and loss_G
    checkpoint/            framework-native state + progress.json (the step)
    generator.npz          canonical weights of G

Every file is written atomically; the checkpoint directory is swapped whole,
so an interruption never leaves a half-written one. The noise of step s and
the batches of epoch e depend only on (seed, s) and (seed, e), so a resumed
run computes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common.config import TrainConfig
from common.data import iterate_batches, load_images, num_batches
from common.errors import UsageError
from common.files import atomic_write
from common.viz import save_grid, to_uint8
from common.weights import save_weights

SAMPLE_ROWS, SAMPLE_COLS = 3, 7  # the book's figure
METRICS = ("loss_D", "loss_G", "d_real", "d_fake")
CHECKPOINT, PROGRESS = "checkpoint", "progress.json"


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def read_metrics(out) -> list[dict]:
    path = Path(out) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def step_noise(seed: int, step: int, batch: int, latent_dim: int, layout: str) -> np.ndarray:
    """Z for one training step, N(0, 1), from a NumPy generator keyed by (seed, step)."""
    Z = np.random.default_rng([seed, 1, step]).standard_normal((batch, latent_dim), np.float32)
    return Z.reshape((batch, latent_dim, 1, 1) if layout == "NCHW" else (batch, 1, 1, latent_dim))


def fixed_noise(seed: int, num: int, latent_dim: int, layout: str) -> np.ndarray:
    """The fixed Z behind every samples/epoch_NNN.png of a run."""
    Z = np.random.default_rng([seed, 2]).standard_normal((num, latent_dim), np.float32)
    return Z.reshape((num, latent_dim, 1, 1) if layout == "NCHW" else (num, 1, 1, latent_dim))


def python_versions() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}


class Run:
    def __init__(self, config: TrainConfig, framework: str, out: Path, images: np.ndarray,
                 start_step: int, device: str, progress, to_float, callback):
        self.config, self.framework, self.out, self.images = config, framework, out, images
        self.step = start_step
        self.device = device
        self.progress = progress
        self.to_float = to_float  # a framework scalar -> float (a host sync)
        self.callback = callback  # called at every epoch end (a notebook's live plot)
        self.steps_per_epoch = num_batches(len(images), config.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.stop_requested = False
        self._sums, self._count = None, 0             # since the last metrics line
        self._run_examples, self._run_time = 0, 0.0    # this invocation, for the closing line
        self._last = None
        self._bar = None

    # -- opening ----------------------------------------------------------------

    @classmethod
    def open(cls, config: TrainConfig, framework: str, versions: dict, device: str, params: dict,
             progress=None, to_float=float, callback=None) -> "Run":
        """Check the output directory, load the data, write config.json.

        A directory that holds another run is refused unless --resume is given,
        and --resume needs a complete checkpoint of the same config; nothing is
        written before these checks pass.
        """
        out = Path(config.out).expanduser()
        start_step = 0
        saved = out / "config.json"
        if saved.exists():
            previous = TrainConfig.from_dict(json.loads(saved.read_text())["config"])
            if not config.resume:
                diffs = config.differences(previous, ignore=("resume",))
                what = f"a run with a different config ({'; '.join(diffs)})" if diffs else "a run already"
                raise UsageError(f"{out} holds {what}; pass --resume to continue it, or choose another --out")
            diffs = config.differences(previous)
            if diffs:
                raise UsageError(f"--resume: {out} holds a run with another config ({'; '.join(diffs)})")
            progress_file = out / CHECKPOINT / PROGRESS
            if not progress_file.exists():
                raise UsageError(f"--resume: {out} has no complete checkpoint")
            start_step = json.loads(progress_file.read_text())["step"]
        elif config.resume:
            raise UsageError(f"--resume: {out} holds no run to resume")
        elif out.exists() and any(out.iterdir()):
            raise UsageError(f"--out {out} exists and is not a run directory; choose another --out")
        images = load_images(config.data, config.image_size, config.channels, data_dir=config.data_dir,
                             data_url=config.data_url, cache=config.cache_dir,
                             num_images=config.num_images, seed=config.seed)
        if config.batch_size > len(images):
            raise UsageError(f"--batch-size {config.batch_size} is larger than the dataset ({len(images)} images)")
        run = cls(config, framework, out, images, start_step, device, progress, to_float, callback)
        run._write_config(versions, params)
        if start_step:
            run._truncate_metrics(start_step)
        return run

    def _write_config(self, versions: dict, params: dict) -> None:
        write_json(self.out / "config.json", {
            "config": self.config.to_dict(), "framework": self.framework, "device": self.device,
            "params": params,
            "versions": {**python_versions(), **versions},
            "dataset": {"images": len(self.images), "steps_per_epoch": self.steps_per_epoch},
        })

    def _truncate_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint being resumed."""
        kept = [m for m in read_metrics(self.out) if m["step"] <= step]
        write_text(self.out / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in kept))

    @property
    def resuming(self) -> bool:
        return self.step > 0

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / CHECKPOINT

    # -- the loop -----------------------------------------------------------------

    def fixed_noise(self, layout: str) -> np.ndarray:
        return fixed_noise(self.config.seed, SAMPLE_ROWS * SAMPLE_COLS, self.config.latent_dim, layout)

    def epochs(self):
        """Epoch numbers (1-based) still to run; Ctrl-C stops after the current step."""
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._on_interrupt)
        except ValueError:  # not the main thread: no graceful Ctrl-C
            previous = None
        try:
            while self.step < self.total_steps and not self.stop_requested:
                yield self.step // self.steps_per_epoch + 1
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _on_interrupt(self, signum, frame):
        if self.stop_requested:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.stop_requested = True

    def batches(self, epoch: int, layout: str):
        """(X, Z) for the rest of `epoch`, as NumPy float32 in `layout`."""
        cfg = self.config
        start = self.step - (epoch - 1) * self.steps_per_epoch
        self._bar = self._new_bar(epoch, start)
        self._tick = time.perf_counter()
        for X in iterate_batches(self.images, cfg.batch_size, cfg.seed, epoch - 1, layout, start):
            if self.step >= self.total_steps or self.stop_requested:
                break
            Z = step_noise(cfg.seed, self.step, cfg.batch_size, cfg.latent_dim, layout)
            yield X.astype(cfg.dtype, copy=False), Z.astype(cfg.dtype, copy=False)

    def _new_bar(self, epoch, start):
        from tqdm import tqdm

        end = min(self.steps_per_epoch, self.total_steps - (epoch - 1) * self.steps_per_epoch)
        return tqdm(total=end, initial=start, desc=f"epoch {epoch}/{self.config.epochs}", unit="step",
                    # progress None: a bar only on a terminal
                    disable=None if self.progress is None else not self.progress,
                    file=sys.stderr, leave=False, dynamic_ncols=True)

    def step_done(self, metrics: dict) -> None:
        """Account one finished step. `metrics` holds framework scalars; they
        are summed on the device and read back only when a line is logged."""
        self._sums = dict(metrics) if self._sums is None else {k: self._sums[k] + metrics[k] for k in METRICS}
        self._count += 1
        self.step += 1
        self._bar.update(1)
        every = self.config.log_every
        if every and self.step % every == 0 and self.step % self.steps_per_epoch:
            self._log("step")

    def _elapsed(self) -> float:
        now = time.perf_counter()
        elapsed, self._tick = now - self._tick, now
        return elapsed

    def _log(self, kind: str) -> dict | None:
        if not self._count:
            return None
        # Read the sums back first: that waits for queued device work (MXNet's
        # engine, a GPU), which belongs to this interval's time.
        means = {k: self.to_float(self._sums[k]) / self._count for k in METRICS}
        elapsed = self._elapsed()
        examples = self._count * self.config.batch_size
        self._run_examples += examples
        self._run_time += elapsed
        line = {"kind": kind, "step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch + 1,
                **means,
                "examples_per_sec": examples / elapsed if elapsed > 0 else float("inf")}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")
        self._sums, self._count, self._last = None, 0, line
        self._bar.set_postfix(loss_D=f"{line['loss_D']:.3f}", loss_G=f"{line['loss_G']:.3f}",
                              ex_s=f"{line['examples_per_sec']:.0f}")
        self._tick = time.perf_counter()
        return line

    def epoch_done(self, samples: np.ndarray, layout: str, save_checkpoint, generator_arrays: dict) -> None:
        """End of an epoch (or of the steps asked for): log, draw, checkpoint.

        samples: G(fixed noise) in [-1, 1], laid out as `layout`.
        save_checkpoint(dir): writes the framework-native state into dir.
        """
        epoch = (self.step - 1) // self.steps_per_epoch + 1
        complete = self.step % self.steps_per_epoch == 0
        self._log("epoch" if complete else "partial")
        self._bar.close()
        images = to_uint8(samples, layout)
        save_grid(images, SAMPLE_ROWS, SAMPLE_COLS,
                  self.out / "samples" / f"epoch_{epoch:03d}.png", scale=max(1, 64 // self.config.image_size))
        self._plot_losses()
        save_weights(self.out / "generator.npz", generator_arrays, self.config.spec)
        self.write_checkpoint(save_checkpoint)
        if self.callback:
            self.callback(epoch, read_metrics(self.out), images)

    def write_checkpoint(self, save_checkpoint) -> None:
        """Write the framework's state into a fresh directory, add progress.json
        last, then swap it in for the old checkpoint."""
        tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=self.out))
        try:
            save_checkpoint(tmp)
            write_json(tmp / PROGRESS, {"step": self.step, "framework": self.framework})
            old = self.out / (CHECKPOINT + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.checkpoint_dir.exists():
                os.replace(self.checkpoint_dir, old)
            os.replace(tmp, self.checkpoint_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _plot_losses(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lines = read_metrics(self.out)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for key in ("loss_D", "loss_G"):
            ax.plot([m["step"] for m in lines], [m[key] for m in lines], marker="." if len(lines) < 30 else None,
                    label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"DCGAN ({self.framework}, {self.config.data})")
        ax.legend()
        fig.tight_layout()
        try:
            with atomic_write(self.out / "losses.png") as f:
                fig.savefig(f, format="png", dpi=100)
        finally:
            plt.close(fig)

    def finish(self) -> dict:
        """Print the book's closing line; return a summary."""
        last = self._last or (read_metrics(self.out) or [{}])[-1]
        speed = self._run_examples / self._run_time if self._run_time else 0.0
        summary = {"step": self.step, "loss_D": last.get("loss_D"), "loss_G": last.get("loss_G"),
                   "examples_per_sec": speed, "device": self.device, "interrupted": self.stop_requested,
                   "out": str(self.out)}
        if self.stop_requested:
            print(f"interrupted at step {self.step}; checkpoint saved in {self.checkpoint_dir} "
                  f"(continue with --resume)", file=sys.stderr)
        write_json(self.out / "summary.json", summary)
        if last:
            print(f"loss_D {last['loss_D']:.3f}, loss_G {last['loss_G']:.3f}, "
                  f"{speed:.1f} examples/sec on {self.device}")
        return summary
