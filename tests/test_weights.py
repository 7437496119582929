"""common.weights: the canonical format, its initialisation and its validation."""

import numpy as np
import pytest

from common.spec import ModelSpec
from common.weights import (WeightsError, canonical_shapes, init_weights, load_weights,
                            save_weights, select)

SPEC = ModelSpec(n_G=8, n_D=8, image_size=32)


def test_keys_follow_the_spec_layers():
    shapes = canonical_shapes(SPEC)
    assert shapes["G/0/weight"] == (100, 32, 4, 4)  # conv_transpose: (in, out, kh, kw)
    assert shapes["D/0/weight"] == (8, 3, 4, 4)     # conv: (out, in, kh, kw)
    assert shapes["G/0/running_var"] == (32,)
    assert "G/3/gamma" not in shapes and "D/3/gamma" not in shapes  # last layers: no BN
    assert "D/0/gamma" not in canonical_shapes(ModelSpec(n_G=8, n_D=8, image_size=32, variant="paper"))


def test_init_is_dcgan_and_seeded():
    w = init_weights(ModelSpec(), seed=0)
    conv = np.concatenate([v.ravel() for k, v in w.items() if k.endswith("weight")])
    assert abs(conv.mean()) < 1e-3 and abs(conv.std() - 0.02) < 2e-4
    for key, value in w.items():
        assert value.dtype == np.float32
        expected = {"gamma": 1, "running_var": 1, "beta": 0, "running_mean": 0}.get(key.rsplit("/", 1)[1])
        if expected is not None:
            assert np.all(value == expected), key
    again, other = init_weights(ModelSpec(), seed=0), init_weights(ModelSpec(), seed=1)
    assert all(np.array_equal(w[k], again[k]) for k in w)
    assert not np.array_equal(w["G/0/weight"], other["G/0/weight"])
    # G alone draws the same G as G and D together.
    assert np.array_equal(init_weights(ModelSpec(), 0, nets=("G",))["G/2/weight"], w["G/2/weight"])


def test_save_load_round_trip_records_the_spec(tmp_path):
    w = init_weights(SPEC, seed=3)
    path = save_weights(tmp_path / "w.npz", w, SPEC)
    arrays, spec = load_weights(path)
    assert spec == SPEC and arrays.keys() == w.keys()
    assert all(np.array_equal(arrays[k], w[k]) for k in w)
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left behind
    g_path = save_weights(tmp_path / "g.npz", select(w, "G"), SPEC)
    assert set(load_weights(g_path, SPEC, nets=("G",))[0]) == set(select(w, "G"))


@pytest.mark.parametrize("damage,message", [
    (lambda w: w.pop("G/1/gamma"), "missing weight 'G/1/gamma'"),
    (lambda w: w.__setitem__("G/9/weight", np.zeros(3, np.float32)), "unexpected weight 'G/9/weight'"),
    (lambda w: w.__setitem__("D/0/weight", np.zeros((8, 3, 3, 3), np.float32)), r"'D/0/weight' has shape \(8, 3, 3, 3\)"),
])
def test_damaged_sets_are_named(tmp_path, damage, message):
    w = init_weights(SPEC, seed=0)
    damage(w)
    with pytest.raises(WeightsError, match=message):
        save_weights(tmp_path / "w.npz", w, SPEC)
    assert not list(tmp_path.iterdir())  # nothing written
    # The same damage in a file on disk is caught at load time.
    np.savez(tmp_path / "raw.npz", __spec__=np.array(SPEC.to_json()), **w)
    with pytest.raises(WeightsError, match=message):
        load_weights(tmp_path / "raw.npz")


def test_spec_mismatch_names_the_field(tmp_path):
    path = save_weights(tmp_path / "w.npz", init_weights(SPEC, 0), SPEC)
    with pytest.raises(WeightsError, match=r"n_G=8 \(expected 16\)"):
        load_weights(path, ModelSpec(n_G=16, n_D=8, image_size=32))


def test_foreign_and_truncated_files(tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(WeightsError, match="not a canonical DCGAN weights file"):
        load_weights(tmp_path / "foreign.npz")
    good = save_weights(tmp_path / "w.npz", init_weights(SPEC, 0), SPEC).read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match="not a readable .npz"):
        load_weights(tmp_path / "cut.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(WeightsError, match="not a readable .npz"):
        load_weights(tmp_path / "text.npz")
    with pytest.raises(WeightsError, match="no such file"):
        load_weights(tmp_path / "absent.npz")
