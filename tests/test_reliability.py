"""No run loses work or records: signals, kills, corrupt checkpoints, a full
disk, divergence, half-started runs, wrong files in the wrong place. Each
case kills, corrupts or feeds the bad input for real and compares the
files' hashes before and after (helpers.snapshot)."""

import errno
import json
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from common.callbacks import Dashboard
from common.cli import config_argv
from common.config import TrainConfig
from common.rundir import read_metrics, verify_checkpoint
from helpers import BACKENDS, QUICKEST, one_line_error, run_main, snapshot

# 4 steps an epoch; the quality measure on 64 images, as cheap as it gets
TINY = dict(image_size=16, n_G=8, n_D=8, num_images=64, batch_size=16, lr=0.002, seed=1, eval_samples=64)


def tiny(out, **overrides) -> TrainConfig:
    return TrainConfig().replace(**{**TINY, "epochs": 2, "out": str(out), **overrides})


def train_cli(fw, config, *extra):
    return run_main(BACKENDS[fw].train.main, [*config_argv(config), "--out", config.out, *extra])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run per framework (checkpoint at step 8, checkpoint.previous at step 4)."""
    runs = {}
    for fw, b in BACKENDS.items():
        out = tmp_path_factory.mktemp(f"done-{fw}")
        b.train.train(tiny(out), progress=False)
        runs[fw] = out
    return runs


def fresh_copy(finished, fw, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished[fw], out)
    config = json.loads((out / "config.json").read_text())
    config["config"]["out"] = str(out)  # the copy's own --out, as if it had been trained there
    (out / "config.json").write_text(json.dumps(config))
    return out


# -- resume: refused, or a no-op, without touching a file ------------------------------------

def test_two_checkpoints_are_kept_and_verified(finished, fw):
    out = finished[fw]
    assert verify_checkpoint(out / "checkpoint", fw) == 8
    assert verify_checkpoint(out / "checkpoint.previous", fw) == 4


def test_resume_by_another_framework_is_refused_and_nothing_changes(finished, capsys):
    if len(BACKENDS) < 2:
        pytest.skip("needs two frameworks")
    owner, other = list(BACKENDS)[:2]
    out = finished[owner]
    before = snapshot(out)
    one_line_error(capsys, 2, train_cli(other, tiny(out, epochs=3), "--resume"),
                   f"holds a {owner} run; continue it with python -m dcgan_{owner}.train, not dcgan_{other}")
    assert snapshot(out) == before


def test_resume_of_a_finished_run_changes_nothing(finished, fw, capsys):
    out = finished[fw]
    before = snapshot(out)
    assert train_cli(fw, tiny(out), "--resume") == 0
    assert "nothing to do" in capsys.readouterr().err
    assert snapshot(out) == before


def test_resume_to_fewer_steps_than_done_is_refused(finished, fw, capsys):
    out = finished[fw]
    before = snapshot(out)
    one_line_error(capsys, 2, train_cli(fw, tiny(out, max_steps=3), "--resume"),
                   "is at step 8 already; --epochs 2 and --max-steps 3 end at step 3, before it")
    assert snapshot(out) == before


# -- damaged checkpoints ---------------------------------------------------------------------

def state_files(fw, directory):
    return [p for p in directory.iterdir() if p.name != "progress.json"]


@pytest.mark.slow
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(finished, fw, tmp_path, capsys):
    out = fresh_copy(finished, fw, tmp_path)
    victim = max(state_files(fw, out / "checkpoint"), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated, as by a full disk
    assert train_cli(fw, tiny(out, epochs=3), "--resume") == 0
    err = capsys.readouterr().err
    assert f"{victim} is damaged" in err and "resuming from" in err and "(step 4)" in err
    assert [m["step"] for m in read_metrics(out)] == [4, 8, 12]  # steps 5-8 trained again, then 9-12
    assert verify_checkpoint(out / "checkpoint", fw) == 12


def test_no_intact_checkpoint_is_one_line_and_nothing_changes(finished, fw, tmp_path, capsys):
    out = fresh_copy(finished, fw, tmp_path)
    (out / "checkpoint" / "progress.json").write_text("{not json")
    victim = state_files(fw, out / "checkpoint.previous")[0]
    victim.write_bytes(b"\0" + victim.read_bytes()[1:])  # one byte changed: only the checksum sees it
    before = snapshot(out)
    one_line_error(capsys, 1, train_cli(fw, tiny(out, epochs=3), "--resume"), "no intact checkpoint is left")
    assert snapshot(out) == before


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(fw, tmp_path, monkeypatch, capsys):
    b = BACKENDS[fw]
    real_save, calls = b.train.save_checkpoint, []

    def save(directory, *state):
        calls.append(directory)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(directory, *state)

    monkeypatch.setattr(b.train, "save_checkpoint", save)
    out = tmp_path / "run"
    one_line_error(capsys, 1, train_cli(fw, tiny(out)),
                   f"cannot write the checkpoint of step 8 (No space left on device); the checkpoint in "
                   f"{out / 'checkpoint'} is kept")
    assert verify_checkpoint(out / "checkpoint", fw) == 4
    assert not [p for p in out.iterdir() if p.name.startswith(".checkpoint")]  # no half-written one


# -- divergence -------------------------------------------------------------------------------

def poison_before_step(b, monkeypatch, n: int) -> None:
    """Poison D's last layer (a logit: no activation after it to hide a NaN; MXNet's
    Activation("relu") maps NaN to 0) before the n-th step."""
    real_compile = b.train.compile_step

    def compile_step(G, D, opt_G, opt_D, precision="fp32", replicas=None):
        step, calls = real_compile(G, D, opt_G, opt_D, precision, replicas), []

        def poisoned(X, Z):
            calls.append(1)
            if len(calls) == n:
                arrays = b.weights.export_canonical(D)
                last = f"D/{len(D.spec.discriminator_layers()) - 1}/weight"
                b.weights.load_canonical(D, {**arrays, last: np.full_like(arrays[last], np.nan)})
            return step(X, Z)
        return poisoned

    monkeypatch.setattr(b.train, "compile_step", compile_step)


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(fw, tmp_path, monkeypatch, capsys):
    poison_before_step(BACKENDS[fw], monkeypatch, 6)
    out = tmp_path / "run"
    code = train_cli(fw, tiny(out, epochs=3, log_every=0))
    one_line_error(capsys, 3, code, "at step 6: training diverged and stopped; the last good checkpoint (step 4)")
    assert verify_checkpoint(out / "checkpoint", fw) == 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["diverged"]["step"] == 6
    assert [m["step"] for m in read_metrics(out)] == [4]  # the epoch line with NaN was not written
    assert (out / "losses.png").is_file()  # drawn on the way out, up to the last good line


@pytest.mark.slow
def test_a_divergence_is_reported_even_if_the_dashboard_then_fails(tmp_path, monkeypatch, capsys):
    # Common code (the run loop), so one backend. A full disk, say, while drawing on the way out.
    if QUICKEST is None:
        pytest.skip("no framework installed")
    poison_before_step(BACKENDS[QUICKEST], monkeypatch, 6)

    def no_space(self, run):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Dashboard, "draw", no_space)
    out = tmp_path / "run"
    one_line_error(capsys, 3, train_cli(QUICKEST, tiny(out, epochs=3, log_every=0)),
                   "at step 6: training diverged and stopped; the last good checkpoint (step 4)")
    assert json.loads((out / "summary.json").read_text())["diverged"]["step"] == 6
    assert verify_checkpoint(out / "checkpoint", QUICKEST) == 4


# -- half-started runs, and wrong places -------------------------------------------------------

@pytest.mark.slow
def test_a_run_stopped_before_its_first_checkpoint_starts_afresh(tmp_path, capsys):
    # common/rundir.py decides (one backend shows it; each backend's own checkpoints are tested above)
    fw = next(iter(BACKENDS))
    out = tmp_path / "run"
    config = tiny(out, max_steps=2)
    BACKENDS[fw].train.train(config, progress=False)

    def as_if_killed_before_its_first_checkpoint():
        for name in ("checkpoint", "checkpoint.previous", "generator.npz", "discriminator.npz", "summary.json"):
            shutil.rmtree(out / name, ignore_errors=True) if name.startswith("check") else (out / name).unlink()

    for extra in ((), ("--resume",)):
        as_if_killed_before_its_first_checkpoint()
        assert train_cli(fw, config, *extra) == 0
        assert "stopped before its first checkpoint; starting it afresh" in capsys.readouterr().err
        assert [m["step"] for m in read_metrics(out)] == [2]


@pytest.mark.slow
def test_a_trained_run_whose_checkpoints_were_removed_is_not_overwritten(tmp_path, capsys):
    fw = next(iter(BACKENDS))
    out = tmp_path / "run"
    config = tiny(out, max_steps=2)
    BACKENDS[fw].train.train(config, progress=False)
    for name in ("checkpoint", "checkpoint.previous"):  # removed to save space, say
        shutil.rmtree(out / name, ignore_errors=True)
    before = snapshot(out)
    for extra in ((), ("--resume",)):
        one_line_error(capsys, 2, train_cli(fw, config, *extra), "has no checkpoint left but has generator.npz")
        assert snapshot(out) == before


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_an_out_that_is_not_a_directory_is_one_line(fw, tmp_path, capsys, kind):
    (tmp_path / "notes.txt").write_text("keep me")
    out = tmp_path / "notes.txt" if kind == "file" else tmp_path / "notes.txt" / "run"
    one_line_error(capsys, 2, train_cli(fw, tiny(out)), "is a file")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody can write, root included: chmod for users, the immutable attribute for root."""
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "keep.txt").write_text("keep me")
    ro.chmod(0o555)
    if os.access(ro, os.W_OK):  # root: permission bits do not stop it
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(ro)]).returncode:
            pytest.skip("cannot make a directory read-only for this user here")
    yield ro
    subprocess.run(["chattr", "-i", str(ro)], capture_output=True)
    ro.chmod(0o755)


def test_a_read_only_out_is_one_line(fw, read_only_dir, capsys):
    before = snapshot(read_only_dir)
    one_line_error(capsys, 2, train_cli(fw, tiny(read_only_dir / "run")), "is not writable")
    one_line_error(capsys, 2, train_cli(fw, tiny(read_only_dir)), "is not writable")
    assert snapshot(read_only_dir) == before


def test_a_read_only_output_file_is_one_line(read_only_dir, capsys):
    from common.data.__main__ import main as data_main
    one_line_error(capsys, 2, run_main(data_main, ["show", "shapes", "--num-images", "20",
                                                   "--out", read_only_dir / "grid.png"]), "cannot write")
    assert sorted(p.name for p in read_only_dir.iterdir()) == ["keep.txt"]


def test_outputs_named_as_directories_are_one_line(tmp_path, capsys):
    from common.data.__main__ import main as data_main
    if "torch" not in BACKENDS:
        pytest.skip("needs torch")
    one_line_error(capsys, 2, run_main(data_main, ["show", "shapes", "--num-images", "20", "--out", tmp_path]),
                   "is a directory; name a file")
    out = tmp_path / "run"
    BACKENDS["torch"].train.train(tiny(out, max_steps=1), progress=False)
    one_line_error(capsys, 2, run_main(BACKENDS["torch"].sample.main,
                                       ["--weights", out / "generator.npz", "--out", tmp_path]),
                   "is a directory; name a file")
    (tmp_path / "bogus.npz").write_bytes(b"not a zip archive")
    np.save(tmp_path / "array.npy", np.zeros(3))
    os.replace(tmp_path / "array.npy", tmp_path / "renamed.npz")  # an .npy named .npz
    for name in ("bogus.npz", "renamed.npz"):
        one_line_error(capsys, 2, run_main(BACKENDS["torch"].sample.main,
                                           ["--weights", tmp_path / name, "--out", tmp_path / "g.png"]),
                       "not a")


# -- Ctrl-C, in-process (in processes, with SIGTERM and SIGKILL: test_signals.py) -----------------

@pytest.mark.slow
def test_ctrl_c_stops_after_the_step_with_a_checkpoint_and_resume_continues(fw, tmp_path, monkeypatch, capsys):
    # The signal arrives during step 3 (sent by the step itself: deterministic);
    # the run ends after that step, with its checkpoint.
    b = BACKENDS[fw]
    real_compile = b.train.compile_step

    def compile_step(*state):
        step, calls = real_compile(*state), []

        def signalling(X, Z):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)
            return step(X, Z)
        return signalling

    monkeypatch.setattr(b.train, "compile_step", compile_step)
    out = tmp_path / "run"
    config = tiny(out, epochs=3, log_every=1)
    assert train_cli(fw, config) == 130
    assert "stopped by SIGINT at step 3; checkpoint saved in" in capsys.readouterr().err
    assert verify_checkpoint(out / "checkpoint", fw) == 3 and read_metrics(out)[-1]["step"] == 3
    monkeypatch.undo()
    assert train_cli(fw, config, "--resume", "--max-steps", "5") == 0
    assert [m["step"] for m in read_metrics(out)] == [1, 2, 3, 4, 5]
