"""Scaling out, the framework-free half (docs/design.md §13; README, Scaling out).

Each backend scales on its own framework's engine (dcgan_<fw>/distributed.py):
PyTorch's DistributedDataParallel under torchrun, TensorFlow's tf.distribute
strategies, Gluon's multi-device Trainer and kvstore. What they share is here:

- The global batch is --batch-size in every framework. Of it, each process
  trains one contiguous shard (`World.shard`), and each of its devices one
  contiguous part of that: the batch of one device is the global batch over
  all devices. The noise is drawn for the global batch (keyed by seed and
  step, as in one process) and sharded the same way, so what a run computes
  does not depend on how many processes or devices share it, except for
  batch norm, whose statistics are each device's own unless --sync-bn.
- Process 0, the chief, alone writes the run directory, samples and
  evaluates; the others train in step with it.
- A stop request (SIGINT, SIGTERM) on any process stops them all after the
  same step: `World.agree` runs one small collective per step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from common.errors import UsageError


def _alone(value: int) -> int:
    return value


@dataclass(frozen=True)
class World:
    """The processes of a run: this one is `rank` of `size`."""

    rank: int = 0
    size: int = 1
    # the largest of an int over the processes (a stop request's signal number or 0, the step a run
    # resumes from): a collective when size > 1, called by every process at the same point
    agree: Callable[[int], int] = field(default=_alone, repr=False, compare=False)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def shard_rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch."""
        per = batch_size // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def shard(self, batch: np.ndarray) -> np.ndarray:
        """This process's contiguous shard of a global batch (axis 0)."""
        return batch if self.size == 1 else batch[self.shard_rows(len(batch))]


@dataclass(frozen=True)
class Replicas:
    """What one process trains on, as a backend's distributed.setup() found it.

    world: the processes; device: where this process's inputs go and where it
    samples; placement: what core.to_device takes (the device, or Gluon's list
    of devices); devices: how many devices this process trains on; scope: the
    context to build nets and optimizers in (a tf.distribute strategy's scope);
    engine: the tf.distribute strategy the step runs under (None elsewhere);
    sync_bn: batch norm over the global batch."""

    world: World
    device: Any
    placement: Any
    devices: int = 1
    description: str = ""
    scope: Callable[[], Any] = field(default=contextlib.nullcontext, repr=False)
    engine: Any = None
    sync_bn: bool = False

    @property
    def total(self) -> int:
        """Devices in the whole run."""
        return self.world.size * self.devices

    @property
    def distributed(self) -> bool:
        return self.total > 1

    def check(self, batch_size: int) -> None:
        """The global batch must split evenly over every device of the run."""
        if batch_size % self.total:
            raise UsageError(f"--batch-size {batch_size} does not split evenly over {self.total} devices "
                             f"({self.world.size} process(es) x {self.devices}); the global batch must be "
                             f"a multiple of the number of devices")


def parse_devices(text: str | None) -> list[tuple[str, int]]:
    """--devices "cpu:0,cpu:1" or "gpu:0,gpu:1" -> [("cpu", 0), ("cpu", 1)]; one kind, no repeats."""
    if not text:
        return []
    devices = []
    for item in text.split(","):
        kind, _, index = item.strip().lower().partition(":")
        if kind not in ("cpu", "gpu") or not index.isdigit():
            raise UsageError(f"--devices {text!r}: each device is cpu:N or gpu:N, comma-separated "
                             f"(cpu:0,cpu:1), got {item.strip()!r}")
        devices.append((kind, int(index)))
    if len({k for k, _ in devices}) > 1:
        raise UsageError(f"--devices {text!r}: all CPUs or all GPUs, not both")
    if len(set(devices)) < len(devices):
        raise UsageError(f"--devices {text!r} names a device twice")
    return devices
