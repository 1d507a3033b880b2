"""Semi-StyleGAN-fine: networks (shapes, gradients, what depends on what) and the method."""
import numpy as np
import pytest
import torch

from semistylegan.config import make_config
from semistylegan.errors import UserError
from semistylegan.methods import StepContext, build_method
from semistylegan.methods.base import Batch
from semistylegan.methods.semistylegan_fine import resolve_fine_factors
from semistylegan.nets.fine import FineDiscriminator, FineGenerator, box_downsample, rotate_hue

SHAPES_NAMES = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]


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
    assert _method({"coarse_skip": True}).build_networks()["G"].coarse_skip
    with pytest.raises(UserError, match="coarse_skip must be true or false"):
        _method({"coarse_skip": "yes"})


def test_skip_gray_adds_the_upsampled_channel_mean():
    torch.manual_seed(0)
    plain = _gen(res=32, inp=8)
    gray = FineGenerator(3, 8, 32, 32, 3, channel_base=512, channel_max=32, mapping_layers=2, input_resolution=8,
                         coarse_skip=True, skip_gray=True)
    gray.load_state_dict(plain.state_dict())
    c, z, img = torch.rand(2, 3), torch.randn(2, 8), torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        diff = gray(c, z, img) - plain(c, z, img)
    up = box_downsample(img, 8).mean(dim=1, keepdim=True)
    for _ in range(2):
        up = torch.nn.functional.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(diff, up.expand(-1, 3, -1, -1), atol=1e-5)
    with pytest.raises(ValueError, match="skip_gray needs coarse_skip"):
        FineGenerator(3, 8, 32, 32, 3, channel_base=512, channel_max=32, input_resolution=8, skip_gray=True)
    assert _method({"coarse_skip": True, "skip_gray": True}).build_networks()["G"].skip_gray
    with pytest.raises(UserError, match="skip_gray needs coarse_skip=true"):
        _method({"skip_gray": True})


def test_coarse_inject_adds_the_upsampled_input_to_each_blocks_features():
    torch.manual_seed(0)
    plain = _gen(res=32, inp=8)
    inj = FineGenerator(3, 8, 32, 32, 3, channel_base=512, channel_max=32, mapping_layers=2, input_resolution=8,
                        coarse_inject=True)
    missing = inj.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["inject.0.bias", "inject.0.weight", "inject.1.bias", "inject.1.weight"]
    assert [tuple(m.weight.shape) for m in inj.inject] == [(32, 3, 1, 1), (16, 3, 1, 1)]  # at 16 and 32
    c, z, img = torch.rand(2, 3), torch.randn(2, 8), torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():  # zero at the start: G begins as without it
        assert torch.allclose(inj(c, z, img), plain(c, z, img), atol=1e-6)
        for m in inj.inject:
            m.weight.normal_()
            m.bias.normal_()
    # what each upper block's second conv gets: its upsampling conv's output plus the 1x1 conv
    # of the bilinear upsample of the 8x8 box downsample to the block's resolution
    seen = {}
    hooks = [blk.conv0.register_forward_hook(lambda mod, a, out, i=i: seen.__setitem__(("conv0", i), out))
             for i, blk in enumerate(inj.synthesis.blocks) if i > 0]
    hooks += [blk.conv1.register_forward_hook(lambda mod, a, out, i=i: seen.__setitem__(("conv1", i), a[0]))
              for i, blk in enumerate(inj.synthesis.blocks)]
    with torch.no_grad():
        out = inj(c, z, img)
    for h in hooks:
        h.remove()
    small = box_downsample(img, 8)
    for i, res in [(1, 16), (2, 32)]:
        up = torch.nn.functional.interpolate(small, size=(res, res), mode="bilinear", align_corners=False)
        w = inj.inject[i - 1].weight[:, :, 0, 0] * inj.inject[i - 1].weight_gain
        want = seen[("conv0", i)] + torch.einsum("oc,nchw->nohw", w, up) + inj.inject[i - 1].bias[None, :, None, None]
        assert torch.allclose(seen[("conv1", i)], want, atol=1e-5)
    assert not torch.allclose(out, plain(c, z, img), atol=1e-3)
    # trained like the rest of G; the method passes the option through and checks its type
    inj(c, z, img).square().mean().backward()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in inj.inject)
    assert _method({"coarse_inject": True}).build_networks()["G"].inject is not None
    assert _method({}).build_networks()["G"].inject is None
    with pytest.raises(UserError, match="coarse_inject must be true or false"):
        _method({"coarse_inject": "on"})


def test_input_const_gives_the_generator_position():
    m = _method({"input_const": True}, resolution=16)
    torch.manual_seed(0)
    G = m.build_networks()["G"]
    assert G.input_const.shape == (G.input_conv.weight.shape[0], 8, 8)
    assert not G.input_const.any()  # starts at zero: G begins as without it
    c, z = torch.rand(1, 3), torch.randn(1, m.z_dim)
    flat = torch.full((1, 3, 16, 16), 0.3)  # a uniform image: no layout in the input
    with torch.no_grad():
        G.input_const.normal_()  # as training would move it
        out = G(c, z, flat)
        spread = float((out - out.mean(dim=(2, 3), keepdim=True)).abs().mean())
        G.input_const.zero_()  # without it the interior of a uniform input is uniform too
        inner = G(c, z, flat)[..., 6:10, 6:10]
    assert spread > 1e-3 and float((inner - inner.mean(dim=(2, 3), keepdim=True)).abs().max()) < 1e-5
    with pytest.raises(UserError, match="input_const must be true or false"):
        _method({"input_const": 1})


def test_coarse_gray_sees_luminance_only():
    m = _method({"coarse_gray": True}, resolution=16)
    G = m.build_networks()["G"]
    img = torch.rand(2, 3, 16, 16) * 2 - 1
    small = box_downsample(img, 8)
    luma = 0.299 * small[:, 0] + 0.587 * small[:, 1] + 0.114 * small[:, 2]
    seen = G.coarse(img)
    assert seen.shape == (2, 3, 8, 8) and all(torch.allclose(seen[:, k], luma, atol=1e-6) for k in range(3))
    # two images of the same luminance and different colours give the same output
    c, z = torch.rand(2, 3), torch.randn(2, m.z_dim)
    other = img.clone()
    other[:, 0], other[:, 1] = img[:, 0] + 0.587 * 0.1, img[:, 1] - 0.299 * 0.1
    with torch.no_grad():
        assert torch.allclose(G(c, z, img), G(c, z, other), atol=1e-5)
        assert not torch.allclose(G(c, z, img), G(c, z, img.flip(-1)), atol=1e-3)
    assert not _method({}, resolution=16).build_networks()["G"].coarse_gray
    # a one-channel dataset has no colours to drop: refused, not silently ignored
    gray = {"name": "dsprites", "resolution": 16, "channels": 1, "num_images": 737280,
            "factors": {"names": ["shape", "scale", "orientation", "posX", "posY"], "sizes": [3, 6, 40, 32, 32]}}
    cfg = make_config("tiny", method="semi-fine", resolution=16, extra={"coarse_gray": True, "fine_factors": "scale"})
    with pytest.raises(UserError, match="coarse_gray needs a colour dataset \\(3 channels\\); dsprites has 1"):
        build_method(cfg, gray)


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


def test_hue_jitter_rotates_what_g_sees_in_training_only():
    def step(m, seed=0):
        torch.manual_seed(0)
        nets = m.build_networks()
        seen = []
        nets["G"].register_forward_pre_hook(lambda mod, args: seen.append(args[2].detach().clone()))
        n = 4
        gen = torch.Generator().manual_seed(1)
        real = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
        labeled = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
        codes = torch.rand(n, 6, generator=gen)
        mask = torch.ones(n, 6, dtype=torch.bool)
        ctx = StepContext(np.random.default_rng(seed), torch.device("cpu"), m.build_optimizers(nets), step=0)
        m.train_step(ctx, nets, Batch(real, labeled, codes, mask, n, n))
        return nets, seen, real, labeled

    m = _method({"hue_jitter": True, "recon": 1.0}, resolution=16)
    nets, seen, real, labeled = step(m)
    # every source G saw in the step is a real image of the step with its hues turned: the same
    # gray component, other colours, a different angle per image
    assert len(seen) >= 3
    for src in seen:
        ref = real if torch.allclose(src.mean(dim=1), real.mean(dim=1), atol=1e-5) else labeled
        assert torch.allclose(src.mean(dim=1), ref.mean(dim=1), atol=1e-5)
        assert not torch.allclose(src, ref, atol=1e-2)
    assert not torch.allclose(seen[0][0] - real[0], seen[0][1] - real[1], atol=1e-2)
    # the angles come from the step's random stream: the same stream gives the same step
    nets2, seen2, _, _ = step(m)
    assert all(torch.equal(a, b) for a, b in zip(seen, seen2))
    assert all(torch.equal(a, b) for a, b in zip(nets["G"].parameters(), nets2["G"].parameters()))
    _, seen3, _, _ = step(m, seed=5)
    assert not torch.allclose(seen[0], seen3[0], atol=1e-3)
    # outside the training step (generation, editing) G sees the image as it is
    seen.clear()
    with torch.no_grad():
        m.generate(nets, torch.rand(4, 6), torch.randn(4, m.z_dim), coarse=real)
    assert len(seen) == 1 and torch.equal(seen[0], real)
    # without the option nothing is rotated
    _, plain, real_p, labeled_p = step(_method({"recon": 1.0}, resolution=16))
    assert all(any(torch.equal(src, ref) for ref in (real_p, labeled_p)) for src in plain)
    gray = {"name": "dsprites", "resolution": 16, "channels": 1, "num_images": 737280,
            "factors": {"names": ["shape", "scale", "orientation", "posX", "posY"], "sizes": [3, 6, 40, 32, 32]}}
    cfg = make_config("tiny", method="semi-fine", resolution=16, extra={"hue_jitter": True, "fine_factors": "scale"})
    with pytest.raises(UserError, match="hue_jitter needs a colour dataset \\(3 channels\\); dsprites has 1"):
        build_method(cfg, gray)
    with pytest.raises(UserError, match="hue_jitter must be true or false"):
        _method({"hue_jitter": "yes"})


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


def test_resolve_fine_factors():
    assert resolve_fine_factors("shapes3d", SHAPES_NAMES) == [0, 1, 2]
    assert resolve_fine_factors("shapes3d", SHAPES_NAMES, "orientation,floor_hue") == [0, 5]
    falcor = ["lighting_intensity", "lighting_x-dir", "lighting_y-dir", "lighting_z-dir", "camera_x-pos"]
    assert resolve_fine_factors("falcor3d", falcor) == [0, 1, 2, 3]
    assert resolve_fine_factors("falcor3d", falcor, ["Lighting_X_Dir"]) == [1]
    isaac = ["object_shape", "robot_x-move", "robot_y-move", "camera_height", "object_scale", "lighting_intensity",
             "lighting_y-dir", "object_color", "wall_color"]
    assert resolve_fine_factors("isaac3d", isaac) == [5, 6, 7, 8]
    with pytest.raises(UserError, match="unknown fine factor 'hue'"):
        resolve_fine_factors("shapes3d", SHAPES_NAMES, "hue")
    with pytest.raises(UserError, match="no default fine factors"):
        resolve_fine_factors("dsprites", ["shape", "scale"])


def _method(extra, resolution=32, **options):
    info = {"name": "shapes3d", "resolution": resolution, "channels": 3, "num_images": 480000,
            "factors": {"names": SHAPES_NAMES, "sizes": [10, 10, 10, 8, 4, 15]}}
    cfg = make_config("tiny", method="semi-fine", dataset="shapes3d", resolution=resolution, extra=extra, **options)
    return build_method(cfg, info)


def test_method_options_and_bad_options():
    m = _method({})
    assert m.fine_names == ["floor_hue", "wall_hue", "object_hue"] and m.input_res == 16 and m.head_res == 32
    m = _method({"fine_factors": "object_hue", "fine_input_res": 8, "fine_head_res": 16})
    assert m.fine_idx == [2] and m.input_res == 8 and m.head_res == 16
    assert _method({}, resolution=16).input_res == 8
    with pytest.raises(UserError, match="fine_input_res"):
        _method({"fine_input_res": 32})
    with pytest.raises(UserError, match="unknown option"):
        _method({"fine_factor": "x"})


def test_train_step_updates_and_uses_fine_factors_only():
    m = _method({}, resolution=16)
    torch.manual_seed(0)
    nets = m.build_networks()
    opts = m.build_optimizers(nets)
    rng = np.random.default_rng(0)
    n, nl = 4, 4
    real = torch.rand(n, 3, 16, 16) * 2 - 1
    labeled = torch.rand(nl, 3, 16, 16) * 2 - 1
    codes = torch.rand(nl, 6)
    mask = torch.ones(nl, 6, dtype=torch.bool)
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in nets.items()}
    ctx = StepContext(rng, torch.device("cpu"), opts, step=0)
    m.train_step(ctx, nets, Batch(real, labeled, codes, mask, n, nl))
    for name in ("D/gan", "D/sup", "D/sr", "D/r1", "G/gan", "G/unsup", "G/sr"):
        assert name in ctx.stats and np.isfinite(ctx.stats[name]), name
    for k, v in nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], v.parameters())), k
    # L_sup compares only the fine columns: changing the coarse columns leaves it unchanged
    D = nets["D"]
    with torch.no_grad():
        pred = D.encode(labeled)
    from semistylegan.methods.base import l2_norm_loss

    b1 = Batch(real, labeled, codes, mask, n, nl)
    codes2 = codes.clone()
    codes2[:, 3:] = 1 - codes2[:, 3:]
    b2 = Batch(real, labeled, codes2, mask, n, nl)
    c1, m1 = m._fine_labels(b1)
    c2, m2 = m._fine_labels(b2)
    assert torch.equal(c1, c2) and torch.equal(m1, m2)
    assert float(l2_norm_loss(pred, c1, m1)) == float(l2_norm_loss(pred, c2, m2))


def test_reconstruction_term_reaches_g_only_and_skips_partly_labelled_images():
    from semistylegan.methods.base import set_requires_grad

    m = _method({"recon": 2.5}, resolution=16)
    torch.manual_seed(0)
    nets = m.build_networks()
    opts = m.build_optimizers(nets)
    n = 4
    real = torch.rand(n, 3, 16, 16) * 2 - 1
    labeled = torch.rand(n, 3, 16, 16) * 2 - 1
    codes = torch.rand(n, 6)
    mask = torch.ones(n, 6, dtype=torch.bool)
    set_requires_grad(nets["D"], False)
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), opts, step=0)
    terms = m.g_phase_terms(ctx, nets, Batch(real, labeled, codes, mask, n, n))
    weight, value = terms["recon"]
    assert weight == 2.5 and torch.isfinite(value) and value > 0
    value.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets["G"].parameters())
    assert all(p.grad is None for p in nets["D"].parameters())
    # the term is the mean |G(c_fine(x), z, coarse(x)) - x| over the images whose fine codes are all
    # known: replay the same z stream and compare; an image missing one fine code counts nothing
    mask[0, 1] = False  # wall_hue of image 0 unknown
    mask[1, 4] = False  # shape (coarse) unknown: still counts
    ctx = StepContext(np.random.default_rng(7), torch.device("cpu"), opts, step=0)
    got = m.g_phase_terms(ctx, nets, Batch(real, labeled, codes, mask, n, n))["recon"][1]
    replay = StepContext(np.random.default_rng(7), torch.device("cpu"), opts, step=0)
    with torch.no_grad():  # the other G terms draw first (replayed with the term off), then its z
        m.recon = 0.0
        m.g_phase_terms(replay, nets, Batch(real, labeled, codes, mask, n, n))
        m.recon = 2.5
        z = replay.randn(n, m.z_dim)
        out = nets["G"](codes[:, m.fine_idx], z, labeled)
    err = (out - labeled).abs().mean(dim=(1, 2, 3))
    assert torch.allclose(got, err[1:].mean(), rtol=1e-4, atol=1e-6)
    assert "recon" not in _method({}, resolution=16).g_phase_terms(
        StepContext(np.random.default_rng(0), torch.device("cpu"), opts, step=0), nets,
        Batch(real, labeled, codes, mask, n, n))
    with pytest.raises(UserError, match="recon must be a non-negative number"):
        _method({"recon": -1})


def test_encode_and_generate_interfaces():
    m = _method({})
    torch.manual_seed(0)
    nets = {k: v.eval() for k, v in m.build_networks().items()}
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        full = m.encode(nets, x)
        fine = m.encode_fine(nets, x)
    assert full.shape == (3, 6) and fine.shape == (3, 3)
    assert torch.isnan(full[:, 3:]).all() and torch.equal(full[:, :3], fine)
    z = torch.randn(3, 8)
    codes_k = torch.rand(3, 6)
    with torch.no_grad():
        a = m.generate(nets, codes_k, z, coarse=x)
        b = m.generate(nets, codes_k[:, :3], z, coarse=x)
        m.set_reference_images(x[:1])
        c = m.generate(nets, codes_k, z)  # the reference image for every code
        d = m.generate(nets, codes_k, z, coarse=x[:1].expand(3, -1, -1, -1))
    assert torch.equal(a, b) and torch.allclose(c, d, atol=1e-6)
    with pytest.raises(ValueError):
        m.generate(nets, torch.rand(3, 4), z, coarse=x)


@pytest.mark.parametrize("options", [dict(code_head="classify"),
                                     dict(code_head="classify", encoder="separate", encoder_noise=0.5)])
def test_fine_classifier_reads_only_fine_values(options):
    m = _method({"fine_factors": "floor_hue,object_hue"}, resolution=16, **options)
    torch.manual_seed(0)
    nets = m.build_networks()
    D = nets["D"].eval()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        out = D.encode(x)
        fine = m.encode_fine(nets, x)
    assert out.shape == (3, 20)  # 10 + 10 logits: the two fine hues, nothing of the coarse factors
    assert fine.shape == (3, 2)
    np.testing.assert_allclose(fine.numpy() * 9, np.round(fine.numpy() * 9), atol=1e-5)  # grid codes j / 9
    codes = torch.rand(3, 2)
    loss = m._code_loss(out, codes)
    assert torch.isfinite(loss) and loss > 0
