"""A run's directory (docs/design.md §9): what may be opened, and the only
code that writes a run's records.

    config.json            the resolved config, framework, device and library versions
    metrics.jsonl          one line per epoch (and per --log-every N steps)
    samples/epoch_NNN.png  a 3x7 grid from a fixed noise batch
    losses.png             the dashboard: losses, D(x) and D(G(z)), SWD
    checkpoint/            framework-native state + progress.json (step, format, checksums)
    checkpoint.previous/   the checkpoint before it, kept as a fallback
    generator.npz          canonical weights of G
    discriminator.npz      canonical weights of D
    summary.json           the last invocation's closing numbers

Every check (the directory, the config, the framework, the checkpoint's
integrity) happens in `RunDir.open`, before anything is written. Every file
is written atomically, and a checkpoint is written into a fresh directory and
swapped in whole (the old one becomes checkpoint.previous), so a process
killed at any moment, SIGKILL included, leaves a complete checkpoint to
resume from. A directory holding a run that never reached its first
checkpoint (killed early) holds nothing to resume: the same command starts it
afresh.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from common.config import TrainConfig
from common.errors import CheckpointError, DCGANError, UsageError
from common.files import atomic_write

CONFIG, METRICS, SUMMARY, PROGRESS = "config.json", "metrics.jsonl", "summary.json", "progress.json"
CHECKPOINT, PREVIOUS = "checkpoint", "checkpoint.previous"
CHECKPOINT_FORMAT = 2  # progress.json: step, framework, format and each file's SHA-256


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def read_metrics(out) -> list[dict]:
    path = Path(out) / METRICS
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:  # a line cut short by a kill: the lines before it stand
            break
    return lines


def python_versions() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checkpoint(directory: Path, framework: str) -> int:
    """The step of a complete, intact checkpoint in `directory`; CheckpointError saying what is wrong."""
    progress = directory / PROGRESS
    try:
        record = json.loads(progress.read_text())
        step, files = int(record["step"]), dict(record["files"])
        version, owner = record.get("format"), record.get("framework")
    except FileNotFoundError:
        raise CheckpointError(f"{directory} is incomplete (no {PROGRESS})") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{progress} is damaged ({type(e).__name__})") from None
    if version != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{directory} has checkpoint format {version}, this version reads {CHECKPOINT_FORMAT}")
    if owner != framework:
        raise CheckpointError(f"{directory} holds a {owner} checkpoint, not {framework}")
    for name, digest in files.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        if file_sha256(path) != digest:
            raise CheckpointError(f"{path} is damaged (its SHA-256 does not match progress.json)")
    return step


class RunDir:
    """The directory `config.out`, checked by open() before anything is written."""

    def __init__(self, path: Path, framework: str, start_step: int, checkpoint_dir: Path, fresh: bool):
        self.path, self.framework, self.start_step = path, framework, start_step
        self.checkpoint_dir = checkpoint_dir  # the one to resume from
        self.checkpoint_step = None if fresh else start_step  # of the last complete checkpoint
        self.fresh = fresh  # nothing of an earlier run to keep

    @classmethod
    def open(cls, config: TrainConfig, framework: str) -> "RunDir":
        """A directory that holds another run is refused unless --resume is
        given; --resume needs the same config and framework and an intact
        checkpoint. Nothing is written here."""
        out = Path(config.out).expanduser()
        check_output_dir(out)
        saved = out / CONFIG
        if not saved.exists():
            if config.resume:
                raise UsageError(f"--resume: {out} holds no run to resume")
            if out.exists() and any(p for p in out.iterdir() if not p.name.startswith(".")):
                raise UsageError(f"--out {out} exists and is not a run directory; choose another --out")
            return cls(out, framework, 0, out / CHECKPOINT, fresh=True)
        try:
            record = json.loads(saved.read_text())
            previous = TrainConfig.from_dict(record["config"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(f"{saved} is not a readable run record ({type(e).__name__}: {e}); "
                             f"choose another --out") from None
        owner = record.get("framework")
        if owner != framework:
            raise UsageError(f"{out} holds a {owner} run; continue it with python -m dcgan_{owner}.train, "
                             f"not dcgan_{framework}")
        if config.resume:
            diffs = config.differences(previous)
            if diffs:
                raise UsageError(f"--resume: {out} holds a run with another config ({'; '.join(diffs)})")
        else:
            diffs = config.differences(previous, ignore=("resume",))
            if diffs:
                raise UsageError(f"{out} holds a run with a different config ({'; '.join(diffs)}); "
                                 f"pass --resume to continue it, or choose another --out")
        candidates = [out / CHECKPOINT, out / PREVIOUS]
        if not any(c.exists() for c in candidates):
            finished = [name for name in ("generator.npz", SUMMARY) if (out / name).exists()]
            if finished:  # it trained, and its checkpoints were removed: starting afresh would overwrite it
                raise UsageError(f"{out} holds a run that has no checkpoint left but has {' and '.join(finished)}; "
                                 f"nothing to resume and nothing to overwrite: choose another --out")
            # Stopped before its first checkpoint: nothing to resume; the same config starts afresh.
            print(f"note: {out} holds a run stopped before its first checkpoint; starting it afresh",
                  file=sys.stderr)
            return cls(out, framework, 0, out / CHECKPOINT, fresh=True)
        if not config.resume:
            raise UsageError(f"{out} holds a run already; pass --resume to continue it, or choose another --out")
        problems = []
        for directory in candidates:
            if not directory.exists():
                continue
            try:
                step = verify_checkpoint(directory, framework)
            except CheckpointError as e:
                problems.append(str(e))
                continue
            if problems:
                print(f"warning: {problems[0]}; resuming from {directory} (step {step})", file=sys.stderr)
            return cls(out, framework, step, directory, fresh=False)
        raise CheckpointError(f"--resume: {'; '.join(problems)}; no intact checkpoint is left to resume "
                              f"from: train again with another --out")

    # -- records -------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the directory and clear what a killed run may have left: temporary
        checkpoint directories; and for a fresh start, an earlier start's records."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--out {self.path}: {e.strerror}") from None
        for tmp in self.path.glob(".checkpoint-*"):
            shutil.rmtree(tmp, ignore_errors=True)
        if self.fresh:
            (self.path / METRICS).unlink(missing_ok=True)

    def write_config(self, config: TrainConfig, device: str, params: dict, versions: dict,
                     dataset: dict) -> None:
        write_json(self.path / CONFIG, {
            "config": config.to_dict(), "framework": self.framework, "device": device,
            "params": params, "versions": {**python_versions(), **versions}, "dataset": dataset})

    def truncate_metrics(self, step: int) -> None:
        """Drop metric lines written after the checkpoint being resumed."""
        kept = [m for m in read_metrics(self.path) if m["step"] <= step]
        write_text(self.path / METRICS, "".join(json.dumps(m) + "\n" for m in kept))

    def append_metrics(self, line: dict) -> None:
        try:
            with open(self.path / METRICS, "a") as f:
                f.write(json.dumps(line) + "\n")
        except OSError as e:
            raise DCGANError(f"cannot write {self.path / METRICS}: {e.strerror}") from None

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY, summary)

    def write_checkpoint(self, save_checkpoint, step: int) -> None:
        """save_checkpoint(dir) writes the framework's state into a fresh
        directory; progress.json (with each file's SHA-256) goes in last; then
        the directory is swapped in: the current checkpoint becomes
        checkpoint.previous, the new one checkpoint. A failure (a full disk)
        leaves both as they were."""
        current, previous = self.path / CHECKPOINT, self.path / PREVIOUS
        tmp = None
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=self.path))
            save_checkpoint(tmp)
            files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            write_json(tmp / PROGRESS, {"format": CHECKPOINT_FORMAT, "step": step, "framework": self.framework,
                                        "files": files})
            if current.exists():
                shutil.rmtree(previous, ignore_errors=True)
                os.replace(current, previous)
            os.replace(tmp, current)
        except Exception as e:  # the framework's own error types, or OSError
            kept = next((f"the checkpoint in {d} is kept" for d in (current, previous) if d.exists()),
                        "there is no earlier checkpoint")
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0][:200]
            raise CheckpointError(f"cannot write the checkpoint of step {step} ({why}); {kept}") from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self.checkpoint_dir, self.checkpoint_step = current, step


def check_output_dir(out: Path) -> None:
    """--out must be a directory this process can write, or a path where one can be made."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory; choose another --out")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"--out {out}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {existing} is not writable ({os.strerror(errno.EACCES)})")
    try:
        os.statvfs(existing)
    except OSError:
        return
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        raise UsageError(f"--out {out}: {existing} is on a read-only file system")
