"""Sample this backend's generator from any framework's canonical weights:

    python -m dcgan_mx.sample --weights generator.npz --num 64 --seed 0 --out grid.png

The command is common.sampling's, the same for every backend."""

from __future__ import annotations

from common.sampling import sample_main


def main(argv=None) -> int:
    return sample_main("mx", argv)


if __name__ == "__main__":
    raise SystemExit(main())
