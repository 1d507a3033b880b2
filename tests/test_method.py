"""Loss routing of Semi-/Info-StyleGAN (SPEC.md eqs 1-7) and a few real training steps."""
import numpy as np
import pytest
import torch

from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.methods import Batch, StepContext, build_method
from semistylegan.methods.base import l2_norm_loss, set_requires_grad
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
    assert cfg.weights == {"gamma_G": 1.0, "gamma_E": 0.0, "beta": 1.0, "alpha": 1.0}
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


def test_info_stylegan_weights_and_terms():
    cfg, method, nets, batch, ctx = _setup(method="info", labeled_fraction=0.0, gamma=2.0)
    assert cfg.weights == {"gamma_G": 2.0, "gamma_E": 2.0, "beta": 0.0, "alpha": 0.0}
    assert not method.uses_labels
    terms = method.d_phase_terms(ctx, nets, batch, do_r1=False)
    assert set(terms) == {"gan", "unsup"}


@pytest.mark.parametrize("method", ["semi", "info", "encoder-only"])
def test_unknown_set_option_is_refused(method):
    from semistylegan.errors import UserError
    cfg = make_config("tiny", method=method, labeled_fraction=0.0 if method == "info" else 0.01,
                      extra={"gama": "3"})
    with pytest.raises(UserError, match=rf"^{method}: unknown option\(s\) gama; it takes none"):
        build_method(cfg, make_dataset("dsprites", 16).info())


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
