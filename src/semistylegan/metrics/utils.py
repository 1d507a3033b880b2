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
  0 when either side has a single label) but vectorised over all (code, factor) pairs: one
  bincount counts every contingency table, and each table's terms are summed in sklearn's
  order with one np.sum, so the values are equal to the last bit (tests/metrics).
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

import math
from typing import Callable

import numpy as np

__all__ = [
    "check_codes",
    "check_factors",
    "check_pair",
    "histogram_discretize",
    "discrete_mutual_info",
    "discrete_entropy",
    "discrete_mutual_info_and_entropy",
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


def _histogram_discretize_columns(codes: np.ndarray, num_bins: int) -> np.ndarray:
    """The plain per-column form: np.histogram edges, then digitize (as searchsorted)."""
    out = np.empty(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        col = codes[:, i]
        # digitize(x, edges[:-1]) == searchsorted(edges[:-1], x, side="right") for increasing edges.
        out[:, i] = np.searchsorted(histogram_edges(col, num_bins)[:-1], col, side="right")
    return out


def histogram_discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """dlib's `_histogram_discretize` on (N, d) codes -> int64 (N, d) bins in 1..num_bins.

    All columns at once: np.histogram's edges are rebuilt with linspace's own arithmetic
    (start + k * step in the codes' dtype), a bin is guessed from (x - min) / step and then
    corrected by comparing x with those exact edges, so the result is what digitize gives
    (a binary search per value was 2/3 of MIG's time). Columns whose step underflows to 0,
    and dtypes other than float32/float64, take the per-column form.
    """
    codes = np.asarray(codes)
    num_bins = int(num_bins)
    if num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins}")
    if codes.dtype not in (np.float32, np.float64) or codes.ndim != 2 or codes.shape[0] == 0:
        return _histogram_discretize_columns(codes, num_bins)
    dtype = codes.dtype.type
    xt = np.ascontiguousarray(codes.T)  # (d, N): contiguous rows make the reductions cheap
    lo, hi = xt.min(axis=1), xt.max(axis=1)
    same = lo == hi
    lo = np.where(same, lo - dtype(0.5), lo)  # np.histogram's range for a constant column
    hi = np.where(same, hi + dtype(0.5), hi)
    step = (hi - lo) / dtype(num_bins)  # linspace: delta / div, in the codes' dtype
    if not (step > 0).all() or not np.isfinite(step).all():
        return _histogram_discretize_columns(codes, num_bins)
    lo_c, step_c = lo[:, None], step[:, None]
    edge = xt - lo_c  # one float buffer for the guess and then the edges (fewer fresh pages per call)
    edge /= step_c
    np.clip(edge, 0, num_bins - 1, out=edge)
    k = _settle_bins(xt, lo, step, edge.astype(np.int64), num_bins, edge)
    k += 1
    return k.T


def _settle_bins(xt: np.ndarray, lo: np.ndarray, step: np.ndarray, k: np.ndarray, num_bins: int,
                 scratch: np.ndarray) -> np.ndarray:
    """Bin guesses k (d, N) in 0..num_bins-1 -> the largest k with edge[k] <= x, where
    edge[k] = k * step + lo as linspace computes it (edge[0] = lo <= x). One check of every
    guess against its two edges; the few that move are checked again until none moves.
    `scratch` is a float buffer shaped like xt; k is updated in place and returned."""
    dtype = xt.dtype.type
    lo_c, step_c = lo[:, None], step[:, None]
    np.copyto(scratch, k)
    scratch *= step_c
    scratch += lo_c
    down = scratch > xt
    np.copyto(scratch, k)
    scratch += dtype(1)
    scratch *= step_c
    scratch += lo_c
    up = scratch <= xt
    up &= k < num_bins - 1
    k += up
    k -= down
    moved = np.flatnonzero(down | up)
    if moved.size:
        rows = moved // xt.shape[1]
        flat = k.reshape(-1)
        km, xm, lm, sm = flat[moved], xt.reshape(-1)[moved], lo[rows], step[rows]
        while True:
            down = km.astype(dtype) * sm + lm > xm
            km -= down
            up = ((km + 1).astype(dtype) * sm + lm <= xm) & (km < num_bins - 1)
            km += up
            if not (down.any() or up.any()):
                break
        flat[moved] = km
    return k


def _dense_labels(labels: np.ndarray, limit: int):
    """Per column: labels -> (values 0..span-1 (m, N), span (m,)) by subtracting the column's
    minimum; non-integer columns and columns spanning more than `limit` values are compacted to
    the values that occur (np.unique). Either way the order of the labels is kept."""
    n, m = labels.shape
    out = np.empty((m, n), dtype=np.int64)
    span = np.zeros(m, dtype=np.int64)
    if n == 0:
        return out, span
    wide = np.ones(m, dtype=bool)
    if labels.dtype == bool or np.issubdtype(labels.dtype, np.integer):
        np.copyto(out, labels.T)  # (m, N): contiguous rows make the reductions below cheap
        lo = out.min(axis=1)
        span = out.max(axis=1) - lo + 1
        wide = span > limit
        out -= np.where(wide, 0, lo)[:, None]
    for j in np.flatnonzero(wide):
        uniq, inverse = np.unique(labels[:, j], return_inverse=True)
        out[j] = inverse.reshape(-1)
        span[j] = len(uniq)
    return out, span


def _term_sums(counts: np.ndarray, row_marginal: np.ndarray, col_marginal: np.ndarray, total: int,
               bounds: np.ndarray) -> np.ndarray:
    """sklearn's mutual_info_score terms for the non-zero cells of many contingency tables, summed per
    table: cells bounds[t]:bounds[t + 1] (row-major, as sklearn orders them) belong to table t."""
    log_total = math.log(total)
    p = counts / total
    outer = row_marginal * col_marginal
    log_outer = -np.log(outer) + log_total + log_total
    terms = p * (np.log(counts) - log_total) + p * log_outer
    terms[np.abs(terms) < np.finfo(np.float64).eps] = 0.0
    # one np.sum per table: the same pairwise summation, hence the same float, as sklearn's
    return np.array([max(terms[a:b].sum(), 0.0) for a, b in zip(bounds[:-1], bounds[1:])])


_INDEX_CHUNK = 1 << 16  # joint indices built at a time (512 KiB of int64: the bincount input stays in L2;
# measured 4.5 ms instead of 5.9 ms for MIG of 10,000 x 10 codes with 2 MiB chunks, bench/metrics_speed.py)
_DENSE_CELLS = 1 << 22  # dense contingency tables up to this many cells in all (32 MiB)


def _mi_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI (nats) between every column of a (N, p) and every column of b (N, q): (p, q)."""
    return _mi_and_entropy(a, b)[0]


def _entropy_from_counts(counts: list, n: int) -> np.ndarray:
    """sklearn's mutual_info_score(y, y) per column from its label counts (zeros allowed)."""
    counts = [c[c > 0] for c in counts]  # the diagonal contingency: one cell per label that occurs
    if not counts:
        return np.zeros(0)
    flat = np.concatenate(counts)
    h = _term_sums(flat, flat, flat, n, np.concatenate([[0], np.cumsum([len(c) for c in counts])]))
    h[[len(c) <= 1 for c in counts]] = 0.0
    return h


def _mi_and_entropy(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MI (p, q) between the columns of a (N, p) and b (N, q), entropy (q,) of b's columns).

    Equal to sklearn's mutual_info_score(b[:, j], a[:, i]) (dlib's argument order: the
    contingency rows are b's labels), computed for all pairs at once: one bincount of
    a_row[i] + b_row[j] gives every contingency table, laid end to end in the order
    (a's column i, b's column j, b's label, a's label), i.e. row-major tables as sklearn's.
    """
    n = a.shape[0]
    limit = 4 * n + 1024  # a wider label range is compacted first
    a_lab, a_span = _dense_labels(a, limit)
    b_lab, b_span = _dense_labels(b, limit)
    p, q = len(a_span), len(b_span)
    out = np.zeros((p, q))
    if p == 0 or q == 0 or n == 0:
        return out, np.zeros(q)
    width = int(a_span.max())  # every table gets this many columns (unused ones stay empty)
    b_off = np.concatenate([[0], np.cumsum(b_span)])  # first row of each b column's tables
    stride = int(b_off[-1]) * width  # cells per a column (its q tables)
    if p * stride > _DENSE_CELLS:  # too large for dense tables: one pair at a time, on occurring labels
        counts = [np.bincount(b_lab[j], minlength=b_span[j]) for j in range(q)]
        return _mi_matrix_pairs(a_lab, b_lab), _entropy_from_counts(counts, n)
    a_lab += (np.arange(p, dtype=np.int64) * stride)[:, None]  # in place: a's cell offset in its tables
    b_lab += b_off[:-1, None]
    b_lab *= width  # b's row offset
    table = np.empty(p * stride, dtype=np.int64)
    step = max(1, min(p, _INDEX_CHUNK // max(1, q * n)))
    index = np.empty((step, q, n), dtype=np.int64)  # one buffer for every chunk
    for i0 in range(0, p, step):
        i1 = min(p, i0 + step)
        chunk = index[:i1 - i0]
        np.add(a_lab[i0:i1, None, :], b_lab[None, :, :], out=chunk)
        chunk -= i0 * stride
        table[i0 * stride:i1 * stride] = np.bincount(chunk.reshape(-1), minlength=(i1 - i0) * stride)
    # the marginals are sums of the tables: a's label counts over the rows of b's first column,
    # b's label counts over the columns of a's first column
    tables = table.reshape(p, int(b_off[-1]), width)
    a_counts = tables[:, :b_span[0], :].sum(axis=1)  # (p, width)
    b_counts = tables[0].sum(axis=1)  # (sum of b's spans,)
    entropy = _entropy_from_counts([b_counts[b_off[j]:b_off[j + 1]] for j in range(q)], n)
    cells = np.flatnonzero(table)
    i, rest = np.divmod(cells, stride)
    b_global, col = np.divmod(rest, width)  # b_global: row of the concatenated b labels
    table_starts = (np.arange(p)[:, None] * stride + b_off[None, :-1] * width).ravel()
    bounds = np.searchsorted(cells, np.append(table_starts, p * stride))
    out[:] = _term_sums(table[cells], b_counts[b_global], a_counts[i, col], n, bounds).reshape(p, q)
    out[np.count_nonzero(a_counts, axis=1) <= 1, :] = 0.0  # sklearn: MI with a single label is 0
    b_labels_used = np.add.reduceat(b_counts > 0, b_off[:-1])
    out[:, b_labels_used <= 1] = 0.0
    return out, entropy


def _mi_matrix_pairs(a_lab: np.ndarray, b_lab: np.ndarray) -> np.ndarray:
    """_mi_matrix for label sets too large for dense tables: sparse tables, one pair at a time."""
    n = a_lab.shape[1]
    out = np.zeros((a_lab.shape[0], b_lab.shape[0]))
    for i in range(a_lab.shape[0]):
        a_vals, a_idx, a_cnt = np.unique(a_lab[i], return_inverse=True, return_counts=True)
        for j in range(b_lab.shape[0]):
            b_vals, b_idx, b_cnt = np.unique(b_lab[j], return_inverse=True, return_counts=True)
            if len(a_vals) <= 1 or len(b_vals) <= 1:
                continue  # sklearn: MI with a single label is 0
            cells, counts = np.unique(b_idx.reshape(-1) * len(a_vals) + a_idx.reshape(-1), return_counts=True)
            row, col = np.divmod(cells, len(a_vals))
            out[i, j] = _term_sums(counts, b_cnt[row], a_cnt[col], n, np.array([0, len(cells)]))[0]
    return out


def discrete_mutual_info(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """m[i, j] = I(code_i; factor_j) in nats for discrete (N, d) codes and (N, K) factors -> (d, K)."""
    return _mi_matrix(np.asarray(discrete_codes), np.asarray(factors))


def discrete_entropy(factors: np.ndarray) -> np.ndarray:
    """Empirical entropy (nats) of each factor column, h[j] = I(y_j; y_j) as dlib computes it."""
    factors = np.asarray(factors)
    n = factors.shape[0]
    lab, span = _dense_labels(factors, 4 * n + 1024)
    return _entropy_from_counts([np.bincount(lab[j], minlength=span[j]) for j in range(len(span))], n)


def discrete_mutual_info_and_entropy(discrete_codes: np.ndarray, factors: np.ndarray):
    """(discrete_mutual_info, discrete_entropy of the factors), sharing the factors' label counts."""
    return _mi_and_entropy(np.asarray(discrete_codes), np.asarray(factors))


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
