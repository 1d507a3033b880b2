"""Semi-/Info-StyleGAN (docs/method.md, eqs 1-7): loss routing through `train_step`, the values of
the MixUp, R1, reconstruction and classifier terms, the optimiser settings, and real training steps."""
import numpy as np
import pytest
import torch

from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.errors import UserError
from semistylegan.methods import Batch, StepContext, build_method
from semistylegan.methods.base import l2_norm_loss, set_requires_grad
from semistylegan.methods.semistylegan import InfoStyleGAN, hard_pixel_count
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


def _spy_on_optimizer_steps(ctx, nets):
    """Wrap ctx.optimizer_step: before each real step, backpropagate its loss alone and record
    which networks' parameters received a non-zero gradient, and which parameters it steps."""
    calls = []
    real_step = ctx.optimizer_step

    def spy(name, loss, params):
        for net in nets.values():
            net.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        reached = {k: any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
                   for k, net in nets.items()}
        reached["E_head"] = any(p.grad is not None and p.grad.abs().sum() > 0
                                for p in nets["D"].code_head.parameters())
        calls.append((name, reached, {id(p) for p in params}))
        for net in nets.values():
            net.zero_grad(set_to_none=True)
        real_step(name, loss, params)

    ctx.optimizer_step = spy
    return calls


def test_train_step_routes_each_phase_to_its_own_networks():
    """Through method.train_step itself (the routing is its job, not the test's): the D/E phase
    reaches D and E's head and never G; the G phase reaches G and never D or E."""
    cfg, method, nets, batch, ctx = _setup(gamma_E=1.0, r1_interval=1)  # every D/E term on, R1 included
    calls = _spy_on_optimizer_steps(ctx, nets)
    method.train_step(ctx, nets, batch)
    assert [c[0] for c in calls] == ["D", "G"]
    (_, d_reached, d_params), (_, g_reached, g_params) = calls
    assert d_reached == {"G": False, "D": True, "E_head": True}
    assert g_reached == {"G": True, "D": False, "E_head": False}
    assert d_params == {id(p) for p in nets["D"].parameters()}
    assert g_params == {id(p) for p in nets["G"].parameters()}
    assert {"D/gan", "D/unsup", "D/sup", "D/sr", "D/r1", "G/gan", "G/unsup", "G/sr"} <= set(ctx.stats)
    # after the step both networks take gradients again (the next step's D phase needs D's)
    assert all(p.requires_grad for net in nets.values() for p in net.parameters())


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
    with pytest.raises(UserError, match=r"^--alpha-e must be >= 0.0, got -1$"):
        make_config("tiny", alpha_E=-1.0)


def test_info_stylegan_weights_and_terms():
    cfg, method, nets, batch, ctx = _setup(method="info", labeled_fraction=0.0, gamma=2.0)
    assert cfg.weights == {"gamma_G": 2.0, "gamma_E": 2.0, "beta": 0.0, "alpha": 0.0, "alpha_E": 0.0}
    assert type(method) is InfoStyleGAN and method.display_name == "Info-StyleGAN"
    assert not method.uses_labels and not method.identified_codes and method.conditional_generator
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert set(terms) == {"gan", "unsup"}
    set_requires_grad(nets["D"], False)
    assert set(method.g_phase_terms(ctx, nets, batch)) == {"gan", "unsup"}  # no L_sr without labels


def test_reconstruction_option_reaches_g_only_and_equals_l1_to_the_labelled_images():
    cfg, method, nets, batch, ctx = _setup(recon=3.0)
    terms = method.g_phase_terms(ctx, nets, batch)  # D left trainable: the term itself must not reach it
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
    assert float(got.detach()) > 0
    # Info-StyleGAN has no labels to reconstruct; a bad weight is refused
    with pytest.raises(UserError, match=r"^--method info does not use --recon$"):
        make_config("tiny", method="info", labeled_fraction=0.0, recon=1.0)
    with pytest.raises(UserError, match=r"^--recon must be >= 0.0, got -2$"):
        make_config("tiny", recon=-2)


def _recon_variant(option: str, weight: float, unknown: int, seed: int, **more):
    """One reconstruction option alone (plus the settings in `more`): its G-phase term (checked to
    reach G only), and G's output for the same z, replayed with the option off (z is drawn after
    the other terms')."""
    cfg, method, nets, batch, ctx = _setup(**{option: weight, **more})  # D left trainable
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


def test_hard_pixel_reconstruction_option_averages_each_images_worst_twentieth():
    method, nets, batch, ctx, got, out, keep = _recon_variant("recon_hard", 4.0, unknown=2, seed=9)
    err = (out - batch.labeled).abs().mean(dim=1).flatten(1)  # (N, 16*16) pixel errors
    worst = err.sort(dim=1, descending=True).values[:, :13]  # round(256 / 20) = 13 pixels
    want = worst.mean(dim=1)[keep].mean()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-6)
    # the worst pixels weigh more than the mean over all of them (the plain recon term)
    assert float(want) > float(err[keep].mean()) * 1.5
    # both terms on: one G pass, each term the value it has alone
    method.recon, method.recon_hard = 1.0, 4.0
    both = method.g_phase_terms(StepContext(np.random.default_rng(9), torch.device("cpu"), ctx.optimizers, 0),
                                nets, batch)
    assert {k: v[0] for k, v in both.items() if k.startswith("recon")} == {"recon": 1.0, "recon_hard": 4.0}
    assert torch.allclose(both["recon_hard"][1], want, rtol=1e-4, atol=1e-6)
    assert torch.allclose(both["recon"][1], err.mean(dim=1)[keep].mean(), rtol=1e-4, atol=1e-6)
    # a fixed 5% of the pixels, at least one
    assert [hard_pixel_count(n) for n in (256, 1024, 4096, 10, 1)] == [13, 51, 205, 1, 1]


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
    r1_steps = []
    for _ in range(3):
        stats = trainer.train_one_step()
        assert all(np.isfinite(v) for v in stats.values())
        r1_steps.append("D/r1" in stats)
    assert r1_steps == [True, False, True]  # lazy R1 with r1_interval = 2: steps 0 and 2, not step 1
    for k, n in trainer.nets.items():
        moved = sum(not torch.equal(a, b) for a, b in zip(before[k], n.parameters()))
        assert moved > 0.9 * len(before[k]), k
    # the EMA generator follows but lags
    ema_p = next(trainer.ema["G"].parameters())
    assert not torch.equal(ema_p, next(trainer.nets["G"].parameters()))


# --- E as a classifier (code_head = classify), a plain generator, a separate E ---------------
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
    # G's L_unsup reads G's images through E (D's freezing in train_step keeps it out of E:
    # test_train_step_routes_each_phase_to_its_own_networks)
    terms = method.g_phase_terms(ctx, nets, batch)
    r = _reached(terms["unsup"][1], nets)
    assert r["G"] and r["E_head"] and not r["D_out"]


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
    (dict(code_head="softmax"), "--code-head must be one of regress, classify, got 'softmax'"),
    (dict(g_plain=True, method="encoder-only"), "--method encoder-only does not use --g-plain"),
    (dict(g_beta1=1.0), r"--g-beta1 must be < 1.0, got 1"),
    (dict(encoder="both"), "--encoder must be one of shared, separate, got 'both'"),
    (dict(encoder_noise=0.5), "--encoder-noise needs --encoder separate"),
    (dict(encoder="separate", method="beta-vae"), "--method beta-vae does not use --encoder"),
])
def test_new_options_refuse_bad_values(overrides, message):
    with pytest.raises(UserError, match="^" + message + "$"):
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


# --- values of the terms and of the optimiser settings ---------------------------------------
def test_mixup_term_replays_the_random_stream_of_eqs_5_and_6():
    """L_sr of the D/E phase by hand: replay the step's numpy stream (c' on the factor grid,
    z ~ N(0, I), lambda ~ Beta(xi, xi)), take lambda' = max(lambda, 1 - lambda), mix the
    labelled images with the step's own fakes (eq 5) and average ||E(x~) - c~|| over the known
    factors (eq 6)."""
    xi = 0.4  # not the default: the test sees whether mixup_xi reaches the draw
    cfg, method, nets, batch, ctx = _setup(mixup_xi=xi)
    batch.labeled_mask[0, 1] = False  # an unknown factor counts nothing in c~'s norm
    batch.labeled_mask[3, 4] = False
    terms = method.d_phase_terms(StepContext(np.random.default_rng(11), torch.device("cpu"), ctx.optimizers, 0),
                                 nets, batch, do_r1=False)
    assert terms["sr"][0] == cfg.weights["alpha_E"] == 1.0

    rng = np.random.default_rng(11)
    sizes = np.asarray(make_dataset("dsprites", 16).info()["factors"]["sizes"])
    n = cfg.batch
    classes = rng.integers(0, sizes, size=(n, len(sizes)))
    fake_codes = torch.from_numpy((classes / (sizes - 1)).astype(np.float32))
    z = torch.from_numpy(rng.standard_normal((n, cfg.z_dim), dtype=np.float32))
    lam = torch.from_numpy(rng.beta(xi, xi, size=n).astype(np.float32))
    lam = torch.where(lam > 0.5, lam, 1.0 - lam)  # lambda' = max(lambda, 1 - lambda)
    assert (lam >= 0.5).all() and float(lam.std()) > 0.01
    with torch.no_grad():
        fake = nets["G"](fake_codes, z)
        x_mix = lam.view(-1, 1, 1, 1) * batch.labeled + (1 - lam.view(-1, 1, 1, 1)) * fake
        c_mix = lam.view(-1, 1) * batch.labeled_codes + (1 - lam.view(-1, 1)) * fake_codes
        diff = (nets["D"].encode(x_mix) - c_mix) * batch.labeled_mask.float()
        want = diff.square().sum(dim=1).sqrt().mean()
    torch.testing.assert_close(terms["sr"][1].detach(), want, rtol=1e-5, atol=1e-6)


def test_r1_weight_and_penalty_are_the_mean_squared_gradient_norm():
    cfg, method, nets, batch, ctx = _setup(r1_gamma=3.0, r1_interval=4)
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=True)
    weight, penalty = terms["r1"]
    assert weight == 3.0 / 2 * 4  # r1_gamma / 2, times the interval of the lazy regularisation
    # by hand: d(sum of D's logits on the reals) / d(each real image), squared, summed per image
    real = batch.real.clone().requires_grad_(True)
    logits, _ = nets["D"](real, need_codes=False)
    (grad,) = torch.autograd.grad(logits.sum(), real)
    per_image = (grad ** 2).flatten(1).sum(dim=1)
    assert float(per_image.min()) > 0
    torch.testing.assert_close(penalty.detach(), per_image.mean(), rtol=1e-5, atol=1e-8)
    # no R1 without do_r1, nor with r1_gamma = 0 in a training step
    assert "r1" not in method.d_phase_terms(ctx, nets, batch, do_r1=False)
    cfg, method, nets, batch, ctx = _setup(r1_gamma=0.0, r1_interval=1)
    method.train_step(ctx, nets, batch)
    assert "D/gan" in ctx.stats and "D/r1" not in ctx.stats


@pytest.mark.parametrize("encoder", ["shared", "separate"])
def test_optimiser_settings(encoder):
    """D's Adam: lr = cfg.lr and betas (0, 0.99) whatever r1_interval is (R1 is part of the ordinary
    D step, so the lazy-R1 correction of a separate R1 step does not apply); G's betas from the
    config; a separate E in a group of its own with Adam's usual betas."""
    cfg, method, nets, _, _ = _setup(lr=0.003, r1_interval=16, g_beta1=0.5, g_beta2=0.9, encoder=encoder)
    opts = method.build_optimizers(nets)
    d_groups = opts["D"].param_groups
    assert d_groups[0]["lr"] == 0.003 and d_groups[0]["betas"] == (0.0, 0.99)
    (g_group,) = opts["G"].param_groups
    assert g_group["lr"] == 0.003 and g_group["betas"] == (0.5, 0.9)
    assert {id(p) for p in g_group["params"]} == {id(p) for p in nets["G"].parameters()}
    D = nets["D"]
    if encoder == "shared":
        assert len(d_groups) == 1
        assert {id(p) for p in d_groups[0]["params"]} == {id(p) for p in D.parameters()}
    else:
        assert len(d_groups) == 2
        assert {id(p) for p in d_groups[0]["params"]} == {id(p) for p in D.D.parameters()}
        assert {id(p) for p in d_groups[1]["params"]} == {id(p) for p in D.E.parameters()}
        assert d_groups[1]["lr"] == 0.003 and d_groups[1]["betas"] == (0.9, 0.999)


def test_warmup_steps_train_g_alone_on_the_reconstruction():
    """For the steps of its first `warmup_kimg` G alone learns the mean squared error between G(c, z)
    and the labelled images (D and E unchanged); from then on the normal step runs."""
    cfg, method, nets, batch, ctx = _setup(warmup_kimg=0.032, alpha=0.0, beta=0.0)
    assert cfg.labeled_batch == 16 and method.warmup_steps == 2  # 32 images: two steps of 16
    assert method.uses_labels  # the warm-up alone draws labelled batches
    # the term: the same z draw, G on the labelled codes, the mean squared pixel error
    z = torch.from_numpy(np.random.default_rng(0).standard_normal((batch.global_labeled_batch, cfg.z_dim),
                                                                  dtype=np.float32))
    with torch.no_grad():
        want = (nets["G"](batch.labeled_codes, z) - batch.labeled).square().mean()
        got = method.warmup_terms(ctx, nets, batch)["warmup"][1]
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    for step, d_moves in ((0, False), (1, False), (2, True)):
        g0 = [p.detach().clone() for p in nets["G"].parameters()]
        d0 = [p.detach().clone() for p in nets["D"].parameters()]
        ctx = StepContext(np.random.default_rng(step), torch.device("cpu"), ctx.optimizers, step=step)
        method.train_step(ctx, nets, batch)
        assert any(not torch.equal(p, q) for p, q in zip(nets["G"].parameters(), g0)), step
        assert any(not torch.equal(p, q) for p, q in zip(nets["D"].parameters(), d0)) == d_moves, step
        assert ("G/warmup" in ctx.stats) == (not d_moves), step
        # the warm-up has an Adam of its own: G's GAN Adam starts fresh after it
        assert bool(ctx.optimizers["G"].state) == d_moves and bool(ctx.optimizers["G_warmup"].state), step


def test_warmup_steps_is_for_semi_only():
    with pytest.raises(UserError, match="--method semi-fine does not use --warmup-kimg"):
        make_config("tiny", method="semi-fine", warmup_kimg=1)
    with pytest.raises(UserError, match="--method info does not use --warmup-kimg"):
        make_config("tiny", method="info", warmup_kimg=1)


def test_warmup_steps_draw_their_own_labelled_batch_and_no_reals(tmp_path, monkeypatch):
    """A warm-up step is given a labelled batch (8 images) and no reals, and counts the 8 images;
    40 images of warm-up are 5 such steps, then GAN steps of 16 reals and 8 labelled images."""
    cfg = make_config("tiny", warmup_kimg=0.04, labeled_batch=8, kimg=0.072, grid_kimg=0.0, metrics_kimg=0.0,
                      snapshot_kimg=1.0)
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    seen, real_step = [], trainer.method.train_step

    def step(ctx, nets, batch):
        seen.append((ctx.step, None if batch.real is None else len(batch.real), len(batch.labeled), trainer.cur_nimg))
        real_step(ctx, nets, batch)

    monkeypatch.setattr(trainer.method, "train_step", step)
    trainer.run()
    assert seen == [(s, None, 8, 8 * s) for s in range(5)] + [(5, 16, 8, 40), (6, 16, 8, 56)]
    assert trainer.cur_nimg == 72
