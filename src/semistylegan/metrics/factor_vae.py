"""FactorVAE score (Kim & Mnih 2018; the paper's "Factor score"), as disentanglement_lib computes it.

1. Global variances: var (ddof=1) of the codes of `num_variance_estimate` random images.
2. Prune: a dimension is active when its std is >= `prune_threshold` (0.05, the study gin).
3. Each vote: pick a factor k = randint(K); draw `batch_size` factor combinations with factor k
   fixed to one value; the code dimension with the smallest variance relative to its global
   variance (among active dims) votes for k.
4. Majority-vote classifier per code dimension from `num_train` votes; the score is its
   accuracy on `num_eval` fresh votes ("eval_accuracy"); "train_accuracy" on the training votes.

Deviations from dlib 1.5, all documented in the module and the report:
- Zero-variance dimensions are never active. dlib keeps them at threshold 0 and then
  `argmin` over 0/0 = NaN picks the first NaN dim for every vote, collapsing the score to
  chance. With the study threshold 0.05 this changes nothing.
- Votes land in the column of the code dimension that won. dlib stores the index within the
  *active subset* in the full vote matrix (a relabelling of columns that cannot change either
  accuracy, since the classifier and the accuracies are per column); the scores are identical.
- "num_active_dims" is the number of active dimensions. dlib reports the total number of
  dimensions (len of the boolean mask) there; the two agree whenever no dimension is pruned.
"""
from __future__ import annotations

import numpy as np

from semistylegan.metrics import replay, utils

__all__ = ["factor_vae_score", "factor_vae_score_from_codes", "prune_dims"]


def prune_dims(variances: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Boolean mask of active dimensions: std >= threshold and variance > 0."""
    variances = np.asarray(variances, dtype=np.float64)
    return (np.sqrt(variances) >= threshold) & (variances > 0)


def _votes(group_codes: np.ndarray, factor_index: np.ndarray, global_variances: np.ndarray,
           active: np.ndarray, num_factors: int) -> np.ndarray:
    """(K, d) vote matrix from group codes (G, B, d) and the fixed factor of each group (G,)."""
    local = np.var(group_codes, axis=1, ddof=1)  # (G, d), as np.var(codes, 0, ddof=1) per group
    active_idx = np.flatnonzero(active)
    winner = active_idx[np.argmin(local[:, active_idx] / global_variances[active_idx], axis=1)]
    votes = np.zeros((num_factors, group_codes.shape[2]), dtype=np.int64)
    np.add.at(votes, (np.asarray(factor_index, dtype=np.int64), winner), 1)
    return votes


def _scores(train_votes: np.ndarray, eval_votes: np.ndarray, num_active: int) -> dict:
    classifier = np.argmax(train_votes, axis=0)  # majority factor per code dim, ties -> lowest factor
    cols = np.arange(train_votes.shape[1])
    return {
        "train_accuracy": float(train_votes[classifier, cols].sum() / train_votes.sum()),
        "eval_accuracy": float(eval_votes[classifier, cols].sum() / eval_votes.sum()),
        "num_active_dims": int(num_active),
    }


def _zero(num_active: int = 0) -> dict:
    return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": int(num_active)}


def factor_vae_score_from_codes(variance_codes, train_groups, train_factor_index, eval_groups,
                                eval_factor_index, num_factors: int | None = None,
                                prune_threshold: float = 0.05) -> dict:
    """FactorVAE score on fixed arrays.

    variance_codes: (M, d) codes of random images (global variances); train_groups /
    eval_groups: (G, B, d) codes of groups that share one factor; *_factor_index: (G,) which
    factor each group keeps fixed; num_factors defaults to max index + 1.
    """
    variance_codes = utils.check_codes(variance_codes, "variance_codes", min_dims=1)
    d = variance_codes.shape[1]
    groups = []
    for name, g, idx in (("train_groups", train_groups, train_factor_index),
                         ("eval_groups", eval_groups, eval_factor_index)):
        g = np.asarray(g)
        if g.ndim != 3 or g.shape[2] != d or g.shape[1] < 2 or g.shape[0] < 1:
            raise ValueError(f"{name} must have shape (G, B >= 2, {d}), got {g.shape}")
        utils.check_codes(g.reshape(-1, d), name, min_dims=1)
        idx = np.asarray(idx)
        if idx.shape != (g.shape[0],) or not np.issubdtype(idx.dtype, np.integer) or (idx < 0).any():
            raise ValueError(f"the factor index of {name} must be a non-negative integer array of shape "
                             f"({g.shape[0]},)")
        groups.append((g, idx))
    k = int(num_factors) if num_factors is not None else int(max(groups[0][1].max(), groups[1][1].max())) + 1
    global_var = np.var(variance_codes, axis=0, ddof=1)
    active = prune_dims(global_var, prune_threshold)
    if not active.any():
        return _zero()
    train_votes = _votes(groups[0][0], groups[0][1], global_var, active, k)
    eval_votes = _votes(groups[1][0], groups[1][1], global_var, active, k)
    return _scores(train_votes, eval_votes, int(active.sum()))


def _finite(codes: np.ndarray) -> np.ndarray:
    if not np.isfinite(codes).all():
        raise ValueError("the representation function returned non-finite codes (NaN or inf)")
    return codes


def _sample_variance_in_place(codes: np.ndarray) -> np.ndarray:
    """np.var(codes, axis=0, ddof=1) by np.var's own steps (sum, divide, subtract, square, sum,
    divide), hence the same floats, but overwriting `codes` instead of allocating its copy."""
    if codes.dtype not in (np.float32, np.float64):
        return np.var(codes, axis=0, ddof=1)
    mean = np.add.reduce(codes, axis=0, keepdims=True)
    np.true_divide(mean, codes.shape[0], out=mean)
    codes -= mean
    np.multiply(codes, codes, out=codes)
    variance = np.add.reduce(codes, axis=0)
    np.true_divide(variance, codes.shape[0] - 1, out=variance)
    return variance


def _sampled_votes(stream: replay.FactorStream, num_points: int, batch_size: int, global_var, active,
                   chunk_groups: int):
    k_total = stream.dataset.num_factors
    votes = np.zeros((k_total, len(global_var)), dtype=np.int64)
    if stream.replayable:  # same draws, made in bulk (replay.randint_chunks)
        active_idx = np.flatnonzero(active)
        active_var = global_var[active_idx]
        ks_parts, winners = [], []
        for ks, factors in stream.replay_group_chunks(num_points, 1, batch_size, chunk_groups):
            n = len(ks)
            # sample-major (batch, n, K): sample i of every group in a row, so that the codes
            # reshape to (batch, n, d) and np.var reduces over a leading axis (fast, and the same
            # sequential sum as dlib's np.var(codes, axis=0) on each (batch, d) block)
            f = np.ascontiguousarray(factors[:, 0].transpose(2, 0, 1))
            rows = np.arange(n)
            f[:, rows, ks] = f[0, rows, ks]
            codes = _finite(stream.encode([("factors", f.reshape(-1, k_total))])).reshape(batch_size, n, -1)
            local = _sample_variance_in_place(codes)
            winners.append(active_idx[np.argmin(local[:, active_idx] / active_var, axis=1)])
            ks_parts.append(ks)
        if ks_parts:
            flat = np.concatenate(ks_parts) * len(global_var) + np.concatenate(winners)
            votes += np.bincount(flat, minlength=votes.size).reshape(votes.shape)
        return votes
    done = 0
    while done < num_points:
        count = min(chunk_groups, num_points - done)
        ks = np.empty(count, dtype=np.int64)
        tokens = []
        for g in range(count):  # the RandomState calls of dlib's _generate_training_sample, in order
            k = stream.rs.randint(k_total)
            f = stream.sample_factors(batch_size)
            f[:, k] = f[0, k]
            ks[g] = k
            tokens.append(stream.observe(f))
        codes = _finite(stream.encode(tokens)).reshape(count, batch_size, -1)
        votes += _votes(codes, ks, global_var, active, k_total)
        done += count
    return votes


def factor_vae_score(dataset, represent, seed=0, batch_size: int = 64, num_train: int = 10000,
                     num_eval: int = 5000, num_variance_estimate: int = 10000,
                     prune_threshold: float = 0.05, encode_batch_size: int | None = None) -> dict:
    """dlib's `compute_factor_vae` (study defaults) on a ground-truth dataset.

    `represent(images) -> codes (N, d)`; `seed` is an int or a RandomState. Same seed and
    arguments as dlib -> the same draws and the same score (see the module note).
    Returns {"train_accuracy", "eval_accuracy", "num_active_dims"}.
    """
    if int(batch_size) < 2:
        raise ValueError(f"batch_size must be >= 2 (a variance needs 2 samples), got {batch_size}")
    for name, v in (("num_train", num_train), ("num_eval", num_eval), ("num_variance_estimate", num_variance_estimate)):
        if int(v) < (2 if name == "num_variance_estimate" else 1):
            raise ValueError(f"{name} must be positive (>= 2 for num_variance_estimate), got {v}")
    batch_size = int(batch_size)
    stream = replay.FactorStream(dataset, represent, replay.as_random_state(seed), encode_batch_size)
    f = stream.sample_factors(int(num_variance_estimate))
    variance_codes = utils.check_codes(stream.encode([stream.observe(f)]), "codes of the variance estimate", min_dims=1)
    global_var = np.var(variance_codes, axis=0, ddof=1)
    active = prune_dims(global_var, prune_threshold)
    if not active.any():
        return _zero()
    chunk = max(1, stream.chunk_images // batch_size)
    train_votes = _sampled_votes(stream, int(num_train), batch_size, global_var, active, chunk)
    eval_votes = _sampled_votes(stream, int(num_eval), batch_size, global_var, active, chunk)
    return _scores(train_votes, eval_votes, int(active.sum()))
