"""Scaling out on each framework's own engine (common/distributed.py,
dcgan_<fw>/distributed.py), on this machine's CPU: PyTorch DDP in two
processes over loopback (torchrun), TensorFlow's MirroredStrategy over two
logical CPUs, Gluon over two CPU contexts. Each distributed run is compared
with a one-device run where the semantics say they must agree, in float64."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.backends import quiet_env
from common.config import TrainConfig
from common.distributed import Replicas, World, parse_devices
from common.errors import UsageError
from common.rundir import read_metrics
from helpers import BACKENDS, one_line_error, run_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "shapes", "--image-size", "16", "--n-g", "8", "--n-d", "8", "--batch-size", "16",
        "--num-images", "64", "--log-every", "1", "--no-eval", "--dtype", "float64", "--lr", "0.002"]
TOLERANCE = 1e-9  # float64: what the frameworks' own parity reaches is ~1e-12; measured here ~1e-16
TIMEOUT = 300


def tiny_config(out, **changes) -> TrainConfig:
    flat = dict(name="shapes", image_size=16, n_G=8, n_D=8, batch_size=16, num_images=64, log_every=1,
                eval=False, dtype="float64", lr=0.002, epochs=2, out=str(out))
    return TrainConfig().replace(**{**flat, **changes})


def same_metrics(a, b):
    """The two runs logged the same steps with the same values."""
    assert [m["step"] for m in a] == [m["step"] for m in b]
    worst = max(abs(x[k] - y[k]) for x, y in zip(a, b) for k in ("loss_D", "loss_G", "d_real", "d_fake"))
    assert worst <= TOLERANCE, worst


def run(argv, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=quiet_env(),
                          timeout=TIMEOUT, cwd=ROOT, **kwargs)


def no_process_left(out):
    """No process still runs with `out` on its command line."""
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(out) in (proc / "cmdline").read_bytes().decode(errors="replace"):
                left.append(proc.name)
        except OSError:
            continue
    return not left


# -- PyTorch: torchrun, DistributedDataParallel ----------------------------------------

def torchrun(*args):
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "dcgan_torch.train", *TINY, *args])


@pytest.fixture(scope="module")
def one_process_torch(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    BACKENDS["torch"].train.train(tiny_config(out), progress=False)
    return read_metrics(out)


@pytest.mark.slow
@pytest.mark.skipif("torch" not in BACKENDS, reason="PyTorch is not installed")
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
@pytest.mark.skipif("torch" not in BACKENDS, reason="PyTorch is not installed")
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


# -- Gluon: several devices in one process ----------------------------------------------

@pytest.mark.skipif("mx" not in BACKENDS, reason="MXNet is not installed")
def test_gluon_two_devices_equal_one_on_duplicated_shards():
    import twins
    diffs = twins.duplicated_shards("mx")
    assert diffs["devices"] == 2 and diffs["moved"] > 0.1  # two devices, and the weights did move
    assert diffs["metrics"] <= TOLERANCE and diffs["weights"] <= TOLERANCE, diffs


@pytest.mark.skipif("mx" not in BACKENDS, reason="MXNet is not installed")
def test_gluon_two_devices_train_a_run(tmp_path):
    out = tmp_path / "mx"
    summary = BACKENDS["mx"].train.train(tiny_config(out, devices="cpu:0,cpu:1", max_steps=6), progress=False)
    assert summary["step"] == 6 and summary["device"] == "cpu(0), cpu(1)"
    assert all(np.isfinite(m["loss_D"]) for m in read_metrics(out))
    assert (out / "generator.npz").exists() and (out / "checkpoint" / "progress.json").exists()


# -- TensorFlow: MirroredStrategy over logical CPUs (made before TensorFlow starts: a fresh process) --

@pytest.mark.slow
@pytest.mark.skipif("tf" not in BACKENDS, reason="TensorFlow is not installed")
def test_mirrored_two_devices_equal_one_device(tmp_path):
    """Per-device batch norm on duplicated shards, and --sync-bn on the global batch (tests/twins.py)."""
    proc = run([sys.executable, "tests/twins.py", "tf", tmp_path])
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert diffs["devices"] == 2 and diffs["moved"] > 0.1
    assert max(diffs["metrics"], diffs["weights"], diffs["sync_bn"]) <= TOLERANCE, diffs
    assert "MirroredStrategy over CPU:0, CPU:1" in json.loads((tmp_path / "two" / "config.json").read_text())["device"]


# -- the framework-free half --------------------------------------------------------------

def test_a_stop_request_on_any_process_stops_every_process(tmp_path, monkeypatch):
    """World.agree is the collective; here a peer 'asks' at step 3, and this
    process stops after that step as if asked itself, checkpoint and all."""
    import contextlib

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


def test_world_shards_are_contiguous_and_cover_the_batch():
    batch = np.arange(12)
    shards = [World(rank, 3).shard(batch) for rank in range(3)]
    assert [s.tolist() for s in shards] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(UsageError, match="does not split evenly over 3 devices"):
        Replicas(World(0, 1), "cpu", "cpu", devices=3).check(16)


@pytest.mark.parametrize("text, message", [("cpu:0,gpu:1", "not both"), ("cpu:0,cpu:0", "twice"),
                                           ("tpu:0", "cpu:N or gpu:N"), ("cpu", "cpu:N or gpu:N")])
def test_bad_devices_are_one_line(text, message):
    with pytest.raises(UsageError, match=message):
        parse_devices(text)


@pytest.mark.parametrize("framework, args, message", [
    ("torch", ["--devices", "cpu:0,cpu:1"], "launch torchrun --nproc_per_node N"),
    ("torch", ["--strategy", "mirrored"], "--strategy mirrored is TensorFlow's"),
    ("mx", ["--strategy", "mirrored"], "--strategy mirrored is TensorFlow's"),
    ("mx", ["--devices", "cpu:0,cpu:1", "--sync-bn"], "--sync-bn is not supported by the MXNet backend"),
    ("mx", ["--devices", "cpu:0,cpu:1,cpu:2"], "does not split evenly over 3 devices"),
    ("tf", ["--devices", "cpu:0,cpu:1"], "needs --strategy mirrored"),
    ("tf", ["--strategy", "multiworker"], "needs TF_CONFIG"),
])
def test_bad_scaling_flags_are_one_line(framework, args, message, tmp_path, capsys, monkeypatch):
    if framework not in BACKENDS:
        pytest.skip(f"{framework} is not installed")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "out"
    one_line_error(capsys, 2, run_main(BACKENDS[framework].train.main, ["--out", out, *TINY, *args]), message)
    assert not out.exists()
    assert os.environ.get("WORLD_SIZE") is None  # nothing above started a process group
