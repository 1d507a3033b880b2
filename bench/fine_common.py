"""What the semi-fine diagnostics in bench/ share: loading a run on procedural 3DShapes."""
from __future__ import annotations

import sys


def load_fine_shapes_run(path):
    """(run, dataset) of a semi-fine run on 3DShapes, with autograd off; a run of another kind
    gets one line on stderr and exit status 2."""
    import torch

    from semistylegan.data import make_dataset
    from semistylegan.evaluation import load_run

    torch.set_grad_enabled(False)
    run = load_run(path)
    cfg = run.cfg
    ds = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path)
    if cfg.method != "semi-fine" or "object_hue" not in ds.factor_space.names:
        print(f"expects a semi-fine run on 3DShapes, got {cfg.method} on {cfg.dataset}", file=sys.stderr)
        raise SystemExit(2)
    return run, ds
