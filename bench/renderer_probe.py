"""Can the generator render each factor at all, given a perfect teacher? (BENCHMARKS.md, section 3)

    OMP_NUM_THREADS=1 python bench/renderer_probe.py --variants quick,quick-map1 --steps 3000 --every 1000

Semi-StyleGAN's G learns to render a factor only through E's reading and D's realism signal.
This probe removes both: G(c, z) is trained alone, by pixel regression onto the labelled real
image of the same code (mean squared error, dSprites has no nuisance factor, so z has nothing to
explain), on the labelled subset J (eta of procedural dSprites 32x32, batch 32), with G's own
optimiser (Adam(0, 0.99)). Every --every steps, 2,000 images G(c', z) with c' drawn uniformly
over the factor grid (mostly codes outside J) are read by the oracle encoder: per factor, the
correlation of its reading with c', and MIG-gen / L2-gen. So it bounds, for a number of steps,
how much control the generator architecture and optimiser can reach at best. Variants:

- quick:      dsprites-quick's generator (channel_base 512: 16 channels at 32x32), mapping lr x0.01
- quick-map1: the same with the mapping network's learning-rate multiplier 1 instead of 0.01
- cpu32:      dsprites-cpu32's generator (channel_base 2048: 64 channels at 32x32), lr x0.01
- quick-lr01: quick at lr 0.01 instead of 0.002
- quick-adam: quick with Adam(0.9, 0.999)
- quick-plain: quick without the equalised learning rate (nets.layers.store_at_runtime_scale:
              the same function, each weight stored at its run-time scale) and Adam(0.9, 0.999),
              i.e. `--g-plain` with G's betas 0.9 / 0.999
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

VARIANTS = {
    "quick": dict(preset="dsprites-quick"),
    "quick-map1": dict(preset="dsprites-quick", mapping_lr_mul=1.0),
    "cpu32": dict(preset="dsprites-cpu32"),
    "quick-plain": dict(preset="dsprites-quick", plain=True),
    "quick-lr01": dict(preset="dsprites-quick", lr=0.01),
    "quick-adam": dict(preset="dsprites-quick", adam=True),
}


def oracle_report(generate, dataset, num: int = 2000, seed: int = 1) -> dict:
    """Per-factor correlation of the oracle's reading with the requested code, MIG-gen, L2-gen."""
    from semistylegan.metrics.generator import generator_metrics
    from semistylegan.metrics.oracle import get_oracle

    space = dataset.factor_space
    sizes = np.asarray(space.sizes)
    rs = np.random.RandomState(seed)
    codes = np.stack([rs.randint(s, size=num) for s in sizes], axis=1) / np.maximum(sizes - 1, 1)
    oracle = get_oracle(dataset)
    read = oracle.encode(generate(codes.astype(np.float32), seed + 2))
    out = {name: round(float(np.corrcoef(read[:, k], codes[:, k])[0, 1]), 3) if read[:, k].std() > 0 else 0.0
           for k, name in enumerate(space.names)}
    g = generator_metrics(generate, space, oracle, num_samples=num, repeats=1)
    out.update({k: round(float(g[k]), 4) for k in ("mig_gen", "l2_gen")})
    return out


def run_variant(name: str, steps: int, every: int, eta: float, seed: int, out: str | None = None) -> None:
    from semistylegan.config import make_config
    from semistylegan.data import LabeledSubset, make_dataset
    from semistylegan.data.dataset import images_to_tensor, tensor_to_images
    from semistylegan.nets import Generator
    from semistylegan.nets.layers import store_at_runtime_scale
    from semistylegan.viz import save_png

    spec = dict(VARIANTS[name])
    plain = spec.pop("plain", False)
    adam = spec.pop("adam", False) or plain
    cfg = make_config(spec.pop("preset"), **spec)
    ds = make_dataset("dsprites", cfg.resolution)
    J = LabeledSubset(ds, eta, seed=seed).indices
    torch.manual_seed(seed)
    G = Generator(ds.factor_space.num_factors, cfg.z_dim, cfg.w_dim, cfg.resolution, 1, cfg.channel_base,
                  cfg.channel_max, cfg.mapping_layers, cfg.mapping_lr_mul)
    betas = (0.9, 0.999) if adam else (0.0, 0.99)  # the oracle's Adam, or StyleGAN's
    if plain:  # every weight at its run-time scale (bench/encoder_probe.py's d-plain)
        store_at_runtime_scale(G)
    opt = torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=betas, eps=1e-8)
    rs = np.random.RandomState(seed)

    def generate(codes, s):
        g = torch.Generator().manual_seed(int(s))
        with torch.no_grad():
            out = [G(torch.from_numpy(codes[i:i + 256]), torch.randn(len(codes[i:i + 256]), cfg.z_dim, generator=g))
                   for i in range(0, len(codes), 256)]
        return tensor_to_images(torch.cat(out))

    t0 = time.time()
    for step in range(1, steps + 1):
        idx = J[rs.randint(len(J), size=cfg.batch)]
        x = images_to_tensor(ds.images(idx))
        c = torch.from_numpy(ds.codes(idx).astype(np.float32))
        loss = (G(c, torch.randn(cfg.batch, cfg.z_dim)) - x).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            G.eval()
            line = {"variant": name, "step": step, "seconds": round(time.time() - t0), "mse": round(float(loss.detach()), 4),
                    **oracle_report(generate, ds)}
            G.train()
            print(json.dumps(line), flush=True)
    if out:
        save_png(traversal_grid(generate, ds.factor_space, max(1, 64 // cfg.resolution)), f"{out}/renderer_{name}.png")


def traversal_grid(generate, space, scale: int, steps: int = 10, seed: int = 0):
    """One row per factor swept over [0, 1], the others (and z) fixed, as the trainer's grid."""
    from semistylegan.viz import labeled_grid, traversal_codes

    base = space.classes_to_code(space.sample_classes(1, np.random.RandomState(seed)))[0]
    imgs = generate(traversal_codes(base, steps).astype(np.float32), seed)
    return labeled_grid(imgs, space.num_factors, steps, row_labels=list(space.names), scale=scale)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="quick", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--eta", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for a traversal grid per variant")
    args = p.parse_args(argv)
    for name in args.variants.split(","):
        if name not in VARIANTS:
            p.error(f"unknown variant {name}")
        run_variant(name, args.steps, args.every, args.eta, args.seed, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
