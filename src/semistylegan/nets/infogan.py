"""Networks of the InfoGAN-CR baseline (Lin et al., ICML 2020).

The InfoGAN-CR paper uses on dSprites the FactorVAE/dlib-style convolutional architecture
(about 0.76M parameters in the paper's table): at 64x64,

    G: FC 128 (ReLU) -> FC 4*4*64 (ReLU) -> 4x4 transposed convs stride 2 with 64, 32, 32, C channels -> tanh
    D: 4x4 convs stride 2 with 32, 32, 64, 64 channels (LeakyReLU 0.2) -> FC 128 (LeakyReLU)
       -> real/fake logit, and the InfoGAN head Q (the code estimate) on the same features
    H: the contrastive-regulariser discriminator, the same trunk on a channel-stacked image pair
       -> one logit per code dimension ("which code was shared")

Other resolutions keep the 4x4 bottleneck (the channel list of `semistylegan.nets.vae.conv_channels`).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from semistylegan.nets.vae import conv_channels

__all__ = ["InfoGANGenerator", "InfoGANDiscriminator", "PairDiscriminator"]


def _conv_trunk(resolution: int, in_channels: int, hidden: int) -> tuple[nn.Sequential, int]:
    layers, ch = [], in_channels
    for out in conv_channels(resolution):
        layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        ch = out
    layers += [nn.Flatten(), nn.Linear(ch * 16, hidden), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers), hidden


class InfoGANGenerator(nn.Module):
    def __init__(self, code_dim: int, noise_dim: int, resolution: int, channels: int, hidden: int = 128):
        super().__init__()
        self.code_dim, self.noise_dim = code_dim, noise_dim
        chans = conv_channels(resolution)[::-1]
        self.first = chans[0]
        self.fc = nn.Sequential(nn.Linear(code_dim + noise_dim, hidden), nn.ReLU(),
                                nn.Linear(hidden, chans[0] * 16), nn.ReLU())
        layers = []
        outs = chans[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(chans, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            layers.append(nn.ReLU() if i < len(outs) - 1 else nn.Tanh())
        self.deconv = nn.Sequential(*layers)

    def forward(self, codes: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([codes, noise], dim=1))
        return self.deconv(h.view(h.shape[0], self.first, 4, 4))


class InfoGANDiscriminator(nn.Module):
    """Shared trunk, real/fake logit and the Q head (continuous codes, fixed-variance Gaussian)."""

    def __init__(self, code_dim: int, resolution: int, channels: int, hidden: int = 128):
        super().__init__()
        self.trunk, h = _conv_trunk(resolution, channels, hidden)
        self.out = nn.Linear(h, 1)
        self.q = nn.Linear(h, code_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.out(h).squeeze(1), self.q(h)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.q(self.trunk(x))


class PairDiscriminator(nn.Module):
    """H(x, x') -> logits over the code dimensions: which one did the pair share?"""

    def __init__(self, code_dim: int, resolution: int, channels: int, hidden: int = 128):
        super().__init__()
        self.trunk, h = _conv_trunk(resolution, 2 * channels, hidden)
        self.head = nn.Linear(h, code_dim)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(torch.cat([x1, x2], dim=1)))
