"""TrainConfig's fields (config.opt): loading old configs (from_dict), type and range checks
(validate), and the refusal of a method-specific field the method does not use (make_config)."""
import dataclasses
import json
from pathlib import Path

import pytest

from semistylegan.config import REMOVED_FIELDS, TrainConfig, make_config, method_fields
from semistylegan.errors import UserError
from semistylegan.methods import METHOD_CLASSES, method_class

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _old(name: str) -> dict:
    """A config.json written by commit eb413d5 (before issue 20): method options under `extra`,
    the removed switches at their defaults."""
    return json.loads((FIXTURES / name).read_text())


def test_old_config_with_extra_and_removed_fields_loads():
    old = _old("config-eb413d5.json")
    assert old["extra"] == {"recon": 20, "recon_hard": 100} and old["d_beta2"] == 0.99 and "fake_classes" in old
    cfg = TrainConfig.from_dict(old, source="config.json")
    assert cfg.recon == 20.0 and cfg.recon_hard == 100.0 and type(cfg.recon) is float
    d = cfg.to_dict()
    assert "extra" not in d and not set(REMOVED_FIELDS) & set(d)
    # everything else as saved, and the loaded config is valid as it stands
    kept = {k: v for k, v in old.items() if k != "extra" and k not in REMOVED_FIELDS}
    assert {k: d[k] for k in kept} == kept
    cfg.validate()


def test_old_semi_fine_config_loads_its_options_as_fields():
    cfg = TrainConfig.from_dict(_old("config-eb413d5-semi-fine.json"), source="config.json").validate()
    assert cfg.method == "semi-fine" and cfg.fine_factors == "floor_hue,wall_hue"  # a list became a string
    assert cfg.coarse_skip is True and cfg.hue_jitter is True and cfg.recon_hard == 200.0
    assert not hasattr(cfg, "coarse_gray") and not hasattr(cfg, "extra")


def test_removed_fields_and_their_off_values():
    assert REMOVED_FIELDS == {"d_plain": False, "d_beta1": 0.0, "d_beta2": 0.99, "fake_classes": 0.0, "cond_gan": 0.0,
                              "coarse_inject": False, "recon_edges": 0.0, "coarse_gray": False, "skip_gray": False,
                              "recon_hard_frac": 0.05}
    assert not set(REMOVED_FIELDS) & {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("key,value", [("fake_classes", 0.5), ("cond_gan", 1.0), ("d_plain", True),
                                       ("d_beta1", 0.9), ("recon_hard_frac", 0.1)])
def test_old_config_that_used_a_removed_switch_is_refused_in_one_line(key, value):
    old = _old("config-eb413d5.json")
    old[key] = value
    with pytest.raises(UserError) as e:
        TrainConfig.from_dict(old, source="runs/x/config.json")
    assert str(e.value) == (f"runs/x/config.json: uses {key} = {value!r}, an option this version no longer has "
                            "(docs/negative-results.md)")
    # in `extra` too (the fine options lived there)
    old = _old("config-eb413d5-semi-fine.json")
    old["extra"]["coarse_gray"] = True
    with pytest.raises(UserError, match=r"^c\.json: uses coarse_gray = True, an option this version no longer has"):
        TrainConfig.from_dict(old, source="c.json")


@pytest.mark.parametrize("key,value,message", [
    ("batch", "32", "field batch must be an integer, got '32'"),
    ("batch", 32.0, "field batch must be an integer, got 32.0"),
    ("g_plain", 1, "field g_plain must be true or false, got 1"),
    ("lr", True, "field lr must be a number, got True"),
    ("lr", "0.002", "field lr must be a number, got '0.002'"),
    ("method", 3, "field method must be a string, got 3"),
    ("beta", "high", "field beta must be a number, got 'high'"),
])
def test_wrong_type_field_is_refused_in_one_line(key, value, message):
    d = TrainConfig().to_dict()
    d[key] = value
    with pytest.raises(UserError) as e:
        TrainConfig.from_dict(d, source="f.json")
    assert str(e.value) == f"f.json: {message}"


def test_ints_stand_for_floats_and_none_for_unset_weights():
    d = TrainConfig().to_dict()
    d.update(lr=1, beta=None, gamma_G=2, data_path=None)
    cfg = TrainConfig.from_dict(d)
    assert cfg.lr == 1.0 and type(cfg.lr) is float and cfg.gamma_G == 2.0 and type(cfg.gamma_G) is float
    assert cfg.beta is None and cfg.data_path is None


def test_unknown_fields_and_a_bad_extra_are_refused():
    d = TrainConfig().to_dict()
    d.update(zeta=1, alpha_e=0)
    with pytest.raises(UserError, match=r"^f\.json: unknown field\(s\): alpha_e, zeta$"):
        TrainConfig.from_dict(d, source="f.json")
    with pytest.raises(UserError, match=r"^f\.json: 'extra' must be a table of options$"):
        TrainConfig.from_dict({"extra": [1, 2]}, source="f.json")
    # FactorVAE's discriminator lr was `d_lr` in extra
    cfg = TrainConfig.from_dict({"method": "factor-vae", "labeled_fraction": 0.0, "extra": {"d_lr": 3e-4}})
    assert cfg.factor_d_lr == 3e-4


@pytest.mark.parametrize("method,overrides,flags", [
    ("info", dict(beta=1.0), "--beta"),
    ("info", dict(alpha=0.0, alpha_E=0.0), "--alpha, --alpha-e"),
    ("info", dict(recon=1.0), "--recon"),
    ("semi", dict(coarse_skip=True), "--coarse-skip"),
    ("semi", dict(vae_beta=4.0), "--vae-beta"),
    ("beta-vae", dict(gamma=2.0), "--gamma"),
    ("encoder-only", dict(r1_gamma=1.0, g_plain=True), "--r1-gamma, --g-plain"),
])
def test_a_field_the_method_does_not_use_is_refused(method, overrides, flags):
    with pytest.raises(UserError) as e:
        make_config("tiny", method=method, **overrides)
    assert str(e.value) == f"--method {method} does not use {flags}"


def test_each_method_takes_the_fields_it_lists():
    """`fields` names method-specific fields only, every method-specific field belongs to some
    method, and each method accepts an explicit value (its default) for each of its fields."""
    specific = set(method_fields())
    used = set()
    defaults = TrainConfig()
    for name in METHOD_CLASSES:
        cls = method_class(name)
        assert set(cls.fields) <= specific, name
        used |= set(cls.fields)
        eta = 0.01 if cls.uses_labels else 0.0
        given = {f: getattr(defaults, f) for f in cls.fields}
        given = {f: v for f, v in given.items() if v is not None}
        dataset = "shapes3d" if name == "semi-fine" else "dsprites"
        make_config("tiny", method=name, labeled_fraction=eta, dataset=dataset, **given)
    assert used == specific
    assert {"fine_factors", "coarse_skip", "input_const", "hue_jitter"} <= set(method_class("semi-fine").fields)
    assert not {"beta", "alpha", "alpha_E", "mixup_xi", "recon", "recon_hard"} & set(method_class("info").fields)


@pytest.mark.parametrize("overrides,message", [
    (dict(kimg=float("inf")), "--kimg must be a finite number, got inf"),
    (dict(kimg=float("nan")), "--kimg must be a finite number, got nan"),
    (dict(kimg=1e-9), "--kimg 1e-09 is less than one batch of 16 images"),
    (dict(kimg=0.0), "--kimg must be > 0.0, got 0"),
    (dict(resolution=24), "--resolution must be a power of two, got 24"),
    (dict(seed=-1), "--seed must be >= 0, got -1"),
    (dict(mixup_xi=0.0), "--mixup-xi must be > 0.0, got 0"),
    (dict(g_beta2=1.0), "--g-beta2 must be < 1.0, got 1"),
    (dict(lr=float("-inf")), "--lr must be a finite number, got -inf"),
    (dict(device="tpu"), "--device must be one of auto, cpu, cuda, got 'tpu'"),
    (dict(labeled_fraction=0.0),
     "--method semi needs labels: use --labeled-fraction > 0, or --method info for eta = 0"),
])
def test_validate_checks_ranges_from_the_field_metadata(overrides, message):
    with pytest.raises(UserError) as e:
        make_config("tiny", **overrides)
    assert str(e.value) == message


def test_every_field_has_a_one_line_help():
    for f in dataclasses.fields(TrainConfig):
        help_text = f.metadata.get("help")
        assert help_text and "\n" not in help_text, f.name


def test_make_config_refuses_extra_so_no_option_slips_past_the_method_check():
    # `extra` would be merged into the fields after the "does not use" check (info ignores beta)
    with pytest.raises(UserError, match=r"^method options are config fields now"):
        make_config("tiny", method="info", labeled_fraction=0.0, extra={"beta": 1.0})
