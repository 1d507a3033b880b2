import os

import pytest

# One thread per process: the tiny test models are overhead-bound, and several processes
# (the DDP test, a shared machine) must not oversubscribe two cores.
os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Oracles and dataset caches of tests live in a per-session temporary directory."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("SEMISTYLEGAN_CACHE", str(cache))

