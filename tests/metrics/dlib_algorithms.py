"""disentanglement_lib 1.5's MIG and FactorVAE score, step by step as dlib computes them.

A plain re-implementation in dlib's own layout and order, written from its algorithm: the
reference that the vectorised metrics are tested against on random inputs (CI does not install
disentanglement_lib), and the stand-in that bench/metrics_speed.py times when dlib is missing.

- MIG: codes (d, N) and factors (K, N) as dlib holds them; per code dimension, np.histogram
  edges and np.digitize against all edges but the last; then sklearn's mutual_info_score for
  every (code, factor) pair and per factor for the entropy, one call each, as dlib loops.
- FactorVAE: dlib's compute_factor_vae with a prune threshold argument (the study gin binds
  0.05): global variances of `num_variance_estimate` observations encoded 64 at a time, then
  one vote per iteration, each drawing k, the factors and the observations from the one
  RandomState in dlib's order. Quirks kept: votes go to the index within the active dims, and
  "num_active_dims" is the length of the mask.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import mutual_info_score


def histogram_discretize(mus: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """(d, N) codes -> (d, N) bins in 1..num_bins."""
    out = np.zeros_like(mus, dtype=np.int64)
    for i in range(mus.shape[0]):
        edges = np.histogram(mus[i, :], num_bins)[1]
        out[i, :] = np.digitize(mus[i, :], edges[:-1])
    return out


def discrete_mutual_info(mus: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(d, N) discrete codes, (K, N) factors -> (d, K) MI, one sklearn call per pair."""
    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = mutual_info_score(ys[j, :], mus[i, :])
    return m


def discrete_entropy(ys: np.ndarray) -> np.ndarray:
    """(K, N) factors -> (K,) empirical entropies, one sklearn call per factor."""
    return np.array([mutual_info_score(ys[j, :], ys[j, :]) for j in range(ys.shape[0])])


def compute_mig(mus: np.ndarray, ys: np.ndarray, num_bins: int = 20) -> dict:
    """dlib's _compute_mig on (d, N) codes and (K, N) factors."""
    discrete = histogram_discretize(mus, num_bins)
    m = discrete_mutual_info(discrete, ys)
    entropy = discrete_entropy(ys)
    ordered = np.sort(m, axis=0)[::-1]
    return {"discrete_mig": np.mean(np.divide(ordered[0, :] - ordered[1, :], entropy[:]))}


def _encode_in_batches(observations, represent, batch_size: int) -> np.ndarray:
    parts = [represent(observations[s:s + batch_size]) for s in range(0, len(observations), batch_size)]
    return np.vstack(parts)


def compute_factor_vae(dataset, represent, random_state, batch_size: int, num_train: int, num_eval: int,
                       num_variance_estimate: int, prune_threshold: float = 0.05) -> dict:
    """dlib's compute_factor_vae: `dataset` has dlib's GroundTruthData interface."""
    observations = dataset.sample_observations(num_variance_estimate, random_state)
    global_variances = np.var(_encode_in_batches(observations, represent, 64), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes_of(num_points):
        votes = np.zeros((dataset.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            k = random_state.randint(dataset.num_factors)
            factors = dataset.sample_factors(batch_size, random_state)
            factors[:, k] = factors[0, k]
            codes = represent(dataset.sample_observations_from_factors(factors, random_state))
            local = np.var(codes, axis=0, ddof=1)
            votes[k, np.argmin(local[active] / global_variances[active])] += 1
        return votes

    train_votes = votes_of(num_train)
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(train_votes.shape[1])
    train_accuracy = np.sum(train_votes[classifier, cols]) * 1.0 / np.sum(train_votes)
    eval_votes = votes_of(num_eval)
    eval_accuracy = np.sum(eval_votes[classifier, cols]) * 1.0 / np.sum(eval_votes)
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy, "num_active_dims": len(active)}
