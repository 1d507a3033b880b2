"""Cells side by side or one at a time: the same small study run with --jobs 1 (one process, all
cores as threads) and with --jobs N (N processes, cores shared out), back to back in one run.

    .venv/bin/python bench/study_jobs.py [--jobs 2] [--kimg 6] [--cells 4] [--preset dsprites-ctrl]

Prints the wall time of each and the ratio (cells an hour of --jobs N over --jobs 1). Evaluation
is cut to MIG on a few samples so that training dominates, as in a real study.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """name = "jobs-bench"
preset = "{preset}"
kimg = {kimg}
seeds = {seeds}
[metrics]
samples = 500
factor_train = 10
factor_eval = 10
factor_variance = 500
gen = false
fid = false
dci = false
[[grid]]
methods = ["semi"]
eta = [0.01]
options = {{grid_kimg = 0}}
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--kimg", type=float, default=6.0)
    ap.add_argument("--cells", type=int, default=4)
    ap.add_argument("--preset", default="dsprites-ctrl")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "jobs.toml"
        study.write_text(STUDY.format(preset=args.preset, kimg=args.kimg, seeds=list(range(args.cells))))
        walls = {}
        for jobs in (1, args.jobs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "semistylegan", "study", str(study), "--out", f"{tmp}/out{jobs}",
                            "--jobs", str(jobs), "--quiet"], check=True, stdout=subprocess.DEVNULL)
            walls[jobs] = time.perf_counter() - t0
            print(f"--jobs {jobs}: {args.cells} cells of {args.kimg:g} kimg ({args.preset}) in {walls[jobs]:.1f} s",
                  flush=True)
    print(f"--jobs {args.jobs} finishes {walls[1] / walls[args.jobs]:.2f}x the cells an hour of --jobs 1")


if __name__ == "__main__":
    main()
