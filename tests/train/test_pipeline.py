"""The input pipeline and logging around the step: the batch loaded ahead changes nothing, the
stats are read once per log interval and equal the per-step values, the non-finite checks still
stop a run, the precision is chosen per device, and --compile trains."""
import json

import numpy as np
import pytest
import torch

from semistylegan import pipeline
from semistylegan import train as train_module
from semistylegan.checkpoint import list_snapshots
from semistylegan.cli import main
from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.errors import UserError
from semistylegan.methods import StepContext
from semistylegan.train import Trainer

STEP_KIMG = 0.016  # one step of the tiny preset (batch 16)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset("dsprites", 16)


def _cfg(steps, **kw):
    return make_config("tiny", **{"kimg": steps * STEP_KIMG, "snapshot_kimg": 100.0, "grid_kimg": 0.0,
                                  "metrics_samples": 64, **kw})


def _lines(run_dir):
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


# the batch loaded ahead ------------------------------------------------------------------
@pytest.mark.cpu_only  # two runs compared bit for bit
def test_prefetching_gives_the_same_weights_and_snapshot_state(tmp_path, dataset):
    cfg = _cfg(4)
    ahead = Trainer(cfg, tmp_path / "ahead", dataset=dataset, progress=False, prefetch=True)
    plain = Trainer(cfg, tmp_path / "plain", dataset=dataset, progress=False, prefetch=False)
    for _ in range(2):
        ahead._step()
        plain._step()
    # mid-run, with the third batch already drawn and loading: a snapshot holds the data
    # generator from before that draw, as the run without prefetching has it
    assert ahead.prefetcher._pending is not None
    assert ahead.state_dict()["state"] == plain.state_dict()["state"]
    ahead.run()
    plain.run()
    for name in plain.nets:
        for (key, p), q in zip(plain.nets[name].state_dict().items(), ahead.nets[name].state_dict().values()):
            assert torch.equal(p, q), f"{name}/{key}"
    assert ahead.state_dict()["state"] == plain.state_dict()["state"]
    assert ahead.prefetcher._pending is None  # the run rewound what it had loaded ahead


# statistics ------------------------------------------------------------------------------
@pytest.mark.cpu_only  # two runs compared bit for bit
def test_stats_are_read_once_per_log_interval_and_equal_the_per_step_means(tmp_path, dataset, monkeypatch):
    every_step = tmp_path / "every"
    Trainer(_cfg(6, log_every=1), every_step, dataset=dataset, progress=False).run()

    reads, kinds = [], []
    real_read, real_add = pipeline.StatsWindow.read, pipeline.StatsWindow.add

    def read(self):
        reads.append(len(self))
        return real_read(self)

    def add(self, step, stats):
        kinds.append(torch.is_tensor(stats["D/gan"]) and torch.is_tensor(stats["G/gan"]))
        return real_add(self, step, stats)

    monkeypatch.setattr(pipeline.StatsWindow, "read", read)
    monkeypatch.setattr(pipeline.StatsWindow, "add", add)
    windowed = tmp_path / "windowed"
    Trainer(_cfg(6, log_every=3), windowed, dataset=dataset, progress=False).run()
    assert reads == [3, 3]  # one read of three steps per log interval
    assert kinds == [True] * 6  # the losses reach the loop as tensors, unread

    per_step, lines = _lines(every_step), _lines(windowed)
    assert [line["step"] for line in lines] == [3, 6]
    for line, window in zip(lines, (per_step[:3], per_step[3:])):
        stats = {k: v for k, v in line.items() if k not in ("step", "kimg", "img_per_s")}
        assert set(stats) == {k for k in window[0] if k not in ("step", "kimg", "img_per_s")}
        for key, value in stats.items():
            assert value == pytest.approx(np.mean([w[key] for w in window if key in w]), rel=1e-12, abs=0), key


def test_nonfinite_gradients_stop_a_run_between_log_lines_at_the_step_they_reach_patience(tmp_path, dataset,
                                                                                          nan_g_gradients):
    """Stats read every 5 steps and before the snapshot of step 7: the streak is counted step by step
    at each read, so the read at step 10 stops the run naming step 8, as a per-step check would."""
    trainer = Trainer(_cfg(12, log_every=5, snapshot_kimg=7 * STEP_KIMG), tmp_path / "run", dataset=dataset,
                      progress=False)
    trainer.method.train_step = nan_g_gradients(trainer.method.train_step)
    result = trainer.run()
    assert result == {"status": "diverged", "message": "gradients held non-finite values for 8 steps in a row "
                                                       "at step 8 (G/nonfinite_grads)"}
    assert trainer.step == 10  # the read at step 10 (the log interval) found the streak reach 8 at step 8
    assert [line["step"] for line in _lines(tmp_path / "run")] == [5]
    assert [p.name for p in list_snapshots(tmp_path / "run")] == ["snapshot-00000007.pt"]


def test_accelerator_path_counts_and_zeroes_nonfinite_gradients_without_a_host_read():
    a = torch.nn.Parameter(torch.zeros(6))
    b = torch.nn.Parameter(torch.zeros(2, 3, 2, 2).to(memory_format=torch.channels_last))
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), {"net": torch.optim.SGD([a, b], lr=1.0)},
                      step=0)
    ctx.host_reads_are_free = False  # as on a GPU
    poison = torch.tensor([float("nan"), 1.0, float("inf"), 2.0, -float("inf"), 3.0])
    a.register_hook(lambda g: g * 0 + poison)
    weights = torch.arange(24.0).reshape(2, 3, 2, 2)
    ctx.optimizer_step("net", a.sum() + (b * weights).sum(), [a, b])
    count = ctx.stats["net/nonfinite_grads"]
    assert torch.is_tensor(count) and count.item() == 3.0
    torch.testing.assert_close(a.detach(), torch.tensor([0.0, -1.0, 0.0, -2.0, 0.0, -3.0]))
    torch.testing.assert_close(b.detach(), -weights)  # a channels_last gradient copied back in place


# precision -------------------------------------------------------------------------------
@pytest.mark.parametrize("device_type,enabled,bf16_supported,expected", [
    ("cpu", False, True, (None, False)),
    ("cpu", True, True, (torch.bfloat16, False)),
    ("cuda", False, False, (None, False)),
    ("cuda", True, True, (torch.bfloat16, False)),    # Ampere and later
    ("cuda", True, False, (torch.float16, True)),     # older GPUs: float16 needs loss scaling
])
def test_mixed_precision_choice(device_type, enabled, bf16_supported, expected):
    assert pipeline.mixed_precision(device_type, enabled, bf16_supported) == expected


def test_grad_scaler_steps_like_plain_training_and_skips_an_overflow():
    a = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([a], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=1000)
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), {"net": opt}, step=0,
                      autocast_dtype=torch.float16, scalers={"net": scaler})
    ctx.optimizer_step("net", (a * 2).sum(), [a])
    torch.testing.assert_close(a.detach(), torch.full((4,), -1.0))  # the unscaled gradient 2, lr 1
    handle = a.register_hook(lambda g: torch.full_like(g, float("inf")))
    ctx.optimizer_step("net", (a * 2).sum(), [a])
    handle.remove()
    torch.testing.assert_close(a.detach(), torch.full((4,), -1.0))  # the overflowing step was skipped
    assert scaler.get_scale() == 2.0 ** 9
    assert a.grad is None and "net/nonfinite_grads" not in ctx.stats


# torch.compile ---------------------------------------------------------------------------
def test_compiled_forward_runs_plain_for_a_gradient_penalty_input():
    """Compiled graphs have no double backward: R1's input (a leaf that requires a gradient), or a
    call inside eager_forward(), goes through the plain forward, so the penalty's gradient exists."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    reference = [p.detach().clone() for p in net.parameters()]
    pipeline.compile_forward(net)
    assert [p.data_ptr() for p in net.parameters()] and list(net.state_dict()) == ["0.weight", "0.bias", "2.weight",
                                                                                    "2.bias"]
    x = torch.randn(5, 3, requires_grad=True)
    (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    plain = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for p, r in zip(plain.parameters(), reference):
            p.copy_(r)
    x2 = x.detach().clone().requires_grad_(True)
    (grad2,) = torch.autograd.grad(plain(x2).sum(), x2, create_graph=True)
    grad2.square().sum().backward()
    for p, q in zip(net.parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def _compile_available() -> bool:
    """What `--compile` checks before training (TorchDynamo, and a C++ compiler on a CPU)."""
    try:
        train_module._check_compile_available()
    except UserError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _compile_available(), reason="torch.compile needs TorchDynamo and a C++ compiler here")
def test_compile_flag_trains(tmp_path, capsys):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--compile", "--kimg", str(2 * STEP_KIMG), "--grid-kimg", "0",
                 "--metrics-samples", "64", "--log-every", "1", "--no-progress", "--out", str(run_dir)]) == 0
    assert json.loads((run_dir / "config.json").read_text())["compile"] is True
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2  # G and D were compiled
    lines = _lines(run_dir)
    assert [line["step"] for line in lines] == [1, 2]
    assert all(np.isfinite(v) for line in lines for v in line.values())
    assert list_snapshots(run_dir)


def test_backend_settings_change_only_on_cuda():
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark)
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = cudnn.benchmark = False
        pipeline.configure_backend(torch.device("cpu"))
        assert not (matmul.allow_tf32 or cudnn.allow_tf32 or cudnn.benchmark)
        pipeline.configure_backend(torch.device("cuda"))
        assert matmul.allow_tf32 and cudnn.allow_tf32 and cudnn.benchmark
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = saved


def test_compile_without_a_compiler_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import shutil

    from semistylegan.cli import main

    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--compile", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--compile on a CPU needs a C++ compiler (g++ or clang++) on the PATH") and "\n" not in err
    assert not out.exists()
