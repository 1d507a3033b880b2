"""Bad input, as a hostile user types it: each case exits with status 2 and exactly one line on
stderr (no traceback), and leaves no file behind (nothing created, nothing changed)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semistylegan import dist
from semistylegan.checkpoint import list_snapshots
from semistylegan.cli import main
from semistylegan.config import make_config
from semistylegan.errors import UserError
from semistylegan.train import Trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-step tiny run, copies of it with a damaged config.json or snapshot, a folder dataset
    whose labels.csv names no factor, and two images to edit."""
    root = tmp_path_factory.mktemp("bad-inputs")
    run = root / "run"
    Trainer(make_config("tiny", kimg=0.016, grid_kimg=0.0, metrics_samples=64), run, progress=False).run()
    for name, change in {
        "wrongtype": lambda d: (d / "config.json").write_text(
            json.dumps({**json.loads((d / "config.json").read_text()), "batch": "32"})),
        "notobject": lambda d: (d / "config.json").write_text("[1, 2]\n"),
        "truncated": lambda d: list_snapshots(d)[-1].write_bytes(list_snapshots(d)[-1].read_bytes()[:5000]),
        "foreign": lambda d: list_snapshots(d)[-1].write_bytes(b"PNG? no, just some bytes"),
        "untagged": lambda d: torch.save({"networks": {}}, list_snapshots(d)[-1]),
    }.items():
        shutil.copytree(run, root / name)
        change(root / name)
    folder = root / "nofactors"
    for i in range(4):
        (folder / f"{i}.png").parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "labels.csv").write_text("file\n0.png\n1.png\n")
    (root / "folder.png").mkdir()
    images = root / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16), 60 * i, dtype=np.uint8)).save(images / f"im{i}.png")
    return root


def _tree(*dirs) -> dict:
    """Every file and folder under dirs, with size and modification time: what a command changed."""
    out = {}
    for d in dirs:
        for p in sorted(Path(d).rglob("*")):
            st = p.stat()
            out[str(p)] = (p.is_dir(), st.st_size if p.is_file() else 0, st.st_mtime_ns if p.is_file() else 0)
    return out


TRAIN = ["train", "--preset", "tiny", "--no-progress", "--out", "out"]
CASES = [
    # issue 24, 5: tracebacks before
    (TRAIN + ["--kimg", "inf"], "kimg must be a finite number, got inf"),
    (TRAIN + ["--seed", "-1"], "--seed must be >= 0, got -1"),
    (TRAIN + ["--z-dim", "-1"], "--z-dim must be >= 1, got -1"),
    (["train", "--resume", "{runs}/wrongtype"], "config.json: field batch must be an integer, got '32'"),
    (["train", "--resume", "{runs}/notobject"], "it must hold a JSON object"),
    (["edit", "{runs}/run", "--images", "{runs}/images", "--set", "shape=0", "--out", "{runs}/images/im0.png"],
     "is a file; edit writes into a folder"),
    # issue 24, 6: accepted before
    (["generate", "{runs}/run", "--truncation", "nan", "--out", "g.png"], "--truncation must be in [0, 1], got nan"),
    (["generate", "{runs}/run", "--truncation", "50", "--out", "g.png"], "--truncation must be in [0, 1], got 50"),
    (["traverse", "{runs}/run", "--truncation", "nan", "--out", "t.png"], "--truncation must be in [0, 1], got nan"),
    (["traverse", "{runs}/run", "--truncation", "50", "--out", "t.png"], "--truncation must be in [0, 1], got 50"),
    (TRAIN + ["--snapshot-kimg", "-1"], "--snapshot-kimg must be > 0.0, got -1"),
    (TRAIN + ["--r1-interval", "0"], "--r1-interval must be >= 1, got 0"),
    (TRAIN + ["--z-dim", "0"], "--z-dim must be >= 1, got 0"),
    (["data", "info", "folder", "--data-path", "{runs}/nofactors"], "names no factor after 'file'"),
    (TRAIN + ["--dataset", "folder", "--data-path", "{runs}/nofactors", "--resolution", "16"], "names no factor"),
    (["data", "preview", "dsprites", "--num", "-5", "--out", "p.png"], "--num must be at least 1, got -5"),
    # issue 24, 2 and 7
    (TRAIN + ["--kimg", "0"], "--kimg must be > 0.0, got 0"),
    (TRAIN + ["--kimg", "1e-9"], "less than one batch of 16 images"),
    (["generate", "{runs}/run", "--seeds", "5-1", "--out", "new/sub/o.png"], "--seeds expects a list like 0-7"),
    (["traverse", "{runs}/run", "--steps", "1", "--out", "new/sub/t.png"], "--steps must be in [2, 64]"),
    # every numeric config field has its range (TrainConfig.RANGES)
    (TRAIN + ["--kimg", "nan"], "kimg must be a finite number, got nan"),
    (TRAIN + ["--kimg", "-3"], "--kimg must be > 0.0, got -3"),
    (TRAIN + ["--grid-kimg", "-1"], "--grid-kimg must be >= 0.0, got -1"),
    (TRAIN + ["--metrics-kimg", "inf"], "--metrics-kimg must be a finite number, got inf"),
    (TRAIN + ["--lr", "0"], "--lr must be > 0.0, got 0"),
    (TRAIN + ["--lr", "nan"], "lr must be a finite number, got nan"),
    (TRAIN + ["--batch", "0"], "--batch must be >= 1, got 0"),
    (TRAIN + ["--labeled-batch", "-2"], "--labeled-batch must be >= 1, got -2"),
    (TRAIN + ["--gamma", "-1"], "--gamma must be >= 0.0, got -1"),
    (TRAIN + ["--r1-gamma", "inf"], "--r1-gamma must be a finite number, got inf"),
    (TRAIN + ["--g-beta1", "1"], "--g-beta1 must be < 1.0, got 1"),
    (TRAIN + ["--resolution", "8192"], "--resolution must be <= 4096, got 8192"),
    (TRAIN + ["--resolution", "12"], "resolution must be a power of two"),
    (TRAIN + ["--keep-snapshots", "0"], "--keep-snapshots must be >= 1, got 0"),
    (TRAIN + ["--log-every", "0"], "--log-every must be >= 1, got 0"),
    (TRAIN + ["--metrics-samples", "-1"], "--metrics-samples must be >= 2, got -1"),
    (TRAIN + ["--w-dim", "0"], "--w-dim must be >= 1, got 0"),
    (TRAIN + ["--mapping-layers", "0"], "--mapping-layers must be >= 1, got 0"),
    (TRAIN + ["--mapping-lr-mul", "0"], "--mapping-lr-mul must be > 0.0, got 0"),
    (TRAIN + ["--channel-max", "0"], "--channel-max must be >= 1, got 0"),
    (TRAIN + ["--mbstd-group", "-1"], "--mbstd-group must be >= 0, got -1"),
    (TRAIN + ["--ema-kimg", "-1"], "--ema-kimg must be >= 0.0, got -1"),
    (TRAIN + ["--mixup-xi", "0"], "--mixup-xi must be > 0.0, got 0"),
    (TRAIN + ["--gamma-g", "nan"], "--gamma-g must be a finite number, got nan"),
    (["train", "--resume", "{runs}/run", "--kimg", "inf"], "kimg must be a finite number, got inf"),
    # bad snapshots: a whole sentence naming the file and what is wrong
    (["generate", "{runs}/truncated", "--out", "g.png"], "is not a readable snapshot: it is truncated at byte 5000"),
    (["traverse", "{runs}/foreign", "--out", "t.png"], "it is not a snapshot of this program"),
    (["train", "--resume", "{runs}/truncated", "--kimg", "1"], "truncated at byte 5000"),
    (["generate", "{runs}/untagged", "--out", "g.png"], "is a PyTorch file, but not a snapshot of this program"),
    # refused before this issue, kept refused
    (TRAIN + ["--labeled-fraction", "1.5"], "--labeled-fraction must be <= 1.0, got 1.5"),
    (TRAIN + ["--kimg", "abc"], "invalid float value"),
    (["train", "--preset", "nope", "--out", "out"], "unknown preset"),
    (TRAIN + ["--method", "nope"], "unknown method"),
    (["train", "--resume", "{runs}/missing"], "not a semistylegan run directory"),
    (["train", "--preset", "tiny", "--out", "{runs}/run"], "already holds a run"),
    (["generate", "{runs}/run", "--code", "shape=1.5", "--out", "g.png"], "[0, 1]"),
    (["generate", "{runs}/run", "--code", "colour=0.5", "--out", "g.png"], "unknown factor"),
    (["generate", "{runs}/run", "--out", "g.jpg"], ".png"),
    (["generate", "{runs}/run", "--out", "{runs}/images/im0.png/g.png"], "is a file, not a folder"),
    (["generate", "{runs}/run", "--out", "{runs}/folder.png"], "is a folder; name a .png file"),
    (["traverse", "{runs}/run", "--out", "t.jpg"], ".png"),
    (["edit", "{runs}/run", "--images", "{runs}/images", "--set", "shape=0", "--truncation", "2", "--out", "e"],
     "--truncation must be in [0, 1], got 2"),
    (["edit", "{runs}/run", "--images", "{runs}/images", "--traverse", "nope", "--out", "e"], "nope"),
    (["edit", "{runs}/run", "--images", "{runs}/missing", "--set", "shape=0", "--out", "e"], "missing"),
    (["serve", "{runs}/run", "--port", "70000"], "--port must be in [0, 65535]"),
    (["data", "preview", "dsprites", "--seed", "-1", "--out", "p.png"], "--seed must be in [0, 2**32 - 1]"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(a[:1] + a[5:] if a[:3] == TRAIN[:3] else a)[:70]
                                                       for a, _ in CASES])
def test_refused_with_one_line_and_nothing_written(argv, message, runs, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    argv = [a.replace("{runs}", str(runs)) for a in argv]
    before = _tree(work, runs)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("semistylegan: error: "), captured.err
    assert message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _tree(work, runs) == before  # nothing created, nothing changed (run folders included)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_batch_that_does_not_split_over_torchrun_processes(rank, tmp_path, monkeypatch, capsys):
    """torchrun --nproc_per_node 2 ... --batch 3: refused before anything is written, and only
    rank 0 prints the line (the test sets the environment torchrun gives each process)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["train", "--preset", "tiny", "--batch", "3", "--no-progress", "--out", "out"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == (["semistylegan: error: --batch 3 does not split evenly over 2 processes; use a multiple of 2"]
                   if rank == "0" else [])
    assert list(tmp_path.iterdir()) == []


def test_check_batches_split_uses_the_launched_world_size(monkeypatch):
    cfg = make_config("tiny", batch=6, labeled_batch=4)
    monkeypatch.delenv("RANK", raising=False)
    dist.check_batches_split(cfg)  # one process: anything splits
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    dist.check_batches_split(cfg)
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(UserError, match="--batch 6 does not split evenly over 4 processes"):
        dist.check_batches_split(cfg)


def test_every_numeric_field_has_a_range():
    """A numeric field added later without a range (config.opt low=) would slip through: fail here."""
    import dataclasses

    from semistylegan.config import TrainConfig

    numeric = {f.name for f in dataclasses.fields(TrainConfig) if str(f.type).split(" | ")[0] in ("int", "float")}
    ranged = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("low") is not None}
    assert numeric and numeric - ranged == set()
