"""Kill -9 a tiny training run at random moments, resume it each time, and compare every tensor
of the finished run with a run that was never stopped.

    OMP_NUM_THREADS=1 python bench/chaos_resume.py --trials 5 --steps 24

Each trial: a reference run of STEPS steps (snapshot every step), then the same run in child
processes (forked, so that the imports and the dataset are paid once) that are killed with
SIGKILL: at seeded random moments, as soon as a snapshot's temporary file appears (the parent
polls for it), and once by the child itself halfway through writing a snapshot's bytes. After
the kills a last child finishes the run. The finished snapshot must equal the reference in every
network, EMA and optimiser tensor, the step, the image count and both random states, and
stats.jsonl must list each step once. tests/hardening/test_chaos.py runs one trial.
"""
from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import torch

from semistylegan.checkpoint import list_snapshots, load_snapshot
from semistylegan.config import make_config

STEP_KIMG = 0.016  # one step of the tiny preset (batch 16)


def chaos_config(steps: int):
    return make_config("tiny", kimg=steps * STEP_KIMG, snapshot_kimg=STEP_KIMG, grid_kimg=0.0, metrics_samples=64,
                       log_every=1)


def differences(a: dict, b: dict) -> list[str]:
    """Names of what differs between two snapshots: every tensor of the networks, the EMA copies
    and the optimiser states, and the training state (step, images, random states)."""
    out = []
    for part in ("networks", "ema"):
        for name in sorted(set(a[part]) | set(b[part])):
            ta, tb = a[part].get(name, {}), b[part].get(name, {})
            out += [f"{part}/{name}/{k}" for k in sorted(set(ta) | set(tb))
                    if k not in ta or k not in tb or not torch.equal(ta[k], tb[k])]
    for name in sorted(set(a["optimizers"]) | set(b["optimizers"])):
        sa, sb = a["optimizers"].get(name, {}).get("state", {}), b["optimizers"].get(name, {}).get("state", {})
        for idx in sorted(set(sa) | set(sb)):
            for k in sorted(set(sa.get(idx, {})) | set(sb.get(idx, {}))):
                va, vb = sa.get(idx, {}).get(k), sb.get(idx, {}).get(k)
                if va is None or vb is None or not torch.equal(torch.as_tensor(va), torch.as_tensor(vb)):
                    out.append(f"optimizers/{name}/{idx}/{k}")
    out += [f"state/{k}" for k in sorted(set(a["state"]) | set(b["state"])) if a["state"].get(k) != b["state"].get(k)]
    return out


def count_tensors(snap: dict) -> int:
    n = sum(len(v) for part in ("networks", "ema") for v in snap[part].values())
    return n + sum(len(s) for o in snap["optimizers"].values() for s in o["state"].values())


def _child(run_dir: str, steps: int, dataset, die_at_snapshot: int | None):
    """Train (resuming when the run exists); with die_at_snapshot, SIGKILL itself halfway through
    writing that step's snapshot (after the temporary file holds half of its bytes)."""
    import semistylegan.train as train_module
    from semistylegan.checkpoint import _atomic_file

    real_save = train_module.atomic_save

    def save(obj, path):
        if die_at_snapshot is None or obj["state"]["step"] != die_at_snapshot:
            return real_save(obj, path)
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        with _atomic_file(Path(path), "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return None

    train_module.atomic_save = save
    code = 0
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the resume notes; the parent reads the run directory instead
        os.dup2(devnull, 2)
        result = train_module.train(chaos_config(steps), run_dir, resume=(Path(run_dir) / "config.json").is_file(),
                                    progress=False, dataset=dataset)
        code = 0 if result["status"] == "done" else 3
    except BaseException:  # noqa: BLE001  (any failure is this child's exit status)
        code = 4
    os._exit(code)


def _snapshot_step(run_dir: Path) -> int:
    snaps = list_snapshots(run_dir)
    return int(snaps[-1].name[len("snapshot-"):-len(".pt")]) if snaps else 0


def chaos_trial(work_dir: Path, dataset, seed: int, steps: int = 24, random_kills: int = 3, timeout: float = 120.0,
                reference: Path | None = None) -> dict:
    """One trial (see the module docstring). Returns the counts and the differences found."""
    from semistylegan.train import Trainer

    rng = random.Random(seed)
    run_dir = work_dir / f"chaos-{seed}"
    if reference is None:
        reference = work_dir / f"reference-{steps}"
        if not list_snapshots(reference):
            Trainer(chaos_config(steps), reference, dataset=dataset, progress=False).run()
    ctx = multiprocessing.get_context("fork")
    t_end = time.monotonic() + timeout
    report = {"seed": seed, "steps": steps, "kills": 0, "kills_in_snapshot_write": 0, "kills_before_first_snapshot": 0,
              "resumes": 0, "children_failed": 0}
    # the plan: seeded random moments, one kill when a snapshot's temp file shows, one self-kill mid-write
    # The self-kill goes first, so that its snapshot step is always reached (a fast machine may
    # finish the run before the later random moments).
    plan = [("random", rng.uniform(0.2, 1.5)) for _ in range(random_kills)]
    plan.insert(rng.randrange(len(plan) + 1), ("at_temp_file", None))
    plan = [("self_mid_write", rng.randint(1, 3))] + plan + [("finish", None)]
    for kind, arg in plan:
        if time.monotonic() > t_end:
            raise TimeoutError(f"chaos trial {seed} ran past {timeout:.0f} s")
        before = _snapshot_step(run_dir)
        if (run_dir / "config.json").is_file():
            report["resumes"] += 1
        die_at = before + arg if kind == "self_mid_write" else None
        stale = set(run_dir.glob(".snapshot-*.tmp"))  # left by the previous kill; this child removes them
        proc = ctx.Process(target=_child, args=(str(run_dir), steps, dataset, die_at), daemon=True)
        proc.start()
        t0 = time.monotonic()
        if kind == "random":
            while proc.is_alive() and time.monotonic() - t0 < arg:
                time.sleep(0.005)
        elif kind == "at_temp_file":
            while proc.is_alive() and time.monotonic() < t_end and not set(run_dir.glob(".snapshot-*.tmp")) - stale:
                time.sleep(0.001)
        if kind in ("random", "at_temp_file") and proc.is_alive():  # the self-kill child dies by itself
            os.kill(proc.pid, signal.SIGKILL)
        proc.join(max(1.0, t_end - time.monotonic()))
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            raise TimeoutError(f"chaos trial {seed}: a child did not finish in time")
        killed = proc.exitcode == -signal.SIGKILL
        if killed:
            report["kills"] += 1
            report["kills_in_snapshot_write"] += bool(set(run_dir.glob(".snapshot-*.tmp")) - stale)
            report["kills_before_first_snapshot"] += not list_snapshots(run_dir)
        elif proc.exitcode != 0:
            report["children_failed"] += 1
    final, ref = load_snapshot(list_snapshots(run_dir)[-1]), load_snapshot(list_snapshots(reference)[-1])
    logged = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    report.update(final_step=final["state"]["step"], tensors_compared=count_tensors(final),
                  differences=differences(final, ref), stats_steps_once=logged == list(range(1, steps + 1)),
                  temp_files_left=len(list(run_dir.glob(".*.tmp"))))
    report["identical"] = not report["differences"] and report["final_step"] == steps
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--random-kills", type=int, default=3,
                    help="kills at random moments per trial (plus the two aimed at snapshot writes)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the first trial (then +1 per trial)")
    args = ap.parse_args()
    from semistylegan.data import make_dataset

    dataset = make_dataset("dsprites", 16)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.trials):
            row = chaos_trial(Path(tmp), dataset, args.seed + i, args.steps, args.random_kills, timeout=600.0)
            rows.append(row)
            shown = {k: v for k, v in row.items() if k != "differences"} | {"differences": row["differences"][:5]}
            print(json.dumps(shown), flush=True)
    print(json.dumps({"trials": len(rows), "kills": sum(r["kills"] for r in rows),
                      "kills_in_snapshot_write": sum(r["kills_in_snapshot_write"] for r in rows),
                      "kills_before_first_snapshot": sum(r["kills_before_first_snapshot"] for r in rows),
                      "resumes": sum(r["resumes"] for r in rows),
                      "bit_identical_trials": sum(r["identical"] for r in rows),
                      "tensors_compared_per_trial": rows[0]["tensors_compared"] if rows else 0}))
    return 0 if all(r["identical"] and r["stats_steps_once"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
