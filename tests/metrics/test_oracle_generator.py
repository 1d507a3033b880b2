"""The oracle encoder (tiny, 16x16), its cache, L2, MIG-gen / L2-gen and the report."""
import json

import numpy as np
import pytest
import torch

from semistylegan.data import make_dataset
from semistylegan.metrics import (beta_vae_score, dci_from_dataset, evaluate_all, factor_vae_score, generator_metrics,
                                  get_oracle, l2, l2_from_dataset, mig_from_dataset,
                                  modularity_explicitness_from_dataset,
                                  sap_from_dataset, synthetic, write_metrics_json)
from semistylegan.metrics import oracle as oracle_mod

STEPS = 250


@pytest.fixture(scope="module")
def dsprites16():
    return make_dataset("dsprites", 16)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("oracles")


@pytest.fixture(scope="module")
def tiny_oracle(dsprites16, cache):
    return get_oracle(dsprites16, train_steps=STEPS, seed=0, cache_dir=cache)


def faithful_generator(dataset):
    """Renders exactly the dataset image of the nearest factor class: a perfect generator."""
    def generate(codes, seed):
        return dataset.images_from_classes(dataset.factor_space.code_to_classes(codes))
    return generate


def ignoring_generator(dataset):
    """Ignores the code: random images (seeded), so the oracle reading is unrelated to c'."""
    def generate(codes, seed):
        rs = np.random.RandomState(seed)
        return dataset.images_from_classes(dataset.factor_space.sample_classes(len(codes), rs))
    return generate


def test_oracle_reads_positions_and_reports_itself(tiny_oracle, dsprites16):
    info = tiny_oracle.info
    assert info["train_steps"] == STEPS and info["resolution"] == 16 and info["version"] == oracle_mod.ORACLE_VERSION
    # even a tiny oracle reads the position well above chance (1/32)
    assert info["accuracy"]["posX"] > 0.2 and info["accuracy"]["posY"] > 0.2
    assert 0.0 < info["held_out_l2"] < 1.0 and 0.0 < info["held_out_mig"] <= 1.0
    images = dsprites16.images(np.arange(10) * 1000)
    codes = tiny_oracle.encode(images)
    assert codes.shape == (10, 5) and codes.dtype == np.float32 and (codes >= 0).all() and (codes <= 1).all()
    feats = tiny_oracle.features(images)
    assert feats.shape == (10, 256) and np.isfinite(feats).all()
    c2, f2 = tiny_oracle.encode_and_features(images)
    np.testing.assert_array_equal(c2, codes)
    np.testing.assert_array_equal(f2, feats)
    with pytest.raises(ValueError, match="uint8"):
        tiny_oracle.encode(images.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        tiny_oracle.encode(images[:, :, :8])


def test_oracle_cache_roundtrip(tiny_oracle, dsprites16, cache):
    path = oracle_mod.oracle_path(dsprites16, STEPS, 0, cache)
    assert path.exists() and not list(cache.glob("*.tmp"))
    state = torch.load(path, weights_only=True)  # plain tensors and containers only
    assert state["meta"]["dataset"] == "dsprites"
    again = get_oracle(dsprites16, train_steps=STEPS, seed=0, cache_dir=cache)
    images = dsprites16.images(np.arange(64) * 997)
    np.testing.assert_array_equal(again.encode(images), tiny_oracle.encode(images))
    assert again.info == tiny_oracle.info


def test_oracle_cache_dir_from_environment(monkeypatch, tmp_path, dsprites16):
    monkeypatch.setenv("SEMISTYLEGAN_CACHE", str(tmp_path))
    assert oracle_mod.oracle_path(dsprites16).parent == tmp_path / "oracles"


def test_oracle_training_is_seeded(dsprites16):
    a = oracle_mod.train_oracle(dsprites16, train_steps=5, eval_samples=50, seed=1)
    b = oracle_mod.train_oracle(dsprites16, train_steps=5, eval_samples=50, seed=1)
    for (ka, va), (kb, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_oracle_trains_when_called_without_gradients(dsprites16):
    # evaluation code calls get_oracle inside torch.no_grad(); training must still work
    a = oracle_mod.train_oracle(dsprites16, train_steps=5, eval_samples=50, seed=1)
    with torch.no_grad():
        b = oracle_mod.train_oracle(dsprites16, train_steps=5, eval_samples=50, seed=1)
    for va, vb in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        assert torch.equal(va, vb)


def test_l2_values():
    true = np.array([[0.0, 0.0], [1.0, 1.0]])
    pred = np.array([[0.3, 0.4], [1.0, 1.0]])
    out = l2(pred, true, ["a", "b"])
    assert out["l2"] == pytest.approx(0.25)
    assert out["mae_per_factor"] == pytest.approx({"a": 0.15, "b": 0.2})
    assert out["rmse_per_factor"]["b"] == pytest.approx(np.sqrt(0.08))
    with pytest.raises(ValueError, match="same shape"):
        l2(pred[:, :1], true)
    with pytest.raises(ValueError, match="finite"):
        l2(np.full((2, 2), np.nan), true)


def test_l2_from_dataset_perfect_and_off_by_one_encoders(dsprites16):
    view = _ClassesAsPixels(dsprites16)
    space = dsprites16.factor_space
    read = lambda images: space.classes_to_code(images[:, 0, 0, :5].astype(np.int64))  # noqa: E731
    assert l2_from_dataset(view, read, num_samples=300)["l2"] == 0.0
    shifted = lambda images: read(images) + np.array([0, 0, 0, 1 / 31, 0], np.float32)  # noqa: E731
    out = l2_from_dataset(view, shifted, num_samples=300)
    assert out["l2"] == pytest.approx(1 / 31, rel=1e-5)
    assert out["mae_per_factor"]["posX"] == pytest.approx(1 / 31, rel=1e-5) and out["mae_per_factor"]["shape"] == 0


class _ClassesAsPixels:
    """dSprites whose 'images' carry their factor classes in the first pixels (a test encoder reads them)."""

    def __init__(self, ds):
        self.ds, self.factor_space, self.is_grid = ds, ds.factor_space, True

    def labeled_candidates(self):
        return np.arange(len(self.ds))

    def images(self, idx):
        out = np.zeros((len(idx), 1, 16, 16), np.uint8)
        out[:, 0, 0, :5] = self.ds.classes(idx)
        return out

    def classes(self, idx):
        return self.ds.classes(idx)

    def codes(self, idx):
        return self.ds.codes(idx)


def test_generator_metrics_separate_good_and_bad_generators(tiny_oracle, dsprites16):
    space = dsprites16.factor_space
    good = generator_metrics(faithful_generator(dsprites16), space, tiny_oracle, num_samples=1500, repeats=2, seed=0)
    bad = generator_metrics(ignoring_generator(dsprites16), space, tiny_oracle, num_samples=1500, repeats=2, seed=0)
    assert good["mig_gen"] > bad["mig_gen"] + 0.1
    assert good["l2_gen"] < bad["l2_gen"] - 0.1
    assert good["mig_gen_per_factor"]["posX"] > 0.3 > bad["mig_gen_per_factor"]["posX"]
    assert set(good) >= {"mig_gen", "mig_gen_std", "l2_gen", "l2_gen_std", "l2_gen_mae_per_factor"}
    again = generator_metrics(faithful_generator(dsprites16), space, tiny_oracle, num_samples=1500, repeats=2, seed=0)
    assert again == good


def test_generator_output_is_checked(tiny_oracle, dsprites16):
    space = dsprites16.factor_space
    with pytest.raises(ValueError, match="uint8"):
        generator_metrics(lambda c, s: np.zeros((len(c), 1, 16, 16), np.float32), space, tiny_oracle, num_samples=10,
                          repeats=1)
    with pytest.raises(ValueError, match="shape"):
        generator_metrics(lambda c, s: np.zeros((3, 1, 16, 16), np.uint8), space, tiny_oracle, num_samples=10,
                          repeats=1)


def test_evaluate_all_equals_the_single_metrics():
    # One shared draw in the report gives exactly what each sampled metric (= dlib) draws itself.
    sizes = (3, 6, 8, 5, 5)
    grid = synthetic.SyntheticCodeGrid(sizes)
    rep = synthetic.representation("noisy0.2", sizes)
    fv = dict(num_train=100, num_eval=50, num_variance_estimate=480)
    bv = dict(num_train=60, num_eval=30, batch_size=16)
    enc = evaluate_all(grid, encode=rep, num_samples=480, num_test=240, seed=2, dci_train=160, dci_test=80,
                       factor_vae_options=fv, beta_vae_options=bv)["encoder"]
    assert enc["mig"]["discrete_mig"] == mig_from_dataset(grid, rep, seed=2, num_train=480)["discrete_mig"]
    assert enc["sap"] == sap_from_dataset(grid, rep, seed=2, num_train=480, num_test=240)
    assert enc["modularity_explicitness"] == modularity_explicitness_from_dataset(grid, rep, seed=2, num_train=480,
                                                                                  num_test=240)
    assert enc["dci"] == dci_from_dataset(grid, rep, seed=2, num_train=160, num_test=80)
    assert enc["factor_vae"] == factor_vae_score(grid, rep, seed=2, **fv)
    assert enc["beta_vae"] == beta_vae_score(grid, rep, seed=2, **bv)


def test_evaluate_all_small(tiny_oracle, dsprites16, tmp_path):
    # DCI is skipped here: 113 classes x 100 boosting stages cost ~10 s whatever the sample size
    report = evaluate_all(
        dsprites16, encode=tiny_oracle.encode, generate=faithful_generator(dsprites16), oracle=tiny_oracle,
        num_samples=480, seed=0, skip=("dci",), repeats=2,
        factor_vae_options=dict(num_train=60, num_eval=30, num_variance_estimate=300),
        beta_vae_options=dict(num_train=60, num_eval=30, batch_size=16),
    )
    enc = report["encoder"]
    assert set(enc) >= {"mig", "sap", "modularity_explicitness", "factor_vae", "beta_vae", "l2", "settings"}
    assert "discrete_mig" in enc["mig"] and "SAP_score" in enc["sap"] and "eval_accuracy" in enc["factor_vae"]
    assert enc["l2"]["l2"] > 0
    assert report["generator"]["mig_gen"] > 0
    assert report["image_quality"]["fid_oracle"] >= 0 and 0 <= report["image_quality"]["precision_oracle"] <= 1
    assert report["oracle"]["held_out_l2"] == tiny_oracle.info["held_out_l2"]
    path = write_metrics_json(tmp_path / "run" / "metrics.json", report)
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]
    small = evaluate_all(dsprites16, encode=tiny_oracle.encode, num_samples=320,
                         skip=("dci", "beta_vae", "factor_vae", "sap", "modularity"))
    assert set(small["encoder"]) == {"mig", "l2", "settings"} and "generator" not in small
    with pytest.raises(ValueError, match="unknown parts"):
        evaluate_all(dsprites16, encode=tiny_oracle.encode, skip=("bogus",))


def test_write_metrics_json_replaces_nan_by_null(tmp_path):
    path = write_metrics_json(tmp_path / "m.json", {"a": float("nan"), "b": np.float32(1.5), "c": np.arange(2)})
    assert json.loads(path.read_text()) == {"a": None, "b": 1.5, "c": [0, 1]}
