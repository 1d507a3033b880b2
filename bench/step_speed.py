"""Images/s of training-step variants measured side by side in one run, on a CPU or a GPU: the
full Semi-StyleGAN step against the plain GAN step (gamma = beta = alpha = 0), each with or without
torch.compile (+compile) or bf16 (+fp32 turns it off), and the warm-up step on a labelled batch of
B images (warmup:B).

    OMP_NUM_THREADS=1 python bench/step_speed.py --preset dsprites-cpu32 --variants full,full+compile
    python bench/step_speed.py --preset dsprites-fast --variants full,warmup:32,warmup:128,warmup:128+fp32
    python bench/step_speed.py --preset dsprites64 --device cuda --bf16 --variants full,plain
    python bench/step_speed.py --preset dsprites64 --resolution 128 --device cuda --bf16 --variants full,plain

Every variant's trainer is built and runs `--warmup` steps first (they include torch.compile's
work and cuDNN's autotuning: reported as warmup_s); then `--rounds` rounds time `--steps` steps
of each variant in turn, so that all see the same machine, and the median round is reported.
The steps run as in training (the batch loaded ahead, the stats read once per round). dSprites
is drawn at 64x64; at 128x128 its images are upsampled 2x (the step's cost does not depend on
what the images show).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.data.dataset import GroundTruthDataset
from semistylegan.train import Trainer


class UpsampledDSprites(GroundTruthDataset):
    """Procedural dSprites at 64x64, each pixel repeated to reach `resolution` (128, 256)."""

    name = "dsprites"
    channels = 1

    def __init__(self, resolution: int):
        self.base = make_dataset("dsprites", 64)
        self.factor_space = self.base.factor_space
        self.resolution = resolution

    def images_from_classes(self, classes: np.ndarray, random_state=None) -> np.ndarray:
        f = self.resolution // 64
        return self.base.images_from_classes(classes, random_state).repeat(f, axis=2).repeat(f, axis=3)


VARIANTS = {
    "full": {},                              # the preset's Semi-StyleGAN step
    # the plain GAN step: no code, supervised, MixUp or reconstruction terms (a StyleGAN2 step's work)
    "plain": dict(gamma=0.0, alpha=0.0, beta=0.0, recon=0.0, recon_hard=0.0),
}


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(preset: str, variant: str, args, run_dir: str) -> tuple[Trainer, float]:
    base, *extras = variant.split("+")
    base, _, warmup_batch = base.partition(":")
    batch_ok = warmup_batch.isdigit() and int(warmup_batch) > 0 if base == "warmup" else not warmup_batch
    if (base not in VARIANTS and base != "warmup") or not batch_ok or not set(extras) <= {"compile", "fp32"}:
        raise SystemExit(f"unknown variant {variant!r}: one of {', '.join(VARIANTS)}, warmup:B, "
                         "each optionally +compile, +fp32")
    overrides = dict(kimg=1e6, grid_kimg=0.0, snapshot_kimg=1e6, metrics_kimg=0.0, deterministic=False,
                     device=args.device, compile="compile" in extras, **VARIANTS.get(base, {}))
    for name in ("bf16", "channels_last", "resolution", "batch"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.batch is not None:
        overrides["labeled_batch"] = args.batch
    if "fp32" in extras:
        overrides["bf16"] = False
    # every step a warm-up step, or none (a preset's warm-up off)
    overrides.update(dict(warmup_kimg=1e6, labeled_batch=int(warmup_batch)) if base == "warmup" else
                     dict(warmup_kimg=0.0))
    cfg = make_config(preset, **overrides)
    dataset = UpsampledDSprites(cfg.resolution) if cfg.dataset == "dsprites" and cfg.resolution > 64 else None
    trainer = Trainer(cfg, run_dir, dataset=dataset, progress=False)
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        trainer._step()
    trainer.read_stats()
    _sync(trainer.device)
    return trainer, time.perf_counter() - t0


def time_round(trainer: Trainer, steps: int) -> tuple[float, float]:
    """Seconds per step and images per second over `steps` steps (the stats read, and the device
    drained, at the end)."""
    _sync(trainer.device)
    t0, nimg0 = time.perf_counter(), trainer.cur_nimg
    for _ in range(steps):
        trainer._step()
    trainer.read_stats()
    _sync(trainer.device)
    dt = time.perf_counter() - t0
    return dt / steps, (trainer.cur_nimg - nimg0) / dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dsprites-cpu32")
    ap.add_argument("--variants", default="full,full+compile", help="comma-separated: full, plain, each +compile")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None, help="global batch (and labelled batch)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, autotuning)")
    ap.add_argument("--steps", type=int, default=4, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default=None, help="append the results as JSON lines to this file")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"cuda {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}", flush=True)
    variants = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        trainers, warmup = {}, {}
        for v in variants:
            trainers[v], warmup[v] = build(args.preset, v, args, os.path.join(tmp, v.replace("+", "_")))
            print(f"{v}: built, {args.warmup} warm-up steps in {warmup[v]:.1f} s", flush=True)
        rounds = {v: [] for v in variants}
        for _ in range(args.rounds):
            for v in variants:
                rounds[v].append(time_round(trainers[v], args.steps))
    rows = []
    for v in variants:
        cfg = trainers[v].cfg
        dt = statistics.median(r[0] for r in rounds[v])
        batch = trainers[v].method.step_plan(trainers[v].step).nimg
        rows.append({"preset": args.preset, "variant": v, "device": str(trainers[v].device),
                     "resolution": cfg.resolution, "batch": batch, "bf16": cfg.bf16,
                     "channels_last": cfg.channels_last, "compile": cfg.compile, "s_per_step": dt,
                     "img_per_s": statistics.median(r[1] for r in rounds[v]),
                     "img_per_s_rounds": [r[1] for r in rounds[v]],
                     "warmup_s": warmup[v], "warmup_steps": args.warmup})
        r = rows[-1]
        spread = "/".join(f"{x:.1f}" for x in r["img_per_s_rounds"])
        print(f"{v:18s} {r['resolution']}x{r['resolution']} batch {r['batch']}: {r['img_per_s']:8.1f} img/s "
              f"({dt:.4f} s/step; rounds {spread}); warm-up {r['warmup_s']:.1f} s", flush=True)
    for r in rows[1:]:
        print(f"{r['variant']} / {rows[0]['variant']}: {r['img_per_s'] / rows[0]['img_per_s']:.2f}x img/s")
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
