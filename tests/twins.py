"""Runs on several devices against runs on one: the helpers of
tests/test_ddp.py and tests/test_distributed.py, and the check below.

One step on two devices against one step on one device, in-process, for
the single-process engines (Gluon's multi-device Trainer, TensorFlow's
MirroredStrategy), with batch norm per device as they run it.

With per-device batch norm a two-device step equals a one-device step when
both devices get the same shard: each sees the statistics of its shard, and
the gradients they average are equal. So a batch (X, X) on two devices must
give what X gives on one, step after step. Float64, three steps.

    python tests/twins.py tf [OUT]   # TensorFlow makes its logical CPUs before first use: a fresh process

With OUT, also a two-device run with --sync-bn (Keras's synchronized batch
norm) against a one-device run, written under OUT: they must agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from common.backends import quiet_env
from common.config import TrainConfig

# -- shared by tests/test_ddp.py and tests/test_distributed.py ---------------------------

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


def run(argv, env=None, **kwargs):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env or quiet_env(),
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



# -- one device against two, in one process -----------------------------------------------



def duplicated_shards(name: str, steps: int = 3) -> dict:
    """Largest absolute differences, one device against two, over `steps` steps: metrics and weights."""
    from common.backends import load
    from common.parity import randomize_batch_norm
    from common.spec import ModelSpec, latent_shape
    from common.weights import init_weights
    backend = load(name)
    spec = ModelSpec(image_size=16, n_G=8, n_D=8, latent_dim=16)
    arrays = randomize_batch_norm(init_weights(spec, 5), 5)
    rng = np.random.default_rng(7)
    batches = [(rng.uniform(-1, 1, (8, 3, 16, 16)), rng.standard_normal((8, 16))) for _ in range(steps)]

    def run(config, duplicate):
        train, dist = backend.train, backend.distributed
        with dist.setup(config) as replicas, replicas.scope():
            G = backend.core.to_device(backend.generator(spec, arrays, "float64"), replicas.placement)
            D = backend.core.to_device(backend.discriminator(spec, arrays, "float64"), replicas.placement)
            opt_G, opt_D = train.make_optimizers(G, D, 0.002, 0.002)
            step = train.compile_step(G, D, opt_G, opt_D, "fp32", replicas)
            metrics = []
            for X, Z in batches:
                X, Z = (np.concatenate([X, X]), np.concatenate([Z, Z])) if duplicate else (X, Z)
                Z = Z.reshape(latent_shape(len(Z), 16, backend.layout))
                out = step(backend.to_tensor(X, replicas.device), backend.core.convert_to_tensor(Z, replicas.device))
                metrics.append({k: float(v) for k, v in out.items()})
            weights = {**backend.weights.export_canonical(G), **backend.weights.export_canonical(D)}
            return metrics, weights, replicas.devices

    base = TrainConfig(dtype="float64", batch_size=16)
    two = {"mx": {"devices": "cpu:0,cpu:1"}, "tf": {"devices": "cpu:0,cpu:1", "strategy": "mirrored"}}[name]
    two_metrics, two_weights, devices = run(base.replace(**two), duplicate=True)  # first: TF makes its CPUs now
    one_metrics, one_weights, _ = run(base.replace(batch_size=8), duplicate=False)
    return {"devices": devices,
            "metrics": max(abs(a[k] - b[k]) for a, b in zip(one_metrics, two_metrics) for k in a),
            "weights": max(float(np.abs(one_weights[k] - two_weights[k]).max()) for k in one_weights),
            "moved": max(float(np.abs(one_weights[k] - arrays[k]).max()) for k in one_weights if k in arrays)}


def synchronized_against_one_device(name: str, out: str, steps: int = 4) -> float:
    """The largest difference of the logged metrics between a run on two
    devices with --sync-bn (batch norm over the global batch) and a run on one."""
    from common.backends import load
    from common.rundir import read_metrics
    train = load(name).train
    base = tiny_config(f"{out}/one", max_steps=steps)
    two = base.replace(strategy="mirrored", devices="cpu:0,cpu:1", sync_bn=True, out=f"{out}/two")
    runs = [read_metrics(train.train(config, progress=False)["out"]) for config in (two, base)]
    assert [m["step"] for m in runs[0]] == [m["step"] for m in runs[1]] == list(range(1, steps + 1))
    return max(abs(a[k] - b[k]) for a, b in zip(*runs) for k in ("loss_D", "loss_G", "d_real", "d_fake"))


if __name__ == "__main__":  # twins.py FRAMEWORK [OUT]: with OUT, the --sync-bn check too
    result = duplicated_shards(sys.argv[1])
    if len(sys.argv) > 2:
        result["sync_bn"] = synchronized_against_one_device(sys.argv[1], sys.argv[2])
    print(json.dumps(result))
