"""Data pipeline speed: procedural rendering, cached loading, parallel cache preparation.

    .venv/bin/python bench/data_speed.py [--batches 20] [--pngs 48] [--workers 1 2]

Prints a markdown table (images/s). Everything happens in a temporary cache directory, so the
one-time 3DShapes geometry precomputation is measured too. The 32x32 CPU training preset
consumes about 40 images/s, so the target for every row is >= 800 images/s (20x).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


def _rate(fn, batches, batch, n_total, seed=0):
    rs = np.random.RandomState(seed)
    idx = [rs.randint(n_total, size=batch) for _ in range(batches)]
    fn(idx[0])  # warm-up
    t = time.perf_counter()
    for b in idx:
        fn(b)
    return batches * batch / (time.perf_counter() - t)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--pngs", type=int, default=48, help="number of 1024x1024 PNGs for the cache preparation")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="semistylegan-bench-")
    os.environ["SEMISTYLEGAN_CACHE"] = os.path.join(tmp, "cache")
    from semistylegan.data import make_dataset

    rows = []

    def row(what, value, unit="img/s", note=""):
        rows.append((what, value, unit, note))
        print(f"{what:<48} {value:>10.1f} {unit} {note}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    d64 = make_dataset("dsprites", 64)
    row("dSprites templates (one-time, per process)", time.perf_counter() - t, "s")
    for res in (64, 32):
        ds = make_dataset("dsprites", res)
        row(f"procedural dSprites {res}x{res}", _rate(ds.images, args.batches, args.batch, len(ds)))
    for kind in ("color", "noisy", "scream"):
        ds = make_dataset(f"dsprites-{kind}", 64)
        row(f"procedural dsprites-{kind} 64x64", _rate(ds.images, args.batches, args.batch, len(ds)))
    ds = make_dataset("dsprites-real", 64)
    row("procedural dsprites-real 64x64 (anti-aliased)",
        _rate(ds.images, max(2, args.batches // 4), args.batch, len(ds)))
    del d64

    for res in (64, 32):
        ds = make_dataset("shapes3d", res)
        t = time.perf_counter()
        ds.precompute()
        row(f"3DShapes {res}x{res} geometry (one-time, then on disk)", time.perf_counter() - t, "s")
        row(f"procedural 3DShapes {res}x{res}", _rate(ds.images, args.batches, args.batch, len(ds)))

    # cached loading: an MPI3D-sized layout (4x4 variant) is too big to write here, so a
    # 3DShapes-style h5 of 30,000 64x64 images goes through the cache at 32x32 and 64x64.
    import h5py

    n = 30000
    sizes = (10, 10, 10, 3, 1, 10)
    h5 = os.path.join(tmp, "3dshapes.h5")
    cls = (np.arange(n)[:, None] // np.array([3000, 300, 30, 10, 10, 1])) % np.array(sizes)
    with h5py.File(h5, "w") as f:
        f["images"] = np.random.RandomState(0).randint(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)
        f["labels"] = cls.astype(np.float64) / 10.0
    for res in (64, 32):
        t = time.perf_counter()
        ds = make_dataset("shapes3d", res, h5, progress=False)
        row(f"cache build from h5, {n} images -> {res}x{res}", n / (time.perf_counter() - t))
        row(f"cached loading {res}x{res} (memmap, random batches)", _rate(ds.images, args.batches, args.batch, len(ds)))

    # parallel cache preparation 1024 -> 128 from PNGs (Falcor3D layout, a declared small grid)
    from PIL import Image

    root = os.path.join(tmp, "falcor", "images")
    os.makedirs(root)
    rs = np.random.RandomState(0)
    base = (rs.uniform(size=(32, 32, 3)) * 255).astype(np.uint8)
    t = time.perf_counter()
    for i in range(args.pngs):
        img = np.asarray(Image.fromarray(np.roll(base, i, axis=1)).resize((1024, 1024), Image.Resampling.BILINEAR))
        Image.fromarray(img).save(os.path.join(root, f"{i:06d}.png"), compress_level=1)
    row(f"writing {args.pngs} synthetic 1024x1024 PNGs (setup)", time.perf_counter() - t, "s")
    sizes = [1, 1, 1, 1, 1, 1, args.pngs]
    for w in args.workers:
        os.environ["SEMISTYLEGAN_CACHE"] = os.path.join(tmp, f"cache-w{w}")
        t = time.perf_counter()
        make_dataset("falcor3d", 128, os.path.dirname(root), progress=False, factor_sizes=sizes, workers=w)
        row(f"cache prep 1024->128 PNG, {w} worker(s)", args.pngs / (time.perf_counter() - t))

    print("| what | value | unit |\n|---|---:|---|")
    for what, value, unit, note in rows:
        print(f"| {what} | {value:.1f} | {unit} |")
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
