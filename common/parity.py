"""Numerical parity of the three backends: same weights, same inputs, same numbers.

    python -m common.parity [--image-size 64 --n-g 64 --n-d 64 --steps 5]

Each framework runs in its own process (this module's hidden `--worker FW`
mode) on the same inputs: canonical weights with non-trivial batch-norm values, a batch of
`shapes` images and noise from the run's NumPy generator. The table shows, for
every check and every pair of frameworks, the largest absolute and relative
difference and whether it is within the tolerance the tests use (TOLERANCES).

Forward passes and losses run in float32, the precision training uses, at the
given widths (the book's, by default). Gradients run in float64 at the same
widths: a ReLU or LeakyReLU derivative jumps at 0, and in float32 an input a
few ulps from 0 (there are ~10^6 of them per pass) lands on either side
depending on summation order, which changes a gradient by up to ~5e-2
(measured); in float64 no input is that close. The training steps run in
float64 at --step-width, with Adam's epsilon at 1e-4 and a learning rate that
float32 represents exactly. GAN training at lr 0.005 amplifies every rounding
difference: a ReLU input a few ulps from zero flips a derivative, and Adam's
first steps move a weight by a full +-lr whatever the size of its gradient,
so with eps = 1e-8 a gradient that is 1e-8 of the largest gets a direction
chosen by the last bit. In float32 any two implementations (even one
framework on two thread counts) drift apart within a few steps. float64 and
eps = 1e-4 take rounding out and leave the algorithm: the optimizer (where
eps is added matters 300x more at 1e-4, so that reconciliation is tested
hard), the loss, the batch-norm conventions, the order of the step.

Relative difference of two arrays: max |a - b| / max(|b|), i.e. relative to
the array's own scale, so that elements near zero do not dominate.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.backends import Backend, install_hint, is_installed, load, parse_frameworks, quiet_env
from common.cli import ArgumentParser, run_cli, seed as cli_seed
from common.config import PRESETS
from common.data import iterate_batches, make_shapes
from common.errors import UsageError
from common.run import step_noise
from common.spec import ModelSpec
from common.weights import init_weights


@dataclass(frozen=True)
class Tolerance:
    atol: float = 0.0  # on max |a - b|
    rtol: float = 0.0  # on max |a - b| / max |b|

    def ok(self, abs_diff: float, rel_diff: float) -> bool:
        return bool((self.atol and abs_diff <= self.atol) or (self.rtol and rel_diff <= self.rtol))


# Why these values (float32 unit roundoff: 6e-8). The frameworks run the same
# operations through different kernels that sum in different orders, so
# results differ by a few ulps per reduction: measured up to ~1e-6 on G's
# outputs. D's logits reach |4| at full width, and MXNet's float32 batch norm
# in training mode is the least accurate kernel of the three: against a
# float64 reference, BN alone errs by 5.5e-6 on N(0, 1) inputs and 1.2e-4 on
# N(3, 0.1) ones where PyTorch's errs by 4.4e-7 and 2.2e-6 (the growth with
# mean/std of a one-pass variance), so D's logits on real images land
# 1.4e-5 of their scale from the float64 result in MXNet, 2.4e-6 in TF and
# 6e-7 in PyTorch, while MXNet's own float64 result agrees to 1.3e-8: rounding,
# not another computation (measured on a 2-core AVX-512 CI machine; another
# machine gave 9e-6). Forward passes: 1e-5 absolute, or 5e-5 relative to the
# output's scale for the logits. Any real difference (a wrong epsilon, slope,
# padding or layout) is >= 1e-3. Gradients pass through twice as many kernels and are
# compared relative to each array's scale, in float64: 1e-6 (measured <= 1e-7;
# MXNet's float32 operator attributes set the floor).
# Training steps, in float64: PyTorch and TensorFlow agree to ~1e-13 (measured),
# MXNet to ~2e-7 because some of its operators keep their constants as float32
# attributes. 1e-5, for the losses of every step and for the state after step 1
# and after step N alike: the same bound at step N is the check that
# differences do not grow.
TOLERANCES = {
    "forward": Tolerance(atol=1e-5, rtol=5e-5),
    "loss": Tolerance(atol=1e-5),
    "gradient": Tolerance(rtol=1e-6),
    "losses per step": Tolerance(atol=1e-5),
    "step 1": Tolerance(rtol=1e-5),
    "step N": Tolerance(rtol=1e-5),
    "informational": Tolerance(),
}
PARITY_EPSILON = 1e-4  # Adam's epsilon in the step checks (see the module docstring)
# D only ever runs on batch statistics, so its running statistics are never
# read. Gluon updates them in the backward pass and, measured, applies one
# update where PyTorch and Keras apply one per forward pass; they are shown, not judged.
INFORMATIONAL = "D's BN running statistics (never used)"
FORWARD_KEYS = {"G_train": "G forward (training mode)", "G_eval": "G forward (inference mode)",
                "D_real": "D forward on real", "D_fake": "D forward on fake"}


def randomize_batch_norm(arrays: dict, seed: int) -> dict:
    """Give BN non-trivial gamma, beta and running statistics, so that a
    swapped or dropped BN parameter shows up in every comparison."""
    rng = np.random.default_rng(seed + 1000)
    arrays = dict(arrays)
    for key, value in arrays.items():
        param = key.rsplit("/", 1)[1]
        if param in ("gamma", "running_var"):
            arrays[key] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif param in ("beta", "running_mean"):
            arrays[key] = rng.normal(0, 0.1, value.shape).astype(np.float32)
    return arrays


def make_inputs(image_size=64, n_G=64, n_D=64, steps=5, step_width=16, batch=8, lr=None, seed=0,
                epsilon=PARITY_EPSILON, step_dtype="float64", lr_G=None, lr_D=None) -> dict:
    """The shared inputs: weights, images and noise, all NCHW NumPy. The
    learning rates: lr_G and lr_D where given, else lr, else the d2l preset's."""
    spec = ModelSpec(n_G=n_G, n_D=n_D, image_size=image_size)
    step_spec = ModelSpec(n_G=step_width, n_D=step_width, image_size=image_size)
    images = make_shapes(batch * max(steps, 1), image_size, seed=seed)
    batches = np.stack(list(iterate_batches(images, batch, seed, 0, "NCHW")))
    noises = np.stack([step_noise(seed, s, batch, spec.latent_dim, "NCHW") for s in range(len(batches))])
    return {"spec": spec, "arrays": randomize_batch_norm(init_weights(spec, seed), seed),
            "X": batches[0], "Z": noises[0],
            "step_spec": step_spec, "step_arrays": init_weights(step_spec, seed),
            "batches": batches[:steps], "noises": noises[:steps],
            # float32 keeps lr as an attribute in Keras and Gluon: use values it holds exactly
            "lrs": tuple(float(np.float32(PRESETS["d2l"]["lr"] if rate is None else rate))
                         for rate in (lr if lr_G is None else lr_G, lr if lr_D is None else lr_D)),
            "record": (1, steps),
            "epsilon": epsilon, "step_dtype": step_dtype}


def run_steps(step, export, batches, noises, record) -> dict:
    """Run step(X, Z) -> {loss_D, loss_G, d_real, d_fake} (floats) over the
    batches; keep every step's losses and, at the steps in `record`, the
    state export() returns (canonical arrays)."""
    out, losses = {}, []
    for n, (X, Z) in enumerate(zip(batches, noises), 1):
        metrics = step(X, Z)
        losses.append([metrics[k] for k in ("loss_D", "loss_G", "d_real", "d_fake")])
        if n in record:
            out.update({f"step{n}/{k}": v for k, v in export().items()})
    return {**out, "losses": np.array(losses)}


def forward_outputs(backend: Backend, spec, arrays, X, Z, dtype) -> dict:
    """G's and D's outputs in training mode, and G's in inference mode, from fresh nets."""
    X, Z = X.astype(dtype), Z.astype(dtype)
    out = {}
    G, D = backend.generator(spec, arrays, dtype), backend.discriminator(spec, arrays, dtype)
    out["G_train"] = backend.forward(G, Z, training=True)
    out["D_real"] = backend.forward(D, X, training=True).reshape(-1)
    out["D_fake"] = backend.forward(D, out["G_train"], training=True).reshape(-1)
    G = backend.generator(spec, arrays, dtype)  # fresh running statistics
    out["G_eval"] = backend.forward(G, Z)
    return out


def losses(backend: Backend, outputs: dict) -> dict:
    """The step's two losses from forward_outputs' training-mode logits (D on X, and on G(Z)),
    through the backend's own `train.loss`: loss_D = 1/2 [BCE(D(X), 1) + BCE(D(G(Z)), 0)],
    loss_G = BCE(D(G(Z)), 1). The same values as the step's (the same logits, the same loss
    function), without a backward pass."""
    def bce(logits, label):
        return float(backend.train.loss(backend.to_tensor(logits), backend.to_tensor(np.full_like(logits, label))))
    return {"loss_D": (bce(outputs["D_real"], 1) + bce(outputs["D_fake"], 0)) / 2,
            "loss_G": bce(outputs["D_fake"], 1)}


def losses_and_gradients(backend: Backend, spec, arrays, X, Z, dtype) -> dict:
    """loss_D and loss_G, and every weight's gradient ("grad/<net>/<layer>/<name>"), from fresh nets."""
    losses, grads = backend.train.losses_and_gradients(
        backend.generator(spec, arrays, dtype), backend.discriminator(spec, arrays, dtype),
        backend.to_tensor(X.astype(dtype)), backend.to_tensor(Z.astype(dtype)))
    return {**losses, **{f"grad/{k}": g for k, g in grads.items()}}


def training_steps(backend: Backend, spec, arrays, batches, noises, lrs, record, dtype, epsilon) -> dict:
    """Full training steps through the backend's own make_optimizers and compile_step."""
    G, D = backend.generator(spec, arrays, dtype), backend.discriminator(spec, arrays, dtype)
    opt_G, opt_D = backend.train.make_optimizers(G, D, *lrs, epsilon)
    compiled = backend.train.compile_step(G, D, opt_G, opt_D)

    def step(X, Z):
        metrics = compiled(backend.to_tensor(X.astype(dtype)), backend.to_tensor(Z.astype(dtype)))
        return {k: float(v) for k, v in metrics.items()}

    export = lambda: {**backend.weights.export_canonical(G), **backend.weights.export_canonical(D)}
    return run_steps(step, export, batches, noises, record)


def compute(backend: Backend, inputs: dict) -> dict:
    """Every quantity the checks compare, computed by one backend (in this process)."""
    args = backend, inputs["spec"], inputs["arrays"], inputs["X"], inputs["Z"]
    results = forward_outputs(*args, "float32")  # the forward passes and losses as users run them
    results.update(losses(backend, results))
    results.update({k: v for k, v in losses_and_gradients(*args, "float64").items() if k.startswith("grad/")})
    if len(inputs["batches"]):
        results.update(training_steps(
            backend, inputs["step_spec"], inputs["step_arrays"], inputs["batches"], inputs["noises"],
            inputs["lrs"], inputs["record"], inputs["step_dtype"], inputs["epsilon"]))
    return {k: np.asarray(v, np.float64) for k, v in results.items()}


def difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max |b|)."""
    d = float(np.max(np.abs(a - b))) if np.size(a) else 0.0
    scale = float(np.max(np.abs(b))) if np.size(b) else 0.0
    return d, d / scale if scale > 0 else (0.0 if d == 0 else float("inf"))


def checks(a: dict, b: dict, steps: int) -> list[tuple[str, str, float, float]]:
    """(check, tolerance kind, max abs diff, max rel diff) for one pair of results."""
    rows = [(label, "forward", *difference(a[k], b[k])) for k, label in FORWARD_KEYS.items()]
    rows += [(k, "loss", *difference(a[k], b[k])) for k in ("loss_D", "loss_G")]
    for net, loss in (("D", "loss_D"), ("G", "loss_G")):
        diffs = [difference(a[k], b[k]) for k in a if k.startswith(f"grad/{net}/")]
        rows.append((f"grad of {loss} wrt {net} ({len(diffs)} arrays, float64)", "gradient",
                     max(d[0] for d in diffs), max(d[1] for d in diffs)))
    if steps:
        rows.append((f"losses of steps 1-{steps} (float64)", "losses per step", *difference(a["losses"], b["losses"])))
        running = ("running_mean", "running_var")
        groups = (("weights and BN gamma/beta", None, lambda k: not k.endswith(running)),
                  ("G's BN running statistics", None, lambda k: k.split("/")[1] == "G" and k.endswith(running)),
                  (INFORMATIONAL, "informational", lambda k: k.split("/")[1] == "D" and k.endswith(running)))
        for step, kind in ((1, "step 1"), (steps, "step N")) if steps > 1 else ((1, "step 1"),):
            for what, override, test in groups:
                diffs = [difference(a[k], b[k]) for k in a if k.startswith(f"step{step}/") and test(k)]
                if diffs:
                    rows.append((f"after step {step}: {what}", override or kind,
                                 max(d[0] for d in diffs), max(d[1] for d in diffs)))
    return rows


def verdicts(rows) -> list[bool | None]:
    """Pass (True), fail (False) or not judged (None) per row."""
    return [None if kind == "informational" else bool(TOLERANCES[kind].ok(abs_diff, rel_diff))
            for _, kind, abs_diff, rel_diff in rows]


def table(results: dict, steps: int) -> tuple[str, bool]:
    names = list(results)
    pairs = [(x, y) for i, x in enumerate(names) for y in names[i + 1:]]
    header = ["check", "tolerance"] + [f"{x} vs {y}" for x, y in pairs]
    lines, all_ok = [], True
    per_pair = [checks(results[x], results[y], steps) for x, y in pairs]
    oks = [verdicts(rows) for rows in per_pair]
    for r, (label, kind, *_) in enumerate(per_pair[0] if per_pair else []):
        tol = TOLERANCES[kind]
        cells = [label, " or ".join(([f"abs {tol.atol:g}"] if tol.atol else []) + ([f"rel {tol.rtol:g}"] if tol.rtol else []))
                 or "shown only"]
        for rows, ok in zip(per_pair, oks):
            _, _, a, rel = rows[r]
            cells.append(f"{a:.1e} / {rel:.1e} {'' if ok[r] is None else 'pass' if ok[r] else 'FAIL'}".rstrip())
            all_ok &= ok[r] is not False
        lines.append(cells)
    widths = [max(len(c[i]) for c in [header] + lines) for i in range(len(header))]
    fmt = lambda c: "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip()
    text = "\n".join([fmt(header), fmt(["-" * w for w in widths])] + [fmt(c) for c in lines])
    return text + "\n(each cell: max abs diff / max rel diff, then pass or fail)", all_ok


# -- files between processes ------------------------------------------------------------

def save_inputs(path: Path, inputs: dict) -> None:
    payload = {f"arrays/{k}": v for k, v in inputs["arrays"].items()}
    payload.update({f"step_arrays/{k}": v for k, v in inputs["step_arrays"].items()})
    payload.update({k: inputs[k] for k in ("X", "Z", "batches", "noises")})
    meta = {"spec": inputs["spec"].to_dict(), "step_spec": inputs["step_spec"].to_dict(),
            "lrs": list(inputs["lrs"]), "record": list(inputs["record"]), "epsilon": inputs["epsilon"],
            "step_dtype": inputs["step_dtype"]}
    np.savez(path, __meta__=np.array(json.dumps(meta)), **payload)


def load_inputs(path: Path) -> dict:
    with np.load(path) as data:
        meta = json.loads(str(data["__meta__"]))
        inputs = {k: data[k] for k in ("X", "Z", "batches", "noises")}
        for group in ("arrays", "step_arrays"):
            inputs[group] = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(group + "/")}
    return {**inputs, "spec": ModelSpec.from_dict(meta["spec"]), "step_spec": ModelSpec.from_dict(meta["step_spec"]),
            "lrs": tuple(meta["lrs"]), "record": tuple(meta["record"]), "epsilon": meta["epsilon"],
            "step_dtype": meta["step_dtype"]}


def worker(framework: str, inputs_path: Path, out_path: Path) -> int:
    """One framework's results, in this process (`--worker FW --inputs IN --out OUT`)."""
    results = compute(load(framework), load_inputs(inputs_path))
    np.savez(out_path, **results)
    return 0


def run_worker(framework: str, inputs_path: Path, out_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "common.parity", "--worker", framework, "--inputs",
                           str(inputs_path), "--out", str(out_path)], capture_output=True, text=True,
                          env=quiet_env())


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m common.parity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-g", type=int, default=64, help="G width for forward and gradient checks")
    parser.add_argument("--n-d", type=int, default=64, help="D width for forward and gradient checks")
    parser.add_argument("--steps", type=int, default=5, help="full training steps to compare")
    parser.add_argument("--step-width", type=int, default=16, help="G and D width for the training steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, help="default: the d2l preset's, 0.005")
    parser.add_argument("--lr-g", type=float, help="G's learning rate in the steps (default: --lr)")
    parser.add_argument("--lr-d", type=float, help="D's learning rate in the steps (default: --lr)")
    parser.add_argument("--seed", type=cli_seed, default=0)
    parser.add_argument("--frameworks", default="torch,tf,mx", help="two or more of torch,tf,mx")
    # A framework's own process (see run_worker): not for users.
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)

    def run(argv):
        args = parser.parse_args(argv)
        if args.worker:
            return worker(args.worker, Path(args.inputs), Path(args.out))
        try:
            names = parse_frameworks(args.frameworks)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if len(set(names)) < 2:
            raise UsageError(f"--frameworks: parity compares two or more frameworks, got {args.frameworks!r}")
        if args.steps < 0 or args.batch_size < 2:
            raise UsageError("--steps must be >= 0 and --batch-size >= 2")
        inputs = make_inputs(args.image_size, args.n_g, args.n_d, args.steps, args.step_width,
                             args.batch_size, args.lr, args.seed, lr_G=args.lr_g, lr_D=args.lr_d)
        results, problems = {}, []
        with tempfile.TemporaryDirectory() as tmp:
            save_inputs(Path(tmp) / "inputs.npz", inputs)
            for name in names:
                if not is_installed(name):
                    problems.append(install_hint(name))
                    continue
                out = Path(tmp) / f"{name}.npz"
                proc = run_worker(name, Path(tmp) / "inputs.npz", out)
                if proc.returncode:
                    problems.append(f"{name}: failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
                    continue
                with np.load(out) as data:
                    results[name] = {k: data[k] for k in data.files}
        lr_G, lr_D = inputs["lrs"]
        print(f"Parity: {inputs['spec']}: forward passes in float32, gradients in float64;\n"
              f"{args.steps} training steps in float64 at width {args.step_width}, batch {args.batch_size}, "
              f"lr G {lr_G:.9g} D {lr_D:.9g}, Adam eps {inputs['epsilon']:g}\n")
        ok = len(results) >= 2
        if ok:
            text, ok = table(results, args.steps)
            print(text)
        else:
            problems.append(f"fewer than two frameworks ran ({', '.join(results) or 'none'}): nothing to compare")
        for p in problems:
            print(p)
        print("\nall checks pass" if ok and not problems else "\nSOME CHECKS FAILED (see above)")
        return 0 if ok and not problems else 1

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
