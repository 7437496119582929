"""The DCGAN architecture as data: the single source of truth for all backends.

A `ModelSpec` names the hyper-parameters (latent size, widths, channels, image
size, variant); `generator_layers()` and `discriminator_layers()` turn it into
an ordered tuple of `LayerSpec` records. Every backend builds its nets from
these records, and every test compares a backend against the shapes computed
here from the textbook formulas:

    transposed conv: H_out = (H - 1) * s - 2 p + k
    conv:            H_out = floor((H + 2 p - k) / s) + 1

Shapes are computed in NCHW (PyTorch, MXNet) and permuted to NHWC (TensorFlow).
No framework is imported here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from common.errors import UsageError
from common.options import option

VARIANTS = ("d2l", "paper")
LAYOUTS = ("NCHW", "NHWC")
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 256



def latent_shape(num: int, latent_dim: int, layout: str) -> tuple[int, int, int, int]:
    """The shape of a batch of Z as the nets take it: (N, z, 1, 1) in NCHW, (N, 1, 1, z) in NHWC."""
    return (num, latent_dim, 1, 1) if layout == "NCHW" else (num, 1, 1, latent_dim)

@dataclass(frozen=True)
class LayerSpec:
    """One conv layer with its optional batch norm and activation."""

    kind: str  # "conv" or "conv_transpose"
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    padding: int
    batch_norm: bool
    activation: str | None  # "relu", "leaky_relu", "tanh" or None (a logit)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """The weight's shape in the canonical (PyTorch/Gluon) layout."""
        if self.kind == "conv_transpose":  # (in, out, kh, kw)
            return (self.in_channels, self.out_channels, self.kernel, self.kernel)
        return (self.out_channels, self.in_channels, self.kernel, self.kernel)

    def output_size(self, size: int) -> int:
        k, s, p = self.kernel, self.stride, self.padding
        if self.kind == "conv_transpose":
            return (size - 1) * s - 2 * p + k
        return (size + 2 * p - k) // s + 1

    @property
    def num_params(self) -> int:
        """Trainable parameters: the weight, plus BN's gamma and beta."""
        k = self.kernel
        return self.in_channels * self.out_channels * k * k + (
            2 * self.out_channels if self.batch_norm else 0
        )


@dataclass(frozen=True)
class ModelSpec:
    """Hyper-parameters of the generator/discriminator pair.

    image_size 64 gives the book's nets (4 blocks and a last layer each);
    every halving or doubling removes or adds one block.
    """

    latent_dim: int = option(100, "size of the noise Z (default 100)", "--nz")
    n_G: int = option(64, "generator width (default 64)", "--ngf")
    n_D: int = option(64, "discriminator width (default 64)", "--ndf")
    channels: int = option(3, "image channels (default 3)", choices=(1, 3))
    image_size: int = option(64, "16, 32, 64 (the book; default), 128 or 256")
    variant: str = option("d2l", "d2l (default): the book's nets; paper: no batch norm on D's input block",
                          choices=VARIANTS)

    def __post_init__(self):
        """A bad field is a UsageError (a ValueError) naming it."""
        for name in ("latent_dim", "n_G", "n_D", "channels", "image_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise UsageError(f"{name} must be >= 1, got {value}")
        size = self.image_size
        if not (MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE) or size & (size - 1):
            raise UsageError(
                f"image_size must be a power of two from {MIN_IMAGE_SIZE} to "
                f"{MAX_IMAGE_SIZE}, got {size}"
            )
        if self.variant not in VARIANTS:
            raise UsageError(
                f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"
            )

    # -- structure ---------------------------------------------------------

    @property
    def num_blocks(self) -> int:
        """G_blocks in G and D_blocks in D: 4 at 64x64, as in the book."""
        return self.image_size.bit_length() - 3  # log2(size) - 2

    def generator_layers(self) -> tuple[LayerSpec, ...]:
        """num_blocks G_blocks (1x1 -> 4x4, then doubling), then ConvTranspose -> tanh."""
        n = self.num_blocks
        widths = [self.n_G * 2 ** (n - 1 - i) for i in range(n)]  # 8n_G, 4n_G, 2n_G, n_G
        layers, in_ch = [], self.latent_dim
        for i, width in enumerate(widths):
            first = i == 0
            layers.append(
                LayerSpec("conv_transpose", in_ch, width, 4, 1 if first else 2,
                          0 if first else 1, True, "relu")
            )
            in_ch = width
        layers.append(LayerSpec("conv_transpose", in_ch, self.channels, 4, 2, 1, False, "tanh"))
        return tuple(layers)

    def discriminator_layers(self) -> tuple[LayerSpec, ...]:
        """num_blocks D_blocks (halving down to 4x4), then a 4x4 conv to one logit."""
        n = self.num_blocks
        layers, in_ch = [], self.channels
        for i in range(n):
            width = self.n_D * 2**i  # n_D, 2n_D, 4n_D, 8n_D
            # The paper leaves batch norm off the discriminator's input block.
            batch_norm = not (self.variant == "paper" and i == 0)
            layers.append(LayerSpec("conv", in_ch, width, 4, 2, 1, batch_norm, "leaky_relu"))
            in_ch = width
        layers.append(LayerSpec("conv", in_ch, 1, 4, 1, 0, False, None))
        return tuple(layers)

    def layers(self, net: str) -> tuple[LayerSpec, ...]:
        """`net` is "G" or "D"."""
        if net == "G":
            return self.generator_layers()
        if net == "D":
            return self.discriminator_layers()
        raise UsageError(f"net must be 'G' or 'D', got {net!r}")

    # -- shapes --------------------------------------------------------------

    def input_shape(self, net: str, batch: int = 1, layout: str = "NCHW") -> tuple[int, ...]:
        if net == "G":
            return to_layout((batch, self.latent_dim, 1, 1), layout)
        self.layers(net)  # validates the name
        return to_layout((batch, self.channels, self.image_size, self.image_size), layout)

    def output_shapes(self, net: str, batch: int = 1, layout: str = "NCHW") -> list[tuple[int, ...]]:
        """The output shape of every layer of `net`, in order."""
        _, _, size, _ = self.input_shape(net, batch, "NCHW")
        shapes = []
        for layer in self.layers(net):
            size = layer.output_size(size)
            shapes.append(to_layout((batch, layer.out_channels, size, size), layout))
        return shapes

    def num_params(self, net: str) -> int:
        return sum(layer.num_params for layer in self.layers(net))

    # -- (de)serialisation ---------------------------------------------------

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, fields: dict) -> "ModelSpec":
        unknown = set(fields) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UsageError(f"unknown ModelSpec field(s): {', '.join(sorted(unknown))}")
        return cls(**fields)


def to_layout(shape_nchw: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """Permute an NCHW shape to `layout` ("NCHW" or "NHWC")."""
    if layout == "NCHW":
        return tuple(shape_nchw)
    if layout == "NHWC":
        n, c, h, w = shape_nchw
        return (n, h, w, c)
    raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")


def convert_layout(x, source: str, target: str):
    """A 4-d NumPy array laid out `source` ("NCHW" or "NHWC"), as `target`, contiguous."""
    import numpy as np

    for layout in (source, target):
        if layout not in LAYOUTS:
            raise UsageError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    x = np.asarray(x)
    if source != target:
        x = x.transpose(0, 2, 3, 1) if target == "NHWC" else x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
