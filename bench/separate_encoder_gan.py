"""Semi-StyleGAN with an encoder trunk of its own instead of a head on D's trunk (BENCHMARKS.md, section 1).

    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 64 --out runs/sepenc-64k
    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 64 --out runs/shared-64k --shared
    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 160 --out runs/sepenc-64k --resume

bench/encoder_probe.py shows that the code head on D's equalised-lr trunk stalls at a shape
correlation of 0.44, while the oracle's plain CNN trained by the same L2-norm regression passes
0.7. This experiment keeps every loss of Semi-StyleGAN (eqs 3-7, same weights, same phases) and
the dsprites-quick preset, and only moves E: `--encoder separate` (since session 4 a training
option; sessions 2-3 ran the same networks through a patch in this script): E(x) is read by a
separate plain CNN (nets/encoder.py, the oracle's architecture, one regression output per
factor) trained with Adam(0.9, 0.999) at lr 0.002 inside D's optimiser step (its own parameter
group); D keeps its equalised lr and Adam(0, 0.99) for the GAN loss. `--shared` runs the preset
as it is, through the same script, for a side-by-side number.

At the end it prints E's correlation with each factor on 2,000 real images, E's MIG and L2,
MIG-gen / L2-gen through the cached oracle (3 x 2,000 samples) and writes the run's
traversal.png as usual.
"""
from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kimg", type=float, default=64.0)
    p.add_argument("--out", required=True)
    p.add_argument("--shared", action="store_true", help="the preset as it is (E on D's trunk)")
    p.add_argument("--gen-samples", type=int, default=2000)
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --kimg (exact resume)")
    args = p.parse_args(argv)

    from encoder_probe import real_image_report
    from semistylegan.checkpoint import latest_snapshot, load_snapshot
    from semistylegan.config import make_config
    from semistylegan.data import make_dataset
    from semistylegan.evaluation import generator_fn
    from semistylegan.metrics.generator import generator_metrics
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.train import Trainer

    cfg = make_config("dsprites-quick", kimg=args.kimg, metrics_kimg=0.0,
                      encoder="shared" if args.shared else "separate")
    trainer = Trainer(cfg, args.out, progress=False)
    if args.resume:
        path = latest_snapshot(args.out)
        trainer.load_state_dict(load_snapshot(path), source=str(path))
    result = trainer.run()
    print(result, flush=True)
    if result["status"] != "done":
        return 1
    nets = trainer.eval_nets
    for n in nets.values():
        n.eval()
    ds = make_dataset("dsprites", 32)
    report = real_image_report(trainer.method, nets, trainer.device, ds)
    out = {
        "variant": "shared" if args.shared else "separate",
        "kimg": args.kimg,
        "E_corr": {k: round(v, 3) for k, v in report["corr"].items()},
        "E_l2": round(report["l2"], 4),
        "E_mig": round(report["mig"], 4),
    }
    gen = generator_metrics(generator_fn(trainer.method, nets, trainer.device), ds.factor_space,
                            get_oracle(ds), num_samples=args.gen_samples, repeats=3)
    out.update({k: round(float(gen[k]), 4) for k in ("mig_gen", "mig_gen_std", "l2_gen", "l2_gen_std")})
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
