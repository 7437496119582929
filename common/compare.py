"""Train the same DCGAN in several frameworks, side by side, and report.

    python -m common.compare --frameworks torch,tf,mx [training flags...] --out DIR

Each framework trains in its own process (`python -m dcgan_<fw>.train`) with
the same resolved config and seed, into DIR/<fw>/; its output goes to
DIR/<fw>.log. A framework that crashes is reported and the others still run.
Then:

    DIR/compare.png  loss curves overlaid, the final sample grids, examples/sec
    DIR/report.md    one row per framework: version, device, parameters of G and D,
                     examples/sec, final losses, wall time, and the largest
                     per-step loss difference from the other frameworks

Per-step losses are logged at every step (--log-every 1 unless given).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from common.cli import (ArgumentParser, add_data_args, add_model_args, add_train_args, config_argv,
                        run_cli)
from common.config import config_from_args
from common.errors import UsageError
from common.frameworks import install_hint, is_installed, parse_frameworks, run_module
from common.run import read_metrics, write_text

VERSION_KEYS = {"torch": "torch", "tf": "tensorflow", "mx": "mxnet"}


def run_framework(name: str, config, out: Path) -> dict:
    """Train one framework in a subprocess; what it left behind, or why it failed."""
    result = {"framework": name, "ok": False}
    if not is_installed(name):
        result["error"] = install_hint(name)
        return result
    start = time.perf_counter()
    proc = run_module(name, "train", config_argv(config) + ["--out", out / name, "--no-progress"])
    result["wall_s"] = time.perf_counter() - start
    write_text(out / f"{name}.log", proc.stdout + proc.stderr)
    run_dir = out / name
    if proc.returncode != 0 or not (run_dir / "summary.json").exists():
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        result["error"] = f"{name}: failed (exit status {proc.returncode}): {lines[-1] if lines else 'no output'}"
        return result
    saved = json.loads((run_dir / "config.json").read_text())
    samples = sorted((run_dir / "samples").glob("epoch_*.png"))
    result.update(ok=True, version=saved["versions"].get(VERSION_KEYS[name], "?"), device=saved["device"],
                  params=saved["params"], summary=json.loads((run_dir / "summary.json").read_text()),
                  metrics=read_metrics(run_dir), samples=samples[-1] if samples else None)
    return result


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
            rows.append([r["framework"], "—", "—", "—", "—", "—", "—", "—", f"{r.get('wall_s', 0):.1f}",
                         "failed"])
            continue
        s = r["summary"]
        rows.append([r["framework"], r["version"], r["device"], f"{r['params']['G']:,}", f"{r['params']['D']:,}",
                     f"{s['examples_per_sec']:.1f}", f"{s['loss_D']:.4f}", f"{s['loss_G']:.4f}",
                     f"{r['wall_s']:.1f}", f"{worst[r['framework']]:.2e}"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    spec = config.spec
    text = (f"# DCGAN: {', '.join(r['framework'] for r in results)} side by side\n\n"
            f"data `{config.data}`, {spec.image_size}x{spec.image_size}, widths {spec.n_G}/{spec.n_D}, "
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
    parser.add_argument("--frameworks", default="torch,tf,mx", help="comma-separated (default torch,tf,mx)")
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, "compare")
    parser.set_defaults(log_every=None)

    def run(argv):
        args = parser.parse_args(argv)
        try:
            names = parse_frameworks(args.frameworks)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if args.resume:
            raise UsageError("--resume is not supported by compare; resume each framework's run itself")
        out = Path(args.out or "runs/compare").expanduser()
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"--out {out} is not empty; choose another --out")
        args.max_steps = 1 if args.dry_run else args.max_steps
        args.log_every = 1 if args.log_every is None else args.log_every
        args.out = str(out / "_")  # checked here; each framework gets out/<name>
        config = config_from_args(args)
        out.mkdir(parents=True, exist_ok=True)
        results = []
        for name in names:
            print(f"training {name} ...", file=sys.stderr, flush=True)
            results.append(run_framework(name, config, out))
        text = report(results, config)
        write_text(out / "report.md", text)
        if any(r["ok"] for r in results):
            plot(results, out / "compare.png")
        print(text.replace("\n![comparison](compare.png)\n", f"\nwritten: {out / 'report.md'}, {out / 'compare.png'}"))
        return 0 if all(r["ok"] for r in results) else 1

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
