"""Where a semi-fine run's reconstructions go wrong on procedural 3DShapes: inside the object or outside.

    .venv/bin/python bench/fine_recon_errors.py RUN [--n 200]

For the first --n labelled images of the run (codes known), G reconstructs each from its coarse
input and its true fine codes. The object's pixels are those that change when only the object's
hue changes (the renderer's other image of the same geometry, object_hue moved by half its
range): the object and whatever its colour tints. Printed: the mean pixel error (|G - x| over
channels, images in [-1, 1]) inside and outside that mask, the object's share of the pixels, and
its share of each image's worst 5% of pixels (what `recon_hard` averages).
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="seed of z")
    args = ap.parse_args(argv)

    import torch

    from fine_common import load_fine_shapes_run
    from semistylegan.data import LabeledSubset
    from semistylegan.data.dataset import images_to_tensor
    from semistylegan.methods.semistylegan import hard_pixel_count

    run, ds = load_fine_shapes_run(args.run)
    cfg = run.cfg
    space = ds.factor_space
    idx = LabeledSubset(ds, cfg.labeled_fraction, seed=cfg.seed).indices[: args.n]
    x = images_to_tensor(ds.images(idx))
    codes = torch.from_numpy(ds.codes(idx)).float()
    z = torch.from_numpy(np.random.RandomState(args.seed).randn(len(idx), cfg.z_dim).astype(np.float32))
    out = run.method.generate(run.nets, codes, z, coarse=x)
    err = (out - x).abs().mean(dim=1).flatten(1)  # (N, H*W)
    k = hard_pixel_count(err.shape[1])
    worst = torch.zeros_like(err).scatter_(1, err.topk(k, dim=1).indices, 1.0)
    hue = list(space.names).index("object_hue")
    other = ds.classes(idx).copy()
    other[:, hue] = (other[:, hue] + space.sizes[hue] // 2) % space.sizes[hue]
    moved = images_to_tensor(ds.images(space.classes_to_index(other)))
    obj = ((moved - x).abs().mean(dim=1).flatten(1) > 0.05).float()
    report = {
        "run": str(args.run), "kimg": run.kimg, "n_images": len(idx),
        "mean_error": float(err.mean()),
        "mean_error_object": float((err * obj).sum() / obj.sum()),
        "mean_error_elsewhere": float((err * (1 - obj)).sum() / (1 - obj).sum()),
        "object_pixel_share": float(obj.mean()),
        "worst5_mean_error": float(err.topk(k, dim=1).values.mean()),
        "object_share_of_worst5": float((worst * obj).sum() / worst.sum()),
    }
    print(json.dumps({key: round(v, 4) if isinstance(v, float) else v for key, v in report.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
