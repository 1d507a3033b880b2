"""Chaos: a tiny run killed with SIGKILL at seeded random moments, as a snapshot's temp file
appears, and halfway through writing a snapshot; resumed after each kill; at the end every
tensor equals the run that was never stopped (bench/chaos_resume.py runs more trials)."""
import importlib.util
import signal
from pathlib import Path

import pytest

from semistylegan.data import make_dataset

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("chaos_resume", ROOT / "bench" / "chaos_resume.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(180)
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL and fork")
def test_killed_and_resumed_run_equals_the_unstopped_one(tmp_path):
    report = _bench().chaos_trial(tmp_path, make_dataset("dsprites", 16), seed=2024, steps=24, random_kills=3,
                                  timeout=150.0)
    assert report["children_failed"] == 0, report
    assert report["kills"] >= 4 and report["kills_in_snapshot_write"] >= 1, report
    assert report["differences"] == [] and report["final_step"] == 24, report
    assert report["tensors_compared"] > 200 and report["identical"]
    assert report["stats_steps_once"] and report["temp_files_left"] == 0, report
