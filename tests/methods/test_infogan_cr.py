"""InfoGAN-CR: pair construction, schedule, one training step at 16x16."""
import numpy as np
import pytest
import torch

from semistylegan.errors import UserError
from semistylegan.methods.infogan_cr import InfoGANCR, cr_weight_at, make_pairs

from ._helpers import all_finite, changed, setup, snapshot


def test_pairs_share_exactly_the_drawn_dimension():
    c1, c2, k = make_pairs(np.random.default_rng(0), 4000, 5)
    assert c1.shape == c2.shape == (4000, 5) and k.shape == (4000,)
    rows = np.arange(4000)
    assert np.array_equal(c1[rows, k], c2[rows, k])
    other = np.ones_like(c1, dtype=bool)
    other[rows, k] = False
    assert (c1[other] != c2[other]).all()
    assert c1.min() >= -1 and c1.max() <= 1 and c2.min() >= -1 and c2.max() <= 1
    counts = np.bincount(k, minlength=5)
    assert counts.min() > 700  # k uniform over the 5 dimensions (expected 800 each)


@pytest.mark.parametrize("gap", [0.5, 1.5, 1.9])
def test_pairs_respect_the_contrastive_gap(gap):
    c1, c2, k = make_pairs(np.random.default_rng(1), 2000, 4, gap)
    rows = np.arange(2000)
    other = np.ones_like(c1, dtype=bool)
    other[rows, k] = False
    assert (np.abs(c1 - c2)[other] >= gap - 1e-6).all()
    assert np.array_equal(c1[rows, k], c2[rows, k])
    assert np.abs(c1).max() <= 1 + 1e-6 and np.abs(c2).max() <= 1 + 1e-6
    # both members of a pair are drawn symmetrically
    assert abs(np.mean(c1[other] > c2[other]) - 0.5) < 0.05
    with pytest.raises(ValueError):
        make_pairs(np.random.default_rng(0), 3, 4, 2.0)


def test_cr_weight_schedule():
    assert cr_weight_at(0.5, 2.0, 1.0, 0.0) == 0.0
    assert cr_weight_at(1.0, 2.0, 1.0, 0.0) == 2.0
    assert cr_weight_at(1.5, 2.0, 1.0, 1.0) == pytest.approx(1.0)
    assert cr_weight_at(9.0, 2.0, 1.0, 1.0) == 2.0


def test_train_step_updates_g_d_h():
    cfg, m, nets, batch, ctx = setup("infogan-cr")
    assert isinstance(m, InfoGANCR) and m.code_dim == 5 and not m.uses_labels
    before = {k: snapshot(v) for k, v in nets.items()}
    m.train_step(ctx, nets, batch)
    assert all_finite(ctx.stats), ctx.stats
    assert {"D/gan", "D/info", "H/cr", "G/cr", "G/gan", "G/info"} <= set(ctx.stats)
    for k in ("G", "D", "H"):
        assert changed(nets[k], before[k]), k
    assert m.encode(nets, batch.real).shape == (16, 5)
    img = m.generate(nets, torch.rand(2, 5), torch.randn(2, m.z_dim))
    assert img.shape == (2, 1, 16, 16)


def test_without_cr_weight_h_is_not_trained_and_g_ignores_it():
    cfg, m, nets, batch, ctx = setup("infogan-cr", cr_weight=0)
    h0 = snapshot(nets["H"])
    g0 = snapshot(nets["G"])
    m.train_step(ctx, nets, batch)
    assert not changed(nets["H"], h0) and changed(nets["G"], g0)
    assert "G/cr" not in ctx.stats and ctx.stats["cr_weight"] == 0.0


def test_bad_options():
    with pytest.raises(UserError, match=r"^--cr-gap must be < 2.0, got 2.5$"):
        setup("infogan-cr", cr_gap=2.5)
    with pytest.raises(UserError, match=r"^InfoGAN-CR needs latent_dim >= 2 \(H classifies the shared code\), got 1$"):
        setup("infogan-cr", latent_dim=1)
