"""Mutual Information Gap (Chen et al. 2018), as disentanglement_lib's `mig.py` computes it.

codes are discretised into `num_bins` equal-width histogram bins per dimension; for each
factor j, MIG_j = (I(z_a; y_j) - I(z_b; y_j)) / H(y_j) with a, b the two codes of highest MI;
the score is the mean over factors. MI and H are empirical, in nats (H is the entropy of the
observed classes, not log of the factor size). Study defaults: num_train=10000,
batch_size=16, 20 bins.
"""
from __future__ import annotations

import numpy as np

from semistylegan.metrics import replay, utils

__all__ = ["mig", "mig_per_factor", "mig_from_dataset"]


def mig_per_factor(codes, factors, num_bins: int = 20) -> np.ndarray:
    """MIG of each factor: (K,) array. Same checks as `mig`."""
    codes, factors = utils.check_pair(codes, factors)
    discrete = utils.histogram_discretize(codes, num_bins)
    m, entropy = utils.discrete_mutual_info_and_entropy(discrete, factors)  # (d, K), (K,)
    top2 = -np.sort(-m, axis=0)[:2]
    return (top2[0] - top2[1]) / entropy


def mig(codes, factors, num_bins: int = 20) -> dict:
    """{"discrete_mig": MIG} of codes (N, d >= 2) against integer factor classes (N, K)."""
    return {"discrete_mig": float(np.mean(mig_per_factor(codes, factors, num_bins)))}


def mig_from_dataset(dataset, represent, seed=0, num_train: int = 10000, batch_size: int = 16,
                     num_bins: int = 20, encode_batch_size: int | None = None) -> dict:
    """dlib's `compute_mig`: same seed (int or RandomState) -> same draws -> same score."""
    stream = replay.FactorStream(dataset, represent, replay.as_random_state(seed), encode_batch_size)
    codes, factors = replay.generate_batch_factor_code(stream, num_train, batch_size)
    return mig(codes, factors, num_bins)
