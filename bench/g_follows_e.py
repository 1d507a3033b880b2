"""Does the generator obey its codes, or only fool E? (BENCHMARKS.md, section 3)

    # one line for an existing run (its newest snapshot)
    OMP_NUM_THREADS=1 python bench/g_follows_e.py --diagnose RUN_DIR
    # train Semi-StyleGAN (dsprites-quick, eta = 1%) from scratch for a wall-clock budget with some
    # config fields changed, diagnosing every --every kimg
    OMP_NUM_THREADS=1 python bench/g_follows_e.py --out runs/gfe-ge1 --minutes 30 --set gamma_E=1

Semi-StyleGAN's L_unsup asks G for images whose code E reads as the requested c. The oracle
encoder (trained on all real images, never seen by training) tells whether G renders the factor
or only makes E read it. On 2,000 generated images with codes drawn uniformly over the factor
grid, per factor:
  E~c       correlation of E's reading with the requested code (what training optimises),
  oracle~c  correlation of the oracle's reading with the requested code (what is really drawn),
and, on 2,000 real images, E's correlation with the true code (`real`), E's MIG, and MIG-gen /
L2-gen through the oracle (2,000 samples). E~c far above oracle~c means G has found images
that E misreads: an adversarial example of E rather than control of the factor.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def diagnose(method, nets: dict, device, dataset, kimg: float, num: int = 2000, seed: int = 1) -> dict:
    """The per-factor table of the module docstring for evaluation networks in eval mode."""
    from encoder_probe import real_image_report
    from semistylegan.evaluation import encoder_fn, generator_fn
    from semistylegan.metrics.generator import generator_metrics
    from semistylegan.metrics.oracle import get_oracle

    space = dataset.factor_space
    sizes = np.asarray(space.sizes)
    rs = np.random.RandomState(seed)
    classes = np.stack([rs.randint(s, size=num) for s in sizes], axis=1)
    codes = classes / np.maximum(sizes - 1, 1)
    gen, enc = generator_fn(method, nets, device), encoder_fn(method, nets, device)
    oracle = get_oracle(dataset)
    fakes = gen(codes, seed=seed + 2)
    e_fake, o_fake = enc(fakes), oracle.encode(fakes)
    real = real_image_report(method, nets, device, dataset)

    def corr(a, b):
        return round(float(np.corrcoef(a, b)[0, 1]), 3) if a.std() > 0 and b.std() > 0 else 0.0

    out = {"kimg": kimg}
    for k, name in enumerate(space.names):
        out[name] = {"E~c": corr(e_fake[:, k], codes[:, k]), "oracle~c": corr(o_fake[:, k], codes[:, k]),
                     "real": round(real["corr"][name], 3)}
    out["E_mig"] = round(real["mig"], 4)
    g = generator_metrics(gen, space, oracle, num_samples=num, repeats=1)
    out.update({k: round(float(g[k]), 4) for k in ("mig_gen", "l2_gen")})
    return out


def diagnose_trainer(trainer) -> dict:
    """diagnose() on a training run's EMA networks, leaving them in their training modes."""
    nets = trainer.eval_nets
    modes = {k: n.training for k, n in nets.items()}
    for n in nets.values():
        n.eval()
    out = diagnose(trainer.method, nets, trainer.device, trainer.dataset, trainer.cur_nimg / 1000)
    for k, n in nets.items():
        n.train(modes[k])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--diagnose", metavar="RUN_DIR")
    p.add_argument("--separate", action="store_true",
                   help="--diagnose a run of bench/separate_encoder_gan.py made before --encoder existed "
                        "(new runs: --set encoder=separate)")
    p.add_argument("--out", help="run directory of a new run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config field of dsprites-quick or a method option (TrainConfig.parse_set)")
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--every", type=float, default=20.0, help="diagnose every this many kimg")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).parent))
    from semistylegan.config import TrainConfig, make_config
    from semistylegan.evaluation import load_run
    from semistylegan.train import Trainer

    if args.diagnose:
        run = load_run(args.diagnose, overrides={"encoder": "separate"} if args.separate else None)
        line = diagnose(run.method, run.nets, run.device, run.dataset(), run.kimg)
        print(json.dumps({"run": args.diagnose, **line}), flush=True)
        return 0
    if not args.out:
        p.error("--out or --diagnose")
    cfg = replace(make_config("dsprites-quick", seed=args.seed, metrics_kimg=0.0, grid_kimg=0.0),
                  kimg=1e6, snapshot_kimg=1e6, **TrainConfig.parse_set(args.set))
    trainer = Trainer(cfg, args.out, progress=False)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    log = open(Path(args.out) / "g_follows_e.jsonl", "a")
    log.write(json.dumps({"config": cfg.to_dict(), "weights": cfg.weights}) + "\n")
    t0, next_kimg = time.monotonic(), args.every
    while True:
        trainer.train_one_step()
        done = time.monotonic() - t0 > args.minutes * 60
        if trainer.cur_nimg >= next_kimg * 1000 or done:
            line = {"set": args.set, "seconds": round(time.monotonic() - t0), **diagnose_trainer(trainer)}
            print(json.dumps(line), flush=True)
            log.write(json.dumps(line) + "\n")
            log.flush()
            next_kimg += args.every
        if done:
            break
    trainer.write_grid("traversal.png")
    trainer.save_snapshot()
    return 0


if __name__ == "__main__":
    sys.exit(main())
