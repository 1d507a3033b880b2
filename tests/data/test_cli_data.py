"""`semistylegan data info|preview|prepare` through semistylegan.cli.main."""
import json

import numpy as np
from datafixtures import write_folder
from PIL import Image

from semistylegan.cli import main


def test_info_table_and_json(capsys):
    assert main(["data", "info", "dsprites"]) == 0
    out = capsys.readouterr().out
    assert "posY" in out and "737,280" in out and "245760" in out
    assert main(["data", "info", "shapes3d", "--resolution", "32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["factors"]["sizes"] == [10, 10, 10, 8, 4, 15] and info["resolution"] == 32


def test_preview_writes_grid_and_traversal(tmp_path, cache_dir, capsys):
    out = tmp_path / "p.png"
    assert main(["data", "preview", "shapes3d", "--resolution", "16", "--num", "9", "--out", str(out)]) == 0
    grid = Image.open(out)
    trav = Image.open(tmp_path / "p-traversal.png")
    assert grid.size[0] >= 3 * 16 and trav.size[1] >= 6 * 16  # one row per factor
    root = tmp_path / "mine"
    write_folder(root)
    out2 = tmp_path / "f.png"
    assert main(["data", "preview", "folder", "--data-path", str(root), "--resolution", "8", "--num", "4",
                 "--out", str(out2), "--workers", "1"]) == 0
    assert (tmp_path / "f-traversal.png").exists()
    assert main(["data", "preview", "dsprites", "--out", str(tmp_path / "x.jpg")]) == 2


def test_prepare_builds_cache_once(tmp_path, cache_dir, capsys):
    root = tmp_path / "mine"
    write_folder(root)
    where = tmp_path / "where.txt"
    args = ["data", "prepare", "folder", "--data-path", str(root), "--resolution", "8", "--out", str(where),
            "--workers", "2"]
    assert main(args) == 0
    path = where.read_text().strip()
    assert path.startswith(str(cache_dir)) and np.load(path + "/images.npy").shape == (6, 3, 8, 8)
    assert main(args) == 0 and where.read_text().strip() == path
    assert main(["data", "prepare", "folder", "--data-path", str(tmp_path / "none")]) == 2
    assert main(["data", "prepare", "dsprites"]) == 0
    assert "procedural" in capsys.readouterr().out
