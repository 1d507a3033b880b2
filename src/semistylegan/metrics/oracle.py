"""The oracle encoder E_oracle: a small CNN that reads the factor code c off real images.

It is trained once per dataset on fully labelled data and then used to read generated images
(MIG-gen, L2-gen, docs/method.md, "Metrics") and to embed images for the oracle FID.

Design choices (documented):
- Per-factor *classification* (one softmax head per factor, cross-entropy, unknown labels
  ignored), not regression: the factors of the grid datasets are discrete, a classifier reaches
  higher accuracy than a regressor of the same size, and an ambiguous reading (a square at 0 vs
  90 degrees) picks one valid class instead of averaging to a value no image has. The code read
  off an image is the code of the arg-max class, class j of m -> j / (m - 1).
- Architecture: stride-2 4x4 convolutions (32, 64, 128, ... channels, LeakyReLU) down to 4x4,
  a 256-unit hidden layer (the "features" used for the oracle FID), one linear head per factor.
- Training: Adam (lr 2e-3, cosine decay), batch 128, images drawn uniformly from the grid with a
  fixed seed; 5% of the grid (chosen by a hash of the flat index) is never trained on and gives
  the held-out L2, MIG and per-factor accuracy stored with the weights.
- Confidence: `read(images)` also gives the max-softmax of each factor head; the meta holds the
  2nd percentile of it on held-out real images ("confidence_floor"), below which a reading is
  called unsure (the out-of-distribution statistic of docs/method.md ("Generator metrics")).
- Cache: `$SEMISTYLEGAN_CACHE/oracles/` (or `~/.cache/semistylegan/oracles/`), one file per
  (dataset name, resolution, channels, oracle version, training steps, seed), written to a
  temporary file and renamed; loaded with `torch.load(weights_only=True)`. A cached file is used
  only if its meta matches the dataset (name, resolution, channels, factor sizes and a hash of
  a few of its images, so a changed renderer invalidates it) and the version; otherwise the
  oracle is trained again and the file replaced.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semistylegan import progress
from semistylegan.data.dataset import images_to_tensor
from semistylegan.data.factors import FactorSpace
from semistylegan.nets.encoder import ConvEncoder

__all__ = [
    "CONFIDENCE_FLOOR_PERCENTILE",
    "DEFAULT_TRAIN_STEPS",
    "ORACLE_VERSION",
    "Oracle",
    "OracleNet",
    "cached_meta_mismatch",
    "dataset_fingerprint",
    "get_oracle",
    "held_out_mask",
    "oracle_cache_dir",
    "oracle_path",
    "train_oracle",
]

# 2: the meta holds the dataset fingerprint and the confidence floor (files of version 1 are rebuilt)
ORACLE_VERSION = 2
CONFIDENCE_FLOOR_PERCENTILE = 2.0
DEFAULT_TRAIN_STEPS = 3000
FEATURE_DIM = 256


# ---------------------------------------------------------------------------------------------

# The oracle's CNN is the project's plain convolutional encoder (also Semi-StyleGAN's
# `--encoder separate`); its state-dict keys are those of the cached oracle files.
OracleNet = ConvEncoder


class TrainedReader:
    """What the model-based readers (the CNN oracle, the pixel MLP) share: a network in eval mode,
    its factor space and training metadata, and a state that the cache saves and restores."""

    def __init__(self, net: nn.Module, factor_space: FactorSpace, meta: dict, num_threads: int | None = None):
        self.num_threads = num_threads  # torch threads while reading images (None: torch's setting)
        self.net = net.eval()
        self.factor_space = factor_space
        self.meta = meta

    @property
    def info(self) -> dict:
        """Training configuration and held-out quality (l2, mig, accuracy per factor)."""
        return dict(self.meta)

    @staticmethod
    def build_net(meta: dict, space: FactorSpace) -> nn.Module:
        raise NotImplementedError

    def state(self) -> dict:
        return {"state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()}, "meta": self.meta}

    @classmethod
    def from_state(cls, state: dict):
        meta = state["meta"]
        space = FactorSpace.from_dict(meta["factor_space"])
        net = cls.build_net(meta, space)
        net.load_state_dict(state["state_dict"])
        return cls(net, space, meta)


class Oracle(TrainedReader):
    """A trained oracle: `encode(images) -> codes`, `features(images) -> penultimate features`."""

    @staticmethod
    def build_net(meta: dict, space: FactorSpace) -> nn.Module:
        return OracleNet(meta["resolution"], meta["channels"], space.sizes)

    def _check(self, images) -> np.ndarray:
        images = np.asarray(images)
        r, c = self.meta["resolution"], self.meta["channels"]
        if images.ndim != 4 or images.shape[1:] != (c, r, r):
            raise ValueError(f"oracle images must have shape (N, {c}, {r}, {r}), got {images.shape}")
        if images.dtype != np.uint8:
            raise ValueError(f"oracle images must be uint8 in 0..255, got dtype {images.dtype}")
        return images

    @torch.inference_mode()
    def _run(self, images, batch_size: int = 256, with_confidence: bool = False):
        images = self._check(images)
        k = self.factor_space.num_factors
        classes = [np.zeros((0, k), dtype=np.int64)]
        confidence = [np.zeros((0, k), dtype=np.float32)]
        feats = [np.zeros((0, self.net.hidden[0].out_features), dtype=np.float32)]
        with _threads(self.num_threads):
            for s in range(0, len(images), batch_size):
                h = self.net.features(images_to_tensor(images[s : s + batch_size]))
                feats.append(h.numpy())
                logits = [head(h) for head in self.net.heads]
                classes.append(np.stack([lg.argmax(1).numpy() for lg in logits], axis=1).astype(np.int64))
                if with_confidence:
                    confidence.append(np.stack([lg.softmax(1).amax(1).numpy() for lg in logits], axis=1))
        out = np.concatenate(classes, axis=0), np.concatenate(feats, axis=0)
        return (*out, np.concatenate(confidence, axis=0)) if with_confidence else out

    def read(self, images, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """int64 (N, K) arg-max classes and float32 (N, K) max-softmax confidence of each factor."""
        classes, _, confidence = self._run(images, batch_size, with_confidence=True)
        return classes, confidence

    def predict_classes(self, images, batch_size: int = 256) -> np.ndarray:
        """int64 (N, K) arg-max class of each factor."""
        return self._run(images, batch_size)[0]

    def encode(self, images, batch_size: int = 256) -> np.ndarray:
        """float32 (N, K) codes in [0, 1] (the code of the arg-max class of each factor)."""
        return self.factor_space.classes_to_code(self.predict_classes(images, batch_size))

    def features(self, images, batch_size: int = 256) -> np.ndarray:
        """float32 (N, 256) penultimate features (for the oracle FID)."""
        return self._run(images, batch_size)[1]

    def encode_and_features(self, images, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Both readings of one forward pass: codes (N, K) and features (N, 256)."""
        classes, feats = self._run(images, batch_size)
        return self.factor_space.classes_to_code(classes), feats



# ---------------------------------------------------------------------------------------------

def held_out_mask(index: np.ndarray, fraction: float = 0.05) -> np.ndarray:
    """Deterministic pseudo-random 5% of the flat grid indices, never used for training."""
    h = (np.asarray(index, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
    return (h >> np.uint64(8)) % np.uint64(1000) < np.uint64(round(fraction * 1000))


def _draw_indices(n: int, candidates: np.ndarray | None, total: int, rs: np.random.RandomState,
                  held_out: bool) -> np.ndarray:
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        if candidates is None:
            draw = rs.randint(total, size=2 * (n - len(out)) + 16).astype(np.int64)
        else:
            draw = candidates[rs.randint(len(candidates), size=2 * (n - len(out)) + 16)]
        draw = draw[held_out_mask(draw) == held_out]
        out = np.concatenate([out, draw])
    return out[:n]


def oracle_cache_dir() -> Path:
    root = os.environ.get("SEMISTYLEGAN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "semistylegan") / "oracles"


def oracle_path(dataset, train_steps: int = DEFAULT_TRAIN_STEPS, seed: int = 0, cache_dir=None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else oracle_cache_dir()
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(dataset.name))
    tag = f"r{int(dataset.resolution)}_c{int(dataset.channels)}_v{ORACLE_VERSION}_t{int(train_steps)}_s{int(seed)}"
    return folder / f"{name}_{tag}.pt"


def dataset_fingerprint(dataset) -> str:
    """sha1 (16 hex digits) of 16 images at fixed grid positions: changes when the renderer or files change.

    Grid datasets draw them through `images_from_classes` with RandomState(0), so datasets with
    random nuisance (the coloured dSprites) give the same hash on every call."""
    import hashlib

    n = len(dataset)
    idx = (np.arange(16, dtype=np.int64) * max(n // 16, 1)) % max(n, 1)
    if getattr(dataset, "is_grid", False):
        images = dataset.images_from_classes(dataset.factor_space.index_to_classes(idx), np.random.RandomState(0))
    else:
        images = dataset.images(idx)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    return hashlib.sha1(repr(images.shape).encode() + images.tobytes()).hexdigest()[:16]


def cached_meta_mismatch(meta: dict, dataset, version: int) -> str | None:
    """Why a cached reader's meta does not fit `dataset` (None when it fits)."""
    want = {"version": int(version), "dataset": str(dataset.name), "resolution": int(dataset.resolution),
            "channels": int(dataset.channels), "fingerprint": dataset_fingerprint(dataset)}
    for key, value in want.items():
        if meta.get(key) != value:
            return f"{key} {meta.get(key)!r} != {value!r}"
    if list(meta.get("factor_space", {}).get("sizes", [])) != list(dataset.factor_space.sizes):
        return "factor sizes differ"
    return None


def _evaluate(oracle, dataset, indices: np.ndarray) -> dict:
    """Held-out accuracy, L2, MIG and confidence floor of a reader with `read(images) -> (classes, confidence)`."""
    from semistylegan.metrics.l2 import l2
    from semistylegan.metrics.mig import mig

    images = dataset.images(indices)
    classes = np.asarray(dataset.classes(indices))
    pred, confidence = oracle.read(images)
    space = oracle.factor_space
    known = classes >= 0
    acc = {name: float(np.mean(pred[known[:, k], k] == classes[known[:, k], k])) if known[:, k].any() else float("nan")
           for k, name in enumerate(space.names)}
    floor = {name: float(np.percentile(confidence[:, k], CONFIDENCE_FLOOR_PERCENTILE))
             for k, name in enumerate(space.names)}
    out = {"held_out_samples": len(indices), "accuracy": acc, "confidence_floor": floor}
    if known.all():
        held = l2(space.classes_to_code(pred), space.classes_to_code(classes), space.names)
        out.update({f"held_out_{k}": v for k, v in held.items()})
        varied = [k for k in range(space.num_factors) if len(np.unique(classes[:, k])) > 1]
        if space.num_factors >= 2 and varied:
            out["held_out_mig"] = mig(space.classes_to_code(pred), classes[:, varied])["discrete_mig"]
    return out


class _threads:
    """Temporarily set torch's intra-op thread count (None: leave it)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(int(self.n))

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


def train_oracle(dataset, train_steps: int = DEFAULT_TRAIN_STEPS, batch_size: int = 64, seed: int = 0, lr: float = 2e-3,
                 eval_samples: int = 5000, num_threads: int | None = 1, verbose: bool = False) -> Oracle:
    """Train an oracle on every labelled image of `dataset` (a GroundTruthDataset or ImageDataset).

    num_threads=1 by default: these small convolutions gain little from a second thread and
    lose up to 10x when the cores are shared with other work; None keeps torch's setting.
    """
    if int(train_steps) < 1:
        raise ValueError(f"train_steps must be positive, got {train_steps}")
    with _threads(num_threads), torch.enable_grad():  # callers may be inside no_grad (evaluation)
        return _train(dataset, int(train_steps), int(batch_size), int(seed), float(lr), int(eval_samples), verbose)


def _train(dataset, train_steps, batch_size, seed, lr, eval_samples, verbose) -> Oracle:
    space = dataset.factor_space
    torch.manual_seed(seed)
    rs = np.random.RandomState(seed)
    net = OracleNet(int(dataset.resolution), int(dataset.channels), space.sizes)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, train_steps) / train_steps)))
    candidates = None if getattr(dataset, "is_grid", False) else np.asarray(dataset.labeled_candidates())
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    start = time.time()
    net.train()
    for step in progress.bar(range(int(train_steps)), desc="training the oracle encoder", unit="step"):
        idx = _draw_indices(batch_size, candidates, len(dataset), rs, held_out=False)
        x = images_to_tensor(dataset.images(idx))
        y = torch.from_numpy(np.asarray(dataset.classes(idx), dtype=np.int64))
        logits = net(x)
        loss = sum(loss_fn(lg, y[:, k]) for k, lg in enumerate(logits)) / len(logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if verbose and (step % 200 == 0 or step == train_steps - 1):
            print(f"oracle step {step}/{train_steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
    net.eval()
    meta = {
        "version": ORACLE_VERSION,
        "dataset": str(dataset.name),
        "resolution": int(dataset.resolution),
        "channels": int(dataset.channels),
        "factor_space": {"names": list(space.names), "sizes": list(space.sizes)},
        "train_steps": int(train_steps),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "train_seconds": float(time.time() - start),
        "fingerprint": dataset_fingerprint(dataset),
    }
    oracle = Oracle(net, space, meta)
    eval_idx = _draw_indices(int(eval_samples), candidates, len(dataset), np.random.RandomState(seed + 1),
                             held_out=True)
    oracle.meta.update(_evaluate(oracle, dataset, eval_idx))
    return oracle


def get_oracle(dataset, train_steps: int = DEFAULT_TRAIN_STEPS, seed: int = 0, cache_dir=None, cache: bool = True,
               verbose: bool = False, **train_options) -> Oracle:
    """Load the cached oracle of `dataset` or train it (and cache it atomically)."""
    path = oracle_path(dataset, train_steps, seed, cache_dir)
    return cached_or_trained(path, Oracle.from_state, ORACLE_VERSION, dataset, train_steps, seed, cache, verbose,
                             lambda: train_oracle(dataset, train_steps=train_steps, seed=seed, verbose=verbose,
                                                  **train_options), what="oracle")


def cached_or_trained(path, from_state, version: int, dataset, train_steps: int, seed: int, cache: bool,
                      verbose: bool, train, what: str):
    """A reader from its cache file when that file was made for this dataset, version, length and
    seed; otherwise `train()` it and write the file atomically (a corrupt file is replaced)."""
    if cache and path.exists():
        try:
            reader = from_state(torch.load(path, map_location="cpu", weights_only=True))
            why = cached_meta_mismatch(reader.meta, dataset, version)
            same_run = reader.meta.get("train_steps") == int(train_steps) and reader.meta.get("seed") == int(seed)
            if why is None and same_run:
                return reader
            if verbose:
                print(f"rebuilding the {what}: the cached {path.name} was made for another dataset or version ({why})")
        except Exception as e:  # a corrupt or foreign file: retrain and overwrite it
            if verbose:
                print(f"ignoring unreadable {what} cache {path}: {e}")
    reader = train()
    if cache:
        from semistylegan.checkpoint import atomic_save

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(reader.state(), path)
    return reader
