"""L2 (docs/method.md, "Metrics"): how far predicted codes are from the true codes c in [0, 1]^K.

`l2` is the mean over samples of the (non-squared) Euclidean norm ||c_hat - c||_2, plus the
per-factor mean absolute error and root-mean-square error. The codes are identifiable (the
model is trained to output c itself), so no alignment or permutation is involved.
`l2_from_dataset` encodes `num_samples` labelled real images drawn with a seed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from semistylegan.metrics import replay, utils

__all__ = ["l2", "l2_from_dataset"]


def l2(codes_pred, codes_true, names: Sequence[str] | None = None) -> dict:
    """{"l2", "l2_std", "mae_per_factor", "rmse_per_factor"} for (N, K) predicted and true codes."""
    pred = utils.check_codes(codes_pred, "codes_pred", min_dims=1).astype(np.float64)
    true = utils.check_codes(codes_true, "codes_true", min_dims=1).astype(np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"codes_pred and codes_true must have the same shape, got {pred.shape} and {true.shape}")
    names = list(names) if names is not None else [f"factor{k}" for k in range(true.shape[1])]
    if len(names) != true.shape[1]:
        raise ValueError(f"names must list {true.shape[1]} factors, got {len(names)}")
    diff = pred - true
    norms = np.sqrt(np.sum(diff**2, axis=1))
    return {
        "l2": float(norms.mean()),
        "l2_std": float(norms.std()),
        "mae_per_factor": {n: float(v) for n, v in zip(names, np.abs(diff).mean(axis=0))},
        "rmse_per_factor": {n: float(v) for n, v in zip(names, np.sqrt((diff**2).mean(axis=0)))},
    }


def l2_from_dataset(dataset, encode, num_samples: int = 10000, seed: int = 0, batch_size: int = 256) -> dict:
    """L2 of `encode(images) -> codes (N, K)` on `num_samples` labelled images of `dataset`.

    Indices are drawn uniformly (with replacement) from the images whose factors are all known,
    with RandomState(seed).
    """
    candidates = np.asarray(dataset.labeled_candidates())
    if not getattr(dataset, "is_grid", False):
        candidates = candidates[(np.asarray(dataset.classes(candidates)) >= 0).all(axis=1)]
    if len(candidates) == 0:
        raise ValueError("the dataset has no fully labelled image to measure L2 on")
    rs = replay.as_random_state(seed)
    idx = candidates[rs.randint(len(candidates), size=int(num_samples))]
    preds = []
    for s in range(0, len(idx), batch_size):
        preds.append(np.asarray(encode(dataset.images(idx[s : s + batch_size]))))
    return l2(np.concatenate(preds, axis=0), dataset.codes(idx), dataset.factor_space.names)
