"""TrainConfig: every setting of a run, resolved from a preset and the flags.

Presets (an explicit flag always wins):

    d2l    (default) the book: lr 0.005, 20 epochs, batch 256, latent 100, widths 64
    paper  Radford et al.: lr 0.0002, 25 epochs, batch 128, no BN on D's input block

The book's TensorFlow version used lr 0.0005 for 40 epochs because its batch
norm never ran in training mode; this project runs one setting in all three.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from common.errors import UsageError
from common.spec import ModelSpec

PRESETS = {
    "d2l": {"lr": 0.005, "epochs": 20, "batch_size": 256, "latent_dim": 100, "n_G": 64, "n_D": 64,
            "variant": "d2l"},
    "paper": {"lr": 0.0002, "epochs": 25, "batch_size": 128, "latent_dim": 100, "n_G": 64, "n_D": 64,
              "variant": "paper"},
}
# MXNet keeps Adam's beta2 as a float32 attribute (0.999 -> 0.99900001287), so
# its 1 - beta2 differs from PyTorch's and Keras's by 1.3e-5 relative. All
# three use that float32 value, which makes them agree; 0.999 in the README.
BETA1, BETA2, ADAM_EPSILON = 0.5, float(np.float32(0.999)), 1e-8
DEVICES = ("auto", "cpu", "gpu")
DTYPES = ("float32", "float64")
# Fields a resumed run may change: how long it runs and how it reports, not what it computes.
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "device", "out", "resume")


@dataclass(frozen=True)
class TrainConfig:
    # model
    image_size: int = 64
    latent_dim: int = 100
    n_G: int = 64
    n_D: int = 64
    channels: int = 3
    variant: str = "d2l"
    # data
    data: str = "shapes"
    data_dir: str | None = None
    data_url: str | None = None
    cache_dir: str | None = None
    num_images: int | None = None
    # training
    preset: str = "d2l"
    lr: float = 0.005
    epochs: int = 20
    batch_size: int = 256
    max_steps: int | None = None
    # run
    seed: int = 0
    out: str = "runs/dcgan"
    resume: bool = False
    log_every: int = 0
    device: str = "auto"
    dtype: str = "float32"  # float64: to see the three frameworks agree where rounding cannot hide a difference

    def __post_init__(self):
        self.spec  # validates the model fields
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", self.lr > 0, "must be > 0"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            ("num_images", self.num_images is None or self.num_images >= 1, "must be >= 1"),
            ("log_every", self.log_every >= 0, "must be >= 0 (0: once per epoch)"),
            ("preset", self.preset in PRESETS, f"must be one of {', '.join(PRESETS)}"),
            ("device", self.device in DEVICES, f"must be one of {', '.join(DEVICES)}"),
            ("dtype", self.dtype in DTYPES, f"must be one of {', '.join(DTYPES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")
        if self.data == "folder" and not self.data_dir:
            raise ValueError("--data folder needs --data-dir DIR")

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(latent_dim=self.latent_dim, n_G=self.n_G, n_D=self.n_D,
                         channels=self.channels, image_size=self.image_size, variant=self.variant)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in fields.items() if k in names})

    def differences(self, other: "TrainConfig", ignore=RESUMABLE_CHANGES) -> list[str]:
        """'name: other -> self' for each field that differs, `ignore` aside."""
        return [f"{f.name} {getattr(other, f.name)!r} -> {getattr(self, f.name)!r}"
                for f in dataclasses.fields(self)
                if f.name not in ignore and getattr(self, f.name) != getattr(other, f.name)]


def config_from_args(args) -> TrainConfig:
    """The preset's values, overridden by every flag given (flags default to None)."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    preset = args.preset or "d2l"
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = {"preset": preset, **PRESETS[preset]}
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    try:
        return TrainConfig(**values)
    except ValueError as e:
        raise UsageError(str(e)) from None
