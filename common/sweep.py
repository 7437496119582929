"""Hyperparameter experiments side by side: `python -m common.compare --sweep`.

    python -m common.compare --sweep lr=0.0002,0.002 --sweep latent-dim=16,100 \\
        --frameworks torch --data shapes --image-size 32 --epochs 5 --out runs/sweep
    python -m common.compare --sweep lr=0.0002,0.002 --sweep latent-dim=16,100 \\
        --frameworks torch --out runs/sweep --resume     # continue it (or: --resume --out runs/sweep)

This is the chapter's exercises in one command: "experiment with the latent
size, the learning rates, the architecture and the batch size" is
`--sweep latent-dim=16,64,100`, `--sweep lr=0.0002,0.002,0.005` (or
`lr-g=`/`lr-d=` apart), `--sweep variant=d2l,paper --sweep n-g=32,64`,
`--sweep batch-size=64,256`; every other flag of training sets what the cells
share, `--frameworks` which frameworks train each cell.

A `--sweep AXIS=V1,V2,...` names a setting of training (a flag without its
dashes, `latent-dim`, `lr-g`, `batch-size`, `data`, or the field's name,
`latent_dim`, `lr_G`; pytorch/examples' aliases, `nz`, `ngf`, too) and its
values, parsed with the field's type (`none` unsets an optional one, such as
`lr-g` or `max-steps`). The grid is the product of the axes, in the order
given, one cell per combination, named from its settings
(`lr=0.0002_latent-dim=16`). Every cell's config is built and validated before
anything runs: a misuse is one line and exit status 2. Not sweepable, because
they do not change what a run trains: `out` and `resume` (where and how this
command runs), `data-url`, `cache-dir` and `log-every` (where the data comes
from, how often a run logs: every cell would train the same), and `preset`
(a bundle of defaults resolved before the sweep: replacing it afterwards would
change only its name; sweep the settings it sets instead). `device` can be
swept: the same run on CPU and GPU is a speed experiment (examples/s).

Each cell x framework trains in its own process (`common.compare.run_framework`),
one after another, into DIR/<cell>/<framework>/ (its output in
DIR/<cell>/<framework>.log). A failed run is reported and the others still
train. Then:

    DIR/report.md    one row per cell and framework: the swept values, the final
                     quality metric swd (when the runs log it; else the header says
                     so), final loss_D and loss_G, examples/s, wall time, and a
                     link to the last sample grid
    DIR/sweep.png    every cell's last sample grid, titled with its name, and swd
                     against the step, a line per cell (when logged)
    DIR/sweep.json   the base config, the axes, and each run's status, for --resume

Ctrl-C (or SIGTERM) stops the run in training after its current step (it
writes a checkpoint), starts no other, writes the report for what finished
and exits 130 (143). `--resume` skips the runs that are done and continues
the others, each from its own checkpoint; with more `--epochs` (or
`--max-steps`) every run trains on.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import itertools
import json
import math
import re
import sys
from pathlib import Path

from common.cli import given, read_record, resumed_config
from common.config import TrainConfig
from common.data import DataSource
from common.errors import UsageError
from common.options import flag, options, value_type
from common.rundir import SUMMARY, check_output_dir, read_metrics, write_json, write_text
from common.spec import ModelSpec
from common.viz import EPOCH_SAMPLE

RECORD = "sweep.json"
QUALITY = "swd"  # the quality metric a run's metrics.jsonl lines may carry (lower is better)
SETTINGS = (ModelSpec, DataSource, TrainConfig)
# Settings that do not change what a run trains, and why (docs above).
NOT_SWEPT = {
    "out": "each run's directory is DIR/<cell>/<framework>",
    "resume": "--resume continues the whole sweep",
    "preset": "a preset is a bundle of defaults resolved before the sweep; sweep the settings it sets "
              "(lr, epochs, batch-size, variant) instead",
    "data_url": "it changes where the data is downloaded from, not what trains",
    "cache_dir": "it changes where the data is cached, not what trains",
    "log_every": "it changes how often a run logs, not what trains",
}
NONE = "none"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


# -- the axes ---------------------------------------------------------------------


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for cls in SETTINGS for f in options(cls)}


def axis_label(name: str) -> str:
    """A setting's name in a sweep: its flag without the dashes (lr_G -> lr-g, name -> data)."""
    return flag(_fields()[name])[2:]


def _names() -> dict[str, str]:
    """Every spelling of every setting (lower case) -> its field name."""
    names = {}
    for name, field in _fields().items():
        for spelling in (name, flag(field), *field.metadata["aliases"]):
            names[spelling.lstrip("-").lower().replace("_", "-")] = name
    return names


def _parse_value(field: dataclasses.Field, label: str, text: str):
    kind = value_type(field)
    if text.lower() == NONE and field.default is None:
        return None
    if kind is bool:
        if text.lower() in ("true", "yes", "1", "false", "no", "0"):
            return text.lower() in ("true", "yes", "1")
        raise argparse.ArgumentTypeError(f"{label}: {text!r} is not true or false")
    try:
        value = kind(text)
    except ValueError:
        kind_name = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
        raise argparse.ArgumentTypeError(f"{label}: {text!r} is not {kind_name}") from None
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        raise argparse.ArgumentTypeError(f"{label}: {text!r} is not one of {', '.join(map(str, choices))}")
    return value


def sweep_axis(text: str) -> tuple[str, tuple]:
    """argparse's type for --sweep: 'AXIS=V1,V2,...' -> (field name, values)."""
    axis, sep, values = text.partition("=")
    axis = axis.strip()
    if not sep or not axis:
        raise argparse.ArgumentTypeError(f"expected AXIS=V1,V2,... (e.g. lr=0.0002,0.002), got {text!r}")
    names = _names()
    key = axis.lstrip("-").lower().replace("_", "-")
    if key not in names:
        close = difflib.get_close_matches(key, list(names), n=1)
        hint = f"did you mean {close[0]}?" if close else "see --help for the settings of training"
        raise argparse.ArgumentTypeError(f"unknown setting {axis!r} ({hint})")
    name = names[key]
    label = axis_label(name)
    if name in NOT_SWEPT:
        raise argparse.ArgumentTypeError(f"{label} cannot be swept: {NOT_SWEPT[name]}")
    texts = [v.strip() for v in values.split(",")]
    if not values.strip() or any(not v for v in texts):
        raise argparse.ArgumentTypeError(f"{label}: an empty value in {text!r} (expected {label}=V1,V2,...)")
    parsed = tuple(_parse_value(_fields()[name], label, v) for v in texts)
    repeated = [texts[i] for i, v in enumerate(parsed) if v in parsed[:i]]
    if repeated:
        raise argparse.ArgumentTypeError(f"{label}: the value {repeated[0]!r} is given twice")
    return name, parsed


def add_sweep_args(parser) -> None:
    """--sweep AXIS=V1,V2,... (repeatable): the settings a sweep varies."""
    parser.add_argument("--sweep", action="append", type=sweep_axis, metavar="AXIS=V1,V2,...",
                        help="train every combination of these values of a training setting, e.g. "
                             "--sweep lr=0.0002,0.002 --sweep latent-dim=16,100 (repeatable); "
                             "see common/sweep.py")


def sweep_axes(args) -> list[tuple[str, tuple]]:
    """The --sweep axes given; an axis given twice, or also given as a flag, is a UsageError."""
    axes = list(getattr(args, "sweep", None) or [])
    seen = set()
    for name, _ in axes:
        if name in seen:
            raise UsageError(f"--sweep {axis_label(name)} is given twice; give its values once, comma-separated")
        seen.add(name)
    return axes


def wants_sweep(args, out: Path) -> bool:
    """Whether compare should hand this invocation to run_sweep: --sweep given, or
    --resume of a directory that holds a sweep."""
    resuming = bool(getattr(args, "resume", False))
    return bool(getattr(args, "sweep", None)) or (resuming and (Path(out) / RECORD).exists())


# -- the grid ---------------------------------------------------------------------


def value_text(value) -> str:
    """A swept value as the name and the report show it (the shortest exact float)."""
    if value is None:
        return NONE
    return repr(value) if isinstance(value, float) else str(value)


def cell_name(settings: dict) -> str:
    """'lr=0.0002_latent-dim=16': the settings in axis order, safe as a directory name."""
    return "_".join(f"{axis_label(k)}={_UNSAFE.sub('_', value_text(v))}" for k, v in settings.items())


def grid(axes) -> list[dict]:
    """The product of the axes, in the order given (the last axis varies fastest)."""
    names = [name for name, _ in axes]
    return [dict(zip(names, combo)) for combo in itertools.product(*(values for _, values in axes))]


def cells(config: TrainConfig, axes) -> list[tuple[str, TrainConfig]]:
    """(name, config) for each cell of the grid, every config built and validated
    now: a value the settings refuse is a UsageError naming the cell."""
    if not axes:
        raise UsageError("--sweep: no axis given (e.g. --sweep lr=0.0002,0.002)")
    swept = {name for name, _ in axes}
    if "lr" in swept and config.lr_G is not None and config.lr_D is not None and not swept & {"lr_G", "lr_D"}:
        raise UsageError("--sweep lr changes nothing: --lr-g and --lr-d are both given")
    result, names = [], set()
    for settings in grid(axes):
        name = cell_name(settings)
        try:
            cell = config.replace(**settings)
            if cell.tensorboard:  # DIR/<cell>/<framework>, as the runs themselves
                cell = cell.replace(tensorboard=str(Path(cell.tensorboard) / name))
        except UsageError as e:
            raise UsageError(f"--sweep {name.replace('_', ' ')}: {e}") from None
        if name in names:
            raise UsageError(f"--sweep: two cells would share the directory {name}; give distinct values")
        names.add(name)
        result.append((name, cell))
    return result


# -- a run's results --------------------------------------------------------------


def final_samples(run_dir: Path) -> Path | None:
    """The last epoch's sample grid, by epoch number."""
    found = [(int(m.group(1)), p) for p in (run_dir / "samples").glob("epoch_*.png")
             if (m := EPOCH_SAMPLE.fullmatch(p.name))]
    return max(found)[1] if found else None


def read_run(run_dir: Path) -> dict:
    """What a finished run left: summary, metrics, the last samples, the quality metric's curve."""
    summary_path = run_dir / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    metrics = read_metrics(run_dir)
    curve = [(m["step"], m[QUALITY]) for m in metrics if m.get(QUALITY) is not None and "step" in m]
    last = metrics[-1] if metrics else {}
    return {"summary": summary, "metrics": metrics, "samples": final_samples(run_dir), "curve": curve,
            QUALITY: curve[-1][1] if curve else summary.get(QUALITY),
            "loss_D": summary.get("loss_D", last.get("loss_D")), "loss_G": summary.get("loss_G", last.get("loss_G")),
            "examples_per_sec": summary.get("examples_per_sec")}


# -- running it -------------------------------------------------------------------


def _resume_state(args, out: Path, names: list[str]):
    """The saved sweep in `out`: its base config (with the flags given now applied,
    only those a resumed run may change), axes, frameworks and statuses."""
    base, saved_axes, saved = read_record(out / RECORD, "sweep", lambda saved: (
        TrainConfig.from_dict(saved["config"]), [(a["field"], tuple(a["values"])) for a in saved["axes"]],
        {"frameworks": list(saved["frameworks"]), "status": dict(saved.get("status", {}))}))
    axes = sweep_axes(args) or saved_axes
    if [(n, list(v)) for n, v in axes] != [(n, list(v)) for n, v in saved_axes]:
        raise UsageError(f"--resume: {out} holds a sweep of other axes ({_axes_text(saved_axes)}, "
                         f"not {_axes_text(axes)})")
    config = resumed_config(args, base, out, "sweep")
    names = names if getattr(args, "frameworks", None) else saved["frameworks"]
    status = {cell: dict(runs) for cell, runs in saved.get("status", {}).items()}
    if (config.epochs, config.max_steps) != (base.epochs, base.max_steps):  # every run trains on
        status = {cell: {fw: {**st, "status": "resumable"} for fw, st in runs.items()} for cell, runs in status.items()}
    return config, axes, names, status


def _axes_text(axes) -> str:
    return " ".join(f"{axis_label(n)}={','.join(map(value_text, v))}" for n, v in axes)


def _check_not_given_twice(args, axes) -> None:
    given_now = {k: v for cls in SETTINGS for k, v in given(args, cls).items() if v is not None}
    for name, _ in axes:
        if name in given_now:
            label = axis_label(name)
            raise UsageError(f"--{label} {value_text(given_now[name])} and --sweep {label}=... are both given; "
                             f"give one")


def run_sweep(args, config: TrainConfig, out: Path, names: list[str], stop) -> int:
    """Train every cell x framework of the grid, each in its own process, one
    after another, into out/<cell>/<framework>; write out/report.md and
    out/sweep.png. `config` is the base the cells share (on --resume the saved
    one is used, with the flags given now applied); `stop` an active
    common.signals.StopRequests. Returns the exit status: 0 all done, 1 a run
    failed, 128 + the signal when stopped."""
    from common.compare import has_checkpoint, run_framework  # here: compare imports this module

    out = Path(out).expanduser()
    check_output_dir(out)
    if getattr(args, "resume", False):
        config, axes, names, status = _resume_state(args, out, list(names))
    else:
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"--out {out} is not empty; choose another --out, or --resume it")
        axes, status = sweep_axes(args), {}
    _check_not_given_twice(args, axes)
    grid_cells = cells(config, axes)  # every cell validated before anything runs
    settings = dict(zip((n for n, _ in grid_cells), grid(axes)))

    out.mkdir(parents=True, exist_ok=True)
    record = lambda: write_json(out / RECORD, {
        "config": config.to_dict(), "axes": [{"field": n, "values": list(v)} for n, v in axes],
        "frameworks": names, "status": status})
    results, total = [], len(grid_cells) * len(names)
    for cell, cell_config in grid_cells:
        for fw in names:
            saved = status.get(cell, {}).get(fw, {})
            row = {"cell": cell, "settings": settings[cell], "framework": fw}
            run_dir = out / cell / fw
            if saved.get("status") == "done":
                row.update(ok=True, status="done", wall_s=saved.get("wall_s"), **read_run(run_dir))
            elif stop.requested is not None:
                row.update(ok=False, status="not started",
                           error=f"{cell}: {fw}: not started (interrupted; continue with --resume)")
            else:
                print(f"[{len(results) + 1}/{total}] training {cell} with {fw} ...", file=sys.stderr, flush=True)
                (out / cell).mkdir(parents=True, exist_ok=True)
                continuing = has_checkpoint(run_dir)
                result = run_framework(fw, cell_config, out / cell, stop)
                wall = (result.get("wall_s") or 0.0) + ((saved.get("wall_s") or 0.0) if continuing else 0.0)
                row.update(ok=bool(result.get("ok")), status=result.get("status", "failed"), wall_s=wall)
                if row["ok"]:
                    row.update(read_run(run_dir))
                else:
                    row["error"] = f"{cell}: {result.get('error') or 'failed'}"
            results.append(row)
            status.setdefault(cell, {})[fw] = {"status": row["status"], "wall_s": row.get("wall_s")}
            record()

    text = report(results, config, axes, names)
    write_text(out / "report.md", text)
    if any(r["ok"] for r in results):
        plot(results, out / "sweep.png")
    print(text.replace("\n![sweep](sweep.png)\n", f"\nwritten: {out / 'report.md'}, {out / 'sweep.png'}\n"))
    if stop.requested is not None:
        return 128 + stop.requested
    return 0 if all(r["ok"] for r in results) else 1


# -- the report -------------------------------------------------------------------


def _number(value, digits: str) -> str:
    return "—" if value is None or not isinstance(value, (int, float)) else format(value, digits)


def report(results: list[dict], config: TrainConfig, axes, names: list[str]) -> str:
    """report.md: one row per cell and framework."""
    has_quality = any(r["ok"] and r.get(QUALITY) is not None for r in results)
    labels = [axis_label(n) for n, _ in axes]
    header = [*labels, "framework", *([QUALITY] if has_quality else []), "final loss_D", "final loss_G",
              "examples/s", "wall time (s)", "samples"]
    rows = []
    for r in results:
        values = [value_text(r["settings"][n]) for n, _ in axes] + [r["framework"]]
        wall = _number(r.get("wall_s"), ".1f")
        if not r["ok"]:
            rows.append(values + [r["status"]] + ["—"] * (len(header) - len(values) - 3) + [wall, "—"])
            continue
        samples = r.get("samples")
        link = f"[{samples.stem}]({samples.relative_to(samples.parents[3]).as_posix()})" if samples else "—"
        rows.append(values + ([_number(r.get(QUALITY), ".2f")] if has_quality else [])
                    + [_number(r.get("loss_D"), ".4f"), _number(r.get("loss_G"), ".4f"),
                       _number(r.get("examples_per_sec"), ".1f"), wall, link])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    spec, swept = config.spec, {n for n, _ in axes}
    shared = [f"data `{config.data.name}`", f"{spec.image_size}x{spec.image_size}",
              f"latent {spec.latent_dim}", f"widths {spec.n_G}/{spec.n_D}", f"variant {spec.variant}",
              f"batch {config.batch_size}", f"lr {config.lr}", f"epochs {config.epochs}", f"seed {config.seed}"]
    keys = ["name", "image_size", "latent_dim", ("n_G", "n_D"), "variant", "batch_size", ("lr", "lr_G", "lr_D"),
            "epochs", "seed"]
    shared = [text for text, key in zip(shared, keys)
              if not (set(key) if isinstance(key, tuple) else {key}) & swept]
    if config.max_steps and "max_steps" not in swept:
        shared.append(f"max steps {config.max_steps}")
    cells_count = len({r["cell"] for r in results})
    if has_quality:
        quality = (f"Quality: `{QUALITY}`, the sliced Wasserstein distance to the data (x 1e3; lower is better), "
                   f"from each run's last metrics line that has it.")
    else:
        quality = (f"No run logged the quality metric `{QUALITY}`: the final losses stand in for it, and a GAN's "
                   f"losses do not measure how good its samples are; look at them.")
    text = (f"# DCGAN sweep: {cells_count} settings x {', '.join(names)}\n\n"
            f"Swept: {_axes_text(axes)}. Shared: {', '.join(shared)}.\n\n{quality}\n\n"
            + "\n".join(lines) + "\n")
    scored = [r for r in results if r["ok"] and r.get(QUALITY) is not None]
    if scored:
        best = min(scored, key=lambda r: r[QUALITY])
        text += f"\nLowest {QUALITY}: {best['cell']} ({best['framework']}), {best[QUALITY]:.2f}\n"
    errors = [r["error"] for r in results if not r["ok"]]
    if errors:
        text += "\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    text += "\n![sweep](sweep.png)\n"
    return text


def plot(results: list[dict], path: Path) -> None:
    """sweep.png: every finished run's last sample grid, titled with its cell
    (and framework); below, swd against the step, a line per run, when logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    from common.files import atomic_write

    done = [r for r in results if r["ok"]]
    several = len({r["framework"] for r in results}) > 1
    title = lambda r: r["cell"].replace("_", " ") + (f" ({r['framework']})" if several else "")
    curves = [r for r in done if r.get("curve")]
    cols = min(4, max(1, len(done)))
    rows = math.ceil(len(done) / cols)
    fig = plt.figure(figsize=(4 * cols, 2.2 * rows + (3 if curves else 0)))
    grid_spec = fig.add_gridspec(rows + (1 if curves else 0), cols,
                                 height_ratios=[1] * rows + ([1.5] if curves else []))
    for i, r in enumerate(done):
        ax = fig.add_subplot(grid_spec[i // cols, i % cols])
        if r.get("samples"):
            with Image.open(r["samples"]) as img:
                ax.imshow(np.asarray(img.convert("RGB")))
        ax.set_title(title(r), fontsize=9)
        ax.axis("off")
    if curves:
        ax = fig.add_subplot(grid_spec[rows, :])
        for r in curves:
            steps, values = zip(*r["curve"])
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=title(r))
        ax.set_xlabel("step")
        ax.set_ylabel(f"{QUALITY} (lower is better)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)
