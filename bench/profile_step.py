"""Where the time of one training step goes: torch.profiler over a few steps of a preset.

    OMP_NUM_THREADS=1 python bench/profile_step.py --preset dsprites-cpu32 --steps 3

Prints self CPU time by operator (and, with --shapes, by operator and input shape) and the share
of the step spent in convolutions, depthwise convolutions (the blurs), the optimiser and the rest.
"""
from __future__ import annotations

import argparse
import sys
import tempfile

from torch.profiler import ProfilerActivity, profile

from semistylegan.config import make_config
from semistylegan.train import Trainer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dsprites-cpu32")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--shapes", action="store_true", help="group by input shape too")
    args, train_flags = ap.parse_known_args()
    # Any other flag is a `semistylegan train` config flag (e.g. --bf16 --recon 50), parsed by its parser.
    from semistylegan.cli import build_parser
    from semistylegan.commands.train import _given

    given = _given(build_parser().parse_args(["train", *train_flags]))
    overrides = dict(kimg=1e6, grid_kimg=0.0, snapshot_kimg=1e6, deterministic=False)
    cfg = make_config(args.preset, **{**overrides, **given})
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False)
        for _ in range(2):
            trainer.train_one_step()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            for _ in range(args.steps):
                trainer.train_one_step()
    events = prof.key_averages(group_by_input_shape=args.shapes)
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if "conv" in e.key or "mkldnn" in e.key)
    optim = sum(e.self_cpu_time_total for e in events if "_foreach" in e.key or "adam" in e.key.lower())
    print(f"total self CPU {total / 1e6 / args.steps:.3f} s/step; convolution ops {100 * conv / total:.0f}%, "
          f"optimiser (foreach/adam) {100 * optim / total:.0f}%")


if __name__ == "__main__":
    sys.exit(main())
