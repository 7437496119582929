"""Score images with this backend's discriminator, from any framework's canonical weights:

    python -m dcgan_torch.score --weights discriminator.npz --images pictures/ [--json] [--sort]

The command is common.scoring's, the same for every backend."""

from __future__ import annotations

from common.scoring import score_main


def main(argv=None) -> int:
    return score_main("torch", argv)


if __name__ == "__main__":
    raise SystemExit(main())
