"""Sampling that replays disentanglement_lib's RandomState stream exactly.

`FactorStream` and `generate_batch_factor_code` draw factors and observations in dlib's order
(chunks of `batch_size`: `sample_factors`, then `sample_observations_from_factors`), while the
encoding is postponed and done in large batches; `randint_chunks` / `replay_randint` replay many
small legacy `randint` calls in bulk, bit for bit (the FactorVAE and BetaVAE scores).

Encoding is batched in `encode_batch_size` = 256 images by default, not thousands: on CPU a small
CNN reads 256-image batches 2.6x faster than 4096-image ones (the activations of large batches
fall out of cache; measured with bench/metrics_speed.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from semistylegan.metrics.utils import Represent

__all__ = ["as_random_state", "FactorStream", "generate_batch_factor_code", "randint_chunks", "replay_randint"]


# ---------------------------------------------------------------------------------------------
# Sampling that replays disentanglement_lib's RandomState stream

def as_random_state(seed) -> np.random.RandomState:
    """An int seed -> a fresh RandomState (dlib's evaluation.random_seed); a RandomState is used as is."""
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    raise ValueError(f"seed must be an int or a numpy RandomState, got {type(seed).__name__}")


def _state_key(rs: np.random.RandomState):
    name, keys, pos, has_gauss, cached = rs.get_state()
    return keys.tobytes(), pos, has_gauss, cached


class FactorStream:
    """Draw factors exactly as dlib does, and turn them into codes in large batches.

    `dataset` needs dlib's GroundTruthData interface (`sample_factors`,
    `sample_observations_from_factors`, `num_factors`). If rendering an observation consumes
    the RandomState (checked once on a copy of the stream), observations are made at the very
    point dlib makes them and kept until encoded; otherwise only the factors are drawn in the
    stream and observations are rendered later, in large batches.
    """

    #: images per bookkeeping chunk of the FactorVAE / BetaVAE loops (memory vs vectorisation)
    chunk_images = 8192

    def __init__(self, dataset, represent: Represent, random_state: np.random.RandomState,
                 encode_batch_size: int | None = None):
        self.dataset = dataset
        self.represent = represent
        self.rs = random_state
        # None: 256 for image batches (CNNs on CPU are fastest there), 8192 for low-dim observations
        self.encode_batch_size = None if encode_batch_size is None else max(1, int(encode_batch_size))
        # handed to renderers that were probed not to draw from a RandomState, once per stream
        # (making one costs ~0.1 ms, and encode runs once per chunk)
        self._scratch = np.random.RandomState(0)
        self._factor_step = None  # encode batch for factor tokens (depends on the observation shape)
        self.observations_use_rng = self._probe()
        self.replayable = (not self.observations_use_rng) and _uses_factor_space_sampling(dataset)

    def replay_group_chunks(self, num_groups: int, patterns: int, batch_size: int, chunk: int):
        """Fast exact replay of `num_groups` x [randint(K), `patterns` x sample_factors(batch)].

        Yields (k (n,), factors (n, patterns, K, batch)) for `chunk` groups at a time; factors
        is factor-major (a view on the drawn values: transpose it to rows of factors).
        Only valid when `self.replayable`.
        """
        sizes = self.dataset.factor_space.sizes
        pattern = [(len(sizes), 1)] + [(s, batch_size) for _ in range(patterns) for s in sizes]
        for values in randint_chunks(self.rs, pattern, num_groups, chunk):
            yield values[:, 0], values[:, 1:].reshape(len(values), patterns, len(sizes), batch_size)

    def replay_groups(self, num_groups: int, patterns: int, batch_size: int):
        """All of `replay_group_chunks` at once: (k (G,), factors (G, patterns, batch, K))."""
        ks, factors = [], []
        for k, f in self.replay_group_chunks(num_groups, patterns, batch_size, 4096):
            ks.append(k)
            factors.append(f.transpose(0, 1, 3, 2))
        if not ks:
            return np.zeros(0, np.int64), np.zeros((0, patterns, batch_size, self.dataset.num_factors), np.int64)
        return np.concatenate(ks), np.ascontiguousarray(np.concatenate(factors, axis=0))

    def _probe(self) -> bool:
        probe = np.random.RandomState()
        probe.set_state(self.rs.get_state())
        factors = self.dataset.sample_factors(2, probe)
        before = _state_key(probe)
        self.dataset.sample_observations_from_factors(factors, probe)
        return _state_key(probe) != before

    def sample_factors(self, n: int) -> np.ndarray:
        return np.asarray(self.dataset.sample_factors(n, self.rs))

    def observe(self, factors: np.ndarray):
        """What dlib's `sample_observations_from_factors` call becomes: a token for `encode`."""
        if self.observations_use_rng:
            return ("obs", self.dataset.sample_observations_from_factors(factors, self.rs))
        return ("factors", np.array(factors, copy=True))

    def encode(self, tokens: Sequence) -> np.ndarray:
        """Codes (sum of batch sizes, d) for the tokens, in order, encoded in large batches."""
        if not tokens:
            raise ValueError("nothing to encode")
        outputs = []
        if tokens[0][0] == "factors":
            factors = tokens[0][1] if len(tokens) == 1 else np.concatenate([t[1] for t in tokens], axis=0)
            # Rendering was probed not to draw from the stream; a scratch state keeps it untouched.
            scratch = self._scratch
            if self._factor_step is None:
                self._factor_step = self._batch(self.dataset.sample_observations_from_factors(factors[:1], scratch))
            step = self._factor_step
            for s in range(0, len(factors), step):
                obs = self.dataset.sample_observations_from_factors(factors[s : s + step], scratch)
                outputs.append(self._rep(obs))
        else:
            obs = np.concatenate([t[1] for t in tokens], axis=0)
            step = self._batch(obs)
            for s in range(0, len(obs), step):
                outputs.append(self._rep(obs[s : s + step]))
        return np.concatenate(outputs, axis=0)

    def _batch(self, observations: np.ndarray) -> int:
        if self.encode_batch_size is not None:
            return self.encode_batch_size
        return 256 if np.asarray(observations).ndim >= 3 else 8192

    def _rep(self, obs: np.ndarray) -> np.ndarray:
        out = np.asarray(self.represent(obs))
        if out.ndim != 2 or out.shape[0] != len(obs):
            raise ValueError(
                f"the representation function must return codes of shape ({len(obs)}, d) for {len(obs)} inputs, got "
                f"{out.shape}"
            )
        return out


def _uses_factor_space_sampling(dataset) -> bool:
    """True when dataset.sample_factors is FactorSpace.sample_classes (one randint per column)."""
    from semistylegan.data.dataset import GroundTruthDataset
    from semistylegan.data.factors import FactorSpace
    from semistylegan.metrics.synthetic import SyntheticCodeGrid

    space = getattr(dataset, "factor_space", None)
    if not isinstance(space, FactorSpace) or type(space).sample_classes is not FactorSpace.sample_classes:
        return False
    method = getattr(type(dataset), "sample_factors", None)
    return method in (GroundTruthDataset.sample_factors, SyntheticCodeGrid.sample_factors)


def generate_batch_factor_code(stream: FactorStream, num_points: int, batch_size: int = 16):
    """dlib's generate_batch_factor_code -> (codes (N, d), factors (N, K)), row-major."""
    num_points, batch_size = int(num_points), int(batch_size)
    if num_points < 1 or batch_size < 1:
        raise ValueError(f"num_points and batch_size must be positive, got {num_points} and {batch_size}")
    factor_chunks, tokens = [], []
    done = 0
    while done < num_points:
        n = min(num_points - done, batch_size)
        f = stream.sample_factors(n)
        tokens.append(stream.observe(f))
        factor_chunks.append(f)
        done += n
    return stream.encode(tokens), np.concatenate(factor_chunks, axis=0)


# ---------------------------------------------------------------------------------------------
# Fast exact replay of many small `RandomState.randint` calls.
#
# The FactorVAE and BetaVAE scores make 15,000-30,000 iterations of `randint(K)` followed by
# one `randint(size_k, size=batch)` per factor column. Each legacy `randint` call costs a few
# microseconds of Python overhead, which dominates when the encoder is cheap.
#
# numpy's legacy `randint` with an *array* of upper bounds draws element after element, in C,
# exactly as the same bounds given one call at a time would: for each element, 32-bit Mersenne
# Twister outputs masked to the smallest 2^m - 1 covering high - 1, rejected while above
# high - 1; high == 1 draws nothing; 2^32 < high takes one 64-bit draw (two 32-bit outputs).
# So one call `randint(highs)` with highs = the bounds of an iteration, tiled, replays whole
# iterations. Elements of a power-of-two bound draw exactly one output, so two adjacent ones
# are merged into one element of bound 2^62 (two outputs, one in each half of the 64-bit draw);
# which half holds the first output is a detail of the C code, so it is not assumed: the first
# iteration of every replay is compared (values and the state left) with real one-call-at-a-time
# draws on a copy, the variants are tried in turn, and the plain per-call loop is the last resort.

_PAIR_HIGH = 1 << 62


def _pairable(bound: int) -> bool:
    """A power-of-two bound (one raw output, no rejection) whose value survives in 30 bits."""
    return 2 <= bound <= 1 << 30 and bound & (bound - 1) == 0


def _runs(pairs, value_step: int) -> list:
    """[(value, element)] -> [(value0, element0, length)] for runs stepping (value_step, 1)."""
    runs = []
    for v, e in pairs:
        if runs and v == runs[-1][0] + value_step * runs[-1][2] and e == runs[-1][1] + runs[-1][2]:
            runs[-1][2] += 1
        else:
            runs.append([v, e, 1])
    return [tuple(r) for r in runs]


class _BroadcastLayout:
    """The bounds of one iteration as the `high` row of one `randint(highs)` call, and back.

    mode: "single" (one element per drawn value), "pair_hi" / "pair_lo" (adjacent pairable
    values share a 2^62 element; the first value's output is in the high / low half).
    """

    def __init__(self, pattern, mode: str):
        bounds = [b for b, c in pattern for _ in range(c)]
        self.num_values = len(bounds)
        highs, single, paired = [], [], []
        i = 0
        while i < len(bounds):
            b = bounds[i]
            if b == 1:  # randint(1) is 0 and draws nothing
                i += 1
            elif mode != "single" and _pairable(b) and i + 1 < len(bounds) and _pairable(bounds[i + 1]):
                paired.append((i, len(highs)))
                highs.append(_PAIR_HIGH)
                i += 2
            else:
                single.append((i, len(highs)))
                highs.append(b)
                i += 1
        self.highs = np.asarray(highs, dtype=np.int64)
        self.single_runs = _runs(single, 1)
        self.paired_runs = []
        for v0, e0, n in _runs(paired, 2):
            first = np.asarray([bounds[v0 + 2 * j] - 1 for j in range(n)], dtype=np.int64)
            second = np.asarray([bounds[v0 + 2 * j + 1] - 1 for j in range(n)], dtype=np.int64)
            # one scalar mask when the whole run shares it (the usual case: one factor's batch)
            first = first[0] if (first == first[0]).all() else first
            second = second[0] if (second == second[0]).all() else second
            self.paired_runs.append((v0, e0, n, first, second))
        self.first_shift, self.second_shift = (32, 0) if mode == "pair_hi" else (0, 32)

    def draw(self, random_state: np.random.RandomState, repeats: int) -> np.ndarray:
        """The values (repeats, num_values) of `repeats` iterations, drawn from `random_state`."""
        values = np.zeros((repeats, self.num_values), dtype=np.int64)
        if repeats == 0 or not len(self.highs):
            return values
        drawn = random_state.randint(np.broadcast_to(self.highs, (repeats, len(self.highs))))
        for v0, e0, n in self.single_runs:
            values[:, v0 : v0 + n] = drawn[:, e0 : e0 + n]
        for v0, e0, n, first, second in self.paired_runs:
            part = drawn[:, e0 : e0 + n]
            np.bitwise_and(part >> self.first_shift, first, out=values[:, v0 : v0 + 2 * n : 2])
            np.bitwise_and(part >> self.second_shift, second, out=values[:, v0 + 1 : v0 + 2 * n : 2])
        return values


def _loop_draw(random_state: np.random.RandomState, pattern, repeats: int) -> np.ndarray:
    """The reference: the calls made one at a time (what dlib does)."""
    values = np.zeros((repeats, sum(c for _, c in pattern)), dtype=np.int64)
    for r in range(repeats):
        col = 0
        for b, c in pattern:
            values[r, col : col + c] = random_state.randint(b, size=c)
            col += c
    return values


def _copy_state(random_state: np.random.RandomState) -> np.random.RandomState:
    copy = np.random.RandomState()
    copy.set_state(random_state.get_state())
    return copy


def _checked_layout(random_state: np.random.RandomState, pattern):
    """The fastest broadcast layout that reproduces the first iteration exactly, or None."""
    reference = _copy_state(random_state)
    expected = _loop_draw(reference, pattern, 1)
    layouts = [_BroadcastLayout(pattern, "pair_hi")]
    if layouts[0].paired_runs:  # without pairs, every mode gives this same layout
        layouts += [_BroadcastLayout(pattern, "pair_lo"), _BroadcastLayout(pattern, "single")]
    for layout in layouts:
        probe = _copy_state(random_state)
        try:
            got = layout.draw(probe, 1)
        except (ValueError, TypeError, OverflowError):
            continue
        if np.array_equal(got, expected) and _state_key(probe) == _state_key(reference):
            return layout
    return None


def randint_chunks(random_state: np.random.RandomState, pattern: Sequence[tuple[int, int]], repeats: int,
                   chunk: int = 4096):
    """Yield the values of `repeats` iterations of the calls `randint(bound, size=count)` in
    `pattern`, `chunk` iterations at a time, as int64 arrays (n, sum of counts) in call order.

    `random_state` ends up exactly where the real calls would have left it, and is advanced
    chunk by chunk as the values are consumed. Bounds must be in 1..2**32.
    """
    pattern = [(int(b), int(c)) for b, c in pattern]
    if any(b < 1 or b > 2**32 or c < 1 for b, c in pattern):
        raise ValueError(f"randint_chunks: bad pattern {pattern}")
    repeats, chunk = int(repeats), max(1, int(chunk))
    if repeats < 1:
        return
    layout = _checked_layout(random_state, pattern)
    for s in range(0, repeats, chunk):
        n = min(chunk, repeats - s)
        yield layout.draw(random_state, n) if layout is not None else _loop_draw(random_state, pattern, n)


def replay_randint(random_state: np.random.RandomState, pattern: Sequence[tuple[int, int]], repeats: int) -> list:
    """Values of `repeats` iterations of the calls `randint(bound, size=count)` in `pattern`.

    Returns one int64 array (repeats, count) per pattern entry and leaves `random_state` exactly
    where the real calls would have left it. Bounds must be in 1..2**32.
    """
    pattern = [(int(b), int(c)) for b, c in pattern]
    parts = list(randint_chunks(random_state, pattern, repeats))
    values = np.concatenate(parts, axis=0) if parts else np.zeros((0, sum(c for _, c in pattern)), np.int64)
    edges = np.cumsum([0] + [c for _, c in pattern])
    return [values[:, edges[e] : edges[e + 1]] for e in range(len(pattern))]
