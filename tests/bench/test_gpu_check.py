"""bench/gpu_check.sh --dry-run: every stage of the GPU check, tiny and on the CPU, passes and
leaves its results (the test stage in GPU mode, where the cpu_only tests are skipped)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_gpu_check_dry_run(tmp_path):
    out = tmp_path / "results"
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", str(out)], env=env,
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (out / "summary.txt").read_text()
    for stage in ("tests", "speed64", "speed128", "train", "evaluate"):
        assert f"{stage}: exit 0 in" in summary, summary
    assert "1 skipped" in (out / "tests.log").read_text()  # the cpu_only test, as on a GPU
    rows = [json.loads(line) for line in (out / "step_speed.jsonl").read_text().splitlines()]
    assert [(r["variant"], r["resolution"]) for r in rows] == [("full", 16), ("plain", 16), ("full", 32),
                                                                ("plain", 32)]
    assert all(r["img_per_s"] > 0 for r in rows)
    assert sorted(p.name for p in (out / "run").glob("snapshot-*.pt"))
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["generator"]["mig_gen"] <= 1.0
