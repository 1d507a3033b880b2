"""SAP score (Kumar et al. 2018), as disentanglement_lib's `sap_score.py` computes it.

Score matrix S (d x K): with `continuous=False` (the study default), S[i, j] is the test
accuracy of `LinearSVC(C=0.01, class_weight="balanced")` trained on the single code
dimension i to predict factor j; with `continuous=True`, S[i, j] = cov(z_i, y_j)^2 /
(var z_i var y_j) on the training data (0 when var z_i <= 1e-12). SAP is the mean over
factors of the gap between the two highest entries of the column. A 1-D linear SVM cannot
separate many classes, so a perfect code only reaches about 0.23 in discrete mode.
The d*K fits run in a thread pool (liblinear releases the GIL); each fit is deterministic.
"""
from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn import svm
from sklearn.exceptions import ConvergenceWarning

from semistylegan.metrics import replay, utils

__all__ = ["sap", "sap_score_matrix", "sap_from_dataset"]


def _svm_accuracy(x_train, y_train, x_test, y_test) -> float:
    clf = svm.LinearSVC(C=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_train[:, None], y_train)
    return float(np.mean(clf.predict(x_test[:, None]) == y_test))


def sap_score_matrix(codes_train, factors_train, codes_test, factors_test, continuous: bool = False,
                     n_jobs: int | None = None) -> np.ndarray:
    """The (d, K) SAP score matrix (validated inputs)."""
    ct, ft, ce, fe = utils.check_train_test(codes_train, factors_train, codes_test, factors_test)
    d, k = ct.shape[1], ft.shape[1]
    if continuous:
        x = ct.astype(np.float64)
        y = ft.astype(np.float64)
        xc = x - x.mean(axis=0)
        yc = y - y.mean(axis=0)
        n1 = len(x) - 1
        cov = (xc.T @ yc) / n1
        var_x = np.einsum("ni,ni->i", xc, xc) / n1
        var_y = np.einsum("nj,nj->j", yc, yc) / n1
        with np.errstate(divide="ignore", invalid="ignore"):
            s = cov**2 / (var_x[:, None] * var_y[None, :])
        return np.where(var_x[:, None] > 1e-12, s, 0.0)
    jobs = [(i, j) for i in range(d) for j in range(k)]
    workers = n_jobs or min(len(jobs), os.cpu_count() or 1)
    fn = lambda ij: _svm_accuracy(ct[:, ij[0]], ft[:, ij[1]], ce[:, ij[0]], fe[:, ij[1]])  # noqa: E731
    if workers <= 1:
        values = list(map(fn, jobs))
    else:
        with ThreadPoolExecutor(workers) as pool:
            values = list(pool.map(fn, jobs))
    return np.asarray(values, dtype=np.float64).reshape(d, k)


def sap(codes_train, factors_train, codes_test, factors_test, continuous: bool = False,
        n_jobs: int | None = None) -> dict:
    """{"SAP_score": ...}: mean over factors of the top-1 minus top-2 score of the code dims."""
    s = np.sort(sap_score_matrix(codes_train, factors_train, codes_test, factors_test, continuous, n_jobs), axis=0)
    return {"SAP_score": float(np.mean(s[-1] - s[-2]))}


def sap_from_dataset(dataset, represent, seed=0, num_train: int = 10000, num_test: int = 5000, batch_size: int = 16,
                     continuous: bool = False, encode_batch_size: int | None = None, n_jobs: int | None = None) -> dict:
    """dlib's `compute_sap` (train set then test set from one RandomState)."""
    stream = replay.FactorStream(dataset, represent, replay.as_random_state(seed), encode_batch_size)
    ct, ft = replay.generate_batch_factor_code(stream, num_train, batch_size)
    ce, fe = replay.generate_batch_factor_code(stream, num_test, batch_size)
    return sap(ct, ft, ce, fe, continuous, n_jobs)
