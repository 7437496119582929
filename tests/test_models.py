"""The cross-framework suite: every backend's nets against the spec and against
each other (shapes, parameter counts, the book's examples, canonical weights)."""

import numpy as np
import pytest

from common.spec import ModelSpec, to_layout
from common.weights import init_weights
from helpers import BACKENDS, layer_shapes, random_weights

# Covers every value of the grid (image size 16/32/64/128, widths 8/64, latent
# 100/64, channels 1/3, both variants) without the full product's 64 builds.
GRID = [
    ModelSpec(image_size=16, n_G=8, n_D=64, latent_dim=100, channels=1, variant="d2l"),
    ModelSpec(image_size=16, n_G=64, n_D=8, latent_dim=64, channels=3, variant="paper"),
    ModelSpec(image_size=32, n_G=8, n_D=8, latent_dim=64, channels=3, variant="d2l"),
    ModelSpec(image_size=32, n_G=64, n_D=64, latent_dim=100, channels=1, variant="paper"),
    ModelSpec(image_size=64, n_G=64, n_D=64, latent_dim=100, channels=3, variant="d2l"),
    ModelSpec(image_size=64, n_G=8, n_D=64, latent_dim=64, channels=1, variant="paper"),
    ModelSpec(image_size=128, n_G=8, n_D=8, latent_dim=100, channels=3, variant="paper"),
    ModelSpec(image_size=128, n_G=8, n_D=8, latent_dim=64, channels=1, variant="d2l"),
]


@pytest.mark.cross_framework
@pytest.mark.parametrize("spec", GRID, ids=lambda s: f"{s.image_size}px-G{s.n_G}-D{s.n_D}-z{s.latent_dim}-c{s.channels}-{s.variant}")
def test_layer_shapes_and_params_match_the_spec_everywhere(backends, spec):
    # Each framework is fed its own array type: torch tensors, tf tensors, and
    # for MXNet the book's mxnet.np arrays (backend.to_tensor).
    rng = np.random.default_rng(0)
    seen = {}
    for name, b in backends.items():
        G, D = b.model.build_generator(spec), b.model.build_discriminator(spec)
        z = rng.normal(size=spec.input_shape("G", 2)).astype(np.float32)
        x = rng.uniform(-1, 1, spec.input_shape("D", 2)).astype(np.float32)
        g, d = layer_shapes(b, G, z), layer_shapes(b, D, x)
        assert g == spec.output_shapes("G", 2, b.layout), name
        assert d == spec.output_shapes("D", 2, b.layout), name
        assert (b.model.count_params(G), b.model.count_params(D)) == (spec.num_params("G"), spec.num_params("D")), name
        # In NCHW, to compare the frameworks with each other, not only with the spec.
        seen[name] = [to_nchw_shape(s, b.layout) for s in g + d]
    assert len({tuple(v) for v in seen.values()}) == 1, seen


def to_nchw_shape(shape, layout):
    return shape if layout == "NCHW" else (shape[0], shape[3], shape[1], shape[2])


@pytest.mark.parametrize("block,kwargs,in_shape,out_shape", [
    ("G_block", {}, (2, 3, 16, 16), (2, 20, 32, 32)),
    ("G_block", {"strides": 1, "padding": 0}, (2, 3, 1, 1), (2, 20, 4, 4)),
    ("D_block", {}, (2, 3, 16, 16), (2, 20, 8, 8)),
])
def test_the_books_block_examples(fw, block, kwargs, in_shape, out_shape):
    b = BACKENDS[fw]
    blk = getattr(b.model, block)(20, **kwargs)
    if fw == "mx":
        blk.initialize()
    x = np.zeros(in_shape, np.float32)
    y = b.forward(blk, x)
    assert y.shape == out_shape  # forward() hands back NCHW; TF ran in NHWC
    if fw == "tf":
        assert tuple(blk(b.to_tensor(x)).shape) == to_layout(out_shape, "NHWC")


def test_the_books_mxnet_cells_run_as_written():
    """The chapter's MXNet cells, in its NumPy interface, against this backend's blocks."""
    if "mx" not in BACKENDS:
        pytest.skip("needs mxnet")
    from mxnet import np as mnp
    from mxnet.gluon import nn

    from dcgan_mx.model import D_block, G_block

    x = mnp.zeros((2, 3, 16, 16))
    g_blk = G_block(20)
    g_blk.initialize()
    assert g_blk(x).shape == (2, 20, 32, 32) and isinstance(g_blk(x), mnp.ndarray)
    x = mnp.zeros((2, 3, 1, 1))
    g_blk = G_block(20, strides=1, padding=0)
    g_blk.initialize()
    assert g_blk(x).shape == (2, 20, 4, 4)
    n_G = 64
    net_G = nn.Sequential()
    net_G.add(G_block(n_G * 8, strides=1, padding=0),  # Output: (64 * 8, 4, 4)
              G_block(n_G * 4),  # Output: (64 * 4, 8, 8)
              G_block(n_G * 2),  # Output: (64 * 2, 16, 16)
              G_block(n_G),      # Output: (64, 32, 32)
              nn.Conv2DTranspose(3, kernel_size=4, strides=2, padding=1, use_bias=False,
                                 activation="tanh"))  # Output: (3, 64, 64)
    x = mnp.zeros((1, 100, 1, 1))
    net_G.initialize()
    assert net_G(x).shape == (1, 3, 64, 64)
    x = mnp.zeros((2, 3, 16, 16))
    d_blk = D_block(20)
    d_blk.initialize()
    assert d_blk(x).shape == (2, 20, 8, 8)
    n_D = 64
    net_D = nn.Sequential()
    net_D.add(D_block(n_D),      # Output: (64, 32, 32)
              D_block(n_D * 2),  # Output: (64 * 2, 16, 16)
              D_block(n_D * 4),  # Output: (64 * 4, 8, 8)
              D_block(n_D * 8),  # Output: (64 * 8, 4, 4)
              nn.Conv2D(1, kernel_size=4, use_bias=False))  # Output: (1, 1, 1)
    x = mnp.zeros((1, 3, 64, 64))
    net_D.initialize()
    assert net_D(x).shape == (1, 1, 1, 1)


def test_the_books_nets(fw):
    b, spec = BACKENDS[fw], ModelSpec()
    assert b.forward(b.model.build_generator(spec), np.zeros((1, 100, 1, 1), np.float32)).shape == (1, 3, 64, 64)
    assert b.forward(b.model.build_discriminator(spec), np.zeros((1, 3, 64, 64), np.float32)).shape == (1, 1, 1, 1)


@pytest.mark.parametrize("variant", ["d2l", "paper"])
def test_canonical_round_trip_is_exact(fw, variant):
    b, spec = BACKENDS[fw], ModelSpec(n_G=8, n_D=8, image_size=32, variant=variant)
    for role, build in (("G", b.model.build_generator), ("D", b.model.build_discriminator)):
        net = build(spec)
        arrays = {k: v for k, v in random_weights(spec, 7).items() if k.startswith(role)}
        b.weights.load_canonical(net, arrays)
        out = b.weights.export_canonical(net)
        assert out.keys() == arrays.keys()
        for key in arrays:
            assert out[key].dtype == np.float32 and np.array_equal(out[key], arrays[key]), key


def test_same_seed_same_initial_nets(fw_pair):
    spec = ModelSpec(n_G=8, n_D=8, image_size=32)
    a, b = (BACKENDS[n] for n in fw_pair)
    arrays = init_weights(spec, seed=5)
    wa = {**a.weights.export_canonical(a.generator(spec, arrays)),
          **a.weights.export_canonical(a.discriminator(spec, arrays))}
    wb = {**b.weights.export_canonical(b.generator(spec, arrays)),
          **b.weights.export_canonical(b.discriminator(spec, arrays))}
    assert wa.keys() == wb.keys() == arrays.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_loading_validates(fw):
    from common.weights import WeightsError
    b, spec = BACKENDS[fw], ModelSpec(n_G=8, n_D=8, image_size=32)
    arrays = random_weights(spec, 0, nets=("G",))
    del arrays["G/1/beta"]
    with pytest.raises(WeightsError, match="G/1/beta"):
        b.weights.load_canonical(b.model.build_generator(spec), arrays)


# Inference-mode forward passes, float32: the frameworks' conv kernels sum in
# different orders, so outputs differ by a few ulps of the activations (seen:
# ~1e-8 on G's tanh output); 1e-5 absolute leaves room and still fails on any
# wrong layout, padding, epsilon or BN mapping (those differ by >1e-3).
FORWARD_ATOL = 1e-5


def test_same_weights_same_outputs_in_inference_mode(fw_pair):
    spec = ModelSpec()  # the book's full widths
    rng = np.random.default_rng(1)
    w = random_weights(spec, 11)
    z = rng.normal(size=(4, 100, 1, 1)).astype(np.float32)
    x = rng.uniform(-1, 1, (4, 3, 64, 64)).astype(np.float32)
    outs = {}
    for name in fw_pair:
        b = BACKENDS[name]
        outs[name] = (b.forward(b.generator(spec, w), z), b.forward(b.discriminator(spec, w), x))
    (ga, da), (gb, db) = outs.values()
    assert np.abs(ga).max() > 0.01  # a real image, not an all-zero output
    np.testing.assert_allclose(ga, gb, rtol=0, atol=FORWARD_ATOL)
    np.testing.assert_allclose(da, db, rtol=0, atol=FORWARD_ATOL)
