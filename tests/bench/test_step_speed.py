"""bench/step_speed.py's variant names: `warmup:B` builds a trainer whose every step is a warm-up
step on B labelled images and no reals, the other variants turn a preset's warm-up off, and a
malformed name stops with a message that lists the grammar."""
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from semistylegan.methods.base import StepPlan

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("step_speed", REPO / "bench" / "step_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _args(**kw):
    base = dict(device="cpu", bf16=None, channels_last=None, resolution=None, batch=None, warmup=1)
    return SimpleNamespace(**{**base, **kw})


def test_warmup_variant_times_warmup_steps_on_its_labelled_batch(tmp_path):
    bench = _bench()
    trainer, _ = bench.build("tiny", "warmup:8", _args(), str(tmp_path / "w"))
    assert trainer.method.step_plan(trainer.step) == StepPlan(real=0, labeled=8, nimg=8)
    assert trainer.cur_nimg == 8  # the one untimed step counted its 8 labelled images
    spf, img_s = bench.time_round(trainer, 2)
    assert trainer.cur_nimg == 24 and spf > 0 and img_s > 0
    assert trainer.method.step_plan(trainer.step).real == 0  # still in the warm-up


def test_other_variants_turn_a_presets_warmup_off(tmp_path):
    bench = _bench()
    trainer, _ = bench.build("tiny", "full+fp32", _args(), str(tmp_path / "f"))
    cfg = trainer.cfg
    assert cfg.warmup_kimg == 0.0 and cfg.bf16 is False
    assert trainer.method.step_plan(trainer.step) == StepPlan(cfg.batch, cfg.labeled_batch, cfg.batch)


@pytest.mark.parametrize("variant", ["warmup", "warmup:0", "warmup:x", "full:8", "warmup:8+fast", "nope"])
def test_malformed_variant_names_stop_with_the_grammar(tmp_path, variant):
    bench = _bench()
    with pytest.raises(SystemExit, match=r"unknown variant .*warmup:B, each optionally \+compile, \+fp32"):
        bench.build("tiny", variant, _args(), str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
