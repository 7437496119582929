"""Sample the Gluon generator: python -m dcgan_mx.sample --weights generator.npz"""

from __future__ import annotations

import numpy as np

from common.sampling import sample_main
from dcgan_mx.compat import mx
from dcgan_mx.model import LAYOUT, build_generator
from dcgan_mx.weights import load_canonical


def load_generator(spec, arrays):
    return load_canonical(build_generator(spec), arrays)


def generate(G, Z: np.ndarray) -> np.ndarray:
    """G(Z) in inference mode (BN on running statistics), as NumPy in LAYOUT
    (NCHW); Z is (num, latent, 1, 1)."""
    param = next(iter(G.collect_params().values()))  # where G lives and in what precision
    ctx, dtype = param.list_ctx()[0], param.dtype
    with mx.autograd.predict_mode():
        images = G(mx.nd.array(np.asarray(Z).reshape(len(Z), -1, 1, 1), ctx=ctx, dtype=dtype))
    return images.asnumpy()


if __name__ == "__main__":
    raise SystemExit(sample_main("mx", load_generator, generate, LAYOUT))
