"""Does a semi-fine run's G take a fine factor from its code or from the coarse input's colours?

    .venv/bin/python bench/fine_hue_leak.py RUN [--n 300] [--oracle-steps 1000]

For --n images outside the run's labelled subset (procedural 3DShapes) and each fine factor, G
gets the image's true codes but, as its coarse input, the renderer's image of the same scene
with that factor moved by half its range (the "donor"). The oracle then reads the factor on G's
output: the share that follows the code (what an edit needs), the share that follows the input
(G read the colour off the coarse image), the rest, and the mean error against the code (as
`fine_edit.py eval` scores an edit, in units of the factor's range). The same again with the
donor's hues rotated by a random angle per image, as `hue_jitter` shows G its input in training.
Under hue_jitter the input's absolute colours carry nothing, but the hues relative to each other
survive the rotation: G could undo it from the floor and wall hues its code names and read the
object's hue off the input.
"""
from __future__ import annotations

import argparse
import json

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--oracle-steps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0, help="seed of the images, z and the angles")
    args = ap.parse_args(argv)

    import torch

    from fine_common import load_fine_shapes_run
    from semistylegan.data import LabeledSubset
    from semistylegan.data.dataset import images_to_tensor, tensor_to_images
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.nets.fine import rotate_hue

    run, ds = load_fine_shapes_run(args.run)
    cfg = run.cfg
    space = ds.factor_space
    oracle = get_oracle(ds, train_steps=args.oracle_steps)
    rs = np.random.RandomState(args.seed)
    labelled = LabeledSubset(ds, cfg.labeled_fraction, seed=cfg.seed).indices
    # randint, not choice: choice(len(ds)) with the run's seed is the labelled subset's own draw
    draw = rs.randint(len(ds), size=2 * args.n)
    idx = draw[~np.isin(draw, labelled)][: args.n]
    cls = ds.classes(idx)
    codes = torch.from_numpy(ds.codes(idx)).float()
    z = torch.from_numpy(rs.randn(len(idx), cfg.z_dim).astype(np.float32))
    angles = torch.from_numpy(rs.random_sample(len(idx)) * 2 * np.pi)
    report = {"run": str(args.run), "kimg": run.kimg, "n_images": int(len(idx)), "factors": {}}
    for k in run.method.fine_idx:
        name, size = space.names[k], space.sizes[k]
        donor_cls = cls.copy()
        donor_cls[:, k] = (cls[:, k] + size // 2) % size
        donor = images_to_tensor(ds.images(space.classes_to_index(donor_cls)))
        row = {}
        for view, coarse in (("donor", donor), ("donor_hue_rotated", rotate_hue(donor, angles))):
            out = tensor_to_images(run.method.generate(run.nets, codes, z, coarse=coarse))
            read = oracle.predict_classes(out)[:, k]
            code, inp = float(np.mean(read == cls[:, k])), float(np.mean(read == donor_cls[:, k]))
            row[view] = {"follows_code": code, "follows_input": inp, "neither": 1.0 - code - inp,
                         "abs_err_vs_code": float(np.mean(np.abs(read - cls[:, k])) / (size - 1))}
        report["factors"][name] = row
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
