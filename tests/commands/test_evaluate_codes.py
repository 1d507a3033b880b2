"""`semistylegan evaluate` reads what a method can do from its class: generator metrics only for a
generator conditioned on the factor codes, and no L2-type number (l2, every l2_gen* key) for codes
that are not identified with the factors. The metrics themselves are replaced by a stub report,
so the test checks the report's keys in a fraction of a second."""
import argparse
import json
from types import SimpleNamespace

import pytest

from semistylegan import evaluation, metrics
from semistylegan.commands import evaluate as evaluate_command
from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.methods import build_method

STUB_GENERATOR = {"mig_gen": 0.4, "l2_gen": 0.2, "l2_gen_std": 0.01, "l2_gen_mae_per_factor": [0.1] * 5,
                  "l2_gen_per_factor": [0.2] * 5}


def _evaluate(tmp_path, monkeypatch, method_name: str) -> tuple[dict, dict]:
    dataset = make_dataset("dsprites", 16)
    eta = 0.01 if method_name in ("semi", "encoder-only") else 0.0
    cfg = make_config("vae-cpu16" if method_name == "beta-vae" else "tiny", method=method_name, labeled_fraction=eta)
    method = build_method(cfg, dataset.info())
    run = SimpleNamespace(cfg=cfg, method=method, nets={}, device="cpu", dataset=lambda: dataset,
                          snapshot=tmp_path / "snapshot-00000002.pt", kimg=0.032)
    seen = {}

    def stub_evaluate_all(dataset, encode, generate, **kwargs):
        seen.update(encode=encode, generate=generate)
        report = {"encoder": {"mig": {"discrete_mig": 0.3}, "l2": {"l2": 0.5}}}
        if generate is not None:
            report["generator"] = dict(STUB_GENERATOR)
        return report

    monkeypatch.setattr(evaluation, "load_run", lambda *a, **k: run)
    monkeypatch.setattr(evaluation, "encoder_fn", lambda *a, **k: "encode")
    monkeypatch.setattr(evaluation, "generator_fn", lambda *a, **k: "generate")
    monkeypatch.setattr(metrics, "evaluate_all", stub_evaluate_all)
    out = tmp_path / f"{method_name}.json"
    args = argparse.Namespace(run_dir=str(tmp_path), out=str(out), samples=100, seed=0, skip="", inception=False,
                              oracle_steps=None, device="cpu")
    assert evaluate_command.run(args) == 0
    return json.loads(out.read_text()), seen


@pytest.mark.parametrize("method_name,conditional,identified", [("semi", True, True), ("info", True, False),
                                                                ("beta-vae", False, False),
                                                                ("encoder-only", False, True)])
def test_generator_metrics_and_l2_follow_the_method_class(tmp_path, monkeypatch, method_name, conditional, identified):
    report, seen = _evaluate(tmp_path, monkeypatch, method_name)
    assert seen["encode"] == "encode"
    assert (seen["generate"] == "generate") is conditional  # MIG-gen/L2-gen only for G(c, z) on the K factors
    if identified:
        assert report["encoder"]["l2"] == {"l2": 0.5} and "note_codes" not in report
    else:
        assert "l2" not in report["encoder"] and report["encoder"]["mig"] == {"discrete_mig": 0.3}
        assert report["note_codes"].startswith("codes are not identified with factors")
    if conditional:
        want = STUB_GENERATOR if identified else {"mig_gen": 0.4}  # every l2_gen* key goes, MIG-gen stays
        assert report["generator"] == want
    else:
        assert "generator" not in report
    assert report["run"]["method"] == method_name
