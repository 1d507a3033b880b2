"""Running a study: train each cell (resumably, one process or several), evaluate it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from semistylegan import progress
from semistylegan.errors import UserError

from semistylegan.study.parse import METRIC_COLUMNS, Cell, Study
from semistylegan.study.report import summarise

__all__ = ["evaluate_cell", "run_cell", "run_study", "run_parallel", "claim", "clear_claims", "cell_dir", "cell_result",
           "cpu_threads_per_worker", "generator_readings"]

# ---------------------------------------------------------------------------------------------
# Evaluation of one trained cell.

def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of two Gaussians fitted to feature sets; tr sqrt(S1 S2) from the
    eigenvalues of the symmetric sqrt(S1) S2 sqrt(S1) (stable, no complex round-off)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def evaluate_cell(method, nets: dict, dataset, metrics: dict, device, seed: int = 0) -> dict:
    """The study's metrics of one model; a metric that cannot be computed is left out (with a note)."""
    import torch

    from semistylegan import metrics as M
    from semistylegan.evaluation import encoder_fn, generator_fn
    from semistylegan.metrics.l2 import l2_from_dataset

    for n in nets.values():
        n.eval()
    out: dict = {}
    notes: list[str] = []
    identified = method.identified_codes
    K = dataset.factor_space.num_factors
    n = int(metrics["samples"])
    if method.has_encoder:
        encode = encoder_fn(method, nets, device)
        try:
            out["mig"] = float(M.mig_from_dataset(dataset, encode, seed=seed, num_train=n)["discrete_mig"])
        except ValueError as e:
            notes.append(f"mig: {e}")
        try:
            fv = M.factor_vae_score(dataset, encode, seed=seed, num_train=int(metrics["factor_train"]),
                                    num_eval=int(metrics["factor_eval"]),
                                    num_variance_estimate=int(metrics["factor_variance"]))
            out["factor_score"] = float(fv["eval_accuracy"])
        except ValueError as e:
            notes.append(f"factor_score: {e}")
        if identified:
            out["l2"] = float(l2_from_dataset(dataset, encode, num_samples=n, seed=seed)["l2"])
        if metrics["dci"]:
            try:
                d = M.dci_from_dataset(dataset, encode, seed=seed, num_train=int(metrics["dci_train"]),
                                       num_test=int(metrics["dci_test"]),
                                       n_jobs=None if torch.get_num_threads() > 1 else 1)  # one thread: no pool
                out["dci"] = float(d["disentanglement"])
            except ValueError as e:
                notes.append(f"dci: {e}")
    # MIG-gen needs codes the generator is conditioned on (Info-StyleGAN's too); L2-gen needs codes
    # identified with the factors.
    want_gen = method.has_generator and metrics["gen"] and method.conditional_generator
    want_fid = method.has_generator and metrics["fid"] and method.prior_samples
    if want_gen or want_fid:
        from semistylegan.metrics.oracle import get_oracle

        oracle = get_oracle(dataset, train_steps=int(metrics["oracle_steps"]))
        rs = np.random.RandomState(seed + 777)   # MIG-gen's draws, then FID's, from one stream
        if want_gen:
            out.update(generator_readings(method, nets, dataset, metrics, device, seed, oracle=oracle, rs=rs))
        if want_fid:
            nf = int(metrics["fid_samples"])
            classes = dataset.factor_space.sample_classes(nf, rs)
            if not method.conditional_generator:   # InfoGAN-CR's prior: codes uniform in [0, 1]
                codes = rs.uniform(0, 1, size=(nf, K)).astype(np.float32)
            else:
                codes = dataset.factor_space.classes_to_code(classes).astype(np.float32)
            fake = generator_fn(method, nets, device)(codes, seed=seed + 779)
            real = dataset.images(rs.randint(len(dataset), size=nf))
            out["ofid"] = _frechet(oracle.features(real).astype(np.float64), oracle.features(fake).astype(np.float64))
    if notes:
        out["notes"] = notes
    del torch
    return out


def generator_readings(method, nets: dict, dataset, metrics: dict, device, seed: int = 0, oracle=None,
                       rs: np.random.RandomState | None = None) -> dict:
    """MIG-gen (and L2-gen for identified codes) of a conditional generator, read by both readers:
    {"readers": {name: {...}}, "mig_gen": lowest, "l2_gen": highest} (docs/method.md, "Generator
    metrics"). The codes come from `rs` (default: a stream seeded by `seed`) and the noise from `seed`,
    so snapshots of a run compare on equal draws."""
    from semistylegan import metrics as M
    from semistylegan.evaluation import generator_fn
    from semistylegan.metrics.oracle import get_oracle
    from semistylegan.metrics.readers import default_readers

    if oracle is None:
        oracle = get_oracle(dataset, train_steps=int(metrics["oracle_steps"]))
    readers = default_readers(dataset, oracle=oracle, pixel_options={"train_steps": int(metrics["oracle_steps"])})
    fs = dataset.factor_space
    rs = np.random.RandomState(seed + 777) if rs is None else rs
    classes = fs.sample_classes(int(metrics["gen_samples"]), rs)
    codes = fs.classes_to_code(classes).astype(np.float32)
    images = generator_fn(method, nets, device)(codes, seed=seed + 778)
    varied = [k for k in range(fs.num_factors) if len(np.unique(classes[:, k])) > 1]
    per_reader = {}
    for name, reader in readers.items():
        read = reader.encode(images)
        per_reader[name] = {"mig_gen": float(M.mig(read, classes[:, varied])["discrete_mig"])}
        if method.identified_codes:
            per_reader[name]["l2_gen"] = float(np.sqrt(((read - codes) ** 2).sum(axis=1)).mean())
    out = {"readers": per_reader, "mig_gen": min(r["mig_gen"] for r in per_reader.values())}
    if method.identified_codes:
        out["l2_gen"] = max(r["l2_gen"] for r in per_reader.values())
    return out


# ---------------------------------------------------------------------------------------------
# Running.

def _study_trainer_class():
    from semistylegan.train import Trainer

    class StudyTrainer(Trainer):
        """The loop's quick metrics assume K-dimensional codes; unsupervised baselines may have
        another latent size (e.g. 10 VAE latents for 5 factors): then log MIG alone."""

        def quick_metrics(self):
            try:
                return super().quick_metrics()
            except ValueError:
                from semistylegan import metrics as M
                from semistylegan.evaluation import encoder_fn

                rs = np.random.RandomState(self.cfg.seed + 12345)
                idx = rs.randint(len(self.dataset), size=self.cfg.metrics_samples)
                codes = encoder_fn(self.method, self.eval_nets, self.device)(self.dataset.images(idx))
                try:
                    return {"mig": float(M.mig(codes, self.dataset.classes(idx))["discrete_mig"])}
                except ValueError as e:
                    return {"mig_error": str(e)}

    return StudyTrainer


def _atomic_json(path: Path, obj):
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.cell_id


def cell_result(out: Path, cell: Cell) -> dict | None:
    p = cell_dir(out, cell) / "result.json"
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def run_cell(study: Study, cell: Cell, out: Path, log=print, show_bar: bool = False,
             worker: int | None = None) -> dict:
    """Train (or resume) one cell, evaluate it, write its result.json. `show_bar`: the training
    bar on stderr (kimg of this cell); off in parallel workers, whose bars would overwrite each other."""
    from semistylegan.checkpoint import list_snapshots, load_snapshot

    d = cell_dir(out, cell)
    d.mkdir(parents=True, exist_ok=True)
    cfg = cell.config(study.top)
    Trainer = _study_trainer_class()
    t0 = time.time()
    trainer = Trainer(cfg, d, progress=show_bar)
    trainer.progress_label = f"cell {cell.index + 1}/{len(study.cells)}"
    snaps = list_snapshots(d)
    resumed = 0.0
    if snaps:
        trainer.load_state_dict(load_snapshot(snaps[-1]), source=str(snaps[-1]))
        resumed = trainer.cur_nimg / 1000
    # after the trainer is built: a cell whose data is missing fails with its one error line alone
    done = sum((cell_result(out, c) or {}).get("status") == "done" for c in study.cells)
    progress.stage(f"study: {done} of {len(study.cells)} cells done; training cell {cell.index + 1} ({cell.cell_id})"
                   + (f", worker {worker}" if worker is not None else ""))
    with open(d / "attempts.jsonl", "a") as f:
        f.write(json.dumps({"start": time.time(), "resumed_from_kimg": resumed, "pid": os.getpid()}) + "\n")
    log(f"[{cell.index + 1}/{len(study.cells)}] {cell.cell_id}: training to {cfg.kimg:g} kimg"
        + (f" (resuming at {resumed:g} kimg)" if resumed else ""))
    result = trainer.run()
    train_seconds = time.time() - t0
    row = {"cell": cell.cell_id, "label": cell.label, "method": cell.method, "eta": cell.eta, "gamma": cell.gamma,
           "seed": cell.seed, "preset": cell.preset, "kimg": trainer.cur_nimg / 1000, "status": result["status"],
           "train_seconds": round(train_seconds, 1)}
    if result["status"] == "done":
        t1 = time.time()
        progress.stage(f"study: evaluating cell {cell.index + 1}/{len(study.cells)} ({cell.cell_id})")
        row.update(evaluate_cell(trainer.method, trainer.eval_nets, trainer.dataset, study.metrics, trainer.device,
                                 seed=cell.seed))
        row["eval_seconds"] = round(time.time() - t1, 1)
    else:
        row["message"] = result.get("message", "")
    _atomic_json(d / "result.json", row)
    shown = {k: round(v, 4) for k, v in row.items() if k in METRIC_COLUMNS and isinstance(v, float)}
    log(f"    {row['status']} in {train_seconds:.0f} s: {json.dumps(shown)}")
    return row


_CLAIM = ".claimed"


def claim(out: Path, cell: Cell) -> bool:
    """Take a cell for this worker process (False: another worker has it). Workers take the next
    unclaimed cell, so none idles while cells are left; run_parallel clears the claims of a
    stopped run before it starts its workers."""
    d = cell_dir(out, cell)
    d.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(d / _CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def clear_claims(out: Path):
    for p in Path(out).glob(f"cells/*/{_CLAIM}"):
        p.unlink(missing_ok=True)


def run_study(study: Study, out: str | os.PathLike, max_cells: int | None = None, retry_failed: bool = False,
              worker: int | None = None, log=print) -> list[dict]:
    """Run the unfinished cells (a worker of run_parallel: those it claims), then write the summary.
    Returns the result rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ran = 0
    for cell in study.cells:
        res = cell_result(out, cell)
        if res is not None and (res.get("status") == "done" or not retry_failed):
            continue
        if max_cells is not None and ran >= max_cells:
            break
        if worker is not None and not claim(out, cell):
            continue
        try:
            run_cell(study, cell, out, log, show_bar=worker is None, worker=worker)
        except Exception as e:  # keep an overnight study going; the cell is recorded as failed
            d = cell_dir(out, cell)
            if isinstance(e, UserError):   # this cell's own bad input (its data, say): its one line
                message = str(e)
                where = f"{study.path}:{cell.line}: " if cell.line else ""
                print(f"semistylegan: {where}cell {cell.cell_id}: {message}", file=sys.stderr, flush=True)
            else:
                message = f"{type(e).__name__}: {e}"
                (d / "error.txt").write_text(traceback.format_exc())
                log(f"    error: {message} (details in {d / 'error.txt'})")
            _atomic_json(d / "result.json", {"cell": cell.cell_id, "label": cell.label, "method": cell.method,
                                             "eta": cell.eta, "gamma": cell.gamma, "seed": cell.seed,
                                             "status": "error", "message": message})
        ran += 1
    rows = [r for r in (cell_result(out, c) for c in study.cells) if r is not None]
    if worker is None:
        summarise(study, rows, out)
    return rows


def cpu_threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads of each of `workers` CPU worker processes: the usable cores shared out, at least one."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def run_parallel(study_path: Path, study: Study, out: Path, devices: list[str], retry_failed: bool, log=print):
    """One worker process per device (CUDA_VISIBLE_DEVICES set to it, or CPU workers when devices
    are 'cpu'), each running its share of the cells; then the summary."""
    clear_claims(out)   # left by a stopped run; its cells resume from their snapshots
    procs = []
    cpu_workers = sum(dev == "cpu" for dev in devices)
    for i, dev in enumerate(devices):
        env = dict(os.environ)
        if dev != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = dev
        elif "OMP_NUM_THREADS" not in os.environ:  # the cores shared out, not each worker on all of them
            env["OMP_NUM_THREADS"] = str(cpu_threads_per_worker(cpu_workers))
        cmd = [sys.executable, "-m", "semistylegan", "study", str(study_path), "--out", str(out),
               "--worker", str(i), "--num-workers", str(len(devices))]
        if retry_failed:
            cmd.append("--retry-failed")
        if progress.is_quiet():
            cmd.append("--quiet")
        procs.append(subprocess.Popen(cmd, env=env))
        log(f"worker {i} on {'GPU ' + dev if dev != 'cpu' else 'CPU'}: pid {procs[-1].pid}")
    codes = [p.wait() for p in procs]
    rows = [r for r in (cell_result(out, c) for c in study.cells) if r is not None]
    summarise(study, rows, out)
    return codes


