"""Bad input: one clear UserError line naming the file, exit status 2 in the CLI, no partial cache."""
import os

import numpy as np
import pytest
from datafixtures import (encode_index, write_celeba, write_dsprites_npz, write_folder, write_grid_folder, write_png,
                          write_smallnorb)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semistylegan.cli import main
from semistylegan.data import make_dataset
from semistylegan.data.folder_format import FolderSource
from semistylegan.data.mat_files import read_norb_matrix
from semistylegan.errors import UserError


def _no_cache_left(cache_dir):
    if not cache_dir.exists():
        return True
    return [p.name for p in cache_dir.iterdir() if p.name not in ("checksums",)] == []


def _err(name, path, **opts):
    with pytest.raises(UserError) as e:
        make_dataset(name, 8, str(path), progress=False, **opts)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_files(tmp_path, cache_dir):
    assert "not found" in _err("dsprites", tmp_path / "nope.npz")
    assert "not found" in _err("mpi3d", tmp_path / "nope.npz")
    assert "not found" in _err("cars3d", tmp_path / "nope")
    assert "list_attr_celeba.txt" in _err("celeba", tmp_path)
    assert "labels.csv" in _err("folder", tmp_path)
    assert "needs" in _err("falcor3d", tmp_path)  # an empty folder: too few images
    with pytest.raises(UserError, match="--data-path"):
        make_dataset("mpi3d")


def test_truncated_npz(tmp_path, cache_dir):
    path = tmp_path / "d.npz"
    write_dsprites_npz(path, res=64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    msg = _err("dsprites", path)
    assert str(path) in msg and ("truncated" in msg or "corrupt" in msg)
    assert _no_cache_left(cache_dir)


def test_corrupt_array_data_leaves_no_cache(tmp_path, cache_dir):
    # A valid header with a damaged body fails while the cache is being written.
    path = tmp_path / "m.npz"
    np.savez_compressed(path, images=encode_index(460800, 1))
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    path.write_bytes(bytes(data))
    msg = _err("mpi3d", path)
    assert str(path) in msg
    assert _no_cache_left(cache_dir)


def test_wrong_size_mpi3d_and_too_few_images(tmp_path, cache_dir):
    path = tmp_path / "m.npz"
    np.savez(path, images=encode_index(100, 1))
    assert "1,036,800" in _err("mpi3d", path)
    root = tmp_path / "falcor"
    write_grid_folder(root, 5, size=4)
    msg = _err("falcor3d", root)
    assert "5 PNG images" in msg and "233,280" in msg
    os.unlink(root / "images" / "000002.png")
    msg = _err("falcor3d", root, factor_sizes=[1, 1, 1, 1, 1, 1, 4])
    assert "000002.png" in msg


def test_mismatched_and_corrupt_pngs(tmp_path, cache_dir):
    root = tmp_path / "isaac"
    write_grid_folder(root, 4, size=8)
    write_png(root / "images" / "000003.png", np.zeros((6, 8, 3), np.uint8))
    sizes = [1] * 8 + [4]
    msg = _err("isaac3d", root, factor_sizes=sizes, workers=2)
    assert "000003.png" in msg and "8x6" in msg
    assert _no_cache_left(cache_dir)
    (root / "images" / "000003.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    msg = _err("isaac3d", root, factor_sizes=sizes, workers=1)
    assert "000003.png" in msg and "decode" in msg
    assert _no_cache_left(cache_dir)


def test_folder_csv_errors(tmp_path, cache_dir):
    root = tmp_path / "mine"
    write_folder(root)
    csv = root / "labels.csv"
    good = csv.read_text()
    cases = {
        "missing.png,red,1,0\n": "missing.png",
        "a/x1.png,red,1,400\n": "outside its range",
        "a/x1.png,red,1\n": "fields",
        "a/x1.png,red,1,nan\n": "not finite",
    }
    for extra, needle in cases.items():
        lines = good.splitlines()
        body = [ln for ln in lines[1:] if not ln.startswith(extra.split(",")[0] + ",")]
        csv.write_text("\n".join([lines[0]] + body) + "\n" + extra)
        msg = _err("folder", root)
        assert needle in msg and "labels.csv" in msg, msg
    csv.write_text(good + "a/x1.png,red,1,0\n")
    assert "repeats" in _err("folder", root)
    csv.write_text("image,colour\n")
    assert "header" in _err("folder", root)
    csv.write_text("file,angle:continuous\na/x1.png,north\n")
    assert "non-number" in _err("folder", root)
    csv.write_text("file,colour:discrete[red|blue]\na/x1.png,green\n")
    assert "not one of" in _err("folder", root)


def test_folder_mismatched_sizes(tmp_path, cache_dir):
    root = tmp_path / "mine"
    write_folder(root)
    write_png(root / "z.png", np.zeros((4, 4, 3), np.uint8))
    assert "z.png" in _err("folder", root, workers=1)
    assert _no_cache_left(cache_dir)
    ds = make_dataset("folder", 8, str(root), progress=False, mixed_sizes=True, workers=1)
    assert len(ds) == 6


def test_celeba_errors(tmp_path, cache_dir):
    root = tmp_path / "celeba"
    write_celeba(str(root))
    attr = root / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:-1]) + "\n")
    assert "truncated" in _err("celeba", root)
    attr.write_text("\n".join(lines[:-1] + [lines[-1] + " 1"]).replace(lines[0], str(len(lines) - 2), 1) + "\n")
    assert "values" in _err("celeba", root)
    write_celeba(str(root))
    os.unlink(root / "img_align_celeba" / "000004.jpg")
    assert "000004.jpg" in _err("celeba", root)


def test_smallnorb_errors(tmp_path, cache_dir):
    root = tmp_path / "norb"
    write_smallnorb(str(root))
    files = sorted(p for p in root.iterdir() if p.name.endswith("testing-dat.mat"))
    data = files[0].read_bytes()
    files[0].write_bytes(data[:-5])
    msg = _err("smallnorb", root)
    assert "testing-dat.mat" in msg and "truncated" in msg
    files[0].unlink()
    assert "testing-dat.mat" in _err("smallnorb", root)


def test_cli_exit_status_two(tmp_path, cache_dir, capsys):
    assert main(["data", "info", "mpi3d", "--data-path", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.npz" in err[0]
    assert main(["data", "info", "no-such-dataset"]) == 2
    assert main(["data", "prepare", "dsprites", "--option", "bogus=1"]) == 2


# Fuzzing -------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_fuzz_norb_matrix(tmp_path, blob):
    p = tmp_path / "fuzz.mat"
    p.write_bytes(blob)
    try:
        arr = read_norb_matrix(str(p))
    except UserError:
        return
    assert arr.size * arr.dtype.itemsize <= len(blob)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10**6), flip=st.integers(min_value=0, max_value=10**6))
def test_fuzz_dsprites_npz(tmp_path, cache_dir, cut, flip):
    path = tmp_path / "fz.npz"
    if not path.exists():
        write_dsprites_npz(path, res=8)
    good = path.read_bytes()
    data = bytearray(good)
    data[flip % len(data)] ^= 0xFF
    data = bytes(data[: max(1, cut % (len(data) + 1))])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(data)
    try:
        ds = make_dataset("dsprites", 8, str(bad), progress=False)
        assert len(ds) == 48
    except UserError as e:
        assert "\n" not in str(e)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(["a/x1.png", "z.png", "", "1", "2.5", "red", "nan", "-3", "x:y", "1e400"]),
                         min_size=0, max_size=4), max_size=5),
       st.sampled_from(["file,f", "file,f,g", "file,f:continuous,g", "file,f:discrete[1|2],g", "file", "f,file"]))
def test_fuzz_folder_csv(tmp_path, rows, header):
    root = tmp_path / "fz"
    if not (root / "z.png").exists():
        write_png(root / "a" / "x1.png", np.zeros((4, 4, 3), np.uint8))
        write_png(root / "z.png", np.zeros((4, 4, 3), np.uint8))
    (root / "labels.csv").write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    try:
        src = FolderSource(str(root))
    except UserError as e:
        assert "\n" not in str(e)
        return
    classes, codes = src.labels()
    known = classes >= 0
    assert np.array_equal(known, np.isfinite(codes))
    assert ((codes[known] >= 0) & (codes[known] <= 1)).all()
    assert (classes < np.asarray(src.factor_space.sizes)).all()
