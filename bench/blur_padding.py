"""Training-step time with the Blur layer padding through F.pad (sessions 1-7) against the
convolution's own zero padding (session 8), alternating in one process so that the load of the
machine hits both alike. The two give the same values (checked here on the first step's blur).

    OMP_NUM_THREADS=1 python bench/blur_padding.py --preset dsprites-cpu32 --rounds 4
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
import torch.nn.functional as F

from semistylegan.config import make_config
from semistylegan.nets import layers
from semistylegan.train import Trainer


def padded_blur(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """The former Blur.forward: an explicit F.pad, then the depthwise 4x4 convolution (with the
    `stride` argument Blur.forward has since session 9)."""
    c = x.shape[1]
    x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
    return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 4, 4), stride=stride, groups=c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="dsprites-cpu32")
    ap.add_argument("--rounds", type=int, default=4, help="rounds of (2 steps old, 2 steps new)")
    args = ap.parse_args()
    conv_padded = layers.Blur.forward
    blur = layers.Blur((2, 2))
    x = torch.randn(4, 8, 16, 16)
    same = torch.equal(padded_blur(blur, x), conv_padded(blur, x))
    cfg = make_config(args.preset, kimg=1e6, grid_kimg=0.0, snapshot_kimg=1e6, deterministic=False)
    total = {"F.pad": 0.0, "conv padding": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp, progress=False)
        for _ in range(2):
            trainer.train_one_step()
        for _ in range(args.rounds):
            for name, fn in (("F.pad", padded_blur), ("conv padding", conv_padded)):
                layers.Blur.forward = fn
                t0 = time.perf_counter()
                for _ in range(2):
                    trainer.train_one_step()
                total[name] += time.perf_counter() - t0
    layers.Blur.forward = conv_padded
    steps = 2 * args.rounds
    print(json.dumps({"preset": args.preset, "threads": torch.get_num_threads(), "same_values": same,
                      "s_per_step": {k: round(v / steps, 4) for k, v in total.items()},
                      "speedup": round(total["F.pad"] / total["conv padding"], 3)}))


if __name__ == "__main__":
    main()
