"""Does removing D's equalised learning rate help E inside the GAN? (BENCHMARKS.md section 1)

    OMP_NUM_THREADS=1 python bench/d_param_gan.py base 30 runs/dparam-base
    OMP_NUM_THREADS=1 python bench/d_param_gan.py plain 30 runs/dparam-plain

Trains the dsprites-quick preset for KIMG thousand images; `plain` stores D's weights at their
run-time scale (same initial function, no equalised lr) and gives D Adam(0.9, 0.999) (with the
lazy-R1 adjustment), as the `d-plain` variant of bench/encoder_probe.py; `base` is the preset as
it is. Then prints the correlation of E's code with each true factor on 2,000 real images, E's
L2 and the mean shape prediction per true shape (square / ellipse / heart).
"""
from __future__ import annotations

import sys

import torch

from encoder_probe import real_image_report, unequalise
from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.methods.semistylegan import SemiStyleGAN
from semistylegan.train import Trainer


def use_plain_discriminator() -> None:
    build_networks, build_optimizers = SemiStyleGAN.build_networks, SemiStyleGAN.build_optimizers

    def networks(self):
        nets = build_networks(self)
        unequalise(nets["D"])
        return nets

    def optimizers(self, nets):
        opts = build_optimizers(self, nets)
        ratio = self.d_step_ratio()
        opts["D"] = torch.optim.Adam(nets["D"].parameters(), lr=self.cfg.lr * ratio,
                                     betas=(0.9 ** ratio, 0.999 ** ratio), eps=1e-8)
        return opts

    SemiStyleGAN.build_networks, SemiStyleGAN.build_optimizers = networks, optimizers


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in ("base", "plain"):
        print("usage: d_param_gan.py base|plain KIMG OUT_DIR", file=sys.stderr)
        return 2
    mode, kimg, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    if mode == "plain":
        use_plain_discriminator()
    cfg = make_config("dsprites-quick", kimg=kimg, metrics_kimg=0.0)
    trainer = Trainer(cfg, out, progress=False)
    print(trainer.run(), flush=True)
    nets = trainer.eval_nets
    for n in nets.values():
        n.eval()
    report = real_image_report(trainer.method, nets, trainer.device, make_dataset("dsprites", 32))
    print("E corr", {k: round(v, 3) for k, v in report["corr"].items()}, "L2", round(report["l2"], 3),
          "shape by class", [round(m, 2) for m, _ in report["shape_by_class"]], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
