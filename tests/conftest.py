import os

import pytest

# One thread per process: the tiny test models are overhead-bound, and several processes
# (the DDP test, a shared machine) must not oversubscribe two cores.
os.environ["OMP_NUM_THREADS"] = "1"
# The tests run on the CPU, whose results the exactness tests pin down: a GPU is hidden (also
# from the CLI subprocesses). SEMISTYLEGAN_TEST_DEVICE=cuda leaves it visible, so every test that
# trains on the default device trains on the GPU, and skips the tests marked cpu_only
# (bench/gpu_check.sh).
TEST_DEVICE = os.environ.get("SEMISTYLEGAN_TEST_DEVICE", "cpu")
if TEST_DEVICE != "cuda":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Oracles and dataset caches of tests live in a per-session temporary directory."""
    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setenv("SEMISTYLEGAN_CACHE", str(cache))



def pytest_report_header(config):
    return f"semistylegan test device: {TEST_DEVICE} (CUDA available: {torch.cuda.is_available()})"


def pytest_collection_modifyitems(config, items):
    if TEST_DEVICE != "cuda":
        return
    skip = pytest.mark.skip(reason="cpu_only: needs the CPU's bit-exact results (SEMISTYLEGAN_TEST_DEVICE=cuda)")
    for item in items:
        if "cpu_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def nan_g_gradients():
    """`wrap(train_step, poisoned=lambda step: True)`: a method's train_step whose G gets NaN
    gradients (on its first parameter) on the steps `poisoned` says."""
    def wrap(real_step, poisoned=lambda step: True):
        def step(ctx, nets, batch):
            if not poisoned(ctx.step):
                return real_step(ctx, nets, batch)
            handle = next(nets["G"].parameters()).register_hook(lambda g: torch.full_like(g, float("nan")))
            try:
                return real_step(ctx, nets, batch)
            finally:
                handle.remove()
        return step
    return wrap
