"""Networks of Semi-StyleGAN-fine (docs/method.md, "Semi-StyleGAN-fine").

FineGenerator G(c_fine, z, x): the coarse blocks (4x4, 8x8, ...) of the generator are dropped.
The real image x is box-downsampled (average pooling) to `input_resolution` (16x16 by default),
a 1x1 conv turns it into features, one style-modulated 3x3 conv works at that resolution (the
precursor's "1x1 conv, AdaIN, 3x3 conv, AdaIN" input layer), and synthesis proceeds
2 * input_resolution -> ... -> full resolution. Every style layer is driven by
w = mapping(c_fine, z): the fine factors and the noise, nothing else.
With `coarse_skip` (beyond the paper) the downsample itself is also added to the RGB skip path at
input_resolution, so G starts from the bilinear upsample of its input and its toRGB layers draw
what differs from it (edited colours, detail). With `input_const` (beyond the paper) a learned
constant feature map is added to the input features at input_resolution, as StyleGAN's constant
input is: positional information, without which a shallow G can tell wall from floor only near
the image's edges.

FineDiscriminator: the usual discriminator trunk and real/fake head; the encoder head E_fine
is one linear layer on the flattened trunk features *entering* the block at `head_resolution`
(32x32 by default, the precursor used 16x16), so only the first blocks of D run for E(x).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from semistylegan.nets.discriminator import (Discriminator, code_layout, concat_batches, select_batches,
                                              split_per_batch, split_rows)
from semistylegan.nets.generator import MappingNetwork, SynthesisNetwork, channels_for
from semistylegan.nets.layers import EqualConv2d, EqualLinear

__all__ = ["FineGenerator", "FineDiscriminator", "box_downsample", "rotate_hue"]


def box_downsample(img: torch.Tensor, resolution: int) -> torch.Tensor:
    """Average pooling of a square image (N, C, R, R) to (N, C, resolution, resolution).

    R must be a multiple of `resolution` (the box filter of the precursor's `down` input)."""
    size = img.shape[-1]
    if img.shape[-2] != size or size % resolution:
        raise ValueError(f"cannot box-downsample a {img.shape[-2]}x{size} image to {resolution}x{resolution}")
    factor = size // resolution
    return F.avg_pool2d(img, factor) if factor > 1 else img


def rotate_hue(img: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotates each RGB image (N, 3, H, W) about the gray axis R = G = B by its angle (N,), in
    radians: the hues turn, grays stay and the channel mean is kept. The map is linear and
    invertible, so distinct colours stay distinct (the regions of an image remain tellable
    apart) and it commutes with box_downsample. A third of a turn maps (R, G, B) to (B, R, G).
    Images in [-1, 1] stay centred on the same gray axis (the map fixes (1, 1, 1))."""
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"rotate_hue needs RGB images (N, 3, H, W), got {tuple(img.shape)}")
    angles = angles.to(device=img.device, dtype=torch.float32).reshape(-1, 1, 1)
    cos, sin = torch.cos(angles), torch.sin(angles)
    eye = torch.eye(3, device=img.device)[None]
    k = torch.full((3,), 3 ** -0.5, device=img.device)
    cross = torch.tensor([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]], device=img.device) * 3 ** -0.5
    rot = cos * eye + sin * cross[None] + (1.0 - cos) * torch.outer(k, k)[None]  # Rodrigues
    return torch.einsum("nij,njhw->nihw", rot, img.float()).to(img.dtype)


class FineGenerator(nn.Module):
    """G(c_fine, z, image) -> image in [-1, 1] (roughly), same size as the training images."""

    def __init__(self, c_dim: int, z_dim: int, w_dim: int, resolution: int, img_channels: int,
                 channel_base: int = 2048, channel_max: int = 64, mapping_layers: int = 3,
                 input_resolution: int = 16, coarse_skip: bool = False, input_const: bool = False,
                 mapping_lr_mul: float = 0.01):
        super().__init__()
        if not (4 <= input_resolution < resolution) or input_resolution & (input_resolution - 1):
            raise ValueError(f"input_resolution must be a power of two in [4, {resolution}), got {input_resolution}")
        self.c_dim, self.z_dim, self.w_dim = c_dim, z_dim, w_dim
        self.resolution, self.img_channels = resolution, img_channels
        self.input_resolution = input_resolution
        self.coarse_skip = bool(coarse_skip)
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, num_layers=mapping_layers, lr_mul=mapping_lr_mul)
        ch = channels_for(input_resolution, channel_base, channel_max)
        self.input_conv = EqualConv2d(img_channels, ch, 1, activation="lrelu")
        # Zero at the start (G begins as without it); a randn start, as StyleGAN's constant has,
        # drowned the input's features in a blotchy pattern at 50 kimg on 3DShapes 64x64.
        self.input_const = nn.Parameter(torch.zeros(ch, input_resolution, input_resolution)) if input_const else None
        # The first synthesis block sits at input_resolution: a modulated 3x3 conv (+ toRGB)
        # on the features; the blocks after it upsample to 2x, 4x, ... up to `resolution`.
        self.synthesis = SynthesisNetwork(w_dim, resolution, img_channels, channel_base, channel_max,
                                          start_resolution=input_resolution, const_input=False)

    def coarse(self, image: torch.Tensor) -> torch.Tensor:
        """The generator's view of a real image: its box downsample to input_resolution."""
        return box_downsample(image, self.input_resolution)

    def forward(self, c: torch.Tensor, z: torch.Tensor, image: torch.Tensor, truncation_psi: float = 1.0,
                update_w_avg: bool = False, w_avg_rows: int | None = None) -> torch.Tensor:
        """`image`: real images (N, C, R, R) in [-1, 1] with R a multiple of input_resolution
        (the full-resolution image or its downsample); only its downsample is used."""
        if image.shape[0] != c.shape[0]:
            image = image.expand(c.shape[0], -1, -1, -1) if image.shape[0] == 1 else image
        w = self.mapping(c, z, truncation_psi=truncation_psi, update_w_avg=update_w_avg, w_avg_rows=w_avg_rows)
        coarse = self.coarse(image)
        x = self.input_conv(coarse)
        if self.input_const is not None:
            x = x + self.input_const[None].to(x.dtype)
        return self.synthesis(w, x=x, skip=coarse if self.coarse_skip else None)


class FineDiscriminator(Discriminator):
    """D with a real/fake head at the end and the fine-factor code head at `head_resolution`."""

    def __init__(self, c_fine_dim: int, resolution: int, img_channels: int, channel_base: int = 2048,
                 channel_max: int = 64, mbstd_group: int = 4, head_resolution: int = 32,
                 code_classes: tuple[int, ...] | None = None):
        super().__init__(0, resolution, img_channels, channel_base, channel_max, mbstd_group)
        if head_resolution not in self.block_resolutions():
            raise ValueError(f"head_resolution must be one of {self.block_resolutions()}, got {head_resolution}")
        self.c_dim = c_fine_dim
        self.head_resolution = head_resolution
        ch = channels_for(head_resolution, channel_base, channel_max)
        # A classifier head (semi-fine with `code_head = "classify"`): the values of each fine
        # factor; Discriminator.read_codes decodes it.
        self.code_classes, widths = code_layout(code_classes, c_fine_dim)
        self.fine_head = EqualLinear(ch * head_resolution * head_resolution, sum(widths))

    def block_resolutions(self) -> tuple[int, ...]:
        """Resolutions whose block input can feed the head (the input resolution down to 8)."""
        return tuple(int(k) for k in self.blocks.keys())

    def trunk_to_head(self, img: torch.Tensor) -> torch.Tensor:
        """Runs fromrgb and the blocks above head_resolution; returns the head block's input."""
        x = self.fromrgb(img)
        for res_key, block in self.blocks.items():
            if int(res_key) == self.head_resolution:
                return x
            x = block(x)
        raise AssertionError("head resolution not reached")  # excluded by __init__

    def heads(self, images: list[torch.Tensor], want_logits: list[bool],
              want_codes: list[bool]) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Discriminator.heads with the fine code head at head_resolution: one pass down to the
        head over every batch, then the rest of the trunk over the batches that want logits."""
        x = self.trunk_to_head(concat_batches(images))
        chunks = split_rows(x, images)
        codes = logits = None
        if any(want_codes):
            codes = self.fine_head(concat_batches(select_batches(chunks, want_codes)).flatten(1))
        if any(want_logits):
            kept = select_batches(chunks, want_logits)
            x = concat_batches(kept)
            for res_key, block in self.blocks.items():
                if int(res_key) <= self.head_resolution:
                    x = block(x)
            logits = self.out(self.epilogue(split_rows(x, kept), True)).squeeze(1)
        return split_per_batch(images, want_logits, logits, want_codes, codes)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """E_fine(x): depends on this image only (no batch statistics before the head)."""
        return self.fine_head(self.trunk_to_head(img).flatten(1))
