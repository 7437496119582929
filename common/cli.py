"""The command line shared by every backend: defined once, used by all three.

Misuse gets one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from common.errors import DataError, UsageError, WeightsError
from common.spec import VARIANTS, ModelSpec


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its two-line usage errors cut to one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """Model flags; unset ones (None) take the preset's or ModelSpec's default."""
    g = parser.add_argument_group("model")
    g.add_argument("--image-size", type=int, help="16, 32, 64 (the book; default), 128 or 256")
    g.add_argument("--latent-dim", "--nz", type=int, help="size of the noise Z (default 100)")
    g.add_argument("--n-g", "--ngf", dest="n_G", type=int, help="generator width (default 64)")
    g.add_argument("--n-d", "--ndf", dest="n_D", type=int, help="discriminator width (default 64)")
    g.add_argument("--channels", type=int, choices=(1, 3), help="image channels (default 3)")
    g.add_argument("--variant", choices=VARIANTS,
                   help="d2l (default): the book's nets; paper: no batch norm on D's input block")


def add_data_args(parser: argparse.ArgumentParser, with_name: bool = True) -> None:
    from common.data import REGISTRY

    g = parser.add_argument_group("data")
    if with_name:
        g.add_argument("--data", default="shapes", choices=list(REGISTRY),
                       help="dataset (default shapes: built in, no download)")
    g.add_argument("--data-dir", help="the directory of images for --data folder")
    g.add_argument("--data-url", help="base URL to download from (default: the dataset's; env DCGAN_DATA_URL)")
    g.add_argument("--cache-dir", help="where downloads and decoded caches live "
                                       "(default ~/.cache/dcgan; env DCGAN_CACHE_DIR)")
    g.add_argument("--num-images", type=int, help="use only the first N images "
                                                  "(shapes: generate N, default 10000)")


def spec_from_args(args) -> ModelSpec:
    fields = {k: getattr(args, k) for k in ModelSpec().to_dict() if getattr(args, k, None) is not None}
    try:
        return ModelSpec(**fields)
    except ValueError as e:
        raise UsageError(str(e)) from None


def add_train_args(parser: argparse.ArgumentParser, framework: str) -> None:
    """Training and run flags (pytorch/examples' names accepted as aliases)."""
    from common.config import DEVICES, DTYPES, PRESETS

    g = parser.add_argument_group("training (unset flags take the preset's value)")
    g.add_argument("--preset", choices=list(PRESETS), help="d2l (default): lr 0.005, 20 epochs, batch 256; "
                                                           "paper: lr 0.0002, 25 epochs, batch 128, variant paper")
    g.add_argument("--batch-size", "--batchSize", type=int)
    g.add_argument("--epochs", "--niter", type=int)
    g.add_argument("--max-steps", type=int, help="stop after this many steps in all")
    g.add_argument("--dry-run", action="store_true", help="one step only (--max-steps 1)")
    g.add_argument("--lr", type=float, help="Adam learning rate (beta1 0.5, beta2 0.999, eps 1e-8)")
    r = parser.add_argument_group("run")
    r.add_argument("--seed", "--manualSeed", type=int, default=0, help="weights, noise and data order (default 0)")
    r.add_argument("--out", "--outf", help=f"run directory (default runs/{framework})")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    r.add_argument("--log-every", type=int, default=0, help="also log every N steps (default: per epoch)")
    r.add_argument("--device", choices=DEVICES, default="auto", help="auto (default): a GPU if there is one")
    r.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="float64 shows the frameworks agree to ~1e-12 (slow; for checking, not training)")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on a terminal only)")


def config_argv(config) -> list[str]:
    """The flags that make train_main resolve to `config` again (out and resume aside)."""
    flags = {"image_size": "--image-size", "latent_dim": "--latent-dim", "n_G": "--n-g", "n_D": "--n-d",
             "channels": "--channels", "variant": "--variant", "data": "--data", "data_dir": "--data-dir",
             "data_url": "--data-url", "cache_dir": "--cache-dir", "num_images": "--num-images",
             "preset": "--preset", "lr": "--lr", "epochs": "--epochs", "batch_size": "--batch-size",
             "max_steps": "--max-steps", "seed": "--seed", "log_every": "--log-every",
             "device": "--device", "dtype": "--dtype"}
    argv = []
    for field, flag in flags.items():
        value = getattr(config, field)
        if value is not None:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return argv


def train_main(framework: str, train, argv=None) -> int:
    """`python -m dcgan_<fw>.train`: the same flags and checks for every backend."""
    from common.config import config_from_args

    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.train",
                            description=f"Train the d2l DCGAN with the {framework} backend.")
    add_model_args(parser)
    add_data_args(parser)
    add_train_args(parser, framework)

    def main(argv):
        args = parser.parse_args(argv)
        if args.dry_run:
            args.max_steps = 1
        if args.out is None:
            args.out = f"runs/{framework}"
        summary = train(config_from_args(args), progress=args.progress)
        return 130 if summary["interrupted"] else 0

    return run_cli(parser.prog, main, argv)


def run_cli(prog: str, main, argv=None) -> int:
    """Call main(argv). A UsageError or a weights file that does not fit is one
    line on stderr and status 2; a data problem (a failed download, an
    unreadable folder) one line and status 1."""
    try:
        return main(argv) or 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except WeightsError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def describe_main(framework: str, describe, argv=None) -> int:
    """`python -m dcgan_<fw>.model`: print G's and D's per-layer output shapes."""
    parser = ArgumentParser(prog=f"python -m dcgan_{framework}.model",
                            description="Build G and D from the spec and print each layer's output shape.")
    add_model_args(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")

    def main(argv):
        args = parser.parse_args(argv)
        spec = spec_from_args(args)
        info = describe(spec)
        if args.json:
            print(json.dumps(info))
            return 0
        for net in ("G", "D"):
            print(f"{net} ({framework}, {info['layout']}, {info['params'][net]:,} parameters)")
            for i, shape in enumerate(info[net]):
                print(f"  layer {i}: {tuple(shape)}")
        return 0

    return run_cli(parser.prog, main, argv)
