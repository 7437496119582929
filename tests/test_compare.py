"""common.compare: every framework trained in its own process, one report."""

import json
import os
from pathlib import Path

import pytest

from common import compare
from common.backends import is_installed, quiet_env
from common.cli import (ArgumentParser, add_data_args, add_model_args, add_train_args, config_argv,
                        config_from_args)
from common.config import TrainConfig
from common.rundir import read_metrics
from common.run import cpu_model
from conftest import COMPARE_FLAGS, run_compare
from helpers import one_line_error, run_main
from test_notebooks import execute, outputs

REPO = Path(__file__).resolve().parents[1]
FLAGS = COMPARE_FLAGS
needs_all = pytest.mark.skipif(not all(map(is_installed, ("torch", "tf", "mx"))), reason="needs all three")


@needs_all
@pytest.mark.slow
@pytest.mark.cross_framework
def test_compare_trains_all_three_and_reports(comparison):
    out, proc = comparison
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    table = [line for line in report.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[-1] == "step-1 loss diff" and "final SWD" in header and "judge: recognised" in header
    for fw in ("torch", "tf", "mx"):
        row = next(line for line in table if line.startswith(f"| {fw} |"))
        cells = dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))
        assert int(cells["params G"].replace(",", "")) > 0 and float(cells["examples/sec"]) > 0
        # the same weights, batch and noise: the first step's losses agree to float32 rounding
        assert float(cells["step-1 loss diff"]) < 1e-3
        swd = float(cells["final SWD"])
        assert 0 < swd and swd == pytest.approx(read_metrics(out / fw)[-1]["swd"], abs=0.05)
        assert (out / fw / "generator.npz").exists() and (out / f"{fw}.log").exists()
    assert "python -m common.parity" in report
    assert f"; CPU {cpu_model()} (bf16 " in report  # demo times depend on the CPU model
    assert (out / "compare.png").stat().st_size > 10_000
    assert "| torch |" in proc.stdout  # the table is printed too


@needs_all
@pytest.mark.slow
def test_resume_of_a_finished_comparison_trains_nothing(comparison, capsys):
    out, _ = comparison
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    assert run_main(compare.main, ["--resume", "--out", out]) == 0
    assert "training" not in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == before
    assert json.loads((out / "compare.json").read_text())["status"]["mx"]["status"] == "done"


@needs_all
@pytest.mark.slow
def test_a_crash_in_one_framework_does_not_hide_the_others(tmp_path):
    # A dcgan_torch whose train module fails, found first on PYTHONPATH; MXNet (the quicker to start) runs on.
    fake = tmp_path / "fake" / "dcgan_torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "train.py").write_text("raise RuntimeError('forced failure for the test')\n")
    env = dict(quiet_env(), PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]))
    out = tmp_path / "cmp"
    proc = run_compare(*FLAGS, "--frameworks", "torch,mx", "--out", out, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    report = (out / "report.md").read_text()
    assert "torch: failed" in report and "RuntimeError: forced failure for the test" in report
    for fw in ("mx",):
        assert (out / fw / "summary.json").exists()
        assert next(l for l in report.splitlines() if l.startswith(f"| {fw} |")).count("failed") == 0


def test_a_missing_framework_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "is_installed", lambda name: False)
    result = compare.run_framework("mx", TrainConfig(out=str(tmp_path / "x")), tmp_path)
    assert not result["ok"] and "pip install -e '.[mx]'" in result["error"]


def test_the_report_lists_each_frameworks_training_health_warnings():
    def result(name, warnings):
        metrics = [{"step": 1, "loss_D": 0.7, "loss_G": 0.8}]
        return {"framework": name, "ok": True, "status": "done", "version": "1", "device": "cpu", "wall_s": 1.0,
                "params": {"G": 10, "D": 5}, "metrics": metrics,
                "summary": {"examples_per_sec": 1.0, "loss_D": 0.7, "loss_G": 0.8, "warnings": warnings}}
    d_wins = {"kind": "d_wins", "step": 900, "message": "D is winning: try a smaller --lr-d."}
    text = compare.report([result("torch", []), result("mx", [d_wins])], TrainConfig())
    assert "- mx, step 900: D is winning: try a smaller --lr-d." in text
    assert "torch, step" not in text
    quiet = compare.report([result("torch", []), result("mx", [])], TrainConfig())
    assert "Training health: no warning in any framework." in quiet and "step 900" not in quiet


def test_config_argv_round_trips():
    config = TrainConfig().replace(image_size=32, n_G=8, n_D=16, name="shapes", num_images=100, lr=0.00123,
                                   lr_D=0.0005, epochs=3, batch_size=7, max_steps=11, seed=5, log_every=2,
                                   variant="paper", dtype="float64", preset="paper", out="x")
    parser = ArgumentParser()
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, "x")
    args = parser.parse_args(config_argv(config) + ["--out", "x"])
    assert config_from_args(args) == config


def test_each_framework_logs_tensorboard_into_its_own_directory(tmp_path):
    config = TrainConfig().replace(tensorboard=str(tmp_path / "tb"))
    argv = compare.child_argv("tf", config, tmp_path / "cmp" / "tf")
    assert argv[argv.index("--out") + 1] == str(tmp_path / "cmp" / "tf") and "--resume" not in argv
    (tmp_path / "cmp" / "tf" / "checkpoint").mkdir(parents=True)
    (tmp_path / "cmp" / "tf" / "checkpoint" / "progress.json").write_text("{}")
    argv = compare.child_argv("tf", config, tmp_path / "cmp" / "tf")
    assert "--resume" in argv
    (tmp_path / "cmp" / "tf" / "checkpoint" / "progress.json").unlink()  # killed while swapping checkpoints
    (tmp_path / "cmp" / "tf" / "checkpoint").rename(tmp_path / "cmp" / "tf" / "checkpoint.previous")
    assert "--resume" in compare.child_argv("tf", config, tmp_path / "cmp" / "tf")
    parser = ArgumentParser()
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, "x")
    # the last --tensorboard wins: each framework a run of its own in TensorBoard, none overwriting another
    assert config_from_args(parser.parse_args(argv)).tensorboard == str(tmp_path / "tb" / "tf")
    assert "--tensorboard" not in compare.child_argv("tf", TrainConfig(), tmp_path / "x")


@pytest.mark.parametrize("args,message", [
    (["--frameworks", "jax"], "unknown framework jax"),
    (["--epochs", "0"], "epochs must be >= 1"),
    (["--resume"], "holds no comparison"),
])
def test_misuse_is_one_line(tmp_path, capsys, args, message):
    one_line_error(capsys, 2, run_main(compare.main, [*args, "--out", tmp_path / "cmp"]), message)
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("record", ["{not json", '{"config": {}}', '{"frameworks": ["torch"]}', "[]"])
def test_a_damaged_comparison_record_is_one_line_and_kept(tmp_path, capsys, record):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "compare.json").write_text(record)
    one_line_error(capsys, 2, run_main(compare.main, ["--resume", "--out", tmp_path / "cmp"]),
                   "is not a readable comparison record")
    assert (tmp_path / "cmp" / "compare.json").read_text() == record


def test_a_used_out_directory_is_refused(tmp_path, capsys):
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "report.md").write_text("an earlier comparison")
    one_line_error(capsys, 2, run_main(compare.main, ["--out", tmp_path / "cmp"]), "is not empty")
    assert (tmp_path / "cmp" / "report.md").read_text() == "an earlier comparison"


@pytest.mark.slow
def test_compare_notebook_runs(comparison, tmp_path):
    # The notebook's own code, on the session's comparison: with --resume it
    # reports the finished frameworks without training them again. Here, not in
    # test_notebooks.py: `make test` runs a file per test process, and the
    # comparison fixture is made once per process.
    if not all(map(is_installed, ("torch", "tf", "mx"))):
        pytest.skip("needs all three frameworks")
    out, _ = comparison
    nb = execute("compare.ipynb", f'FRAMEWORKS = "torch,tf,mx"\nFLAGS = ["--resume"]\nOUT = "{out}"', tmp_path)
    assert "exit status 0" in outputs(nb)
    report = (out / "report.md").read_text()
    assert all(f"| {fw} |" in report for fw in ("torch", "tf", "mx"))
    assert any("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
