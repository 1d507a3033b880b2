"""A plain convolutional encoder: the oracle's CNN, and Semi-StyleGAN's `--encoder separate`.

Stride-2 4x4 convolutions (32, 64, 128, ... channels, at most 256, LeakyReLU 0.2) from the input
resolution down to 4x4, a fully connected hidden layer (`features`), and one linear head per
entry of `sizes` (a factor's values for a classifier, 1 for a regressed code). Ordinary PyTorch
layers: no equalised learning rate, which is what lets it learn to read a sprite's shape in a
few thousand steps where the StyleGAN2 discriminator trunk stalls (BENCHMARKS.md, section 1).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvEncoder"]


class ConvEncoder(nn.Module):
    def __init__(self, resolution: int, channels: int, sizes: tuple[int, ...], width: int = 32, feature_dim: int = 256):
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"the encoder needs a power-of-two resolution >= 8, got {resolution}")
        layers, ch, res = [], channels, resolution
        out = width
        while res > 4:
            layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch, out, res = out, min(out * 2, 256), res // 2
        self.trunk = nn.Sequential(*layers, nn.Flatten())
        self.hidden = nn.Sequential(nn.Linear(ch * 16, feature_dim), nn.LeakyReLU(0.2))
        self.heads = nn.ModuleList([nn.Linear(feature_dim, int(m)) for m in sizes])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.trunk(x))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.features(x)
        return [head(h) for head in self.heads]
