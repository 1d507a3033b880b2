"""Modularity and explicitness (Ridgeway & Mozer 2018), as disentanglement_lib computes them.

Modularity: MI between the 20-bin discretised training codes and the factors; per code
dimension 1 - (sum_j MI^2 - max MI^2) / (max MI^2 (K - 1)), 0 where max MI = 0; mean over
dims. Explicitness: codes standardised with the training mean/std (ddof=0); per factor a
`LogisticRegression()` (scikit-learn defaults) on all dims; macro one-vs-rest ROC-AUC of its
probabilities on train and test; mean over factors.

Deviations from dlib 1.5, only where dlib fails or misaligns:
- a constant code dimension is centred but not divided by its zero std (dlib gets NaN and
  scikit-learn raises);
- the test labels are binarised against the classifier's training classes, and a class
  column without positives or negatives in a split is left out of that split's macro mean
  (dlib refits the binariser on the test labels, which misaligns the columns when a class is
  missing from the test set). With every class present both are identical.
With K = 1 factor, modularity is 1 for every informative dim (one factor only).
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn import linear_model, metrics
from sklearn.exceptions import ConvergenceWarning

from semistylegan.metrics import replay, utils

__all__ = ["modularity", "modularity_explicitness", "modularity_explicitness_from_dataset", "explicitness_per_factor"]


def modularity(mutual_information: np.ndarray) -> float:
    """dlib's modularity from a (d, K) MI (or importance) matrix."""
    sq = np.square(np.asarray(mutual_information, dtype=np.float64))
    mx = sq.max(axis=1)
    k = sq.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - mx) / (mx * (k - 1.0)) if k > 1 else np.zeros_like(mx)
    score = 1.0 - delta
    score[mx == 0.0] = 0.0
    return float(np.mean(score))


def _auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    onehot = (y[:, None] == classes[None, :]).astype(np.int64)
    pos = onehot.sum(axis=0)
    keep = (pos > 0) & (pos < len(y))
    if not keep.any():
        raise ValueError("explicitness: a split holds a single class of a factor; ROC-AUC is undefined")
    return float(metrics.roc_auc_score(onehot[:, keep], proba[:, keep], average="macro"))


def explicitness_per_factor(codes_train_norm, y_train, codes_test_norm, y_test) -> tuple[float, float]:
    clf = linear_model.LogisticRegression()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(codes_train_norm, y_train)
    return (_auc(y_train, clf.predict_proba(codes_train_norm), clf.classes_),
            _auc(y_test, clf.predict_proba(codes_test_norm), clf.classes_))


def modularity_explicitness(codes_train, factors_train, codes_test, factors_test, num_bins: int = 20,
                            n_jobs: int | None = None) -> dict:
    """{"modularity_score", "explicitness_score_train", "explicitness_score_test"}."""
    ct, ft, ce, fe = utils.check_train_test(codes_train, factors_train, codes_test, factors_test)
    mi = utils.discrete_mutual_info(utils.histogram_discretize(ct, num_bins), ft)
    train_n, test_n = utils.normalize_data(ct.astype(np.float64), ce.astype(np.float64))
    k = ft.shape[1]
    fn = lambda j: explicitness_per_factor(train_n, ft[:, j], test_n, fe[:, j])  # noqa: E731
    # serial by default: lbfgs logistic regression holds the GIL, threads measured slower here
    workers = int(n_jobs) if n_jobs else 1
    if workers <= 1:
        pairs = list(map(fn, range(k)))
    else:
        with ThreadPoolExecutor(workers) as pool:
            pairs = list(pool.map(fn, range(k)))
    pairs = np.asarray(pairs)
    return {
        "modularity_score": modularity(mi),
        "explicitness_score_train": float(np.mean(pairs[:, 0])),
        "explicitness_score_test": float(np.mean(pairs[:, 1])),
    }


def modularity_explicitness_from_dataset(dataset, represent, seed=0, num_train: int = 10000, num_test: int = 5000,
                                         batch_size: int = 16, encode_batch_size: int | None = None,
                                         n_jobs: int | None = None) -> dict:
    """dlib's `compute_modularity_explicitness` (train set then test set from one RandomState)."""
    stream = replay.FactorStream(dataset, represent, replay.as_random_state(seed), encode_batch_size)
    ct, ft = replay.generate_batch_factor_code(stream, num_train, batch_size)
    ce, fe = replay.generate_batch_factor_code(stream, num_test, batch_size)
    return modularity_explicitness(ct, ft, ce, fe, n_jobs=n_jobs)
