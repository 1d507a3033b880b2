"""Discriminator D with the code head E on its shared trunk (docs/method.md, "Architecture").

ResNet blocks from the input resolution down to 4x4, then the epilogue: minibatch standard
deviation, 3x3 conv, fully connected layer, and two linear heads on the same features: a
1-unit real/fake logit and a K-unit code head with no output activation (E).

With `code_classes` (the number of values of each factor; beyond the paper) the code head is a
classifier instead: one softmax over the values of each factor, sum(code_classes) logits, and
`read_codes` decodes them to the code of the arg-max value (value j of m -> j / (m - 1)).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from semistylegan.nets.encoder import ConvEncoder
from semistylegan.nets.generator import channels_for
from semistylegan.nets.layers import EqualConv2d, EqualLinear, MinibatchStd

__all__ = ["Discriminator", "SeparateEncoderDiscriminator", "split_code_logits", "decode_code_logits", "concat_batches",
           "select_batches", "split_per_batch", "split_rows"]


def code_layout(code_classes, num_factors: int):
    """A code head's layout: (classes or None, output width of each factor): a classifier has
    one output per value of a factor, a regressor one output per factor."""
    classes = tuple(int(m) for m in code_classes) if code_classes is not None else None
    widths = classes if classes is not None else (1,) * num_factors
    return classes, widths


def split_code_logits(out: torch.Tensor, sizes: tuple[int, ...]) -> list[torch.Tensor]:
    """A classifier head's outputs, one (N, m) chunk per factor."""
    return list(out.split([int(m) for m in sizes], dim=1))


def decode_code_logits(out: torch.Tensor, sizes: tuple[int, ...]) -> torch.Tensor:
    """(N, K) codes of the arg-max values (value j of m -> j / (m - 1))."""
    cols = [chunk.argmax(dim=1).to(out.dtype) / max(m - 1, 1) for chunk, m in zip(split_code_logits(out, sizes), sizes)]
    return torch.stack(cols, dim=1)


# On a CPU, a trunk pass over more rows than this is slower per image (its activations outgrow the
# caches: 3.6 ms an image at 32-64 rows, 4.3 at 128, `dsprites-cpu32`'s D, one thread), so the
# trunk runs over the concatenation in slices of this many rows there; a GPU takes it whole.
CPU_PASS_ROWS = 64


def concat_batches(images: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(images) if len(images) > 1 else images[0]


def split_rows(x: torch.Tensor, images: list[torch.Tensor]) -> list[torch.Tensor]:
    """`x` (rows of the concatenated `images`) split back into one chunk per batch."""
    return [x] if len(images) == 1 else list(x.split([int(img.shape[0]) for img in images]))


def select_batches(chunks, wanted: list[bool]) -> list[torch.Tensor]:
    return [c for c, w in zip(chunks, wanted) if w]


def split_per_batch(images, want_logits, logits, want_codes, codes):
    """Splits the outputs of the batches that asked for a head back into one entry per batch."""
    if len(images) == 1:  # nothing to split (and no batch size read: export keeps it dynamic)
        return [(logits if want_logits[0] else None, codes if want_codes[0] else None)]
    sizes = [int(img.shape[0]) for img in images]
    logit_parts = iter(logits.split(select_batches(sizes, want_logits)) if logits is not None else ())
    code_parts = iter(codes.split(select_batches(sizes, want_codes)) if codes is not None else ())
    return [(next(logit_parts) if wl else None, next(code_parts) if wc else None)
            for wl, wc in zip(want_logits, want_codes)]


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
    noise = 0.0  # E reads its inputs as they are (SeparateEncoderDiscriminator may add noise)

    def __init__(self, c_dim: int, resolution: int, img_channels: int, channel_base: int = 2048,
                 channel_max: int = 64, mbstd_group: int = 4, code_classes: tuple[int, ...] | None = None):
        super().__init__()
        self.c_dim, self.resolution, self.img_channels = c_dim, resolution, img_channels
        self.fromrgb = EqualConv2d(img_channels, channels_for(resolution, channel_base, channel_max), 1,
                                   activation="lrelu")
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
        if code_classes is not None and len(code_classes) != c_dim:
            raise ValueError(f"code_classes needs one size per factor ({c_dim}), got {len(code_classes)}")
        self.code_classes, widths = code_layout(code_classes, c_dim)
        self.code_head = EqualLinear(c4, sum(widths)) if c_dim > 0 else None

    def reseed_noise(self, seed: int, device: torch.device):
        """Seeds the noise E adds to its inputs in training: none here (`noise` is 0, and the
        method only reseeds when it is not); SeparateEncoderDiscriminator has some."""

    def blocks_forward(self, img: torch.Tensor,
                       keep: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
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

    def epilogue(self, chunks: list[torch.Tensor], batch_statistics: bool) -> torch.Tensor:
        """mbstd, conv, fc over the concatenated `chunks` (4x4 trunk outputs). The minibatch
        standard deviation is taken within each chunk, so images of different sources (real,
        generated, mixed) never share a group. The code head uses `batch_statistics=False`: the
        minibatch-stddev channel is zero, so that E(x) of one image never depends on the rest of
        its batch."""
        if self.mbstd is not None:
            if batch_statistics:
                chunks = [self.mbstd(x) for x in chunks]
            else:
                chunks = [torch.cat([x, x.new_zeros(x.shape[0], 1, *x.shape[2:])], dim=1) for x in chunks]
        x = self.conv(torch.cat(chunks) if len(chunks) > 1 else chunks[0])
        return self.fc(x.flatten(1))

    def heads(self, images: list[torch.Tensor], want_logits: list[bool],
              want_codes: list[bool]) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """One trunk pass over all `images` (a list of batches from different sources), then the
        heads each batch asks for: [(real/fake logits (N_i,) or None, codes (N_i, K) or None)].
        Nothing but the minibatch-stddev groups (kept within each batch) mixes images, so every
        result equals that of a pass over its batch alone; one pass over the concatenation makes
        larger, faster convolutions than several small ones."""
        x = concat_batches(images)
        if len(images) > 1 and x.device.type == "cpu" and x.shape[0] > CPU_PASS_ROWS:
            x = torch.cat([self.blocks_forward(part)[0] for part in x.split(CPU_PASS_ROWS)])
        else:
            x = self.blocks_forward(x)[0]
        chunks = split_rows(x, images)
        want_codes = [w and self.code_head is not None for w in want_codes]
        logits = codes = None
        if any(want_logits):
            logits = self.out(self.epilogue(select_batches(chunks, want_logits), True)).squeeze(1)
        if any(want_codes):
            codes = self.code_head(self.epilogue(select_batches(chunks, want_codes), False))
        return split_per_batch(images, want_logits, logits, want_codes, codes)

    def forward(self, img: torch.Tensor, need_logits: bool = True, need_codes: bool = True):
        """The heads asked for on one batch: (real/fake logits (N,) or None, predicted codes
        (N, K) or None)."""
        return self.heads([img], [need_logits], [need_codes])[0]

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """E(x): the code head's raw outputs (codes, or logits of a classifier head), independent
        of the other images in the batch. Training losses take these."""
        return self.forward(img, need_logits=False)[1]

    def read_codes(self, img: torch.Tensor) -> torch.Tensor:
        """E's reading of images as codes in [0, 1] (N, K): what evaluation and editing use."""
        out = self.encode(img)
        if self.code_classes is None:
            return out
        return decode_code_logits(out, self.code_classes)


class SeparateEncoderDiscriminator(nn.Module):
    """D for the real/fake logits, E a plain CNN of its own for the codes (`encoder = "separate"`,
    beyond the paper's shared trunk); the interface of Discriminator.

    E's heads are one per factor: its values (classifier) or 1 (regression). `noise` (training
    mode only) adds Gaussian noise of this standard deviation to every image E reads, for its own
    losses and for G's: randomised smoothing, so that G cannot satisfy L_unsup with the small,
    E-specific changes a plain CNN is so easily fooled by (docs/negative-results.md).
    """

    def __init__(self, D: Discriminator, resolution: int, img_channels: int, num_factors: int,
                 code_classes: tuple[int, ...] | None = None, noise: float = 0.0):
        super().__init__()
        D.code_head = None  # the codes come from E
        self.D = D
        self.code_classes, widths = code_layout(code_classes, num_factors)
        self.E = ConvEncoder(resolution, img_channels, widths)
        self.noise = float(noise)
        # The method reseeds this from its saved random stream every step (exact resume).
        self.noise_generator: torch.Generator | None = None

    def heads(self, images: list[torch.Tensor], want_logits: list[bool],
              want_codes: list[bool]) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Discriminator.heads: one D pass over the batches that want logits, one E pass over
        those that want codes."""
        logits = codes = None
        if any(want_logits):
            parts = select_batches(images, want_logits)
            logits = torch.cat([out for out, _ in self.D.heads(parts, [True] * len(parts), [False] * len(parts))])
        if any(want_codes):
            codes = self.encode(concat_batches(select_batches(images, want_codes)))
        return split_per_batch(images, want_logits, logits, want_codes, codes)

    def forward(self, img: torch.Tensor, need_logits: bool = True, need_codes: bool = True):
        return self.heads([img], [need_logits], [need_codes])[0]

    def reseed_noise(self, seed: int, device: torch.device):
        """Seed the generator of E's input noise (the method does this every step)."""
        if self.noise_generator is None:
            self.noise_generator = torch.Generator(device=device)
        self.noise_generator.manual_seed(seed)

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise > 0:
            noise = torch.randn(img.shape, generator=self.noise_generator, device=img.device, dtype=torch.float32)
            img = img + self.noise * noise.to(img.dtype)
        return torch.cat(self.E(img), dim=1)

    read_codes = Discriminator.read_codes
