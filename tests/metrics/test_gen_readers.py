"""Independent readers for MIG-gen / L2-gen (metrics.readers, pixel_oracle, render_match)."""

import numpy as np
import pytest
import torch

from semistylegan.data.dsprites import ProceduralDSprites, _inside, area_downsample
from semistylegan.data.dsprites_variants import DSpritesVariant
from semistylegan.metrics import oracle as oracle_mod
from semistylegan.metrics import pixel_oracle as pixel_mod
from semistylegan.metrics.readers import (
    generator_readings,
    reading_flags,
    symmetry_check,
)
from semistylegan.metrics.render_match import DSpritesGridSearch, render_distance
from semistylegan.metrics.report import evaluate_all

STEPS = 600


@pytest.fixture(scope="module")
def ds16():
    return ProceduralDSprites(16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("readers")


@pytest.fixture(scope="module")
def cnn16(ds16, cache):
    return oracle_mod.get_oracle(ds16, train_steps=STEPS, seed=0, cache_dir=cache)


@pytest.fixture(scope="module")
def mlp16(ds16, cache):
    return pixel_mod.get_pixel_oracle(ds16, train_steps=STEPS, seed=0, cache_dir=cache)


def faithful(dataset):
    def generate(codes, seed):
        return dataset.images_from_classes(dataset.factor_space.code_to_classes(codes))

    return generate


def blobs(dataset, n, rs, disc_radius=(15.0, 18.0)):
    """Out-of-distribution images at the dataset's resolution: discs (radius in 64x64 pixels; the default is
    wider than any sprite), uniform noise, squares at scale 1.6 (dSprites scales end at 1.0)."""
    g = (np.arange(64) + 0.5)[None, :]
    out = []
    for i in range(n):
        kind = i % 3
        cy, cx = rs.uniform(20, 44, size=2)
        u, v = g - cx, -(g.T - cy)
        if kind == 0:
            img = u**2 + v**2 <= rs.uniform(*disc_radius) ** 2
        elif kind == 1:
            img = rs.uniform(size=(64, 64)) < 0.5
        else:  # a square larger than any dSprites scale (1.0), turned by a random angle
            a = rs.uniform(0, np.pi / 2)
            img = _inside(0, np.cos(a) * u + np.sin(a) * v, -np.sin(a) * u + np.cos(a) * v, 1.6)
        out.append(img.astype(np.uint8) * 255)
    return area_downsample(np.stack(out)[:, None], dataset.resolution)


# ---- the ground-truth renderer ----------------------------------------------------------------


@pytest.mark.parametrize("resolution", [16, 32])
def test_grid_search_equals_brute_force(resolution):
    ds = ProceduralDSprites(resolution)
    # a small grid: 3 shapes x 2 scales x 3 orientations x 32 x 32 positions = 18,432 codes
    scales, orients = (1, 4), (0, 10, 29)
    subset = [(s * 6 + sc) * 40 + o for s in range(3) for sc in scales for o in orients]
    search = DSpritesGridSearch(ds, template_subset=subset)
    grid = np.array(
        [(s, sc, o, x, y) for s in range(3) for sc in scales for o in orients for x in range(32) for y in range(32)],
        dtype=np.int64,
    )
    rs = np.random.RandomState(1)
    asked = grid[rs.randint(len(grid), size=12)]
    real = ds.images_from_classes(asked)
    noisy = np.clip(real.astype(int) + rs.randint(-60, 60, size=real.shape), 0, 255).astype(np.uint8)
    other = ds.images_from_classes(grid[rs.randint(len(grid), size=6)])  # real images asked for another code
    images = np.concatenate([real[:6], noisy[:6], other, blobs(ds, 6, rs)])
    asked = np.concatenate([asked[:6], asked[6:], asked[:6], asked[6:]])
    found = search.nearest(images, asked)
    grid_index = {tuple(c): i for i, c in enumerate(grid)}
    rendered = ds.images_from_classes(grid).reshape(len(grid), -1).astype(np.int64)  # every image of the small grid
    for i in range(len(images)):
        d2 = ((rendered - images[i].reshape(1, -1).astype(np.int64)) ** 2).sum(axis=1)
        best = d2.min()
        assert found["nearest_d2"][i] == best
        assert found["asked_d2"][i] == d2[grid_index[tuple(asked[i])]]
        assert found["match"][i] == (d2[grid_index[tuple(asked[i])]] == best)
        assert d2[grid_index[tuple(found["nearest_classes"][i])]] == best
    assert found["match"][:6].all() and (found["nearest_d2"][:6] == 0).all()
    assert not found["match"][12:18].all()  # the images of other codes are mostly not matches
    # the bound prunes: real images are measured on a handful of codes, not on the 18,432
    assert found["candidates"][:6].max() < 100


def test_render_distance_units():
    a = np.zeros((2, 1, 4, 4), np.uint8)
    b = a.copy()
    b[1] = 255
    np.testing.assert_allclose(render_distance(a, b), [0.0, 1.0])


# ---- the model-based readers ------------------------------------------------------------------


def test_pixel_reader_reaches_the_cnn_oracles_accuracy(cnn16, mlp16):
    cnn, mlp = cnn16.info["accuracy"], mlp16.info["accuracy"]
    # held-out real images, same draw for both readers; small budgets (the 32x32 figure is in the docs)
    for factor in ("shape", "scale", "orientation", "posX", "posY"):
        assert mlp[factor] >= cnn[factor] - 0.05, (factor, mlp, cnn)
    assert mlp["shape"] > 0.45 and mlp["posX"] > 0.3  # well above chance (1/3, 1/32) even this small
    # the pixel reader shares no module with the encoders: no convolution layer at all
    assert not any(isinstance(m, torch.nn.Conv2d) for m in mlp16.net.modules())


@pytest.mark.parametrize("name", ["cnn", "pixel-mlp"])
def test_readers_flag_out_of_distribution_blobs(name, cnn16, mlp16, ds16):
    reader = {"cnn": cnn16, "pixel-mlp": mlp16}[name]
    rs = np.random.RandomState(3)
    ood = blobs(ds16, 90, rs)
    flags = reading_flags(reader, ood, ds16)
    # (almost) no confident reading passes unflagged: a blob is either unsure or unexplained by its rendering
    # (these readers are tiny; the 32x32 readers' figures are in docs/method.md ("Generator metrics"))
    assert flags["flagged"].mean() >= 0.85, flags["flagged"].mean()
    real = ds16.images(rs.randint(len(ds16), size=300))
    real_flags = reading_flags(reader, real, ds16)
    assert real_flags["flagged"].mean() <= 0.5 * flags["flagged"].mean()


def test_augmentation_keeps_the_factors_readable():
    gen = torch.Generator().manual_seed(0)
    x = torch.full((64, 1, 16, 16), -1.0)
    x[:, :, 4:9, 6:11] = 1.0
    y = pixel_mod.augment(x, gen)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    # the square stays where it was (no shift, rotation or flip): it is brighter than the background
    assert (y[:, :, 4:9, 6:11].mean(dim=(1, 2, 3)) > y[:, :, 12:, 12:].mean(dim=(1, 2, 3)) + 0.5).all()


# ---- the cache -------------------------------------------------------------------------------


class _Rerendered(ProceduralDSprites):
    """dSprites with a changed renderer (one pixel lit): same name, resolution and factors."""

    def images_from_classes(self, classes, random_state=None):
        out = super().images_from_classes(classes, random_state)
        out[:, :, 0, 0] = 255
        return out


@pytest.mark.parametrize("kind", ["cnn", "pixel-mlp"])
def test_cached_reader_of_another_dataset_or_version_is_rebuilt(kind, tmp_path, ds16):
    get, path_of, version_name = {
        "cnn": (oracle_mod.get_oracle, oracle_mod.oracle_path, "ORACLE_VERSION"),
        "pixel-mlp": (pixel_mod.get_pixel_oracle, pixel_mod.pixel_oracle_path, "PIXEL_ORACLE_VERSION"),
    }[kind]
    first = get(ds16, train_steps=3, seed=0, cache_dir=tmp_path, eval_samples=20)
    path = path_of(ds16, 3, 0, tmp_path)
    assert path.exists()
    assert get(ds16, train_steps=3, seed=0, cache_dir=tmp_path).info == first.info  # reused as is
    other = _Rerendered(16)
    assert path_of(other, 3, 0, tmp_path) == path  # same file name: only the meta tells them apart
    rebuilt = get(other, train_steps=3, seed=0, cache_dir=tmp_path, eval_samples=20)
    assert rebuilt.info["fingerprint"] != first.info["fingerprint"]
    assert torch.load(path, weights_only=True)["meta"]["fingerprint"] == rebuilt.info["fingerprint"]
    # a file written by another version of the reader is rebuilt too
    state = torch.load(path, weights_only=True)
    state["meta"]["version"] = -1
    torch.save(state, path)
    again = get(other, train_steps=3, seed=0, cache_dir=tmp_path, eval_samples=20)
    assert again.info["version"] == getattr({"cnn": oracle_mod, "pixel-mlp": pixel_mod}[kind], version_name)
    assert torch.load(path, weights_only=True)["meta"]["version"] == again.info["version"]


# ---- the report ------------------------------------------------------------------------------


def test_symmetry_check_counts_twin_readings():
    from semistylegan.data.dsprites import DSPRITES_FACTORS as space

    rs = np.random.RandomState(0)
    asked = space.sample_classes(4000, rs)
    exact = symmetry_check(asked, asked, space)
    assert exact["square"]["told_apart"] == 1.0 and exact["ellipse"]["told_apart"] == 1.0
    # a reader that cannot tell a square from its turn by 90 degrees picks one of the four at random
    twin = asked.copy()
    turn = rs.randint(4, size=len(asked))
    twin[:, 2] = np.rint(asked[:, 2] + turn * 39 / 4.0).astype(int) % 39
    res = symmetry_check(twin, asked, space)
    assert abs(res["square"]["told_apart"] - 0.25) < 0.05
    assert res["square"]["symmetric_readings"] > 0.9 * (asked[:, 0] == 0).sum()


def test_headline_is_the_least_favourable_reader(cnn16, mlp16, ds16):
    gen = generator_readings(
        faithful(ds16), ds16, {"cnn": cnn16, "pixel-mlp": mlp16}, num_samples=400, repeats=2, render_samples=50
    )
    migs = {n: d["mig_gen"] for n, d in gen["readers"].items()}
    l2s = {n: d["l2_gen"] for n, d in gen["readers"].items()}
    assert gen["mig_gen"] == min(migs.values()) and gen["mig_gen_reader"] == min(migs, key=migs.get)
    assert gen["l2_gen"] == max(l2s.values()) and gen["l2_gen_reader"] == max(l2s, key=l2s.get)
    ren = gen["renderer_reader"]
    # a generator that draws the real image of each code: zero render distance, every image an exact match
    assert ren["render_mse_mean"] == 0.0 and ren["exact_match_rate"] == 1.0 and ren["off_grid_generated"] == 0.0
    assert all(v == 1.0 for v in ren["accuracy_generated"].values())
    # on real images the generated readings and the real ones coincide
    for d in gen["readers"].values():
        assert d["accuracy_generated"] == d["accuracy_real"]
        assert d["ood"]["flagged_generated"] == d["ood"]["flagged_real"]
    assert set(gen["agreement"]) == {"cnn vs pixel-mlp", "cnn vs renderer", "pixel-mlp vs renderer"}


def test_blob_generator_is_flagged_and_not_matched(cnn16, mlp16, ds16):
    def blob_generator(codes, seed):
        return blobs(ds16, len(codes), np.random.RandomState(seed))

    gen = generator_readings(
        blob_generator, ds16, {"cnn": cnn16, "pixel-mlp": mlp16}, num_samples=150, repeats=1, render_samples=30
    )
    for d in gen["readers"].values():
        assert d["ood"]["flagged_generated"] > 0.9 and d["ood"]["flagged_real"] < 0.5
    assert gen["renderer_reader"]["exact_match_rate"] < 0.1 and gen["renderer_reader"]["off_grid_generated"] > 0.6


def test_dataset_without_renderer_gets_model_readers_only(cnn16, mlp16, capsys):
    from semistylegan.commands.evaluate import _print_readers

    color = DSpritesVariant("color", resolution=16)
    cnn = oracle_mod.train_oracle(color, train_steps=5, eval_samples=20)
    mlp = pixel_mod.train_pixel_oracle(color, train_steps=5, eval_samples=20)
    report = evaluate_all(
        color,
        generate=faithful(color),
        readers={"cnn": cnn, "pixel-mlp": mlp},
        num_samples=200,
        repeats=1,
        skip=("oracle_fid",),
    )
    gen = report["generator"]
    assert gen["readers_used"] == ["cnn", "pixel-mlp"] and "renderer_reader" not in gen
    assert gen["renderer"].startswith("none")
    assert "unexplained_generated" not in gen["readers"]["cnn"]["ood"]
    _print_readers(gen)
    printed = capsys.readouterr().out
    assert "readers used: cnn, pixel-mlp; renderer: none" in printed
