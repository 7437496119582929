"""Scaling out with Gluon's own engine (docs/design.md §13; README, Scaling out):
the nets keep a copy on every device of --devices, each batch is split over
them with split_and_load, and the Trainers' kvstore sums the devices'
gradients before every update.

    python -m dcgan_mx.train --devices gpu:0,gpu:1 ...    # or cpu:0,cpu:1 to try it on a laptop

The kvstore is "device". Several machines (MXNet's launcher, the dist_sync
kvstore) are refused: with a distributed kvstore Gluon updates on the
servers, whose optimizer states a Trainer cannot save (no checkpoint), and
two Trainers (G's and D's) share the servers' keys. Batch norm is per device.
"""

from __future__ import annotations

import contextlib
import os

from common.distributed import Replicas, World, parse_devices
from common.errors import UsageError
from dcgan_mx.compat import np, npx
from dcgan_mx.core import describe_device, pick_device


@contextlib.contextmanager
def setup(config):
    """The processes and devices this run trains on: --devices (default: the one device of --device)."""
    if config.strategy != "default":
        raise UsageError(f"--strategy {config.strategy} is TensorFlow's; MXNet takes --devices "
                         f"(README, Scaling out)")
    devices = [_context(kind, index) for kind, index in parse_devices(config.devices)] or [pick_device(config.device)]
    if config.sync_bn and len(devices) > 1:
        raise UsageError("--sync-bn is not supported by the MXNet backend: its batch norm is per device "
                         "(README, Scaling out)")
    if "DMLC_ROLE" in os.environ:
        raise UsageError("MXNet's launcher (DMLC_ROLE is set): training across machines with the dist_sync "
                         "kvstore is not supported (Gluon cannot checkpoint its Trainers there; README, Scaling out)")
    world = World()
    description = ", ".join(describe_device(d) for d in devices)
    replicas = Replicas(world, devices[0], devices if len(devices) > 1 else devices[0], devices=len(devices),
                        description=description)
    replicas.check(config.batch_size)
    yield replicas


def replicate(net, replicas: Replicas):
    """The net as it trains: the same net, whose parameters core.to_device put
    on every device; Gluon runs each device's part and the Trainer gathers them."""
    return net


def mean_across(metrics: dict, replicas: Replicas) -> dict:
    """Each metric averaged over the devices, on the first one (per-device lists in, one 0-d array each out)."""
    if not isinstance(next(iter(metrics.values())), list):
        return metrics
    return {k: np.stack([v.as_in_ctx(replicas.device) for v in values]).mean() for k, values in metrics.items()}


def _context(kind: str, index: int):
    if kind == "gpu" and index >= npx.num_gpus():
        raise UsageError(f"--devices gpu:{index}: MXNet sees {npx.num_gpus()} GPU(s) (README, GPU)")
    return npx.gpu(index) if kind == "gpu" else npx.cpu(index)
