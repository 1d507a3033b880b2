"""Shared pieces of the disentanglement metrics: input checks, discretisation, discrete MI.

Conventions (the issue's interface, transposed from disentanglement_lib's):
- `codes` are float arrays of shape (N, d): one row per sample, one column per code dimension;
- `factors` are integer arrays of shape (N, K) of factor *classes* (not factor values).

Everything here reproduces disentanglement_lib 1.5 (`evaluation/metrics/utils.py`):
- `histogram_discretize` = `_histogram_discretize`: per code dimension, `np.histogram` edges
  (linspace(min, max, bins + 1) in the input's dtype, so float32 codes get float32 edges; a
  constant dimension uses (v - 0.5, v + 0.5)), then `np.digitize` against all edges but the
  last: output classes 1..num_bins, the maximum lands in the last bin.
- `discrete_mutual_info` / `discrete_entropy` = sklearn's `mutual_info_score` on every pair,
  in nats, with the same formula (terms below machine epsilon set to 0, total clipped at 0,
  0 when either side has a single label) but vectorised over all (code, factor) pairs.
- The sampling that replays dlib's random stream lives in `metrics.replay`.

Encoding is postponed and batched, but in batches of `encode_batch_size` = 256 images by
default, not thousands: on CPU a small CNN reads 256-image batches 2.6x faster than 4096-image
ones (the activations of large batches fall out of cache; measured with bench/metrics_speed.py),
and the procedural renderer behaves the same way.

A representation function (`represent` / `encode`) must be deterministic and per-sample
(its output for an image must not depend on the other images in the batch: eval-mode
networks are); only then is large-batch encoding exactly equivalent to dlib's small batches.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "check_codes",
    "check_factors",
    "check_pair",
    "histogram_discretize",
    "discrete_mutual_info",
    "discrete_entropy",
    "normalize_data",
]

Represent = Callable[[np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# Input validation: a ValueError naming the array and what was expected, never a silent NaN.

def check_codes(codes, name: str = "codes", min_dims: int = 2) -> np.ndarray:
    """Return `codes` as a float array (N, d); raise ValueError on a bad shape or non-finite values.

    float32 and float64 keep their dtype (the histogram edges depend on it, as in dlib);
    other numeric dtypes become float64.
    """
    arr = np.asarray(codes)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array of shape (N, d), got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, d) (samples x code dimensions), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} must hold at least 2 samples, got shape {arr.shape}")
    if arr.shape[1] < min_dims:
        raise ValueError(f"{name} must have at least {min_dims} code dimensions, got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} must be finite, found {arr[tuple(bad)]} at row {bad[0]}, column {bad[1]}")
    return arr


def check_factors(factors, name: str = "factors", require_variation: bool = True) -> np.ndarray:
    """Return `factors` as an int64 array (N, K) of classes; raise ValueError when it is unusable.

    Integral floats are accepted (and converted); a factor with a single value is rejected
    because its entropy is 0 and every score normalised by it would be NaN.
    """
    arr = np.asarray(factors)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, K) (samples x factors), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must hold at least 2 samples and 1 factor, got shape {arr.shape}")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.int64, copy=False)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer factor classes, got non-integer values (dtype {arr.dtype})")
        arr = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must be an integer array of factor classes, got dtype {arr.dtype}")
    if require_variation:
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        single = np.flatnonzero(lo == hi)
        if single.size:
            raise ValueError(
                f"{name}: factor column {int(single[0])} has a single value ({int(lo[single[0]])}); "
                "every factor needs at least 2 distinct classes"
            )
    return arr


def check_pair(codes, factors, codes_name: str = "codes", factors_name: str = "factors", min_dims: int = 2):
    codes = check_codes(codes, codes_name, min_dims=min_dims)
    factors = check_factors(factors, factors_name)
    if codes.shape[0] != factors.shape[0]:
        raise ValueError(
            f"{codes_name} and {factors_name} must have the same number of rows, got {codes.shape[0]} and "
            f"{factors.shape[0]}"
        )
    return codes, factors


def check_train_test(codes_train, factors_train, codes_test, factors_test, min_dims: int = 2):
    ct, ft = check_pair(codes_train, factors_train, "codes_train", "factors_train", min_dims)
    ce, fe = check_pair(codes_test, factors_test, "codes_test", "factors_test", min_dims)
    if ce.shape[1] != ct.shape[1]:
        raise ValueError(f"codes_test must have {ct.shape[1]} code dimensions like codes_train, got shape {ce.shape}")
    if fe.shape[1] != ft.shape[1]:
        raise ValueError(f"factors_test must have {ft.shape[1]} factors like factors_train, got shape {fe.shape}")
    return ct, ft, ce, fe


# ---------------------------------------------------------------------------------------------
# Discretisation and discrete information

def histogram_edges(column: np.ndarray, num_bins: int) -> np.ndarray:
    """np.histogram's edges for one code dimension (input dtype; +-0.5 around a constant)."""
    return np.histogram_bin_edges(column, num_bins)


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """dlib's `_histogram_discretize` on (N, d) codes -> int64 (N, d) bins in 1..num_bins."""
    codes = np.asarray(codes)
    if int(num_bins) < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins}")
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        col = codes[:, i]
        # digitize(x, edges[:-1]) == searchsorted(edges[:-1], x, side="right") for increasing edges.
        out[:, i] = np.searchsorted(histogram_edges(col, int(num_bins))[:-1], col, side="right")
    return out


def _compact_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: labels -> 0..u-1 (only the values that occur) and the number u of values."""
    n, m = labels.shape
    out = np.empty((n, m), dtype=np.int64)
    counts = np.empty(m, dtype=np.int64)
    for j in range(m):
        col = labels[:, j]
        lo = col.min()
        span = col.max() - lo
        if span < 4 * n + 1024:  # small range: a lookup table is faster than np.unique
            present = np.zeros(int(span) + 1, dtype=bool)
            shifted = col - lo
            present[shifted] = True
            table = np.cumsum(present) - 1
            out[:, j] = table[shifted]
            counts[j] = int(present.sum())
        else:
            uniq, inv = np.unique(col, return_inverse=True)
            out[:, j] = inv.reshape(-1)
            counts[j] = len(uniq)
    return out, counts


def _mi_from_contingency(table: np.ndarray) -> float:
    """sklearn's mutual_info_score from a dense contingency table (rows, cols) of counts."""
    rows = table.sum(axis=1)
    cols = table.sum(axis=0)
    if np.count_nonzero(rows) <= 1 or np.count_nonzero(cols) <= 1:
        return 0.0
    total = float(table.sum())
    r, c = np.nonzero(table)
    nz = table[r, c].astype(np.float64)
    p = nz / total
    outer = rows[r].astype(np.int64) * cols[c].astype(np.int64)
    log_outer = -np.log(outer.astype(np.float64)) + np.log(float(rows.sum())) + np.log(float(cols.sum()))
    terms = p * (np.log(nz) - np.log(total)) + p * log_outer
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    return float(max(terms.sum(), 0.0))


def _mi_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI (nats) between every column of a (N, p) and every column of b (N, q): (p, q)."""
    a_lab, a_num = _compact_labels(a)
    b_lab, b_num = _compact_labels(b)
    out = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        if a_num[i] <= 1:
            continue  # MI with a single label is 0 by definition (sklearn returns 0.0)
        for j in range(b.shape[1]):
            if b_num[j] <= 1:
                continue
            joint = a_lab[:, i] * b_num[j] + b_lab[:, j]
            table = np.bincount(joint, minlength=a_num[i] * b_num[j]).reshape(a_num[i], b_num[j])
            out[i, j] = _mi_from_contingency(table)
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """m[i, j] = I(code_i; factor_j) in nats for discrete (N, d) codes and (N, K) factors -> (d, K)."""
    return _mi_matrix(np.asarray(discrete_codes), np.asarray(factors))


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy (nats) of each factor column, h[j] = I(y_j; y_j) as dlib computes it."""
    factors = np.asarray(factors)
    lab, num = _compact_labels(factors)
    h = np.zeros(factors.shape[1])
    for j in range(factors.shape[1]):
        if num[j] > 1:
            h[j] = _mi_from_contingency(np.diag(np.bincount(lab[:, j], minlength=num[j])))
    return h


def normalize_data(train: np.ndarray, test: np.ndarray | None = None):
    """dlib's normalize_data on (N, d) codes with the training mean/std (ddof=0).

    Deviation (documented): dlib divides by a zero std for a constant dimension, which yields
    NaN and then a ValueError inside scikit-learn; here a constant dimension is only centred
    (std replaced by 1), i.e. it becomes an all-zero, uninformative feature.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    train_n = (train - mean) / std
    test_n = None if test is None else (test - mean) / std
    return train_n, test_n
