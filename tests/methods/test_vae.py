"""beta-VAE, beta-TCVAE, FactorVAE: one training step at 16x16, the TC estimator, the permutation trick."""
import math

import numpy as np
import pytest
import torch

from semistylegan.errors import UserError
from semistylegan.methods.vae import BetaTCVAE, BetaVAE, FactorVAE, kl_normal, permute_dims, total_correlation_mws

from ._helpers import all_finite, changed, setup, snapshot


@pytest.mark.parametrize("name,cls", [("beta-vae", BetaVAE), ("beta-tcvae", BetaTCVAE), ("factor-vae", FactorVAE)])
def test_train_step_finite_and_updates_vae(name, cls):
    cfg, m, nets, batch, ctx = setup(name, preset="vae-cpu16")
    assert isinstance(m, cls) and not m.uses_labels
    before = snapshot(nets["vae"])
    m.train_step(ctx, nets, batch)
    assert all_finite(ctx.stats), ctx.stats
    assert {"vae/recon", "vae/kl", "vae/loss"} <= set(ctx.stats)
    assert changed(nets["vae"], before)
    for p in nets["vae"].parameters():
        assert p.grad is None  # optimizer_step clears them


def test_encode_is_the_mean_and_generate_decodes():
    cfg, m, nets, batch, ctx = setup("beta-vae", preset="vae-cpu16", latent_dim=7)
    codes = m.encode(nets, batch.real)
    assert codes.shape == (16, 7)
    assert torch.equal(codes, nets["vae"].encoder(batch.real)[0])
    assert m.z_dim == 7
    img = m.generate(nets, torch.rand(3, 5), torch.randn(3, 7))
    assert img.shape == (3, 1, 16, 16) and img.min() >= -1 and img.max() <= 1
    # the first K latents are 4c - 2, the rest are z
    z = torch.randn(2, 7)
    lat = m.codes_to_latents(torch.tensor([[0.0, 0.5, 1.0, 0.25, 0.75]] * 2), z)
    assert torch.allclose(lat[:, :5], torch.tensor([-2.0, 0.0, 2.0, -1.0, 1.0]))
    assert torch.equal(lat[:, 5:], z[:, 5:])


def test_kl_zero_at_prior():
    assert torch.allclose(kl_normal(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(4))
    assert kl_normal(torch.ones(1, 3), torch.zeros(1, 3)).item() == pytest.approx(1.5)


def test_mws_tc_identical_posteriors_and_correlation():
    m, d = 64, 4
    z = torch.randn(m, d)
    # all posteriors equal: every logsumexp over j is the log-density plus log M exactly
    tc = total_correlation_mws(z, torch.zeros(m, d), torch.zeros(m, d))
    assert tc.item() == pytest.approx(-(d - 1) * math.log(m), abs=1e-4)
    assert total_correlation_mws(z, torch.zeros(m, d), torch.zeros(m, d), dataset_size=1000).item() == pytest.approx(
        (d - 1) * math.log(1000), abs=1e-3)
    # narrow posteriors: copies of one dimension (strongly dependent) have a larger TC than independent dims
    g = torch.Generator().manual_seed(0)
    indep = torch.randn(256, d, generator=g)
    dep = indep[:, :1].repeat(1, d)
    lv = torch.full((256, d), -4.0)
    assert total_correlation_mws(dep, dep, lv) > total_correlation_mws(indep, indep, lv) + 1.0


def test_permutation_trick_permutes_each_column_independently():
    rng = np.random.default_rng(0)
    z = torch.arange(64 * 5, dtype=torch.float32).view(64, 5)  # every entry distinct
    zp = permute_dims(z, rng.random((64, 5)))
    assert zp.shape == z.shape
    for j in range(5):  # marginals preserved exactly: each column a permutation of itself
        assert torch.equal(torch.sort(zp[:, j]).values, z[:, j])
    orders = [tuple((zp[:, j] - j).div(5).long().tolist()) for j in range(5)]
    assert len(set(orders)) == 5  # independent permutations per column
    assert not torch.equal(zp, z)
    # rows are mixed: a permuted row almost never comes from a single original row
    same_row = ((zp // 5).long() == (zp[:, :1] // 5).long()).all(dim=1).float().mean()
    assert same_row < 0.2
    with pytest.raises(ValueError):
        permute_dims(z, rng.random((64, 4)))


def test_factorvae_losses_reach_only_their_networks(monkeypatch):
    cfg, m, nets, batch, ctx = setup("factor-vae", preset="vae-cpu16")
    assert set(ctx.optimizers) == {"vae", "D"}
    assert ctx.optimizers["D"] is not ctx.optimizers["vae"]
    d0, v0 = snapshot(nets["D"]), snapshot(nets["vae"])
    # VAE phase alone: the TC term goes through D, but only the VAE moves.
    monkeypatch.setattr(m, "after_vae_step", lambda *a, **k: None)
    m.train_step(ctx, nets, batch)
    assert changed(nets["vae"], v0) and not changed(nets["D"], d0)
    assert "vae/tc" in ctx.stats
    assert all(p.requires_grad for p in nets["D"].parameters())
    monkeypatch.undo()
    # Discriminator phase alone: only D moves.
    d1, v1 = snapshot(nets["D"]), snapshot(nets["vae"])
    with torch.no_grad():
        z = nets["vae"].encode(batch.real)
    m.after_vae_step(ctx, nets, batch, z)
    assert changed(nets["D"], d1) and not changed(nets["vae"], v1)
    assert np.isfinite(ctx.values()["D/loss"]) and 0 <= ctx.values()["D/acc"] <= 1


def test_bad_options():
    with pytest.raises(UserError, match=r"field vae_beta must be a number, got 'lots'$"):
        setup("beta-vae", preset="vae-cpu16", vae_beta="lots")
    with pytest.raises(UserError, match=r"^--reconstruction must be one of bernoulli, gaussian, got 'poisson'$"):
        setup("beta-vae", preset="vae-cpu16", reconstruction="poisson")
    with pytest.raises(UserError, match=r"^--factor-gamma must be >= 0.0, got -1$"):
        setup("factor-vae", preset="vae-cpu16", factor_gamma=-1)


def test_another_methods_field_is_refused():
    with pytest.raises(UserError, match=r"^--method beta-vae does not use --factor-gamma$"):
        setup("beta-vae", preset="vae-cpu16", factor_gamma=10)  # a FactorVAE field
    with pytest.raises(UserError, match=r"^--method factor-vae does not use --vae-beta, --tc-beta$"):
        setup("factor-vae", preset="vae-cpu16", vae_beta=2.0, tc_beta=3.0)
    setup("factor-vae", preset="vae-cpu16", factor_gamma=10, latent_dim=6)


def test_each_vae_takes_its_own_weight():
    assert setup("beta-vae", preset="vae-cpu16", vae_beta=8)[1].beta == 8
    assert setup("beta-tcvae", preset="vae-cpu16", tc_beta=2)[1].beta == 2
    assert setup("factor-vae", preset="vae-cpu16", factor_gamma=20)[1].gamma == 20
