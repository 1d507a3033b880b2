"""Our training steps against NVIDIA's plain StyleGAN2 GAN step, side by side in one process.

    OMP_NUM_THREADS=1 python bench/vs_nvidia.py --nvidia /path/to/stylegan2-ada-pytorch

`--nvidia` is an extracted copy of github.com/NVlabs/stylegan2-ada-pytorch (nothing of it is in
this repository). Its Generator and Discriminator are built with a preset's sizes (z, w, mapping
layers, channel_base, channel_max, resolution, batch; the generator conditioned on the K factor
codes, D unconditional, no fp16 layers, no clamping) and run on the CPU with their reference ops;
their step is the plain non-saturating GAN step with lazy R1 every 16 steps and both Adams at
lr 0.002, betas (0, 0.99), as StyleGAN2 trains, without style mixing or path-length
regularisation (ours has neither).

Ours, per preset: the plain GAN step (gamma = beta = alpha = 0, no reconstruction: the same work as
NVIDIA's) and the preset's full step, built as bench/step_speed.py builds them. The rounds
alternate between every step kind and the dense-convolution peak of bench/train_speed.py, so a
drifting shared CPU hits them alike; each kind's img/s is the median over rounds, and the ratios
are taken against NVIDIA's plain step of the same rounds. Our steps run in the preset's memory
format and precision unless --precision says otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import types

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import step_speed  # noqa: E402
from train_speed import DenseConvPeak  # noqa: E402


class NvidiaPlainStep:
    """NVIDIA's networks with a preset's sizes, trained by the plain GAN step."""

    def __init__(self, nvidia_dir: str, cfg, num_factors: int, channels: int):
        sys.path.insert(0, nvidia_dir)
        # dnnlib imports `requests` for its downloads, which this benchmark never makes
        sys.modules.setdefault("requests", types.ModuleType("requests"))
        from training.networks import Discriminator, Generator

        res = cfg.resolution
        self.G = Generator(z_dim=cfg.z_dim, c_dim=num_factors, w_dim=cfg.w_dim, img_resolution=res,
                           img_channels=channels, mapping_kwargs=dict(num_layers=cfg.mapping_layers),
                           synthesis_kwargs=dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max,
                                                 num_fp16_res=0, conv_clamp=None))
        self.D = Discriminator(c_dim=0, img_resolution=res, img_channels=channels, channel_base=cfg.channel_base,
                               channel_max=cfg.channel_max, num_fp16_res=0, conv_clamp=None,
                               epilogue_kwargs=dict(mbstd_group_size=cfg.mbstd_group))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=0.002, betas=(0.0, 0.99), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=0.002, betas=(0.0, 0.99), eps=1e-8)
        self.batch, self.num_factors, self.step = cfg.batch, num_factors, 0
        self.real = torch.rand(cfg.batch, channels, res, res) * 2 - 1
        self.params = sum(p.numel() for net in (self.G, self.D) for p in net.parameters())

    def _inputs(self):
        z = torch.randn(self.batch, self.G.z_dim)
        return z, torch.rand(self.batch, self.num_factors)

    def train_one_step(self):
        z, c = self._inputs()
        for p in self.G.parameters():
            p.requires_grad_(False)
        for p in self.D.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            fake = self.G(z, c)
        r1 = self.step % 16 == 0
        real = self.real.detach().requires_grad_(r1)
        real_logits = self.D(real, None)
        loss = F.softplus(self.D(fake, None)).mean() + F.softplus(-real_logits).mean()
        if r1:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
            loss = loss + grad.square().sum(dim=(1, 2, 3)).mean() * (10.0 / 2 * 16)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        for p in self.G.parameters():
            p.requires_grad_(True)
        for p in self.D.parameters():
            p.requires_grad_(False)
        z, c = self._inputs()
        loss = F.softplus(-self.D(self.G(z, c), None)).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        self.step += 1


class OurStep:
    """A preset's step variant as bench/step_speed.py builds it ("full" or "plain")."""

    def __init__(self, preset: str, variant: str, bf16: bool | None, run_dir: str):
        options = argparse.Namespace(device="cpu", bf16=bf16, channels_last=None, resolution=None, batch=None,
                                     warmup=0)
        self.trainer, _ = step_speed.build(preset, variant, options, run_dir)
        self.cfg = self.trainer.cfg
        self.params = sum(p.numel() for net in self.trainer.nets.values() for p in net.parameters())

    def train_one_step(self):
        self.trainer.train_one_step()


def median(values):
    return sorted(values)[len(values) // 2]


def flops_of(step) -> float:
    with FlopCounterMode(display=False) as fc:
        step.train_one_step()
    return fc.get_total_flops()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvidia", required=True, help="an extracted copy of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--presets", default="dsprites-cpu32,dsprites-ctrl",
                    help="the SPEC architecture (shared-trunk E) and the separate-E recipe by default")
    ap.add_argument("--steps", type=int, default=16, help="steps per round (16: one lazy R1 step in each)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=("preset", "fp32", "bf16"), default="preset",
                    help="our steps' precision: the preset's, or forced")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for preset in args.presets.split(","):
        bf16 = None if args.precision == "preset" else args.precision == "bf16"
        with tempfile.TemporaryDirectory() as tmp:
            ours_full = OurStep(preset, "full", bf16, os.path.join(tmp, "full"))
            ours_plain = OurStep(preset, "plain", bf16, os.path.join(tmp, "plain"))
            full_cfg = ours_full.cfg
            info = ours_full.trainer.dataset.info()
            nvidia = NvidiaPlainStep(args.nvidia, full_cfg, len(info["factors"]["sizes"]), int(info["channels"]))
            kinds = {"NVIDIA plain": nvidia, "ours plain": ours_plain, "ours full": ours_full}
            flops = {}
            for name, step in kinds.items():
                for _ in range(2):
                    step.train_one_step()
                flops[name] = flops_of(step)
            peak = DenseConvPeak(full_cfg.channels_last, full_cfg.bf16)
            nvidia_peak = DenseConvPeak(False, False)
            times = {name: [] for name in kinds}
            peaks, nvidia_peaks = [], []
            for _ in range(args.rounds):
                for name, step in kinds.items():
                    t0 = time.perf_counter()
                    for _ in range(args.steps):
                        step.train_one_step()
                    times[name].append((time.perf_counter() - t0) / args.steps)
                f, dt = peak.time(1.0)
                peaks.append(f / dt / 1e9)
                f, dt = nvidia_peak.time(1.0)
                nvidia_peaks.append(f / dt / 1e9)
        print(f"\n{preset}: {full_cfg.resolution}x{full_cfg.resolution}, batch {full_cfg.batch}, "
              f"encoder {full_cfg.encoder}, channels_last {full_cfg.channels_last}, bf16 {full_cfg.bf16} "
              f"(NVIDIA: fp32 NCHW, the only CPU precision its networks take); "
              f"dense-conv peak {median(peaks):.1f} GFLOP/s in the preset's format, "
              f"{median(nvidia_peaks):.1f} in fp32 NCHW")
        base = None
        for name, step in kinds.items():
            dt = median(times[name])
            ips = full_cfg.batch / dt
            base = base or ips
            ratios = "/".join(f"{nv / t:.2f}" for nv, t in zip(times["NVIDIA plain"], times[name]))
            util = flops[name] / dt / 1e9 / median(nvidia_peaks if step is nvidia else peaks)
            print(f"  {name:13s} {step.params:9,d} params  {flops[name] / 1e9:6.1f} GFLOP/step  {ips:7.1f} img/s  "
                  f"{ips / base:.2f}x NVIDIA plain (rounds {ratios})  {100 * util:.0f}% of peak", flush=True)


if __name__ == "__main__":
    sys.exit(main())
