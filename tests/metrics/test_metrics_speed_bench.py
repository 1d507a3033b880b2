"""bench/metrics_speed.py: --load really keeps a process busy, ends it, and the rows compare equal results."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_metrics_speed_bench_with_load(tmp_path):
    out_json = tmp_path / "rows.json"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "metrics_speed.py"), "--only", "mig", "--repeats", "2",
                          "--reference", "port", "--load", "--json", str(out_json)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    text = run.stdout
    assert "reference: dlib's algorithm re-implemented" in text
    pid = int(re.search(r"load: one busy process \(pid (\d+);", text).group(1))
    used = float(re.search(r"the busy process used ([0-9.]+) s of CPU", text).group(1))
    assert used > 0.3  # it did spin
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive, "the load process outlived the benchmark"
    rows = json.loads(out_json.read_text())
    assert rows["load"] is True
    (mig_row,) = rows["rows"]
    assert mig_row["same"] == "|diff| = 0.0e+00"
    assert len(mig_row["pair_ratios"]) == 2 and mig_row["speedup"] > 1
