"""The command line: train/generate/traverse/evaluate, bad input, the README's commands."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from semistylegan.checkpoint import list_snapshots
from semistylegan.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--preset", "tiny", "--kimg", "0.032", "--no-progress", "--out", str(run_dir)]) == 0
    return run_dir


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one clear line, no traceback
    return err[0]


def test_train_writes_run(tiny_run):
    assert (tiny_run / "config.json").is_file() and (tiny_run / "traversal.png").is_file()
    assert list_snapshots(tiny_run)


def test_generate_and_traverse(tiny_run, tmp_path, capsys):
    from PIL import Image

    assert main(["traverse", str(tiny_run), "--out", str(tmp_path / "t.png"), "--steps", "6"]) == 0
    img = Image.open(tmp_path / "t.png")
    assert img.height >= 5 * 16 * 4  # five factor rows, 16x16 shown at 4x
    assert main(["generate", str(tiny_run), "--code", "shape=0,scale=1", "--seeds", "0-3",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").width > 4 * 64


@pytest.mark.parametrize("argv,message", [
    (["train", "--preset", "nope"], "unknown preset"),
    (["train", "--preset", "tiny", "--dataset", "nope"], "unknown dataset"),
    (["train", "--preset", "tiny", "--labeled-fraction", "1.5"], "--labeled-fraction must be <= 1.0, got 1.5"),
    (["train", "--preset", "tiny", "--labeled-fraction", "-0.1"], "--labeled-fraction must be >= 0.0, got -0.1"),
    (["train", "--preset", "tiny", "--method", "nope"], "unknown method"),
    (["train", "--preset", "tiny", "--kimg", "abc"], "invalid float"),
    (["generate", "RUN", "--code", "colour=0.5", "--out", "x.png"], "unknown factor"),
    (["generate", "RUN", "--code", "shape=1.5", "--out", "x.png"], "[0, 1]"),
    (["traverse", "RUN", "--out", "x.jpg"], ".png"),
])
def test_bad_input_one_line_exit_2(argv, message, tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(tiny_run) if a == "RUN" else a for a in argv]
    assert main(argv + (["--out", str(tmp_path / "out")] if argv[0] == "train" else [])) == 2
    assert message in _err_line(capsys)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.png").exists() and not (tmp_path / "runs").exists()


def test_resume_bad_inputs(tiny_run, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "missing")]) == 2
    assert "not a semistylegan run" in _err_line(capsys)
    assert main(["train", "--resume", str(tiny_run), "--gamma", "10"]) == 2
    assert "belongs to another config" in _err_line(capsys)
    assert main(["train", "--preset", "tiny", "--out", str(tiny_run)]) == 2
    assert "already holds a run" in _err_line(capsys)
    assert main(["train", "--resume", str(tiny_run)]) == 0  # already at its kimg: a note, nothing trained


def test_corrupt_and_truncated_snapshots(tiny_run, tmp_path, capsys):
    import shutil

    for kind in ("truncated", "garbage"):
        run_dir = tmp_path / kind
        shutil.copytree(tiny_run, run_dir)
        snap = list_snapshots(run_dir)[-1]
        data = snap.read_bytes()
        snap.write_bytes(data[: len(data) // 2] if kind == "truncated" else b"not a snapshot at all")
        before = sorted(p.name for p in run_dir.iterdir())
        assert main(["traverse", str(run_dir), "--out", str(tmp_path / f"{kind}.png")]) == 2
        assert "not a readable snapshot" in _err_line(capsys)
        assert main(["train", "--resume", str(run_dir), "--kimg", "1"]) == 2
        assert snap.name in _err_line(capsys)
        assert sorted(p.name for p in run_dir.iterdir()) == before
        assert not (tmp_path / f"{kind}.png").exists()


def test_snapshot_is_weights_only(tiny_run):
    torch.load(list_snapshots(tiny_run)[-1], weights_only=True)


def test_readme_quick_command_runs(tmp_path):
    """The README's main job (train, then evaluate), shortened with --kimg and smaller samples, runs
    as written."""
    readme = (ROOT / "README.md").read_text()
    cmds = re.findall(r"^(semistylegan train [^\n]*)$", readme, flags=re.M)
    assert cmds, "README has no 'semistylegan train' command"
    parts = [p.split() for p in cmds[0].split("&&")]
    assert [p[1] for p in parts] == ["train", "evaluate"], cmds[0]
    speed = {"train": ["--kimg", "0.064", "--no-progress"],
             "evaluate": ["--samples", "300", "--oracle-steps", "30", "--skip", "dci,beta_vae,factor_vae"]}
    outs = {}
    for part in parts:
        args = [str(tmp_path / "quick") if a.startswith("runs/") else a for a in part[1:]]
        out = subprocess.run([sys.executable, "-m", "semistylegan", *args, *speed[part[1]]],
                             capture_output=True, text=True, cwd=tmp_path, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        outs[part[1]] = out.stdout
    assert "traversal grid" in outs["train"] and (tmp_path / "quick" / "traversal.png").is_file()
    assert "MIG-gen" in outs["evaluate"] and (tmp_path / "quick" / "metrics.json").is_file()


def test_evaluate_writes_metrics_json(tiny_run, tmp_path, capsys):
    import json

    out = tmp_path / "m.json"
    assert main(["evaluate", str(tiny_run), "--out", str(out), "--samples", "300", "--oracle-steps", "30",
                 "--skip", "dci,beta_vae,factor_vae"]) == 0
    report = json.loads(out.read_text())
    assert 0.0 <= report["encoder"]["mig"]["discrete_mig"] <= 1.0
    assert report["encoder"]["l2"]["l2"] > 0
    assert "mig_gen" in report["generator"] and report["generator"]["l2_gen"] > 0
    assert report["run"]["method"] == "semi"
    printed = capsys.readouterr().out
    assert "MIG (encoder)" in printed and "MIG-gen (lowest over readers)" in printed
    assert "readers used: cnn, pixel-mlp; renderer: procedural dSprites" in printed
    assert main(["evaluate", str(tiny_run), "--skip", "nonsense"]) == 2
    assert "unknown parts" in capsys.readouterr().err
