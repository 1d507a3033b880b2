"""Networks of the VAE baselines (beta-VAE, beta-TCVAE, FactorVAE) and FactorVAE's discriminator.

The convolutional encoder and deconvolutional decoder follow disentanglement_lib's
`conv_encoder` / `deconv_decoder` (the architecture of the dlib study, Locatello et al. 2019,
which in turn follows Higgins et al. 2017): at 64x64,

    encoder: 4x4 conv stride 2 with 32, 32, 64, 64 channels (ReLU) -> FC 256 (ReLU) -> FC mean, FC log-variance
    decoder: FC 256 -> FC 4*4*64 (ReLU) -> 4x4 transposed convs stride 2 with 64, 32, 32, C channels

(about 0.69M parameters at 64x64 with 10 latents, the count the paper's table lists). Other
resolutions keep the 4x4 bottleneck: one stride-2 layer per halving, the channel list
[..., 32, 32, 64, 64] truncated or extended with 32s at the image end.

FactorVAE's discriminator is Kim & Mnih (2018)'s MLP: 6 hidden layers of 1000 units,
LeakyReLU(0.2), 2 output logits (index 0 = "a sample of q(z)", index 1 = "a sample of the
product of its marginals").
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["conv_channels", "VAEEncoder", "VAEDecoder", "VAE", "FactorDiscriminator"]


def conv_channels(resolution: int) -> list[int]:
    """Channels of the stride-2 conv layers from the image down to 4x4 (dlib's list at 64x64)."""
    n = int(round(math.log2(resolution // 4)))
    if resolution < 8 or 4 * 2 ** n != resolution:
        raise ValueError(f"the VAE networks need a power-of-two resolution >= 8, got {resolution}")
    base = [32] * max(0, n - 2) + [64, 64]
    return base[-n:]


class VAEEncoder(nn.Module):
    """x in [-1, 1] -> (mean, log-variance) of the Gaussian q(z | x)."""

    def __init__(self, resolution: int, channels: int, latent_dim: int, hidden: int = 256):
        super().__init__()
        layers, ch = [], channels
        for out in conv_channels(resolution):
            layers += [nn.Conv2d(ch, out, 4, stride=2, padding=1), nn.ReLU()]
            ch = out
        self.trunk = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * 16, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.mean(h), self.logvar(h)


class VAEDecoder(nn.Module):
    """z -> per-pixel logits (Bernoulli) or means (Gaussian) of p(x | z), in the [0, 1] pixel scale."""

    def __init__(self, resolution: int, channels: int, latent_dim: int, hidden: int = 256):
        super().__init__()
        chans = conv_channels(resolution)[::-1]          # 64, 64, 32, ... from 4x4 upwards
        self.first = chans[0]
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, chans[0] * 16), nn.ReLU())
        layers = []
        outs = chans[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(chans, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU())
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.fc(z).view(z.shape[0], self.first, 4, 4))


class VAE(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = VAEEncoder(resolution, channels, latent_dim)
        self.decoder = VAEDecoder(resolution, channels, latent_dim)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation: the mean of q(z | x) (as disentanglement_lib evaluates VAEs)."""
        return self.encoder(x)[0]


class FactorDiscriminator(nn.Module):
    """Kim & Mnih (2018): MLP on latent samples, 2 logits (q(z) vs prod_j q(z_j))."""

    def __init__(self, latent_dim: int, hidden: int = 1000, layers: int = 6):
        super().__init__()
        mods, d = [], latent_dim
        for _ in range(layers):
            mods += [nn.Linear(d, hidden), nn.LeakyReLU(0.2)]
            d = hidden
        mods.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*mods)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)
