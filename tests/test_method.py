"""Loss routing of Semi-/Info-StyleGAN (eqs 1-7, docs/method.md) and a few real training steps."""
import numpy as np
import pytest
import torch

from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.errors import UserError
from semistylegan.methods import Batch, StepContext, build_method
from semistylegan.methods.base import l2_norm_loss, set_requires_grad
from semistylegan.methods.semistylegan import hard_pixel_count
from semistylegan.train import Trainer


def _setup(**overrides):
    cfg = make_config("tiny", **overrides)
    ds = make_dataset("dsprites", cfg.resolution)
    method = build_method(cfg, ds.info())
    torch.manual_seed(0)
    nets = method.build_networks()
    opts = method.build_optimizers(nets)
    rs = np.random.RandomState(0)
    idx = rs.randint(len(ds), size=cfg.batch)
    from semistylegan.data.dataset import images_to_tensor

    lab_codes = torch.from_numpy(ds.codes(idx))
    batch = Batch(images_to_tensor(ds.images(idx)), images_to_tensor(ds.images(idx)), lab_codes,
                  torch.ones_like(lab_codes, dtype=torch.bool), cfg.batch, cfg.batch)
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), opts, step=0)
    return cfg, method, nets, batch, ctx


def _reached(term, nets):
    """Which networks (and E's head) receive a gradient from this term alone."""
    for net in nets.values():
        net.zero_grad(set_to_none=True)
    term.backward(retain_graph=True)

    def got(params):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)

    return {"G": got(nets["G"].parameters()), "D": got(nets["D"].parameters()),
            "E_head": got(nets["D"].code_head.parameters()), "D_out": got(nets["D"].out.parameters())}


def test_d_phase_routing_semi_default():
    cfg, method, nets, batch, ctx = _setup()
    assert cfg.weights == {"gamma_G": 1.0, "gamma_E": 0.0, "beta": 1.0, "alpha": 1.0, "alpha_E": 1.0}
    # Even with G's parameters open to gradients, nothing of the D/E phase reaches G.
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=True)
    assert set(terms) == {"gan", "sup", "sr", "r1"}  # gamma_E = 0: no L_unsup in E
    for name, (_, value) in terms.items():
        assert torch.isfinite(value)
        r = _reached(value, nets)
        assert not r["G"], name
    assert _reached(terms["sup"][1], nets) == {"G": False, "D": True, "E_head": True, "D_out": False}
    assert _reached(terms["sr"][1], nets)["E_head"]
    assert not _reached(terms["gan"][1], nets)["E_head"]


def test_g_phase_routing():
    cfg, method, nets, batch, ctx = _setup()
    set_requires_grad(nets["D"], False)
    terms = method.g_phase_terms(ctx, nets, batch)
    assert set(terms) == {"gan", "unsup", "sr"}
    for name, (_, value) in terms.items():
        r = _reached(value, nets)
        assert r["G"] and not r["D"], name  # L_unsup and L_sr reach G, never E in this phase


def test_gamma_e_puts_unsup_in_encoder():
    cfg, method, nets, batch, ctx = _setup(gamma_E=10.0)
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert terms["unsup"][0] == 10.0
    r = _reached(terms["unsup"][1], nets)
    assert r["E_head"] and not r["G"]


def test_alpha_e_splits_the_smoothness_term_between_phases():
    cfg, method, nets, batch, ctx = _setup(alpha_E=0.0)
    assert cfg.weights["alpha"] == 1.0 and cfg.weights["alpha_E"] == 0.0
    assert set(method.d_phase_terms(ctx, nets, batch, do_r1=False)) == {"gan", "sup"}  # E: labelled reals only
    set_requires_grad(nets["D"], False)
    terms = method.g_phase_terms(ctx, nets, batch)
    assert terms["sr"][0] == 1.0 and _reached(terms["sr"][1], nets)["G"]  # G still takes L_sr
    cfg, method, nets, batch, ctx = _setup(alpha_E=3.0, alpha=0.5)
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert terms["sr"][0] == 3.0 and _reached(terms["sr"][1], nets)["E_head"]
    set_requires_grad(nets["D"], False)
    assert method.g_phase_terms(ctx, nets, batch)["sr"][0] == 0.5
    with pytest.raises(UserError, match="alpha_E must be a non-negative number"):
        make_config("tiny", alpha_E=-1.0)


def test_set_pairs_split_into_config_fields_and_method_options():
    from semistylegan.config import TrainConfig
    got = TrainConfig.parse_set(["g_plain=true", "encoder=separate", "batch=8", "lr=0.01", "alpha_E=0",
                                 "recon=20", "fine_factors=a,b", "coarse_skip=true"])
    assert got == {"g_plain": True, "encoder": "separate", "batch": 8, "lr": 0.01, "alpha_E": 0.0,
                   "extra": {"recon": 20, "fine_factors": "a,b", "coarse_skip": True}}
    assert type(got["batch"]) is int and type(got["alpha_E"]) is float
    assert TrainConfig.parse_set(None) == {} and TrainConfig.parse_set(["lr=1"]) == {"lr": 1.0}
    for pair, message in [("batch", "--set expects KEY=VALUE, got 'batch'"), ("=3", "--set expects KEY=VALUE"),
                          ("g_plain=yes", "g_plain takes true or false"), ("batch=1.5", "batch takes int"),
                          ("extra=1", "give each method option as its own --set")]:
        with pytest.raises(UserError, match=message):
            TrainConfig.parse_set([pair])
    # an option no method takes is refused by the method, in one line
    cfg = make_config("tiny", **TrainConfig.parse_set(["nope=1"]))
    with pytest.raises(UserError, match=r"^semi: unknown option\(s\) nope; it takes recon, recon_edges, recon_hard, recon_hard_frac$"):
        build_method(cfg, make_dataset("dsprites", 16).info())


def test_info_stylegan_weights_and_terms():
    cfg, method, nets, batch, ctx = _setup(method="info", labeled_fraction=0.0, gamma=2.0)
    assert cfg.weights == {"gamma_G": 2.0, "gamma_E": 2.0, "beta": 0.0, "alpha": 0.0, "alpha_E": 0.0}
    assert not method.uses_labels
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert set(terms) == {"gan", "unsup"}


@pytest.mark.parametrize("method", ["semi", "info", "encoder-only"])
def test_unknown_set_option_is_refused(method):
    cfg = make_config("tiny", method=method, labeled_fraction=0.0 if method == "info" else 0.01,
                      extra={"gama": "3"})
    takes = "recon, recon_edges, recon_hard, recon_hard_frac" if method == "semi" else "none"
    with pytest.raises(UserError, match=rf"^{method}: unknown option\(s\) gama; it takes {takes}"):
        build_method(cfg, make_dataset("dsprites", 16).info())


def test_reconstruction_option_reaches_g_only_and_equals_l1_to_the_labelled_images():
    cfg, method, nets, batch, ctx = _setup(extra={"recon": 3.0})
    set_requires_grad(nets["D"], False)
    terms = method.g_phase_terms(ctx, nets, batch)
    assert set(terms) == {"gan", "unsup", "sr", "recon"} and terms["recon"][0] == 3.0
    assert _reached(terms["recon"][1], nets) == {"G": True, "D": False, "E_head": False, "D_out": False}
    # the value: mean |G(c, z) - x| with z the draw after the other terms' (replayed with the term off)
    batch.labeled_mask[0, 2] = False  # image 0 has an unknown factor: it counts nothing
    got = method.g_phase_terms(StepContext(np.random.default_rng(5), torch.device("cpu"), ctx.optimizers, 0),
                               nets, batch)["recon"][1]
    replay = StepContext(np.random.default_rng(5), torch.device("cpu"), ctx.optimizers, 0)
    with torch.no_grad():
        method.recon = 0.0
        assert "recon" not in method.g_phase_terms(replay, nets, batch)
        out = nets["G"](batch.labeled_codes, replay.randn(cfg.batch, cfg.z_dim))
    err = (out - batch.labeled).abs().mean(dim=(1, 2, 3))
    assert torch.allclose(got, err[1:].mean(), rtol=1e-4, atol=1e-6)
    assert float(got) > 0
    # Info-StyleGAN has no labels to reconstruct; a bad weight is refused
    info = make_config("tiny", method="info", labeled_fraction=0.0, extra={"recon": 1.0})
    with pytest.raises(UserError, match=r"^info: unknown option\(s\) recon; it takes none"):
        build_method(info, make_dataset("dsprites", 16).info())
    with pytest.raises(UserError, match="recon must be a non-negative number"):
        build_method(make_config("tiny", extra={"recon": -2}), make_dataset("dsprites", 16).info())


def _recon_variant(option: str, weight: float, unknown: int, seed: int, **more):
    """One reconstruction option alone (plus the settings in `more`): its G-phase term (checked to
    reach G only), and G's output for the same z, replayed with the option off (z is drawn after
    the other terms')."""
    cfg, method, nets, batch, ctx = _setup(extra={option: weight, **more})
    set_requires_grad(nets["D"], False)
    batch.labeled_mask[unknown, 1] = False  # this image has an unknown factor: it counts nothing
    terms = method.g_phase_terms(StepContext(np.random.default_rng(seed), torch.device("cpu"), ctx.optimizers, 0),
                                 nets, batch)
    assert {k for k in terms if k.startswith("recon")} == {option} and terms[option][0] == weight
    got = terms[option][1]
    assert _reached(got, nets) == {"G": True, "D": False, "E_head": False, "D_out": False}
    replay = StepContext(np.random.default_rng(seed), torch.device("cpu"), ctx.optimizers, 0)
    with torch.no_grad():
        setattr(method, option, 0.0)
        assert option not in method.g_phase_terms(replay, nets, batch)
        out = nets["G"](batch.labeled_codes, replay.randn(cfg.batch, cfg.z_dim))
    keep = torch.ones(cfg.batch, dtype=torch.bool)
    keep[unknown] = False
    return method, nets, batch, ctx, got, out, keep


def test_edge_reconstruction_option_compares_image_gradients():
    method, nets, batch, ctx, got, out, keep = _recon_variant("recon_edges", 2.0, unknown=1, seed=7)

    def grads(img):
        return img[..., :, 1:] - img[..., :, :-1], img[..., 1:, :] - img[..., :-1, :]

    (ox, oy), (xx, xy) = grads(out), grads(batch.labeled)
    err = (ox - xx).abs().mean(dim=(1, 2, 3)) + (oy - xy).abs().mean(dim=(1, 2, 3))
    assert torch.allclose(got, err[keep].mean(), rtol=1e-4, atol=1e-6)


def test_hard_pixel_reconstruction_option_averages_each_images_worst_twentieth():
    method, nets, batch, ctx, got, out, keep = _recon_variant("recon_hard", 4.0, unknown=2, seed=9)
    err = (out - batch.labeled).abs().mean(dim=1).flatten(1)  # (N, 16*16) pixel errors
    worst = err.sort(dim=1, descending=True).values[:, :13]  # round(256 / 20) = 13 pixels
    want = worst.mean(dim=1)[keep].mean()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    # the worst pixels weigh more than the mean over all of them (the plain recon term)
    assert float(want) > float(err[keep].mean()) * 1.5
    # all three terms on: one G pass, each term the value it has alone
    method.recon, method.recon_edges, method.recon_hard = 1.0, 2.0, 4.0
    both = method.g_phase_terms(StepContext(np.random.default_rng(9), torch.device("cpu"), ctx.optimizers, 0),
                                nets, batch)
    assert {k: v[0] for k, v in both.items() if k.startswith("recon")} == {"recon": 1.0, "recon_edges": 2.0,
                                                                           "recon_hard": 4.0}
    assert torch.allclose(both["recon_hard"][1], want, rtol=1e-4, atol=1e-6)
    assert torch.allclose(both["recon"][1], err.mean(dim=1)[keep].mean(), rtol=1e-4, atol=1e-6)


def test_hard_pixel_fraction_option_sets_how_many_pixels_count():
    method, nets, batch, ctx, got, out, keep = _recon_variant("recon_hard", 4.0, unknown=2, seed=9,
                                                              recon_hard_frac=0.25)
    err = (out - batch.labeled).abs().mean(dim=1).flatten(1)
    want = err.sort(dim=1, descending=True).values[:, :64].mean(dim=1)[keep].mean()  # 256 / 4
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    assert [hard_pixel_count(256, f) for f in (0.05, 0.25, 1.0, 1e-6)] == [13, 64, 256, 1]
    for bad in (0, 1.5):
        with pytest.raises(UserError, match=rf"^recon_hard_frac must be in \(0, 1\], got {float(bad)}$"):
            _setup(extra={"recon_hard": 1.0, "recon_hard_frac": bad})


def test_l2_norm_loss_is_plain_norm_with_mask():
    pred = torch.tensor([[3.0, 4.0], [1.0, 1.0]])
    target = torch.zeros(2, 2)
    assert torch.isclose(l2_norm_loss(pred, target), torch.tensor((5.0 + 2**0.5) / 2), atol=1e-6)
    mask = torch.tensor([[True, False], [True, True]])
    assert torch.isclose(l2_norm_loss(pred, target, mask), torch.tensor((3.0 + 2**0.5) / 2), atol=1e-6)


@pytest.mark.parametrize("method,eta", [("semi", 0.01), ("info", 0.0), ("semi", 1.0)])
def test_training_steps_move_parameters(tmp_path, method, eta):
    cfg = make_config("tiny", method=method, labeled_fraction=eta, r1_interval=2)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in trainer.nets.items()}
    for _ in range(3):
        stats = trainer.train_one_step()
        assert all(np.isfinite(v) for v in stats.values())
    assert "D/r1" in stats or trainer.step % 2 == 1
    for k, n in trainer.nets.items():
        moved = sum(not torch.equal(a, b) for a, b in zip(before[k], n.parameters()))
        assert moved > 0.9 * len(before[k]), k
    # the EMA generator follows but lags
    ema_p = next(trainer.ema["G"].parameters())
    assert not torch.equal(ema_p, next(trainer.nets["G"].parameters()))


# --- the optional pair head (cond_gan > 0, not in SPEC.md) --------------------------------
def test_pair_head_routing():
    cfg, method, nets, batch, ctx = _setup(cond_gan=2.0)
    D = nets["D"]
    pair = list(D.cond_embed.parameters()) + list(D.cond_out.parameters())

    def pair_got():
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in pair)

    terms = method.d_phase_terms(ctx, nets, batch, do_r1=True)
    assert set(terms) == {"gan", "sup", "cond", "sr", "r1"} and terms["cond"][0] == 2.0
    r = _reached(terms["cond"][1], nets)
    assert not r["G"] and r["D"] and not r["E_head"] and not r["D_out"]  # never G, never E's head
    assert pair_got()
    _reached(terms["r1"][1], nets)
    assert pair_got()  # R1 covers the pair head on the labelled real pairs
    _reached(terms["gan"][1], nets)
    assert not pair_got()  # the unconditional loss leaves the pair head alone

    set_requires_grad(D, False)
    terms = method.g_phase_terms(ctx, nets, batch)
    assert set(terms) == {"gan", "unsup", "cond", "sr"}
    r = _reached(terms["cond"][1], nets)
    assert r["G"] and not r["D"]


def test_pair_head_off_by_default_and_unknown_factors_count_nothing():
    _, _, nets, _, _ = _setup()
    assert nets["D"].cond_embed is None  # the paper's D: no pair head
    with pytest.raises(ValueError, match="no conditional head"):
        nets["D"].heads(torch.zeros(2, 1, 16, 16), cond_codes=torch.zeros(2, 5))
    _, _, nets, batch, _ = _setup(cond_gan=1.0)
    D = nets["D"].eval()
    x, c = batch.labeled[:4], batch.labeled_codes[:4]
    known = torch.ones_like(c, dtype=torch.bool)
    known[:, 1] = False
    other = c.clone()
    other[:, 1] = 1.0 - other[:, 1]  # changing an unknown factor changes nothing
    a = D.heads(x, need_logits=False, need_codes=False, cond_codes=c, cond_known=known)[2]
    b = D.heads(x, need_logits=False, need_codes=False, cond_codes=other, cond_known=known)[2]
    torch.testing.assert_close(a, b)
    other[:, 0] = 1.0 - other[:, 0]  # changing a known one does
    assert not torch.allclose(a, D.heads(x, need_logits=False, need_codes=False, cond_codes=other, cond_known=known)[2])


@pytest.mark.parametrize("method", ["info", "semi-fine", "encoder-only"])
def test_pair_head_only_for_semi(method):
    with pytest.raises(UserError, match="--cond-gan needs --method semi"):
        make_config("tiny", method=method, labeled_fraction=0.0 if method == "info" else 0.01, cond_gan=1.0)


# --- E as a classifier (code_head = classify), fake classes, a plain generator ---------------
def test_classifier_head_losses_and_reading():
    import torch.nn.functional as F
    cfg, method, nets, batch, ctx = _setup(code_head="classify")
    sizes = [int(m) for m in method.factor_sizes]
    D = nets["D"]
    assert D.code_head.weight.shape[0] == sum(sizes)
    out = D.encode(batch.labeled)
    # L_sup = cross-entropy of each factor's softmax against its value, mean over factors
    want = torch.stack([F.cross_entropy(chunk, (batch.labeled_codes[:, k] * (m - 1)).round().long(), reduction="none")
                        for k, (chunk, m) in enumerate(zip(out.split(sizes, dim=1), sizes))], dim=1).mean()
    torch.testing.assert_close(method._code_loss(out, batch.labeled_codes, batch.labeled_mask), want)
    # the reading is the arg-max value's code, on the grid
    read = method.encode(nets, batch.labeled)
    for k, m in enumerate(sizes):
        torch.testing.assert_close(read[:, k], out.split(sizes, dim=1)[k].argmax(dim=1).float() / (m - 1))
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert set(terms) == {"gan", "sup", "sr"}
    assert _reached(terms["sup"][1], nets) == {"G": False, "D": True, "E_head": True, "D_out": False}
    set_requires_grad(D, False)
    terms = method.g_phase_terms(ctx, nets, batch)
    r = _reached(terms["unsup"][1], nets)
    assert r["G"] and not r["D"]


def test_fake_classes_term_and_marginal_reading():
    from semistylegan.nets.discriminator import decode_code_logits
    cfg, method, nets, batch, ctx = _setup(code_head="classify", fake_classes=0.5)
    sizes = [int(m) for m in method.factor_sizes]
    assert nets["D"].code_head.weight.shape[0] == 2 * sum(sizes)
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert terms["fake_cls"][0] == 0.5
    r = _reached(terms["fake_cls"][1], nets)
    assert r["E_head"] and not r["G"]
    # a value's probability is its real class plus its fake class: value 1 of 2 wins on the sum
    logits = torch.log(torch.tensor([[0.3, 0.25, 0.0, 0.45]]).clamp_min(1e-9))  # real 0, real 1, fake 0, fake 1
    assert decode_code_logits(logits, (2,), fake_classes=True).item() == 1.0
    assert decode_code_logits(logits[:, :2], (2,)).item() == 0.0
    # "real" and "fake" targets are different classes of the same head
    out = nets["D"].encode(batch.labeled)
    assert not torch.allclose(method._code_loss(out, batch.labeled_codes, target="real"),
                              method._code_loss(out, batch.labeled_codes, target="fake"))


def test_plain_generator_keeps_its_function_and_optimiser_betas():
    from semistylegan.nets.layers import ModulatedConv2d, store_at_runtime_scale
    cfg, method, nets, batch, ctx = _setup()
    G = nets["G"].eval()
    c, z = batch.labeled_codes[:4], torch.randn(4, cfg.z_dim)
    before = G(c, z)
    store_at_runtime_scale(G)
    torch.testing.assert_close(G(c, z), before, rtol=1e-5, atol=1e-5)
    assert all(m.weight_gain == 1.0 for m in G.modules() if isinstance(m, ModulatedConv2d))
    cfg, method, nets, _, _ = _setup(g_plain=True, g_beta1=0.9, g_beta2=0.999)
    assert all(m.weight_gain == 1.0 for m in nets["G"].modules() if isinstance(m, ModulatedConv2d))
    assert method.build_optimizers(nets)["G"].param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("overrides,message", [
    (dict(code_head="softmax"), "--code-head must be regress or classify"),
    (dict(fake_classes=1.0), "--fake-classes needs --code-head classify"),
    (dict(code_head="classify", method="encoder-only"), "--code-head classify needs --method semi, info or semi-fine"),
    (dict(g_beta1=1.0), r"g_beta1 must be in \[0, 1\)"),
    (dict(encoder="both"), "--encoder must be shared or separate"),
    (dict(encoder_noise=0.5), "--encoder-noise needs --encoder separate"),
    (dict(encoder="separate", method="beta-vae"), "--encoder separate needs --method semi, info or semi-fine"),
])
def test_new_options_refuse_bad_values(overrides, message):
    with pytest.raises(UserError, match=message):
        make_config("tiny", **overrides)


def test_separate_encoder_routing_noise_and_groups():
    from semistylegan.nets.discriminator import SeparateEncoderDiscriminator
    cfg, method, nets, batch, ctx = _setup(encoder="separate", encoder_noise=0.5, code_head="classify")
    D = nets["D"]
    assert isinstance(D, SeparateEncoderDiscriminator) and D.D.code_head is None
    sizes = [int(m) for m in method.factor_sizes]
    assert [h.out_features for h in D.E.heads] == sizes
    groups = method.build_optimizers(nets)["D"].param_groups
    assert [g["betas"] for g in groups][1] == (0.9, 0.999) and len(groups) == 2
    x = batch.labeled[:4]
    D.eval()
    torch.testing.assert_close(D.encode(x), D.encode(x))  # no noise when evaluating
    D.train()
    D.noise_generator = torch.Generator().manual_seed(1)
    a = D.encode(x)
    D.noise_generator.manual_seed(1)
    torch.testing.assert_close(D.encode(x), a)  # the noise comes from the seeded generator
    assert not torch.allclose(D.encode(x), a)
    # L_sup trains E only, the GAN loss D only
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    for p in D.parameters():
        p.grad = None
    terms["sup"][1].backward(retain_graph=True)
    assert all(p.grad is None for p in D.D.parameters()) and any(p.grad is not None for p in D.E.parameters())
    for p in D.parameters():
        p.grad = None
    terms["gan"][1].backward()
    assert all(p.grad is None for p in D.E.parameters()) and any(p.grad is not None for p in D.D.parameters())


def test_channels_last_images_keep_one_channel_data_in_channels_last():
    # A 1-channel image is contiguous in both formats; ctx.image must give it channels-last strides,
    # or D's first convolution answers in NCHW and the layers after it mix the two formats.
    from semistylegan.nets import Discriminator

    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), {}, 0, channels_last=True)
    D = Discriminator(c_dim=2, resolution=16, img_channels=1, channel_base=64, channel_max=8)
    D = D.to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 16, 16)
    img = ctx.image(x)
    torch.testing.assert_close(img, x)
    assert img.stride()[1] == 1
    assert D.fromrgb(img).is_contiguous(memory_format=torch.channels_last)
    plain = StepContext(np.random.default_rng(0), torch.device("cpu"), {}, 0, channels_last=False)
    assert plain.image(x) is x
