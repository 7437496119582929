"""Scaling out with PyTorch's own engine (docs/design.md §13; README, Scaling out):
torchrun starts one process per device and DistributedDataParallel averages
the gradients over them.

    torchrun --nproc_per_node 2 -m dcgan_torch.train --data shapes --image-size 32 --batch-size 64

Each process trains its shard of the global batch (common.distributed); the
backend is gloo on the CPU and nccl on GPUs, each process on the GPU of its
LOCAL_RANK. --sync-bn replaces batch norm by SyncBatchNorm. Launched plainly
(no torchrun), the run is one process on one device, as before.
"""

from __future__ import annotations

import contextlib
import inspect
import os

from common.distributed import Replicas, World
from common.errors import UsageError
from dcgan_torch.compat import torch
from dcgan_torch.core import describe_device, pick_device
from dcgan_torch.model import BN_MOMENTUM

dist = torch.distributed


@contextlib.contextmanager
def setup(config):
    """The processes and the device this run trains on: under torchrun, the
    process group is initialised here (and destroyed on the way out)."""
    if config.devices:
        raise UsageError(f"--devices {config.devices}: PyTorch trains one device per process; launch "
                         f"torchrun --nproc_per_node N -m dcgan_torch.train ... (README, Scaling out)")
    if config.strategy != "default":
        raise UsageError(f"--strategy {config.strategy} is TensorFlow's; PyTorch scales with torchrun "
                         f"(README, Scaling out)")
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device = pick_device(config.device)
    if size == 1:  # one process (with --sync-bn too: its batch norm is the whole batch's already)
        yield Replicas(World(), device, device, description=describe_device(device))
        return
    if device.type == "cuda":  # this process's GPU: the one of its rank on this node
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UsageError(f"torchrun started local rank {local}, but PyTorch sees "
                             f"{torch.cuda.device_count()} GPU(s): --nproc_per_node at most that many")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        # The stop requests agree over gloo on the CPU: no GPU sync per step.
        flags = dist.new_group(backend="gloo") if device.type == "cuda" else None

        def agree(value: int) -> int:
            flag = torch.tensor([value], dtype=torch.int64)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=flags)
            return int(flag)

        world = World(dist.get_rank(), dist.get_world_size(), agree)
        replicas = Replicas(world, device, device, description=f"{describe_device(device)}, rank {world.rank} "
                            f"of {world.size} ({dist.get_backend()})", sync_bn=config.sync_bn)
        replicas.check(config.batch_size)
        yield replicas
    finally:
        dist.destroy_process_group()


def replicate(net, replicas: Replicas):
    """The net as it trains across the processes: DistributedDataParallel
    around it (which broadcasts rank 0's weights now, and averages the
    gradients in every backward), its batch norm synchronised if asked. The
    net itself is unchanged apart from that, and is what samples and saves."""
    if not replicas.distributed:
        return net
    if replicas.sync_bn:
        for block in net:
            if getattr(block, "batch_norm", None) is not None:
                block.batch_norm = _synchronised(block.batch_norm, replicas.device)
    device = replicas.device
    # broadcast_buffers=False: only the chief's batch-norm statistics are ever used (it samples and
    # saves), and with --sync-bn every process's are the same; broadcasting them costs a collective
    # at each of the step's five forward passes.
    DDP = torch.nn.parallel.DistributedDataParallel
    no_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in inspect.signature(DDP).parameters
               else {"broadcast_buffers": False})  # the older name (PyTorch < 2.12)
    kind = _DiscriminatorDDP if net.role == "D" else DDP
    return kind(net, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


class _DiscriminatorDDP(torch.nn.parallel.DistributedDataParallel):
    """DDP for D, whose gradients only the D step needs averaged. The G step
    runs D on G's output (which requires grad) and backpropagates through it
    for G's gradients alone; there D runs as the plain module, so DDP does not
    all-reduce D's gradients a second time (they are cleared before the next
    D step): one all-reduce of D per step instead of two, which matters
    between GPUs and nodes; on 2 CPU processes over loopback the difference
    was within the noise (interleaved runs, 150-225 examples/s either way)."""

    def forward(self, X):
        return self.module(X) if X.requires_grad else super().forward(X)


def mean_across(metrics: dict, replicas: Replicas) -> dict:
    """Each metric averaged over the processes (one all-reduce, on the device)."""
    if not replicas.distributed:
        return metrics
    values = torch.stack([metrics[k] for k in metrics])
    dist.all_reduce(values)
    return dict(zip(metrics, values / replicas.world.size))


def _synchronised(bn, device):
    """bn as a batch norm over the global batch, with the same parameters and
    statistics (the optimizer keeps them): PyTorch's SyncBatchNorm on a GPU,
    _CPUSyncBatchNorm2d on the CPU (DDP refuses SyncBatchNorm there)."""
    kind = _CPUSyncBatchNorm2d if device.type == "cpu" else _SyncBatchNorm2d
    sync = kind(bn.num_features, eps=bn.eps, momentum=bn.momentum).to(device)
    sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
    sync.num_batches_tracked = bn.num_batches_tracked
    return sync


class _SyncBatchNorm2d(torch.nn.SyncBatchNorm):
    """torch.nn.SyncBatchNorm, with the running variance following the biased
    variance of the global batch, as model._BatchNorm2d's does."""

    def forward(self, X):
        if not self.training:
            return super().forward(X)
        n = X.numel() // X.shape[1] * dist.get_world_size()  # values per channel in the global batch
        old = self.running_var.clone()
        Y = super().forward(X)  # PyTorch's kernel folds in the unbiased variance; make it the biased one
        with torch.no_grad():
            self.running_var = self.running_var * ((n - 1) / n) + old * ((1 - BN_MOMENTUM) / n)
        return Y


class _CPUSyncBatchNorm2d(torch.nn.BatchNorm2d):
    """Batch norm over the global batch on the CPU, where PyTorch's
    SyncBatchNorm does not run (its kernels are for GPUs, and DDP refuses it
    on the CPU): the global mean and biased variance are two all-reduces of
    PyTorch's functional collectives, which are differentiable (the gradient
    of a sum is the sum of the gradients), so the backward pass is
    synchronised as SyncBatchNorm's is. Running statistics as model._BatchNorm2d."""

    def forward(self, X):
        if not self.training:
            return super().forward(X)
        n = X.numel() // X.shape[1] * dist.get_world_size()  # values per channel in the global batch
        dtype = X.dtype  # bfloat16 under bf16 autocast: the statistics are then computed in float32
        X = X.to(torch.float64 if dtype == torch.float64 else torch.float32)
        mean = _all_reduce(X.sum((0, 2, 3))) / n
        centred = X - mean[None, :, None, None]
        var = _all_reduce((centred * centred).sum((0, 2, 3))) / n
        Y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        Y = (Y * self.weight[None, :, None, None] + self.bias[None, :, None, None]).to(dtype)
        with torch.no_grad():
            m = self.momentum
            self.running_mean = self.running_mean * (1 - m) + mean.detach() * m
            self.running_var = self.running_var * (1 - m) + var.detach() * m
            self.num_batches_tracked += 1
        return Y


def _all_reduce(x):
    """The sum over the processes, differentiable (what torch.distributed.nn's
    deprecated all_reduce points to)."""
    from torch.distributed import _functional_collectives as collectives
    return collectives.all_reduce(x, "sum", dist.group.WORLD)
