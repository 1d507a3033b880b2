"""Semi-StyleGAN with an encoder trunk of its own instead of a head on D's trunk (BENCHMARKS.md, section 1).

    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 64 --out runs/sepenc-64k
    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 64 --out runs/shared-64k --shared
    OMP_NUM_THREADS=2 python bench/separate_encoder_gan.py --kimg 160 --out runs/sepenc-64k --resume

bench/encoder_probe.py shows that the code head on D's equalised-lr trunk stalls at a shape
correlation of 0.44, while the oracle's plain CNN trained by the same L2-norm regression passes
0.7. This experiment keeps every loss of Semi-StyleGAN (eqs 3-7, same weights, same phases) and
the dsprites-quick preset, and only moves E: E(x) is read by a separate plain CNN (the oracle's
architecture with one regression output per factor, semistylegan.metrics.oracle.OracleNet),
trained with Adam(0.9, 0.999) at lr 0.002 inside D's optimiser step (its own parameter group);
D keeps its equalised lr and Adam(0, 0.99) for the GAN loss. `--shared` runs the preset as it is,
through the same script, for a side-by-side number.

This is a deviation from SPEC.md (E is a second head on D's shared trunk there); it is an
experiment, not a training option. At the end it prints E's correlation with each factor on 2,000
real images, E's MIG and L2, MIG-gen / L2-gen through the cached oracle (3 x 2,000 samples) and
writes the run's traversal.png as usual.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn as nn


class SeparateEncoderD(nn.Module):
    """D for the real/fake logit, a plain CNN for the codes; the interface of Discriminator."""

    def __init__(self, D: nn.Module, E: nn.Module, noise: float = 0.0):
        super().__init__()
        self.D, self.E = D, E
        self.noise = noise  # training only: Gaussian noise of this std added to every image E reads

    def forward(self, img, need_logits: bool = True, need_codes: bool = True):
        logits = self.D(img, need_logits=True, need_codes=False)[0] if need_logits else None
        return logits, (self.encode(img) if need_codes else None)

    def encode(self, img):
        if self.training and self.noise > 0:  # randomised smoothing: small adversarial changes drown
            img = img + self.noise * torch.randn_like(img)
        return torch.cat(self.E(img), dim=1)

    def read_codes(self, img):
        """Codes in [0, 1]; with a classifier E (code_head = classify), the arg-max values."""
        from semistylegan.nets.discriminator import decode_code_logits

        out = self.encode(img)
        sizes = getattr(self, "code_classes", None)
        if sizes is None:
            return out
        return decode_code_logits(out, sizes, self.fake_classes)

    def heads(self, img, need_logits: bool = True, need_codes: bool = True, cond_codes=None, cond_known=None):
        if cond_codes is not None:
            raise ValueError("the separate-encoder D has no conditional head")
        return (*self.forward(img, need_logits, need_codes), None)


def use_separate_encoder(noise: float = 0.0) -> None:
    from semistylegan.methods.semistylegan import SemiStyleGAN
    from semistylegan.metrics.oracle import OracleNet

    build_networks = SemiStyleGAN.build_networks

    def networks(self):
        nets = build_networks(self)
        nets["D"].code_head = None  # unused: the codes come from E
        sizes = tuple(int(m) for m in self.factor_sizes)
        fake = self.fake_classes > 0
        heads = tuple(m * (2 if fake else 1) for m in sizes) if self.classify else (1,) * self.num_factors
        E = OracleNet(self.cfg.resolution, self.channels, heads)
        nets["D"] = SeparateEncoderD(nets["D"], E, noise)
        nets["D"].code_classes = sizes if self.classify else None
        nets["D"].fake_classes = fake
        return nets

    def optimizers(self, nets):
        cfg = self.cfg
        ratio = self.d_step_ratio()
        d = nets["D"]
        return {
            "G": self.g_optimizer(nets["G"]),
            "D": torch.optim.Adam([
                {"params": list(d.D.parameters()), "lr": cfg.lr * ratio, "betas": (0.0, 0.99 ** ratio)},
                {"params": list(d.E.parameters()), "lr": 0.002, "betas": (0.9, 0.999)},
            ], eps=1e-8),
        }

    SemiStyleGAN.build_networks, SemiStyleGAN.build_optimizers = networks, optimizers


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kimg", type=float, default=64.0)
    p.add_argument("--out", required=True)
    p.add_argument("--shared", action="store_true", help="the preset as it is (E on D's trunk)")
    p.add_argument("--gen-samples", type=int, default=2000)
    p.add_argument("--resume", action="store_true", help="continue the run in --out up to --kimg (exact resume)")
    args = p.parse_args(argv)

    from encoder_probe import real_image_report
    from semistylegan.config import make_config
    from semistylegan.data import make_dataset
    from semistylegan.evaluation import generator_fn
    from semistylegan.metrics.generator import generator_metrics
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.checkpoint import latest_snapshot, load_snapshot
    from semistylegan.train import Trainer

    if not args.shared:
        use_separate_encoder()
    cfg = make_config("dsprites-quick", kimg=args.kimg, metrics_kimg=0.0)
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
