"""`train --config FILE.toml|json`: a run's config.json passed back gives the same config; options
given on the command line override the file; dataset options reach the dataset trained on."""
import json

import numpy as np
import pytest
from PIL import Image

from semistylegan.cli import main


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("config") / "run"
    assert main(["train", "--preset", "tiny", "--kimg", "0.016", "--gamma", "2.5", "--seed", "5", "--alpha-e", "0",
                 "--out", str(run), "--quiet"]) == 0
    return run


def _dry_run(capsys, *args):
    capsys.readouterr()
    assert main(["train", *args, "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    printed.pop("run_dir")
    return printed


def test_config_json_of_a_run_round_trips(tiny_run, tmp_path, capsys):
    saved = json.loads((tiny_run / "config.json").read_text())
    assert (saved["gamma"], saved["seed"], saved["alpha_E"], saved["beta"]) == (2.5, 5, 0.0, None)  # not the defaults
    again = tmp_path / "again"
    assert main(["train", "--config", str(tiny_run / "config.json"), "--out", str(again), "--quiet"]) == 0
    assert json.loads((again / "config.json").read_text()) == saved
    assert (again / "config.json").read_text() == (tiny_run / "config.json").read_text()


def test_command_line_overrides_the_file(tiny_run, tmp_path, capsys):
    toml = tmp_path / "c.toml"
    toml.write_text('preset = "tiny"\nkimg = 2\ngamma = 0.5\nseed = 7\n')
    cfg = _dry_run(capsys, "--config", str(toml), "--out", str(tmp_path / "r"))
    assert (cfg["preset"], cfg["kimg"], cfg["gamma"], cfg["seed"]) == ("tiny", 2.0, 0.5, 7)
    assert cfg["resolution"] == 16  # from the preset the file names
    cfg = _dry_run(capsys, "--config", str(toml), "--gamma", "3", "--out", str(tmp_path / "r"))
    assert cfg["gamma"] == 3.0 and cfg["seed"] == 7
    cfg = _dry_run(capsys, "--config", str(toml), "--preset", "dsprites-quick", "--out", str(tmp_path / "r"))
    assert (cfg["preset"], cfg["resolution"], cfg["kimg"]) == ("dsprites-quick", 32, 2.0)  # file over the preset
    # a run's config.json with an option changed: that option changes, nothing else
    base = json.loads((tiny_run / "config.json").read_text())
    cfg = _dry_run(capsys, "--config", str(tiny_run / "config.json"), "--seed", "3", "--out", str(tmp_path / "r"))
    assert cfg == {**base, "seed": 3}


@pytest.mark.parametrize("text, suffix, message", [
    ('preset = "tiny"\nkimgs = 2\n', ".toml", "unknown field(s): kimgs"),
    ('{"gamma": 1, "learning_rate": 0.1}', ".json", "unknown field(s): learning_rate"),
    ('batch = "many"\n', ".toml", "field batch must be an integer"),
    ('kimg = [1, 2]\n', ".toml", "field kimg must be a number"),
    ('data_options = 3\n', ".toml", "field data_options must be a table of options"),
    ('[1, 2]', ".json", "expected a table of config fields"),
    ('kimg = = 2\n', ".toml", "not valid TOML"),
    ('kimg: 2\n', ".yaml", "a config file is .toml or .json"),
])
def test_bad_config_file_is_one_line_and_exit_2(text, suffix, message, tmp_path, capsys):
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    out = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(out), "--quiet"]) == 2
    err = _one_line(capsys)
    assert message in err and str(path) in err
    assert not out.exists()  # checked before anything is written
    assert main(["train", "--config", str(tmp_path / "missing.toml"), "--out", str(out)]) == 2
    assert "no such config file" in _one_line(capsys)


def _write_folder(root, n=8, res=16):
    """n RGB images with labels.csv: an integer column 'size' (values 1..4) and a category 'kind'."""
    root.mkdir()
    rs = np.random.RandomState(0)
    rows = ["file,size,kind"]
    for i in range(n):
        Image.fromarray(rs.randint(0, 256, size=(res, res, 3), dtype=np.uint8)).save(root / f"img{i}.png")
        rows.append(f"img{i}.png,{1 + i % 4},{'ab'[i % 2]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_dataset_options_reach_training(tmp_path, capsys):
    folder = tmp_path / "folder"
    _write_folder(folder)
    common = ["train", "--preset", "tiny", "--dataset", "folder", "--data-path", str(folder), "--labeled-fraction", "1",
              "--kimg", "0.016", "--quiet"]
    # by default an integer column with few values is a discrete factor of 4 classes
    assert main(common + ["--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "dataset.json").read_text())["factors"]
    assert dict(zip(plain["names"], plain["sizes"])) == {"size": 4, "kind": 2}
    # from a config file: 'size' read as continuous, in 3 bins
    toml = tmp_path / "c.toml"
    toml.write_text('[data_options]\ncontinuous = ["size"]\nbins = 3\n')
    assert main(common + ["--config", str(toml), "--out", str(tmp_path / "binned")]) == 0
    binned = json.loads((tmp_path / "binned" / "dataset.json").read_text())["factors"]
    assert dict(zip(binned["names"], binned["sizes"])) == {"size": 3, "kind": 2}
    assert json.loads((tmp_path / "binned" / "config.json").read_text())["data_options"] == {"continuous": ["size"],
                                                                                               "bins": 3}
    # --data-options overrides the file's keys
    cfg = _dry_run(capsys, *common[1:], "--config", str(toml), "--data-options", "bins=5", "--out", str(tmp_path / "r"))
    assert cfg["data_options"] == {"continuous": ["size"], "bins": 5}
    # an option the dataset does not take: one line, exit 2, no run written
    assert main(common + ["--data-options", "colour=red", "--out", str(tmp_path / "bad")]) == 2
    assert "does not take the option(s): colour" in _one_line(capsys)
    assert not (tmp_path / "bad").exists()


def test_config_cannot_be_combined_with_resume(tiny_run, tmp_path, capsys):
    assert main(["train", "--config", str(tiny_run / "config.json"), "--resume", str(tiny_run)]) == 2
    assert "--config cannot be combined with --resume" in _one_line(capsys)
