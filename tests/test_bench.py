"""`python -m common.bench`: the benchmark runs (smoke-sized, every installed
framework, each in its own worker process), its JSON rows carry the
documented fields, the book's baseline gives book rows and ratios, worker
failures are reported per framework, and misuse is one line with exit status 2.

No test here checks a speed: speed targets are checked by running the
benchmark, never by timed tests."""

import json
import math
import subprocess
import sys
import types

import pytest

import helpers
from common import bench
from common.backends import SAFE_IMPORT_ORDER, install_hint, quiet_env
from common.errors import UsageError
from common.run import native_bf16

INSTALLED = [name for name in SAFE_IMPORT_ORDER if name in helpers.BACKENDS]
SMOKE = ["--n-g", "8", "--n-d", "8", "--image-size", "64", "--batch-size", "4", "--steps", "2", "--warmup", "1"]
ROW_FIELDS = {"framework", "kind", "examples_per_sec", "mean", "min", "max", "peak_rss_mb", "peak_gpu_mb",
              "precision", "device", "batch_size", "image_size", "n_G", "n_D", "steps", "warmup", "versions",
              "step_seconds", "warmup_seconds", "setup_seconds", "step_clock", "omp_num_threads", "threads"}
needs_a_framework = pytest.mark.skipif(not INSTALLED, reason="no framework installed")


def run_bench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "common.bench", *args], capture_output=True, text=True,
                          env=env or quiet_env(), timeout=600)


def json_rows(proc) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]  # every line is one JSON object


def check_row(row, kind):
    assert ROW_FIELDS <= set(row), ROW_FIELDS - set(row)
    assert row["kind"] == kind and row["precision"] == "fp32"
    assert (row["batch_size"], row["image_size"], row["n_G"], row["n_D"], row["steps"], row["warmup"]) == \
        (4, 64, 8, 8, 2, 1)
    assert len(row["step_seconds"]) == 2 and len(row["warmup_seconds"]) == 1
    assert 0 < row["min"] <= row["examples_per_sec"] <= row["max"] and math.isfinite(row["max"])
    assert row["min"] <= row["mean"] <= row["max"]
    assert row["peak_rss_mb"] > 10
    assert row["peak_gpu_mb"] is None or row["peak_gpu_mb"] > 0
    if row["peak_gpu_mb"] is None:
        assert row["peak_gpu_note"]  # says why
    assert row["versions"]


@pytest.mark.parametrize("kind", ["project", "book"])
@pytest.mark.slow
def test_a_worker_measures_each_framework(fw, kind):
    # In this process (conftest imported the frameworks in the safe order); the
    # command runs the same function in a process of its own per row (below).
    args = bench.build_parser().parse_args(["--frameworks", fw, *SMOKE])
    row = bench.worker(fw, kind, args)
    check_row(row, kind)
    assert row["framework"] == fw


def test_a_project_step_is_timed_to_its_end(fw, monkeypatch):
    """Each timed step ends with core.synchronize on the step's device, after
    the step: MXNet's engine ran G's backward and update on after loss_G was
    read, into the next worker's turn (its step read 137-152 examples/s so,
    108-114 timed whole). The book's steps end with their own sync."""
    core, train = helpers.BACKENDS[fw].core, helpers.BACKENDS[fw].train
    events, compile_step = [], train.compile_step

    def compiled(*a, **k):
        step = compile_step(*a, **k)
        return lambda X, Z: events.append("step") or step(X, Z)

    monkeypatch.setattr(train, "compile_step", compiled)
    monkeypatch.setattr(core, "synchronize", lambda device: events.append(("sync", core.describe_device(device))))
    args = bench.build_parser().parse_args(["--frameworks", fw, *SMOKE])
    row = bench.worker(fw, "project", args)
    assert events == ["step", ("sync", row["device"])] * (args.warmup + args.steps)


@pytest.mark.slow
@pytest.mark.skipif(helpers.QUICKEST is None, reason="no framework installed")
def test_the_command_runs_each_row_in_its_own_process_with_the_books_own_threading():
    env = quiet_env()
    env.pop("OMP_NUM_THREADS", None)  # this test process set it, importing MXNet
    env.pop("DCGAN_MX_THREADS", None)
    frameworks = [helpers.QUICKEST]  # the quickest to start; each worker is tested above
    rows = json_rows(run_bench("--frameworks", ",".join(frameworks), *SMOKE, "--baseline", "book", "--json",
                               env=env))
    data, body, machine = rows[0], rows[1:-1], rows[-1]
    assert data["kind"] == "data" and data["images_per_sec"] > 0 and data["by_layout"]
    assert machine["cpu_count"] >= 1 and machine["command"].startswith("python -m common.bench --frameworks")
    assert machine["cpu_model"] == bench.cpu_model() and machine["bf16_native"] == native_bf16()
    assert [(r["framework"], r["kind"]) for r in body] == [(fw, k) for fw in frameworks for k in ("project", "book")]
    for project, book in zip(body[::2], body[1::2]):
        check_row(project, "project")
        check_row(book, "book")
        # The two processes took their steps in turn, never together: project first on even
        # steps, book first on odd ones; the ratio is the median over those pairs.
        turns = sorted([(*span, "project") for span in project["step_clock"]]
                       + [(*span, "book") for span in book["step_clock"]])
        assert all(end <= next_start for (_, end, _), (next_start, _, _) in zip(turns, turns[1:]))
        warmup = project["warmup"]
        assert [kind for *_, kind in turns] == [k for i in range(warmup, warmup + project["steps"])
                                                for k in (("project", "book") if i % 2 == 0 else ("book", "project"))]
        pairs = sorted(b / p for p, b in zip(project["step_seconds"], book["step_seconds"]))
        assert project["ratio"] == pytest.approx((pairs[0] + pairs[1]) / 2)  # the median of 2
        if project["framework"] == "mx":  # compat sizes the OpenMP pool for the project, not for the book
            assert project["omp_num_threads"] is not None and book["omp_num_threads"] is None


# -- the parent, in-process, with stand-in workers -------------------------------------

def fake_row(framework, kind, args, rate):
    return {"framework": framework, "kind": kind, "examples_per_sec": rate, "mean": rate, "min": rate - 1,
            "max": rate + 1, "peak_rss_mb": 500.0, "peak_gpu_mb": None, "peak_gpu_note": "no GPU used",
            "device": "cpu", "precision": args.precision, "batch_size": args.batch_size,
            "step_seconds": [args.batch_size / rate] * args.steps}


@pytest.fixture
def fake_workers(monkeypatch):
    """torch works (project 30/s, book 20/s), tf's worker crashes, mx is not installed."""
    calls = []

    def run_workers(jobs, args):
        calls.extend(jobs)
        return {(fw, kind): {"framework": "tf", "kind": kind, "error": "Segmentation fault", "exit_status": -11}
                if fw == "tf" else fake_row(fw, kind, args, 30.0 if kind == "project" else 20.0) for fw, kind in jobs}

    monkeypatch.setattr(bench, "run_workers", run_workers)
    monkeypatch.setattr(bench, "is_installed", lambda name: name != "mx")
    monkeypatch.setattr(bench, "DATA_MIN_SECONDS", 0.0)
    return calls


def test_plain_output_has_a_table_per_framework_and_failures_do_not_hide_the_others(fake_workers, capsys):
    code = bench.main(["--baseline", "book", "--batch-size", "4", "--steps", "2"])
    out = capsys.readouterr().out
    assert code == 1
    assert fake_workers == [("torch", "project"), ("torch", "book"), ("tf", "project"), ("tf", "book")]
    assert "examples/s (median)" in out and "project / book: 1.50x" in out
    assert "project: FAILED: Segmentation fault" in out and install_hint("mx") in out
    assert "images/s NCHW" in out and "images/s NHWC" in out
    assert "machine: processor" in out and "command: python -m common.bench --baseline book" in out
    assert f"processor {bench.cpu_model()!r} (bf16 " in out


def test_json_output_reports_failures_as_error_rows(fake_workers, capsys):
    code = bench.main(["--json", "--baseline", "book", "--batch-size", "4", "--steps", "2"])
    captured = capsys.readouterr()
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert code == 1
    assert [(r["framework"], r["kind"]) for r in rows] == [
        ("data", "data"), ("torch", "project"), ("torch", "book"), ("tf", "project"), ("tf", "book"),
        ("mx", "project"), ("mx", "book"), ("machine", "machine")]
    assert rows[1]["ratio"] == pytest.approx(1.5)
    assert rows[3]["error"] == "Segmentation fault" and "not installed" in rows[5]["error"]
    assert "tf (project) failed: Segmentation fault" in captured.err


def test_rounds_alternate_project_and_book_and_report_the_median_ratio(monkeypatch, capsys):
    calls, rates = [], iter([30.0, 20.0, 40.0, 20.0, 27.0, 30.0])  # rounds' ratios 1.5, 2.0, 0.9

    def run_workers(jobs, args):
        calls.extend(jobs)
        return {(fw, kind): fake_row(fw, kind, args, next(rates)) for fw, kind in jobs}

    monkeypatch.setattr(bench, "run_workers", run_workers)
    monkeypatch.setattr(bench, "is_installed", lambda name: True)
    monkeypatch.setattr(bench, "DATA_MIN_SECONDS", 0.0)
    argv = ["--frameworks", "torch", "--baseline", "book", "--rounds", "3", "--batch-size", "4", "--steps", "2"]
    assert bench.main([*argv, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert calls == [("torch", "project"), ("torch", "book")] * 3
    project, book = rows[1], rows[2]
    assert project["ratio"] == pytest.approx(1.5) and project["ratios"] == pytest.approx([1.5, 2.0, 0.9])
    assert project["rounds_examples_per_sec"] == [30.0, 40.0, 27.0] and project["examples_per_sec"] == 30.0
    assert book["rounds_examples_per_sec"] == [20.0, 20.0, 30.0] and (book["min"], book["max"]) == (19.0, 31.0)
    rates = iter([30.0, 20.0, 40.0, 20.0, 27.0, 30.0])
    assert bench.main(argv) == 0
    assert "project / book: 1.50x (the median of 3 rounds: 1.50, 2.00, 0.90)" in capsys.readouterr().out


@pytest.mark.parametrize("failing", [None, "tf"])
def test_all_frameworks_step_in_the_same_turns_and_each_is_compared_with_the_fastest(monkeypatch, capsys, failing):
    calls, rates = [], {"torch": 30.0, "tf": 24.0, "mx": 40.0}

    def run_workers(jobs, args):
        calls.append(list(jobs))
        return {(fw, kind): {"framework": fw, "kind": kind, "error": "Segmentation fault", "exit_status": -11}
                if fw == failing else fake_row(fw, kind, args, rates[fw] if kind == "project" else 20.0)
                for fw, kind in jobs}

    monkeypatch.setattr(bench, "run_workers", run_workers)
    monkeypatch.setattr(bench, "is_installed", lambda name: True)
    monkeypatch.setattr(bench, "DATA_MIN_SECONDS", 0.0)
    argv = ["--baseline", "book", "--rounds", "2", "--batch-size", "4", "--steps", "2"]
    assert bench.main([*argv, "--json"]) == (1 if failing else 0)
    every = [(fw, kind) for fw in ("torch", "tf", "mx") for kind in ("project", "book")]
    assert calls == [every, [job for job in every if job[0] != failing]]  # one lockstep a round; a failure ends its rounds
    projects = {r["framework"]: r for r in map(json.loads, capsys.readouterr().out.splitlines()) if r["kind"] == "project"}
    if failing:
        assert projects["tf"]["error"] == "Segmentation fault" and projects["torch"]["vs_fastest"] == pytest.approx(0.75)
        return
    assert {fw: r["vs_fastest"] for fw, r in projects.items()} == pytest.approx({"torch": 0.75, "tf": 0.6, "mx": 1.0})
    assert projects["tf"]["ratio"] == pytest.approx(1.2)
    assert bench.main(argv) == 0
    assert "slowest / fastest (the projects' steps, pair by pair): 0.60x (tf against mx)" in capsys.readouterr().out


def test_a_failing_worker_ends_its_rounds(fake_workers, capsys):
    assert bench.main(["--frameworks", "tf", "--baseline", "book", "--rounds", "3", "--json"]) == 1
    assert fake_workers == [("tf", "project"), ("tf", "book")]  # one round, not three
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[1]["error"] == "Segmentation fault"


FAKE_WORKER = """
import json, sys
print("{{not json, but a framework's chatter", flush=True)
for i in range({turns}):
    print("more chatter, no newline: ", end="")
    print({ready!r}, flush=True)
    if not sys.stdin.readline():
        sys.exit(1)
    if {die} and i == 1:
        print("boom", file=sys.stderr)
        sys.exit(7)
print(json.dumps({{"framework": "torch", "kind": {kind!r}, "step_seconds": [0.5] * {steps}}}), flush=True)
"""


@pytest.fixture
def fake_processes(monkeypatch):
    """run_workers' workers as tiny scripts: the project's keeps the protocol
    through a framework's stray output; the book's dies at its second turn."""
    started = []

    class Worker(bench._Worker):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    def argv(framework, kind, args):
        script = FAKE_WORKER.format(turns=args.warmup + args.steps, ready=bench.TURN_READY, die=kind == "book",
                                    kind=kind, steps=args.steps)
        return [sys.executable, "-c", script]

    monkeypatch.setattr(bench, "worker_argv", argv)
    monkeypatch.setattr(bench, "_Worker", Worker)
    return started


def test_the_lockstep_survives_stray_output_and_a_dying_worker(fake_processes):
    args = bench.build_parser().parse_args(["--steps", "3", "--warmup", "1"])
    rows = bench.run_workers([("torch", "project"), ("torch", "book")], args)
    assert rows["torch", "project"] == {"framework": "torch", "kind": "project", "step_seconds": [0.5] * 3}
    assert rows["torch", "book"] == {"framework": "torch", "kind": "book", "error": "boom", "exit_status": 7}
    assert all(w.proc.poll() is not None for w in fake_processes)


def test_an_error_in_the_parent_leaves_no_worker_behind(fake_processes, monkeypatch):
    monkeypatch.setattr(bench._Worker, "go", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    args = bench.build_parser().parse_args(["--steps", "3", "--warmup", "1"])
    with pytest.raises(KeyboardInterrupt):
        bench.run_workers([("torch", "project"), ("torch", "book")], args)
    assert len(fake_processes) == 2 and all(w.proc.poll() is not None for w in fake_processes)
    assert not any(w.timer.is_alive() for w in fake_processes)


def test_only_the_books_worker_gets_mxnets_default_threading(monkeypatch):
    monkeypatch.setenv("DCGAN_MX_THREADS", "default")  # even if the user's shell had it
    assert bench.worker_env("book")["DCGAN_MX_THREADS"] == "default"
    assert "DCGAN_MX_THREADS" not in bench.worker_env("project")


def test_a_worker_refuses_bf16_until_compile_step_takes_a_precision():
    old = types.SimpleNamespace(compile_step=lambda G, D, opt_G, opt_D: None)
    new = types.SimpleNamespace(compile_step=lambda G, D, opt_G, opt_D, precision="fp32": None)
    with pytest.raises(UsageError, match="--precision bf16 is not supported by the torch backend yet"):
        bench._check_precision("torch", old, "bf16")
    assert bench._check_precision("torch", new, "bf16") == {"precision": "bf16"}
    assert bench._check_precision("torch", old, "fp32") == {}


def test_the_data_pipeline_is_measured_in_the_layout_asked_for():
    result = bench.data_throughput(batch_size=4, image_size=16, num_images=12, layout="NHWC")
    assert result["images_per_sec"] > 0 and result["layout"] == "NHWC" and result["images"] == 12


# -- misuse: one line, exit status 2 ------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--frameworks", "torch,caffe"], "unknown framework caffe"),
    (["--steps", "0"], "--steps must be >= 1"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--warmup", "-1"], "--warmup must be >= 0"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--image-size", "48"], "image_size must be a power of two"),
    (["--baseline", "book", "--image-size", "32"], "the book's nets are 64x64 only"),
    (["--steps", "many"], "invalid int value"),
    (["--precision", "fp16"], "invalid choice"),
    (["--baseline", "paper"], "invalid choice"),
])
def test_misuse_is_one_line_and_exit_status_2(argv, message, capsys):
    helpers.one_line_error(capsys, 2, helpers.run_main(bench.main, argv), message)


@pytest.mark.slow
def test_bf16_is_refused_with_one_line_by_a_backend_without_it(capsys):
    lacking = [fw for fw in ("mx",) if fw in INSTALLED]  # PyTorch and TensorFlow have bf16
    if not lacking:
        pytest.skip("needs MXNet")
    code = helpers.run_main(bench.main, ["--frameworks", lacking[0], "--precision", "bf16", "--steps", "1",
                                         "--warmup", "0", "--image-size", "16", "--n-g", "4", "--n-d", "4"])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "--precision bf16 is not supported by the" in out + err and "Traceback" not in out + err
