import numpy as np
import pytest
import torch

from semistylegan.data import LabeledSubset, make_dataset
from semistylegan.data.dsprites import DSPRITES_FACTORS
from semistylegan.data.factors import FactorSpace
from semistylegan.errors import UserError


def test_dsprites_bases_match_official():
    # Official bases for (color, shape, scale, orientation, posX, posY) without color.
    assert DSPRITES_FACTORS.bases.tolist() == [245760, 40960, 1024, 32, 1]
    assert DSPRITES_FACTORS.num_combinations == 737280


def test_index_classes_round_trip():
    fs = FactorSpace(("a", "b", "c"), (3, 4, 5))
    idx = np.arange(fs.num_combinations)
    cls = fs.index_to_classes(idx)
    assert cls.shape == (60, 3)
    assert (fs.classes_to_index(cls) == idx).all()
    assert cls[7].tolist() == [0, 1, 2]  # 7 = 0*20 + 1*5 + 2


def test_codes_normalised_and_back():
    fs = FactorSpace(("a", "b", "single"), (3, 10, 1))
    cls = np.array([[0, 0, 0], [2, 9, 0], [1, 3, 0]])
    code = fs.classes_to_code(cls)
    np.testing.assert_allclose(code, [[0, 0, 0], [1, 1, 0], [0.5, 3 / 9, 0]], rtol=1e-6)
    assert (fs.code_to_classes(code) == cls).all()
    assert (fs.code_to_classes(np.array([[-1.0, 2.0, 0.3]])) == [[0, 9, 0]]).all()


def test_sampling_matches_dlib_stream():
    fs = FactorSpace(("a", "b"), (3, 7))
    got = fs.sample_classes(5, np.random.RandomState(0))
    rs = np.random.RandomState(0)
    expected = np.stack([rs.randint(3, size=5), rs.randint(7, size=5)], axis=1)
    assert (got == expected).all()


def test_factor_space_rejects_bad_input():
    with pytest.raises(ValueError):
        FactorSpace(("a",), (2, 3))
    fs = FactorSpace(("a", "b"), (2, 3))
    with pytest.raises(ValueError, match="shape"):
        fs.classes_to_index(np.zeros((4, 3), dtype=int))
    with pytest.raises(ValueError, match="out of range"):
        fs.classes_to_index(np.array([[0, 3]]))
    with pytest.raises(ValueError, match="unknown factor"):
        fs.index_of("c")


def test_labeled_subset_is_seeded_and_sized():
    ds = make_dataset("dsprites", 16)
    a = LabeledSubset(ds, 0.01, seed=3)
    b = LabeledSubset(ds, 0.01, seed=3)
    c = LabeledSubset(ds, 0.01, seed=4)
    assert len(a) == round(0.01 * 737280)
    assert (a.indices == b.indices).all() and a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(np.unique(a.indices)) == len(a)
    assert len(LabeledSubset(ds, 1.0).indices) == 737280
    assert len(LabeledSubset(ds, 0.0)) == 0
    assert len(LabeledSubset(ds, 1e-9)) == 1  # eta > 0 labels at least one image
    with pytest.raises(ValueError):
        LabeledSubset(ds, 1.5)
    g = torch.Generator().manual_seed(0)
    drawn = a.sample(100, g)
    assert np.isin(drawn, a.indices).all()


def test_unknown_dataset_is_user_error():
    with pytest.raises(UserError, match="unknown dataset"):
        make_dataset("no-such-data")


def test_dsprites_render_basics():
    ds = make_dataset("dsprites", 64)
    cls = np.array([[0, 5, 0, 0, 0], [1, 0, 0, 31, 31]])
    img = ds.images_from_classes(cls)
    assert img.shape == (2, 1, 64, 64) and img.dtype == np.uint8
    assert set(np.unique(img)) <= {0, 255}
    # Square of side 20 at scale 1, centred at pixel 16 (pos 0).
    ys, xs = np.nonzero(img[0, 0])
    assert ys.max() - ys.min() + 1 == 20 and xs.max() - xs.min() + 1 == 20
    assert abs((ys.min() + ys.max() + 1) / 2 - 16) <= 0.5
    # Ellipse at scale 0.5 at pos 1: centre 48, about 13 px wide.
    ys, xs = np.nonzero(img[1, 0])
    assert abs((xs.min() + xs.max() + 1) / 2 - 48) <= 0.5
    assert 12 <= xs.max() - xs.min() + 1 <= 14
    small = make_dataset("dsprites", 32).images_from_classes(cls)
    np.testing.assert_allclose(small.astype(float), img.reshape(2, 1, 32, 2, 32, 2).mean(axis=(3, 5)), atol=0.5)
