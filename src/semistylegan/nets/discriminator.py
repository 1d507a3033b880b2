"""Discriminator D with the code head E on its shared trunk (SPEC.md "Architecture").

ResNet blocks from the input resolution down to 4x4, then the epilogue: minibatch standard
deviation, 3x3 conv, fully connected layer, and two linear heads on the same features: a
1-unit real/fake logit and a K-unit code head with no output activation (E).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from semistylegan.nets.generator import channels_for
from semistylegan.nets.layers import EqualConv2d, EqualLinear, MinibatchStd

__all__ = ["Discriminator"]


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = EqualConv2d(in_channels, out_channels, 3, activation="lrelu", down=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(x)
        x = self.conv1(self.conv0(x))
        return (x + y) * math.sqrt(0.5)


class Discriminator(nn.Module):
    def __init__(self, c_dim: int, resolution: int, img_channels: int, channel_base: int = 2048,
                 channel_max: int = 64, mbstd_group: int = 4):
        super().__init__()
        self.c_dim, self.resolution, self.img_channels = c_dim, resolution, img_channels
        self.fromrgb = EqualConv2d(img_channels, channels_for(resolution, channel_base, channel_max), 1, activation="lrelu")
        self.blocks = nn.ModuleDict()
        res = resolution
        while res > 4:
            self.blocks[str(res)] = DiscriminatorBlock(channels_for(res, channel_base, channel_max),
                                                       channels_for(res // 2, channel_base, channel_max))
            res //= 2
        c4 = channels_for(4, channel_base, channel_max)
        self.mbstd = MinibatchStd(group_size=mbstd_group, num_channels=1) if mbstd_group > 0 else None
        self.conv = EqualConv2d(c4 + (1 if mbstd_group > 0 else 0), c4, 3, activation="lrelu")
        self.fc = EqualLinear(c4 * 16, c4, activation="lrelu")
        self.out = EqualLinear(c4, 1)
        self.code_head = EqualLinear(c4, c_dim) if c_dim > 0 else None

    def blocks_forward(self, img: torch.Tensor, keep: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """The convolutional trunk down to 4x4; also returns block inputs at the resolutions in `keep`."""
        x = self.fromrgb(img)
        kept = {}
        for res_key, block in self.blocks.items():
            if int(res_key) in keep:
                kept[int(res_key)] = x
            x = block(x)
        if 4 in keep:
            kept[4] = x
        return x, kept

    def epilogue(self, x: torch.Tensor, batch_statistics: bool) -> torch.Tensor:
        """mbstd, conv, fc. The code head uses `batch_statistics=False`: the minibatch-stddev
        channel is zero, so that E(x) of one image never depends on the rest of its batch."""
        if self.mbstd is not None:
            if batch_statistics:
                x = self.mbstd(x)
            else:
                x = torch.cat([x, x.new_zeros(x.shape[0], 1, *x.shape[2:])], dim=1)
        x = self.conv(x)
        return self.fc(x.flatten(1))

    def forward(self, img: torch.Tensor, need_logits: bool = True, need_codes: bool = True):
        """Returns (real/fake logits (N,) or None, predicted codes (N, K) or None)."""
        x, _ = self.blocks_forward(img)
        logits = self.out(self.epilogue(x, True)).squeeze(1) if need_logits else None
        codes = None
        if need_codes and self.code_head is not None:
            codes = self.code_head(self.epilogue(x, False))
        return logits, codes

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """E(x): the code head alone (independent of the other images in the batch)."""
        return self.forward(img, need_logits=False)[1]
