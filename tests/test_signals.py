"""Signals and kills, for real, in processes: SIGTERM checkpoints and exits
143, SIGKILL at any moment leaves a run that continues, and a comparison
stopped by Ctrl-C reports what finished and resumes the rest. (Ctrl-C in a
training run, in-process: test_reliability.py.)"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from common.backends import quiet_env
from common.rundir import read_metrics, verify_checkpoint
from conftest import run_compare
from helpers import BACKENDS, QUICKEST as FW

pytestmark = pytest.mark.slow


# The signals are the run loop's (common code): the backend quickest to start shows them (FW).


def start_training(out, *extra):
    args = [sys.executable, "-m", f"dcgan_{FW}.train", "--image-size", "16", "--n-g", "8", "--n-d", "8",
            "--num-images", "64", "--batch-size", "8", "--epochs", "400", "--log-every", "1",
            "--out", str(out), "--no-progress", "--no-eval", *extra]
    return args, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env())


def wait_for_steps(out, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and len(read_metrics(out)) < n:
        time.sleep(0.1)


def test_sigterm_checkpoints_and_sigkill_at_any_moment_leaves_a_run_that_continues(tmp_path):
    # One run, stopped five ways in turn (one process each, as a user's would be).
    if FW is None:
        pytest.skip("no framework installed")
    out = tmp_path / "run"
    _, proc = start_training(out)
    wait_for_steps(out, 3)
    proc.send_signal(signal.SIGTERM)  # after its step: a checkpoint, status 143
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "stopped by SIGTERM at step" in stderr and "--resume" in stderr
    step = verify_checkpoint(out / "checkpoint", FW)
    assert 3 <= step and read_metrics(out)[-1]["step"] == step

    def saved_step():  # the step a resume starts from: the newest intact checkpoint's
        for name in ("checkpoint", "checkpoint.previous"):
            try:
                return verify_checkpoint(out / name, FW)
            except Exception:
                continue
        raise AssertionError("no intact checkpoint left")

    for delay in (0.0, 0.7, 1.9):  # SIGKILL during start-up, then at two moments of training (a checkpoint every 8 steps)
        before = saved_step()
        args, proc = start_training(out, "--resume")
        if delay:
            wait_for_steps(out, len(read_metrics(out)) + 1)
            time.sleep(delay)
        proc.kill()
        proc.communicate(timeout=60)
        assert saved_step() >= before  # nothing complete was lost
    start = saved_step()
    done = subprocess.run(args[:args.index("--out")] + ["--out", str(out), "--max-steps", str(start + 8), "--resume",
                                                        "--no-progress"],
                          capture_output=True, text=True, env=quiet_env())
    assert done.returncode == 0, done.stderr
    # on from the checkpoint, every step logged once
    assert [m["step"] for m in read_metrics(out)][-9:] == list(range(start, start + 9))
    assert verify_checkpoint(out / "checkpoint", FW) == start + 8


def test_compare_stopped_by_ctrl_c_reports_what_finished_and_resumes(tmp_path):
    if not {"torch", "mx"} <= BACKENDS.keys():
        pytest.skip("needs torch and mxnet")
    out = tmp_path / "cmp"
    # 2 epochs of 4 steps, each step long enough (32x32, widths 32) to be stopped in the middle of
    flags = ["--frameworks", "mx,torch", "--image-size", "32", "--n-g", "32", "--n-d", "32", "--batch-size", "32",
             "--num-images", "128", "--epochs", "2", "--no-eval"]
    proc = subprocess.Popen([sys.executable, "-m", "common.compare", *flags, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=quiet_env())
    wait_for_steps(out / "mx", 2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    report = (out / "report.md").read_text()
    assert "| mx |" in report and "interrupted" in report and "torch: not started" in report
    status = json.loads((out / "compare.json").read_text())["status"]
    assert status["mx"]["status"] == "interrupted" and status["torch"]["status"] == "not started"
    step = verify_checkpoint(out / "mx" / "checkpoint", "mx")
    done = run_compare("--resume", "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert all(json.loads((out / fw / "summary.json").read_text())["step"] == 2 * 4 for fw in ("torch", "mx"))
    assert [m["step"] for m in read_metrics(out / "mx")][step - 1:step + 1] == [step, step + 1]


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_stops_at_once_with_its_own_status(capsys, second):
    from common.cli import run_cli
    from common.signals import REPEAT_WINDOW, StopRequests

    seen = []

    def main(argv):
        with StopRequests() as stop:
            os.kill(os.getpid(), signal.SIGINT)  # the first: noted, the loop would stop after its step
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)  # the same again at once (a launcher passing it on): no change
            time.sleep(REPEAT_WINDOW)
            seen.append(stop.requested)
            os.kill(os.getpid(), second)  # a second request: now
            time.sleep(5)
        return 0

    assert run_cli("prog", main, []) == 128 + second and seen == [signal.SIGINT]
    assert capsys.readouterr().err.strip() == "prog: stopped at once; files already written stand"
