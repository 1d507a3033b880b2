"""The viewer under load on loopback: 100 simultaneous requests from this machine are all
answered, none reset, none failed (bench/serve_load.py measures the latency percentiles)."""
import pytest


@pytest.mark.timeout(120)
def test_hundred_concurrent_renders_no_reset(viewer):
    bench, port, num_factors = viewer
    result = bench.load(port, num_factors, requests=100, kind="render", timeout=60.0)
    assert (result["served"], result["reset"], result["errors"]) == (100, 0, 0), result
    assert result["p99_ms"] < 60_000


@pytest.mark.timeout(120)
def test_hundred_concurrent_info_requests_no_reset(viewer):
    bench, port, num_factors = viewer
    result = bench.load(port, num_factors, requests=100, kind="info", timeout=60.0)
    assert (result["served"], result["reset"], result["errors"]) == (100, 0, 0), result
