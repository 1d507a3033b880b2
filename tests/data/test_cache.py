"""The preprocessing cache: layout, reuse, invalidation, parallel equality, atomicity, pickling."""
import json
import os
import pickle

import numpy as np
import pytest
from datafixtures import write_folder, write_grid_folder

from semistylegan.data import make_dataset
from semistylegan.data import cache as cache_mod
from semistylegan.errors import UserError


def _entries(cache_dir):
    return sorted(p.name for p in cache_dir.iterdir() if p.is_dir() and p.name != "checksums")


def test_layout_reuse_and_invalidation(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "mine"
    write_folder(root)
    ds = make_dataset("folder", 4, str(root), progress=False, workers=1)
    (entry,) = _entries(cache_dir)
    assert entry.startswith("folder-r4-")
    d = cache_dir / entry
    assert {"images.npy", "classes.npy", "codes.npy", "meta.json"} <= set(os.listdir(d))
    meta = json.loads((d / "meta.json").read_text())
    assert meta["complete"] and meta["resolution"] == 4 and meta["num_images"] == 6
    arr = np.load(d / "images.npy", mmap_mode="r")
    assert arr.dtype == np.uint8 and arr.shape == (6, 3, 4, 4)
    assert ds.info()["cache"] == str(d)

    # Reuse: a second dataset must not load any image from the source.
    calls = []
    orig = cache_mod._write_block
    monkeypatch.setattr(cache_mod, "_write_block", lambda *a, **k: calls.append(1) or orig(*a, **k))
    again = make_dataset("folder", 4, str(root), progress=False, workers=1)
    assert calls == [] and np.array_equal(again.images(np.arange(6)), ds.images(np.arange(6)))

    # Another resolution is another cache.
    make_dataset("folder", 2, str(root), progress=False, workers=1)
    assert len(_entries(cache_dir)) == 2

    # Invalidation: changing the labels (content) or an image (size/mtime) builds a new cache.
    csv = root / "labels.csv"
    csv.write_text(csv.read_text().replace("a/x2.png,blue", "a/x2.png,green"))
    changed = make_dataset("folder", 4, str(root), progress=False, workers=1)
    assert len(calls) > 0 and len(_entries(cache_dir)) == 3
    assert changed.info()["factor_mapping"][0]["values"] == ["green", "red"]
    img = root / "z.png"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    make_dataset("folder", 4, str(root), progress=False, workers=1)
    assert len(_entries(cache_dir)) == 4


def test_parallel_build_equals_serial(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "falcor"
    write_grid_folder(root, 150, size=8)  # 3 tasks of 64
    sizes = [1, 1, 1, 1, 1, 10, 15]
    a = make_dataset("falcor3d", 4, str(root), progress=False, factor_sizes=sizes, workers=1)
    monkeypatch.setenv("SEMISTYLEGAN_CACHE", str(tmp_path / "other"))
    b = make_dataset("falcor3d", 4, str(root), progress=False, factor_sizes=sizes, workers=2)
    assert a.path != b.path
    assert np.array_equal(a.images(np.arange(150)), b.images(np.arange(150)))


def test_failed_build_leaves_nothing_and_rename_is_last(tmp_path, cache_dir, monkeypatch):
    root = tmp_path / "mine"
    write_folder(root)
    seen = []

    def boom(*a, **k):
        seen.append(sorted(p.name for p in cache_dir.iterdir()))
        raise UserError("simulated failure while writing")

    monkeypatch.setattr(cache_mod, "_write_block", boom)
    with pytest.raises(UserError, match="simulated"):
        make_dataset("folder", 4, str(root), progress=False, workers=1)
    assert any(name.startswith(".tmp-folder-r4-") for name in seen[0])  # built under a temp name
    assert _entries(cache_dir) == []
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".tmp-")]


def test_dataset_pickles_without_the_array(tmp_path, cache_dir):
    root = tmp_path / "mine"
    write_folder(root)
    ds = make_dataset("folder", 8, str(root), progress=False, workers=1)
    ds.images(np.arange(2))
    blob = pickle.dumps(ds)
    assert len(blob) < 20000
    back = pickle.loads(blob)
    assert np.array_equal(back.images(np.array([4, 0])), ds.images(np.array([4, 0])))


def test_checksum_memo(tmp_path, cache_dir):
    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    first = cache_mod.file_checksum(str(p))
    assert first == cache_mod.file_checksum(str(p))
    p.write_bytes(b"abd")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_mod.file_checksum(str(p)) != first
