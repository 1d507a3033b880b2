"""Procedural datasets: 3DShapes scenes, dSprites pixel statistics, dSprites variants, registry."""
import numpy as np
import pytest

from semistylegan.data import DATASETS, make_dataset
from semistylegan.data.dsprites import area_downsample
from semistylegan.data.registry import DATASET_NAMES, DEFAULT_RESOLUTIONS, PAPER_RESOLUTIONS
from semistylegan.data.shapes3d import SHAPES3D_FACTORS, ProceduralShapes3D, hsv_hues_to_rgb
from semistylegan.errors import UserError


def test_registry_names_and_resolutions():
    make_dataset  # loads the registry
    from semistylegan.data import _load_plugins

    _load_plugins()
    for name in ("dsprites", "dsprites-color", "dsprites-noisy", "dsprites-scream", "shapes3d", "mpi3d", "cars3d",
                 "smallnorb", "falcor3d", "isaac3d", "celeba", "folder"):
        assert name in DATASETS and name in PAPER_RESOLUTIONS
    assert PAPER_RESOLUTIONS["isaac3d"] == (128, 512) and PAPER_RESOLUTIONS["falcor3d"] == (128, 1024)
    assert PAPER_RESOLUTIONS["celeba"] == (256,) and PAPER_RESOLUTIONS["shapes3d"] == (64,)
    assert set(DEFAULT_RESOLUTIONS) == set(DATASET_NAMES)
    with pytest.raises(UserError, match="unknown dataset"):
        make_dataset("nope")
    with pytest.raises(UserError, match="option"):
        make_dataset("shapes3d", 32, bogus=1)


# 3DShapes ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shapes():
    return ProceduralShapes3D(32, use_disk_cache=False)


def test_shapes3d_grid_and_bases():
    assert SHAPES3D_FACTORS.sizes == (10, 10, 10, 8, 4, 15)
    assert list(SHAPES3D_FACTORS.bases) == [48000, 4800, 480, 60, 15, 1]
    assert SHAPES3D_FACTORS.num_combinations == 480000
    assert np.allclose(hsv_hues_to_rgb(0.6) * 255, [0, 102, 255], atol=0.5)
    assert np.allclose(hsv_hues_to_rgb(np.array([0.0, 1 / 3])), [[1, 0, 0], [0, 1, 0]])


def test_shapes3d_hues_drive_their_regions(shapes):
    base = np.array([[0, 3, 6, 4, 0, 7]])
    img = shapes.images_from_classes(base)[0].astype(int)
    assert img.shape == (3, 32, 32)
    # sky band: constant light blue at the top, independent of the factors
    assert np.allclose(img[:, 0, :].mean(axis=1), [153, 227, 250], atol=6)
    for k, region in ((0, (slice(29, 32), slice(0, 32))), (1, (slice(9, 12), slice(2, 8)))):
        other = base.copy()
        other[0, k] = 5
        diff = np.abs(shapes.images_from_classes(other)[0].astype(int) - img).sum(axis=0)
        assert diff[region].mean() > 100, k  # the floor / wall changes colour
        assert diff[:3].max() == 0  # the sky does not
    obj = base.copy()
    obj[0, 2] = 0
    d = np.abs(shapes.images_from_classes(obj)[0].astype(int) - img).sum(axis=0)
    ys, xs = np.nonzero(d > 30)
    assert 12 <= ys.mean() <= 26 and 11 <= xs.mean() <= 21  # the object sits near the centre


def test_shapes3d_factors_change_geometry(shapes):
    rs = np.random.RandomState(0)
    cls = SHAPES3D_FACTORS.sample_classes(6, rs)
    imgs = shapes.images_from_classes(cls)
    assert np.array_equal(imgs, shapes.images(SHAPES3D_FACTORS.classes_to_index(cls)))
    base = np.array([0, 5, 2, 0, 0, 7])
    for k in (3, 4, 5):
        alt = base.copy()
        alt[k] = SHAPES3D_FACTORS.sizes[k] - 1
        a, b = shapes.images_from_classes(np.stack([base, alt]))
        assert np.abs(a.astype(int) - b).sum() > 2000, k
    # scale grows the object's coverage; anti-aliasing gives intermediate weights at edges
    areas = []
    for s in (0, 7):
        shapes._ensure(np.array([[1, s, 7]]))
        w = shapes._maps[1, s, 7, 5]
        areas.append(float(w.astype(bool).sum()))
        edge = (w > 0) & (w < 0.2)
        assert edge.any()
    assert areas[1] > 1.4 * areas[0]


def test_shapes3d_resolution_consistency():
    a = ProceduralShapes3D(16, use_disk_cache=False)
    b = ProceduralShapes3D(8, use_disk_cache=False)
    cls = np.array([[1, 2, 3, 4, 2, 1]])
    x16 = a.images_from_classes(cls)
    assert np.abs(area_downsample(x16, 8).astype(int) - b.images_from_classes(cls)).max() <= 1


def test_shapes3d_geometry_disk_cache(cache_dir):
    a = ProceduralShapes3D(8)
    a._try_load()
    a._maps[...] = np.random.RandomState(0).uniform(size=a._maps.shape)
    a._done[...] = True
    a._save()
    b = ProceduralShapes3D(8)
    cls = np.array([[1, 2, 3, 4, 2, 1]])
    assert np.array_equal(b.images_from_classes(cls), a.images_from_classes(cls))


# dSprites pixel statistics -------------------------------------------------------------------
@pytest.fixture(scope="module")
def dsprites():
    return make_dataset("dsprites", 64)


def _classes(shape, scale, orient, px, py):
    return np.array([[shape, scale, orient, px, py]])


def test_dsprites_binary_centre_and_sizes(dsprites):
    """Tolerances: centre within 0.5 px of 16 + 32 pos (integer placement); bounding boxes
    within 1 px of square 20s, ellipse 26s x 14s, heart 20s x 17s (s = 0.5 .. 1.0)."""
    rs = np.random.RandomState(0)
    cls = dsprites.factor_space.sample_classes(200, rs)
    imgs = dsprites.images_from_classes(cls)
    assert set(np.unique(imgs)) <= {0, 255}
    assert all(img.any() for img in imgs)  # every sprite is on the canvas
    scales = np.linspace(0.5, 1.0, 6)
    for shape, (w, h) in ((0, (20, 20)), (1, (26, 14)), (2, (20, 17))):
        for si, s in enumerate(scales):
            for px, py in ((0, 0), (13, 22), (31, 31)):
                img = dsprites.images_from_classes(_classes(shape, si, 0, px, py))[0, 0]
                ys, xs = np.nonzero(img)
                assert abs((xs.max() + 1 - xs.min()) - w * s) <= 1.0 + 1e-9
                assert abs((ys.max() + 1 - ys.min()) - h * s) <= 1.0 + 1e-9
                if shape < 2:  # symmetric shapes: the centre is the bounding-box centre
                    cx = (xs.min() + xs.max() + 1) / 2
                    cy = (ys.min() + ys.max() + 1) / 2
                    assert abs(cx - (16 + 32 * px / 31)) <= 0.5 + 1e-9
                    assert abs(cy - (16 + 32 * py / 31)) <= 0.5 + 1e-9


def test_dsprites_variants(dsprites):
    cls = dsprites.factor_space.sample_classes(8, np.random.RandomState(1))
    mask = dsprites.images_from_classes(cls)[:, 0] == 255
    color = make_dataset("dsprites-color", 64)
    x = color.images_from_classes(cls, np.random.RandomState(0)).transpose(1, 0, 2, 3)
    assert (x[:, ~mask] == 0).all() and (x[:, mask] >= 127).all()
    noisy = make_dataset("dsprites-noisy", 64)
    x = noisy.images_from_classes(cls, np.random.RandomState(0)).transpose(1, 0, 2, 3)
    assert (x[:, mask] == 255).all() and 100 < x[:, ~mask].mean() < 155
    scream = make_dataset("dsprites-scream", 64)
    x1 = scream.images_from_classes(cls, np.random.RandomState(0))
    x2 = scream.images_from_classes(cls, np.random.RandomState(0))
    x3 = scream.images_from_classes(cls, np.random.RandomState(1))
    assert np.array_equal(x1, x2) and not np.array_equal(x1, x3)  # seeded nuisance
    assert x1.shape == (8, 3, 64, 64) and scream.info()["scream_image"] == "procedural"
    assert scream.factor_space == dsprites.factor_space  # nuisance is not a factor
    assert make_dataset("dsprites-color", 32).images(np.arange(3)).shape == (3, 3, 32, 32)


def test_scream_user_image(tmp_path):
    from PIL import Image

    p = tmp_path / "s.png"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(p)
    ds = make_dataset("dsprites-scream", 64, scream_image=str(p))
    cls = np.array([[0, 5, 0, 15, 15]])
    x = ds.images_from_classes(cls, np.random.RandomState(0))[0].astype(float) / 255
    # background = (200/255 + u) / 2 with u in [0, 1); under the sprite 1 - background
    assert (x[:, 0, 0] >= 0.39).all() and (x[:, 0, 0] <= 0.9).all()
    assert np.allclose(x[:, 32, 32], 1 - x[:, 0, 0], atol=1 / 255 + 1e-6)
    with pytest.raises(UserError, match="s2.png"):
        make_dataset("dsprites-scream", 64, scream_image=str(tmp_path / "s2.png"))


def test_real_valued_dsprites():
    ds = make_dataset("dsprites-real", 64, num_images=50, seed=3)
    idx = np.arange(50)
    codes = ds.codes(idx)
    assert codes.dtype == np.float32 and ((codes >= 0) & (codes <= 1)).all()
    assert len(np.unique(codes[:, 3])) == 50  # continuous, not the 32-step grid
    imgs = ds.images(idx)
    assert len(np.unique(imgs)) > 2  # anti-aliased edges
    cls = ds.classes(idx)
    assert np.array_equal(cls, ds.factor_space.code_to_classes(codes))
    # coverage-weighted centroid of an ellipse sits at the sub-pixel centre 16 + 32 pos
    for i in np.flatnonzero(codes[:, 0] == 0.5)[:5]:
        w = imgs[i, 0].astype(float)
        yy, xx = np.mgrid[0:64, 0:64] + 0.5
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        assert abs(cx - (16 + 32 * codes[i, 3])) < 0.3 and abs(cy - (16 + 32 * codes[i, 4])) < 0.3
    assert np.array_equal(make_dataset("dsprites-real", 64, num_images=50, seed=3).images(idx[:4]), imgs[:4])
