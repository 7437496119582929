"""Scaling out on each framework's own engine (common/distributed.py,
dcgan_<fw>/distributed.py), on this machine's CPU: TensorFlow's
MirroredStrategy over two logical CPUs and MultiWorkerMirroredStrategy in two
processes, Gluon over two CPU contexts, and the framework-free half (PyTorch's
DDP is tests/test_ddp.py). Each distributed run is compared with a one-device
run where the semantics say they must agree, in float64."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from common.backends import quiet_env
from common.distributed import Replicas, World, parse_devices
from common.errors import UsageError
from common.rundir import read_metrics
from helpers import BACKENDS, one_line_error, run_main
from twins import ROOT, TIMEOUT, TINY, TOLERANCE, run, same_metrics, tiny_config


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
    # Not cpu(0), the default context: sampling and export must read the nets' first device.
    summary = BACKENDS["mx"].train.train(tiny_config(out, devices="cpu:1,cpu:2", max_steps=6), progress=False)
    assert summary["step"] == 6 and summary["device"] == "cpu(1), cpu(2)"
    assert all(np.isfinite(m["loss_D"]) for m in read_metrics(out))
    assert (out / "generator.npz").exists() and (out / "checkpoint" / "progress.json").exists()


# -- TensorFlow: MirroredStrategy over logical CPUs (made before TensorFlow starts: a fresh process) --

@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """tests/twins.py tf OUT: per-device batch norm on duplicated shards, and a --sync-bn run
    (OUT/two) against a one-device run (OUT/one, 4 steps of twins.TINY)."""
    out = tmp_path_factory.mktemp("mirrored")
    return out, run([sys.executable, "tests/twins.py", "tf", out])


@pytest.mark.slow
@pytest.mark.skipif("tf" not in BACKENDS, reason="TensorFlow is not installed")
def test_mirrored_two_devices_equal_one_device(mirrored):
    out, proc = mirrored
    assert proc.returncode == 0, proc.stderr[-3000:]
    diffs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert diffs["devices"] == 2 and diffs["moved"] > 0.1
    assert max(diffs["metrics"], diffs["weights"], diffs["sync_bn"]) <= TOLERANCE, diffs
    assert "MirroredStrategy over CPU:0, CPU:1" in json.loads((out / "two" / "config.json").read_text())["device"]


@pytest.mark.slow
@pytest.mark.skipif("tf" not in BACKENDS, reason="TensorFlow is not installed")
def test_multiworker_two_processes_with_sync_bn_equal_one_device(tmp_path, mirrored):
    """Two worker processes over loopback, configured by TF_CONFIG as two nodes would be,
    against the one-device run of the same 4 steps that `mirrored` made."""
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    args = [sys.executable, "-m", "dcgan_tf.train", *TINY, "--max-steps", "4", "--strategy", "multiworker",
            "--sync-bn"]
    workers = [subprocess.Popen([*args, "--out", tmp_path / f"worker{i}"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**quiet_env(), "TF_CONFIG": json.dumps({"cluster": cluster,
                                                                             "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    try:
        results = [w.communicate(timeout=TIMEOUT) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0], [err[-2000:] for _, err in results]
    assert not (tmp_path / "worker1").exists()  # the chief alone writes
    one = mirrored[0] / "one"
    assert mirrored[1].returncode == 0 and json.loads((one / "summary.json").read_text())["step"] == 4
    same_metrics(read_metrics(one), read_metrics(tmp_path / "worker0"))
    assert "worker 0 of 2" in json.loads((tmp_path / "worker0" / "config.json").read_text())["device"]


# -- the framework-free half --------------------------------------------------------------

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


def test_launchers_this_project_cannot_serve_are_one_line(tmp_path, capsys, monkeypatch):
    """MXNet's dist_sync launcher (no Trainer checkpoint there), and a TF_CONFIG with a chief task."""
    cases = [("mx", {"DMLC_ROLE": "worker"}, [], "dist_sync kvstore is not supported"),
             ("tf", {"TF_CONFIG": json.dumps({"cluster": {"chief": ["h0:1"], "worker": ["h1:1"]},
                                              "task": {"type": "chief", "index": 0}})},
              ["--strategy", "multiworker"], "TF_CONFIG names tasks of type chief"),
             ("tf", {"TF_CONFIG": "{not json"}, ["--strategy", "multiworker"], "TF_CONFIG is not a cluster")]
    for framework, env, args, message in cases:
        if framework not in BACKENDS:
            continue
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            out = tmp_path / framework
            one_line_error(capsys, 2, run_main(BACKENDS[framework].train.main, ["--out", out, *TINY, *args]),
                           message)
            assert not out.exists()
