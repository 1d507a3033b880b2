"""`semistylegan study FILE.toml`: run a grid of methods x eta x gamma x seeds, resumably, and
write results.csv, results.md (mean +- std over seeds) and plots. See semistylegan.study."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from semistylegan.errors import UserError


def add_parser(sub):
    p = sub.add_parser("study", help="run a reproduction study (grid of methods, eta, gamma, seeds)",
                       description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("file", help="study file (TOML), e.g. studies/dsprites.toml")
    a("--out", default=None, help="study directory (default studies-out/<file stem>); rerun to resume")
    a("--dry-run", action="store_true", help="check the file, list the cells and their state, run nothing")
    a("--summary-only", action="store_true", help="only rewrite results.csv / results.md / plots from finished cells")
    a("--curve", action="store_true", help="read MIG-gen at every snapshot the first seed's cells kept (curve.csv, "
      "fig_curve.png; resumable), then rewrite the summary; trains nothing")
    a("--max-cells", type=int, default=None, help="stop after training this many cells (the rest stay for a rerun)")
    a("--retry-failed", action="store_true", help="rerun cells that diverged or failed")
    a("--gpus", default=None, help="comma-separated GPU ids: one worker process per GPU, cells spread over them")
    a("--jobs", type=int, default=1, help="cells trained side by side on the CPU, each in its own process with "
      "cores/jobs threads (2 cores: --jobs 2 finishes 1.5x the cells an hour of --jobs 1; BENCHMARKS.md)")
    a("--quiet", action="store_true", help="no progress lines or training bar on stderr")
    a("--worker", type=int, default=None, help=argparse.SUPPRESS)
    a("--num-workers", type=int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan import study as S

    path = Path(args.file)
    st = S.load_study(path)
    out = Path(args.out) if args.out else Path("studies-out") / path.stem
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if args.max_cells is not None and args.max_cells < 0:
        raise UserError("--max-cells must be >= 0")
    if args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if args.dry_run:
        done = 0
        for c in st.cells:
            res = S.cell_result(out, c)
            state = res["status"] if res else ("partial" if any((S.cell_dir(out, c)).glob("snapshot-*.pt")) else "todo")
            done += res is not None and res.get("status") == "done"
            cfg = c.config(st.top)
            print(f"{c.index + 1:4d}  {state:9s} {c.cell_id}  ({cfg.preset}, {cfg.dataset}{cfg.resolution}, "
                  f"{cfg.kimg:g} kimg)")
        print(json.dumps({"study": st.name, "cells": len(st.cells), "finished": done, "out": str(out),
                          "budget": st.budget}, indent=None))
        return 0
    if args.curve:
        from semistylegan.study.curve import generator_curve

        if not generator_curve(st, out):
            raise UserError(f"{out}: no cell with a conditional generator kept more than one snapshot "
                            "(set keep_snapshots in its options)")
    if args.summary_only or args.curve:
        rows = [r for r in (S.cell_result(out, c) for c in st.cells) if r is not None]
        written = S.summarise(st, rows, out)
        print("\n".join(f"{k}: {v}" for k, v in written.items()))
        return 0
    if args.worker is not None:
        n = args.num_workers or 1
        if not 0 <= args.worker < n:
            raise UserError("--worker must be in [0, --num-workers)")
        S.run_study(st, out, max_cells=args.max_cells, retry_failed=args.retry_failed, worker=args.worker)
        return 0
    if args.gpus is not None:
        import torch

        gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
        if not gpus:
            raise UserError("--gpus expects a list like 0,1,2,3")
        if not torch.cuda.is_available():
            raise UserError("--gpus given but CUDA is not available here (--jobs N runs cells side by side on the CPU)")
        if any(not g.isdigit() or int(g) >= torch.cuda.device_count() for g in gpus):
            raise UserError(f"--gpus {args.gpus}: this machine has {torch.cuda.device_count()} GPU(s)")
        codes = S.run_parallel(path, st, out, gpus, args.retry_failed)
        return 0 if all(c == 0 for c in codes) else 1
    if args.jobs > 1:
        codes = S.run_parallel(path, st, out, ["cpu"] * args.jobs, args.retry_failed)
        return 0 if all(c == 0 for c in codes) else 1
    rows = S.run_study(st, out, max_cells=args.max_cells, retry_failed=args.retry_failed)
    done = sum(r.get("status") == "done" for r in rows)
    print(f"{done} of {len(st.cells)} cells finished; table: {out / 'results.md'}")
    return 0
