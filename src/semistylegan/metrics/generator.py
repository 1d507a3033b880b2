"""MIG-gen and L2-gen: how well the generator obeys its code (docs/method.md, "Metrics").

For each of `repeats` repetitions: sample c' uniformly from the factor grid (as codes, class j
of m -> j / (m - 1)), generate x' = G(c', z) through the user's `generate(codes, seed)`, read it
with the oracle, c_hat' = E_oracle(x'), and compute
- MIG-gen: the MIG (dlib's: 20-bin histogram of the readings, empirical entropy) between the
  readings c_hat' and the classes of c';
- L2-gen: mean over samples of ||c_hat' - c'||_2.
The report gives the mean and the standard deviation (ddof=0) over repetitions, and the
per-factor MIG / mean absolute error averaged over repetitions. Factors with a single value are
left out of the MIG (their entropy is 0) but kept in L2.

`generate(codes: float32 (n, K), seed: int) -> uint8 images (n, C, H, W)`; it must draw its own
noise z from `seed` so that a run is reproducible. The seed of each call is derived from
(seed, repetition, chunk).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from semistylegan.data.factors import FactorSpace
from semistylegan.metrics import replay
from semistylegan.metrics.l2 import l2
from semistylegan.metrics.mig import mig_per_factor

__all__ = ["generator_metrics", "generate_images", "check_images"]

Generate = Callable[[np.ndarray, int], np.ndarray]


def check_images(images, n: int, name: str = "generate(codes, seed)") -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] != n:
        raise ValueError(f"{name} must return uint8 images of shape ({n}, C, H, W), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{name} must return uint8 images (0..255), got dtype {images.dtype}")
    return images


def generate_images(generate: Generate, codes: np.ndarray, seed: int, batch_size: int = 256) -> list[np.ndarray]:
    """Images for `codes`, in chunks; chunk i is generated with seed `seed * 100003 + i`."""
    chunks = []
    for i, s in enumerate(range(0, len(codes), batch_size)):
        part = np.ascontiguousarray(codes[s : s + batch_size], dtype=np.float32)
        chunks.append(check_images(generate(part, int(seed) * 100003 + i), len(part)))
    return chunks


def generator_metrics(generate: Generate, factor_space: FactorSpace, oracle, num_samples: int = 10000, repeats: int = 3,
                      seed: int = 0, batch_size: int = 256, return_features: bool = False) -> dict:
    """{"mig_gen", "mig_gen_std", "l2_gen", "l2_gen_std", per-factor breakdowns, ...}.

    With return_features=True the dict also holds "features": the oracle features (N, 256) of
    the first repetition's images (used for the oracle FID; not JSON-serialisable).
    """
    if int(num_samples) < 2 or int(repeats) < 1:
        raise ValueError(f"need num_samples >= 2 and repeats >= 1, got {num_samples} and {repeats}")
    varied = [k for k, m in enumerate(factor_space.sizes) if m > 1]
    names = list(factor_space.names)
    migs, l2s, mig_pf, mae_pf = [], [], [], []
    features = None
    rs = replay.as_random_state(int(seed))
    for r in range(int(repeats)):
        classes = factor_space.sample_classes(int(num_samples), rs)
        codes = factor_space.classes_to_code(classes)
        chunks = generate_images(generate, codes, seed=int(seed) * 1000 + r, batch_size=batch_size)
        if return_features and r == 0:
            pairs = [oracle.encode_and_features(c) for c in chunks]
            readings = np.concatenate([p[0] for p in pairs], axis=0)
            features = np.concatenate([p[1] for p in pairs], axis=0)
        else:
            readings = np.concatenate([oracle.encode(c) for c in chunks], axis=0)
        if len(varied) >= 1 and factor_space.num_factors >= 2:
            per = mig_per_factor(readings, classes[:, varied])
            # a factor whose sampled classes happen to be single-valued cannot occur for n >= 2 draws
            mig_pf.append(per)
            migs.append(float(np.mean(per)))
        res = l2(readings, codes, names)
        l2s.append(res["l2"])
        mae_pf.append([res["mae_per_factor"][n] for n in names])
    out = {
        "l2_gen": float(np.mean(l2s)),
        "l2_gen_std": float(np.std(l2s)),
        "l2_gen_mae_per_factor": {n: float(v) for n, v in zip(names, np.mean(mae_pf, axis=0))},
        "num_samples": int(num_samples),
        "repeats": int(repeats),
    }
    if migs:
        out["mig_gen"] = float(np.mean(migs))
        out["mig_gen_std"] = float(np.std(migs))
        out["mig_gen_per_factor"] = {names[k]: float(v) for k, v in zip(varied, np.mean(mig_pf, axis=0))}
    if return_features:
        out["features"] = features
    return out
