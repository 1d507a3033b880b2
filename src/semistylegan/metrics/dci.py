"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018), dlib's variant.

Per factor j a `GradientBoostingClassifier` (scikit-learn defaults: 100 stages, depth 3,
lr 0.1) is fitted on all code dims; R[:, j] = |feature_importances_|; informativeness is its
classification *accuracy* (train and test; dlib's keys say "err" in places but hold accuracy).
Disentanglement: D_i = 1 - H_K(R[i, :] / sum) per code, weighted by R[i].sum() / R.sum();
completeness: C_j = 1 - H_d(R[:, j] / sum) per factor, weighted by R[:, j].sum() / R.sum()
(uniform weights when R is all zero); 1e-11 is added before normalising, as in dlib.

Differences from dlib: dlib's classifiers use random_state=None (two runs differ by ~1e-3);
here every classifier gets `random_state=seed`, so results are reproducible, and the K fits run
in parallel over factors, in processes (joblib's loky: gradient boosting holds the GIL too much
for threads to help) when there are at least 1,000 training points; below that the process
start-up costs more than it saves and the fits run one after the other. `n_jobs` and `backend`
override this; results do not depend on them.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.stats
from sklearn import ensemble

from semistylegan.metrics import replay, utils

__all__ = ["dci", "dci_from_dataset", "dci_from_importance", "disentanglement", "completeness", "importance_gbt"]


def disentanglement(importance: np.ndarray) -> float:
    importance = np.asarray(importance, dtype=np.float64)
    per_code = 1.0 - scipy.stats.entropy(importance.T + 1e-11, base=importance.shape[1])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_code * weights.sum(axis=1) / weights.sum()))


def completeness(importance: np.ndarray) -> float:
    importance = np.asarray(importance, dtype=np.float64)
    per_factor = 1.0 - scipy.stats.entropy(importance + 1e-11, base=importance.shape[0])
    weights = importance if importance.sum() != 0.0 else np.ones_like(importance)
    return float(np.sum(per_factor * weights.sum(axis=0) / weights.sum()))


def dci_from_importance(importance: np.ndarray) -> dict:
    return {"disentanglement": disentanglement(importance), "completeness": completeness(importance)}


def _fit_one(x_train, y_train, x_test, y_test, seed):
    model = ensemble.GradientBoostingClassifier(random_state=seed)
    model.fit(x_train, y_train)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def importance_gbt(codes_train, factors_train, codes_test, factors_test, seed=0, n_jobs: int | None = None,
                   backend: str = "loky"):
    """(R (d, K), mean train accuracy, mean test accuracy) from one GBT per factor, in parallel."""
    from joblib import Parallel, delayed

    k = factors_train.shape[1]
    if n_jobs is None:
        n_jobs = min(k, os.cpu_count() or 1) if len(codes_train) >= 1000 else 1
    workers = max(1, int(n_jobs))
    results = Parallel(n_jobs=workers, backend=backend)(
        delayed(_fit_one)(codes_train, factors_train[:, j], codes_test, factors_test[:, j], seed) for j in range(k)
    )
    importance = np.stack([r[0] for r in results], axis=1)
    return importance, float(np.mean([r[1] for r in results])), float(np.mean([r[2] for r in results]))


def dci(codes_train, factors_train, codes_test, factors_test, seed=0, n_jobs: int | None = None,
        backend: str = "loky") -> dict:
    """{"disentanglement", "completeness", "informativeness_train", "informativeness_test"}."""
    ct, ft, ce, fe = utils.check_train_test(codes_train, factors_train, codes_test, factors_test)
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int (or None for dlib's unseeded classifiers), got {type(seed).__name__}")
    importance, train_acc, test_acc = importance_gbt(ct, ft, ce, fe, seed, n_jobs, backend)
    out = {"informativeness_train": train_acc, "informativeness_test": test_acc}
    out.update(dci_from_importance(importance))
    return out


def dci_from_dataset(dataset, represent, seed=0, num_train: int = 10000, num_test: int = 5000, batch_size: int = 16,
                     encode_batch_size: int | None = None, n_jobs: int | None = None, backend: str = "loky") -> dict:
    """dlib's `compute_dci`; `seed` (an int) seeds both the sampling stream and the classifiers."""
    stream = replay.FactorStream(dataset, represent, replay.as_random_state(seed), encode_batch_size)
    ct, ft = replay.generate_batch_factor_code(stream, num_train, batch_size)
    ce, fe = replay.generate_batch_factor_code(stream, num_test, batch_size)
    gbt_seed = int(seed) if isinstance(seed, (int, np.integer)) else 0
    return dci(ct, ft, ce, fe, seed=gbt_seed, n_jobs=n_jobs, backend=backend)
