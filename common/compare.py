"""Train the same DCGAN in several frameworks, side by side, and report.

    python -m common.compare --frameworks torch,tf,mx [training flags...] --out DIR
    python -m common.compare --resume --out DIR      # continue an interrupted comparison
    python -m common.compare --sweep lr=0.0002,0.002 --sweep latent-dim=16,100 --frameworks torch ...
                                                     # a grid of settings (common.sweep)

Each framework trains in its own process (`python -m dcgan_<fw>.train`) with
the same resolved config and seed, into DIR/<fw>/; its output goes to
DIR/<fw>.log. A framework that crashes is reported and the others still run.
Then:

    DIR/compare.png    loss curves (smoothed) and SWD curves overlaid, real images
                       beside the final sample grids, examples/sec
    DIR/report.md      one row per framework: version, device, parameters of G and D,
                       examples/sec, final losses, final SWD (and for shapes the judge's
                       share recognised), wall time, and the loss difference from the
                       other frameworks at the first step (where they must agree)
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
                        config_from_args, read_record, resumed_config, run_cli)
from common.config import TrainConfig
from common.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, UsageError
from common.run import BF16_WORDS, cpu_model, native_bf16
from common.rundir import CHECKPOINT, PREVIOUS, PROGRESS, check_output_dir, read_metrics, write_json, write_text
from common.signals import StopRequests
from common.sweep import add_sweep_args, run_sweep, wants_sweep

RECORD = "compare.json"


def child_argv(name: str, config: TrainConfig, run_dir: Path) -> list[str]:
    """The flags of one framework's `python -m dcgan_<fw>.train` process."""
    argv = config_argv(config) + ["--out", str(run_dir), "--no-progress"]
    if config.tensorboard:  # one sub-directory each, so TensorBoard shows the frameworks as separate runs
        argv += ["--tensorboard", str(Path(config.tensorboard) / name)]
    if has_checkpoint(run_dir):
        argv.append("--resume")
    return argv


def has_checkpoint(run_dir: Path) -> bool:
    """Whether a run can be continued: its last checkpoint, or the one before if killed while swapping."""
    return (run_dir / CHECKPOINT / PROGRESS).exists() or (run_dir / PREVIOUS).exists()


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


def first_step_differences(results: list[dict]) -> tuple[int | None, dict[str, float]]:
    """The first step every finished framework logged, and for each framework the largest
    |loss difference| there from any other. The same weights, batch and noise give the same
    step-1 losses; after it, float32 runs drift apart chaotically (README, Parity), so a
    difference at a later step says nothing about whether the frameworks agree."""
    losses = {r["framework"]: {m["step"]: (m["loss_D"], m["loss_G"]) for m in r["metrics"]}
              for r in results if r["ok"]}
    common = set.intersection(*(set(v) for v in losses.values())) if losses else set()
    if not common:
        return None, {name: float("nan") for name in losses}
    step = min(common)
    worst = {name: max((abs(a - b) for other, theirs in losses.items() if other != name
                        for a, b in zip(mine[step], theirs[step])), default=float("nan"))
             for name, mine in losses.items()}
    return step, worst


def final(r: dict, key: str):
    """The last value of a metric a run logged (swd, judge_recognised), or None."""
    values = [m[key] for m in r.get("metrics", []) if m.get(key) is not None]
    return values[-1] if values else None


def report(results: list[dict], config) -> str:
    step, worst = first_step_differences(results)
    quality = any(final(r, "swd") is not None for r in results if r["ok"])
    judged = any(final(r, "judge_recognised") is not None for r in results if r["ok"])
    header = ["framework", "version", "device", "params G", "params D", "examples/sec", "final loss_D",
              "final loss_G", *(["final SWD"] if quality else []), *(["judge: recognised"] if judged else []),
              "wall time (s)", f"step-{step or 1} loss diff"]
    rows = []
    for r in results:
        if not r["ok"]:
            rows.append([r["framework"]] + ["—"] * (len(header) - 3) + [f"{r.get('wall_s') or 0:.1f}", r["status"]])
            continue
        s, swd, recognised = r["summary"], final(r, "swd"), final(r, "judge_recognised")
        rows.append([r["framework"], r["version"], r["device"], f"{r['params']['G']:,}", f"{r['params']['D']:,}",
                     f"{s['examples_per_sec']:.1f}", f"{s['loss_D']:.4f}", f"{s['loss_G']:.4f}",
                     *([f"{swd:.1f}" if swd is not None else "—"] if quality else []),
                     *([f"{recognised:.0%}" if recognised is not None else "—"] if judged else []),
                     f"{r['wall_s']:.1f}", f"{worst[r['framework']]:.2e}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    spec = config.spec
    lr_G, lr_D = config.learning_rates
    lr = f"lr {lr_G}" if lr_G == lr_D else f"lr G {lr_G}, D {lr_D}"
    text = (f"# DCGAN: {', '.join(r['framework'] for r in results)} side by side\n\n"
            f"data `{config.data.name}`, {spec.image_size}x{spec.image_size}, widths {spec.n_G}/{spec.n_D}, "
            f"batch {config.batch_size}, {lr}, epochs {config.epochs}"
            + (f", max steps {config.max_steps}" if config.max_steps else "") + f", seed {config.seed}; "
            f"CPU {cpu_model()} (bf16 {BF16_WORDS[native_bf16()]})\n\n"
            + "\n".join(lines) + "\n\n"
            + ("SWD: the sliced Wasserstein distance between G's samples and the data (x 1e3, lower is better; "
               "about 20 between two sets of real images). " if quality else "")
            + ("Judge: the share of samples a classifier of the built-in shapes recognises with confidence. "
               if judged else "")
            + f"The loss difference is at step {step or 1}, where the same weights, batch and noise give the "
              f"same losses; after it float32 runs drift apart chaotically, and `python -m common.parity` "
              f"shows the exact float64 agreement.\n")
    errors = [r["error"] for r in results if not r["ok"]]
    if errors:
        text += "\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    text += health(results)
    text += "\n![comparison](compare.png)\n"
    return text


def health(results: list[dict]) -> str:
    """The report's training-health lines: each finished framework's warnings (summary.json's,
    README "Training health, in words"), or one line saying there were none."""
    if not any(r["ok"] for r in results):
        return ""
    warned = [(r["framework"], w) for r in results if r["ok"] for w in r["summary"].get("warnings") or []]
    if not warned:
        return "\nTraining health: no warning in any framework.\n"
    return ("\nTraining health:\n\n"
            + "".join(f"- {name}, step {w['step']}: {w['message']}\n" for name, w in warned))


def real_images(config, count: int = 21):
    """The first `count` images of the run's data, uint8 NHWC (None if they cannot be had)."""
    try:
        return config.data.load(config.spec.image_size, config.spec.channels, config.seed, progress=False)[:count]
    except Exception:  # the report still shows the frameworks' samples
        return None


def plot(results: list[dict], path: Path, real=None) -> None:
    """compare.png: the losses (smoothed) and SWD against the step, a line per
    framework; real images beside each framework's final samples; examples/sec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from common.callbacks import SAMPLE_COLS, SAMPLE_ROWS, plot_smoothed
    from common.viz import grid as image_grid

    done = [r for r in results if r["ok"]]
    quality = any(final(r, "swd") is not None for r in done)
    panels = [("loss_D", "loss_D (smoothed; raw faint)"), ("loss_G", "loss_G (smoothed; raw faint)")]
    panels += [("swd", "image quality: SWD (lower is better)")] if quality else []
    pictures = ([("real images", image_grid(real[:SAMPLE_ROWS * SAMPLE_COLS], SAMPLE_ROWS, SAMPLE_COLS))]
                if real is not None and len(real) else [])
    for r in done:
        if r["samples"]:
            with Image.open(r["samples"]) as img:
                pictures.append((f"{r['framework']}: final samples", np.asarray(img.convert("RGB"))))
    cols = max(len(panels), len(pictures), 1)
    fig = plt.figure(figsize=(4 * cols, 8.5))
    layout = fig.add_gridspec(3, cols, height_ratios=[1.2, 1, 0.6])
    colours = {r["framework"]: f"C{i}" for i, r in enumerate(done)}
    for col, (key, title) in enumerate(panels):
        ax = fig.add_subplot(layout[0, col])
        for r in done:
            points = [(m["step"], m[key]) for m in r["metrics"] if m.get(key) is not None]
            if not points:
                continue
            steps, values = zip(*points)
            if key == "swd":
                ax.plot(steps, values, marker="." if len(values) < 30 else None, color=colours[r["framework"]],
                        label=f"{r['framework']}: {values[-1]:.1f}")
            else:
                plot_smoothed(ax, steps, list(values), colours[r["framework"]], r["framework"])
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    for col, (title, image) in enumerate(pictures):
        ax = fig.add_subplot(layout[1, col])
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize="medium")
        ax.axis("off")
    ax = fig.add_subplot(layout[2, :])
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
            plot(results, out / "compare.png", real_images(config))
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
    base, saved_names, saved = read_record(out / RECORD, "comparison", lambda saved: (
        TrainConfig.from_dict(saved["config"]), list(saved["frameworks"]), saved))
    config = resumed_config(args, base, out, "comparison")
    names = frameworks_from(args.frameworks) if args.frameworks else saved_names
    statuses = saved.get("status", {})
    if config != base:  # more epochs or steps: every framework trains on
        statuses = {n: {**st, "status": "resumable"} for n, st in statuses.items()}
    return config, names, statuses


if __name__ == "__main__":
    raise SystemExit(main())
