"""common.spec: the architecture as data, checked against the book and the formulas."""

import pytest

from common.spec import ModelSpec, to_layout


def test_book_generator_and_discriminator_shapes():
    spec = ModelSpec()  # the book's: latent 100, widths 64, 3 channels, 64x64
    assert spec.output_shapes("G", 1) == [(1, 512, 4, 4), (1, 256, 8, 8), (1, 128, 16, 16),
                                          (1, 64, 32, 32), (1, 3, 64, 64)]
    assert spec.output_shapes("D", 1) == [(1, 64, 32, 32), (1, 128, 16, 16), (1, 256, 8, 8),
                                          (1, 512, 4, 4), (1, 1, 1, 1)]
    assert spec.output_shapes("G", 2, "NHWC")[-1] == (2, 64, 64, 3)


def test_layer_records_follow_the_book():
    G, D = ModelSpec().generator_layers(), ModelSpec().discriminator_layers()
    assert [(l.kind, l.stride, l.padding, l.batch_norm, l.activation) for l in G] == (
        [("conv_transpose", 1, 0, True, "relu")] + [("conv_transpose", 2, 1, True, "relu")] * 3
        + [("conv_transpose", 2, 1, False, "tanh")])
    assert [(l.kind, l.stride, l.padding, l.batch_norm, l.activation) for l in D] == (
        [("conv", 2, 1, True, "leaky_relu")] * 4 + [("conv", 1, 0, False, None)])
    assert all(l.kernel == 4 for l in G + D)


def test_paper_variant_drops_batch_norm_on_D_input_block_only():
    D = ModelSpec(variant="paper").discriminator_layers()
    assert [l.batch_norm for l in D] == [False, True, True, True, False]
    assert ModelSpec(variant="paper").generator_layers() == ModelSpec().generator_layers()


@pytest.mark.parametrize("size,blocks", [(16, 2), (32, 3), (64, 4), (128, 5), (256, 6)])
def test_one_block_per_doubling(size, blocks):
    spec = ModelSpec(image_size=size, n_G=8, n_D=8)
    assert spec.num_blocks == blocks
    assert len(spec.generator_layers()) == len(spec.discriminator_layers()) == blocks + 1
    assert spec.output_shapes("G", 1)[-1] == (1, 3, size, size)
    assert spec.output_shapes("D", 1)[-1] == (1, 1, 1, 1)
    assert spec.output_shapes("D", 1)[-2][2:] == (4, 4)


def test_param_counts_from_first_principles():
    spec = ModelSpec()
    # G: 100*512*16 + 512*256*16 + 256*128*16 + 128*64*16 + 64*3*16 conv weights,
    #    plus gamma and beta for the 512+256+128+64 BN channels.
    g = 16 * (100 * 512 + 512 * 256 + 256 * 128 + 128 * 64 + 64 * 3) + 2 * (512 + 256 + 128 + 64)
    d = 16 * (3 * 64 + 64 * 128 + 128 * 256 + 256 * 512 + 512 * 1) + 2 * (64 + 128 + 256 + 512)
    assert (spec.num_params("G"), spec.num_params("D")) == (g, d) == (3_576_704, 2_765_696)
    assert ModelSpec(variant="paper").num_params("D") == d - 2 * 64


@pytest.mark.parametrize("field,value", [
    ("image_size", 48), ("image_size", 8), ("image_size", 512), ("n_G", 0), ("n_D", -1),
    ("latent_dim", 0), ("channels", 0), ("variant", "wgan"), ("n_G", 8.0), ("image_size", True),
])
def test_bad_field_raises_value_error_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        ModelSpec(**{field: value})


def test_dict_round_trip_and_unknown_fields():
    spec = ModelSpec(latent_dim=64, n_G=8, n_D=16, channels=1, image_size=32, variant="paper")
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="bogus"):
        ModelSpec.from_dict({**spec.to_dict(), "bogus": 1})


def test_layouts():
    assert to_layout((2, 3, 4, 5), "NHWC") == (2, 4, 5, 3)
    with pytest.raises(ValueError, match="layout"):
        to_layout((2, 3, 4, 5), "CHWN")
    with pytest.raises(ValueError, match="net"):
        ModelSpec().layers("E")
