"""Networks of Semi-StyleGAN-fine: FineGenerator (shapes, what it sees of its input, the coarse
skip path, gradients), FineDiscriminator's E_fine head, rotate_hue and box_downsample."""
import numpy as np
import pytest
import torch

from semistylegan.nets.fine import FineDiscriminator, FineGenerator, box_downsample, rotate_hue


def _gen(res=32, inp=16, ch=3, f=3):
    torch.manual_seed(0)
    return FineGenerator(f, 8, 32, res, ch, channel_base=512, channel_max=32, mapping_layers=2, input_resolution=inp)


@pytest.mark.parametrize("res,inp,ch", [(32, 16, 3), (64, 16, 1), (64, 32, 3), (16, 8, 3)])
def test_generator_shapes(res, inp, ch):
    G = _gen(res, inp, ch)
    img = torch.rand(5, ch, res, res) * 2 - 1
    out = G(torch.rand(5, 3), torch.randn(5, 8), img)
    assert out.shape == (5, ch, res, res)
    assert torch.isfinite(out).all()
    # synthesis starts at the coarse resolution: no 4x4/8x8 blocks below it
    assert G.synthesis.start_resolution == inp
    assert len(G.synthesis.blocks) == int(np.log2(res // inp)) + 1
    # one image broadcasts to every code
    out1 = G(torch.rand(5, 3), torch.randn(5, 8), img[:1])
    assert out1.shape == out.shape


def test_generator_rejects_bad_input_resolution():
    with pytest.raises(ValueError):
        _gen(32, 32)
    with pytest.raises(ValueError):
        _gen(32, 12)


def test_generator_sees_only_the_downsample():
    G = _gen(32, 16)
    g = torch.Generator().manual_seed(1)
    img = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    # a zero-mean 2x2 pattern in every box leaves the box downsample unchanged
    pattern = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16) * 0.3
    other = img + pattern
    assert torch.allclose(box_downsample(img, 16), box_downsample(other, 16), atol=1e-6)
    c, z = torch.rand(3, 3, generator=g), torch.randn(3, 8, generator=g)
    assert torch.allclose(G(c, z, img), G(c, z, other), atol=1e-5)
    # ... and also the downsample itself works as input
    assert torch.allclose(G(c, z, img), G(c, z, box_downsample(img, 16)), atol=1e-5)
    # but a different coarse image, a different c_fine or z change the output
    coarse_change = img.clone()
    coarse_change[:, :, :8, :8] += 0.5
    assert (G(c, z, coarse_change) - G(c, z, img)).abs().max() > 1e-3
    assert (G(1 - c, z, img) - G(c, z, img)).abs().max() > 1e-3
    assert (G(c, -z, img) - G(c, z, img)).abs().max() > 1e-3


def test_coarse_skip_adds_the_upsampled_input_to_the_output():
    torch.manual_seed(0)
    plain = _gen(res=32, inp=8)
    torch.manual_seed(0)
    skip = FineGenerator(3, 8, 32, 32, 3, channel_base=512, channel_max=32, mapping_layers=2, input_resolution=8,
                         coarse_skip=True)
    skip.load_state_dict(plain.state_dict())  # the same parameters: the option adds none
    c, z, img = torch.rand(2, 3), torch.randn(2, 8), torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        diff = skip(c, z, img) - plain(c, z, img)
    up = box_downsample(img, 8)
    for _ in range(2):  # 8 -> 16 -> 32 through the skip path's bilinear upsampling
        up = torch.nn.functional.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(diff, up, atol=1e-5)


def test_rotate_hue():
    img = torch.rand(3, 3, 8, 8) * 2 - 1
    out = rotate_hue(img, torch.tensor([0.0, 2 * np.pi / 3, 1.0]))
    assert torch.equal(out[0], img[0])  # angle 0: unchanged
    assert torch.allclose(out[1], img[1][[2, 0, 1]], atol=1e-6)  # a third of a turn: (B, R, G)
    assert torch.allclose(out.mean(dim=1), img.mean(dim=1), atol=1e-6)  # the gray component stays
    gray = torch.full((1, 3, 2, 2), 0.3)
    assert torch.allclose(rotate_hue(gray, torch.tensor([2.0])), gray, atol=1e-6)
    assert not torch.allclose(out[2], img[2], atol=1e-2)
    # invertible: rotating back by the opposite angle returns the image; commutes with the downsample
    assert torch.allclose(rotate_hue(out, -torch.tensor([0.0, 2 * np.pi / 3, 1.0])), img, atol=1e-5)
    ang = torch.tensor([0.5, 1.5, 2.5])
    assert torch.allclose(box_downsample(rotate_hue(img, ang), 4), rotate_hue(box_downsample(img, 4), ang), atol=1e-6)
    with pytest.raises(ValueError, match="RGB"):
        rotate_hue(torch.zeros(1, 1, 4, 4), torch.zeros(1))


def test_generator_gradients_reach_every_parameter():
    G = _gen(32, 16)
    img = (torch.rand(4, 3, 32, 32) * 2 - 1).requires_grad_(True)
    c = torch.rand(4, 3, requires_grad=True)
    out = G(c, torch.randn(4, 8), img)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert c.grad.abs().sum() > 0 and img.grad.abs().sum() > 0


def test_discriminator_fine_head():
    torch.manual_seed(0)
    D = FineDiscriminator(3, 64, 3, channel_base=512, channel_max=32, mbstd_group=4, head_resolution=32)
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    logits, codes = D(x)
    assert logits.shape == (4,) and codes.shape == (4, 3)
    assert torch.allclose(D.encode(x), codes, atol=1e-6)
    # E(x) of one image does not depend on its batch
    assert torch.allclose(D.encode(x[1:2]), codes[1:2], atol=1e-5)
    # E reads the input of the 32x32 block: blocks at and below 32 and the epilogue do not matter
    with torch.no_grad():
        for p in D.blocks["32"].parameters():
            p.add_(1.0)
        for p in D.fc.parameters():
            p.mul_(-1.0)
    assert torch.allclose(D.encode(x), codes, atol=1e-6)
    assert not torch.allclose(D(x)[0], logits)
    # the head's gradient reaches the trunk above 32x32 only
    D.zero_grad()
    D.encode(x).sum().backward()
    assert D.blocks["64"].conv0.weight.grad.abs().sum() > 0
    assert D.blocks["32"].conv0.weight.grad is None
    with pytest.raises(ValueError):
        FineDiscriminator(3, 64, 3, head_resolution=4)
