"""`python -m common.data show NAME --out grid.png`: a dataset's first 20
images in a 4x5 grid (the book's first figure)."""

from __future__ import annotations

import argparse

from common.cli import ArgumentParser, add_data_args, data_source_from_args, run_cli, seed as cli_seed
from common.data import REGISTRY
from common.errors import UsageError
from common.viz import save_grid


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m common.data",
                            description="Show a dataset: its first 20 images in a 4x5 grid.")
    sub = parser.add_subparsers(dest="command", required=True)
    datasets = "\n".join(f"  {name:14} {d.description}" for name, d in REGISTRY.items())
    show = sub.add_parser("show", help="save the first 20 images as a 4x5 grid",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog=f"datasets:\n{datasets}")
    show.error = parser.error
    show.add_argument("name", choices=list(REGISTRY))
    show.add_argument("--out", default="grid.png", help="PNG to write (default grid.png)")
    show.add_argument("--image-size", type=int, default=64)
    show.add_argument("--channels", type=int, default=3, choices=(1, 3))
    show.add_argument("--seed", type=cli_seed, default=0)
    add_data_args(show, with_name=False)

    def run(argv):
        args = parser.parse_args(argv)
        if args.image_size < 1:
            raise UsageError(f"--image-size must be >= 1, got {args.image_size}")
        images = data_source_from_args(args, name=args.name).load(args.image_size, args.channels, args.seed)
        path = save_grid(images[:20], 4, 5, args.out)
        print(f"{args.name}: {len(images)} images of {images.shape[1]}x{images.shape[2]}x{images.shape[3]}; "
              f"first {min(20, len(images))} in {path}")
        return 0

    return run_cli(parser.prog, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
