import pytest
import torch
import torch.nn.functional as F

from semistylegan.nets import Discriminator, Generator
from semistylegan.nets.layers import Blur, EqualConv2d, MinibatchStd, ModulatedConv2d


@pytest.mark.parametrize("res,channels", [(8, 1), (16, 3), (32, 1)])
def test_generator_discriminator_shapes_and_backward(res, channels):
    torch.manual_seed(0)
    G = Generator(c_dim=4, z_dim=8, w_dim=16, resolution=res, img_channels=channels, channel_base=128, channel_max=16)
    D = Discriminator(c_dim=4, resolution=res, img_channels=channels, channel_base=128, channel_max=16)
    c, z = torch.rand(8, 4), torch.randn(8, 8)
    img = G(c, z)
    assert img.shape == (8, channels, res, res)
    logits, codes = D(img)
    assert logits.shape == (8,) and codes.shape == (8, 4)
    (logits.sum() + codes.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters())


def test_modulated_conv_equals_grouped_reference():
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 5, 3, w_dim=7)
    x, w = torch.randn(3, 6, 8, 8), torch.randn(3, 7)
    out = layer(x, w)
    # Reference: per-sample modulated + demodulated weights, grouped convolution.
    s = layer.affine(w)
    weight = layer.weight[None] * layer.weight_gain * s[:, None, :, None, None]
    weight = weight * (weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    ref = F.conv2d(x.reshape(1, 18, 8, 8), weight.reshape(15, 6, 3, 3), padding=1, groups=3).reshape(3, 5, 8, 8)
    ref = F.leaky_relu(ref + layer.bias[None, :, None, None], 0.2) * 2**0.5
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_resampling_sizes():
    x = torch.randn(2, 4, 8, 8)
    assert ModulatedConv2d(4, 3, 3, 5, up=True)(x, torch.randn(2, 5)).shape == (2, 3, 16, 16)
    assert EqualConv2d(4, 3, 3, down=True)(x).shape == (2, 3, 4, 4)
    assert EqualConv2d(4, 3, 1, down=True)(x).shape == (2, 3, 4, 4)
    # The blur keeps a constant image constant (unit DC gain) away from the borders.
    y = Blur((1, 2))(torch.ones(1, 1, 8, 8))
    assert torch.allclose(y[..., 2:-2, 2:-2], torch.ones_like(y[..., 2:-2, 2:-2]))


@pytest.mark.parametrize("kernel_size", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bf16", [False, True])
def test_downsampling_conv_equals_padded_blur_then_strided_conv(kernel_size, channels_last, bf16):
    # The reference: zero-pad, [1,3,3,1] blur at every pixel, stride-2 conv, lrelu times sqrt(2).
    # In fp32 the layer computes only the blurred pixels a 1x1 conv reads; it always folds the
    # gain into W and b. bf16 (autocast) takes the general path: the same values, rounded.
    torch.manual_seed(0)
    layer = EqualConv2d(4, 5, kernel_size, activation="lrelu", down=True)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 4, 8, 8)
    if channels_last:
        x, layer = x.to(memory_format=torch.channels_last), layer.to(memory_format=torch.channels_last)
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = layer(x).float()
    tol = dict(rtol=2e-2, atol=2e-2) if bf16 else dict(rtol=1e-5, atol=1e-5)
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = (torch.outer(k, k) / 64).expand(4, 1, 4, 4)
    p = 2 + (kernel_size - 1)
    ref = F.conv2d(F.pad(x, ((p + 1) // 2, p // 2) * 2), k, groups=4)
    ref = F.conv2d(ref, layer.weight * layer.weight_gain, layer.bias, stride=2)
    ref = F.leaky_relu(ref, 0.2) * 2**0.5
    assert out.shape == (3, 5, 4, 4)
    torch.testing.assert_close(out, ref, **tol)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, layer.weight), g)
    want = torch.autograd.grad(ref, (x, layer.weight), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.float(), b, **tol)


def test_minibatch_std_groups_are_contiguous():
    layer = MinibatchStd(group_size=2)
    x = torch.randn(4, 3, 2, 2)
    full = layer(x)
    halves = torch.cat([layer(x[:2]), layer(x[2:])])
    torch.testing.assert_close(full, halves)


def test_encoder_is_batch_independent():
    torch.manual_seed(0)
    D = Discriminator(c_dim=3, resolution=16, img_channels=1, channel_base=128, channel_max=16)
    x = torch.randn(8, 1, 16, 16)
    torch.testing.assert_close(D.encode(x)[:4], D.encode(x[:4]))


def test_truncation_moves_towards_average():
    torch.manual_seed(0)
    G = Generator(c_dim=2, z_dim=4, w_dim=8, resolution=8, img_channels=1, channel_base=64, channel_max=8)
    c, z = torch.rand(16, 2), torch.randn(16, 4)
    G.mapping(c, z, update_w_avg=True)
    assert G.mapping.w_avg.abs().sum() > 0
    w1 = G.mapping(c, z)
    w0 = G.mapping(c, z, truncation_psi=0.0)
    torch.testing.assert_close(w0, G.mapping.w_avg.expand_as(w0))
    wh = G.mapping(c, z, truncation_psi=0.5)
    torch.testing.assert_close(wh, 0.5 * (w1 + w0))
