"""Projection against E-only editing on held-out images: reconstruction error and edit fidelity.

    OMP_NUM_THREADS=1 .venv/bin/python bench/project_quality.py RUN_DIR --n 100 --steps 200 --oracle-steps 1000

For a Semi-StyleGAN (semi) or Semi-StyleGAN-fine (semi-fine) run on a ground-truth dataset
(procedural 3DShapes here). Held-out images: images outside the run's labelled subset J, drawn
with --seed. Each image is reconstructed three ways:
  - E-only, as `edit` does: E's codes and the seed-0 z;
  - E-only with z = 0 (where the projection starts);
  - projected: `semistylegan.projection.project` (--steps Adam steps), codes and noise fitted.
Reported: the mean absolute pixel error (pixels in [0, 1]) of each; the oracle encoder's
(semistylegan.metrics.oracle) reading of each reconstruction against the image's true factors.
Then one editable factor per image (round robin over the model's editable factors: all of them
for semi, the fine ones for semi-fine) is set to a random grid value other than the image's own,
from E's reading (E-only) and from the projection (projected, keeping its noise); the oracle reads
the edit: |code - request| and exact-class rate for the edited factor, and the same against the
true values for the other factors (kept?). Writes RUN_DIR/project_quality.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run")
    p.add_argument("--n", type=int, default=100, help="held-out images")
    p.add_argument("--steps", type=int, default=200, help="projection steps")
    p.add_argument("--oracle-steps", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=50, help="images projected together")
    p.add_argument("--lr", type=float, default=0.05, help="projection's Adam learning rate")
    p.add_argument("--perceptual", type=float, default=0.1, help="weight of the D-feature distance")
    p.add_argument("--tag", default="", help="suffix of the JSON file's name")
    args = p.parse_args(argv)

    import torch

    from semistylegan.data import LabeledSubset, make_dataset
    from semistylegan.editing import load_editor
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.projection import reconstruction_error, render_images

    torch.set_num_threads(1)
    editor = load_editor(args.run)
    run, cfg = editor.run, editor.run.cfg
    ds = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path)
    t0 = time.time()
    oracle = get_oracle(ds, train_steps=args.oracle_steps, verbose=False)
    print(f"oracle ready in {time.time() - t0:.0f} s (held-out accuracy {oracle.info.get('accuracy')})", flush=True)
    labeled = set(LabeledSubset(ds, cfg.labeled_fraction, seed=cfg.seed).indices.tolist())
    rs = np.random.RandomState(args.seed)
    idx = []
    while len(idx) < args.n:
        i = int(rs.randint(len(ds)))
        if i not in labeled and i not in idx:
            idx.append(i)
    idx = np.asarray(idx)
    images, true_cls = ds.images(idx), ds.classes(idx)
    names = list(ds.factor_space.names)
    sizes = np.asarray(ds.factor_space.sizes)
    denom = np.maximum(sizes - 1, 1)
    editable = [names.index(n) for n in editor.names]  # dataset columns of the editor's codes

    # one edited factor per image, round robin, a grid value other than the image's own
    which = np.asarray([editable[i % len(editable)] for i in range(len(idx))])
    target_cls = np.asarray([rs.choice([c for c in range(sizes[k]) if c != true_cls[i, k]])
                             for i, k in enumerate(which)])
    target = target_cls / denom[which]

    read = editor.encode(images)
    t1 = time.time()
    fits = [editor.project(images[s:s + args.batch], args.steps, lr=args.lr, perceptual_weight=args.perceptual)
            for s in range(0, len(idx), args.batch)]
    proj_s = time.time() - t1
    codes_p = np.concatenate([f.codes for f in fits])
    noise_p = np.concatenate([f.noise for f in fits])
    diverged = int(np.concatenate([f.diverged for f in fits]).sum())

    recon = {"E-only (seed-0 z)": editor.generate(read, images, seed=0),
             "E-only (z = 0)": editor.generate(read, images, zero_z=True),
             "projected": render_images(editor, codes_p, noise_p, images)}

    def with_target(codes):
        out = codes.copy()
        for i, k in enumerate(which):
            out[i, editor.names.index(names[k])] = target[i]
        return out

    edited = {"E-only (seed-0 z)": editor.generate(with_target(read), images, seed=0),
              "projected": render_images(editor, with_target(codes_p), noise_p, images)}

    def factor_errors(pred_cls, ref_cls, mask):
        """mean |pred - ref| in code units and exact rate over the (image, factor) cells in mask."""
        diff = np.abs(pred_cls - ref_cls) / denom[None]
        return float(diff[mask].mean()), float((diff[mask] == 0).mean())

    all_cells = np.ones_like(true_cls, dtype=bool)
    report = {"run": str(args.run), "method": cfg.method, "kimg": run.kimg, "n_images": len(idx), "steps": args.steps,
              "lr": args.lr, "perceptual": args.perceptual, "projection_seconds": round(proj_s, 1),
              "diverged": diverged,
              "oracle_heldout_accuracy": oracle.info.get("accuracy"),
              "oracle_on_real": factor_errors(oracle.predict_classes(images), true_cls, all_cells),
              "editable": editor.names, "reconstruction": {}, "edit": {}}
    for key, imgs in recon.items():
        report["reconstruction"][key] = {
            "pixel_abs_err": float(reconstruction_error(images, imgs).mean()),
            "oracle_factors_abs_err_exact": factor_errors(oracle.predict_classes(imgs), true_cls, all_cells)}
    edited_cell = np.zeros_like(true_cls, dtype=bool)
    edited_cell[np.arange(len(idx)), which] = True
    requested = true_cls.copy()
    requested[np.arange(len(idx)), which] = target_cls
    for key, imgs in edited.items():
        o = oracle.predict_classes(imgs)
        report["edit"][key] = {"edited_factor_abs_err_exact": factor_errors(o, requested, edited_cell),
                               "other_factors_abs_err_exact": factor_errors(o, true_cls, ~edited_cell)}
    out = Path(args.run) / f"project_quality{args.tag}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{cfg.method} {run.kimg:.1f} kimg, {len(idx)} held-out images, {args.steps} steps, lr {args.lr}, "
          f"perceptual {args.perceptual} "
          f"({proj_s / len(idx):.2f} s per image), diverged {diverged}")
    print("| reconstruction | pixel abs err | oracle factors abs err (exact) |")
    print("|---|---|---|")
    for key, r in report["reconstruction"].items():
        e, x = r["oracle_factors_abs_err_exact"]
        print(f"| {key} | {r['pixel_abs_err']:.4f} | {e:.3f} ({x:.0%}) |")
    print("| edit from | edited factor abs err (exact) | other factors abs err (exact) |")
    print("|---|---|---|")
    for key, r in report["edit"].items():
        (e1, x1), (e2, x2) = r["edited_factor_abs_err_exact"], r["other_factors_abs_err_exact"]
        print(f"| {key} | {e1:.3f} ({x1:.0%}) | {e2:.3f} ({x2:.0%}) |")
    e, x = report["oracle_on_real"]
    print(f"oracle on the real images: {e:.3f} ({x:.0%}); wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
