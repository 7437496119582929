"""A training run's framework-free half (docs/design.md §9). Each backend's
train.py owns the nets, the step and the framework-native checkpoint files,
and calls into a `Run` in the same order:

    run = Run.open(config, framework, LAYOUT)   # checks --out, loads the data; writes nothing
    ...build the nets, place them, make the optimizers, compile the step...
    if run.resuming: run.restore(load_checkpoint, G, D, opt_G, opt_D)
    run.start(versions, device, params, sample=..., save_checkpoint=..., export_nets=...)
    for epoch in run.epochs():
        for X, Z in run.batches(epoch):
            run.step_done(step(X, Z))
        run.epoch_done()
    return run.finish()

The run directory is `common.rundir.RunDir`; what happens at each step and
epoch end (training health, metrics.jsonl, the progress bar, sample grids,
the dashboard, checkpoints) is a list of `common.callbacks`; image quality is
measured by `common.quality.Evaluator` into the log lines. The noise of step s and the
batches of epoch e depend only on (seed, s) and (seed, e), so a resumed run
computes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
import platform
import sys
import time

import numpy as np

from common.callbacks import (SAMPLE_COLS, SAMPLE_ROWS, CheckpointWriter, Dashboard, EpochCallback, MetricsWriter,
                              ProgressBar, SampleGrid)
from common.config import TrainConfig
from common.data import iterate_batches, num_batches
from common.distributed import World
from common.errors import CheckpointError, DivergedError, UsageError
from common.quality import Evaluator, HealthMonitor
from common.rundir import RunDir, read_metrics  # noqa: F401  (read_metrics: the run's records, for callers)
from common.signals import StopRequests
from common.spec import latent_shape
from common.tensorboard import TensorBoard
from common.viz import to_uint8

METRICS = ("loss_D", "loss_G", "d_real", "d_fake")


def default_callbacks(progress=None, callback=None, tensorboard=None) -> list:
    """The parts of a run, in the order they run (common.callbacks): words on
    training health first (they go into the line written next), the metrics
    line, the progress bar, the sample grid, the dashboard, TensorBoard's event
    file if asked for, the checkpoint last (a checkpoint implies the records
    before it), then the caller's own."""
    parts = [HealthMonitor(), MetricsWriter(), ProgressBar(progress), SampleGrid(), Dashboard()]
    parts += [TensorBoard(tensorboard)] if tensorboard else []
    parts += [CheckpointWriter()]
    return parts + ([EpochCallback(callback)] if callback else [])


def step_noise(seed: int, step: int, batch: int, latent_dim: int, layout: str) -> np.ndarray:
    """Z for one training step, N(0, 1), from a NumPy generator keyed by (seed, step)."""
    Z = np.random.default_rng([seed, 1, step]).standard_normal((batch, latent_dim), np.float32)
    return Z.reshape(latent_shape(batch, latent_dim, layout))


def fixed_noise(seed: int, num: int, latent_dim: int, layout: str) -> np.ndarray:
    """The fixed Z behind every samples/epoch_NNN.png of a run."""
    Z = np.random.default_rng([seed, 2]).standard_normal((num, latent_dim), np.float32)
    return Z.reshape(latent_shape(num, latent_dim, layout))


BF16_EMULATED = ("--precision bf16 on a CPU without bfloat16 instructions (no avx512_bf16 or amx_bf16 in "
                 "/proc/cpuinfo): bfloat16 is emulated, measured 5-8x slower than fp32 on an AVX2 CPU. "
                 "Use --precision fp32 here.")


def _cpuinfo(path: str) -> tuple[str | None, set[str]] | None:
    """Linux's /proc/cpuinfo: the first model name and the CPU flags; None where it cannot be read."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    fields = [line.split(":", 1) for line in lines if ":" in line]
    models = [value.strip() for key, value in fields if key.strip() == "model name"]
    flags = {word for key, value in fields if key.strip() == "flags" for word in value.split()}
    return (models[0] if models else None), flags


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux), else what platform says: the same step runs at different
    speeds on different models (on one with AMX bf16 is native, on an AVX2 one emulated)."""
    info = _cpuinfo(cpuinfo)
    return (info and info[0]) or platform.processor() or platform.machine()


BF16_WORDS = {True: "native", False: "emulated", None: "unknown"}  # native_bf16()'s answer, in reports


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX): read from Linux's
    cpuinfo flags; None where they cannot be read (another OS)."""
    flags = (_cpuinfo(cpuinfo) or (None, set()))[1]
    return bool(flags & {"avx512_bf16", "amx_bf16"}) if flags else None


class Run:
    def __init__(self, config: TrainConfig, framework: str, layout: str, rundir: RunDir,
                 images: np.ndarray, callbacks: list):
        self.config, self.framework, self.layout, self.dir = config, framework, layout, rundir
        self.images, self.callbacks = images, callbacks
        self.step = rundir.start_step
        self.steps_per_epoch = num_batches(len(images), config.batch_size)
        total = config.epochs * self.steps_per_epoch
        self.total_steps = min(total, config.max_steps) if config.max_steps else total
        self.stop = StopRequests()
        self.world = World()   # set by start()
        self.device = None
        self.evaluator = None  # made by start(), unless --no-eval
        self.warnings = []     # what HealthMonitor found, for summary.json
        self._pending = []                             # each step's metrics since the last line, on the device
        self._run_examples, self._run_time = 0, 0.0    # this invocation, for the closing line
        self._last = None

    @classmethod
    def open(cls, config: TrainConfig, framework: str, layout: str, progress=None, callback=None) -> "Run":
        """Check the output directory and load the data; nothing is written yet.
        progress: a bar (None: on a terminal only); callback(epoch, metrics,
        samples): called at every epoch end (a notebook's live plot)."""
        rundir = RunDir.open(config, framework)
        spec = config.spec
        images = config.data.load(spec.image_size, spec.channels, config.seed)
        if config.batch_size > len(images):
            raise UsageError(f"--batch-size {config.batch_size} is larger than the dataset ({len(images)} images)")
        run = cls(config, framework, layout, rundir, images, default_callbacks(progress, callback, config.tensorboard))
        if run.step > run.total_steps:
            raise UsageError(f"--resume: {rundir.path} is at step {run.step} already; --epochs {config.epochs}"
                             + (f" and --max-steps {config.max_steps}" if config.max_steps else "")
                             + f" end at step {run.total_steps}, before it")
        return run

    @property
    def finished(self) -> bool:
        """Resumed at its last step: nothing to train, nothing to write."""
        return self.resuming and self.step >= self.total_steps

    @property
    def resuming(self) -> bool:
        return self.dir.start_step > 0

    @property
    def checkpoint_dir(self):
        return self.dir.checkpoint_dir

    def restore(self, load_checkpoint, *state) -> None:
        """load_checkpoint(directory, *state) from the checkpoint open() verified;
        whatever the framework raises becomes one line naming the directory."""
        try:
            load_checkpoint(self.checkpoint_dir, *state)
        except Exception as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise CheckpointError(f"cannot load the checkpoint in {self.checkpoint_dir} ({first}); "
                                  f"train again with another --out") from None

    def start(self, versions: dict, device: str, params: dict, sample, save_checkpoint, export_nets,
              world: World | None = None) -> None:
        """From here on the run writes into its directory.

        sample(Z) -> G(Z) in inference mode, NumPy in [-1, 1], Z and images in the run's layout;
        save_checkpoint(directory) writes the framework-native state;
        export_nets() -> G's and D's canonical arrays;
        world: the processes sharing the run (common.distributed); only the chief
        writes, samples and evaluates, the others train their shard of each batch.
        """
        self.device = device
        self.sample, self.save_checkpoint, self.export_nets = sample, save_checkpoint, export_nets
        self.world = world or World()
        if self.world.size > 1:  # every process must go on from the same step
            latest, earliest = self.world.agree(self.step), -self.world.agree(-self.step)
            if latest != earliest:
                raise CheckpointError(f"the processes found different checkpoints in {self.dir.path} (steps "
                                      f"{earliest} to {latest}): on several machines, --out must be one shared "
                                      f"directory")
        if not self.world.is_chief:
            self.callbacks = []
        if self.finished or not self.world.is_chief:
            return
        cfg = self.config
        if cfg.precision == "bf16" and "cpu" in device.lower() and native_bf16() is False:
            self.warnings.append({"kind": "bf16_emulated", "step": self.step, "message": BF16_EMULATED})
            print(f"warning: {BF16_EMULATED}", file=sys.stderr)
        if cfg.eval:
            self.evaluator = Evaluator(self.images, cfg.seed, cfg.spec.latent_dim, self.layout, cfg.eval_samples,
                                       cfg.dtype, judge=cfg.data.name == "shapes", cache=cfg.data.cache_dir)
        self.dir.prepare()
        self.dir.write_config(self.config, device, params, versions,
                              {"images": len(self.images), "steps_per_epoch": self.steps_per_epoch})
        if self.resuming:
            self.dir.truncate_metrics(self.step)

    # -- the loop -----------------------------------------------------------------

    def epochs(self):
        """Epoch numbers (1-based) still to run; Ctrl-C or SIGTERM stops after the current step."""
        with self.stop:
            while self.step < self.total_steps and not self._stop_agreed():
                yield self.step // self.steps_per_epoch + 1

    def batches(self, epoch: int):
        """(X, Z) for the rest of `epoch`, as NumPy in the run's layout and dtype: this
        process's shard of the global batch and of its noise (all of them in one process)."""
        cfg, world = self.config, self.world
        start = self.step - (epoch - 1) * self.steps_per_epoch
        self._call("on_epoch_begin", epoch, start)
        self._tick = time.perf_counter()
        for X in iterate_batches(self.images, cfg.batch_size, cfg.seed, epoch - 1, self.layout, start,
                                 shard=(world.rank, world.size)):
            if self.step >= self.total_steps or self._stop_agreed():
                break
            Z = world.shard(step_noise(cfg.seed, self.step, cfg.batch_size, cfg.spec.latent_dim, self.layout))
            yield X.astype(cfg.dtype, copy=False), Z.astype(cfg.dtype, copy=False)

    def step_done(self, metrics: dict) -> None:
        """Account one finished step. `metrics` holds framework scalars, kept
        on the device and read back only when a line is logged (no host sync
        per step)."""
        self._pending.append(metrics)
        self.step += 1
        self._call("on_step_end")
        if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps:
            return  # the epoch's end logs and measures
        cfg = self.config
        if cfg.eval_every and self.evaluator and self.step % cfg.eval_every == 0:
            self._log("step", evaluate=True)
        elif cfg.log_every and self.step % cfg.log_every == 0:
            self._log("step")

    def epoch_done(self) -> None:
        """End of an epoch (or of the steps asked for): log, then every callback's on_epoch_end."""
        epoch = (self.step - 1) // self.steps_per_epoch + 1
        kind = "epoch" if self.step % self.steps_per_epoch == 0 else "partial"
        self._log(kind, evaluate=True)
        if not self.world.is_chief:
            return
        Z = fixed_noise(self.config.seed, SAMPLE_ROWS * SAMPLE_COLS, self.config.spec.latent_dim, self.layout)
        samples = to_uint8(self.sample(Z.astype(self.config.dtype)), self.layout)
        self._call("on_epoch_end", epoch, samples)

    def finish(self) -> dict:
        """Print the book's closing line; return a summary."""
        last = self._last or (read_metrics(self.dir.path) or [{}])[-1]
        speed = self._run_examples / self._run_time if self._run_time else 0.0
        summary = {"step": self.step, "loss_D": last.get("loss_D"), "loss_G": last.get("loss_G"),
                   "swd": last.get("swd"), "examples_per_sec": speed, "device": self.device,
                   "interrupted": self.stop.requested is not None, "signal": self.stop.name,
                   "warnings": self.warnings, "out": str(self.dir.path)}
        if not self.world.is_chief:
            return summary
        if self.finished and not self._run_examples:
            print(f"{self.dir.path} is at step {self.step} of {self.total_steps} already: nothing to do "
                  f"(raise --epochs or --max-steps to train on)", file=sys.stderr)
            return {**summary, "nothing_to_do": True}
        if self.stop.requested is not None:
            print(f"stopped by {self.stop.name} at step {self.step}; checkpoint saved in {self.checkpoint_dir} "
                  f"(continue with --resume)", file=sys.stderr)
        self.dir.write_summary(summary)
        self._call("on_train_end", summary)
        if last:
            print(f"loss_D {last['loss_D']:.3f}, loss_G {last['loss_G']:.3f}, "
                  f"{speed:.1f} examples/sec on {self.device}")
        return summary

    # -- helpers ------------------------------------------------------------------

    def _call(self, hook: str, *args) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _stop_agreed(self) -> bool:
        """Whether any process was asked to stop; all of them learn it after the same
        step (and then hold a request of their own, so every later call agrees too)."""
        agreed = self.world.agree(self.stop.requested or 0)
        if agreed and self.stop.requested is None:
            self.stop.requested = agreed  # a peer's request: stop as it does
        return bool(agreed)

    def _log(self, kind: str, evaluate: bool = False) -> None:
        if not self._pending:
            return
        # Read the values back first: that waits for queued device work
        # (MXNet's engine, a GPU), which belongs to this interval's time.
        values = {k: [float(m[k]) for m in self._pending] for k in METRICS}
        now = time.perf_counter()
        elapsed = now - self._tick
        count, self._pending = len(values["loss_D"]), []
        # Every process checks (the metrics are the global batch's, the same on all of them), so a
        # divergence stops them all at the same step; the chief alone logs and writes.
        self._check_finite(values, count)
        if not self.world.is_chief:
            self._tick = time.perf_counter()
            return
        examples = count * self.config.batch_size
        self._run_examples += examples
        self._run_time += elapsed
        line = {"kind": kind, "step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch + 1,
                **{k: sum(v) / count for k, v in values.items()},
                "examples_per_sec": examples / elapsed if elapsed > 0 else float("inf")}
        if evaluate and self.evaluator is not None:  # measured apart from the training time
            line.update(self.evaluator(self.sample))
            line["eval_seconds"] = time.perf_counter() - now
        self._last = line
        self._call("on_log", line)
        self._tick = time.perf_counter()

    def _check_finite(self, values: dict, count: int) -> None:
        """A NaN or infinite loss stops the run, naming the first step it appeared
        at; the checkpoint on disk (the last good one) is left as it is."""
        for i in range(count):
            bad = [k for k in ("loss_D", "loss_G") if not math.isfinite(values[k][i])]
            if bad:
                step = self.step - count + i + 1
                footnote = ""
                if self.world.is_chief:
                    summary = {"step": self.step, "device": self.device, "out": str(self.dir.path),
                               "interrupted": False, "signal": None,
                               "diverged": {"step": step, **{k: repr(values[k][i]) for k in bad}}}
                    self.dir.write_summary(summary)
                    try:
                        self._call("on_train_end", summary)  # the dashboard up to the last good line, say
                    except Exception as e:  # the divergence is the news: a callback failing now must not hide it
                        footnote = f" ({type(e).__name__} while finishing the run's outputs: {e})"
                saved = self.dir.checkpoint_step
                kept = ("there is no checkpoint yet" if saved is None else
                        f"the last good checkpoint (step {saved}) is kept in {self.dir.checkpoint_dir}")
                lr_G, lr_D = self.config.learning_rates
                raise DivergedError(f"{' and '.join(bad)} became {values[bad[0]][i]} at step {step}: training "
                                    f"diverged and stopped; {kept}. Try a smaller learning rate "
                                    f"(--lr-g {lr_G:g}, --lr-d {lr_D:g} now){footnote}")
