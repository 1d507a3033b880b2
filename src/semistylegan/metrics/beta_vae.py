"""BetaVAE score (Higgins et al. 2017), as disentanglement_lib's `beta_vae.py` computes it.

Each point: pick a factor k = randint(K); draw two batches of `batch_size` factor
combinations that agree on factor k; the feature is the mean absolute difference of their
codes, the label is k. A `LogisticRegression(random_state=rs)` (scikit-learn defaults) is
trained on `num_train` points; "train_accuracy" and "eval_accuracy" (on `num_eval` fresh
points) are its accuracies. Study defaults: batch_size=64, num_train=10000, num_eval=5000.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import linear_model
from sklearn.exceptions import ConvergenceWarning

from semistylegan.metrics import replay, utils

__all__ = ["beta_vae_score", "beta_vae_score_from_features"]


def _fit_and_score(train_points, train_labels, eval_points, eval_labels, random_state) -> dict:
    model = linear_model.LogisticRegression(random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_points, train_labels)
    train_acc = float(np.mean(model.predict(train_points) == train_labels))
    return model, train_acc


def beta_vae_score_from_features(train_points, train_labels, eval_points, eval_labels, seed=0) -> dict:
    """BetaVAE score on fixed (num_points, d) difference features and integer factor labels."""
    tp = utils.check_codes(train_points, "train_points", min_dims=1)
    ep = utils.check_codes(eval_points, "eval_points", min_dims=1)
    tl = np.asarray(train_labels)
    el = np.asarray(eval_labels)
    if tl.shape != (len(tp),) or el.shape != (len(ep),):
        raise ValueError(f"labels must have shapes ({len(tp)},) and ({len(ep)},), got {tl.shape} and {el.shape}")
    if ep.shape[1] != tp.shape[1]:
        raise ValueError(f"eval_points must have {tp.shape[1]} columns like train_points, got {ep.shape}")
    if len(np.unique(tl)) < 2:
        raise ValueError("train_labels must contain at least 2 different factors")
    model, train_acc = _fit_and_score(tp, tl, ep, el, replay.as_random_state(seed))
    return {"train_accuracy": train_acc, "eval_accuracy": float(model.score(ep, el))}


def _sampled_points(stream: replay.FactorStream, num_points: int, batch_size: int, chunk: int):
    k_total = stream.dataset.num_factors
    labels = np.empty(num_points, dtype=np.int64)
    features = []
    if stream.replayable:  # same draws, made in bulk (replay.randint_chunks)
        ks, factors = stream.replay_groups(num_points, 2, batch_size)
        rows = np.arange(num_points)
        factors[rows, 1, :, ks] = factors[rows, 0, :, ks]
        labels[:] = ks
        for s in range(0, num_points, chunk):
            part = factors[s : s + chunk]
            codes = stream.encode([("factors", part.reshape(-1, part.shape[-1]))])
            codes = codes.reshape(len(part), 2, batch_size, codes.shape[1])
            features.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
        points = np.concatenate(features, axis=0).astype(np.float64)
        utils.check_codes(points, "BetaVAE features (codes of the representation)", min_dims=1)
        return points, labels
    done = 0
    while done < num_points:
        count = min(chunk, num_points - done)
        tokens = []
        for g in range(count):  # dlib's _generate_training_sample RandomState calls, in order
            k = stream.rs.randint(k_total)
            f1 = stream.sample_factors(batch_size)
            f2 = stream.sample_factors(batch_size)
            f2[:, k] = f1[:, k]
            labels[done + g] = k
            tokens.append(stream.observe(f1))
            tokens.append(stream.observe(f2))
        codes = stream.encode(tokens)
        codes = codes.reshape(count, 2, batch_size, codes.shape[1])
        features.append(np.mean(np.abs(codes[:, 0] - codes[:, 1]), axis=1))
        done += count
    points = np.concatenate(features, axis=0).astype(np.float64)
    utils.check_codes(points, "BetaVAE features (codes of the representation)", min_dims=1)
    return points, labels


def beta_vae_score(dataset, represent, seed=0, batch_size: int = 64, num_train: int = 10000,
                   num_eval: int = 5000, encode_batch_size: int | None = None) -> dict:
    """dlib's `compute_beta_vae_sklearn` on a ground-truth dataset -> {"train_accuracy", "eval_accuracy"}."""
    if int(batch_size) < 1 or int(num_train) < 2 or int(num_eval) < 1:
        raise ValueError(f"need batch_size >= 1, num_train >= 2, num_eval >= 1; got {batch_size}, {num_train}, "
                         f"{num_eval}")
    batch_size = int(batch_size)
    rs = replay.as_random_state(seed)
    stream = replay.FactorStream(dataset, represent, rs, encode_batch_size)
    chunk = max(1, stream.chunk_images // (2 * batch_size))
    train_points, train_labels = _sampled_points(stream, int(num_train), batch_size, chunk)
    if len(np.unique(train_labels)) < 2:
        raise ValueError("the BetaVAE training set drew a single factor; increase num_train")
    model, train_acc = _fit_and_score(train_points, train_labels, None, None, rs)
    eval_points, eval_labels = _sampled_points(stream, int(num_eval), batch_size, chunk)
    return {"train_accuracy": train_acc, "eval_accuracy": float(model.score(eval_points, eval_labels))}
