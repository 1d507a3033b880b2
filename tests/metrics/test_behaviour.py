"""Representations with known properties, dlib's analytic vectors, determinism."""
import math

import numpy as np
import pytest

from semistylegan.metrics import (beta_vae_score, dci, factor_vae_score, factor_vae_score_from_codes, mig,
                                  mig_from_dataset, modularity_explicitness, sap, synthetic)
from semistylegan.metrics.dci import completeness, disentanglement
from semistylegan.metrics.modularity import modularity
from semistylegan.metrics.synthetic import SyntheticCodeGrid


# MIG ----------------------------------------------------------------------------------------
def test_identity_code_close_to_the_binning_ceiling(identity10):
    codes, factors = identity10
    value = mig(codes, factors)["discrete_mig"]
    # 10 values into 20 bins: each code determines its factor, but the runner-up MI is > 0
    assert 0.98 < value < 1.0


def test_identity_code_mig_is_one_with_as_many_bins_as_values():
    rs = np.random.RandomState(0)
    factors = rs.randint(4, size=(20000, 2))
    codes = np.hstack([factors, rs.normal(size=(20000, 1)) * 0 + 1.0]).astype(float)
    assert mig(codes, factors, num_bins=4)["discrete_mig"] == pytest.approx(1.0, abs=1e-3)


def test_rotated_code_has_low_mig(split):
    ytr, _ = split
    perfect = mig(synthetic.representation("noisy0.05")(ytr), ytr)["discrete_mig"]
    rotated = mig(synthetic.representation("rotated")(ytr), ytr)["discrete_mig"]
    assert rotated < 0.2 < 0.6 < perfect


def test_duplicated_code_has_mig_zero(identity10):
    codes, factors = identity10
    assert mig(np.hstack([codes, codes]), factors)["discrete_mig"] == 0.0


def test_constant_codes_are_scored_not_nan(identity10):
    codes, factors = identity10
    assert mig(np.zeros_like(codes), factors)["discrete_mig"] == 0.0
    with_const = np.hstack([np.full((len(codes), 2), 3.0), codes])
    assert mig(with_const, factors) == mig(codes, factors)


def test_mig_is_invariant_to_affine_code_maps(identity10):
    codes, factors = identity10
    assert mig(codes * 3.0 - 7.0, factors)["discrete_mig"] == pytest.approx(mig(codes, factors)["discrete_mig"],
                                                                             abs=1e-12)


# DCI / modularity: dlib's analytic importance matrices -----------------------------------------
DIAG = np.diag(5.0 * np.ones(5))
LN2_LN10 = 1 - math.log(2) / math.log(10)


@pytest.mark.parametrize("matrix,d_expected,c_expected", [
    (DIAG, 1.0, 1.0),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 1.0, 1.0),
    (np.zeros((10, 10)), 0.0, 0.0),
    (np.vstack([DIAG, DIAG]), 1.0, LN2_LN10),
    (DIAG[:2], 1.0, 1.0),
    (np.hstack([DIAG, DIAG]), LN2_LN10, 1.0),
])
def test_dci_analytic(matrix, d_expected, c_expected):
    assert disentanglement(matrix) == pytest.approx(d_expected, abs=1e-7)
    assert completeness(matrix) == pytest.approx(c_expected, abs=1e-7)


@pytest.mark.parametrize("matrix,expected", [
    (DIAG, 1.0),
    (np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]), 2.0 / 3.0),
    (np.zeros((10, 10)), 0.0),
    (np.vstack([DIAG, DIAG]), 1.0),
    (DIAG[:2], 1.0),
    (np.hstack([DIAG, DIAG]), 1.0 - 1.0 / 9.0),
])
def test_modularity_analytic(matrix, expected):
    assert modularity(matrix) == pytest.approx(expected, abs=1e-12)


def test_dci_identity_and_duplicated():
    rs = np.random.RandomState(0)
    f = rs.randint(4, size=(300, 3))
    g = rs.randint(4, size=(150, 3))
    ident = dci(f.astype(float), f, g.astype(float), g)
    assert ident["disentanglement"] > 0.9 and ident["completeness"] > 0.9 and ident["informativeness_test"] == 1.0
    dup = dci(np.hstack([f, f]).astype(float), f, np.hstack([g, g]).astype(float), g)
    assert dup["disentanglement"] > 0.9
    assert abs(dup["completeness"] - (1 - math.log(2) / math.log(6))) < 0.15


def test_dci_is_deterministic_and_parallel_equals_serial():
    rs = np.random.RandomState(1)
    f = rs.randint(5, size=(200, 3))
    x = f + rs.normal(size=f.shape)
    a = dci(x, f, x, f, seed=3, n_jobs=1)
    assert dci(x, f, x, f, seed=3, n_jobs=2, backend="threading") == a


# SAP ------------------------------------------------------------------------------------------
def test_sap_continuous_identity_and_duplicated():
    rs = np.random.RandomState(0)
    f = rs.randint(10, size=(3000, 4))
    g = rs.randint(10, size=(3000, 4))
    assert sap(f.astype(float), f, g.astype(float), g, continuous=True)["SAP_score"] > 0.9
    doubled = sap(np.hstack([f, f]).astype(float), f, np.hstack([g, g]).astype(float), g, continuous=True)
    assert doubled["SAP_score"] == 0.0


def test_sap_threads_equal_serial(split):
    ytr, yte = split
    rep = synthetic.representation("noisy0.2")
    args = (rep(ytr[:800]), ytr[:800], rep(yte[:400]), yte[:400])
    assert sap(*args, n_jobs=1) == sap(*args, n_jobs=2)


def test_explicitness_with_a_class_missing_from_the_test_set():
    rs = np.random.RandomState(0)
    f = rs.randint(4, size=(400, 2))
    g = rs.randint(3, size=(200, 2))  # class 3 never appears in the test set
    out = modularity_explicitness(f + rs.normal(size=f.shape) * 0.1, f, g + rs.normal(size=g.shape) * 0.1, g)
    assert all(np.isfinite(v) for v in out.values())
    assert out["explicitness_score_test"] > 0.9


# FactorVAE / BetaVAE on dlib's identity setting ------------------------------------------------
class IdentityGrid(SyntheticCodeGrid):
    def __init__(self):
        super().__init__(sizes=(10,) * 10)


def test_factor_vae_identity_and_zeros():
    ds = IdentityGrid()
    ident = factor_vae_score(ds, lambda x: np.asarray(x, float), seed=0, batch_size=5, num_train=3000, num_eval=2000,
                             num_variance_estimate=2500)
    assert 0.9 <= ident["eval_accuracy"] <= 1.0 and ident["num_active_dims"] == 10
    zeros = factor_vae_score(ds, lambda x: np.zeros((len(x), 10)), seed=0, batch_size=5, num_train=3000, num_eval=2000,
                             num_variance_estimate=2500)
    assert zeros == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}


def test_factor_vae_from_codes_matches_the_sampled_votes():
    rs = np.random.RandomState(0)
    var_codes = rs.normal(size=(500, 3))
    groups = rs.normal(size=(40, 8, 3))
    k = np.arange(40) % 3
    groups[np.arange(40), :, k] *= 0.01  # the fixed factor's dim barely moves
    out = factor_vae_score_from_codes(var_codes, groups[:30], k[:30], groups[30:], k[30:])
    assert out == {"train_accuracy": 1.0, "eval_accuracy": 1.0, "num_active_dims": 3}
    with pytest.raises(ValueError, match="train_groups"):
        factor_vae_score_from_codes(var_codes, groups[:30, :, :2], k[:30], groups[30:], k[30:])


def test_beta_vae_identity():
    ds = IdentityGrid()
    out = beta_vae_score(ds, lambda x: np.asarray(x, float), seed=0, batch_size=5, num_train=2000, num_eval=2000)
    assert 0.9 <= out["eval_accuracy"] <= 1.0


# Determinism and seeds -----------------------------------------------------------------------
def test_same_seed_same_score_other_seed_other_draws(grid):
    rep = synthetic.representation("noisy0.2")
    a = mig_from_dataset(grid, rep, seed=4, num_train=2000)
    assert mig_from_dataset(grid, rep, seed=4, num_train=2000) == a
    assert mig_from_dataset(grid, rep, seed=np.random.RandomState(4), num_train=2000) == a
    assert mig_from_dataset(grid, rep, seed=5, num_train=2000) != a
    f = factor_vae_score(grid, rep, seed=2, num_train=200, num_eval=100, num_variance_estimate=500)
    assert factor_vae_score(grid, rep, seed=2, num_train=200, num_eval=100, num_variance_estimate=500) == f


def test_large_batch_encoding_equals_small_batches(grid):
    rep = synthetic.representation("rotated")
    kw = dict(seed=1, num_train=300, num_eval=200, num_variance_estimate=700)
    assert (factor_vae_score(grid, rep, encode_batch_size=64, **kw)
            == factor_vae_score(grid, rep, encode_batch_size=50000, **kw))


class _CustomSampling(SyntheticCodeGrid):
    """Same draws as the base class through an overridden method: the slow, general path."""

    def sample_factors(self, num, random_state):
        return super().sample_factors(num, random_state)


def test_general_path_equals_bulk_replay(grid):
    rep = synthetic.representation("rotated")
    kw = dict(seed=3, num_train=150, num_eval=100, num_variance_estimate=400)
    assert factor_vae_score(_CustomSampling(), rep, **kw) == factor_vae_score(grid, rep, **kw)
    kw = dict(seed=3, batch_size=8, num_train=150, num_eval=100)
    assert beta_vae_score(_CustomSampling(), rep, **kw) == beta_vae_score(grid, rep, **kw)


@pytest.mark.parametrize("sizes", [(1, 4, 3, 8, 1, 5), (2, 16, 1), (3, 6, 40, 32, 32)])
def test_bulk_replay_equals_general_path_and_leaves_the_same_state(sizes):
    """Size-1 factors (no draws), power-of-two sizes (merged draws) and rejecting sizes."""
    class Custom(SyntheticCodeGrid):
        def sample_factors(self, num, random_state):
            return super().sample_factors(num, random_state)

    rep = synthetic.representation("noisy0.2", sizes)
    fast_rs, slow_rs = np.random.RandomState(6), np.random.RandomState(6)
    kw = dict(num_train=130, num_eval=70, num_variance_estimate=300)
    fast = factor_vae_score(SyntheticCodeGrid(sizes), rep, seed=fast_rs, **kw)
    slow = factor_vae_score(Custom(sizes), rep, seed=slow_rs, **kw)
    assert fast == slow
    assert fast_rs.randint(2**31, size=8).tolist() == slow_rs.randint(2**31, size=8).tolist()
    kw = dict(batch_size=6, num_train=90, num_eval=40)
    assert (beta_vae_score(SyntheticCodeGrid(sizes), rep, seed=fast_rs, **kw)
            == beta_vae_score(Custom(sizes), rep, seed=slow_rs, **kw))
    assert fast_rs.get_state()[2] == slow_rs.get_state()[2]
    assert (fast_rs.get_state()[1] == slow_rs.get_state()[1]).all()


def test_non_finite_codes_in_the_votes_are_rejected(grid):
    calls = []

    def rep(x):  # finite for the variance estimate (first call), then an inf in every batch
        calls.append(1)
        out = np.asarray(x, dtype=np.float64).copy()
        if len(calls) > 1:
            out[::97, 1] = np.inf
        return out

    with pytest.raises(ValueError, match="non-finite"):
        factor_vae_score(grid, rep, seed=0, num_train=50, num_eval=20, num_variance_estimate=100)


def test_representation_with_wrong_output_shape_is_rejected(grid):
    with pytest.raises(ValueError, match="representation function"):
        mig_from_dataset(grid, lambda x: np.zeros(len(x)), num_train=100)
    with pytest.raises(ValueError, match="finite"):
        mig_from_dataset(grid, lambda x: np.full((len(x), 3), np.nan), num_train=100)
