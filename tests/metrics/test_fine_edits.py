"""Edits of a semi-fine model read by the oracle (metrics.fine_edits) and `evaluate` on a semi-fine run."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from semistylegan.cli import main
from semistylegan.data.dataset import GroundTruthDataset, ImageDataset
from semistylegan.data.factors import FactorSpace
from semistylegan.metrics.fine_edits import HEADLINE, fine_edit_examples, fine_edit_metrics, held_out_indices
from test_editing import tiny_run  # noqa: E402  (tests/ is on sys.path under pytest)

# --- a stub world in which every number can be worked out by hand -----------------------------
# Factors a, b (fine, two values each) and c (coarse, three values). Image channel k is flat,
# 100 * class of factor k, so the stub oracle and the stub E_fine read the classes back exactly,
# and the box downsample of the coarse input keeps them.
SPACE = FactorSpace(("a", "b", "c"), (2, 2, 3))


class FlatGrid(GroundTruthDataset):
    name = "flat-grid"
    factor_space = SPACE
    resolution = 8
    channels = 3

    def images_from_classes(self, classes, random_state=None):
        classes = np.asarray(classes, dtype=np.uint8)
        return np.repeat(np.repeat((100 * classes)[:, :, None, None], 8, axis=2), 8, axis=3)


class ReadingOracle:
    def predict_classes(self, images):
        return np.rint(images[:, :, 0, 0] / 100.0).astype(np.int64)


def _classes(x: torch.Tensor) -> torch.Tensor:
    """Classes of flat images in [-1, 1] (or their box downsample)."""
    return torch.round((x[:, :, 0, 0] + 1.0) * 127.5 / 100.0)


def _image(classes: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return (100.0 * classes / 127.5 - 1.0)[:, :, None, None].expand_as(like).clone()


class StubFine:
    """A semi-fine method whose E_fine reads a, b exactly and whose G draws the scene it is asked
    for, taking c from its coarse input; `g_bug` changes what G draws."""

    fine_idx = (0, 1)
    fine_names = ("a", "b")
    input_res = 4
    z_dim = 2
    cfg = SimpleNamespace(labeled_fraction=0.25, seed=0)

    def __init__(self, g_bug=None):
        self.g_bug = g_bug

    def encode_fine(self, nets, x):
        return _classes(x)[:, :2]  # sizes 2: class = code

    def generate(self, nets, codes, z, coarse=None):
        cls = _classes(coarse)
        if self.g_bug == "copies_input":     # G ignores the codes
            return _image(cls, coarse)
        cls[:, :2] = codes
        if self.g_bug == "flips_b":          # G draws b the other way round
            cls[:, 1] = 1 - cls[:, 1]
        if self.g_bug == "c_to_zero":        # G loses the coarse factor
            cls[:, 2] = 0
        if self.g_bug == "b_copies_a":       # G draws b as the a it is asked for
            cls[:, 1] = cls[:, 0]
        return _image(cls, coarse)


def _stub_report(g_bug=None, n=40, seed=0):
    return fine_edit_metrics(StubFine(g_bug), {}, FlatGrid(), ReadingOracle(), n=n, seed=seed)


def test_a_model_that_edits_exactly_scores_zero():
    r = _stub_report()
    assert r["n_images"] == 40
    for key in ("edited_abs_err", "coarse_kept_abs_err", "other_fine_kept_abs_err", "reconstruction_fine_abs_err",
                "reconstruction_coarse_abs_err", "oracle_on_real_abs_err", "coarse_from_upsampled_input_abs_err",
                "E_fine_on_edit_vs_request"):
        assert r[key] == 0.0, key
    assert r["edited_exact"] == r["coarse_kept_exact"] == r["other_fine_kept_exact"] == 1.0
    assert r["factors"]["a"]["role"] == "fine" and r["factors"]["c"]["role"] == "coarse"
    assert "object_pixels" not in r  # no object_hue factor


def test_a_generator_that_ignores_the_codes_misses_every_edit_by_the_whole_range():
    # with two values per fine factor the requested value is the other one: |1 - 0| / (2 - 1) = 1
    r = _stub_report("copies_input")
    assert r["edited_abs_err"] == 1.0 and r["edited_exact"] == 0.0
    assert r["coarse_kept_abs_err"] == 0.0 and r["other_fine_kept_abs_err"] == 0.0
    # E_fine reads the unedited image back: off from the request by 1 too
    assert r["E_fine_on_edit_vs_request"] == 1.0


def test_a_generator_that_flips_one_fine_factor():
    r = _stub_report("flips_b")
    f = r["factors"]
    assert f["a"]["edited"] == {"abs_err": 0.0, "exact": 1.0}
    assert f["b"]["edited"] == {"abs_err": 1.0, "exact": 0.0}
    assert f["a"]["kept_when_other_factor_edited"]["abs_err"] == 0.0
    assert f["b"]["kept_when_other_factor_edited"]["abs_err"] == 1.0
    assert r["edited_abs_err"] == 0.5 and r["other_fine_kept_abs_err"] == 0.5
    assert f["b"]["reconstruction"]["abs_err"] == 1.0 and f["a"]["reconstruction"]["abs_err"] == 0.0


def test_a_generator_that_loses_the_coarse_factor():
    r = _stub_report("c_to_zero", n=40, seed=3)
    c = FlatGrid().classes(held_out_indices(StubFine(), FlatGrid(), 40, 3))[:, 2]
    assert r["coarse_kept_abs_err"] == pytest.approx(np.mean(c) / 2)   # |0 - c| / (3 - 1)
    assert r["coarse_kept_exact"] == pytest.approx(np.mean(c == 0))
    assert r["edited_abs_err"] == 0.0


def test_a_generator_that_draws_b_like_a():
    # images round robin: even positions get a edited (to 1 - a), odd ones b (to 1 - b)
    r = _stub_report("b_copies_a", n=40, seed=5)
    cls = FlatGrid().classes(held_out_indices(StubFine(), FlatGrid(), 40, 5))
    a, b = cls[:, 0], cls[:, 1]
    edit_a, edit_b = np.arange(40) % 2 == 0, np.arange(40) % 2 == 1
    f = r["factors"]
    # a edited: G draws b = 1 - a, which misses the kept b where a == b
    assert f["b"]["kept_when_other_factor_edited"]["abs_err"] == pytest.approx(np.mean((a == b)[edit_a]))
    # b edited to 1 - b: G draws b = a, which misses the request where a == b
    assert f["b"]["edited"]["abs_err"] == pytest.approx(np.mean((a == b)[edit_b]))
    # nothing edited: G draws b = a, which misses where a != b
    assert f["b"]["reconstruction"]["abs_err"] == pytest.approx(np.mean(a != b))
    # the draw tells the edit (b = 1 - a) from a reconstruction (b = a) on the images where a is edited
    assert np.mean((a == b)[edit_a]) != np.mean((a != b)[edit_a])
    assert f["a"]["edited"]["abs_err"] == 0.0 and f["a"]["kept_when_other_factor_edited"]["abs_err"] == 0.0


def test_held_out_images_are_outside_the_labelled_subset_and_seeded():
    from semistylegan.data import LabeledSubset

    ds = FlatGrid()
    labelled = set(LabeledSubset(ds, 0.25, seed=0).indices.tolist())
    idx = held_out_indices(StubFine(), ds, 200, 5)
    assert not labelled & set(idx.tolist()) and len(set(idx.tolist())) == len(ds) - len(labelled)
    assert np.array_equal(idx, held_out_indices(StubFine(), ds, 200, np.random.RandomState(5)))
    assert not np.array_equal(idx, held_out_indices(StubFine(), ds, 200, 6))


def test_bad_inputs():
    class NoGrid(ImageDataset):
        factor_space = SPACE

    with pytest.raises(ValueError, match="full factor grid"):
        fine_edit_metrics(StubFine(), {}, NoGrid(), ReadingOracle(), n=4)
    with pytest.raises(ValueError, match="at least one image"):
        fine_edit_metrics(StubFine(), {}, FlatGrid(), ReadingOracle(), n=0)
    with pytest.raises(ValueError, match="seed must be"):
        fine_edit_metrics(StubFine(), {}, FlatGrid(), ReadingOracle(), n=4, seed=1.5)


# --- a tiny trained semi-fine model on procedural 3DShapes 16x16 ---------------------------------

@pytest.fixture(scope="module")
def fine_run(tmp_path_factory):
    """Two steps of semi-fine on 3DShapes (the three hues fine) at `--preset tiny` sizes, trained once."""
    return tiny_run(tmp_path_factory, "semi-fine", args=("--dataset", "shapes3d"))


@pytest.fixture(scope="module")
def loaded(fine_run, tmp_path_factory):
    """The run, its dataset and a 10-step oracle, cached where `evaluate --oracle-steps 10` finds it
    (a module fixture is set up before the per-test cache variable of conftest.py)."""
    from semistylegan.evaluation import load_run
    from semistylegan.metrics.oracle import get_oracle

    run = load_run(fine_run)
    dataset = run.dataset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEMISTYLEGAN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        oracle = get_oracle(dataset, train_steps=10, eval_samples=200)
    return run, dataset, oracle


def test_report_keys_and_ranges(loaded):
    run, dataset, oracle = loaded
    r = fine_edit_metrics(run.method, run.nets, dataset, oracle, n=24, seed=0)
    assert r["n_images"] == 24
    assert set(r["factors"]) == set(dataset.factor_space.names)
    assert [n for n, f in r["factors"].items() if f["role"] == "fine"] == ["floor_hue", "wall_hue", "object_hue"]
    for key, _ in HEADLINE:
        assert 0.0 <= r[key] <= 1.0, key
    for name, row in r["factors"].items():
        edit_key = "edited" if row["role"] == "fine" else "kept_when_fine_factor_edited"
        assert 0.0 <= row[edit_key]["abs_err"] <= 1.0 and 0.0 <= row[edit_key]["exact"] <= 1.0, name
    px = r["object_pixels"]
    assert 0.0 < px["object_pixel_share"] < 1.0 and 0.0 <= px["object_share_of_worst5"] <= 1.0
    assert px["worst5_mean_error"] >= px["mean_error"] > 0.0


def test_same_seed_same_report(loaded):
    run, dataset, oracle = loaded
    a = fine_edit_metrics(run.method, run.nets, dataset, oracle, n=12, seed=7)
    assert a == fine_edit_metrics(run.method, run.nets, dataset, oracle, n=12, seed=np.random.RandomState(7))
    b = fine_edit_metrics(run.method, run.nets, dataset, oracle, n=12, seed=8)
    assert a["factors"]["wall_hue"]["E_fine_read_error"] != b["factors"]["wall_hue"]["E_fine_read_error"]


def test_examples_picture(loaded):
    run, dataset, _ = loaded
    pic = fine_edit_examples(run.method, run.nets, dataset.images(np.arange(3)), scale=1)
    # six rows (input, recon, wall_hue at four values) of three 16x16 images, plus a label column
    assert pic.height == 6 * 17 + 1 and pic.width > 3 * 17
    with pytest.raises(ValueError, match="not a fine factor"):
        fine_edit_examples(run.method, run.nets, dataset.images(np.arange(3)), factor="scale")


def test_evaluate_writes_fine_edits(fine_run, loaded, tmp_path, capsys):
    run, dataset, oracle = loaded
    out = tmp_path / "m.json"
    assert main(["evaluate", str(fine_run), "--out", str(out), "--edit-images", "20", "--seed", "2",
                 "--oracle-steps", "10"]) == 0
    report = json.loads(out.read_text())
    direct = fine_edit_metrics(run.method, run.nets, dataset, oracle, n=20, seed=2)
    assert report["fine_edits"]["edited_abs_err"] == pytest.approx(direct["edited_abs_err"])
    assert report["fine_edits"]["factors"]["shape"] == direct["factors"]["shape"]
    assert report["run"]["fine_factors"] == ["floor_hue", "wall_hue", "object_hue"]
    assert (tmp_path / "edit_examples.png").is_file()
    printed = capsys.readouterr().out
    for _, label in HEADLINE:
        assert label in printed


@pytest.mark.parametrize("args,message", [
    (["--edit-images", "0"], "--edit-images must be in [1, 100000], got 0"),
    (["--edit-images", "100001"], "--edit-images must be in [1, 100000], got 100001"),
    (["--skip", "dci"], "--skip and --inception choose among"),
    (["--inception"], "--skip and --inception choose among"),
])
def test_evaluate_refuses_options_a_semi_fine_run_cannot_use(fine_run, tmp_path, capsys, args, message):
    out = tmp_path / "m.json"
    assert main(["evaluate", str(fine_run), "--out", str(out), "--oracle-steps", "10", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() and not (tmp_path / "edit_examples.png").exists()
