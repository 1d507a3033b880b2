"""Round trips through every official-format reader, index <-> factor agreement with the bases."""
import json

import numpy as np
import pytest

from semistylegan.data import make_dataset
from semistylegan.data.dsprites import area_downsample
from semistylegan.data.folder_format import codes_to_values
from semistylegan.data.image_folders import FALCOR3D_FACTORS, ISAAC3D_FACTORS
from semistylegan.data.mat_files import read_norb_matrix, write_norb_matrix

from datafixtures import (
    decode_index,
    encode_index,
    write_celeba,
    write_cars3d,
    write_dsprites_hdf5,
    write_dsprites_npz,
    write_folder,
    write_grid_folder,
    write_shapes3d_h5,
    write_smallnorb,
)


@pytest.mark.parametrize("fmt", ["npz", "hdf5"])
def test_dsprites_file_round_trip(tmp_path, cache_dir, fmt):
    path = tmp_path / f"dsprites.{fmt}"
    imgs, cls = (write_dsprites_npz if fmt == "npz" else write_dsprites_hdf5)(path)
    ds = make_dataset("dsprites", 16, str(path), progress=False)
    assert ds.is_grid and ds.channels == 1 and len(ds) == 48
    assert ds.factor_space.names == ("shape", "scale", "orientation", "posX", "posY")  # constant color dropped
    assert ds.factor_space.sizes == (3, 2, 2, 2, 2)
    assert np.array_equal(ds.images(np.arange(48))[:, 0], imgs * 255)
    assert np.array_equal(ds.classes(np.arange(48)), cls[:, 1:])
    # images_from_classes agrees with the row-major index of the file
    pick = np.array([5, 17, 40])
    assert np.array_equal(ds.images_from_classes(cls[pick, 1:]), ds.images(pick))
    small = make_dataset("dsprites", 8, str(path), progress=False)
    assert np.array_equal(small.images(np.arange(48)), area_downsample(ds.images(np.arange(48)), 8))


def test_dsprites_variant_over_official_file(tmp_path, cache_dir):
    path = tmp_path / "d.npz"
    imgs, _ = write_dsprites_npz(path, res=64)
    ds = make_dataset("dsprites-noisy", 64, str(path), progress=False)
    x = ds.images(np.arange(10))
    assert x.shape == (10, 3, 64, 64)
    assert (x.transpose(1, 0, 2, 3)[:, imgs[:10] == 1] == 255).all()
    assert "base" in ds.info()


def test_shapes3d_h5_round_trip(tmp_path, cache_dir):
    path = tmp_path / "3dshapes.h5"
    imgs, cls = write_shapes3d_h5(path)
    ds = make_dataset("shapes3d", 4, str(path), progress=False)
    assert ds.factor_space.sizes == (2, 2, 1, 2, 2, 3)
    assert ds.factor_space.names[4] == "shape"
    assert np.array_equal(decode_index(ds.images(np.arange(len(ds)))), np.arange(len(ds)))
    assert np.array_equal(ds.classes(np.arange(len(ds))), cls)
    assert ds.factor_space.values[3] == (0.75, pytest.approx(0.821429, abs=1e-6))


@pytest.mark.parametrize("n,sizes", [(460800, (4, 4, 2, 3, 3, 40, 40)), (1036800, (6, 6, 2, 3, 3, 40, 40))])
def test_mpi3d_variant_from_size_and_bases(tmp_path, cache_dir, n, sizes):
    path = tmp_path / "mpi3d.npz"
    np.savez(path, images=encode_index(n, 1))
    ds = make_dataset("mpi3d", 1, str(path), progress=False)
    assert ds.factor_space.sizes == sizes
    rs = np.random.RandomState(0)
    cls = ds.factor_space.sample_classes(500, rs)
    c, s, z, h, b, x, y = cls.T
    if sizes[0] == 4:  # the index formula of docs/datasets.md
        official = c * 115200 + s * 28800 + z * 14400 + h * 4800 + b * 1600 + x * 40 + y
    else:
        official = c * 172800 + s * 28800 + z * 14400 + h * 4800 + b * 1600 + x * 40 + y
    assert np.array_equal(decode_index(ds.images_from_classes(cls)), official)
    assert ds.info()["variant"] == f"{sizes[0]}x{sizes[1]}"


def test_cars3d_uses_list_order(tmp_path, cache_dir):
    root = tmp_path / "cars"
    names = ["car_003_mesh", "car_001_mesh", "car_002_mesh"]  # list.txt order, not sorted
    write_cars3d(str(root), names)
    ds = make_dataset("cars3d", 4, str(root), progress=False, workers=2)
    assert ds.factor_space.names == ("elevation", "azimuth", "object") and ds.factor_space.sizes == (4, 24, 3)
    assert len(ds) == 288
    idx = np.arange(len(ds))
    x = ds.images(idx)[:, :, 0, 0].astype(np.int64)  # pixel = (object, azimuth, elevation)
    elev, azim, obj = ds.classes(idx).T
    assert np.array_equal(x[:, 0], obj) and np.array_equal(x[:, 1], azim) and np.array_equal(x[:, 2], elev)
    assert np.array_equal(idx, elev * 24 * 3 + azim * 3 + obj)  # disentanglement_lib's index
    assert ds.info()["objects"] == names


def test_smallnorb_matrix_round_trip(tmp_path):
    for arr in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.arange(5, dtype=np.int32),
                np.arange(8, dtype=np.int32).reshape(2, 4)):
        p = str(tmp_path / "m.mat")
        write_norb_matrix(p, arr)
        back = read_norb_matrix(p)
        assert back.dtype == arr.dtype and np.array_equal(back, arr)
    with open(p, "rb") as f:  # int32 magic and the 1-D header padded to 3 dims
        head = np.frombuffer(f.read(20), dtype="<i4")
    assert head[0] == 0x1E3D4C54 and head[1] == 2


def test_smallnorb_grid_placement(tmp_path, cache_dir):
    root = tmp_path / "norb"
    labels = write_smallnorb(str(root))
    ds = make_dataset("smallnorb", 4, str(root), progress=False)
    assert ds.factor_space.names == ("category", "instance", "elevation", "azimuth", "lighting")
    assert ds.factor_space.sizes == (2, 2, 1, 2, 1) and ds.channels == 1
    for c, inst, e, az, li in labels:
        i = ds.factor_space.classes_to_index(np.array([[c, inst, e, az // 2, li]]))
        assert ds.images(i)[0, 0, 0, 0] == 10 * c + 3 * inst + az


@pytest.mark.parametrize("name,factors", [("falcor3d", FALCOR3D_FACTORS), ("isaac3d", ISAAC3D_FACTORS)])
def test_nvlabs_folders(tmp_path, cache_dir, name, factors):
    sizes = (2,) + (1,) * (factors.num_factors - 2) + (3,)
    root = tmp_path / name
    write_grid_folder(root, 6)
    ds = make_dataset(name, 4, str(root), progress=False, factor_sizes=list(sizes), workers=2)
    assert ds.factor_space.names == factors.names and len(ds) == 6
    assert np.array_equal(decode_index(ds.images(np.arange(6))), np.arange(6))
    assert np.array_equal(ds.classes(np.arange(6))[:, [0, -1]], [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])


def test_official_nvlabs_bases():
    assert list(FALCOR3D_FACTORS.bases) == [46656, 7776, 1296, 216, 36, 6, 1]
    assert FALCOR3D_FACTORS.num_combinations == 233280
    assert list(ISAAC3D_FACTORS.bases) == [245760, 30720, 6144, 1536, 384, 96, 16, 4, 1]
    assert ISAAC3D_FACTORS.num_combinations == 737280
    assert ISAAC3D_FACTORS.names[1:5] == ("robot_x-move", "robot_y-move", "camera_height", "object_scale")


def test_celeba_attributes_and_split(tmp_path, cache_dir):
    root = tmp_path / "celeba"
    vals = write_celeba(str(root))
    ds = make_dataset("celeba", 4, str(root), progress=False)
    assert not ds.is_grid and len(ds) == 6 and ds.factor_space.sizes == (2,) * 40
    assert ds.factor_space.names[0] == "5_o_Clock_Shadow" and ds.factor_space.names[-1] == "Young"
    assert np.array_equal(ds.classes(np.arange(6)), vals)
    assert np.array_equal(ds.codes(np.arange(6)), vals.astype(np.float32))
    x = ds.images(np.arange(6))
    assert x.shape == (6, 3, 4, 4) and abs(int(x[3].mean()) - 60) <= 2
    train = make_dataset("celeba", 4, str(root), progress=False, split="train")
    assert len(train) == 2 and np.array_equal(train.classes(np.arange(2)), vals[[0, 3]])


def test_folder_labels_and_mapping(tmp_path, cache_dir):
    root = tmp_path / "mine"
    files = write_folder(root)
    ds = make_dataset("folder", 8, str(root), progress=False)
    assert len(ds) == 6 and not ds.is_grid
    order = sorted(files)
    assert order == ["a/x1.png", "a/x2.png", "b/c/y1.png", "b/y2.jpg", "unlabelled.png", "z.png"]
    fs = ds.factor_space
    assert fs.names == ("colour", "count", "angle") and fs.sizes == (3, 3, 10)
    codes = ds.codes(np.arange(6))
    # colour sorted: blue, green, red -> 0, 0.5, 1; count 1,2,3 -> 0, .5, 1; angle / 360
    expect = np.array([[1, 0, 0], [0, 1, 0.25], [0.5, 0.5, np.nan], [np.nan, 0, 1], [np.nan] * 3, [1, np.nan, 0.5]],
                      dtype=np.float32)
    assert np.allclose(codes, expect, equal_nan=True)
    cls = ds.classes(np.arange(6))
    assert cls[4].tolist() == [-1, -1, -1] and cls[1].tolist() == [0, 2, 2] and cls[3, 2] == 9
    assert ds.labeled_candidates().tolist() == [0, 1, 2, 3, 5]
    info = ds.info()
    json.dumps(info)  # goes into every run's config
    mapping = info["factor_mapping"]
    assert mapping[0]["values"] == ["blue", "green", "red"] and mapping[2]["min"] == 0 and mapping[2]["max"] == 360
    back = codes_to_values(mapping, codes)
    assert back[1] == ["blue", 3.0, 90.0] and back[4] == [None, None, None]
    x = ds.images(np.arange(6))
    assert [int(v) for v in x[:, 0, 0, 0]] == [0, 30, 60, 90, 150, 120]  # jpg decoded within 0


def test_folder_declared_types(tmp_path, cache_dir):
    root = tmp_path / "mine"
    write_folder(root)
    ds = make_dataset("folder", 8, str(root), progress=False, continuous="count", bins=4)
    m = ds.info()["factor_mapping"][1]
    assert m["type"] == "continuous" and (m["min"], m["max"]) == (1.0, 3.0)
    assert ds.factor_space.sizes[1] == 4
    assert np.allclose(ds.codes(np.arange(2))[:, 1], [0.0, 1.0])
