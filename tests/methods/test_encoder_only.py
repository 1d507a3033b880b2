"""Encoder-only and Encoder-only with MixUp: labelled data only, MixUp between labelled pairs."""
import numpy as np
import pytest
import torch

from semistylegan.errors import UserError
from semistylegan.methods.encoder_only import EncoderMixup, EncoderOnly, labeled_pairs

from ._helpers import all_finite, changed, setup, snapshot


@pytest.mark.parametrize("name,cls,terms", [("encoder-only", EncoderOnly, {"E/sup"}),
                                            ("encoder-mixup", EncoderMixup, {"E/sup", "E/sr"})])
def test_train_step(name, cls, terms):
    cfg, m, nets, batch, ctx = setup(name)
    assert isinstance(m, cls) and m.uses_labels and not m.has_generator
    before = snapshot(nets["E"])
    head = [p.detach().clone() for p in nets["E"].out.parameters()]
    m.train_step(ctx, nets, batch)
    # the losses, and the count of non-finite gradient values (none here)
    assert all_finite(ctx.stats) and set(ctx.stats) == terms | {"E/nonfinite_grads"}
    assert ctx.stats["E/nonfinite_grads"] == 0
    assert changed(nets["E"], before)
    # the real/fake head is never trained
    assert all(torch.equal(p, q) for p, q in zip(nets["E"].out.parameters(), head))
    assert m.encode(nets, batch.real).shape == (16, 5)


def test_real_batch_is_not_used():
    """Only the labelled batch matters: replacing the real images changes nothing."""
    outs = []
    for scramble in (False, True):
        cfg, m, nets, batch, ctx = setup("encoder-mixup")
        if scramble:
            batch.real = torch.rand_like(batch.real)
        m.train_step(ctx, nets, batch)
        outs.append(torch.cat([p.detach().flatten() for p in nets["E"].parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_mixup_between_labelled_pairs():
    cfg, m, nets, batch, ctx = setup("encoder-mixup")
    x_mix, c_mix, m_mix, lam_used, partner_used = m.mix(ctx, batch)
    # replay the draws: lambda first, then the partner keys
    rng = np.random.default_rng(0)
    lam = rng.beta(cfg.mixup_xi, cfg.mixup_xi, size=16).astype(np.float32)
    lam = torch.from_numpy(np.maximum(lam, 1 - lam))
    partner = torch.from_numpy(labeled_pairs(rng.random(16)))
    assert sorted(partner.tolist()) == list(range(16))
    c, x = batch.labeled_codes, batch.labeled
    assert torch.allclose(c_mix, lam[:, None] * c + (1 - lam[:, None]) * c[partner])
    assert torch.allclose(x_mix, lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner])
    assert (lam >= 0.5).all()
    # a mixed code is nearer its own image's code than the partner's
    assert ((c_mix - c).abs() <= (c_mix - c[partner]).abs() + 1e-6).all()
    assert m_mix.all()


def test_needs_labels():
    with pytest.raises(UserError):
        setup("encoder-only", labeled_fraction=0.0)


def test_quick_preset_matches_semistylegan_encoder():
    """The CPU study compares Encoder-only with Semi-StyleGAN at equal architecture: the
    encoder-quick32 E must have exactly the parameter shapes of dsprites-quick's D/E and the
    same numerics switches."""
    from semistylegan.config import make_config
    from semistylegan.methods import build_method

    info = {"channels": 1, "factors": {"names": ["a", "b", "c"], "sizes": [3, 6, 40]}}
    semi_cfg = make_config("dsprites-quick", method="semi")
    enc_cfg = make_config("encoder-quick32", method="encoder-only", labeled_fraction=0.01)
    for key in ("resolution", "channel_base", "channel_max", "mbstd_group", "bf16", "channels_last"):
        assert getattr(semi_cfg, key) == getattr(enc_cfg, key), key
    d = build_method(semi_cfg, info).build_networks()["D"]
    e = build_method(enc_cfg, info).build_networks()["E"]
    assert [(n, p.shape) for n, p in d.named_parameters()] == [(n, p.shape) for n, p in e.named_parameters()]


def test_ctrl_encoder_is_semistylegans():
    """encoder-ctrl32's E is dsprites-ctrl's: the same modules, Adam groups and, on one labelled
    batch with the same weights and the same input noise, the same L_sup (classifier head)."""
    _, semi, semi_nets, batch, semi_ctx = setup("semi", preset="dsprites-ctrl", alpha_E=0.0)
    enc_cfg, enc, enc_nets, _, enc_ctx = setup("encoder-only", preset="encoder-ctrl32")
    D, E = semi_nets["D"], enc_nets["E"]
    assert type(D) is type(E) and E.noise == D.noise == 0.5 and enc_cfg.code_head == "classify"
    assert [(n, p.shape) for n, p in D.named_parameters()] == [(n, p.shape) for n, p in E.named_parameters()]
    for a, b in zip(semi_ctx.optimizers["D"].param_groups, enc_ctx.optimizers["E"].param_groups):
        assert {k: a[k] for k in ("lr", "betas", "eps")} == {k: b[k] for k in ("lr", "betas", "eps")}
    E.load_state_dict(D.state_dict())
    D.reseed_noise(123, torch.device("cpu"))
    E.reseed_noise(123, torch.device("cpu"))
    sup_semi = semi.d_phase_terms(semi_ctx, semi_nets, batch, do_r1=False)["sup"][1]
    sup_enc = enc.terms(enc_ctx, enc_nets, batch)["sup"][1]
    assert torch.allclose(sup_semi, sup_enc, rtol=1e-5, atol=1e-6)
    # the noise is read: another seed gives another loss
    E.reseed_noise(124, torch.device("cpu"))
    assert not torch.allclose(enc.terms(enc_ctx, enc_nets, batch)["sup"][1], sup_enc)
