"""torchrun --nproc_per_node 2 ... --batch 3 with two gloo CPU processes: refused before the
run folder exists, our one line printed once (rank 0). torchrun then reports the failed
children in its own words; that part is the launcher's."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.cpu_only  # two gloo CPU processes


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_torchrun_batch_that_does_not_split(tmp_path):
    launcher_vars = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher_vars}
    env["OMP_NUM_THREADS"] = "1"
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "semistylegan",
           "train", "--preset", "tiny", "--batch", "3", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)
    assert proc.returncode != 0
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("semistylegan: error:")]
    assert ours == ["semistylegan: error: --batch 3 does not split evenly over 2 processes; use a multiple of 2"]
    assert "semistylegan/" not in proc.stderr  # no traceback through this package's code
    assert not out.exists()
