"""Shared fixtures of the data tests; the fixture-file writers are in datafixtures.py."""
import pytest


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A fresh, empty cache root for one test."""
    d = tmp_path / "cache"
    monkeypatch.setenv("SEMISTYLEGAN_CACHE", str(d))
    return d
