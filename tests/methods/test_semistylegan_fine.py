"""Semi-StyleGAN-fine, the method: its fields, what G sees in training, L_sup and the reconstruction
on the fine factors only, the encode/generate interfaces. The networks: tests/nets/test_fine.py."""
import numpy as np
import pytest
import torch

from semistylegan.config import make_config
from semistylegan.errors import UserError
from semistylegan.methods import StepContext, build_method
from semistylegan.methods.base import Batch
from semistylegan.methods.semistylegan_fine import resolve_fine_factors

SHAPES_NAMES = ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"]




def test_coarse_skip_field_reaches_the_generator_and_is_type_checked():
    assert _method({"coarse_skip": True}).build_networks()["G"].coarse_skip
    assert not _method().build_networks()["G"].coarse_skip
    with pytest.raises(UserError, match=r"^config: field coarse_skip must be true or false, got 'yes'$"):
        _method({"coarse_skip": "yes"})
    with pytest.raises(UserError, match=r"^--method semi does not use --coarse-skip$"):
        make_config("tiny", coarse_skip=True)


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
    with pytest.raises(UserError, match="field input_const must be true or false, got 1"):
        _method({"input_const": 1})


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
        # G sees the sources of a phase in one pass (fakes, MixUp partners, reconstructions)
        return nets, [part for src in seen for part in src.split(n)], real, labeled

    m = _method({"hue_jitter": True, "recon": 1.0}, resolution=16)
    nets, seen, real, labeled = step(m)
    # every source G saw in the step is a real image of the step with its hues turned: the same
    # gray component, other colours, a different angle per image
    assert len(seen) == 5  # D phase: fakes, partners; G phase: fakes, partners, reconstructions
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
    seen = []
    nets["G"].register_forward_pre_hook(lambda mod, args: seen.append(args[2]))
    with torch.no_grad():
        m.generate(nets, torch.rand(4, 6), torch.randn(4, m.z_dim), coarse=real)
    assert len(seen) == 1 and torch.equal(seen[0], real)
    # without the option nothing is rotated
    _, plain, real_p, labeled_p = step(_method({"recon": 1.0}, resolution=16))
    assert all(any(torch.equal(src, ref) for ref in (real_p, labeled_p)) for src in plain)
    cfg = make_config("tiny", method="semi-fine", resolution=16, hue_jitter=True, fine_factors="scale")
    with pytest.raises(UserError, match="hue_jitter needs a colour dataset \\(3 channels\\); dsprites has 1"):
        build_method(cfg, DSPRITES_INFO)
    with pytest.raises(UserError, match="field hue_jitter must be true or false, got 'yes'"):
        _method({"hue_jitter": "yes"})


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


SHAPES_INFO = {"name": "shapes3d", "channels": 3, "num_images": 480000,
               "factors": {"names": SHAPES_NAMES, "sizes": [10, 10, 10, 8, 4, 15]}}
DSPRITES_INFO = {"name": "dsprites", "resolution": 16, "channels": 1, "num_images": 737280,
                 "factors": {"names": ["shape", "scale", "orientation", "posX", "posY"], "sizes": [3, 6, 40, 32, 32]}}


def _method(fields=None, resolution=32, **options):
    """A semi-fine method on 3DShapes' factors; `fields` and `options` are config fields."""
    cfg = make_config("tiny", method="semi-fine", dataset="shapes3d", resolution=resolution, **(fields or {}),
                      **options)
    return build_method(cfg, {**SHAPES_INFO, "resolution": resolution})


def test_method_options_and_bad_options():
    m = _method({})
    assert m.fine_names == ["floor_hue", "wall_hue", "object_hue"] and m.input_res == 16 and m.head_res == 32
    m = _method({"fine_factors": "object_hue", "fine_input_res": 8, "fine_head_res": 16})
    assert m.fine_idx == [2] and m.input_res == 8 and m.head_res == 16
    assert _method({}, resolution=16).input_res == 8
    with pytest.raises(UserError, match=r"^semi-fine: --fine-input-res must be a power of two in \[4, 16\], got 32$"):
        _method({"fine_input_res": 32})
    with pytest.raises(UserError, match=r"^semi-fine: --fine-head-res must be a power of two in \[8, 32\], got 12$"):
        _method({"fine_head_res": 12})
    with pytest.raises(UserError, match=r"^--fine-input-res must be >= 0, got -8$"):
        _method({"fine_input_res": -8})
    with pytest.raises(UserError, match=r"unknown field\(s\): fine_factor$"):
        _method({"fine_factor": "x"})
    with pytest.raises(UserError, match=r"^unknown fine factor 'floor'; factors are: floor_hue, "):
        _method({"fine_factors": "floor"})


def test_mapping_layers_take_the_configured_lr_multiplier():
    """semi-fine's mapping network uses cfg.mapping_lr_mul, as Semi-StyleGAN's does (it used to
    keep MappingNetwork's default 0.01)."""
    from semistylegan.nets.layers import EqualLinear

    for lr_mul in (0.05, 0.01):
        G = _method(resolution=16, mapping_lr_mul=lr_mul).build_networks()["G"]
        assert len(G.mapping.layers) == 2  # the tiny preset's mapping_layers
        for m in G.mapping.layers:
            assert m.lr_mul == lr_mul and m.weight_gain == pytest.approx(lr_mul / m.weight.shape[1] ** 0.5)
    # the code embedding and the rest of G keep lr_mul 1 (StyleGAN's layout)
    assert all(m.lr_mul == 1.0 for name, m in G.named_modules()
               if isinstance(m, EqualLinear) and not name.startswith("mapping.layers"))


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
        assert name in ctx.stats and np.isfinite(ctx.values()[name]), name
    for k, v in nets.items():
        assert any(not torch.equal(a, b) for a, b in zip(before[k], v.parameters())), k


def test_sup_term_is_the_norm_over_the_fine_columns_only():
    """L_sup (eq 3) of semi-fine by hand: mean over the labelled images of the L2 norm of
    E_fine(x) - c over the known fine factors (wall_hue and orientation, columns 1 and 5); the
    coarse columns hold values far off the grid and unknown flags, and count nothing."""
    m = _method({"fine_factors": "orientation,wall_hue"}, resolution=16)
    assert m.fine_idx == [1, 5]
    torch.manual_seed(0)
    nets = m.build_networks()
    n = 4
    gen = torch.Generator().manual_seed(3)
    real = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
    labeled = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
    codes = torch.rand(n, 6, generator=gen)
    codes[:, [0, 2, 3, 4]] = 7.0  # coarse columns: nonsense that would dominate any norm over them
    mask = torch.ones(n, 6, dtype=torch.bool)
    mask[:, 3] = False
    mask[2, 5] = False  # image 2's orientation is unknown: only its wall_hue counts
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), m.build_optimizers(nets), step=0)
    terms = m.d_phase_terms(ctx, nets, Batch(real, labeled, codes, mask, n, n), do_r1=False)
    weight, got = terms["sup"]
    assert weight == m.w["beta"] == 1.0  # beta defaults to gamma (1 in the tiny preset)
    with torch.no_grad():
        pred = nets["D"].encode(labeled)  # (n, 2): wall_hue, orientation
    assert pred.shape == (n, 2)
    want = []
    for i in range(n):
        sq = (pred[i, 0] - codes[i, 1]) ** 2
        if i != 2:
            sq = sq + (pred[i, 1] - codes[i, 5]) ** 2
        want.append(float(sq) ** 0.5)
    assert float(got.detach()) == pytest.approx(np.mean(want), rel=1e-5)


def test_reconstruction_term_reaches_g_only_and_skips_partly_labelled_images():
    m = _method({"recon": 2.5}, resolution=16)
    torch.manual_seed(0)
    nets = m.build_networks()
    opts = m.build_optimizers(nets)
    n = 4
    real = torch.rand(n, 3, 16, 16) * 2 - 1
    labeled = torch.rand(n, 3, 16, 16) * 2 - 1
    codes = torch.rand(n, 6)
    mask = torch.ones(n, 6, dtype=torch.bool)
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), opts, step=0)  # D left trainable
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
    with pytest.raises(UserError, match=r"^--recon must be >= 0.0, got -1$"):
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


def test_mixup_partners_are_generated_from_the_labelled_images_themselves():
    """L_sr of semi-fine's D/E phase by hand: after the step's fakes (c_fine, z on the real batch),
    fresh partners x' = G(c', z', coarse = the labelled image) are drawn, then lambda ~ Beta(xi, xi),
    lambda' = max(lambda, 1 - lambda); x~ and c~ mix each labelled image with its own re-rendering
    (eq 5) and the norm runs over the known fine factors (eq 6)."""
    m = _method({"fine_factors": "wall_hue,object_hue"}, resolution=16, mixup_xi=0.5)
    torch.manual_seed(0)
    nets = m.build_networks()
    n = 4
    gen = torch.Generator().manual_seed(5)
    real = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
    labeled = torch.rand(n, 3, 16, 16, generator=gen) * 2 - 1
    codes = torch.rand(n, 6, generator=gen)
    mask = torch.ones(n, 6, dtype=torch.bool)
    mask[1, 2] = False  # image 1's object_hue is unknown
    ctx = StepContext(np.random.default_rng(21), torch.device("cpu"), m.build_optimizers(nets), step=0)
    got = m.d_phase_terms(ctx, nets, Batch(real, labeled, codes, mask, n, n), do_r1=False)["sr"][1]

    rng = np.random.default_rng(21)
    sizes = np.array([10, 10])  # wall_hue, object_hue

    def draw():
        classes = rng.integers(0, sizes, size=(n, 2))
        return (torch.from_numpy((classes / 9).astype(np.float32)),
                torch.from_numpy(rng.standard_normal((n, m.z_dim), dtype=np.float32)))

    draw()  # the step's own fakes (on the real batch), not used by L_sr here
    part_codes, part_z = draw()
    lam = torch.from_numpy(rng.beta(0.5, 0.5, size=n).astype(np.float32))
    lam = torch.where(lam > 0.5, lam, 1 - lam)
    with torch.no_grad():
        partner = nets["G"](part_codes, part_z, labeled)
        x_mix = lam.view(-1, 1, 1, 1) * labeled + (1 - lam.view(-1, 1, 1, 1)) * partner
        c_mix = lam.view(-1, 1) * codes[:, [1, 2]] + (1 - lam.view(-1, 1)) * part_codes
        diff = (nets["D"].encode(x_mix) - c_mix) * mask[:, [1, 2]].float()
        want = diff.square().sum(dim=1).sqrt().mean()
    torch.testing.assert_close(got.detach(), want, rtol=1e-5, atol=1e-6)
