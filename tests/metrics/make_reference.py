"""Compute tests/metrics/reference_vectors.json with disentanglement_lib 1.5.

Not run by the tests (CI does not install disentanglement_lib). To regenerate:

    .venv/bin/pip install gin-config absl-py six
    .venv/bin/pip install --no-deps disentanglement-lib==1.5
    OMP_NUM_THREADS=1 .venv/bin/python tests/metrics/make_reference.py

Inputs are not stored, only their recipes: the synthetic grid of
`semistylegan.metrics.synthetic` (dSprites factor sizes, deterministic representations) with
factor classes from `synthetic.fixed_split` (RandomState(0): 10,000 train then 5,000 test).
Fixed-data metrics run dlib's `_compute_*` functions on those arrays (transposed to dlib's
(dims, N) layout); sampled metrics run dlib's `compute_*` on `SyntheticCodeGrid` with
RandomState(seed). DCI uses a smaller grid (factor sizes DCI_SIZES, its own
`fixed_split(400, 200, DCI_SIZES)`) to keep the tests fast, and is computed twice: with dlib as
is (GradientBoostingClassifier with random_state=None, so it varies by ~1e-3) and with its
classifier seeded (random_state=0), which must match `semistylegan.metrics.dci(..., seed=0)` to
float precision.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dlib_shim  # noqa: E402  (must precede disentanglement_lib)

from disentanglement_lib.evaluation.metrics import beta_vae as d_beta_vae  # noqa: E402
from disentanglement_lib.evaluation.metrics import dci as d_dci  # noqa: E402
from disentanglement_lib.evaluation.metrics import factor_vae as d_factor_vae  # noqa: E402
from disentanglement_lib.evaluation.metrics import mig as d_mig  # noqa: E402
from disentanglement_lib.evaluation.metrics import modularity_explicitness as d_mod  # noqa: E402
from disentanglement_lib.evaluation.metrics import sap_score as d_sap  # noqa: E402
from disentanglement_lib.evaluation.metrics import utils as d_utils  # noqa: E402

from semistylegan.metrics import synthetic  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_vectors.json")

# Sizes, kept small enough for the tests to recompute every entry in seconds.
MIG_N = 10000          # fixed MIG: all 10,000 training rows
SAP_N = (3000, 1500)   # SAP / modularity-explicitness: first rows of train / test
DCI_N = (400, 200)
DCI_SIZES = (3, 6, 8, 5, 5)  # DCI: a smaller grid (fewer classes -> fewer trees), own split
FVAE = dict(batch_size=64, num_train=1000, num_eval=500, num_variance_estimate=2000)
FVAE_FULL = dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000)
BVAE = dict(batch_size=16, num_train=600, num_eval=300)
SAMPLED_MIG = dict(num_train=10000, batch_size=16)


def dlib_modularity_explicitness(mtr, ytr, mte, yte):
    """The body of dlib's compute_modularity_explicitness on fixed (dims, N) arrays."""
    mi = d_utils.discrete_mutual_info(d_utils.make_discretizer(mtr), ytr)
    out = {"modularity_score": float(d_mod.modularity(mi))}
    a, mean, std = d_utils.normalize_data(mtr)
    b, _, _ = d_utils.normalize_data(mte, mean, std)
    tr, te = [], []
    for i in range(ytr.shape[0]):
        x, y = d_mod.explicitness_per_factor(a, ytr[i], b, yte[i])
        tr.append(x)
        te.append(y)
    out["explicitness_score_train"] = float(np.mean(tr))
    out["explicitness_score_test"] = float(np.mean(te))
    return out


def floats(d):
    return {k: (int(v) if isinstance(v, (int, np.integer)) else float(v)) for k, v in d.items()}


def dci_entries(case):
    a, b = DCI_N
    ytr, yte = synthetic.fixed_split(a, b, DCI_SIZES)
    rep = synthetic.representation(case, DCI_SIZES)
    mtr, mte = rep(ytr), rep(yte)
    out = {"dci_dlib": floats(d_dci._compute_dci(mtr.T, ytr.T, mte.T, yte.T))}
    original = d_dci.ensemble.GradientBoostingClassifier
    d_dci.ensemble.GradientBoostingClassifier = lambda: original(random_state=0)
    try:
        out["dci_dlib_seeded0"] = floats(d_dci._compute_dci(mtr.T, ytr.T, mte.T, yte.T))
    finally:
        d_dci.ensemble.GradientBoostingClassifier = original
    return out


def main():
    warnings.filterwarnings("ignore")
    if sys.argv[1:] == ["--only-dci"]:  # refresh only the DCI entries of an existing file
        with open(OUT) as f:
            ref = json.load(f)
        ref["sizes"]["dci_n"], ref["sizes"]["dci_sizes"] = DCI_N, DCI_SIZES
        for case in synthetic.CASES:
            ref["cases"][case].update(dci_entries(case))
            print(case, ref["cases"][case]["dci_dlib_seeded0"], flush=True)
        with open(OUT + ".tmp", "w") as f:
            json.dump(ref, f, indent=1, sort_keys=True)
        os.replace(OUT + ".tmp", OUT)
        return
    dlib_shim.bind_study_defaults()
    ytr, yte = synthetic.fixed_split()
    dataset = synthetic.SyntheticCodeGrid()
    ref = {
        "generator": "tests/metrics/make_reference.py",
        "versions": {
            "disentanglement_lib": "1.5",
            "numpy": np.__version__,
            "sklearn": __import__("sklearn").__version__,
            "scipy": __import__("scipy").__version__,
            "python": platform.python_version(),
        },
        "sizes": {"mig_n": MIG_N, "sap_n": SAP_N, "dci_n": DCI_N, "dci_sizes": DCI_SIZES, "factor_vae": FVAE,
                  "factor_vae_full": FVAE_FULL,
                  "beta_vae": BVAE, "sampled_mig": SAMPLED_MIG},
        "cases": {},
    }
    for case in synthetic.CASES:
        t0 = time.time()
        rep = synthetic.representation(case)
        mtr, mte = rep(ytr), rep(yte)
        entry = {}
        entry["mig"] = floats(d_mig._compute_mig(mtr[:MIG_N].T, ytr[:MIG_N].T))
        entry["mig_float32"] = floats(d_mig._compute_mig(mtr[:MIG_N].T.astype(np.float32), ytr[:MIG_N].T))
        a, b = SAP_N
        entry["sap_discrete"] = floats(d_sap._compute_sap(mtr[:a].T, ytr[:a].T, mte[:b].T, yte[:b].T, False))
        entry["sap_continuous"] = floats(d_sap._compute_sap(mtr[:a].T, ytr[:a].T, mte[:b].T, yte[:b].T, True))
        try:
            entry["modularity_explicitness"] = dlib_modularity_explicitness(mtr[:a].T, ytr[:a].T, mte[:b].T, yte[:b].T)
        except ValueError as e:  # constant dims: dlib divides by a zero std
            entry["modularity_explicitness"] = {"error": str(e).splitlines()[0]}
        entry.update(dci_entries(case))
        entry["mig_sampled"] = floats(d_mig.compute_mig(dataset, rep, np.random.RandomState(0), **SAMPLED_MIG))
        with np.errstate(all="ignore"):
            for thr in (0.05, 0.0):
                dlib_shim.bind_study_defaults()
                import gin

                gin.parse_config([f"prune_dims.threshold = {thr}"])
                entry[f"factor_vae_thr{thr}"] = floats(
                    d_factor_vae.compute_factor_vae(dataset, rep, np.random.RandomState(0), **FVAE))
            if case == "rotated":
                entry["factor_vae_full_thr0.05"] = floats(
                    d_factor_vae.compute_factor_vae(dataset, rep, np.random.RandomState(0), **FVAE_FULL))
            dlib_shim.bind_study_defaults()
        entry["beta_vae"] = floats(d_beta_vae.compute_beta_vae_sklearn(dataset, rep, np.random.RandomState(0), **BVAE))
        ref["cases"][case] = entry
        print(f"{case}: {time.time() - t0:.1f} s", json.dumps(entry), flush=True)
    with open(OUT + ".tmp", "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
    os.replace(OUT + ".tmp", OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
