"""Runs that stopped badly: before their first snapshot, with a torn newest snapshot, with temp
files of an interrupted write, with log lines past the snapshot. Each resumes to exactly the
state of a run that was never stopped."""
import json

import pytest
import torch

from semistylegan.checkpoint import list_snapshots, load_snapshot
from semistylegan.cli import main
from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.train import Trainer, train

pytestmark = pytest.mark.cpu_only  # resumed runs compared bit for bit

STEP_KIMG = 0.016  # one step of the tiny preset (batch 16)


@pytest.fixture(scope="module")
def dataset():
    return make_dataset("dsprites", 16)


def _cfg(steps, **kw):
    return make_config("tiny", **{"kimg": steps * STEP_KIMG, "snapshot_kimg": STEP_KIMG, "grid_kimg": 0.0,
                                  "log_every": 1, "metrics_kimg": 2 * STEP_KIMG, "metrics_samples": 64, **kw})


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset):
    """An unstopped run of 6 steps."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    Trainer(_cfg(6), run_dir, dataset=dataset, progress=False).run()
    return run_dir


def assert_same_state(a: dict, b: dict):
    """Every tensor of two snapshots equal (networks, EMA, optimiser states), and step and random states."""
    for part in ("networks", "ema"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            for key, t in a[part][name].items():
                assert torch.equal(t, b[part][name][key]), f"{part}/{name}/{key}"
    for name in a["optimizers"]:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        assert sa.keys() == sb.keys()
        for idx in sa:
            for key in sa[idx]:
                assert torch.equal(torch.as_tensor(sa[idx][key]), torch.as_tensor(sb[idx][key])), f"{name}/{idx}/{key}"
    assert a["state"] == b["state"]


def _steps(path):
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def test_run_that_diverged_before_its_first_snapshot_resumes_from_step_0(tmp_path, dataset, reference, capsys):
    run_dir = tmp_path / "run"
    trainer = Trainer(_cfg(6, snapshot_kimg=100.0), run_dir, dataset=dataset, progress=False)
    real_step = trainer.method.train_step

    def poisoned(ctx, nets, batch):
        real_step(ctx, nets, batch)
        ctx.report("D/gan", float("nan"))

    trainer.method.train_step = poisoned
    assert trainer.run()["status"] == "diverged"
    assert list_snapshots(run_dir) == [] and (run_dir / "config.json").is_file()
    (run_dir / ".snapshot-00000001.pt.k3j2h1.tmp").write_bytes(b"half a snapshot")  # a kill mid-write
    # `train --out` the same folder points to --resume, which continues the run from step 0
    assert main(["train", "--preset", "tiny", "--no-progress", "--out", str(run_dir)]) == 2
    assert "use --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--snapshot-kimg", str(STEP_KIMG), "--no-progress"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == [f"semistylegan: note: {run_dir} has no snapshot yet (the run stopped before its first one), "
                   "so it starts again from step 0."]
    assert_same_state(load_snapshot(list_snapshots(run_dir)[-1]), load_snapshot(list_snapshots(reference)[-1]))
    assert not list(run_dir.glob(".*.tmp"))
    assert _steps(run_dir / "stats.jsonl") == _steps(reference / "stats.jsonl") == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("damage,problem", [
    ("truncate", "is not a readable snapshot: it is truncated at byte {size} (an interrupted write or copy)."),
    ("garbage", "is not a readable snapshot: it is not a snapshot of this program (not a PyTorch file)."),
    ("empty", "is not a readable snapshot: it is empty (0 bytes)."),
])
def test_damaged_newest_snapshot_falls_back_to_the_newest_intact_one(tmp_path, dataset, reference, damage, problem,
                                                                      capsys):
    run_dir = tmp_path / "run"
    Trainer(_cfg(4), run_dir, dataset=dataset, progress=False).run()
    newest = list_snapshots(run_dir)[-1]
    assert newest.name == "snapshot-00000004.pt"
    data = newest.read_bytes()
    damaged = {"truncate": data[: len(data) * 2 // 3], "garbage": b"GIF89a" + bytes(100), "empty": b""}
    newest.write_bytes(damaged[damage])
    size = newest.stat().st_size
    # Lines the run logged after its last good snapshot: a stopped run redoes those steps.
    assert _steps(run_dir / "stats.jsonl")[-1] == 4
    assert train(_cfg(6), run_dir, resume=True, progress=False, dataset=dataset)["status"] == "done"
    err = capsys.readouterr().err.splitlines()
    assert err == [f"semistylegan: note: Resuming from snapshot-00000003.pt, the newest intact snapshot. {newest} "
                   + problem.format(size=size) + " Renamed to snapshot-00000004.pt.bad."]
    assert (run_dir / "snapshot-00000004.pt.bad").stat().st_size == size
    assert_same_state(load_snapshot(list_snapshots(run_dir)[-1]), load_snapshot(list_snapshots(reference)[-1]))
    assert _steps(run_dir / "stats.jsonl") == [1, 2, 3, 4, 5, 6]  # no step twice
    assert _steps(run_dir / "metrics-train.jsonl") == _steps(reference / "metrics-train.jsonl") == [2, 4, 6]


def test_every_snapshot_damaged_is_refused_and_nothing_changes(tmp_path, dataset, capsys):
    run_dir = tmp_path / "run"
    Trainer(_cfg(2), run_dir, dataset=dataset, progress=False).run()
    for snap in list_snapshots(run_dir):
        snap.write_bytes(snap.read_bytes()[:999])
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["train", "--resume", str(run_dir), "--kimg", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "snapshot-00000002.pt is not a readable snapshot: it is truncated at byte 999" in err[0]
    assert err[0].endswith("No older snapshot is intact.")
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_resume_truncates_the_logs_and_purges_tensorboard(tmp_path, dataset, reference):
    """Stopped after step 5 with its last snapshot at step 3 (as a kill leaves it): the resumed
    run's stats.jsonl, metrics-train.jsonl and TensorBoard scalars hold each step once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    Trainer(_cfg(5), run_dir, dataset=dataset, progress=False).run()
    for snap in list_snapshots(run_dir):
        if load_snapshot(snap)["state"]["step"] > 3:
            snap.unlink()
    with open(run_dir / "stats.jsonl", "a") as f:
        f.write('{"step": 6, "kimg": 0.0')  # a line a kill cut short
    train(_cfg(6), run_dir, resume=True, progress=False, dataset=dataset)
    assert _steps(run_dir / "stats.jsonl") == [1, 2, 3, 4, 5, 6]
    assert _steps(run_dir / "metrics-train.jsonl") == [2, 4, 6]
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("kimg")]
    assert steps == [16 * s for s in range(1, 7)], steps  # TensorBoard's step is the image count
    assert_same_state(load_snapshot(list_snapshots(run_dir)[-1]), load_snapshot(list_snapshots(reference)[-1]))


def test_stale_temp_files_are_removed_when_a_run_starts(tmp_path, dataset):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = [run_dir / ".snapshot-00000007.pt.a1b2c3.tmp", run_dir / ".config.json.zz.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 10)
    keep = run_dir / "notes.tmp"  # not one of ours (no leading dot): left alone
    keep.write_text("mine")
    Trainer(_cfg(1), run_dir, dataset=dataset, progress=False).run()
    assert not any(p.exists() for p in stale) and keep.read_text() == "mine"
