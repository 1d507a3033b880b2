"""Estimate the wall time of a study on this machine: time a few training steps of each distinct
cell configuration, multiply by the cells' kimg, add a measured evaluation of one cell per method.

    .venv/bin/python bench/study_cpu.py studies/cpu_dsprites.toml [--steps 6] [--threads 2] [--no-eval]

Prints a markdown table (method, preset, img/s, kimg per cell, cells, hours). Training speed is
measured after 2 warm-up steps; evaluation is measured once per method on a cell trained for
those few steps (its time does not depend on the training length). On a machine shared with
other jobs the numbers are upper bounds of what a quiet machine needs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict

import torch

from semistylegan import study as S


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    st = S.load_study(args.file)
    Trainer = S._study_trainer_class()
    groups = defaultdict(list)
    for c in st.cells:
        cfg = c.config(st.top)
        key = (c.method, c.preset, tuple(sorted(c.options.items())))
        groups[key].append((c, cfg))
    rows, total = [], 0.0
    eval_cache: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for (method, preset, *_), cells in groups.items():
            c, cfg = cells[0]
            trainer = Trainer(cfg, f"{tmp}/{c.cell_id}", progress=False)
            for _ in range(2):
                trainer.train_one_step()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_one_step()
            img_s = args.steps * cfg.batch / (time.perf_counter() - t0)
            if not args.no_eval and method not in eval_cache:
                t1 = time.perf_counter()
                S.evaluate_cell(trainer.method, trainer.eval_nets, trainer.dataset, st.metrics, trainer.device, seed=0)
                eval_cache[method] = time.perf_counter() - t1
            ev = eval_cache.get(method, 0.0)
            secs = sum(cfg.kimg * 1000 / img_s + ev for _, cfg in cells)
            total += secs
            rows.append((method, preset, img_s, cells[0][1].kimg, len(cells), ev, secs / 3600))
            print(f"{method:14s} {preset:16s} {img_s:7.1f} img/s, eval {ev:6.1f} s, {len(cells)} cells: "
                  f"{secs / 3600:.2f} h",
                  file=sys.stderr, flush=True)
    print("| method | preset | img/s | kimg per cell | cells | eval s per cell | hours |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:g} | {r[4]} | {r[5]:.0f} | {r[6]:.2f} |")
    print(f"\nTotal: {total / 3600:.1f} h with {args.threads} threads ({st.name}, {len(st.cells)} cells).")


if __name__ == "__main__":
    main()
