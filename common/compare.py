"""Train the same DCGAN in several frameworks, side by side, and report.

    python -m common.compare --frameworks torch,tf,mx [training flags...] --out DIR
    python -m common.compare --resume --out DIR      # continue an interrupted comparison
    python -m common.compare --sweep lr=0.0002,0.002 --sweep latent-dim=16,100 --frameworks torch ...
                                                     # a grid of settings (common.sweep)

Each framework trains in its own process (`python -m dcgan_<fw>.train`) with
the same resolved config and seed, into DIR/<fw>/; its output goes to
DIR/<fw>.log. A framework that crashes is reported and the others still run.
Then:

    DIR/compare.png    loss curves overlaid, the final sample grids, examples/sec
    DIR/report.md      one row per framework: version, device, parameters of G and D,
                       examples/sec, final losses, wall time, and the largest
                       per-step loss difference from the other frameworks
    DIR/compare.json   the config and each framework's status, for --resume

Ctrl-C (or SIGTERM) stops the framework in training after its current step
(it writes a checkpoint), starts no other, and writes the report for what
finished, exiting 130 (143);
`--resume` then trains what did not finish, each from its own checkpoint.
Per-step losses are logged at every step (--log-every 1 unless given).
"""

from __future__ import annotations

import json
import subprocess
import signal
import sys
import time
from pathlib import Path

import numpy as np

from common.backends import FRAMEWORKS, install_hint, is_installed, package, parse_frameworks, quiet_env
from common.cli import (ArgumentParser, add_data_args, add_model_args, add_train_args, config_argv,
                        config_from_args, given, run_cli)
from common.config import TrainConfig
from common.data import DataSource
from common.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UsageError
from common.rundir import CHECKPOINT, PREVIOUS, PROGRESS, check_output_dir, read_metrics, write_json, write_text
from common.signals import StopRequests
from common.spec import ModelSpec
from common.sweep import add_sweep_args, run_sweep, wants_sweep

RECORD = "compare.json"


def child_argv(name: str, config: TrainConfig, run_dir: Path) -> list[str]:
    """The flags of one framework's `python -m dcgan_<fw>.train` process."""
    argv = config_argv(config) + ["--out", str(run_dir), "--no-progress"]
    if config.tensorboard:  # one sub-directory each, so TensorBoard shows the frameworks as separate runs
        argv += ["--tensorboard", str(Path(config.tensorboard) / name)]
    if (run_dir / CHECKPOINT / PROGRESS).exists() or (run_dir / PREVIOUS).exists():
        argv.append("--resume")  # from the last checkpoint, or the one before if killed while swapping
    return argv


def run_framework(name: str, config: TrainConfig, out: Path, stop: StopRequests | None = None) -> dict:
    """Train one framework in its own process (resuming its checkpoint if
    there is one); what it left behind, or why it failed. A stop request is
    passed on to the child, once: it finishes its step and checkpoints."""
    result = {"framework": name, "ok": False, "status": "failed"}
    if not is_installed(name):
        result["error"] = install_hint(name)
        return result
    run_dir = out / name
    argv = child_argv(name, config, run_dir)
    start = time.perf_counter()
    with open(out / f"{name}.log", "a") as log:
        # Its own session: a Ctrl-C at the terminal reaches this process only,
        # which passes it on exactly once (a second would stop the child at once).
        child = subprocess.Popen([sys.executable, "-m", f"{package(name)}.train", *argv], stdout=log,
                                 stderr=subprocess.STDOUT, env=quiet_env(), start_new_session=True)
        passed_on = False
        try:
            while child.poll() is None:
                if stop is not None and stop.requested is not None and not passed_on:
                    child.send_signal(stop.requested)  # SIGINT or SIGTERM, as this process got it
                    passed_on = True
                try:
                    child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt as e:  # a second signal: the child stops at once too (its last checkpoint stands)
            child.send_signal(getattr(e, "signum", signal.SIGINT))
            child.wait()
            raise
    result["wall_s"] = time.perf_counter() - start
    if child.returncode in (EXIT_INTERRUPTED, EXIT_TERMINATED):
        result.update(status="interrupted", error=f"{name}: interrupted; checkpoint kept (continue with --resume)")
        return result
    if child.returncode != 0 or not (run_dir / "summary.json").exists():
        lines = (out / f"{name}.log").read_text(errors="replace").strip().splitlines()
        result["error"] = f"{name}: failed (exit status {child.returncode}): {lines[-1] if lines else 'no output'}"
        return result
    return {**result, **collect(name, run_dir), "ok": True, "status": "done"}


def collect(name: str, run_dir: Path) -> dict:
    """What a finished run left: versions, device, sizes, summary, metrics, last samples."""
    saved = json.loads((run_dir / "config.json").read_text())
    samples = sorted((run_dir / "samples").glob("epoch_*.png"))
    return {"version": saved["versions"].get(FRAMEWORKS[name].version_key, "?"), "device": saved["device"],
            "params": saved["params"], "summary": json.loads((run_dir / "summary.json").read_text()),
            "metrics": read_metrics(run_dir), "samples": samples[-1] if samples else None}


def largest_step_differences(results: list[dict]) -> dict[str, float]:
    """For each framework, the largest |loss difference| at a common step with any other."""
    losses = {r["framework"]: {m["step"]: (m["loss_D"], m["loss_G"]) for m in r["metrics"]}
              for r in results if r["ok"]}
    worst = {}
    for name, mine in losses.items():
        diffs = [abs(a - b) for other, theirs in losses.items() if other != name
                 for step in mine.keys() & theirs.keys() for a, b in zip(mine[step], theirs[step])]
        worst[name] = max(diffs) if diffs else float("nan")
    return worst


def report(results: list[dict], config) -> str:
    worst = largest_step_differences(results)
    header = ["framework", "version", "device", "params G", "params D", "examples/sec", "final loss_D",
              "final loss_G", "wall time (s)", "max per-step loss diff"]
    rows = []
    for r in results:
        if not r["ok"]:
            rows.append([r["framework"], "—", "—", "—", "—", "—", "—", "—", f"{r.get('wall_s') or 0:.1f}",
                         r["status"]])
            continue
        s = r["summary"]
        rows.append([r["framework"], r["version"], r["device"], f"{r['params']['G']:,}", f"{r['params']['D']:,}",
                     f"{s['examples_per_sec']:.1f}", f"{s['loss_D']:.4f}", f"{s['loss_G']:.4f}",
                     f"{r['wall_s']:.1f}", f"{worst[r['framework']]:.2e}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    spec = config.spec
    text = (f"# DCGAN: {', '.join(r['framework'] for r in results)} side by side\n\n"
            f"data `{config.data.name}`, {spec.image_size}x{spec.image_size}, widths {spec.n_G}/{spec.n_D}, "
            f"batch {config.batch_size}, lr {config.lr}, epochs {config.epochs}"
            + (f", max steps {config.max_steps}" if config.max_steps else "") + f", seed {config.seed}\n\n"
            + "\n".join(lines) + "\n")
    errors = [r["error"] for r in results if not r["ok"]]
    if errors:
        text += "\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    text += "\n![comparison](compare.png)\n"
    return text


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    done = [r for r in results if r["ok"]]
    fig = plt.figure(figsize=(4 * max(3, len(done)), 9))
    grid = fig.add_gridspec(3, max(2, len(done)), height_ratios=[1.2, 1, 0.8])
    for col, key in enumerate(("loss_D", "loss_G")):
        ax = fig.add_subplot(grid[0, col * max(2, len(done)) // 2:(col + 1) * max(2, len(done)) // 2])
        for r in done:
            ax.plot([m["step"] for m in r["metrics"]], [m[key] for m in r["metrics"]], label=r["framework"])
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.legend()
    for col, r in enumerate(done):
        ax = fig.add_subplot(grid[1, col])
        if r["samples"]:
            with Image.open(r["samples"]) as img:
                ax.imshow(np.asarray(img.convert("RGB")))
        ax.set_title(f"{r['framework']}: final samples")
        ax.axis("off")
    ax = fig.add_subplot(grid[2, :])
    ax.barh([r["framework"] for r in done], [r["summary"]["examples_per_sec"] for r in done], color="tab:gray")
    ax.set_xlabel("examples/sec")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m common.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frameworks", help="comma-separated (default torch,tf,mx)")
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, "compare")
    add_sweep_args(parser)

    def run(argv):
        args = parser.parse_args(argv)
        out = Path(args.out).expanduser()
        check_output_dir(out)
        if wants_sweep(args, out):  # a grid of settings instead of the frameworks side by side
            names = frameworks_from(args.frameworks or "torch,tf,mx")
            if args.log_every is None:
                args.log_every = 1
            args.out = str(out / "_")
            with StopRequests() as stop:
                return run_sweep(args, config_from_args(args), out, names, stop)
        if args.resume:
            config, names, statuses = resume_state(args, out)
        else:
            if out.exists() and any(out.iterdir()):
                raise UsageError(f"--out {out} is not empty; choose another --out, or --resume it")
            names = frameworks_from(args.frameworks or "torch,tf,mx")
            if args.log_every is None:
                args.log_every = 1
            args.out = str(out / "_")  # each framework gets out/<name>
            config = config_from_args(args)
            statuses = {}
        out.mkdir(parents=True, exist_ok=True)
        results = []
        with StopRequests() as stop:
            for name in names:
                if statuses.get(name, {}).get("status") == "done":
                    results.append({"framework": name, "ok": True, "status": "done",
                                    "wall_s": statuses[name]["wall_s"], **collect(name, out / name)})
                elif stop.requested is not None:
                    results.append({"framework": name, "ok": False, "status": "not started",
                                    "error": f"{name}: not started (interrupted; continue with --resume)"})
                else:
                    print(f"training {name} ...", file=sys.stderr, flush=True)
                    results.append(run_framework(name, config, out, stop))
                statuses[name] = {k: results[-1].get(k) for k in ("status", "wall_s")}
                write_json(out / RECORD, {"config": config.to_dict(), "frameworks": names, "status": statuses})
        text = report(results, config)
        write_text(out / "report.md", text)
        if any(r["ok"] for r in results):
            plot(results, out / "compare.png")
        print(text.replace("\n![comparison](compare.png)\n", f"\nwritten: {out / 'report.md'}, {out / 'compare.png'}"))
        if stop.requested is not None:
            return 128 + stop.requested
        return 0 if all(r["ok"] for r in results) else 1

    return run_cli(parser.prog, run, argv)


def frameworks_from(text: str) -> list[str]:
    try:
        return parse_frameworks(text)
    except ValueError as e:
        raise UsageError(str(e)) from None


def resume_state(args, out: Path):
    """The saved comparison in `out`, with any flag given now applied (only
    those a resumed run may change)."""
    record = out / RECORD
    if not record.exists():
        raise UsageError(f"--resume: {out} holds no comparison ({RECORD} is missing)")
    try:
        saved = json.loads(record.read_text())
        base = TrainConfig.from_dict(saved["config"])
        saved_names = list(saved["frameworks"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--resume: {record} is not a readable comparison record ({type(e).__name__}: {e}); "
                         f"start a new comparison with another --out") from None
    changes = {k: v for cls in (ModelSpec, DataSource, TrainConfig) for k, v in given(args, cls).items()
               if v is not None and k not in ("out", "resume")}
    config = base.replace(**changes)
    diffs = config.differences(base)
    if diffs:
        raise UsageError(f"--resume: {out} holds a comparison with another config ({'; '.join(diffs)})")
    names = frameworks_from(args.frameworks) if args.frameworks else saved_names
    statuses = saved.get("status", {})
    if config != base:  # more epochs or steps: every framework trains on
        statuses = {n: {**st, "status": "resumable"} for n, st in statuses.items()}
    return config, names, statuses


if __name__ == "__main__":
    raise SystemExit(main())
