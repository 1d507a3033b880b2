"""The vectorised MIG and FactorVAE score give dlib's values on random inputs.

The reference is tests/metrics/dlib_algorithms.py (dlib's algorithm step by step: np.histogram
+ np.digitize per code, one sklearn mutual_info_score call per pair, one RandomState call after
another per vote). Discretisation, MI and MIG must be equal to the last bit, FactorVAE's
accuracies too: the fast paths only reorder work, never arithmetic.
"""
import numpy as np
import pytest

import dlib_algorithms as ref
from semistylegan.metrics import factor_vae_score, factor_vae_score_from_codes, mig, mig_per_factor, utils
from semistylegan.metrics.synthetic import SyntheticCodeGrid, representation


def _codes(kind: str, n: int, d: int, rs: np.random.RandomState, dtype=np.float64) -> np.ndarray:
    """Random codes (n, d) of one kind; every kind puts many values exactly on histogram edges or
    makes columns tie, which is where a bin guess or a sum order would go wrong."""
    if kind == "gauss":
        x = rs.normal(size=(n, d))
    elif kind == "grid":  # integer steps: values on edges and ties everywhere
        x = rs.randint(0, 40, size=(n, d)) / 39.0
    elif kind == "constant":  # constant columns (np.histogram's +-0.5 range) among normal ones
        x = rs.normal(size=(n, d))
        x[:, ::2] = rs.normal()
    elif kind == "duplicated":  # equal columns: equal MI, so the top two tie and the gap is 0
        x = np.repeat(rs.normal(size=(n, (d + 1) // 2)), 2, axis=1)[:, :d]
    elif kind == "tiny":  # a range of 1e-9 around a large offset
        x = 1e3 + 1e-9 * rs.normal(size=(n, d))
    elif kind == "two_values":
        x = rs.randint(0, 2, size=(n, d)) * 7.5 - 3.0
    else:
        raise ValueError(kind)
    return x.astype(dtype)


def _factors(n: int, k: int, rs: np.random.RandomState) -> np.ndarray:
    """Factor classes (n, k) of mixed sizes; the last column has gaps and negative labels."""
    sizes = rs.randint(2, 41, size=k)
    f = np.stack([rs.randint(0, s, size=n) for s in sizes], axis=1)
    f[:2, :] = [[0] * k, [1] * k]  # every column has at least 2 classes
    f[:, -1] = f[:, -1] * 3 - 5
    return f


SHAPES = [(2, 2, 1), (9, 3, 2), (500, 4, 3), (3000, 10, 5)]
KINDS = ["gauss", "grid", "constant", "duplicated", "tiny", "two_values"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,d,k", SHAPES)
def test_mig_equals_dlib_algorithm(n, d, k, kind, dtype):
    rs = np.random.RandomState(n * 7 + d)
    codes, factors = _codes(kind, n, d, rs, dtype), _factors(n, k, rs)
    for bins in (1, 3, 20):
        np.testing.assert_array_equal(utils.histogram_discretize(codes, bins),
                                      ref.histogram_discretize(codes.T, bins).T)
    discrete = utils.histogram_discretize(codes, 20)
    mi, entropy = utils.discrete_mutual_info_and_entropy(discrete, factors)
    np.testing.assert_array_equal(mi, ref.discrete_mutual_info(discrete.T, factors.T))
    np.testing.assert_array_equal(entropy, ref.discrete_entropy(factors.T))
    np.testing.assert_array_equal(utils.discrete_mutual_info(discrete, factors), mi)
    np.testing.assert_array_equal(utils.discrete_entropy(factors), entropy)
    assert mig(codes, factors)["discrete_mig"] == ref.compute_mig(codes.T, factors.T)["discrete_mig"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bin_correction_recovers_from_any_guess(dtype):
    # the arithmetic guess is usually right or off by one; the correction must settle any guess
    rs = np.random.RandomState(5)
    codes = np.concatenate([_codes("grid", 400, 3, rs, dtype), _codes("gauss", 400, 3, rs, dtype)], axis=1)
    xt = np.ascontiguousarray(codes.T)
    lo, hi = xt.min(axis=1), xt.max(axis=1)
    step = (hi - lo) / dtype(20)
    for guess in (np.zeros(xt.shape, np.int64), np.full(xt.shape, 19), rs.randint(0, 20, size=xt.shape)):
        settled = utils._settle_bins(xt, lo, step, guess.copy(), 20, np.empty_like(xt))
        np.testing.assert_array_equal(settled + 1, ref.histogram_discretize(xt, 20))


def test_tied_codes_give_a_zero_gap():
    rs = np.random.RandomState(1)
    factors = _factors(1000, 3, rs)
    codes = np.repeat(factors[:, :1].astype(float) + 0.01 * rs.normal(size=(1000, 1)), 2, axis=1)
    per_factor = mig_per_factor(codes, factors)
    assert (per_factor == 0).all()


@pytest.mark.filterwarnings("ignore:Clustering metrics expects discrete values")
def test_mutual_info_of_arbitrary_labels_equals_sklearn():
    # discrete_mutual_info is public: wide integer ranges (compacted first), negatives, floats
    rs = np.random.RandomState(2)
    a = np.stack([rs.randint(0, 5, 700) * 10**6, rs.randint(-3, 4, 700), rs.randint(0, 2, 700)], axis=1)
    b = np.stack([rs.randint(0, 3, 700) * 10**9, rs.randint(0, 50, 700)], axis=1)
    np.testing.assert_array_equal(utils.discrete_mutual_info(a, b), ref.discrete_mutual_info(a.T, b.T))
    floats = rs.randint(0, 6, size=(700, 2)) / 5.0
    np.testing.assert_array_equal(utils.discrete_mutual_info(floats, b), ref.discrete_mutual_info(floats.T, b.T))
    np.testing.assert_array_equal(utils.discrete_entropy(b), ref.discrete_entropy(b.T))


# FactorVAE -------------------------------------------------------------------------------------
FVAE = dict(batch_size=16, num_train=240, num_eval=120, num_variance_estimate=500)


class NoisyObservations(SyntheticCodeGrid):
    """Observations draw from the RandomState (factors + noise): the metric cannot postpone the
    draws, so it takes its per-vote path."""

    def sample_observations_from_factors(self, factors, random_state):
        return factors + 0.3 * random_state.normal(size=factors.shape)


@pytest.mark.parametrize("case,sizes", [("rotated", (3, 6, 40, 32, 32)), ("nuisance", (3, 6, 40, 32, 32)),
                                        ("const2", (4, 3, 5)), ("noisy0.2", (2, 7, 5, 3))])
@pytest.mark.parametrize("seed", [0, 1])
def test_factor_vae_equals_dlib_algorithm(case, sizes, seed):
    grid, rep = SyntheticCodeGrid(sizes), representation(case, sizes)
    ours = factor_vae_score(grid, rep, seed=seed, **FVAE)
    theirs = ref.compute_factor_vae(grid, rep, np.random.RandomState(seed), **FVAE)
    assert (ours["train_accuracy"], ours["eval_accuracy"]) == (theirs["train_accuracy"], theirs["eval_accuracy"])


def test_factor_vae_equals_dlib_algorithm_when_observations_draw_randomness():
    sizes = (3, 6, 10)
    grid = NoisyObservations(sizes)
    rotation = np.linalg.qr(np.random.RandomState(5).normal(size=(3, 4)).T)[0].T  # (3, 4) orthonormal rows
    rep = lambda obs: np.asarray(obs, dtype=np.float64) @ rotation  # noqa: E731
    ours = factor_vae_score(grid, rep, seed=3, **FVAE)
    theirs = ref.compute_factor_vae(grid, rep, np.random.RandomState(3), **FVAE)
    assert (ours["train_accuracy"], ours["eval_accuracy"]) == (theirs["train_accuracy"], theirs["eval_accuracy"])


def _loop_votes(groups, index, global_var, active, k):
    votes = np.zeros((k, groups.shape[2]), dtype=np.int64)
    for g, f in zip(groups, index):
        local = np.var(g, axis=0, ddof=1)
        votes[f, np.flatnonzero(active)[np.argmin(local[active] / global_var[active])]] += 1
    return votes


@pytest.mark.parametrize("d,batch", [(2, 2), (6, 16), (10, 64)])
def test_factor_vae_from_codes_equals_one_vote_at_a_time(d, batch):
    rs = np.random.RandomState(d)
    variance_codes = rs.normal(size=(300, d))
    variance_codes[:, 0] = 1.5  # constant: never active
    groups = [rs.normal(size=(150, batch, d)), rs.normal(size=(90, batch, d))]
    for g in groups:
        g[::3, :, -1] = g[::3, :, -2]  # tied variances: argmin takes the first
        g[::5, :, 0] = 0.0
    index = [rs.randint(0, 4, size=150), rs.randint(0, 4, size=90)]
    ours = factor_vae_score_from_codes(variance_codes, groups[0], index[0], groups[1], index[1], num_factors=4)
    global_var = np.var(variance_codes, axis=0, ddof=1)
    active = np.sqrt(global_var) >= 0.05
    train, test = (_loop_votes(g, i, global_var, active, 4) for g, i in zip(groups, index))
    classifier = np.argmax(train, axis=0)
    cols = np.arange(d)
    assert ours["train_accuracy"] == train[classifier, cols].sum() / train.sum()
    assert ours["eval_accuracy"] == test[classifier, cols].sum() / test.sum()
    assert ours["num_active_dims"] == d - 1


@pytest.mark.parametrize("chunk,dense_cells", [(1, 1 << 22), (1 << 30, 1 << 22), (1 << 18, 0)])
def test_mutual_info_chunked_and_sparse_paths_equal_sklearn(monkeypatch, chunk, dense_cells):
    # one code dim per bincount, all at once, and the per-pair sparse tables for huge label sets
    monkeypatch.setattr(utils, "_INDEX_CHUNK", chunk)
    monkeypatch.setattr(utils, "_DENSE_CELLS", dense_cells)
    rs = np.random.RandomState(4)
    codes, factors = _codes("grid", 800, 6, rs), _factors(800, 4, rs)
    codes[:, 1] = 0.25  # a single label
    discrete = utils.histogram_discretize(codes, 20)
    mi, entropy = utils.discrete_mutual_info_and_entropy(discrete, factors)
    np.testing.assert_array_equal(mi, ref.discrete_mutual_info(discrete.T, factors.T))
    np.testing.assert_array_equal(entropy, ref.discrete_entropy(factors.T))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_in_place_group_variance_equals_np_var(dtype):
    from semistylegan.metrics.factor_vae import _sample_variance_in_place

    codes = (np.random.RandomState(6).normal(size=(64, 33, 7)) * 50).astype(dtype)
    expected = [np.var(codes[:, g, :], axis=0, ddof=1) for g in range(33)]  # dlib: one (batch, d) block a vote
    np.testing.assert_array_equal(_sample_variance_in_place(codes.copy()), np.stack(expected))
