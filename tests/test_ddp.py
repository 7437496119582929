"""PyTorch's DistributedDataParallel under torchrun, two processes over
loopback on the CPU (gloo): against one process, with and without --sync-bn,
across a resume, and a stop request agreed by every process."""

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from common.backends import quiet_env
from common.distributed import Replicas, World
from common.rundir import read_metrics
from helpers import BACKENDS, one_line_error, run_main
from twins import TINY, no_process_left, run, same_metrics, tiny_config

pytestmark = pytest.mark.skipif("torch" not in BACKENDS, reason="PyTorch is not installed")


# -- PyTorch: torchrun, DistributedDataParallel ----------------------------------------

def torchrun(*args):
    """torchrun with 2 processes; its scratch folders (torchelastic_*, which it leaves behind) go
    in a folder beside the run's --out, under pytest's temporary directory, not in /tmp."""
    scratch = Path(args[args.index("--out") + 1]).parent / "torchelastic"
    scratch.mkdir(exist_ok=True)
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "dcgan_torch.train", *TINY, *args], env=dict(quiet_env(), TMPDIR=str(scratch)))


@pytest.fixture(scope="module")
def one_process_torch(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    BACKENDS["torch"].train.train(tiny_config(out), progress=False)
    return read_metrics(out)


@pytest.mark.slow
def test_ddp_with_sync_bn_equals_one_process_and_resumes(tmp_path, one_process_torch):
    out = tmp_path / "ddp"
    first = torchrun("--sync-bn", "--epochs", "1", "--out", out)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(read_metrics(out)) == 4  # 4 steps of the first epoch, each logged once (by rank 0 alone)
    second = torchrun("--sync-bn", "--epochs", "2", "--resume", "--out", out)
    assert second.returncode == 0, second.stderr[-3000:]
    same_metrics(one_process_torch, read_metrics(out))  # both epochs, across the resume
    saved = json.loads((out / "config.json").read_text())
    assert "rank 0 of 2 (gloo)" in saved["device"] and saved["config"]["sync_bn"] is True
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert json.loads((out / "checkpoint" / "progress.json").read_text())["step"] == 8
    assert first.stdout.count("examples/sec") == 1  # the closing line, from rank 0 only
    assert no_process_left(out)


@pytest.mark.slow
def test_ddp_without_sync_bn_trains_on_per_process_statistics(tmp_path, one_process_torch):
    out = tmp_path / "ddp"
    proc = torchrun("--max-steps", "3", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = read_metrics(out)
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all(np.isfinite(m[k]) for m in lines for k in ("loss_D", "loss_G"))
    # Each process normalises its own 8 examples: not the one-process run's numbers.
    assert abs(lines[0]["loss_D"] - one_process_torch[0]["loss_D"]) > 1e-4
    assert no_process_left(out)


def test_a_stop_request_on_any_process_stops_every_process(tmp_path, monkeypatch):
    """World.agree is the collective; here a peer 'asks' at step 3, and this
    process stops after that step as if asked itself, checkpoint and all.
    (By hand: SIGTERM to one torchrun worker, or to torchrun, stopped both
    workers at the same step, with rank 0's checkpoint.)"""
    import dcgan_torch.train as train
    from dcgan_torch.core import pick_device
    calls = []

    def peer_asks_at_third_step(value):
        calls.append(value)
        return 15 if len(calls) > 4 else 0  # one agreement at the epoch start, then one before each step

    @contextlib.contextmanager
    def setup(config):
        device = pick_device("cpu")
        yield Replicas(World(0, 1, peer_asks_at_third_step), device, device, description="cpu")

    monkeypatch.setattr(train, "setup", setup)
    summary = train.train(tiny_config(tmp_path / "run", epochs=3), progress=False)
    assert summary["step"] == 3 and summary["interrupted"] and summary["signal"] == "SIGTERM"
    assert json.loads((tmp_path / "run" / "checkpoint" / "progress.json").read_text())["step"] == 3


def test_a_process_other_than_the_chief_trains_its_shard_and_writes_nothing(tmp_path, monkeypatch):
    import dcgan_torch.train as train
    from dcgan_torch.core import pick_device

    @contextlib.contextmanager
    def setup(config):
        device = pick_device("cpu")
        yield Replicas(World(1, 2), device, device, description="cpu, rank 1 of 2")

    monkeypatch.setattr(train, "setup", setup)
    monkeypatch.setattr(train, "replicate", lambda net, replicas: net)  # no process group here: no DDP
    monkeypatch.setattr(train, "mean_across", lambda metrics, replicas: metrics)
    summary = train.train(tiny_config(tmp_path / "run", max_steps=5), progress=False)
    assert summary["step"] == 5
    assert not (tmp_path / "run").exists()


def test_processes_that_would_resume_from_different_steps_are_refused(tmp_path, monkeypatch, capsys):
    """Each process reads --out itself: without a shared directory a peer may see another checkpoint
    (here: step 4, where this one starts afresh). That is one line, before anything is written."""
    import dcgan_torch.train as train
    from dcgan_torch.core import pick_device

    @contextlib.contextmanager
    def setup(config):
        device = pick_device("cpu")
        yield Replicas(World(0, 2, lambda value: max(value, 4 if value >= 0 else -4)), device, device)

    monkeypatch.setattr(train, "setup", setup)
    monkeypatch.setattr(train, "replicate", lambda net, replicas: net)
    out = tmp_path / "run"
    one_line_error(capsys, 1, run_main(train.main, [*TINY, "--out", out]), "found different checkpoints")
    assert not out.exists()
