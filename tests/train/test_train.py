"""The training loop: exact resume, atomic snapshots, divergence, trajectory independence."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from semistylegan.checkpoint import atomic_save, list_snapshots, load_snapshot
from semistylegan.config import make_config
from semistylegan.errors import UserError
from semistylegan.train import Trainer, train


def _weights(run_dir):
    snap = load_snapshot(list_snapshots(run_dir)[-1])
    return snap


def _assert_same_state(a, b):
    for part in ("networks", "ema"):
        for name in a[part]:
            for key, t in a[part][name].items():
                assert torch.equal(t, b[part][name][key]), f"{part}/{name}/{key}"
    for name in a["optimizers"]:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        for idx in sa:
            for key in sa[idx]:
                assert torch.equal(torch.as_tensor(sa[idx][key]), torch.as_tensor(sb[idx][key]))
    assert a["state"]["step"] == b["state"]["step"]
    assert a["state"]["rng"] == b["state"]["rng"] and a["state"]["data_rng"] == b["state"]["data_rng"]


# The default, the options that add random draws of their own (E's input noise) or optimiser
# groups (a separate encoder) and networks (a plain G), and the channels-last memory
# format (dsprites-cpu32's default; in-place activations on channels-last feature maps), a
# warm-up of 4 steps (its own Adam), stopped inside it after step 3, and a warm-up of 8 steps of
# 8 labelled images (no reals drawn), stopped inside it after step 6, then 2 steps of 16 reals.
@pytest.mark.parametrize("options, half_steps, steps", [
    ({}, 3, 6), (dict(encoder="separate", encoder_noise=0.5, code_head="classify", g_plain=True, g_beta1=0.9), 3, 6),
    (dict(channels_last=True), 3, 6), (dict(warmup_kimg=0.064), 3, 6),
    (dict(warmup_kimg=0.064, labeled_batch=8), 6, 10)])
@pytest.mark.cpu_only  # bit for bit
def test_resume_is_exact(tmp_path, options, half_steps, steps):
    common = dict(r1_interval=3, snapshot_kimg=100.0, grid_kimg=0.0, metrics_kimg=0.0, **options)
    kimg_half = 3 * 16 / 1000
    # Uninterrupted run of 96 images (snapshots at other intervals must not change anything).
    cfg_full = make_config("tiny", kimg=2 * kimg_half, **{**common, "snapshot_kimg": 0.016})
    Trainer(cfg_full, tmp_path / "full", progress=False).run()
    # Stopped after 48 images, then resumed to 96.
    cfg_half = make_config("tiny", kimg=kimg_half, **common)
    Trainer(cfg_half, tmp_path / "split", progress=False).run()
    assert load_snapshot(list_snapshots(tmp_path / "split")[-1])["state"]["step"] == half_steps
    cfg_half.kimg = 2 * kimg_half
    train(cfg_half, tmp_path / "split", resume=True, progress=False)
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert a["state"]["step"] == steps
    _assert_same_state(a, b)


def test_resume_refuses_other_labelled_subset(tmp_path):
    cfg = make_config("tiny", kimg=0.016, grid_kimg=0.0)
    Trainer(cfg, tmp_path / "r", progress=False).run()
    other = make_config("tiny", kimg=0.032, grid_kimg=0.0, labeled_fraction=0.5)
    with pytest.raises(UserError, match="labelled subset"):
        train(other, tmp_path / "r", resume=True, progress=False)


def test_atomic_save_keeps_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "snapshot-00000001.pt"
    atomic_save({"format": "x", "value": torch.ones(3)}, path)

    class Boom:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_save({"format": "x", "value": Boom()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["value"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


def test_snapshots_survive_sigkill(tmp_path):
    """Kill a training process at several moments; every snapshot left behind loads."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "semistylegan", "train", "--preset", "tiny", "--kimg", "5",
           "--snapshot-kimg", "0.016", "--grid-kimg", "0", "--no-progress", "--out", str(run_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 120
        while len(list_snapshots(run_dir)) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert list_snapshots(run_dir), proc.stderr.read().decode() if proc.poll() is not None else "no snapshot"
        time.sleep(0.37)  # land somewhere inside the next save or step
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    for snap in list_snapshots(run_dir):
        state = load_snapshot(snap)
        assert state["state"]["step"] > 0
    # and the run resumes from what is left
    cfg = make_config("tiny", kimg=load_snapshot(list_snapshots(run_dir)[-1])["state"]["cur_nimg"] / 1000 + 0.016,
                      snapshot_kimg=0.016, grid_kimg=0.0)
    assert train(cfg, run_dir, resume=True, progress=False)["status"] == "done"


def test_nan_stops_training_and_keeps_last_good_snapshot(tmp_path):
    cfg = make_config("tiny", kimg=0.2, snapshot_kimg=0.032, grid_kimg=0.0)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    real_step = trainer.method.train_step

    def poisoned(ctx, nets, batch):
        real_step(ctx, nets, batch)
        if trainer.step >= 3:
            ctx.report("D/gan", float("nan"))

    trainer.method.train_step = poisoned
    result = trainer.run()
    assert result["status"] == "diverged" and "non-finite" in result["message"]
    snaps = list_snapshots(tmp_path / "run")
    assert snaps and load_snapshot(snaps[-1])["state"]["step"] == 2


def test_run_directory_contents(tmp_path):
    cfg = make_config("tiny", kimg=0.032, grid_kimg=0.016, snapshot_kimg=0.016)
    result = Trainer(cfg, tmp_path / "run", progress=False).run()
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "config.json").read_text())["preset"] == "tiny"
    assert (run_dir / "traversal.png").stat().st_size > 0
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert lines[-1]["kimg"] == pytest.approx(0.032) and "img_per_s" in lines[-1] and "G/unsup" in lines[-1]
    assert "l2" in result["metrics"] and np.isfinite(result["metrics"]["l2"])
    assert any((run_dir / "tensorboard").iterdir())
    snap = load_snapshot(list_snapshots(run_dir)[-1])
    assert snap["config"]["kimg"] == 0.032 and snap["dataset"]["name"] == "dsprites"
