"""Building blocks shared by the generator and the discriminator.

Pure PyTorch (no custom ops). Equalised learning rate everywhere (weights stored as N(0, 1)
and scaled by 1/sqrt(fan_in) at run time), modulated convolution with weight demodulation in
its non-fused form (scale activations, shared-weight conv, scale outputs: the same maths as
the grouped form, cheaper on CPU and friendly to double backward), and resampling done inside
the convolutions at the low resolution (transposed stride-2 conv + blur up, blur + stride-2
conv down), which costs a quarter of "upsample then convolve".
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "EqualLinear",
    "EqualConv2d",
    "ModulatedConv2d",
    "ToRGB",
    "Blur",
    "MinibatchStd",
    "normalize_2nd_moment",
    "lrelu_gain",
    "store_at_runtime_scale",
]

lrelu_gain = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _act(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2) * lrelu_gain
    if activation == "linear":
        return x
    raise ValueError(f"unknown activation {activation}")


def _act_gain(activation: str) -> float:
    """The activation's output gain. Leaky ReLU is positively homogeneous, lrelu(a) * g = lrelu(g a)
    for g > 0, so the convolutions fold the gain into their (small) weights and biases and apply
    `_act_fresh` instead of `_act`: one pass over the feature map instead of two."""
    if activation not in ("lrelu", "linear"):
        raise ValueError(f"unknown activation {activation}")
    return lrelu_gain if activation == "lrelu" else 1.0


def _act_fresh(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation without its gain, in place: `x` must be a new tensor of the caller's (the
    output of a convolution or of an in-place add, which autograd does not keep)."""
    return F.leaky_relu(x, 0.2, inplace=True) if activation == "lrelu" else x


class EqualLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, bias_init: float = 0.0,
                 lr_mul: float = 1.0, activation: str = "linear"):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = lr_mul / math.sqrt(in_features)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.bias * self.lr_mul if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, b)
        return _act(x, self.activation)


class Blur(nn.Module):
    """Depthwise [1, 3, 3, 1] low-pass filter (separable, normalised to unit gain)."""

    def __init__(self, pad: tuple[int, int], scale: float = 1.0):
        super().__init__()
        k = torch.tensor([1.0, 3.0, 3.0, 1.0])
        k = torch.outer(k, k)
        self.register_buffer("kernel", (k / k.sum() * scale)[None, None], persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        """`stride=2`: only every other output row and column (the blur, then a subsample)."""
        c = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        if self.pad[0] == self.pad[1]:
            # The convolution's own zero padding: same values as F.pad + conv without the padded
            # copy (a 1.07x faster fp32 step on CPU, measured at commit 3782c08).
            return F.conv2d(x, kernel, padding=self.pad[0], stride=stride, groups=c)
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        return F.conv2d(x, kernel, stride=stride, groups=c)


class EqualConv2d(nn.Module):
    """Equalised-lr conv; `down=True` blurs then convolves with stride 2 (low-res cost)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: bool = False, gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.activation = activation
        self.act_gain = _act_gain(activation)
        self.down = down
        self.kernel_size = kernel_size
        if down:
            p = (4 - 2) + (kernel_size - 1)
            self.blur = Blur(((p + 1) // 2, p // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * (self.weight_gain * self.act_gain)
        b = self.bias * self.act_gain if self.bias is not None else None
        if self.down and self.kernel_size == 1 and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"):
            # A 1x1 conv of stride 2 reads every other blurred pixel: in fp32 the blur computes only
            # those (the same values; the strided 1x1 conv is slow on CPU). A strided depthwise
            # conv is slow in bf16 instead, so that case keeps the general path (BENCHMARKS.md section 2).
            x = F.conv2d(self.blur(x, stride=2), w, b)
        elif self.down:
            x = F.conv2d(self.blur(x), w, b, stride=2)
        else:
            x = F.conv2d(x, w, b, padding=self.kernel_size // 2)
        return _act_fresh(x, self.activation)


class ModulatedConv2d(nn.Module):
    """Style-modulated conv (StyleGAN2) with optional demodulation and 2x upsampling.

    styles s = affine(w) (bias initialised to 1); out = conv(x * s, W) * d, with
    d = rsqrt(sum_{in, k} (W s)^2 + eps) when `demodulate`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, w_dim: int,
                 demodulate: bool = True, up: bool = False, activation: str = "lrelu"):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate = demodulate
        self.up = up
        self.activation = activation
        self.act_gain = _act_gain(activation)
        self.kernel_size = kernel_size
        if up:
            # Transposed 3x3 stride-2 conv gives 2H+1 pixels; the blur (x4 gain for the
            # zero-stuffing) brings it back to 2H.
            p = (4 - 2) - (kernel_size - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), scale=4.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)  # (N, in)
        weight = self.weight * self.weight_gain
        x = x * styles[:, :, None, None].to(x.dtype)
        if self.up:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
            x = self.blur(x)
        else:
            x = F.conv2d(x, weight, padding=self.kernel_size // 2)
        bias = (self.bias * self.act_gain)[None, :, None, None].to(x.dtype)
        if self.demodulate:
            # sum over (in, k) of (W_oik s_i)^2 = (sum_k W_oik^2) @ s_i^2
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()  # (N, out)
            # (not addcmul: its broadcast is 2.5-8x slower on NCHW tensors here)
            x = (x * (dcoefs * self.act_gain)[:, :, None, None].to(x.dtype)).add_(bias)
        else:
            x = (x * self.act_gain).add_(bias) if self.act_gain != 1.0 else x + bias
        return _act_fresh(x, self.activation)


class ToRGB(nn.Module):
    """1x1 modulated conv to image channels, no demodulation (StyleGAN2 skip generator)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 1, w_dim, demodulate=False, activation="linear")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w)


class MinibatchStd(nn.Module):
    """Appends the mean standard deviation over groups of the minibatch as extra channels."""

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:  # a group size that divides the (per-rank) batch
            g -= 1
        f = self.num_channels
        # Groups are runs of consecutive samples, so splitting a batch across ranks in
        # contiguous slices (dist.py) keeps every group intact.
        y = x.reshape(-1, g, f, c // f, h, w)
        y = y - y.mean(dim=1, keepdim=True)
        y = (y.square().mean(dim=1) + 1e-8).sqrt()  # (n/g, f, c/f, h, w)
        y = y.mean(dim=(2, 3, 4))  # (n/g, f)
        y = y[:, None, :, None, None].expand(-1, g, -1, h, w).reshape(n, f, h, w)
        return torch.cat([x, y], dim=1)


def store_at_runtime_scale(module: nn.Module) -> nn.Module:
    """Turn off the equalised learning rate of every layer in `module`, keeping its function.

    Each weight (and an lr-multiplied bias) is multiplied once by the factor it was scaled by
    at run time, and the factor becomes 1. The network computes exactly what it did, but an
    Adam step now moves a weight by lr relative to its true scale 1/sqrt(fan_in) instead of
    relative to N(0, 1): sqrt(fan_in) times further (12-24x for 3x3 convolutions of 16-64
    channels), and the mapping network's lr multiplier no longer applies. BENCHMARKS.md, section
    3: the dsprites-quick generator learns to draw shape only in this form within a CPU budget.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (EqualConv2d, EqualLinear, ModulatedConv2d)):
                m.weight.mul_(m.weight_gain)
                m.weight_gain = 1.0
            if isinstance(m, EqualLinear):
                if m.bias is not None:
                    m.bias.mul_(m.lr_mul)
                m.lr_mul = 1.0
    return module
