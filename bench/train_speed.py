"""Training speed of a preset: images/s, FLOPs per step, and FLOP utilisation against the
dense-convolution peak of the same machine, measured in the same run.

    python bench/train_speed.py --preset dsprites-cpu32 --steps 4 --rounds 3 --variants base,channels_last,bf16

For each variant it counts the FLOPs of one training step (D/E phase + G phase) with
torch.utils.flop_counter, then alternates `--rounds` times between timing `--steps` full steps
and timing a large dense 3x3 convolution (forward + backward, same dtype and memory format) for
as long: the "peak". Utilisation = step GFLOP/s / peak GFLOP/s per round; the median round is
reported, with every round's figure. Lazy R1 runs wherever its interval falls in the timed steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from semistylegan.config import make_config
from semistylegan.train import Trainer


class DenseConvPeak:
    """A wide 3x3 conv forward+backward (the best case for the CPU's GEMM kernels): 128 channels,
    32x32, batch 32, with the same dtype and memory format as the variant it is the peak of."""

    def __init__(self, channels_last: bool, bf16: bool):
        self.x = torch.randn(32, 128, 32, 32, requires_grad=True)
        self.conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False)
        if channels_last:
            self.x = self.x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
            self.conv = self.conv.to(memory_format=torch.channels_last)
        self.bf16 = bf16
        with FlopCounterMode(display=False) as fc:
            self.once()
        self.flops = fc.get_total_flops()
        self.once()

    def once(self):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else torch.autocast("cpu", enabled=False)
        with ctx:
            y = self.conv(self.x)
        y.float().sum().backward()

    def time(self, seconds: float) -> tuple[float, float]:
        """(FLOPs done, seconds taken) over about `seconds` of repeats."""
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self.once()
            n += 1
        return self.flops * n, time.perf_counter() - t0


def measure(preset: str, steps: int, rounds: int, channels_last: bool, bf16: bool, batch: int | None) -> dict:
    """Alternates `rounds` times between `steps` training steps and as long a stretch of the peak
    convolution, so that both see the same machine (a shared CPU's speed drifts by 10-30% from one
    minute to the next); the utilisation of each round is its step GFLOP/s over its peak GFLOP/s."""
    overrides = dict(kimg=1e6, grid_kimg=0.0, snapshot_kimg=1e6, channels_last=channels_last, bf16=bf16,
                     deterministic=False)
    if batch:
        overrides.update(batch=batch, labeled_batch=batch)
    cfg = make_config(preset, **overrides)
    peak = DenseConvPeak(channels_last, bf16)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False)
        for _ in range(2):  # warm-up (allocator, kernels)
            trainer.train_one_step()
        with FlopCounterMode(display=False) as fc:
            trainer.train_one_step()
        flops_step = fc.get_total_flops()
        per_round = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(max(steps, 1)):
                trainer.train_one_step()
            dt = (time.perf_counter() - t0) / max(steps, 1)
            peak_flops, peak_dt = peak.time(dt * max(steps, 1))
            per_round.append((dt, peak_flops / peak_dt / 1e9))
    params = sum(p.numel() for net in trainer.nets.values() for p in net.parameters())
    utils = sorted(flops_step / dt / 1e9 / pk for dt, pk in per_round)
    dt = sorted(d for d, _ in per_round)[len(per_round) // 2]
    return {"preset": preset, "resolution": cfg.resolution, "batch": cfg.batch, "params_M": params / 1e6,
            "channels_last": channels_last, "bf16": bf16, "s_per_step": dt, "img_per_s": cfg.batch / dt,
            "gflop_per_step": flops_step / 1e9, "gflop_per_s": flops_step / dt / 1e9,
            "peak_gflop_per_s": sorted(pk for _, pk in per_round)[len(per_round) // 2],
            "utilisation": utils[len(utils) // 2], "utilisation_rounds": utils}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dsprites-cpu32")
    ap.add_argument("--steps", type=int, default=6, help="training steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of steps, each followed by the peak")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--variants", default="base,channels_last,bf16,channels_last+bf16")
    ap.add_argument("--json", default=None, help="append results as JSON lines to this file")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    rows = []
    for variant in args.variants.split(","):
        cl, bf = "channels_last" in variant, "bf16" in variant
        r = measure(args.preset, args.steps, args.rounds, cl, bf, args.batch)
        r["variant"] = variant
        rows.append(r)
        spread = "/".join(f"{100 * u:.0f}" for u in r["utilisation_rounds"])
        print(f"{variant:22s} {r['img_per_s']:7.1f} img/s  {r['s_per_step']:.3f} s/step  "
              f"{r['gflop_per_step']:.1f} GFLOP/step  {r['gflop_per_s']:.1f} GFLOP/s  "
              f"peak {r['peak_gflop_per_s']:.1f}  util {100 * r['utilisation']:.0f}% (rounds {spread})", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    base = rows[0]
    for r in rows[1:]:
        print(f"speed-up of {r['variant']} over {base['variant']}: {r['img_per_s'] / base['img_per_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
