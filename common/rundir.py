"""A run's directory (docs/design.md §9): what may be opened, and the only
code that writes a run's records.

    config.json            the resolved config, framework, device and library versions
    metrics.jsonl          one line per epoch (and per --log-every N steps)
    samples/epoch_NNN.png  a 3x7 grid from a fixed noise batch
    losses.png             the training curves
    checkpoint/            framework-native state + progress.json (the step)
    generator.npz          canonical weights of G
    summary.json           the last invocation's closing numbers

Every file is written atomically; the checkpoint directory is swapped whole,
so an interruption never leaves a half-written one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np

from common.config import TrainConfig
from common.errors import UsageError
from common.files import atomic_write

CONFIG, METRICS, SUMMARY, CHECKPOINT, PROGRESS = (
    "config.json", "metrics.jsonl", "summary.json", "checkpoint", "progress.json")


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: Path, text: str) -> None:
    with atomic_write(path, "w") as f:
        f.write(text)


def read_metrics(out) -> list[dict]:
    path = Path(out) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def python_versions() -> dict:
    return {"python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}


class RunDir:
    """The directory `config.out`, checked by open() before anything is written."""

    def __init__(self, path: Path, framework: str, start_step: int):
        self.path, self.framework, self.start_step = path, framework, start_step

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT

    @classmethod
    def open(cls, config: TrainConfig, framework: str) -> "RunDir":
        """A directory that holds another run is refused unless --resume is
        given, and --resume needs a complete checkpoint of the same config and
        framework. Nothing is written here."""
        out = Path(config.out).expanduser()
        start_step = 0
        saved = out / CONFIG
        if saved.exists():
            record = json.loads(saved.read_text())
            previous = TrainConfig.from_dict(record["config"])
            if not config.resume:
                diffs = config.differences(previous, ignore=("resume",))
                what = f"a run with a different config ({'; '.join(diffs)})" if diffs else "a run already"
                raise UsageError(f"{out} holds {what}; pass --resume to continue it, or choose another --out")
            owner = record.get("framework")
            if owner != framework:
                raise UsageError(f"--resume: {out} holds a {owner} run; continue it with "
                                 f"python -m dcgan_{owner}.train, not dcgan_{framework}")
            diffs = config.differences(previous)
            if diffs:
                raise UsageError(f"--resume: {out} holds a run with another config ({'; '.join(diffs)})")
            progress_file = out / CHECKPOINT / PROGRESS
            if not progress_file.exists():
                raise UsageError(f"--resume: {out} has no complete checkpoint")
            start_step = json.loads(progress_file.read_text())["step"]
        elif config.resume:
            raise UsageError(f"--resume: {out} holds no run to resume")
        elif out.exists() and any(out.iterdir()):
            raise UsageError(f"--out {out} exists and is not a run directory; choose another --out")
        return cls(out, framework, start_step)

    # -- records -------------------------------------------------------------------

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
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(line) + "\n")

    def write_summary(self, summary: dict) -> None:
        write_json(self.path / SUMMARY, summary)

    def write_checkpoint(self, save_checkpoint, step: int) -> None:
        """save_checkpoint(dir) writes the framework's state into a fresh
        directory; progress.json goes in last; then the directory is swapped in
        for the old checkpoint."""
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", dir=self.path))
        try:
            save_checkpoint(tmp)
            write_json(tmp / PROGRESS, {"step": step, "framework": self.framework})
            old = self.path / (CHECKPOINT + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.checkpoint_dir.exists():
                os.replace(self.checkpoint_dir, old)
            os.replace(tmp, self.checkpoint_dir)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
