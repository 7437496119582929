"""The command line shared by every backend: defined once, used by all three.

Misuse gets one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from common.errors import DataError, UsageError
from common.spec import VARIANTS, ModelSpec


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its two-line usage errors cut to one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_model_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model")
    g.add_argument("--image-size", type=int, default=64, help="16, 32, 64 (the book), 128 or 256")
    g.add_argument("--latent-dim", "--nz", type=int, default=100, help="size of the noise Z")
    g.add_argument("--n-g", "--ngf", dest="n_G", type=int, default=64, help="generator width")
    g.add_argument("--n-d", "--ndf", dest="n_D", type=int, default=64, help="discriminator width")
    g.add_argument("--channels", type=int, default=3, help="image channels (1 or 3)")
    g.add_argument("--variant", choices=VARIANTS, default="d2l",
                   help="d2l: the book's nets; paper: no batch norm on D's input block")


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
    try:
        return ModelSpec(latent_dim=args.latent_dim, n_G=args.n_G, n_D=args.n_D,
                         channels=args.channels, image_size=args.image_size, variant=args.variant)
    except ValueError as e:
        raise UsageError(str(e)) from None


def run_cli(prog: str, main, argv=None) -> int:
    """Call main(argv). A UsageError is one line on stderr and status 2; a data
    or weights problem (a failed download, a corrupt file) one line and status 1."""
    try:
        return main(argv) or 0
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1


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
