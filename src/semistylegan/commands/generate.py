"""`semistylegan generate RUN_DIR --code NAME=VALUE,... [--seeds 0-7] --out FILE.png`: images
with chosen factor values; factors not named are drawn from the prior for each seed."""
from __future__ import annotations

import numpy as np
import torch

from semistylegan.commands._common import check_png_out, check_truncation, parse_assignments, parse_seeds


def add_parser(sub):
    p = sub.add_parser("generate", help="generate images with chosen factor values", description=__doc__)
    p.add_argument("run_dir", help="run directory (or a snapshot file)")
    p.add_argument("--code", default="", help="factor values in [0, 1], e.g. shape=0,scale=1")
    p.add_argument("--seeds", default="0-7", help="one image per seed: 0-7 or 1,5,9")
    p.add_argument("--truncation", type=float, default=1.0, help="truncation psi")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan.data.dataset import tensor_to_images
    from semistylegan.data.factors import FactorSpace
    from semistylegan.errors import UserError
    from semistylegan.evaluation import load_run
    from semistylegan.viz import labeled_grid, save_png

    out = check_png_out(args.out)
    check_truncation(args.truncation)
    seeds = parse_seeds(args.seeds)
    run_ = load_run(args.run_dir)
    fs = FactorSpace.from_dict(run_.dataset_info["factors"])
    fixed = parse_assignments(args.code, fs.names)
    if not run_.method.has_generator:
        raise UserError(f"{args.run_dir}: method '{run_.cfg.method}' has no generator")
    codes = np.zeros((len(seeds), fs.num_factors), dtype=np.float32)
    z = np.zeros((len(seeds), run_.method.z_dim), dtype=np.float32)
    for i, seed in enumerate(seeds):
        rs = np.random.RandomState(seed)
        codes[i] = fs.classes_to_code(fs.sample_classes(1, rs))[0]
        z[i] = rs.standard_normal(run_.method.z_dim)
    for name, value in fixed.items():
        codes[:, fs.index_of(name)] = value
    with torch.no_grad():
        generated = run_.method.generate(run_.nets, torch.from_numpy(codes), torch.from_numpy(z), args.truncation)
        imgs = tensor_to_images(generated)
    cols = min(len(seeds), 8)
    rows = -(-len(seeds) // cols)
    if rows * cols != len(imgs):
        imgs = np.concatenate([imgs, np.zeros((rows * cols - len(imgs), *imgs.shape[1:]), dtype=np.uint8)])
    save_png(labeled_grid(imgs, rows, cols, scale=max(1, 64 // run_.cfg.resolution)), out)
    print(f"wrote {out} ({len(seeds)} images)")
    return 0
