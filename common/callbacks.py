"""The small parts a run is made of, in the style of Keras callbacks
(docs/design.md §9). `common.run.Run` calls each hook of each part in order:

    on_epoch_begin(run, epoch, start)   before the epoch's first step (start: steps already done in it)
    on_step_end(run)                    after every step
    on_log(run, line)                   after a metrics line is made (a dict, as metrics.jsonl holds it)
    on_epoch_end(run, epoch, samples)   at the end of an epoch, or of the steps asked for;
                                        samples: G(fixed noise) as uint8 NHWC
    on_train_end(run, summary)          once, with the closing summary

The default parts, in the order they run: MetricsWriter, ProgressBar,
SampleGrid, LossPlot, CheckpointWriter (last: a checkpoint implies the
records before it are written), then the caller's own (a notebook's live plot).
"""

from __future__ import annotations

import sys

from common.files import atomic_write
from common.rundir import read_metrics
from common.viz import save_grid
from common.weights import save_weights

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


class LossPlot(Callback):
    """losses.png: loss_D and loss_G against the step."""

    def on_epoch_end(self, run, epoch, samples):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        lines = read_metrics(run.dir.path)
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for key in ("loss_D", "loss_G"):
            ax.plot([m["step"] for m in lines], [m[key] for m in lines], marker="." if len(lines) < 30 else None,
                    label=key)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(f"DCGAN ({run.framework}, {run.config.data.name})")
        ax.legend()
        fig.tight_layout()
        try:
            with atomic_write(run.dir.path / "losses.png") as f:
                fig.savefig(f, format="png", dpi=100)
        finally:
            plt.close(fig)


class CheckpointWriter(Callback):
    """generator.npz, then the framework-native checkpoint directory, swapped in whole."""

    def on_epoch_end(self, run, epoch, samples):
        save_weights(run.dir.path / "generator.npz", run.export_generator(), run.config.spec)
        run.dir.write_checkpoint(run.save_checkpoint, run.step)


class EpochCallback(Callback):
    """A caller's function(epoch, metrics, samples) at every epoch end."""

    def __init__(self, function):
        self.function = function

    def on_epoch_end(self, run, epoch, samples):
        self.function(epoch, read_metrics(run.dir.path), samples)


def default_callbacks(progress=None, callback=None) -> list[Callback]:
    parts = [MetricsWriter(), ProgressBar(progress), SampleGrid(), LossPlot(), CheckpointWriter()]
    return parts + ([EpochCallback(callback)] if callback else [])
