"""Replay of disentanglement_lib's RandomState stream (metrics/replay.py)."""
import numpy as np
import pytest

from semistylegan.metrics import replay
from semistylegan.metrics.synthetic import SyntheticCodeGrid


# Fast RandomState replay ---------------------------------------------------------------------
@pytest.mark.parametrize("pattern", [
    [(5, 1), (3, 64), (6, 64), (40, 64), (32, 64), (32, 64)],
    [(7, 3), (1, 4), (2, 5), (1000, 2), (2**31 + 5, 3), (2**32, 2)],
    [(64, 16), (64, 16)],
])
def test_replay_randint_equals_numpy_calls(pattern):
    repeats = 300
    fast, slow = np.random.RandomState(11), np.random.RandomState(11)
    out = replay.replay_randint(fast, pattern, repeats)
    for r in range(repeats):
        for e, (b, c) in enumerate(pattern):
            np.testing.assert_array_equal(out[e][r], slow.randint(b, size=c))
    np.testing.assert_array_equal(fast.randint(1000, size=20), slow.randint(1000, size=20))
    assert fast.normal() == slow.normal()


def _loop_calls(rs, pattern, repeats):
    """The reference: one numpy call per (bound, count), as dlib makes them."""
    return [[rs.randint(b, size=c) for b, c in pattern] for _ in range(repeats)]


@pytest.mark.parametrize("pattern", [
    [(5, 1), (3, 64), (6, 64), (40, 64), (32, 64), (32, 64)],  # dSprites sizes, FactorVAE
    [(5, 1), (1, 8), (4, 8), (1, 8), (3, 8), (8, 8), (1, 8)],  # size-1 factors draw nothing
    [(3, 1), (16, 5), (2, 3), (2**30, 3), (2**31, 2), (7, 1), (64, 1)],  # odd pow2 runs, mixed masks
    [(1, 3), (1, 1)],  # nothing drawn at all
    [(2**32, 3), (2**31 + 5, 2), (2**30 + 1, 2)],  # rejection on large masks
])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_randint_chunks_equal_one_call_at_a_time(pattern, chunk):
    repeats = 40
    fast, slow = np.random.RandomState(3), np.random.RandomState(3)
    got = np.concatenate(list(replay.randint_chunks(fast, pattern, repeats, chunk)), axis=0)
    want = _loop_calls(slow, pattern, repeats)
    assert got.shape == (repeats, sum(c for _, c in pattern)) and got.dtype == np.int64
    for r in range(repeats):
        np.testing.assert_array_equal(got[r], np.concatenate(want[r]))
    assert replay._state_key(fast) == replay._state_key(slow)
    np.testing.assert_array_equal(fast.randint(1000, size=20), slow.randint(1000, size=20))


def test_randint_chunks_advance_the_state_chunk_by_chunk():
    pattern = [(5, 1), (3, 4), (32, 4)]
    fast, slow = np.random.RandomState(8), np.random.RandomState(8)
    chunks = replay.randint_chunks(fast, pattern, 10, 4)
    for n in (4, 4, 2):
        part = next(chunks)
        assert len(part) == n
        np.testing.assert_array_equal(part, [np.concatenate(row) for row in _loop_calls(slow, pattern, n)])
        assert replay._state_key(fast) == replay._state_key(slow)


def test_pair_layouts_reproduce_the_reference_or_are_not_used(monkeypatch):
    """Whichever half of a 2^62 draw numpy fills first, the checked layout reproduces the calls;
    with every bulk layout broken, the plain loop is used."""
    pattern = [(6, 1), (32, 6), (3, 2), (4, 5)]
    exact = {}
    for mode in ("pair_hi", "pair_lo", "single"):
        rs, ref = np.random.RandomState(1), np.random.RandomState(1)
        got = replay._BroadcastLayout(pattern, mode).draw(rs, 5)
        want = [np.concatenate(r) for r in _loop_calls(ref, pattern, 5)]
        exact[mode] = np.array_equal(got, want) and replay._state_key(rs) == replay._state_key(ref)
    assert exact["single"] and exact["pair_hi"] != exact["pair_lo"]
    chosen = replay._checked_layout(np.random.RandomState(1), pattern)
    assert chosen.paired_runs and chosen.first_shift == (32 if exact["pair_hi"] else 0)

    def broken(self, random_state, repeats):
        return np.zeros((repeats, self.num_values), dtype=np.int64) + 1
    monkeypatch.setattr(replay._BroadcastLayout, "draw", broken)
    assert replay._checked_layout(np.random.RandomState(1), pattern) is None
    fast, slow = np.random.RandomState(2), np.random.RandomState(2)
    got = np.concatenate(list(replay.randint_chunks(fast, pattern, 6, 4)))
    np.testing.assert_array_equal(got, [np.concatenate(r) for r in _loop_calls(slow, pattern, 6)])
    assert replay._state_key(fast) == replay._state_key(slow)


class _NoisyObservations(SyntheticCodeGrid):
    """Rendering draws from the RandomState, so the stream cannot be replayed in bulk."""

    def sample_observations_from_factors(self, factors, random_state):
        noise = random_state.uniform(size=len(factors))
        return np.asarray(factors, dtype=np.float64) + 0.0 * noise[:, None]


def test_stream_detects_observation_randomness():
    rep = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
    assert replay.FactorStream(SyntheticCodeGrid(), rep, np.random.RandomState(0)).replayable
    slow = replay.FactorStream(_NoisyObservations(), rep, np.random.RandomState(0))
    assert slow.observations_use_rng and not slow.replayable


def test_generate_batch_factor_code_follows_dlib_stream():
    ds = _NoisyObservations()
    rep = lambda x: np.asarray(x, dtype=np.float64) * 2  # noqa: E731
    stream = replay.FactorStream(ds, rep, np.random.RandomState(5), 7)
    codes, factors = replay.generate_batch_factor_code(stream, 50, 16)
    rs = np.random.RandomState(5)
    ref_f, ref_c = [], []
    for n in (16, 16, 16, 2):  # dlib: sample(n) = sample_factors then observations, per chunk
        f = ds.sample_factors(n, rs)
        ref_c.append(rep(ds.sample_observations_from_factors(f, rs)))
        ref_f.append(f)
    np.testing.assert_array_equal(factors, np.concatenate(ref_f))
    np.testing.assert_array_equal(codes, np.concatenate(ref_c))
