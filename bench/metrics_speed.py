"""Metric speed, side by side with disentanglement_lib 1.5 in the same run, plus the whole report.

    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics_speed.py            # everything
    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics_speed.py --only mig,factor_vae
    OMP_NUM_THREADS=1 .venv/bin/python bench/metrics_speed.py --only mig,factor_vae --load

The reference (`--reference`): disentanglement_lib itself when it is installed
(`pip install gin-config absl-py six && pip install --no-deps disentanglement-lib==1.5`),
otherwise tests/metrics/dlib_algorithms.py, a step-by-step re-implementation of dlib's MIG and
FactorVAE algorithms (the other rows then time ours only). The output names the one used.
Inputs: the synthetic dSprites-sized grid of semistylegan.metrics.synthetic (the same object
is given to the reference and to us), and for the report procedural dSprites at 32x32 with a
random-init CNN as the encoder and the renderer as the generator.

MIG and FactorVAE alternate (reference, ours) `--repeats` times after one untimed call of
each; the speed-up is the median of the per-pair ratios (their range in the note), so both
see the same load drift. `--load` starts one busy process (single-threaded numpy matmuls) for
the whole run and, where the CPU affinity can be set, pins it to the last core and this
process to the others: a machine whose other core is busy.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "metrics"))

from semistylegan.metrics import dci, factor_vae_score, mig, replay, synthetic  # noqa: E402


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def load_reference(which: str):
    """{"name", "mig", "fvae", "dci"}: dlib's modules, or the re-implementation (no DCI)."""
    if which in ("auto", "dlib"):
        try:
            import dlib_shim
            from disentanglement_lib.evaluation.metrics import dci as d_dci
            from disentanglement_lib.evaluation.metrics import factor_vae as d_fvae
            from disentanglement_lib.evaluation.metrics import mig as d_mig
        except ImportError as e:
            if which == "dlib":
                raise SystemExit(f"disentanglement_lib is not importable ({e})")
            print(f"disentanglement_lib not available ({e}); the reference is tests/metrics/dlib_algorithms.py")
        else:
            dlib_shim.bind_study_defaults()
            import gin

            gin.parse_config(["prune_dims.threshold = 0.05"])
            return {"name": "disentanglement_lib 1.5", "mig": d_mig._compute_mig, "dci": d_dci._compute_dci,
                    "fvae": d_fvae.compute_factor_vae}
    import dlib_algorithms

    return {"name": "dlib's algorithm re-implemented (tests/metrics/dlib_algorithms.py)", "dci": None,
            "mig": dlib_algorithms.compute_mig,
            "fvae": lambda *a, **kw: dlib_algorithms.compute_factor_vae(*a, prune_threshold=0.05, **kw)}


LOAD_SCRIPT = """
import os, sys
import numpy as np
cpu = int(sys.argv[1])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
a = np.random.RandomState(0).normal(size=(256, 256))
b = a.copy()
parent = os.getppid()
while os.getppid() == parent:  # ends with the benchmark, even if it is killed
    for _ in range(20):
        b = a @ b
        b /= np.abs(b).max()
"""


class BusyCore:
    """One single-threaded busy process for the duration of a `with` block (the `--load` flag)."""

    def __enter__(self):
        self.own_affinity = None
        cpu = -1
        if hasattr(os, "sched_getaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) >= 2:
                cpu = cpus[-1]
                self.own_affinity = set(cpus)
                os.sched_setaffinity(0, set(cpus[:-1]))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen([sys.executable, "-c", LOAD_SCRIPT, str(cpu)], env=env)
        self.start = time.perf_counter()
        time.sleep(1.0)  # let it reach full speed
        if self.proc.poll() is not None:
            raise SystemExit(f"the load process ended at once (exit status {self.proc.returncode})")
        where = f"pinned to cpu {cpu}, this process to cpus {sorted(os.sched_getaffinity(0))}" if cpu >= 0 else \
            "not pinned"
        print(f"load: one busy process (pid {self.proc.pid}; numpy matmuls, 1 thread), {where}", flush=True)
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.start
        self.proc.terminate()
        self.proc.wait()
        if self.own_affinity:
            os.sched_setaffinity(0, self.own_affinity)
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"load: the busy process used {cpu.ru_utime + cpu.ru_stime:.1f} s of CPU in {wall:.1f} s", flush=True)


def alternate(reference, ours, repeats):
    """One untimed call of each, then `repeats` pairs (reference, ours); returns both outputs and times."""
    ref_out, our_out = reference(), ours()
    t_ref, t_ours = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        ref_out = reference()
        t_ref.append(time.perf_counter() - t)
        t = time.perf_counter()
        our_out = ours()
        t_ours.append(time.perf_counter() - t)
    return ref_out, our_out, t_ref, t_ours


def paired_row(name, t_ref, t_ours, same, note):
    """A row whose speed-up is the median of the per-pair ratios (range in the note)."""
    ratios = [a / b for a, b in zip(t_ref, t_ours)]
    ref_t, ours_t = statistics.median(t_ref), statistics.median(t_ours)
    speedup = statistics.median(ratios)
    print(f"| {name} | {ref_t:.4f} | {ours_t:.4f} | {speedup:.1f}x | {same} | {note}; pairs {min(ratios):.1f}-"
          f"{max(ratios):.1f}x over {len(ratios)} |", flush=True)
    return {"name": name, "dlib_s": ref_t, "ours_s": ours_t, "speedup": speedup, "pair_ratios": ratios,
            "dlib_times": t_ref, "ours_times": t_ours, "same": same, "note": note}


def row(name, ours_t, dlib_t, same, note=""):
    ratio = f"{dlib_t / ours_t:.1f}x" if dlib_t else "-"
    dl = f"{dlib_t:.3f}" if dlib_t else "-"
    print(f"| {name} | {dl} | {ours_t:.3f} | {ratio} | {same} | {note} |", flush=True)
    return {"name": name, "dlib_s": dlib_t, "ours_s": ours_t, "speedup": (dlib_t / ours_t) if dlib_t else None,
            "same": same, "note": note}


def bench_mig(d, repeats):
    ytr, _ = synthetic.fixed_split(10000, 0)
    codes = synthetic.representation("nuisance")(ytr)  # 10 code dims
    if not d:
        ours, t = timed(lambda: mig(codes, ytr), repeats)
        return row("MIG, N=10,000, 10 codes (fixed arrays)", t, None, "-", f"MIG {ours['discrete_mig']:.6f}")
    ref, ours, t_ref, t_ours = alternate(lambda: d["mig"](codes.T, ytr.T), lambda: mig(codes, ytr), repeats)
    same = f"|diff| = {abs(ref['discrete_mig'] - ours['discrete_mig']):.1e}"
    return paired_row("MIG, N=10,000, 10 codes (fixed arrays)", t_ref, t_ours, same,
                      f"MIG {ours['discrete_mig']:.6f}")


def bench_factor_vae(d, repeats, case="rotated"):
    """dlib's defaults on the synthetic grid. case "rotated": a cheap synthetic encoder (the same
    function for both); "perfect": the identity, so the row times the metric's own work."""
    grid = synthetic.SyntheticCodeGrid()
    rep = synthetic.representation(case)
    rep(grid.sample_factors(2, np.random.RandomState(0)))  # builds the encoder's cached tables, for both
    kw = dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000)
    # floors of ours: the encoder alone on the rows that ours encodes, in the same chunks; the
    # replay of dlib's random stream alone (the same draws, numpy's legacy randint); and as many
    # raw 32-bit Mersenne Twister outputs as that replay consumes, drawn in chunks of 2^20
    rows = grid.sample_factors(10000 + 15000 * 64, np.random.RandomState(1))
    _, t_encoder = timed(lambda: [rep(rows[s:s + 8192]) for s in range(0, len(rows), 8192)], 3)

    def replay_only():
        rs = np.random.RandomState(0)
        start = rs.get_state()
        stream = replay.FactorStream(grid, rep, rs)
        stream.sample_factors(kw["num_variance_estimate"])
        for num in (kw["num_train"], kw["num_eval"]):
            for _ in stream.replay_group_chunks(num, 1, kw["batch_size"], stream.chunk_images // kw["batch_size"]):
                pass
        return start, rs.get_state()

    states, t_replay = timed(replay_only, 3)
    outputs = _outputs_between(*states)
    bits = np.random.MT19937(0)
    chunks = [1 << 20] * (outputs >> 20) + [outputs & ((1 << 20) - 1)]
    _, t_raw = timed(lambda: [bits.random_raw(c) for c in chunks], 3)
    floors = (f"encoder alone {t_encoder:.3f} s, stream replay alone {t_replay:.3f} s, the same "
              f"{outputs / 1e6:.1f}M raw MT outputs drawn in bulk {t_raw:.3f} s")
    name = (f"FactorVAE, dlib defaults (10,000/5,000 x 64 + 10,000), synthetic grid, "
            f"{'synthetic encoder' if case == 'rotated' else 'identity encoder (the metric alone)'}")
    if not d:
        ours, t = timed(lambda: factor_vae_score(grid, rep, seed=0), repeats)
        return row(name, t, None, "-", f"eval {ours['eval_accuracy']:.4f}; ours: {floors}")
    ref, ours, t_ref, t_ours = alternate(lambda: d["fvae"](grid, rep, np.random.RandomState(0), **kw),
                                         lambda: factor_vae_score(grid, rep, seed=0), repeats)
    same = str(ref["eval_accuracy"] == ours["eval_accuracy"] and ref["train_accuracy"] == ours["train_accuracy"])
    return paired_row(name, t_ref, t_ours, same,
                      f"eval {ours['eval_accuracy']:.4f}; ours: {floors}")


def _outputs_between(start, end) -> int:
    """32-bit outputs drawn between two legacy RandomState states (start freshly seeded, pos 624):
    twist a copy of the start block by block until its key is the end's; n = (twists - 1) * 624 + pos."""
    bits = np.random.MT19937()
    bits.state = {"bit_generator": "MT19937", "state": {"key": start[1], "pos": start[2]}}
    if start[2] != 624:
        raise ValueError("the start state must be freshly seeded")
    for twists in range(1, 10**6):
        bits.random_raw(624)
        if np.array_equal(bits.state["state"]["key"], end[1]):
            return (twists - 1) * 624 + end[2]
    raise ValueError("the end state was not reached")


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
        ref, dlib_t = timed(lambda: d["fvae"](ds, enc, np.random.RandomState(0), **kw), 1)
        same = str(ref["eval_accuracy"] == ours["eval_accuracy"] and ref["train_accuracy"] == ours["train_accuracy"])
    return row("FactorVAE, dSprites 32x32 images + random CNN (500/250 x 64 + 5,000)", t_ours, dlib_t, same,
               f"eval {ours['eval_accuracy']:.4f}")


def bench_dci(d, n_train, n_test):
    ytr, yte = synthetic.fixed_split(n_train, n_test)
    rep = synthetic.representation("noisy0.05")
    mtr, mte = rep(ytr), rep(yte)
    ours, t_ours = timed(lambda: dci(mtr, ytr, mte, yte, seed=0), 1)
    dlib_t, same = None, "-"
    if d and d["dci"]:
        ref, dlib_t = timed(lambda: d["dci"](mtr.T, ytr.T, mte.T, yte.T), 1)
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
    ap.add_argument("--repeats", type=int, default=9, help="timed (reference, ours) pairs per row")
    ap.add_argument("--reference", choices=("auto", "dlib", "port"), default="auto",
                    help="disentanglement_lib when importable (auto), required (dlib), or the re-implementation")
    ap.add_argument("--load", action="store_true", help="keep one other core busy for the whole run")
    ap.add_argument("--dci", default="1000,500", help="DCI train,test sizes")
    ap.add_argument("--report-samples", type=int, default=10000)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    warnings.filterwarnings("ignore")
    parts = args.only.split(",")
    d = load_reference(args.reference)
    print(f"reference: {d['name']}")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    with BusyCore() if args.load else _NoLoad():
        print("| what | reference (s) | ours (s) | speed-up | same result | note |")
        print("|---|---|---|---|---|---|")
        if "mig" in parts:
            rows.append(bench_mig(d, args.repeats))
        if "factor_vae" in parts:
            rows.append(bench_factor_vae(d, args.repeats, "rotated"))
            rows.append(bench_factor_vae(d, args.repeats, "perfect"))
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
            json.dump({"reference": d["name"], "load": args.load, "rows": rows}, f, indent=1)


class _NoLoad:
    def __enter__(self):
        print("load: none started")
        return self

    def __exit__(self, *exc):
        return None


if __name__ == "__main__":
    main()
