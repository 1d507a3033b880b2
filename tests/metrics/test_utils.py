"""Discretisation, discrete information, input validation (metrics/utils.py)."""
import math

import numpy as np
import pytest

from semistylegan.metrics import dci, mig, modularity_explicitness, sap, utils


# dlib's analytic test vectors (docs/method.md, "Metrics"), in the (N, d) layout ---------------------
def test_histogram_discretize_dlib_vector():
    x = np.array([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]]).T
    out = utils.histogram_discretize(x, 3)
    np.testing.assert_array_equal(out.T, [[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]])


def test_discrete_entropy_dlib_vector():
    ys = np.array([[1, 1, 2, 2, 3, 3], [3, 3, 2, 2, 1, 1]]).T
    np.testing.assert_allclose(utils.discrete_entropy(ys), [math.log(3), math.log(3)], rtol=1e-12)


def test_discrete_mutual_info_dlib_vector():
    xs = np.array([[1, 2, 1, 2], [1, 1, 2, 2]]).T
    ys = np.array([[1, 2, 1, 2], [2, 2, 1, 1]]).T
    np.testing.assert_allclose(utils.discrete_mutual_info(xs, ys), [[math.log(2), 0], [0, math.log(2)]], atol=1e-15)


def test_histogram_constant_column_is_one_bin_and_max_goes_to_last_bin():
    # np.histogram uses the range (v - 0.5, v + 0.5) for a constant, so v sits in the middle bin
    # (11 of 20; the metric notes' "bin 1" is not what numpy/dlib do).
    x = np.stack([np.full(7, 3.5), np.arange(7.0)], axis=1)
    out = utils.histogram_discretize(x, 20)
    assert (out[:, 0] == 11).all()
    assert out[:, 1].min() == 1 and out[:, 1].max() == 20


def test_histogram_uses_float32_edges_for_float32_codes():
    # np.histogram computes float32 edges for float32 input; values on an edge must land in the
    # same bin as numpy's own digitize of those edges (this is what dlib does).
    rs = np.random.RandomState(3)
    x = rs.randint(0, 40, size=(2000, 3)).astype(np.float32) / np.float32(39)
    ours = utils.histogram_discretize(x, 20)
    for i in range(3):
        ref = np.digitize(x[:, i], np.histogram(x[:, i], 20)[1][:-1])
        np.testing.assert_array_equal(ours[:, i], ref)


def test_mutual_info_matches_sklearn():
    from sklearn.metrics import mutual_info_score

    rs = np.random.RandomState(0)
    a = rs.randint(0, 7, size=(500, 3))
    b = (a[:, :2] + rs.randint(0, 3, size=(500, 2))) * 10 - 4  # arbitrary labels, gaps
    m = utils.discrete_mutual_info(a, b)
    for i in range(3):
        for j in range(2):
            assert abs(m[i, j] - mutual_info_score(b[:, j], a[:, i])) < 1e-12


# Bad input: a ValueError naming the array, never a NaN score ----------------------------------
GOOD_CODES = np.random.RandomState(0).normal(size=(50, 3))
GOOD_FACTORS = np.random.RandomState(1).randint(0, 4, size=(50, 2))


def _bad_cases():
    nan = GOOD_CODES.copy()
    nan[3, 1] = np.nan
    inf = GOOD_CODES.copy()
    inf[0, 0] = np.inf
    single = GOOD_FACTORS.copy()
    single[:, 1] = 2
    return [
        ("1-D codes", GOOD_CODES[:, 0], GOOD_FACTORS, "codes"),
        ("3-D codes", GOOD_CODES[:, :, None], GOOD_FACTORS, "codes"),
        ("one code dim", GOOD_CODES[:, :1], GOOD_FACTORS, "at least 2 code dimensions"),
        ("NaN code", nan, GOOD_FACTORS, "finite"),
        ("inf code", inf, GOOD_FACTORS, "finite"),
        ("rows differ", GOOD_CODES[:40], GOOD_FACTORS, "same number of rows"),
        ("single-valued factor", GOOD_CODES, single, "single value"),
        ("non-integer factors", GOOD_CODES, GOOD_FACTORS + 0.5, "integer"),
        ("1-D factors", GOOD_CODES, GOOD_FACTORS[:, 0], "factors"),
        ("string codes", np.full((50, 3), "a"), GOOD_FACTORS, "numeric"),
    ]


@pytest.mark.parametrize("label,codes,factors,message", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input_mig(label, codes, factors, message):
    with pytest.raises(ValueError, match=message):
        mig(codes, factors)


@pytest.mark.parametrize("label,codes,factors,message", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input_train_test_metrics(label, codes, factors, message):
    for fn in (sap, modularity_explicitness, dci):
        with pytest.raises(ValueError, match=message):
            fn(codes, factors, GOOD_CODES, GOOD_FACTORS)
        with pytest.raises(ValueError, match=message):
            fn(GOOD_CODES, GOOD_FACTORS, codes, factors)


def test_bad_input_names_the_array():
    with pytest.raises(ValueError, match="codes_test"):
        sap(GOOD_CODES, GOOD_FACTORS, GOOD_CODES[:, :2], GOOD_FACTORS)
    with pytest.raises(ValueError, match="factors_test"):
        sap(GOOD_CODES, GOOD_FACTORS, GOOD_CODES, GOOD_FACTORS[:, :1])
    with pytest.raises(ValueError, match="codes_train"):
        dci(GOOD_CODES[:, :1], GOOD_FACTORS, GOOD_CODES, GOOD_FACTORS)


def test_integral_float_factors_are_accepted():
    assert mig(GOOD_CODES, GOOD_FACTORS.astype(float)) == mig(GOOD_CODES, GOOD_FACTORS)
