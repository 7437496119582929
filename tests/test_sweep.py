"""common.sweep: `python -m common.compare --sweep AXIS=V1,V2,...`, a grid of
settings, each cell x framework trained in its own process, one report.

All but one test replace compare.run_framework with a stand-in that writes a
run directory as a finished run leaves it, so nothing trains; the last trains
two tiny PyTorch cells for real."""

import json
import signal

import numpy as np
import pytest
from PIL import Image

from common import compare, sweep
from common.cli import ArgumentParser, add_data_args, add_model_args, add_train_args, config_from_args
from common.config import TrainConfig
from common.signals import StopRequests
from helpers import QUICKEST, one_line_error, run_main

PROG = "python -m common.compare"
TINY = ["--image-size", "16", "--n-g", "8", "--n-d", "8", "--num-images", "64", "--batch-size", "16", "--epochs", "1",
        "--eval-samples", "64"]
GRID = ["--sweep", "lr=0.0002,0.002", "--sweep", "latent-dim=16,100"]
NAMES = ["lr=0.0002_latent-dim=16", "lr=0.0002_latent-dim=100", "lr=0.002_latent-dim=16", "lr=0.002_latent-dim=100"]


def parser():
    """compare's parser (its main builds it from these pieces), with --sweep."""
    p = ArgumentParser(prog=PROG)
    p.add_argument("--frameworks")
    add_model_args(p)
    add_data_args(p)
    add_train_args(p, "compare")
    sweep.add_sweep_args(p)
    return p


def sweep_main(argv):
    """python -m common.compare with --sweep: its hook hands the run to common.sweep."""
    return compare.main(argv)


class StandIn:
    """compare.run_framework without training: writes what a finished run
    leaves (config.json, metrics.jsonl, summary.json, two sample grids)."""

    def __init__(self, fail=(), swd=True, stop_at=None):
        self.calls, self.fail, self.swd, self.stop_at = [], set(fail), swd, stop_at

    def __call__(self, name, config, out, stop=None):
        self.calls.append((out.name, name))
        run_dir = out / name
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        if out.name in self.fail:
            return {"framework": name, "ok": False, "status": "failed", "wall_s": 0.25,
                    "error": f"{name}: failed (exit status 1): RuntimeError: forced failure"}
        if self.stop_at == len(self.calls):  # Ctrl-C while this run trains: it checkpoints and stops
            stop.requested = signal.SIGINT
            (run_dir / "checkpoint").mkdir(exist_ok=True)
            (run_dir / "checkpoint" / "progress.json").write_text("{}")
            return {"framework": name, "ok": False, "status": "interrupted", "wall_s": 0.5,
                    "error": f"{name}: interrupted; checkpoint kept (continue with --resume)"}
        (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict(), "framework": name,
                                                         "device": "cpu", "versions": {}, "params": {"G": 1, "D": 1}}))
        quality = 1000 * config.lr + config.spec.latent_dim / 100
        lines = [{"kind": "epoch", "step": s, "epoch": s, "loss_D": 0.5 + s / 100, "loss_G": 1.5 - s / 100,
                  "examples_per_sec": 100.0, **({"swd": quality + 3 - s} if self.swd else {})} for s in (1, 2, 3)]
        lines.append({"kind": "step", "step": 4, "epoch": 4, "loss_D": 0.6, "loss_G": 1.4, "examples_per_sec": 90.0})
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
        (run_dir / "summary.json").write_text(json.dumps({"step": 4, "loss_D": 0.6, "loss_G": 1.4,
                                                          "examples_per_sec": 1234.5}))
        for epoch in (2, 10):  # the last by number, not by name
            Image.fromarray(np.full((20, 44, 3), 40 * epoch % 256, np.uint8)).save(
                run_dir / "samples" / f"epoch_{epoch:03d}.png")
        return {"framework": name, "ok": True, "status": "done", "wall_s": 1.5}


@pytest.fixture
def stand_in(monkeypatch):
    def make(**kw):
        fake = StandIn(**kw)
        monkeypatch.setattr(compare, "run_framework", fake)
        return fake
    return make


def rows(report: str) -> list[list[str]]:
    table = [line for line in report.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]


def header(report: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith("|"))
    return [c.strip() for c in line.strip("|").split("|")]


# -- axes, grid, names ------------------------------------------------------------


@pytest.mark.parametrize("text,field,values", [
    ("lr=0.0002,0.002", "lr", (0.0002, 0.002)),
    ("lr-g=1e-3", "lr_G", (0.001,)),
    ("lr_D=0.01, 0.02", "lr_D", (0.01, 0.02)),
    ("latent-dim=16,100", "latent_dim", (16, 100)),
    ("latent_dim=8", "latent_dim", (8,)),
    ("nz=8", "latent_dim", (8,)),
    ("n-g=32,64", "n_G", (32, 64)),
    ("n_D=8", "n_D", (8,)),
    ("batchSize=64,256", "batch_size", (64, 256)),
    ("variant=d2l,paper", "variant", ("d2l", "paper")),
    ("data=shapes,mnist", "name", ("shapes", "mnist")),
    ("--epochs=1,2", "epochs", (1, 2)),
    ("max-steps=none,5", "max_steps", (None, 5)),
    ("device=cpu,gpu", "device", ("cpu", "gpu")),
])
def test_axes_are_any_training_setting_parsed_with_its_type(text, field, values):
    name, parsed = sweep.sweep_axis(text)
    assert (name, parsed) == (field, values)
    assert [type(v) for v in parsed] == [type(v) for v in values]


def test_the_grid_is_the_product_in_the_order_given_with_readable_names():
    base = TrainConfig().replace(image_size=16, epochs=3)
    grid = sweep.cells(base, [("lr", (0.0002, 0.002)), ("latent_dim", (16, 100))])
    assert [name for name, _ in grid] == NAMES
    assert [(c.lr, c.spec.latent_dim) for _, c in grid] == [(0.0002, 16), (0.0002, 100), (0.002, 16), (0.002, 100)]
    assert all(c.epochs == 3 and c.spec.image_size == 16 for _, c in grid)  # the rest is the base's
    boards = [c.tensorboard for _, c in sweep.cells(base.replace(tensorboard="tb"), [("lr", (0.0002, 0.002))])]
    assert boards == ["tb/lr=0.0002", "tb/lr=0.002"]  # then /<framework>: every run its own TensorBoard run
    assert sweep.cell_name({"lr_G": 1e-05, "n_G": 8, "max_steps": None}) == "lr-g=1e-05_n-g=8_max-steps=none"
    assert sweep.cell_name({"data_dir": "/my data/faces"}) == "data-dir=_my_data_faces"  # a directory name


@pytest.mark.parametrize("args,message", [
    (["--sweep", "foo=1,2"], "unknown setting 'foo'"),
    (["--sweep", "ltent-dim=16"], "did you mean latent-dim?"),
    (["--sweep", "lr"], "expected AXIS=V1,V2,..."),
    (["--sweep", "lr="], "lr: an empty value"),
    (["--sweep", "lr=0.1,,0.2"], "lr: an empty value"),
    (["--sweep", "latent-dim=16,1.5"], "latent-dim: '1.5' is not an integer"),
    (["--sweep", "lr=fast"], "lr: 'fast' is not a number"),
    (["--sweep", "variant=d2l,big"], "variant: 'big' is not one of d2l, paper"),
    (["--sweep", "lr=0.1,0.10"], "the value '0.10' is given twice"),
    (["--sweep", "lr=0.1", "--sweep", "lr=0.2"], "--sweep lr is given twice"),
    (["--sweep", "lr=0.1", "--lr", "0.2"], "--lr 0.2 and --sweep lr=... are both given"),
    (["--sweep", "image-size=16,20"], "image-size=20: image_size must be a power of two"),
    (["--sweep", "lr=0.1,-1"], "lr must be a finite number > 0"),
    (["--sweep", "epochs=1,0"], "epochs must be >= 1"),
    (["--sweep", "data=shapes,nope"], "unknown dataset 'nope'"),
    (["--sweep", "cifar-class=cat"], "--cifar-class is read only with --data cifar10"),
    (["--sweep", "lr=0.1,0.2", "--lr-g", "0.1", "--lr-d", "0.1"], "--sweep lr changes nothing"),
    (["--sweep", "out=a,b"], "out cannot be swept"),
    (["--sweep", "resume=true"], "resume cannot be swept"),
    (["--sweep", "preset=d2l,paper"], "preset cannot be swept"),
    (["--sweep", "log-every=1,2"], "log-every cannot be swept"),
    (["--sweep", "lr=0.1", "--resume"], "holds no sweep (sweep.json is missing)"),
])
def test_misuse_is_one_line_and_writes_nothing(tmp_path, capsys, stand_in, args, message):
    fake = stand_in()
    one_line_error(capsys, 2, run_main(sweep_main, [*args, "--out", tmp_path / "sw"]), message)
    assert not (tmp_path / "sw").exists() and not fake.calls


@pytest.mark.parametrize("record", ["{not json", '{"config": {}}', '{"config": {}, "axes": [{"field": "lr"}]}', "[]"])
def test_a_damaged_sweep_record_is_one_line_and_kept(tmp_path, capsys, stand_in, record):
    fake = stand_in()
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "sweep.json").write_text(record)
    one_line_error(capsys, 2, run_main(sweep_main, ["--resume", "--out", tmp_path / "sw"]),
                   "is not a readable sweep record")
    assert (tmp_path / "sw" / "sweep.json").read_text() == record and not fake.calls


def test_a_used_out_directory_is_refused(tmp_path, capsys, stand_in):
    fake = stand_in()
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "notes.txt").write_text("mine")
    one_line_error(capsys, 2, run_main(sweep_main, [*GRID, "--out", tmp_path / "sw"]), "is not empty")
    assert [p.name for p in (tmp_path / "sw").iterdir()] == ["notes.txt"] and not fake.calls


# -- the sweep, with a stand-in for training ----------------------------------------


def test_every_cell_and_framework_trains_in_its_directory_and_is_reported(tmp_path, capsys, stand_in):
    fake = stand_in()
    out = tmp_path / "sw"
    assert run_main(sweep_main, [*GRID, *TINY, "--frameworks", "torch,mx", "--out", out]) == 0
    assert fake.calls == [(cell, fw) for cell in NAMES for fw in ("torch", "mx")]
    report = (out / "report.md").read_text()
    assert header(report) == ["lr", "latent-dim", "framework", "swd", "final loss_D", "final loss_G", "examples/s",
                              "wall time (s)", "samples"]
    table = rows(report)
    assert [r[:3] for r in table] == [[lr, dim, fw] for lr in ("0.0002", "0.002") for dim in ("16", "100")
                                      for fw in ("torch", "mx")]
    first = table[0]  # the last swd logged (a later line without one does not hide it), summary's numbers
    assert first[3:8] == ["0.36", "0.6000", "1.4000", "1234.5", "1.5"]
    assert first[8] == f"[epoch_010]({NAMES[0]}/torch/samples/epoch_010.png)"
    assert (out / NAMES[0] / "torch" / "samples" / "epoch_010.png").exists()
    assert "Lowest swd: lr=0.0002_latent-dim=16 (torch), 0.36" in report
    assert "Swept: lr=0.0002,0.002 latent-dim=16,100. Shared: data `shapes`, 16x16, widths 8/8" in report
    assert (out / "sweep.png").stat().st_size > 5_000
    record = json.loads((out / "sweep.json").read_text())
    assert record["axes"] == [{"field": "lr", "values": [0.0002, 0.002]},
                              {"field": "latent_dim", "values": [16, 100]}]
    assert all(st["status"] == "done" for runs in record["status"].values() for st in runs.values())
    assert "| 0.002 | 100 | mx |" in capsys.readouterr().out  # printed too


def test_without_the_quality_metric_the_losses_stand_in_and_the_header_says_so(tmp_path, stand_in):
    stand_in(swd=False)
    assert run_main(sweep_main, ["--sweep", "n-g=8,16", *TINY[:2], "--frameworks", "torch",
                                 "--out", tmp_path / "sw"]) == 0
    report = (tmp_path / "sw" / "report.md").read_text()
    assert "No run logged the quality metric `swd`: the final losses stand in for it" in report
    assert "swd" not in header(report) and len(rows(report)) == 2 and "Lowest" not in report


def test_a_failed_cell_is_reported_and_does_not_hide_the_others(tmp_path, stand_in):
    fake = stand_in(fail={NAMES[1]})
    out = tmp_path / "sw"
    assert run_main(sweep_main, [*GRID, *TINY, "--frameworks", "torch", "--out", out]) == 1
    assert len(fake.calls) == 4
    report = (out / "report.md").read_text()
    table = rows(report)
    assert len(table) == 4 and table[1][3] == "failed" and table[1][-1] == "—"
    assert all(float(r[3]) > 0 for i, r in enumerate(table) if i != 1)
    assert f"- {NAMES[1]}: torch: failed (exit status 1): RuntimeError: forced failure" in report


def test_resume_skips_done_cells_and_trains_the_rest(tmp_path, capsys, stand_in):
    out = tmp_path / "sw"
    stand_in(fail={NAMES[2]})
    assert run_main(sweep_main, [*GRID, *TINY, "--frameworks", "torch", "--out", out]) == 1
    done = {p: p.stat().st_mtime_ns for p in out.glob("*/torch/summary.json")}
    again = stand_in()
    assert run_main(sweep_main, [*GRID, "--frameworks", "torch", "--resume", "--out", out]) == 0
    assert again.calls == [(NAMES[2], "torch")]
    assert {p: p.stat().st_mtime_ns for p in done} == done
    assert len(rows((out / "report.md").read_text())) == 4
    # --resume with the grid from sweep.json (no --sweep): nothing left to do
    nothing = stand_in()
    args = parser().parse_args(["--resume", "--out", str(out)])
    assert sweep.wants_sweep(args, out)
    assert run_main(sweep_main, ["--resume", "--out", out]) == 0 and not nothing.calls
    # other axes, or another config, are refused
    capsys.readouterr()
    one_line_error(capsys, 2, run_main(sweep_main, ["--sweep", "lr=0.1", "--resume", "--out", out]),
                   "holds a sweep of other axes")
    one_line_error(capsys, 2, run_main(sweep_main, ["--n-g", "32", "--resume", "--out", out]),
                   "holds a sweep with another config (--n-g 8 -> 32)")
    # more epochs: every run trains on
    more = stand_in()
    assert run_main(sweep_main, ["--epochs", "2", "--resume", "--out", out]) == 0
    assert len(more.calls) == 4


def test_a_stop_request_stops_after_the_run_in_training(tmp_path, stand_in):
    out = tmp_path / "sw"
    fake = stand_in(stop_at=2)  # Ctrl-C during the second run
    assert run_main(sweep_main, [*GRID, *TINY, "--frameworks", "torch", "--out", out]) == 130
    assert fake.calls == [(NAMES[0], "torch"), (NAMES[1], "torch")]
    report = (out / "report.md").read_text()
    assert [r[3] for r in rows(report)] == ["0.36", "interrupted", "not started", "not started"]
    assert "not started (interrupted; continue with --resume)" in report
    again = stand_in()
    assert run_main(sweep_main, [*GRID, "--frameworks", "torch", "--resume", "--out", out]) == 0
    assert again.calls == [(cell, "torch") for cell in NAMES[1:]]
    record = json.loads((out / "sweep.json").read_text())
    assert record["status"][NAMES[1]]["torch"]["wall_s"] == pytest.approx(2.0)  # 0.5 before the stop, 1.5 after


# -- one real sweep ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(QUICKEST is None, reason="no framework installed")
def test_a_real_sweep_trains_each_cell_in_its_own_process(tmp_path, capsys):
    fw = QUICKEST
    out = tmp_path / "sw"
    args = parser().parse_args(["--sweep", "latent-dim=8,16", *TINY, "--frameworks", fw, "--out", str(out)])
    names = compare.frameworks_from(args.frameworks)
    args.out = str(out / "_")
    with StopRequests() as stop:
        assert sweep.run_sweep(args, config_from_args(args), out, names, stop) == 0, capsys.readouterr()
    for cell in ("latent-dim=8", "latent-dim=16"):
        run = out / cell / fw
        assert (run / "summary.json").exists() and (run / "checkpoint" / "progress.json").exists()
        assert json.loads((run / "config.json").read_text())["config"]["spec"]["latent_dim"] == int(cell[11:])
    table = rows((out / "report.md").read_text())
    assert [r[:2] for r in table] == [["8", fw], ["16", fw]]
    assert all(float(r[-3]) > 0 and r[-1].startswith("[epoch_001](") for r in table)
    assert (out / "sweep.png").exists()
