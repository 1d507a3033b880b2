"""Metric speed, side by side with disentanglement_lib 1.5 in the same run, plus the whole report.

    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics_speed.py            # everything
    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics_speed.py --only mig,factor_vae

Needs disentanglement_lib for the comparisons (`pip install gin-config absl-py six &&
pip install --no-deps disentanglement-lib==1.5`); without it only our timings are printed.
Inputs: the synthetic dSprites-sized grid of semistylegan.metrics.synthetic (the same object
is given to dlib and to us), and for the report procedural dSprites at 32x32 with a
random-init CNN as the encoder and the renderer as the generator. Each timing is the median of
`--repeats` runs; on a shared machine quote the ratios, measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "metrics"))

from semistylegan.metrics import dci, factor_vae_score, mig, synthetic  # noqa: E402


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def load_dlib():
    try:
        import dlib_shim
        from disentanglement_lib.evaluation.metrics import dci as d_dci
        from disentanglement_lib.evaluation.metrics import factor_vae as d_fvae
        from disentanglement_lib.evaluation.metrics import mig as d_mig
    except ImportError as e:
        print(f"disentanglement_lib not available ({e}); timing ours only")
        return None
    dlib_shim.bind_study_defaults()
    import gin

    gin.parse_config(["prune_dims.threshold = 0.05"])
    return {"mig": d_mig, "fvae": d_fvae, "dci": d_dci}


def row(name, ours_t, dlib_t, same, note=""):
    ratio = f"{dlib_t / ours_t:.1f}x" if dlib_t else "-"
    dl = f"{dlib_t:.3f}" if dlib_t else "-"
    print(f"| {name} | {dl} | {ours_t:.3f} | {ratio} | {same} | {note} |", flush=True)
    return {"name": name, "dlib_s": dlib_t, "ours_s": ours_t, "speedup": (dlib_t / ours_t) if dlib_t else None,
            "same": same, "note": note}


def bench_mig(d, repeats):
    ytr, _ = synthetic.fixed_split(10000, 0)
    codes = synthetic.representation("nuisance")(ytr)  # 10 code dims
    ours, t_ours = timed(lambda: mig(codes, ytr), repeats)
    dlib_t, same = None, "-"
    if d:
        ref, dlib_t = timed(lambda: d["mig"]._compute_mig(codes.T, ytr.T), repeats)
        same = f"|diff| = {abs(ref['discrete_mig'] - ours['discrete_mig']):.1e}"
    return row("MIG, N=10,000, 10 codes (fixed arrays)", t_ours, dlib_t, same, f"MIG {ours['discrete_mig']:.6f}")


def bench_factor_vae(d, repeats):
    """Ours and dlib alternate (ours, dlib, ours, dlib, ...) so that both see the same load
    drift on a shared machine; the note gives the range of the per-pair ratios."""
    grid = synthetic.SyntheticCodeGrid()
    rep = synthetic.representation("rotated")
    rep(grid.sample_factors(2, np.random.RandomState(0)))  # builds the encoder's cached tables, for both
    kw = dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000)
    t_ours, t_dlib, ours, ref = [], [], None, None
    for _ in range(repeats):
        ours, t = timed(lambda: factor_vae_score(grid, rep, seed=0), 1)
        t_ours.append(t)
        if d:
            ref, t = timed(lambda: d["fvae"].compute_factor_vae(grid, rep, np.random.RandomState(0), **kw), 1)
            t_dlib.append(t)
    dlib_t, same, pairs = None, "-", ""
    if d:
        dlib_t = statistics.median(t_dlib)
        same = str(ref["eval_accuracy"] == ours["eval_accuracy"] and ref["train_accuracy"] == ours["train_accuracy"])
        ratios = [b / a for a, b in zip(t_ours, t_dlib)]
        pairs = f", pairs {min(ratios):.1f}-{max(ratios):.1f}x"
    return row("FactorVAE, dlib defaults (10,000/5,000 x 64 + 10,000), synthetic grid", statistics.median(t_ours),
               dlib_t, same, f"eval {ours['eval_accuracy']:.4f}{pairs}")


class SmallCNN(torch.nn.Module):
    """A random-init encoder standing in for a trained 32x32 model (oracle-sized CNN, K outputs)."""

    def __init__(self, k):
        super().__init__()
        from semistylegan.metrics.oracle import OracleNet

        torch.manual_seed(0)
        self.net = OracleNet(32, 1, (k,)).eval()
        # standardise the random outputs on a calibration batch, so no code dim is pruned as
        # inactive by FactorVAE (which would skip all its work) and the codes look like a model's
        from semistylegan.data import make_dataset

        ds = make_dataset("dsprites", 32)
        calib = self._raw(ds.images(np.random.RandomState(1).randint(len(ds), size=2000)))
        self.mean, self.std = calib.mean(0), calib.std(0)

    @torch.inference_mode()
    def _raw(self, images):
        x = torch.from_numpy(np.ascontiguousarray(images)).float().div_(127.5).sub_(1.0)
        return self.net(x)[0].numpy().astype(np.float64)

    def __call__(self, images):
        return 0.5 + 0.2 * (self._raw(images) - self.mean) / self.std


def bench_factor_vae_images(d, repeats):
    from semistylegan.data import make_dataset

    ds = make_dataset("dsprites", 32)
    enc = SmallCNN(5)
    kw = dict(batch_size=64, num_train=500, num_eval=250, num_variance_estimate=5000)
    ours, t_ours = timed(lambda: factor_vae_score(ds, enc, seed=0, **kw), 1)
    dlib_t, same = None, "-"
    if d:
        ref, dlib_t = timed(lambda: d["fvae"].compute_factor_vae(ds, enc, np.random.RandomState(0), **kw), 1)
        same = str(ref["eval_accuracy"] == ours["eval_accuracy"] and ref["train_accuracy"] == ours["train_accuracy"])
    return row("FactorVAE, dSprites 32x32 images + random CNN (500/250 x 64 + 5,000)", t_ours, dlib_t, same,
               f"eval {ours['eval_accuracy']:.4f}")


def bench_dci(d, n_train, n_test):
    ytr, yte = synthetic.fixed_split(n_train, n_test)
    rep = synthetic.representation("noisy0.05")
    mtr, mte = rep(ytr), rep(yte)
    ours, t_ours = timed(lambda: dci(mtr, ytr, mte, yte, seed=0), 1)
    dlib_t, same = None, "-"
    if d:
        ref, dlib_t = timed(lambda: d["dci"]._compute_dci(mtr.T, ytr.T, mte.T, yte.T), 1)
        same = f"max |diff| = {max(abs(ref[k] - ours[k]) for k in ref):.1e} (dlib unseeded)"
    return row(f"DCI {n_train}/{n_test}, 5 dSprites factors, noisy codes", t_ours, dlib_t, same,
               f"D {ours['disentanglement']:.4f}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores")


def bench_report(num_samples):
    from semistylegan.data import make_dataset
    from semistylegan.metrics import evaluate_all, get_oracle

    ds = make_dataset("dsprites", 32)
    t = time.perf_counter()
    oracle = get_oracle(ds, verbose=True)
    t_oracle = time.perf_counter() - t
    print(f"oracle: loaded or trained in {t_oracle:.1f} s; held-out "
          f"{json.dumps({k: oracle.info[k] for k in ('held_out_l2', 'held_out_mig', 'accuracy', 'train_seconds')})}")
    enc = SmallCNN(5)
    space = ds.factor_space

    def generate(codes, seed):
        return ds.images_from_classes(space.code_to_classes(codes))

    t = time.perf_counter()
    report = evaluate_all(ds, encode=enc, generate=generate, oracle=oracle, num_samples=num_samples, seed=0)
    total = time.perf_counter() - t
    print("report timings (s):", json.dumps({k: round(v, 2) for k, v in report["timings_s"].items()}))
    print("report settings:", json.dumps(report["encoder"]["settings"]))
    print("generator (renderer as G):", json.dumps({k: report["generator"][k] for k in ("mig_gen", "l2_gen")}),
          "oracle FID", report["image_quality"]["fid_oracle"])
    return row(f"whole report, dSprites 32x32, {num_samples} samples (FID aside)", total, None, "-",
               "random-init CNN encoder, renderer as generator, cached oracle")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="mig,factor_vae,factor_vae_images,dci,report")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dci", default="1000,500", help="DCI train,test sizes")
    ap.add_argument("--report-samples", type=int, default=10000)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    parts = args.only.split(",")
    d = load_dlib()
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    print("| what | dlib (s) | ours (s) | speed-up | same result | note |")
    print("|---|---|---|---|---|---|")
    rows = []
    if "mig" in parts:
        rows.append(bench_mig(d, args.repeats))
    if "factor_vae" in parts:
        rows.append(bench_factor_vae(d, args.repeats))
    if "factor_vae_images" in parts:
        rows.append(bench_factor_vae_images(d, args.repeats))
    if "dci" in parts:
        a, b = (int(v) for v in args.dci.split(","))
        rows.append(bench_dci(d, a, b))
    if "report" in parts:
        rows.append(bench_report(args.report_samples))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
