"""Values of the training loop: the EMA of G, and the stop after NONFINITE_PATIENCE steps in a row
with non-finite gradient values."""
import pytest
import torch

from semistylegan import train as train_module
from semistylegan.config import make_config
from semistylegan.train import Trainer, TrainingDiverged


@pytest.mark.parametrize("ema_rampup,cur_nimg,beta", [
    (0.05, 160, 0.25),                 # ramp: half-life min(500, 160 * 0.05 = 8) images: 0.5 ** (16 / 8)
    (0.05, 1_000_000, 0.5 ** (16 / 500)),  # past the ramp: half-life ema_kimg * 1000 = 500 images
    (0.0, 160, 0.5 ** (16 / 500)),     # no ramp
])
def test_ema_update_formula(tmp_path, ema_rampup, cur_nimg, beta):
    """ema <- p + beta (ema - p), beta = 0.5 ** (step images / min(ema_kimg * 1000, cur_nimg * ema_rampup));
    buffers (w_avg) are copied."""
    cfg = make_config("tiny", ema_kimg=0.5, ema_rampup=ema_rampup)
    assert cfg.batch == 16
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    G, ema = trainer.nets["G"], trainer.ema["G"]
    torch.manual_seed(1)
    with torch.no_grad():
        for p in G.parameters():
            p.add_(torch.randn_like(p))
        G.mapping.w_avg.normal_()
    before = [p.detach().clone() for p in ema.parameters()]
    trainer.cur_nimg = cur_nimg
    trainer._update_ema(cfg.batch)
    for p_ema, old, p in zip(ema.parameters(), before, G.parameters()):
        assert not torch.equal(old, p.detach())
        torch.testing.assert_close(p_ema, p.detach() + beta * (old - p.detach()), rtol=1e-5, atol=1e-6)
    assert torch.equal(ema.mapping.w_avg, G.mapping.w_avg)


def test_persistent_nonfinite_gradients_stop_the_run(tmp_path, nan_g_gradients):
    """A step whose G gradient holds NaN is counted (G/nonfinite_grads); a clean step resets the
    streak; NONFINITE_PATIENCE poisoned steps in a row raise TrainingDiverged."""
    patience = train_module.NONFINITE_PATIENCE
    assert patience == 8
    trainer = Trainer(make_config("tiny", kimg=1.0, grid_kimg=0.0), tmp_path / "run", progress=False)
    poisoned = {0, 1, 2} | set(range(4, 4 + patience))  # step 3 is clean
    trainer.method.train_step = nan_g_gradients(trainer.method.train_step, poisoned.__contains__)
    numel = next(trainer.nets["G"].parameters()).numel()
    for s in range(3 + patience):  # steps 0 .. 10: 3 poisoned, 1 clean, 7 poisoned
        stats = trainer.train_one_step()
        assert stats["G/nonfinite_grads"] == (numel if s in poisoned else 0), s
        assert stats["D/nonfinite_grads"] == 0
        assert trainer.nonfinite_streak == (s + 1 if s < 3 else 0 if s == 3 else s - 3)
    with pytest.raises(TrainingDiverged, match=rf"^gradients held non-finite values for {patience} steps in a row "
                                               rf"at step {4 + patience} \(G/nonfinite_grads\)$"):
        trainer.train_one_step()  # step 11: the 8th poisoned step in a row
    assert all(torch.isfinite(p).all() for net in trainer.nets.values() for p in net.parameters())
