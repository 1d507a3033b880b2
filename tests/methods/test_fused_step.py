"""The fused Semi-StyleGAN step (one generator pass and one D / E pass per phase over every source)
equals the step written out source by source: each loss term and the gradients it sends to the
networks, for the paper's shared-trunk E, the separate E, and Semi-StyleGAN-fine."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semistylegan.config import make_config
from semistylegan.methods import Batch, StepContext, build_method
from semistylegan.methods.base import set_requires_grad

DSPRITES_INFO = {"name": "dsprites", "resolution": 16, "channels": 1, "num_images": 737280,
                 "factors": {"names": ["shape", "scale", "orientation", "posX", "posY"], "sizes": [3, 6, 40, 32, 32]}}
SHAPES_INFO = {"name": "shapes3d", "resolution": 16, "channels": 3, "num_images": 480000,
               "factors": {"names": ["floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"],
                           "sizes": [10, 10, 10, 8, 4, 15]}}

# 6 is not a multiple of the minibatch-stddev group (4): groups of 3, which a concatenation of
# several batches would shift across sources if the groups were taken over the whole pass.
CASES = {
    "shared E (the paper's)": dict(fields=dict(batch=6, labeled_batch=6, recon=2.0), info=DSPRITES_INFO),
    "separate E, classifier": dict(fields=dict(batch=6, labeled_batch=4, encoder="separate", encoder_noise=0.0,
                                               code_head="classify", g_plain=True, recon=2.0, recon_hard=3.0),
                                   info=DSPRITES_INFO),
    "shared E, gamma_E > 0": dict(fields=dict(batch=6, labeled_batch=6, gamma_E=0.5), info=DSPRITES_INFO),
    "Semi-StyleGAN-fine": dict(fields=dict(method="semi-fine", dataset="shapes3d", batch=6, labeled_batch=6,
                                           fine_factors="floor_hue,wall_hue,object_hue", recon=2.0,
                                           code_head="classify"), info=SHAPES_INFO),
}


def _setup(fields, info):
    cfg = make_config("tiny", **fields)
    method = build_method(cfg, info)
    torch.manual_seed(0)
    nets = method.build_networks()
    gen = torch.Generator().manual_seed(1)
    c, res, n, ln = info["channels"], cfg.resolution, cfg.batch, cfg.labeled_batch
    real = torch.rand(n, c, res, res, generator=gen) * 2 - 1
    labeled = torch.rand(ln, c, res, res, generator=gen) * 2 - 1
    sizes = torch.tensor(info["factors"]["sizes"])
    codes = torch.randint(0, 1000, (ln, len(sizes)), generator=gen) % sizes / (sizes - 1)
    mask = torch.ones(ln, len(sizes), dtype=torch.bool)
    mask[0, 1] = False  # one unknown factor: that image counts for L_sup / L_sr, not for the reconstructions
    return method, nets, Batch(real, labeled, codes.float(), mask, n, ln)


def _ctx(seed):
    return StepContext(np.random.default_rng(seed), torch.device("cpu"), {}, step=0)


def _lambda(ctx, method, batch):
    lam = ctx.beta(batch.global_labeled_batch, method.cfg.mixup_xi)
    return torch.maximum(lam, 1.0 - lam)


def _mix(lam, labeled, targets, partners, partner_codes):
    """Eq (5), written out."""
    x_mix = lam[:, None, None, None] * labeled + (1 - lam[:, None, None, None]) * partners
    return x_mix, lam[:, None] * targets + (1 - lam[:, None]) * partner_codes


def _generate(method, G, ctx, batch, codes, z, source, **kwargs):
    return method._synthesize(ctx, G, codes, z, source, **kwargs)


def _reference_d_phase(method, nets, batch, seed, do_r1):
    """The D/E phase's terms with one network pass per source, drawing the same random stream."""
    G, D, w = nets["G"], nets["D"], method.w
    ctx = _ctx(seed)
    codes, z = method._draw_fakes(ctx, batch.global_batch)
    targets, known = method._label_targets(batch)
    lam = _lambda(ctx, method, batch)
    with torch.no_grad():
        fake = _generate(method, G, ctx, batch, codes, z, batch.real)
        if method.reuse_step_fakes_for_mixup:
            partners, partner_codes = fake[: batch.labeled.shape[0]], codes[: batch.labeled.shape[0]]
        else:
            raise AssertionError("covered by the fine case's own reference")
    real = batch.real.detach().requires_grad_(do_r1)
    fake_logits, fake_pred = D(fake, need_codes=w["gamma_E"] > 0)
    real_logits = D(real, need_codes=False)[0]
    terms = {"gan": F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()}
    if w["gamma_E"] > 0:
        terms["unsup"] = method._code_loss(fake_pred, codes)
    terms["sup"] = method._code_loss(D.encode(batch.labeled), targets, known)
    x_mix, c_mix = _mix(lam, batch.labeled, targets, partners, partner_codes)
    terms["sr"] = method._mix_loss(D.encode(x_mix), c_mix, lam, targets, partner_codes, known)
    if do_r1:
        (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
        terms["r1"] = grad.square().sum(dim=(1, 2, 3)).mean()
    return terms


def _reference_g_phase(method, nets, batch, seed):
    G, D, w = nets["G"], nets["D"], method.w
    ctx = _ctx(seed)
    codes, z = method._draw_fakes(ctx, batch.global_batch)
    targets, known = method._label_targets(batch)
    lam = _lambda(ctx, method, batch)
    recon_z = ctx.randn(batch.global_labeled_batch, method.z_dim) if method._recon_weights() else None
    fake = _generate(method, G, ctx, batch, codes, z, batch.real)
    n = batch.labeled.shape[0]
    partners, partner_codes = fake[:n], codes[:n]
    logits, pred = D(fake, need_codes=w["gamma_G"] > 0)
    terms = {"gan": F.softplus(-logits).mean(), "unsup": method._code_loss(pred, codes)}
    x_mix, c_mix = _mix(lam, batch.labeled, targets, partners, partner_codes)
    terms["sr"] = method._mix_loss(D.encode(x_mix), c_mix, lam, targets, partner_codes, known)
    if recon_z is not None:
        out = _generate(method, G, ctx, batch, targets, recon_z, batch.labeled)
        terms.update(method._recon_terms(batch, out, method._recon_weights()))
    return terms


def _grads(loss, params):
    return torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)


def _assert_terms_and_grads_equal(got, want, params):
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=f"term {name}")
        for g, r in zip(_grads(got[name], params), _grads(want[name], params)):
            if r is None:
                assert g is None or not g.any(), f"term {name} reaches a parameter the reference does not"
            else:
                torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5, msg=f"gradient of {name}")


@pytest.mark.parametrize("case", [c for c in CASES if c != "Semi-StyleGAN-fine"])
@pytest.mark.parametrize("do_r1", [False, True])
def test_fused_d_phase_equals_one_pass_per_source(case, do_r1):
    method, nets, batch = _setup(**CASES[case])
    set_requires_grad(nets["G"], False)
    got = {k: v for k, (_, v) in method.d_phase_terms(_ctx(7), nets, batch, do_r1=do_r1).items()}
    want = _reference_d_phase(method, nets, batch, 7, do_r1)
    _assert_terms_and_grads_equal(got, want, list(nets["D"].parameters()))


@pytest.mark.parametrize("case", [c for c in CASES if c != "Semi-StyleGAN-fine"])
def test_fused_g_phase_equals_one_pass_per_source(case):
    method, nets, batch = _setup(**CASES[case])
    set_requires_grad(nets["D"], False)
    w_avg = nets["G"].mapping.w_avg.clone()
    got = {k: v for k, (_, v) in method.g_phase_terms(_ctx(3), nets, batch).items()}
    moved = nets["G"].mapping.w_avg.clone()
    nets["G"].mapping.w_avg.copy_(w_avg)
    want = _reference_g_phase(method, nets, batch, 3)
    _assert_terms_and_grads_equal(got, want, list(nets["G"].parameters()))
    # only the prior's fakes move G's average w: the first rows of the fused pass
    codes, z = method._draw_fakes(_ctx(3), batch.global_batch)
    nets["G"].mapping.w_avg.copy_(w_avg)
    nets["G"].mapping(codes, z, update_w_avg=True)
    torch.testing.assert_close(moved, nets["G"].mapping.w_avg)


def test_fused_fine_step_equals_one_pass_per_source():
    """Semi-StyleGAN-fine generates its MixUp partners from the labelled images: the G phase's
    generator pass holds fakes, partners and reconstructions; D's code head sits mid-trunk."""
    method, nets, batch = _setup(**CASES["Semi-StyleGAN-fine"])
    G, D, w = nets["G"], nets["D"], method.w
    set_requires_grad(D, False)
    got = {k: v for k, (_, v) in method.g_phase_terms(_ctx(5), nets, batch).items()}
    ctx = _ctx(5)
    codes, z = method._draw_fakes(ctx, batch.global_batch)
    mix_codes, mix_z = method._draw_fakes(ctx, batch.global_labeled_batch)
    lam = _lambda(ctx, method, batch)
    recon_z = ctx.randn(batch.global_labeled_batch, method.z_dim)
    targets, known = method._label_targets(batch)
    fake = G(codes, z, batch.real)
    partners = G(mix_codes, mix_z, batch.labeled)
    logits = D(fake, need_codes=False)[0]
    x_mix, c_mix = _mix(lam, batch.labeled, targets, partners, mix_codes)
    want = {"gan": F.softplus(-logits).mean(),
            "unsup": method._code_loss(D.encode(fake), codes),
            "sr": method._mix_loss(D.encode(x_mix), c_mix, lam, targets, mix_codes, known)}
    want.update(method._recon_terms(batch, G(targets, recon_z, batch.labeled), method._recon_weights()))
    assert w["gamma_G"] > 0
    _assert_terms_and_grads_equal(got, want, list(G.parameters()))
    # the D phase: logits on fakes and reals, codes on labelled and mixed images, one pass
    set_requires_grad(G, False)
    set_requires_grad(D, True)
    got = {k: v for k, (_, v) in method.d_phase_terms(_ctx(6), nets, batch, do_r1=False).items()}
    ctx = _ctx(6)
    codes, z = method._draw_fakes(ctx, batch.global_batch)
    mix_codes, mix_z = method._draw_fakes(ctx, batch.global_labeled_batch)
    lam = _lambda(ctx, method, batch)
    with torch.no_grad():
        fake, partners = G(codes, z, batch.real), G(mix_codes, mix_z, batch.labeled)
    x_mix, c_mix = _mix(lam, batch.labeled, targets, partners, mix_codes)
    want = {"gan": F.softplus(D(fake, need_codes=False)[0]).mean() + F.softplus(-D(batch.real)[0]).mean(),
            "sup": method._code_loss(D.encode(batch.labeled), targets, known),
            "sr": method._mix_loss(D.encode(x_mix), c_mix, lam, targets, mix_codes, known)}
    _assert_terms_and_grads_equal(got, want, list(D.parameters()))


def test_heads_keep_minibatch_stddev_groups_within_each_source():
    """D's logits of a batch do not depend on what else shares its pass."""
    method, nets, batch = _setup(**CASES["shared E (the paper's)"])
    D = nets["D"]
    alone = D(batch.real, need_codes=False)[0]
    other = torch.randn_like(batch.real) * 3
    together = D.heads([other, batch.real], [True, True], [False, False])[1][0]
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)
    # over the whole concatenation, groups of 4 would straddle the two batches: another result
    shifted = D(torch.cat([other, batch.real]), need_codes=False)[0][6:]
    assert not torch.allclose(shifted, alone, atol=1e-4)
