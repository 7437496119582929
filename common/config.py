"""TrainConfig: every setting of a run, resolved from a preset and the flags
(docs/design.md §4).

A config is three dataclasses, each validating its own fields once:

    TrainConfig(spec=ModelSpec(...), data=DataSource(...), lr=..., epochs=..., ...)

Every field is also a flag (`common.options`), so the command line, the
flags a comparison hands to each framework (`common.cli.config_argv`) and the
messages all derive from the fields.

Presets (an explicit flag always wins):

    d2l    (default) the book: lr 0.005, 20 epochs, batch 256, latent 100, widths 64
    paper  Radford et al.: lr 0.0002, 25 epochs, batch 128, no BN on D's input block

The book's TensorFlow version used lr 0.0005 for 40 epochs because its batch
norm never ran in training mode; this project runs one setting in all three.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from common.data import DataSource
from common.distributed import parse_devices
from common.errors import UsageError
from common.options import flag_of, option, options
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
PRECISIONS = ("fp32", "bf16")
STRATEGIES = ("default", "mirrored", "multiworker")
# Fields a resumed run may change: how long it runs, where it reads its data
# from and how it reports, not what it computes.
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "eval", "eval_every", "eval_samples", "tensorboard",
                     "device", "precision", "out", "resume", "data_url", "cache_dir", "devices", "strategy")


def unsupported_precision(framework: str, precision: str) -> UsageError:
    """The one line for a backend that cannot train in `precision` (its compile_step raises it)."""
    return UsageError(f"--precision {precision} is not supported by the {framework} backend yet (fp32 only)")


@dataclass(frozen=True)
class TrainConfig:
    spec: ModelSpec = field(default_factory=ModelSpec)
    data: DataSource = field(default_factory=DataSource)
    preset: str = option("d2l", "d2l (default): lr 0.005, 20 epochs, batch 256; "
                                "paper: lr 0.0002, 25 epochs, batch 128, variant paper", choices=tuple(PRESETS))
    batch_size: int = option(256, "examples per step", "--batchSize")
    epochs: int = option(20, "passes over the data", "--niter")
    max_steps: int | None = option(None, "stop after this many steps in all")
    lr: float = option(0.005, "Adam learning rate of G and D (beta1 0.5, beta2 0.999, eps 1e-8)")
    lr_G: float | None = option(None, "G's learning rate (default: --lr)")
    lr_D: float | None = option(None, "D's learning rate (default: --lr)")
    seed: int = option(0, "weights, noise and data order (default 0)", "--manualSeed")
    out: str = option("runs/dcgan", "run directory (default runs/<framework>)", "--outf")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    log_every: int = option(0, "also log every N steps (default: per epoch)")
    eval: bool = option(True, "measure image quality at each epoch end (SWD; for shapes the judge): "
                              "--no-eval turns it off")
    eval_every: int = option(0, "also measure it every N steps (default: at epoch ends only)")
    tensorboard: str | None = option(None, "also write TensorBoard event files into this directory (same tags "
                                           "from every framework)")
    eval_samples: int = option(512, "images on each side of the quality measure (default 512, as "
                                    "python -m common.metrics swd)")
    device: str = option("auto", "auto (default): a GPU if there is one", choices=DEVICES)
    # float64: to see the three frameworks agree where rounding cannot hide a difference
    dtype: str = option("float32", "float64 shows the frameworks agree to ~1e-12 "
                                   "(slow; for checking, not training)", choices=DTYPES)
    precision: str = option("fp32", "bf16: mixed precision, bfloat16 convolutions with float32 weights, batch "
                                    "norm and losses (PyTorch, TensorFlow; faster on CPUs with AVX-512 BF16 and on GPUs)",
                            choices=PRECISIONS)
    # Scaling out (common.distributed; README, Scaling out). PyTorch scales with torchrun instead.
    devices: str | None = option(None, "train on these devices, the batch split over them: cpu:0,cpu:1 or "
                                       "gpu:0,gpu:1 (MXNet: Gluon's multi-device Trainer; TensorFlow: "
                                       "MirroredStrategy)")
    strategy: str = option("default", "TensorFlow's tf.distribute strategy: default (one device), mirrored "
                                      "(the local GPUs, or --devices), multiworker (TF_CONFIG)",
                           choices=STRATEGIES)
    sync_bn: bool = option(False, "batch norm on the statistics of the global batch, not each device's "
                                  "(PyTorch: SyncBatchNorm; TensorFlow: synchronized BatchNormalization)")

    def __post_init__(self):
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("batch_size", self.batch_size >= 1, "must be >= 1"),
            ("lr", math.isfinite(self.lr) and self.lr > 0, "must be a finite number > 0"),
            ("lr_G", self.lr_G is None or (math.isfinite(self.lr_G) and self.lr_G > 0), "must be a finite number > 0"),
            ("lr_D", self.lr_D is None or (math.isfinite(self.lr_D) and self.lr_D > 0), "must be a finite number > 0"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "must be >= 1"),
            ("log_every", self.log_every >= 0, "must be >= 0 (0: once per epoch)"),
            ("eval_every", self.eval_every >= 0, "must be >= 0 (0: at epoch ends only)"),
            ("eval_samples", self.eval_samples >= 2, "must be >= 2"),
            ("seed", 0 <= self.seed < 2**63, "must be a non-negative integer"),
            ("preset", self.preset in PRESETS, f"must be one of {', '.join(PRESETS)}"),
            ("device", self.device in DEVICES, f"must be one of {', '.join(DEVICES)}"),
            ("dtype", self.dtype in DTYPES, f"must be one of {', '.join(DTYPES)}"),
            ("precision", self.precision in PRECISIONS, f"must be one of {', '.join(PRECISIONS)}"),
            ("precision", self.precision == "fp32" or self.dtype == "float32", "bf16 needs --dtype float32"),
            ("strategy", self.strategy in STRATEGIES, f"must be one of {', '.join(STRATEGIES)}"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise UsageError(f"{name} {rule}, got {getattr(self, name)!r}")
        parse_devices(self.devices)  # a UsageError naming the bad item

    @property
    def learning_rates(self) -> tuple[float, float]:
        """(G's, D's): --lr-g and --lr-d where given, else --lr."""
        return (self.lr if self.lr_G is None else self.lr_G, self.lr if self.lr_D is None else self.lr_D)

    # -- flat views: a field's name is unique across the three dataclasses ------

    def flat(self) -> dict:
        """Every setting by field name: spec's and data's fields beside the run's own."""
        own = {f.name: getattr(self, f.name) for f in options(TrainConfig)}
        return {**dataclasses.asdict(self.spec), **dataclasses.asdict(self.data), **own}

    @classmethod
    def from_flat(cls, values: dict) -> "TrainConfig":
        """The inverse of flat(); unknown names are ignored, missing ones take defaults."""
        pick = lambda kind: {f.name: values[f.name] for f in dataclasses.fields(kind) if f.name in values}
        return cls(spec=ModelSpec(**pick(ModelSpec)), data=DataSource(**pick(DataSource)),
                   **{k: v for k, v in pick(cls).items() if k not in ("spec", "data")})

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some settings changed, by field name (lr=..., n_G=..., num_images=...)."""
        return TrainConfig.from_flat({**self.flat(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict) -> "TrainConfig":
        """What to_dict() wrote (or the flat form of earlier versions)."""
        flat = {k: v for k, v in fields.items() if k not in ("spec", "data")}
        flat.update(fields.get("spec", {}))
        data = fields.get("data", {})
        flat.update(data if isinstance(data, dict) else {"name": data})  # the flat form: data is a name
        return cls.from_flat(flat)

    def differences(self, other: "TrainConfig", ignore=RESUMABLE_CHANGES) -> list[str]:
        """'--flag other -> self' for each setting that differs, `ignore` aside."""
        mine, theirs = self.flat(), other.flat()
        return [f"{flag_for(name)} {theirs[name]!r} -> {mine[name]!r}"
                for name in mine if name not in ignore and mine[name] != theirs[name]]


def flag_for(name: str) -> str:
    """The flag of a setting, whichever dataclass holds it."""
    for kind in (ModelSpec, DataSource, TrainConfig):
        if name in {f.name for f in dataclasses.fields(kind)}:
            return flag_of(kind, name)
    raise KeyError(name)


def resolve(preset: str | None, given: dict) -> TrainConfig:
    """The preset's values, overridden by every setting given (by field name; None: not given)."""
    preset = preset or "d2l"
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    values = {"preset": preset, **PRESETS[preset]}
    values.update({k: v for k, v in given.items() if v is not None})
    return TrainConfig.from_flat(values)
