"""Training-step throughput of each backend, and of the book's own code.

    python -m common.bench [--frameworks torch,tf,mx] [--batch-size 64] [--steps 20] [--warmup 3]
                           [--image-size 64 --n-g 64 --n-d 64] [--device auto|cpu|gpu]
                           [--precision fp32|bf16] [--baseline book [--rounds N]] [--json] [--seed 0]

Each framework runs in its own process (this module's hidden `--worker FW`
mode, as in common.parity), so no import order matters and this process
imports no framework. A worker times the project's step as users run it:
the nets built through the backend contract (`load_canonical(build_*(spec),
init_weights(...))`), `core.pick_device` and `core.to_device`,
`train.make_optimizers` and `train.compile_step`; a fixed random batch X in
[-1, 1] and fresh noise per step from `common.run.step_noise`. What one
timed step is, exactly (time.perf_counter around it):

    Z = step_noise(seed, i, batch, latent_dim, LAYOUT)                  # host NumPy, as Run.batches
    metrics = step(convert_to_tensor(X, device), convert_to_tensor(Z, device))
    float(metrics["loss_G"])                                              # host sync
    synchronize(device)                                                   # the rest of the step

The last line matters for MXNet even on the CPU: its engine runs G's
backward pass and update after loss_G is ready, and without it they ran
during the next worker's turn, counted in that worker's step (measured: the
project's MXNet step read 137-152 examples/s timed so, with a pause between
steps, against 108-114 back to back or with the whole step waited for).

`--warmup` steps run first (tracing, hybridizing, allocator warm-up) and are
reported apart; the figure is the median examples/s over the `--steps` timed
steps, with the mean (examples over the total timed seconds) and the min
and max. Also per worker: peak host memory (ru_maxrss, the whole process:
imports, set-up and steps), peak GPU memory where a GPU is used and the
framework can say (PyTorch: max_memory_allocated; TensorFlow:
get_memory_info's peak; MXNet: none, it has no peak-memory API). In this
process, framework-free: the data pipeline alone (common.data's
`iterate_batches` over a `make_shapes` array of the run's size, in each
selected framework's layout), in images/s.

`--baseline book` also times the book's own code for the chapter
(`dcgan_<fw>.book.book_step`, one call = one step of the book's loop, synced)
with the same batch size and widths. All the workers of a run (each
framework's project and, with --baseline, book) are alive together and take
their steps in turn (run_workers): each sets up alone, then step i runs in
one while the others wait on a pipe, in the order project torch, book torch,
project tf, ... for even i and the reverse for odd i, each step timed in its
own process as above. A project row gets ratio = the median over the steps
of the book's step time over the project's (`step_seconds`, pair by pair;
`step_clock` gives each timed step's wall-clock start and end), and
vs_fastest = the same against the fastest project of the run (1.0 for that
one; null with one framework). A shared machine's speed changes from one
second to the next (measured here: one worker's steps at 40 and at 180
examples/s within a minute); it changes the steps compared alike, where two
processes run one after the other gave 1.64x, 2.96x and 5.28x in the three
rounds of one run. `--rounds N` repeats that N times with fresh processes:
each kind's row then gives the median of its rounds' medians
(`rounds_examples_per_sec` lists them), and ratio and vs_fastest are the
medians of the rounds' (`ratios` lists the rounds' ratios).
The book runs in its default environment: for MXNet,
its own OpenMP threading (DCGAN_MX_THREADS=default, see dcgan_mx/compat.py);
the project's workers run as users run them. The book's code is float32
only, so with --precision bf16 its rows stay fp32 (the ratio is then bf16
project / fp32 book).

`--precision bf16` is handed to each backend's `train.compile_step`
(`precision=`); a backend that does not support it (today MXNet)
refuses it in one line (exit status 2), as does one whose
compile_step takes no such keyword. A framework
that is not installed or whose worker fails is reported on its own line and
does not hide the others; the exit status is then 1 (2 for a worker's usage
error, such as --device gpu without a GPU). Speeds are measured here, never
asserted by a test.

`--json` prints one JSON object per line, in this order:

    {"framework": "data", "kind": "data", "images_per_sec" (the slowest layout), "by_layout": {layout: images/s},
     "layouts": {fw: layout}, "images", "batch_size", "image_size", "source"}
    per framework, "project" then (with --baseline book) "book":
    {"framework", "kind", "examples_per_sec" (median), "mean", "min", "max", "ratio" (project rows:
     project / book, or null), "vs_fastest" (project rows), "peak_rss_mb", "peak_gpu_mb" (null: "peak_gpu_note" says why),
     "device", "precision", "batch_size", "image_size", "n_G", "n_D", "latent_dim", "steps", "warmup",
     "seed", "step_seconds" [timed], "step_clock" [[start, end] of each timed step, time.time()],
     "warmup_seconds", "setup_seconds" (imports to compiled step),
     "omp_num_threads" (as the worker saw it), "threads" (the framework's intra-op count, where it
     tells), "versions"}
    or, for a framework that failed: {"framework", "kind", "error", "exit_status"}
    {"framework": "machine", "kind": "machine", "processor", "cpu_model" (Linux's model name, else
     processor), "bf16_native" (common.run.native_bf16: True, False or None), "machine", "cpu_count",
     "affinity", "load_average_before", "load_average_after", "platform", "python", "command"}
"""

from __future__ import annotations

import argparse
import ast
import gc
import importlib
import inspect
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common.backends import FRAMEWORKS, install_hint, is_installed, load, package, parse_frameworks, quiet_env
from common.cli import ArgumentParser, run_cli, seed as cli_seed
from common.config import PRESETS, unsupported_precision
from common.data import iterate_batches, make_shapes
from common.errors import EXIT_FAILURE, EXIT_USAGE, UsageError
from common.run import BF16_WORDS, cpu_model, native_bf16, step_noise
from common.spec import ModelSpec
from common.weights import init_weights

PROG = "python -m common.bench"
ROOT = Path(__file__).resolve().parents[1]
PRECISIONS = ("fp32", "bf16")
KINDS = ("project", "book")
BOOK_IMAGE_SIZE = 64  # the book's nets are 64x64 only
# The environment switch that makes dcgan_mx/compat.py leave OMP_NUM_THREADS
# alone: set in the book's workers only (the book runs with MXNet's default threading).
BOOK_ENV = {"DCGAN_MX_THREADS": "default"}
WORKER_TIMEOUT_S = 3600
TURN_READY = "common.bench: ready for the next step"  # a worker's line: it waits for its turn (run_workers)
DATA_MIN_SECONDS = 0.3  # the data pipeline is timed over whole epochs, at least this long
DATA_MAX_EPOCHS = 200
RUN_FIELDS = ("batch_size", "image_size", "n_G", "n_D", "steps", "warmup", "precision", "seed")


# -- what the parent reads from the backends' source, without importing a framework -------

def _module_tree(framework: str, module: str) -> ast.Module | None:
    try:
        return ast.parse((ROOT / package(framework) / f"{module}.py").read_text())
    except (OSError, SyntaxError):
        return None


def source_layout(framework: str) -> str:
    """The backend's core.LAYOUT, read from its source (this process imports no framework)."""
    tree = _module_tree(framework, "core")
    for node in tree.body if tree else ():
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LAYOUT" for t in node.targets)
                and isinstance(node.value, ast.Constant)):
            return node.value.value
    return "NCHW"


def source_accepts_precision(framework: str) -> bool | None:
    """Whether the backend's train.compile_step has a `precision` parameter, read
    from its source; None if that cannot be told (the worker then checks with inspect)."""
    tree = _module_tree(framework, "train")
    for node in tree.body if tree else ():
        if isinstance(node, ast.FunctionDef) and node.name == "compile_step":
            a = node.args
            return any(p.arg == "precision" for p in a.posonlyargs + a.args + a.kwonlyargs)
    return None


# -- the data pipeline, alone ---------------------------------------------------------

def data_throughput(batch_size: int, image_size: int, num_images: int, layout: str, seed: int = 0) -> dict:
    """images/s of common.data.iterate_batches over a make_shapes array (the
    uint8 cache as a run holds it), whole epochs for at least DATA_MIN_SECONDS."""
    images = make_shapes(max(num_images, batch_size), image_size, seed=seed)
    count, epochs = 0, 0
    start = time.perf_counter()
    while epochs < DATA_MAX_EPOCHS:
        for X in iterate_batches(images, batch_size, seed, epochs, layout):
            count += len(X)
        epochs += 1
        if time.perf_counter() - start >= DATA_MIN_SECONDS:
            break
    seconds = time.perf_counter() - start
    return {"layout": layout, "images_per_sec": count / seconds, "images": len(images), "epochs": epochs,
            "seconds": seconds}


# -- a worker: one framework, one kind, in this process -------------------------------

def peak_rss_mb() -> float:
    """Peak resident set of this process so far, in MB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def peak_gpu_mb(framework: str, device_text: str) -> tuple[float | None, str | None]:
    """(peak GPU memory in MB, or None and why)."""
    if "gpu" not in device_text.lower() and "cuda" not in device_text.lower():
        return None, "no GPU used"
    if framework == "torch":
        from dcgan_torch.compat import torch
        return torch.cuda.max_memory_allocated() / 2**20, None
    if framework == "tf":
        from dcgan_tf.compat import tf
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20, None
    return None, ("MXNet has no peak-memory API (mx.context.gpu_memory_info gives only the device's "
                  "free and total memory, its pool included)")


def intra_op_threads(framework: str) -> int | None:
    """The framework's own thread count for one operator, where it can tell:
    PyTorch's get_num_threads; TensorFlow's intra-op setting (0: its default,
    all cores); MXNet: None (no getter; see omp_num_threads)."""
    if framework == "torch":
        from dcgan_torch.compat import torch
        return torch.get_num_threads()
    if framework == "tf":
        from dcgan_tf.compat import tf
        return tf.config.threading.get_intra_op_parallelism_threads()
    return None


def _check_precision(framework: str, train, precision: str) -> dict:
    """The keyword arguments for compile_step: {} for fp32; {"precision": ...}
    where the backend takes one; else a UsageError."""
    if precision == "fp32":
        return {}
    if "precision" not in inspect.signature(train.compile_step).parameters:
        raise unsupported_precision(framework, precision)
    return {"precision": precision}


def project_step(framework: str, args):
    """(step(i) -> None, the device in words, versions): the project's step as users run it."""
    backend = load(framework)
    train, core = backend.train, backend.core  # imports the framework
    compile_kwargs = _check_precision(framework, train, args.precision)
    spec = ModelSpec(n_G=args.n_G, n_D=args.n_D, image_size=args.image_size)
    device = core.pick_device(args.device)
    G = core.to_device(backend.generator(spec, init_weights(spec, args.seed, ("G",))), device)
    D = core.to_device(backend.discriminator(spec, init_weights(spec, args.seed + 1, ("D",))), device)
    lr = PRESETS["d2l"]["lr"]
    opt_G, opt_D = train.make_optimizers(G, D, lr, lr)
    step = train.compile_step(G, D, opt_G, opt_D, **compile_kwargs)
    layout = core.LAYOUT
    X = np.random.default_rng(args.seed).uniform(
        -1, 1, spec.input_shape("D", args.batch_size, layout)).astype(np.float32)
    convert, synchronize = core.convert_to_tensor, core.synchronize

    def one(i):
        Z = step_noise(args.seed, i, args.batch_size, spec.latent_dim, layout)
        metrics = step(convert(X, device), convert(Z, device))
        float(metrics["loss_G"])  # host sync
        synchronize(device)  # the rest of the step (the module docstring says why)

    return one, core.describe_device(device), core.versions()


def book_step(framework: str, args):
    """(step(i) -> None, the device in words, versions): the book's own step."""
    core = importlib.import_module(f"{package(framework)}.core")
    book = importlib.import_module(f"{package(framework)}.book")
    device = core.pick_device(args.device)
    # auto: the book's own choice (its try_gpu, or TensorFlow's placement)
    step = book.book_step(args.batch_size, args.n_G, args.n_D, seed=args.seed,
                          device=None if args.device == "auto" else device)
    return (lambda i: step()), core.describe_device(device), core.versions()


def worker(framework: str, kind: str, args, turns=None) -> dict:
    """One framework's row, measured in this process (`--worker FW --kind KIND`).
    turns(i), if given, is called before step i and returns once it is this
    worker's turn (the parent's lockstep, see run_workers); the step's own
    time is measured here either way."""
    t0 = time.perf_counter()
    one, device, versions = (project_step if kind == "project" else book_step)(framework, args)
    setup = time.perf_counter() - t0
    seconds, clock = [], []
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            gc.collect()
        if turns:
            turns(i)
        start, t = time.time(), time.perf_counter()
        one(i)
        seconds.append(time.perf_counter() - t)
        clock.append([start, time.time()])
    warmup, times = seconds[:args.warmup], seconds[args.warmup:]
    rates = [args.batch_size / t for t in times]
    gpu, gpu_note = peak_gpu_mb(framework, device)
    row = {"framework": framework, "kind": kind,
           "examples_per_sec": statistics.median(rates),
           "mean": args.batch_size * len(times) / sum(times), "min": min(rates), "max": max(rates),
           "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": gpu, "device": device,
           **{f: getattr(args, f) for f in RUN_FIELDS},
           "precision": "fp32" if kind == "book" else args.precision,
           "latent_dim": ModelSpec().latent_dim,
           "step_seconds": times, "warmup_seconds": warmup, "setup_seconds": setup,
           "step_clock": clock[args.warmup:],
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "threads": intra_op_threads(framework),
           "versions": {**versions, "python": platform.python_version(), "numpy": np.__version__}}
    if gpu_note:
        row["peak_gpu_note"] = gpu_note
    return row


def _stdin_turns(i: int) -> None:
    """A worker's turn from the parent: it says `READY`, then waits for a line on stdin."""
    print(TURN_READY, flush=True)
    if not sys.stdin.readline():
        raise SystemExit(1)  # the parent is gone


# -- the parent ---------------------------------------------------------------------------

def worker_argv(framework: str, kind: str, args) -> list[str]:
    return [sys.executable, "-m", "common.bench", "--worker", framework, "--kind", kind,
            "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--image-size", str(args.image_size), "--n-g", str(args.n_G), "--n-d", str(args.n_D),
            "--device", args.device, "--precision", args.precision, "--seed", str(args.seed)]


def worker_env(kind: str) -> dict:
    env = quiet_env()
    # The workers share the device (run_workers): TensorFlow would take nearly all of a GPU's memory at start.
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if kind == "book":
        env.update(BOOK_ENV)
    else:  # as users run it: compat's own thread setting applies
        for key in BOOK_ENV:
            env.pop(key, None)
    return env


class _Worker:
    """One worker process in the lockstep: its stdout is read a line at a
    time (a framework's own prints are skipped), its stderr goes to a file (a
    pipe nobody reads could fill up and stall it). It is killed after
    `timeout` seconds from its start."""

    def __init__(self, framework: str, kind: str, args, timeout: float):
        self.framework, self.kind, self.row, self.timeout, self.timed_out = framework, kind, None, timeout, False
        self.result = None  # finish()'s, once it has run
        self.stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(worker_argv(framework, kind, args), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=worker_env(kind))
        self.timer = threading.Timer(timeout, self._kill)
        self.timer.daemon = True  # an error in the parent must not wait for it
        self.timer.start()

    def _kill(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def wait_ready(self) -> bool:
        """Read up to its next turn's READY (True), or to its end (False:
        after its row, or a failure; finish() tells which). A framework's
        own output may precede READY on its line, and lines of it that look
        like JSON are skipped."""
        for line in self.proc.stdout:
            if line.rstrip("\n").endswith(TURN_READY):
                return True
            if line.startswith("{"):
                try:
                    self.row = json.loads(line)
                except json.JSONDecodeError:
                    pass
        return False

    def go(self) -> None:
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except OSError:  # it has died since its READY: wait_ready then reads its end
            pass

    def finish(self) -> dict:
        """Its row, or an error row ({framework, kind, error, exit_status}): waits for it to end, stops
        its timer and closes its files, once (later calls return the same)."""
        if self.result is None:
            self.result = self._finish()
        return self.result

    def _finish(self) -> dict:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        returncode = self.proc.wait()
        self.timer.cancel()
        self.timer.join()  # cancel() only asks: the thread ends a moment later
        self.proc.stdout.close()
        self.stderr.seek(0)
        why = self.stderr.read().strip().splitlines()
        self.stderr.close()
        if self.row is not None and returncode == 0:
            return self.row
        if self.timed_out:
            return {"framework": self.framework, "kind": self.kind,
                    "error": f"timed out after {self.timeout:.0f} s", "exit_status": None}
        error = why[-1] if why else f"exit status {returncode}"
        prefix = f"{PROG}: error: "
        return {"framework": self.framework, "kind": self.kind,
                "error": error[len(prefix):] if error.startswith(prefix) else error, "exit_status": returncode}


def run_workers(jobs, args) -> dict:
    """{(framework, kind): row} for each (framework, kind) in jobs, each
    measured in a process of its own, the processes alive together and
    stepping in turn. Each sets up alone, one after the other; then step i
    runs in one worker while the others wait on a pipe, in the jobs' order
    for even i and the reverse for odd i (project torch, book torch, project
    tf, ..., then back), so that a machine whose speed changes from second to
    second (a shared one) changes the steps compared with each other alike. A
    worker that fails gets an error row; the others go on."""
    workers, ready, rows = [], [], {}
    try:
        for framework, kind in jobs:  # set-ups one at a time: they are timed too
            w = _Worker(framework, kind, args, WORKER_TIMEOUT_S * len(jobs))  # each waits for the others' turns
            workers.append(w)
            if w.wait_ready():
                ready.append(w)
            else:
                rows[framework, kind] = w.finish()
        for i in range(args.warmup + args.steps):
            for w in list(ready if i % 2 == 0 else ready[::-1]):
                w.go()
                if not w.wait_ready():  # its last step done (it printed its row), or it failed
                    ready.remove(w)
                    rows[w.framework, w.kind] = w.finish()
        for w in ready:  # not reached by a worker that keeps the protocol
            rows[w.framework, w.kind] = w.finish()
    finally:  # an error or Ctrl-C here: no worker, timer or open file is left behind
        for w in workers:
            if w.proc.poll() is None:
                w.proc.kill()
            w.finish()  # also for one that ended by itself before finish() was reached
    return {job: rows[job] for job in jobs}


def _failed(measured: dict) -> bool:
    """Whether any row of one round's {kind: row} is an error row."""
    return any("error" in row for row in measured.values())


def step_ratio(row: dict, other: dict) -> float:
    """row's speed over other's, as the median over the lockstep's step pairs
    of other's step time over row's (the same batch in each)."""
    return statistics.median(o / r for r, o in zip(row["step_seconds"], other["step_seconds"], strict=True))


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine(argv, load_before) -> dict:
    """The machine, and its load (1, 5, 15 min) before and after the run: a shared machine shows there."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {"framework": "machine", "kind": "machine", "processor": platform.processor(),
            "cpu_model": cpu_model(), "bf16_native": native_bf16(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "affinity": affinity,
            "load_average_before": load_before, "load_average_after": load_average(),
            "platform": platform.platform(), "python": platform.python_version(),
            "command": " ".join([PROG, shlex.join(argv)]).strip()}


def _fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def framework_table(rows: list[dict]) -> str:
    """One framework's project (and book) rows as a small table, then the ratio."""
    header = ["", "examples/s (median)", "mean", "min-max", "peak RSS", "peak GPU", "device", "precision"]
    cells, notes = [], []
    for r in rows:
        if "error" in r:
            notes.append(f"  {r['kind']}: FAILED: {r['error']}")
            continue
        cells.append([r["kind"], _fmt(r["examples_per_sec"]), _fmt(r["mean"]),
                      f"{_fmt(r['min'])}-{_fmt(r['max'])}", f"{r['peak_rss_mb']:.0f} MB",
                      "-" if r["peak_gpu_mb"] is None else f"{r['peak_gpu_mb']:.0f} MB", r["device"],
                      r["precision"]])
    lines = []
    if cells:
        widths = [max(len(c[i]) for c in [header] + cells) for i in range(len(header))]
        fmt = lambda c: "  " + "  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip()
        lines += [fmt(header)] + [fmt(c) for c in cells]
    lines += notes
    project = next((r for r in rows if r["kind"] == "project"), None)
    if project and project.get("ratio") is not None:
        each = project.get("ratios")
        lines.append(f"  project / book: {project['ratio']:.2f}x"
                     + (f" (the median of {len(each)} rounds: {', '.join(f'{x:.2f}' for x in each)})"
                        if each else ""))
    return "\n".join(lines)


def combine_rounds(rows: list[dict]) -> dict:
    """One kind's rows over the rounds as one row: the median of the rounds' medians, the
    extremes over all, the largest peak memory; `rounds_examples_per_sec` lists each
    round's. One round, or a failed one, is returned as it is."""
    failed = [r for r in rows if "error" in r]
    if len(rows) == 1 or failed:
        return failed[0] if failed else rows[0]
    rates = [r["examples_per_sec"] for r in rows]
    gpu = [r["peak_gpu_mb"] for r in rows if r.get("peak_gpu_mb") is not None]
    return {**rows[0], "examples_per_sec": statistics.median(rates),
            "mean": statistics.mean(r["mean"] for r in rows),
            "min": min(r["min"] for r in rows), "max": max(r["max"] for r in rows),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "peak_gpu_mb": max(gpu) if gpu else None,
            "rounds_examples_per_sec": rates}


def settings_line(args, names) -> str:
    return (f"{', '.join(names)}: {args.image_size}x{args.image_size}, widths G {args.n_G} D {args.n_D}, "
            f"batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps"
            + (f" x {args.rounds} rounds" if args.rounds > 1 else "") + f", {args.precision}, "
            f"device {args.device}" + (", baseline: the book's own code" if args.baseline else ""))


def parent(args, argv) -> int:
    try:
        names = list(dict.fromkeys(parse_frameworks(args.frameworks)))
    except ValueError as e:
        raise UsageError(f"--frameworks: {e}") from None
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be >= 1, got {args.rounds}")
    ModelSpec(n_G=args.n_G, n_D=args.n_D, image_size=args.image_size)  # a UsageError naming the field
    if args.baseline == "book" and args.image_size != BOOK_IMAGE_SIZE:
        raise UsageError(f"--baseline book: the book's nets are {BOOK_IMAGE_SIZE}x{BOOK_IMAGE_SIZE} only; "
                         f"use --image-size {BOOK_IMAGE_SIZE} (got {args.image_size})")
    if args.precision != "fp32":
        for name in names:
            if is_installed(name) and source_accepts_precision(name) is False:
                raise unsupported_precision(name, args.precision)

    load_before = load_average()
    emit = (lambda row: print(json.dumps(row), flush=True)) if args.json else None
    progress = sys.stderr.isatty() and not args.json
    layouts = list(dict.fromkeys(source_layout(n) for n in names))
    num_images = args.batch_size * (args.warmup + args.steps)
    data = {lay: data_throughput(args.batch_size, args.image_size, num_images, lay, args.seed) for lay in layouts}
    data_row = {"framework": "data", "kind": "data",
                "images_per_sec": min(d["images_per_sec"] for d in data.values()),
                "by_layout": {lay: d["images_per_sec"] for lay, d in data.items()},
                "layouts": {n: source_layout(n) for n in names},
                "images": data[layouts[0]]["images"], "batch_size": args.batch_size,
                "image_size": args.image_size, "source": "common.data.iterate_batches over make_shapes (uint8)"}
    if emit:
        emit(data_row)
    else:
        print(f"Benchmark: {settings_line(args, names)}")
        users = {lay: ", ".join(n for n, nl in data_row["layouts"].items() if nl == lay) for lay in data}
        print("data pipeline alone (iterate_batches from the uint8 cache, no framework): "
              + ", ".join(f"{d['images_per_sec']:,.0f} images/s {lay} ({users[lay]})" for lay, d in data.items()))

    status = 0
    kinds = KINDS if args.baseline == "book" else ("project",)
    rounds = {name: [] for name in names}  # per framework: [{kind: row}], every worker stepping in turn
    for r in range(args.rounds):
        jobs = [(name, kind) for name in names for kind in kinds
                if is_installed(name) and not any(map(_failed, rounds[name]))]
        if r and not jobs:
            break
        if progress and jobs:
            print(f"  running {', '.join(f'{n} ({k})' for n, k in jobs)} in turn"
                  f"{f', round {r + 1}' if args.rounds > 1 else ''}...", file=sys.stderr, flush=True)
        measured = run_workers(jobs, args) if jobs else {}
        for name in names:
            if r == 0 and not is_installed(name):
                rounds[name].append({kind: {"framework": name, "kind": kind, "error": install_hint(name),
                                            "exit_status": None} for kind in kinds})
            elif (name, kinds[0]) in measured:  # a failing worker fails again: one error row is enough
                rounds[name].append({kind: measured[name, kind] for kind in kinds})
        for row in measured.values():
            if "error" in row:
                status = max(status, EXIT_USAGE if row["exit_status"] == EXIT_USAGE else EXIT_FAILURE)
    # Each framework's project against the fastest project of the same round, step by step.
    vs_fastest = {name: [] for name in names}
    for r in range(args.rounds):
        projects = {name: rnd[r]["project"] for name, rnd in rounds.items()
                    if len(rnd) > r and "error" not in rnd[r]["project"]}
        if len(projects) > 1:
            fastest = max(projects.values(), key=lambda row: row["examples_per_sec"])
            for name, row in projects.items():
                vs_fastest[name].append(step_ratio(row, fastest))
    table = []
    for name in names:
        rows = [combine_rounds([rnd[kind] for rnd in rounds[name]]) for kind in kinds]
        project = rows[0]
        if "error" not in project:
            ratios = [step_ratio(rnd["project"], rnd["book"]) for rnd in rounds[name]
                      if "book" in rnd and not _failed(rnd)]
            project["ratio"] = statistics.median(ratios) if ratios else None
            if args.rounds > 1 and project["ratio"] is not None:
                project["ratios"] = ratios
            project["vs_fastest"] = statistics.median(vs_fastest[name]) if vs_fastest[name] else None
            table.append((project["vs_fastest"], name))
        if emit:
            for row in rows:
                emit(row)
                if "error" in row:
                    print(f"{PROG}: {name} ({row['kind']}) failed: {row['error']}", file=sys.stderr)
        else:
            print(f"\n{name}")
            print(framework_table(rows))
    compared = sorted((x, name) for x, name in table if x is not None)
    if compared and not emit:
        print(f"\nslowest / fastest (the projects' steps, pair by pair): {compared[0][0]:.2f}x "
              f"({compared[0][1]} against {compared[-1][1]})")

    info = machine(argv, load_before)
    if emit:
        emit(info)
    else:
        affinity = info["affinity"]
        print(f"\nmachine: processor {info['cpu_model']!r} (bf16 {BF16_WORDS[info['bf16_native']]}), "
              f"{info['cpu_count']} CPUs, "
              f"affinity {affinity if affinity is None else '{' + ', '.join(map(str, affinity)) + '}'}"
              f" ({'?' if affinity is None else len(affinity)} usable), {info['platform']}, "
              f"load average {info['load_average_before']} before, {info['load_average_after']} after; "
              f"command: {info['command']}")
        if status:
            print("SOME FRAMEWORKS FAILED (see above)")
    return status


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", default="torch,tf,mx", help="any of torch,tf,mx (default: all three)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--n-g", dest="n_G", type=int, default=64, help="generator width (default 64)")
    parser.add_argument("--n-d", dest="n_D", type=int, default=64, help="discriminator width (default 64)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--baseline", choices=("book",), help="also time the book's own code: project/book")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the run this many times, fresh processes each time, and report the "
                             "medians and the median ratio (default 1)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--seed", type=cli_seed, default=0)
    # A framework's own process (see run_workers): not for users.
    parser.add_argument("--worker", choices=tuple(FRAMEWORKS), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=KINDS, default="project", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()

    def run(argv):
        args = parser.parse_args(argv)
        if args.worker:
            print(json.dumps(worker(args.worker, args.kind, args, _stdin_turns)), flush=True)
            return 0
        return parent(args, argv)

    return run_cli(PROG, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
