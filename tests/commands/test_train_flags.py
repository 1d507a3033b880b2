"""`semistylegan train`'s flags come from TrainConfig's fields: one flag per field with the field's
help, `--x/--no-x` for switches; refusals are one line on stderr with exit status 2 and nothing
written."""
import argparse
import dataclasses
import json

import pytest

from semistylegan.cli import main
from semistylegan.commands import train as train_command
from semistylegan.config import TrainConfig


def _train_parser() -> argparse.ArgumentParser:
    sub = argparse.ArgumentParser().add_subparsers()
    train_command.add_parser(sub)
    return sub.choices["train"]


def _dry_run(capsys, tmp_path, *flags) -> dict:
    assert main(["train", *flags, "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert not (tmp_path / "r").exists()
    return cfg


def test_one_flag_per_field_with_its_help():
    actions = {s: a for a in _train_parser()._actions for s in a.option_strings}
    fields = [f for f in dataclasses.fields(TrainConfig) if f.name != "preset"]
    for f in fields:
        flag = "--" + f.name.replace("_", "-").lower()
        assert flag in actions, flag
        action = actions[flag]
        assert action.dest == f.name and action.default is None  # unset flags leave the preset's value
        assert action.help.startswith(f.metadata["help"].replace("%", "%%")), flag
        if isinstance(f.default, bool):
            assert isinstance(action, argparse.BooleanOptionalAction) and actions["--no-" + flag[2:]] is action
        if f.metadata["choices"]:
            assert tuple(action.choices) == f.metadata["choices"]
    assert "--set" not in actions


def test_flags_set_fields(tmp_path, capsys):
    cfg = _dry_run(capsys, tmp_path, "--preset", "tiny", "--alpha-e", "0", "--recon", "50", "--recon-hard", "7",
                   "--g-plain", "--r1-interval", "4")
    assert (cfg["alpha_E"], cfg["recon"], cfg["recon_hard"], cfg["g_plain"], cfg["r1_interval"]) == (0.0, 50.0, 7.0,
                                                                                                      True, 4)
    assert "extra" not in cfg and cfg["preset"] == "tiny"
    # a switch the preset turns on is turned off by --no-...; left out, the preset's value stays
    assert _dry_run(capsys, tmp_path, "--preset", "dsprites-ctrl")["g_plain"] is True
    assert _dry_run(capsys, tmp_path, "--preset", "dsprites-ctrl", "--no-g-plain")["g_plain"] is False
    fine = _dry_run(capsys, tmp_path, "--preset", "tiny", "--method", "semi-fine", "--dataset", "shapes3d",
                    "--fine-factors", "floor_hue,wall_hue", "--fine-input-res", "4", "--coarse-skip", "--hue-jitter")
    assert (fine["fine_factors"], fine["fine_input_res"], fine["coarse_skip"], fine["hue_jitter"],
            fine["input_const"]) == ("floor_hue,wall_hue", 4, True, True, False)


@pytest.mark.parametrize("flags,line", [
    (["--method", "info", "--beta", "1"], "--method info does not use --beta"),
    (["--method", "info", "--alpha", "0", "--alpha-e", "0"], "--method info does not use --alpha, --alpha-e"),
    (["--coarse-skip"], "--method semi does not use --coarse-skip"),
    (["--method", "beta-vae", "--labeled-fraction", "0", "--encoder", "separate"],
     "--method beta-vae does not use --encoder"),
    (["--kimg", "inf"], "--kimg must be a finite number, got inf"),
    (["--kimg", "1e-9"], "--kimg 1e-09 is less than one batch of 16 images"),
    (["--r1-interval", "0"], "--r1-interval must be >= 1, got 0"),
    (["--batch", "x"], "argument --batch: invalid int value: 'x'"),
    (["--code-head", "softmax"], "argument --code-head: invalid choice: 'softmax'"),
    (["--set", "recon=5"], "unrecognized arguments: --set recon=5"),
])
def test_refusals_are_one_line_with_exit_2(flags, line, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "tiny", *flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semistylegan: error: ") and line in err[0], err
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_resume_loads_an_old_run_directory_config(tmp_path, capsys):
    """A run directory written before issue 20 (method options under `extra`) loads for --resume."""
    from pathlib import Path

    old = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "config-eb413d5.json").read_text())
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(old))
    assert main(["train", "--resume", str(run_dir), "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["recon"] == 20.0 and cfg["recon_hard"] == 100.0 and "extra" not in cfg and "d_plain" not in cfg
    old["fake_classes"] = 0.5
    (run_dir / "config.json").write_text(json.dumps(old))
    assert main(["train", "--resume", str(run_dir), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"semistylegan: error: {run_dir / 'config.json'}: uses fake_classes = 0.5, an option this "
                   "version no longer has (docs/negative-results.md)"]
