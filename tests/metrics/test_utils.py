"""Discretisation, discrete information, input validation, RandomState replay."""
import math

import numpy as np
import pytest

from semistylegan.metrics import dci, mig, modularity_explicitness, sap, utils
from semistylegan.metrics.synthetic import SyntheticCodeGrid


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


# Fast RandomState replay ---------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [
    [(5, 1), (3, 64), (6, 64), (40, 64), (32, 64), (32, 64)],
    [(7, 3), (1, 4), (2, 5), (1000, 2), (2**31 + 5, 3), (2**32, 2)],
    [(64, 16), (64, 16)],
])
def test_replay_randint_equals_numpy_calls(pattern):
    repeats = 300
    fast, slow = np.random.RandomState(11), np.random.RandomState(11)
    out = utils.replay_randint(fast, pattern, repeats)
    for r in range(repeats):
        for e, (b, c) in enumerate(pattern):
            np.testing.assert_array_equal(out[e][r], slow.randint(b, size=c))
    np.testing.assert_array_equal(fast.randint(1000, size=20), slow.randint(1000, size=20))
    assert fast.normal() == slow.normal()


def _loop_calls(rs, pattern, repeats):
    """The reference: one numpy call per (bound, count), as dlib makes them."""
    return [[rs.randint(b, size=c) for b, c in pattern] for _ in range(repeats)]


@pytest.mark.parametrize("pattern", [
    [(5, 1), (3, 64), (6, 64), (40, 64), (32, 64), (32, 64)],  # dSprites sizes, FactorVAE
    [(5, 1), (1, 8), (4, 8), (1, 8), (3, 8), (8, 8), (1, 8)],  # size-1 factors draw nothing
    [(3, 1), (16, 5), (2, 3), (2**30, 3), (2**31, 2), (7, 1), (64, 1)],  # odd pow2 runs, mixed masks
    [(1, 3), (1, 1)],  # nothing drawn at all
    [(2**32, 3), (2**31 + 5, 2), (2**30 + 1, 2)],  # rejection on large masks
])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_randint_chunks_equal_one_call_at_a_time(pattern, chunk):
    repeats = 40
    fast, slow = np.random.RandomState(3), np.random.RandomState(3)
    got = np.concatenate(list(utils.randint_chunks(fast, pattern, repeats, chunk)), axis=0)
    want = _loop_calls(slow, pattern, repeats)
    assert got.shape == (repeats, sum(c for _, c in pattern)) and got.dtype == np.int64
    for r in range(repeats):
        np.testing.assert_array_equal(got[r], np.concatenate(want[r]))
    assert utils._state_key(fast) == utils._state_key(slow)
    np.testing.assert_array_equal(fast.randint(1000, size=20), slow.randint(1000, size=20))


def test_randint_chunks_advance_the_state_chunk_by_chunk():
    pattern = [(5, 1), (3, 4), (32, 4)]
    fast, slow = np.random.RandomState(8), np.random.RandomState(8)
    chunks = utils.randint_chunks(fast, pattern, 10, 4)
    for n in (4, 4, 2):
        part = next(chunks)
        assert len(part) == n
        np.testing.assert_array_equal(part, [np.concatenate(row) for row in _loop_calls(slow, pattern, n)])
        assert utils._state_key(fast) == utils._state_key(slow)


def test_pair_layouts_reproduce_the_reference_or_are_not_used(monkeypatch):
    """Whichever half of a 2^62 draw numpy fills first, the checked layout reproduces the calls;
    with every bulk layout broken, the plain loop is used."""
    pattern = [(6, 1), (32, 6), (3, 2), (4, 5)]
    exact = {}
    for mode in ("pair_hi", "pair_lo", "single"):
        rs, ref = np.random.RandomState(1), np.random.RandomState(1)
        got = utils._BroadcastLayout(pattern, mode).draw(rs, 5)
        want = [np.concatenate(r) for r in _loop_calls(ref, pattern, 5)]
        exact[mode] = np.array_equal(got, want) and utils._state_key(rs) == utils._state_key(ref)
    assert exact["single"] and exact["pair_hi"] != exact["pair_lo"]
    chosen = utils._checked_layout(np.random.RandomState(1), pattern)
    assert chosen.paired_runs and chosen.first_shift == (32 if exact["pair_hi"] else 0)

    def broken(self, random_state, repeats):
        return np.zeros((repeats, self.num_values), dtype=np.int64) + 1
    monkeypatch.setattr(utils._BroadcastLayout, "draw", broken)
    assert utils._checked_layout(np.random.RandomState(1), pattern) is None
    fast, slow = np.random.RandomState(2), np.random.RandomState(2)
    got = np.concatenate(list(utils.randint_chunks(fast, pattern, 6, 4)))
    np.testing.assert_array_equal(got, [np.concatenate(r) for r in _loop_calls(slow, pattern, 6)])
    assert utils._state_key(fast) == utils._state_key(slow)


class _NoisyObservations(SyntheticCodeGrid):
    """Rendering draws from the RandomState, so the stream cannot be replayed in bulk."""

    def sample_observations_from_factors(self, factors, random_state):
        noise = random_state.uniform(size=len(factors))
        return np.asarray(factors, dtype=np.float64) + 0.0 * noise[:, None]


def test_stream_detects_observation_randomness():
    rep = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    assert utils.FactorStream(SyntheticCodeGrid(), rep, np.random.RandomState(0)).replayable
    slow = utils.FactorStream(_NoisyObservations(), rep, np.random.RandomState(0))
    assert slow.observations_use_rng and not slow.replayable


def test_generate_batch_factor_code_follows_dlib_stream():
    ds = _NoisyObservations()
    rep = lambda x: np.asarray(x, dtype=np.float64) * 2  # noqa: E731
    codes, factors = utils.generate_batch_factor_code(utils.FactorStream(ds, rep, np.random.RandomState(5), 7), 50, 16)
    rs = np.random.RandomState(5)
    ref_f, ref_c = [], []
    for n in (16, 16, 16, 2):  # dlib: sample(n) = sample_factors then observations, per chunk
        f = ds.sample_factors(n, rs)
        ref_c.append(rep(ds.sample_observations_from_factors(f, rs)))
        ref_f.append(f)
    np.testing.assert_array_equal(factors, np.concatenate(ref_f))
    np.testing.assert_array_equal(codes, np.concatenate(ref_c))
