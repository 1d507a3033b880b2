"""A synthetic ground-truth "dataset" whose observations are the factor classes themselves.

It has disentanglement_lib's GroundTruthData interface, so the very same object can be given
to dlib and to this package (reference vectors, tests, benchmarks) without rendering images.
Representations of the grid of docs/method.md, "Metrics" (dSprites factor sizes 3, 6, 40, 32, 32):
- "perfect": the classes as floats;
- "noisy<sigma>": c + sigma * T[index] with c = class / (size - 1), T ~ N(0, 1) per grid point
  (RandomState(1)), a fixed function of the combination, so it is a deterministic encoder;
- "nuisance": noisy0.05 plus 5 dims of pure per-point noise (RandomState(2));
- "rotated": noisy0.05 multiplied by a random orthogonal matrix (qr of RandomState(3) normals);
- "const2": two constant dims (0 and 1) followed by the perfect code;
- "duplicated": the perfect code twice;
- "zeros": five all-zero dims.
"""
from __future__ import annotations

import functools

import numpy as np

from semistylegan.data.factors import FactorSpace

__all__ = ["SyntheticCodeGrid", "representation", "CASES", "fixed_split"]

CASES = ("perfect", "noisy0.05", "noisy0.2", "nuisance", "rotated", "const2", "duplicated", "zeros")


class SyntheticCodeGrid:
    """Observations = factor classes (int64 (N, K)); sampling as dlib's SplitDiscreteStateSpace."""

    def __init__(self, sizes=(3, 6, 40, 32, 32)):
        self.factor_space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
        self.name = "synthetic"

    @property
    def num_factors(self) -> int:
        return self.factor_space.num_factors

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_space.sizes)

    @property
    def observation_shape(self):
        return [self.num_factors]

    def sample_factors(self, num, random_state):
        return self.factor_space.sample_classes(num, random_state)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.int64).copy()

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


@functools.lru_cache(maxsize=4)
def _table(seed: int, total: int, width: int) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=(total, width))


@functools.lru_cache(maxsize=1)
def _rotation(k: int) -> np.ndarray:
    return np.linalg.qr(np.random.RandomState(3).normal(size=(k, k)))[0]


def representation(case: str, sizes=(3, 6, 40, 32, 32)):
    """classes (N, K) -> codes (N, d) for one of CASES (or "noisy<sigma>")."""
    space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
    k = space.num_factors
    denom = np.maximum(np.asarray(sizes, dtype=np.float64) - 1.0, 1.0)

    def noisy(classes, sigma):
        idx = space.classes_to_index(classes)
        # c / denom + sigma * T[idx], with np.take and in place (same values, half the time)
        out = classes / denom
        rows = np.take(_table(1, space.num_combinations, k), idx, axis=0)
        rows *= sigma
        out += rows
        return out

    if case == "perfect":
        return lambda c: np.asarray(c, dtype=np.float64)
    if case.startswith("noisy"):
        sigma = float(case[len("noisy"):])
        return lambda c: noisy(np.asarray(c), sigma)
    if case == "nuisance":
        return lambda c: np.hstack([noisy(np.asarray(c), 0.05),
                                    np.take(_table(2, space.num_combinations, 5), space.classes_to_index(c), axis=0)])
    if case == "rotated":
        return lambda c: noisy(np.asarray(c), 0.05) @ _rotation(k)
    if case == "const2":
        return lambda c: np.hstack([np.zeros((len(c), 1)), np.ones((len(c), 1)), np.asarray(c, dtype=np.float64)])
    if case == "duplicated":
        return lambda c: np.hstack([np.asarray(c, dtype=np.float64)] * 2)
    if case == "zeros":
        return lambda c: np.zeros((len(c), 5))
    raise ValueError(f"unknown synthetic case '{case}'; choose one of {CASES} or noisy<sigma>")


def fixed_split(num_train: int = 10000, num_test: int = 5000, sizes=(3, 6, 40, 32, 32), seed: int = 0):
    """Train then test factor classes drawn per column with RandomState(seed) (docs/method.md, "Metrics")."""
    space = FactorSpace(tuple(f"f{i}" for i in range(len(sizes))), tuple(sizes))
    rs = np.random.RandomState(seed)
    return space.sample_classes(num_train, rs), space.sample_classes(num_test, rs)
