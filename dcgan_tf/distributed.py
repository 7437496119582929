"""Scaling out with TensorFlow's own engine (docs/design.md §13; README, Scaling out):
a tf.distribute strategy. The nets and optimizers are built in its scope
(mirrored variables), the step runs under strategy.run on each replica's
part of the batch, Keras's optimizers sum the replicas' gradients, and the
metrics are reduced over the replicas.

    python -m dcgan_tf.train --strategy mirrored ...                      # every local GPU
    python -m dcgan_tf.train --strategy mirrored --devices cpu:0,cpu:1 ... # the CPU split in two
    TF_CONFIG='{...}' python -m dcgan_tf.train --strategy multiworker ...  # one process per node

--sync-bn runs Keras's batch norm synchronized over the replicas.
"""

from __future__ import annotations

import contextlib
import json
import os

from common.distributed import Replicas, World, parse_devices
from common.errors import UsageError
from dcgan_tf.compat import tf
from dcgan_tf.core import describe_device, pick_device


@contextlib.contextmanager
def setup(config):
    """The processes and devices this run trains on, as --strategy and --devices say."""
    devices = parse_devices(config.devices)
    if config.strategy == "default":
        if devices:
            raise UsageError(f"--devices {config.devices} needs --strategy mirrored in TensorFlow")
        device = pick_device(config.device)
        yield Replicas(World(), device, device, description=describe_device(device))
        return
    if config.strategy == "mirrored":
        strategy = _strategy("mirrored", tuple(_local_devices(devices, config.device)))
        world = World()
    else:  # multiworker: the cluster and this worker's place in it come from TF_CONFIG
        if "TF_CONFIG" not in os.environ:
            raise UsageError("--strategy multiworker needs TF_CONFIG, which names the cluster and this "
                             "worker (README, Scaling out)")
        if devices:
            raise UsageError("--strategy multiworker uses each worker's local GPUs (or its CPU); "
                             "--devices is for --strategy mirrored")
        try:
            tf_config = json.loads(os.environ["TF_CONFIG"])
            kinds = set(tf_config["cluster"]) | {tf_config["task"]["type"]}
        except (ValueError, KeyError, TypeError) as e:
            raise UsageError(f"TF_CONFIG is not a cluster and a task ({type(e).__name__}: {e}); "
                             f"see README, Scaling out") from None
        if kinds != {"worker"}:
            raise UsageError(f"TF_CONFIG names tasks of type {', '.join(sorted(kinds - {'worker'}))}: "
                             f"here every node is a worker, and worker 0 writes the run")
        strategy = _strategy("multiworker", ())
        resolver = strategy.cluster_resolver
        world = World(int(resolver.task_id), resolver.cluster_spec().num_tasks("worker"),
                      lambda value: _agree(strategy, value))
    local = strategy.num_replicas_in_sync // world.size
    device = strategy.extended.worker_devices[0]
    replicas = Replicas(world, device, device, devices=local,
                        description=f"{'MirroredStrategy' if config.strategy == 'mirrored' else 'MultiWorkerMirroredStrategy'} over "
                                    f"{', '.join(d.split('device:')[-1] for d in strategy.extended.worker_devices)}"
                                    + (f", worker {world.rank} of {world.size}" if world.size > 1 else ""),
                        scope=strategy.scope, engine=strategy, sync_bn=config.sync_bn)
    replicas.check(config.batch_size)
    yield replicas


def replicate(net, replicas: Replicas):
    """The net as it trains: the same Keras model, whose variables the
    strategy's scope mirrored on every replica; with --sync-bn its batch norm
    computes the global batch's statistics (Keras's `synchronized`)."""
    if replicas.sync_bn:
        for layer in net.layers:
            bn = getattr(layer, "batch_norm", None)
            if bn is not None:
                bn.synchronized = True
    return net


def mean_across(metrics: dict, replicas: Replicas) -> dict:
    """The replicas' metrics reduced to the global batch's: the losses are
    each replica's share (train.loss divides by the number of replicas), so
    they add up; the mean probabilities are averaged."""
    strategy = replicas.engine
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM if k.startswith("loss") else tf.distribute.ReduceOp.MEAN,
                               v, axis=None) for k, v in metrics.items()}


_STRATEGIES = {}


def _strategy(kind: str, devices: tuple):
    """One strategy per kind and devices in a process: a second MirroredStrategy
    over the same devices (a notebook training twice) would reuse its
    collectives' keys and fail with a shape mismatch."""
    if (kind, devices) not in _STRATEGIES:
        _STRATEGIES[kind, devices] = (tf.distribute.MirroredStrategy(list(devices)) if kind == "mirrored"
                                      else tf.distribute.MultiWorkerMirroredStrategy())
    return _STRATEGIES[kind, devices]


def _local_devices(devices, choice):
    """The devices of a MirroredStrategy: --devices, or every GPU, or the CPU.
    cpu:0,cpu:1 splits the CPU into that many logical devices (before
    TensorFlow first uses it), so a laptop can try what a GPU box runs."""
    if not devices:
        gpus = tf.config.list_logical_devices("GPU") if choice != "cpu" else []
        return [d.name for d in gpus] or ["/cpu:0"]
    kind = devices[0][0]
    if kind == "gpu":
        have = len(tf.config.list_physical_devices("GPU"))
        missing = [i for _, i in devices if i >= have]
        if missing:
            raise UsageError(f"--devices gpu:{missing[0]}: TensorFlow sees {have} GPU(s)")
        return [f"/gpu:{i}" for _, i in devices]
    count = max(i for _, i in devices) + 1
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:  # already initialised: fine if it has as many logical CPUs already
        if len(tf.config.list_logical_devices("CPU")) < count:
            raise UsageError(f"--devices {','.join(f'cpu:{i}' for _, i in devices)}: TensorFlow already "
                             f"started with {len(tf.config.list_logical_devices('CPU'))} CPU device(s) in this "
                             f"process; start a new one") from None
    return [f"/cpu:{i}" for _, i in devices]


def _agree(strategy, value: int) -> int:
    """The largest `value` over the workers (a collective, in one graph: each
    replica's value gathered, then their maximum)."""
    if strategy not in _LARGEST:
        @tf.function
        def largest(value):
            return tf.reduce_max(strategy.gather(strategy.run(tf.identity, args=(value,)), axis=0))
        _LARGEST[strategy] = largest
    return int(_LARGEST[strategy](tf.constant([value], tf.int64)))


_LARGEST = {}
