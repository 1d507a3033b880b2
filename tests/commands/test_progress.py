"""Long commands show progress on stderr (a bar or a line per stage); --quiet removes all of it and
leaves stdout and the written files as they were."""
import json
import re
import textwrap

import numpy as np
import pytest
from PIL import Image

from semistylegan.cli import main
from tiny_study import metrics_block  # noqa: E402  (tests/ is on sys.path under pytest)

def _run(capsys, *args, code=0):
    assert main(list(args)) == code
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("progress") / "run"
    assert main(["train", "--preset", "tiny", "--kimg", "0.016", "--out", str(run), "--quiet"]) == 0
    return run


def test_train_bar_and_quiet(tmp_path, capsys):
    _, err = _run(capsys, "train", "--preset", "tiny", "--kimg", "0.016", "--out", str(tmp_path / "a"))
    assert "semi dsprites16" in err and "img" in err  # the tqdm bar: description and unit
    out, err = _run(capsys, "train", "--preset", "tiny", "--kimg", "0.016", "--out", str(tmp_path / "b"), "--quiet")
    assert err == "" and "run directory:" in out


def test_evaluate_stages_oracle_bar_and_quiet(tiny_run, tmp_path, capsys):
    common = ["evaluate", str(tiny_run), "--samples", "100",
              "--skip", "dci,factor_vae,beta_vae,sap,modularity,oracle_fid"]
    out, err = _run(capsys, *common, "--oracle-steps", "12", "--out", str(tmp_path / "m1.json"))
    assert len(re.findall(r"\[ *\d+\.\ds\] evaluate: ", err)) >= 5, err  # stamped stage lines
    for line in ("evaluate: encoding 150 images", "evaluate: mig", "evaluate: l2",
                 "evaluate: oracle encoder", "evaluate: generator metrics"):
        assert line in err, (line, err)
    assert "training the oracle encoder" in err  # the oracle's training bar (first use)
    # quiet: nothing on stderr, the same report (another oracle length, so it trains again, silently)
    out_q, err_q = _run(capsys, *common, "--oracle-steps", "13", "--out", str(tmp_path / "m2.json"), "--quiet")
    assert err_q == ""
    assert out_q.splitlines()[0].split()[:2] == out.splitlines()[0].split()[:2]  # "MIG (encoder)" headline
    assert (tmp_path / "m2.json").is_file()


STUDY = textwrap.dedent("""\
    name = "progress"
    preset = "tiny"
    kimg = 0.032
    seeds = [0]

    [[grid]]
    methods = ["encoder-mixup"]
    eta = [0.01, 0.05]
    """) + metrics_block(samples=100, factor_variance=100, gen=False, fid=False, dci=False)


def test_study_cells_done_and_kimg_bar_and_quiet(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(STUDY)
    out, err = _run(capsys, "study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "a"))
    assert "study: 0 of 2 cells done; training cell 1" in err and "study: 1 of 2 cells done; training cell 2" in err
    assert "cell 1/2" in err and "cell 2/2" in err  # each cell's training bar (images of that cell)
    assert "study: evaluating cell 2/2" in err
    out_q, err_q = _run(capsys, "study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "b"), "--quiet")
    assert err_q == ""
    assert (tmp_path / "b" / "results.md").is_file() and "2 of 2 cells finished" in out_q


def _folder(root, n=6):
    root.mkdir()
    rs = np.random.RandomState(1)
    for i in range(n):
        Image.fromarray(rs.randint(0, 256, size=(12, 12, 3), dtype=np.uint8)).save(root / f"{i}.png")
    (root / "labels.csv").write_text("file,kind\n" + "".join(f"{i}.png,{'ab'[i % 2]}\n" for i in range(n)))


def test_data_prepare_bar_and_quiet(tmp_path, capsys):
    for name in ("a", "b"):
        _folder(tmp_path / name)
    base = ["data", "prepare", "folder", "--resolution", "8", "--workers", "1"]
    out, err = _run(capsys, *base, "--data-path", str(tmp_path / "a"))
    assert "caching folder at 8x8" in err
    out_q, err_q = _run(capsys, *base, "--data-path", str(tmp_path / "b"), "--quiet")
    assert err_q == "" and "6 images at 8x8 ready" in out_q


def test_export_quiet(tiny_run, tmp_path, capsys):
    out, err = _run(capsys, "export", str(tiny_run), "--out", str(tmp_path / "a"), "--no-onnx")
    assert "export: torch.export: generator" in err
    out_q, err_q = _run(capsys, "export", str(tiny_run), "--out", str(tmp_path / "b"), "--no-onnx", "--quiet")
    assert err_q == "" and out_q.replace(str(tmp_path / "b"), "X") == out.replace(str(tmp_path / "a"), "X")
    assert json.loads((tmp_path / "b" / "model.json").read_text())["method"] == "semi"


def test_bad_input_is_one_line_with_progress_on(tiny_run, tmp_path, capsys):
    """No progress line comes before the error of a bad input (progress starts once inputs are checked)."""
    (tmp_path / "s.toml").write_text(STUDY.replace('"encoder-mixup"', '"no-such-method"'))
    for argv in (["evaluate", str(tmp_path / "missing")],
                 ["evaluate", str(tiny_run), "--samples", "100", "--skip", "nope"],
                 ["export", str(tmp_path / "missing"), "--out", str(tmp_path / "x")],
                 ["data", "prepare", "folder", "--data-path", str(tmp_path / "missing")],
                 ["study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "st")],
                 ["train", "--preset", "tiny", "--dataset", "folder", "--data-path", str(tmp_path / "missing"),
                  "--out", str(tmp_path / "r")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("semistylegan: error:"), (argv, err)
