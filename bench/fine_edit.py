"""Semi-StyleGAN-fine on procedural 3DShapes 64x64: train on a CPU budget, then edit real images.

    .venv/bin/python bench/fine_edit.py train --out runs/fine-shapes64 --minutes 20
    .venv/bin/python bench/fine_edit.py eval runs/fine-shapes64 --n 300 --oracle-steps 1000

`train`: Semi-StyleGAN-fine, eta = 1% labels, fine factors = the three hues, a CPU-sized 64x64
model (options below); trains to --kimg, or stops at the first snapshot after --minutes of wall time when given.

`eval`: held-out images = images outside the labelled subset J (the GAN's real-image stream
draws from the whole grid, so they are "unlabelled", not "never seen"). For each image, one
fine factor (round robin) is set to a random grid value different from the image's own; the
edited image is read by the oracle encoder (semistylegan.metrics.oracle, trained on all labels
of the dataset). Reported (mean |oracle code - target| per factor, codes in [0, 1], and the
fraction of exact class matches):
  - edited factor vs the requested value (does the edit follow the request?)
  - coarse factors (scale, shape, orientation) vs the image's true values (kept?)
  - the other fine factors vs the image's true values (kept through E_fine -> G?)
  - the same numbers for the plain reconstruction (codes as read by E_fine, nothing set)
  - the oracle on the real input images (its own error floor), and on the bilinear upsample of
    the coarse input G gets (what the coarse input alone tells the oracle)
and writes edit_examples.png into the run directory (rows: input, reconstruction, then the
wall hue set to 0, 1/3, 2/3, 1).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _fine_options(args) -> dict:
    """semi-fine's method options (cfg.extra): the hues as fine factors, plus the flags given."""
    given = {"recon": args.recon, "recon_edges": args.recon_edges, "recon_hard": args.recon_hard,
             "recon_hard_frac": args.recon_hard_frac, "fine_input_res": args.input_res,
             "coarse_skip": args.coarse_skip, "coarse_gray": args.coarse_gray, "input_const": args.input_const,
             "hue_jitter": args.hue_jitter, "skip_gray": args.skip_gray, "coarse_inject": args.coarse_inject}
    return {"fine_factors": "floor_hue,wall_hue,object_hue", **{k: v for k, v in given.items() if v}}


def cmd_train(args) -> int:
    import torch

    from semistylegan.config import TrainConfig, make_config
    from semistylegan.train import Trainer

    torch.set_num_threads(args.threads)
    overrides = TrainConfig.parse_set(args.set)
    extra = {**_fine_options(args), **overrides.pop("extra", {})}
    cfg = make_config("shapes3d-cpu64", method="semi-fine", labeled_fraction=args.eta, gamma=args.gamma,
                      kimg=args.kimg, batch=args.batch, labeled_batch=args.batch, channel_base=args.channel_base,
                      channel_max=args.channel_max, z_dim=16, w_dim=64, mapping_layers=3, lr=args.lr,
                      ema_kimg=1.0, snapshot_kimg=args.snapshot_kimg, grid_kimg=args.snapshot_kimg * 2, log_every=10,
                      metrics_kimg=0.0, metrics_samples=200, seed=args.seed, r1_interval=16, extra=extra,
                      **overrides)
    trainer = Trainer(cfg, args.out, progress=False)
    print(json.dumps(cfg.to_dict()), flush=True)
    # Run in slices so the wall-clock budget can stop it at a snapshot.
    t0 = time.time()
    total = cfg.kimg
    slice_kimg = args.snapshot_kimg
    cur = 0.0
    while cur < total:
        cur = min(total, cur + slice_kimg)
        trainer.cfg.kimg = cur
        result = trainer.run()
        elapsed = time.time() - t0
        stats = {k: round(v, 3) for k, v in trainer.last_stats.items()}
        print(f"{trainer.cur_nimg / 1000:.2f} kimg, {elapsed / 60:.1f} min, {result['status']} {stats}", flush=True)
        if result["status"] != "done":
            return 1
        if args.minutes is not None and elapsed > args.minutes * 60:
            print(f"stopping at {trainer.cur_nimg / 1000:.2f} of {total:g} kimg: --minutes {args.minutes:g} reached",
                  flush=True)
            break
    print(f"trained {trainer.cur_nimg / 1000:.2f} kimg in {(time.time() - t0) / 60:.1f} min wall", flush=True)
    return 0


def cmd_eval(args) -> int:
    import torch

    from semistylegan.data import LabeledSubset, make_dataset
    from semistylegan.editing import Editor
    from semistylegan.evaluation import load_run
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.nets.fine import box_downsample
    from semistylegan.viz import labeled_grid, save_png

    torch.set_grad_enabled(False)
    run = load_run(args.run)
    editor = Editor(run, source=args.run)
    if not editor.fine:
        print("expects a semi-fine run", file=sys.stderr)
        return 2
    cfg = run.cfg
    ds = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path, **cfg.data_options)
    t0 = time.time()
    oracle = get_oracle(ds, train_steps=args.oracle_steps, verbose=True)
    print(f"oracle ready in {time.time() - t0:.0f} s; held-out: "
          f"{json.dumps({k: v for k, v in oracle.info.items() if k in ('l2', 'accuracy', 'mig')})}", flush=True)
    J = set(LabeledSubset(ds, cfg.labeled_fraction, seed=cfg.seed).indices.tolist())
    rs = np.random.RandomState(args.seed)
    idx = []
    while len(idx) < args.n:
        i = int(rs.randint(len(ds)))
        if i not in J:
            idx.append(i)
    idx = np.asarray(idx)
    images = ds.images(idx)
    true_cls = ds.classes(idx)
    true = ds.codes(idx)
    names = list(ds.factor_space.names)
    sizes = np.asarray(ds.factor_space.sizes)
    fine = list(run.method.fine_idx)
    coarse = [k for k in range(len(names)) if k not in fine]

    # one edited fine factor per image (round robin), target a different grid value
    which = np.asarray([fine[i % len(fine)] for i in range(len(idx))])
    target_cls = np.empty(len(idx), dtype=np.int64)
    for i, k in enumerate(which):
        choices = [c for c in range(sizes[k]) if c != true_cls[i, k]]
        target_cls[i] = rs.choice(choices)
    target = target_cls / (sizes[which] - 1)

    read = editor.encode(images)                     # (N, F) fine codes as read by E_fine
    t1 = time.time()
    recon = editor.generate(read, images, seed=0)
    codes = read.copy()
    for i, k in enumerate(which):
        codes[i, fine.index(k)] = target[i]
    edited = editor.generate(codes, images, seed=0)
    gen_ms = (time.time() - t1) * 1000 / (2 * len(idx))

    o_real = oracle.predict_classes(images)
    # what the coarse input alone carries: the oracle on its bilinear upsample back to full size
    small = box_downsample(torch.from_numpy(images).float(), run.method.input_res)
    blurred = torch.nn.functional.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
    o_blur = oracle.predict_classes(blurred.round().clamp(0, 255).to(torch.uint8).numpy())
    o_recon = oracle.predict_classes(recon)
    o_edit = oracle.predict_classes(edited)
    denom = np.maximum(sizes - 1, 1)

    def err(pred_cls, ref_cls, k):
        return float(np.mean(np.abs(pred_cls[:, k] - ref_cls[:, k]) / denom[k])), float(np.mean(pred_cls[:, k] == ref_cls[:, k]))

    report = {"run": str(args.run), "kimg": run.kimg, "n_images": int(len(idx)), "oracle_steps": args.oracle_steps,
              "oracle_heldout": {k: v for k, v in oracle.info.items() if k in ("l2", "accuracy")},
              "encoder_read_error": {names[k]: float(np.mean(np.abs(read[:, j] - true[:, k]))) for j, k in enumerate(fine)},
              "ms_per_image_generate": round(gen_ms, 2), "factors": {}}
    for k in range(len(names)):
        row = {"role": "fine" if k in fine else "coarse"}
        row["oracle_on_real"] = err(o_real, true_cls, k)
        row["reconstruction"] = err(o_recon, true_cls, k)
        row["oracle_on_upsampled_coarse_input"] = err(o_blur, true_cls, k)
        if k in fine:
            sel = which == k
            tgt = true_cls.copy()
            tgt[sel, k] = target_cls[sel]
            row["edited_this_factor"] = err(o_edit[sel], tgt[sel], k)
            row["kept_when_other_factor_edited"] = err(o_edit[~sel], true_cls[~sel], k)
        else:
            row["kept_when_fine_factor_edited"] = err(o_edit, true_cls, k)
        report["factors"][names[k]] = row
    # the model's own encoder on its edits (what L_unsup trains), and chance levels from the data
    e_edit = editor.encode(edited)
    e_recon = editor.encode(recon)
    perm = np.random.RandomState(args.seed + 1).permutation(len(idx))
    for j, k in enumerate(fine):
        sel = which == k
        row = report["factors"][names[k]]
        row["E_fine_on_edit_vs_request"] = float(np.mean(np.abs(e_edit[sel, j] - target[sel])))
        row["E_fine_on_reconstruction_vs_read"] = float(np.mean(np.abs(e_recon[:, j] - read[:, j])))
    for k in range(len(names)):
        report["factors"][names[k]]["chance_random_image"] = err(true_cls[perm], true_cls, k)
    summary = {
        "edited_factor_abs_err": float(np.mean([report["factors"][names[k]]["edited_this_factor"][0] for k in fine])),
        "edited_factor_exact": float(np.mean([report["factors"][names[k]]["edited_this_factor"][1] for k in fine])),
        "coarse_kept_abs_err": float(np.mean([report["factors"][names[k]]["kept_when_fine_factor_edited"][0] for k in coarse])),
        "coarse_kept_exact": float(np.mean([report["factors"][names[k]]["kept_when_fine_factor_edited"][1] for k in coarse])),
        "other_fine_kept_abs_err": float(np.mean([report["factors"][names[k]]["kept_when_other_factor_edited"][0] for k in fine])),
        "oracle_on_real_abs_err": float(np.mean([report["factors"][names[k]]["oracle_on_real"][0] for k in range(len(names))])),
        "chance_abs_err_10_values": float(np.mean(np.abs(np.arange(10)[:, None] - np.arange(10)[None, :])) / 9),
        "coarse_from_upsampled_input_abs_err": float(np.mean([report["factors"][names[k]]["oracle_on_upsampled_coarse_input"][0] for k in coarse])),
        "coarse_chance_abs_err": float(np.mean([report["factors"][names[k]]["chance_random_image"][0] for k in coarse])),
        "E_fine_on_edit_vs_request": float(np.mean([report["factors"][names[k]]["E_fine_on_edit_vs_request"] for k in fine])),
    }
    report["summary"] = summary
    out = Path(args.run) / "edit_eval.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=1))

    # figure: 8 images; rows input, reconstruction, wall hue 0, 1/3, 2/3, 1
    m = min(8, len(idx))
    wall = names.index("wall_hue") if "wall_hue" in names else fine[0]
    rows = [images[:m], recon[:m]]
    for v in (0.0, 1 / 3, 2 / 3, 1.0):
        c = read[:m].copy()
        c[:, fine.index(wall)] = v
        rows.append(editor.generate(c, images[:m], seed=0))
    grid = np.stack(rows).reshape(-1, *images.shape[1:])
    labels = ["input", "recon", f"{names[wall]}=0", f"{names[wall]}=.33", f"{names[wall]}=.67", f"{names[wall]}=1"]
    save_png(labeled_grid(grid, len(rows), m, row_labels=labels, scale=2), Path(args.run) / "edit_examples.png")
    print(f"wrote {out} and {Path(args.run) / 'edit_examples.png'}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", required=True)
    t.add_argument("--minutes", type=float, default=None,
                   help="also stop at the first snapshot after this many minutes of wall time (default: no cap)")
    t.add_argument("--kimg", type=float, default=100.0)
    t.add_argument("--eta", type=float, default=0.01)
    t.add_argument("--gamma", type=float, default=10.0)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--channel-base", type=int, default=512)
    t.add_argument("--channel-max", type=int, default=32)
    t.add_argument("--lr", type=float, default=0.002)
    t.add_argument("--snapshot-kimg", type=float, default=1.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--recon", type=float, default=0.0, help="semi-fine's labelled reconstruction weight (0 = off)")
    t.add_argument("--recon-edges", type=float, default=0.0,
                   help="semi-fine's reconstruction weight on image gradients (0 = off)")
    t.add_argument("--recon-hard", type=float, default=0.0,
                   help="semi-fine's recon_hard weight: the reconstruction over each image's worst 5%% of pixels (0 = off)")
    t.add_argument("--recon-hard-frac", type=float, default=0.0,
                   help="semi-fine's recon_hard_frac: the share of pixels recon_hard averages (0 = the default 5%%)")
    t.add_argument("--coarse-skip", action="store_true", help="semi-fine's coarse_skip option")
    t.add_argument("--coarse-gray", action="store_true", help="semi-fine's coarse_gray option")
    t.add_argument("--coarse-inject", action="store_true", help="semi-fine's coarse_inject option")
    t.add_argument("--input-const", action="store_true", help="semi-fine's input_const option")
    t.add_argument("--hue-jitter", action="store_true", help="semi-fine's hue_jitter option")
    t.add_argument("--skip-gray", action="store_true", help="semi-fine's skip_gray option (with --coarse-skip)")
    t.add_argument("--input-res", type=int, default=None, help="semi-fine's coarse input resolution (default 16)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other config field or method option (TrainConfig.parse_set)")
    t.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core machine)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("eval")
    e.add_argument("run")
    e.add_argument("--n", type=int, default=300)
    e.add_argument("--oracle-steps", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_eval)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
