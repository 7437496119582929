"""The small parts a run is made of, in the style of Keras callbacks
(docs/design.md §9). `common.run.Run` calls each hook of each part in order:

    on_epoch_begin(run, epoch, start)   before the epoch's first step (start: steps already done in it)
    on_step_end(run)                    after every step
    on_log(run, line)                   after a metrics line is made (a dict, as metrics.jsonl holds it)
    on_epoch_end(run, epoch, samples)   at the end of an epoch, or of the steps asked for;
                                        samples: G(fixed noise) as uint8 NHWC
    on_train_end(run, summary)          once, with the closing summary (a diverged run's too)

The default parts and their order: `common.run.default_callbacks` (training
health, from common.quality, first; the checkpoint last: a checkpoint implies
the records before it are written; then the caller's own, a notebook's live plot).
"""

from __future__ import annotations

import sys
import time

from common.files import atomic_write
from common.rundir import read_metrics
from common.viz import save_grid
from common.weights import save_weights, select

SAMPLE_ROWS, SAMPLE_COLS = 3, 7  # the book's figure


class Callback:
    def on_epoch_begin(self, run, epoch: int, start: int) -> None:
        pass

    def on_step_end(self, run) -> None:
        pass

    def on_log(self, run, line: dict) -> None:
        pass

    def on_epoch_end(self, run, epoch: int, samples) -> None:
        pass

    def on_train_end(self, run, summary: dict) -> None:
        pass


class MetricsWriter(Callback):
    """metrics.jsonl: one line per log."""

    def on_log(self, run, line):
        run.dir.append_metrics(line)


class ProgressBar(Callback):
    """A tqdm bar per epoch, with the last losses and examples/sec; on a
    terminal only unless `show` says otherwise."""

    def __init__(self, show=None):
        self.show, self.bar = show, None

    def on_epoch_begin(self, run, epoch, start):
        from tqdm import tqdm

        end = min(run.steps_per_epoch, run.total_steps - (epoch - 1) * run.steps_per_epoch)
        self.bar = tqdm(total=end, initial=start, desc=f"epoch {epoch}/{run.config.epochs}", unit="step",
                        disable=None if self.show is None else not self.show,
                        file=sys.stderr, leave=False, dynamic_ncols=True)

    def on_step_end(self, run):
        self.bar.update(1)

    def on_log(self, run, line):
        self.bar.set_postfix(loss_D=f"{line['loss_D']:.3f}", loss_G=f"{line['loss_G']:.3f}",
                             ex_s=f"{line['examples_per_sec']:.0f}")

    def on_epoch_end(self, run, epoch, samples):
        self.bar.close()


class SampleGrid(Callback):
    """samples/epoch_NNN.png: the book's 3x7 grid of G on the fixed noise."""

    def on_epoch_end(self, run, epoch, samples):
        save_grid(samples, SAMPLE_ROWS, SAMPLE_COLS, run.dir.path / "samples" / f"epoch_{epoch:03d}.png",
                  scale=max(1, 64 // run.config.spec.image_size))


def smooth(values, weight: float = 0.9) -> list[float]:
    """An exponential moving average with the start debiased (TensorBoard's smoothing)."""
    out, average = [], 0.0
    for i, v in enumerate(values, 1):
        average = weight * average + (1 - weight) * v
        out.append(average / (1 - weight ** i))
    return out


def smoothing_weight(n: int) -> float:
    """Heavier smoothing for longer curves: about n/20 points of memory, at most 0.98."""
    return min(0.98, max(0.0, 1 - 20 / max(n, 1)))


def plot_smoothed(ax, steps, values, colour, label) -> None:
    """A curve drawn as TensorBoard does: the raw values faint, the smoothed ones on top."""
    ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
    ax.plot(steps, smooth(values, smoothing_weight(len(values))), color=colour, label=label)


class Dashboard(Callback):
    """losses.png: the run at a glance. loss_D and loss_G (raw, faint, and
    smoothed); D(x) and D(G(z)), the mean sigmoid of D's logits on real and
    fake images; and the image-quality measure (SWD, lower is better) when the
    run measures it.

    Drawn at an epoch's end, unless drawing would take more than `SHARE` of the
    run's time (matplotlib takes about half a second, so epochs of a few seconds,
    on a GPU or a small dataset); then at the next epoch end that is due, and
    always when the run ends (finished, stopped or diverged)."""

    SHARE = 0.05
    FIRST_COST = 0.5  # seconds, the guess before the first drawing

    def __init__(self, clock=time.perf_counter):
        self.clock = clock
        self.since = None                          # the end of the last drawing (or the first epoch's start)
        self.cost, self.stale = self.FIRST_COST, False

    def on_epoch_begin(self, run, epoch, start):
        if self.since is None:
            self.since = self.clock()

    def on_epoch_end(self, run, epoch, samples):
        self.stale = True
        if (self.clock() - self.since) * self.SHARE >= self.cost:
            self.redraw(run)

    def on_train_end(self, run, summary):
        if self.stale:
            self.redraw(run)

    def redraw(self, run) -> None:
        began = self.clock()
        self.draw(run)
        self.since = self.clock()
        self.cost, self.stale = self.since - began, False

    def draw(self, run) -> None:
        # A Figure without pyplot (no global state, nothing to close) and fixed margins: tight_layout
        # cost a third of each drawing (0.17 of 0.47 s), paid at the end of every run.
        from matplotlib.figure import Figure

        lines = read_metrics(run.dir.path)
        steps = [m["step"] for m in lines]
        quality = [(m["step"], m["swd"]) for m in lines if "swd" in m]
        panels = 3 if quality else 2
        width = 4.2 * panels
        fig = Figure(figsize=(width, 3.2))
        axes = fig.subplots(1, panels)
        fig.subplots_adjust(left=0.62 / width, right=1 - 0.15 / width, bottom=0.16, top=0.83, wspace=0.28)
        for key, colour in (("loss_D", "tab:blue"), ("loss_G", "tab:orange")):
            plot_smoothed(axes[0], steps, [m[key] for m in lines], colour, key)
        axes[0].set_title("losses (smoothed; raw faint)")
        for key, label, colour in (("d_real", "D(x)", "tab:green"), ("d_fake", "D(G(z))", "tab:red")):
            plot_smoothed(axes[1], steps, [m[key] for m in lines], colour, label)
        axes[1].set_ylim(-0.02, 1.02)
        axes[1].set_title("D's mean output")
        if quality:
            axes[2].plot(*zip(*quality), marker="." if len(quality) < 30 else None, color="tab:purple")
            axes[2].set_title("image quality: SWD (lower is better)")
        for ax in axes:
            ax.set_xlabel("step")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize="small")
        fig.suptitle(f"DCGAN ({run.framework}, {run.config.data.name})", fontsize="medium")
        with atomic_write(run.dir.path / "losses.png") as f:
            fig.savefig(f, format="png", dpi=90)


class CheckpointWriter(Callback):
    """generator.npz and discriminator.npz (canonical: any framework loads them),
    then the framework-native checkpoint directory, swapped in whole."""

    def on_epoch_end(self, run, epoch, samples):
        arrays = run.export_nets()
        for net, name in (("G", "generator.npz"), ("D", "discriminator.npz")):
            save_weights(run.dir.path / name, select(arrays, net), run.config.spec)
        run.dir.write_checkpoint(run.save_checkpoint, run.step)


class EpochCallback(Callback):
    """A caller's function(epoch, metrics, samples) at every epoch end."""

    def __init__(self, function):
        self.function = function

    def on_epoch_end(self, run, epoch, samples):
        self.function(epoch, read_metrics(run.dir.path), samples)
