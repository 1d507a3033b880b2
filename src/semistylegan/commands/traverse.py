"""`semistylegan traverse RUN_DIR --out FILE.png`: one row per factor, that factor swept over
[0, 1] while the other factors and z stay fixed."""
from __future__ import annotations

import numpy as np
import torch

from semistylegan.commands._common import check_png_out, check_truncation


def add_parser(sub):
    p = sub.add_parser("traverse", help="factor traversal grid of a trained generator", description=__doc__)
    p.add_argument("run_dir", help="run directory (or a snapshot file)")
    p.add_argument("--out", required=True, help="output PNG")
    p.add_argument("--steps", type=int, default=10, help="values per factor")
    p.add_argument("--seed", type=int, default=0, help="seed of z and of the fixed factors")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi")
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan.data.factors import FactorSpace
    from semistylegan.data.dataset import tensor_to_images
    from semistylegan.errors import UserError
    from semistylegan.evaluation import load_run
    from semistylegan.viz import labeled_grid, save_png, traversal_codes

    out = check_png_out(args.out)
    check_truncation(args.truncation)
    if not (2 <= args.steps <= 64):
        raise UserError(f"--steps must be in [2, 64], got {args.steps}")
    run_ = load_run(args.run_dir)
    if not run_.method.has_generator:
        raise UserError(f"{args.run_dir}: method '{run_.cfg.method}' has no generator to traverse")
    fs = FactorSpace.from_dict(run_.dataset_info["factors"])
    rs = np.random.RandomState(args.seed)
    base = fs.classes_to_code(fs.sample_classes(1, rs))[0]
    codes = torch.from_numpy(traversal_codes(base, args.steps))
    z = torch.from_numpy(rs.standard_normal((1, run_.method.z_dim)).astype(np.float32)).expand(len(codes), -1)
    with torch.no_grad():
        imgs = tensor_to_images(run_.method.generate(run_.nets, codes, z, args.truncation))
    save_png(labeled_grid(imgs, fs.num_factors, args.steps, row_labels=list(fs.names),
                          scale=max(1, 64 // run_.cfg.resolution)), out)
    print(f"wrote {out} ({fs.num_factors} factors x {args.steps} values, snapshot {run_.snapshot.name})")
    return 0
