"""Training speed of a preset: images/s, FLOPs per step, and FLOP utilisation against the
dense-convolution peak of the same machine, measured in the same run.

    python bench/train_speed.py --preset dsprites-cpu32 --steps 6 --variants base,channels_last,bf16

For each variant it times full training steps (D/E phase + G phase, lazy R1 amortised by
running the steps across an R1 step), counts the FLOPs of one step with
torch.utils.flop_counter, and times a large dense 3x3 convolution (forward + backward) with
the same dtype/memory format as the "peak". Utilisation = step GFLOP/s / peak GFLOP/s.
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


def dense_conv_peak(channels_last: bool, bf16: bool, seconds: float = 3.0) -> float:
    """GFLOP/s of a wide 3x3 conv forward+backward (the best case for the CPU's GEMM kernels)."""
    x = torch.randn(32, 128, 32, 32, requires_grad=True)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False)
    if channels_last:
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        conv = conv.to(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)

    def once():
        with ctx:
            y = conv(x)
        y.float().sum().backward()

    with FlopCounterMode(display=False) as fc:
        once()
    flops = fc.get_total_flops()
    once()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        once()
        n += 1
    return flops * n / (time.perf_counter() - t0) / 1e9


def measure(preset: str, steps: int, channels_last: bool, bf16: bool, batch: int | None) -> dict:
    overrides = dict(kimg=1e6, grid_kimg=0.0, snapshot_kimg=1e6, channels_last=channels_last, bf16=bf16,
                     deterministic=False)
    if batch:
        overrides.update(batch=batch, labeled_batch=batch)
    cfg = make_config(preset, **overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False)
        for _ in range(2):  # warm-up (allocator, kernels)
            trainer.train_one_step()
        with FlopCounterMode(display=False) as fc:
            trainer.train_one_step()
        flops_step = fc.get_total_flops()
        # Time a whole R1 cycle when it is short, so the lazy R1 cost is amortised honestly.
        n = max(steps, 1)
        t0 = time.perf_counter()
        for _ in range(n):
            trainer.train_one_step()
        dt = (time.perf_counter() - t0) / n
    params = sum(p.numel() for net in trainer.nets.values() for p in net.parameters())
    return {"preset": preset, "resolution": cfg.resolution, "batch": cfg.batch, "params_M": params / 1e6,
            "channels_last": channels_last, "bf16": bf16, "s_per_step": dt, "img_per_s": cfg.batch / dt,
            "gflop_per_step": flops_step / 1e9, "gflop_per_s": flops_step / dt / 1e9}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dsprites-cpu32")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--variants", default="base,channels_last,bf16,channels_last+bf16")
    ap.add_argument("--json", default=None, help="append results as JSON lines to this file")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    rows = []
    for variant in args.variants.split(","):
        cl, bf = "channels_last" in variant, "bf16" in variant
        r = measure(args.preset, args.steps, cl, bf, args.batch)
        r["variant"] = variant
        r["peak_gflop_per_s"] = dense_conv_peak(cl, bf)
        r["utilisation"] = r["gflop_per_s"] / r["peak_gflop_per_s"]
        rows.append(r)
        print(f"{variant:22s} {r['img_per_s']:7.1f} img/s  {r['s_per_step']:.3f} s/step  "
              f"{r['gflop_per_step']:.1f} GFLOP/step  {r['gflop_per_s']:.1f} GFLOP/s  "
              f"peak {r['peak_gflop_per_s']:.1f}  util {100 * r['utilisation']:.0f}%", flush=True)
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    base = rows[0]
    for r in rows[1:]:
        print(f"speed-up of {r['variant']} over {base['variant']}: {r['img_per_s'] / base['img_per_s']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
