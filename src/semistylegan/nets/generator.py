"""Generator G(c, z) with conditional styles (docs/method.md, "Architecture").

The factor code c is embedded by a linear layer, normalised, concatenated with the
normalised noise z, and both go through the mapping network to w, which drives every style
layer of a StyleGAN2 skip generator. No per-pixel noise inputs and no style mixing, as in the
paper's precursor code. `w_avg` tracks the mean w for the truncation trick.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from semistylegan.nets.layers import EqualLinear, ModulatedConv2d, ToRGB, normalize_2nd_moment

__all__ = ["MappingNetwork", "SynthesisNetwork", "Generator", "channels_for"]


def channels_for(res: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN's width schedule: channel_base / res, capped at channel_max."""
    return int(min(channel_base // res, channel_max))


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_layers: int = 3,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.embed = EqualLinear(c_dim, w_dim) if c_dim > 0 else None
        in_dim = (z_dim if z_dim > 0 else 0) + (w_dim if c_dim > 0 else 0)
        layers = []
        for i in range(num_layers):
            layers.append(EqualLinear(in_dim if i == 0 else w_dim, w_dim, lr_mul=lr_mul, activation="lrelu"))
        self.layers = nn.Sequential(*layers)
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, c: torch.Tensor | None, z: torch.Tensor | None, truncation_psi: float = 1.0,
                update_w_avg: bool = False, w_avg_rows: int | None = None) -> torch.Tensor:
        """`update_w_avg`: move the tracked average of w towards this batch's mean w (training),
        taken over the first `w_avg_rows` rows only when given (the prior samples of a batch that
        also holds other generator inputs)."""
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(z))
        if self.c_dim > 0:
            parts.append(normalize_2nd_moment(self.embed(c)))
        w = self.layers(torch.cat(parts, dim=1))
        if update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(w[:w_avg_rows].detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            w = self.w_avg.lerp(w, truncation_psi)
        return w


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, img_channels: int, first: bool):
        super().__init__()
        self.first = first
        if not first:
            self.conv0 = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=True)
        self.conv1 = ModulatedConv2d(out_channels if not first else in_channels, out_channels, 3, w_dim)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, w: torch.Tensor):
        if not self.first:
            x = self.conv0(x, w)
        x = self.conv1(x, w)
        y = self.torgb(x, w)
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            y = y + img
        return x, y


class SynthesisNetwork(nn.Module):
    """Constant 4x4 input (or a given feature map), then one block per resolution up to `resolution`."""

    def __init__(self, w_dim: int, resolution: int, img_channels: int, channel_base: int, channel_max: int,
                 start_resolution: int = 4, const_input: bool = True):
        super().__init__()
        if resolution & (resolution - 1) or resolution < 4:
            raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
        self.resolution = resolution
        self.start_resolution = start_resolution
        c0 = channels_for(start_resolution, channel_base, channel_max)
        self.const = nn.Parameter(torch.randn(c0, start_resolution, start_resolution)) if const_input else None
        self.blocks = nn.ModuleList()
        res, in_ch = start_resolution, c0
        while res <= resolution:
            out_ch = channels_for(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, img_channels, first=(res == start_resolution)))
            in_ch = out_ch
            res *= 2

    def forward(self, w: torch.Tensor, x: torch.Tensor | None = None, skip: torch.Tensor | None = None) -> torch.Tensor:
        """`skip`: an image at start_resolution added to the first block's RGB output, so it runs
        through the skip path's upsampling like every toRGB output (None: nothing added)."""
        if x is None:
            x = self.const[None].expand(w.shape[0], -1, -1, -1)
        img = None
        for i, block in enumerate(self.blocks):
            x, img = block(x, img, w)
            if i == 0 and skip is not None:
                img = img + skip
        return img


class Generator(nn.Module):
    """G(c, z) -> image in [-1, 1] (roughly; no output squashing, as in StyleGAN2)."""

    def __init__(self, c_dim: int, z_dim: int, w_dim: int, resolution: int, img_channels: int,
                 channel_base: int = 2048, channel_max: int = 64, mapping_layers: int = 3,
                 mapping_lr_mul: float = 0.01):
        super().__init__()
        self.c_dim, self.z_dim, self.w_dim = c_dim, z_dim, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_layers=mapping_layers, lr_mul=mapping_lr_mul)
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max)

    def forward(self, c: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0,
                update_w_avg: bool = False, w_avg_rows: int | None = None) -> torch.Tensor:
        w = self.mapping(c, z, truncation_psi=truncation_psi, update_w_avg=update_w_avg, w_avg_rows=w_avg_rows)
        return self.synthesis(w)
