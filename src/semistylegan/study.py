"""Reproduction studies: a grid of methods x eta x gamma x seeds from a TOML file, run cell by
cell, resumable, summarised as results.csv, results.md (the paper's table layout, mean +- std
over seeds) and plots (the paper's Figure 2: MIG, L2, MIG-gen, L2-gen against eta; realism
against disentanglement for gamma).

    semistylegan study studies/cpu_dsprites.toml --out studies-out/cpu_dsprites
    semistylegan study studies/paper_eta_curves.toml --gpus 0,1,2,3

Study file (TOML). Top level (all optional except at least one [[grid]]):
    name, description, budget        text (budget: the compute the study is sized for)
    preset, kimg, dataset, resolution defaults of every cell
    seeds = [0, 1, 2]   eta = [...]   gamma = [...]
    [metrics]   samples, factor_train, factor_eval, factor_variance, gen_samples, oracle_steps,
                fid_samples, gen (true/false), fid (true/false)
    [methods.NAME]   per-method defaults: preset, kimg, options = {field = value}
    data_path           the dataset's files (for datasets that are not procedural)
    [[grid]]   one block of cells: label, methods = [...], and optionally eta, gamma, seeds,
               preset, kimg, options (TrainConfig fields, e.g. alpha = 0 or gamma_E = 10)
Cells: methods x eta x gamma x seeds of each block. eta applies to methods that use labels
(semi, semi-fine, encoder-only, encoder-mixup; the others run with eta = 0), gamma to the
StyleGAN methods (semi, semi-fine, info). Cells with the same label, method, eta, gamma and seed
are one cell.

Resumability: every cell has a directory cells/<id>/ (a normal run directory). A cell is
finished when its result.json exists and is never rerun (--retry-failed reruns cells whose
status is not "done"); an unfinished cell with a snapshot resumes from it exactly (the
trainer's resume), so a killed study continues where it stopped. attempts.jsonl in each cell
records every (re)start.

Evaluation (`evaluate_cell`): encoder MIG and Factor score (disentanglement_lib semantics,
sample counts from [metrics]), L2 for methods whose codes are the factor codes, and for
generators with identified codes MIG-gen and L2-gen read by the oracle encoder; "ofid" is a
Frechet distance between oracle-encoder features of real and generated images (a realism
proxy that needs no Inception weights; not comparable with published FIDs).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semistylegan.errors import UserError

__all__ = ["Cell", "Study", "load_study", "parse_study", "run_study", "evaluate_cell", "summarise", "partition",
           "display_name"]



def _cls(method: str):
    """The method's class: what it can do is read there (methods/base.Method)."""
    from semistylegan.methods import method_class

    return method_class(method)


def uses_labels(method: str) -> bool:
    return _cls(method).uses_labels


def takes_gamma(method: str) -> bool:
    return "gamma" in _cls(method).fields


def display_name(method: str) -> str:
    try:
        return _cls(method).display_name
    except UserError:
        return method


METRIC_COLUMNS = ("factor_score", "mig", "l2", "mig_gen", "l2_gen", "ofid")
METRIC_TITLES = {"factor_score": "Factor score", "mig": "MIG", "l2": "L2", "mig_gen": "MIG-gen", "l2_gen": "L2-gen",
                 "ofid": "oracle FID"}

_TOP_KEYS = {"name", "description", "budget", "preset", "kimg", "dataset", "data_path", "resolution", "seeds", "eta",
             "gamma", "metrics", "methods", "grid"}
_GRID_KEYS = {"label", "methods", "eta", "gamma", "seeds", "preset", "kimg", "options"}
_METHOD_KEYS = {"preset", "kimg", "options"}
_METRIC_DEFAULTS = {"samples": 10000, "factor_train": 10000, "factor_eval": 5000, "factor_variance": 10000,
                    "gen_samples": 10000, "oracle_steps": 3000, "fid_samples": 10000, "gen": True, "fid": True}
# Config fields that a study sets through its own keys, not through `options`.
_RESERVED_FIELDS = {"method", "labeled_fraction", "gamma", "seed", "preset", "kimg"}


# ---------------------------------------------------------------------------------------------
# The study file.

@dataclass
class Cell:
    index: int
    label: str
    method: str
    eta: float
    gamma: float | None
    seed: int
    preset: str
    kimg: float | None
    options: dict = field(default_factory=dict)
    line: int | None = None          # line of its [[grid]] block in the study file
    options_line: int | None = None  # line of the 'options' table that gave its fields

    @property
    def cell_id(self) -> str:
        parts = [self.label or self.method, self.method]
        if uses_labels(self.method):
            parts.append(f"eta{self.eta:g}")
        if self.gamma is not None:
            parts.append(f"g{self.gamma:g}")
        parts.append(f"s{self.seed}")
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(dict.fromkeys(parts)))

    @property
    def row_name(self) -> str:
        """The table row: the block's label if given, else the method's display name."""
        return self.label or display_name(self.method)

    def config(self, top: dict):
        from semistylegan.config import make_config

        overrides = {"method": self.method, "labeled_fraction": self.eta, "seed": self.seed, "kimg": self.kimg}
        if self.gamma is not None:
            overrides["gamma"] = self.gamma
        for key in ("dataset", "data_path", "resolution"):
            if top.get(key) is not None:
                overrides[key] = top[key]
        overrides.update(self.options)
        return make_config(self.preset, **overrides)


@dataclass
class Study:
    path: Path
    name: str
    description: str
    budget: str
    top: dict
    metrics: dict
    cells: list[Cell]


class _Lines:
    """Where keys sit in a TOML file: (table path, key) -> line number (1-based)."""

    _header = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\")\s*=")

    def __init__(self, text: str):
        self.where: dict[tuple, int] = {}
        self.tables: dict[tuple, int] = {}
        counts: dict[str, int] = {}
        path: tuple = ()
        for n, line in enumerate(text.splitlines(), start=1):
            m = self._header.match(line)
            if m:
                name = tuple(p.strip().strip("\"'") for p in m.group(2).split("."))
                if m.group(1) == "[[":
                    i = counts.get(".".join(name), 0)
                    counts[".".join(name)] = i + 1
                    path = name + (i,)
                else:
                    path = name
                self.tables.setdefault(path, n)
                continue
            k = self._key.match(line)
            if k:
                self.where.setdefault(path + (k.group(1).strip('"'),), n)

    def line(self, *path) -> int | None:
        for cut in range(len(path), 0, -1):
            p = tuple(path[:cut])
            if p in self.where:
                return self.where[p]
            if p in self.tables:
                return self.tables[p]
        return None


class _Checker:
    def __init__(self, path: Path, lines: _Lines):
        self.path, self.lines = path, lines

    def fail(self, message: str, *where) -> UserError:
        n = self.lines.line(*where) if where else None
        loc = f"{self.path}:{n}" if n else str(self.path)
        return UserError(f"{loc}: {message}")


def _read_toml(path: Path) -> tuple[dict, str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("reading study files needs Python >= 3.11 (tomllib) or the 'tomli' package") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        raise UserError(f"{path}: study files are TOML (.toml); YAML is not supported")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such study file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"line (\d+)", msg)
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise UserError(f"{where}: not valid TOML ({msg})") from None


def _as_list(value, what: str, check: _Checker, where: tuple) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise check.fail(f"{what} must not be empty", *where)
    return values


def _number(v, what: str, check: _Checker, where: tuple, low: float | None = None, high: float | None = None,
            integer: bool = False):
    ok = isinstance(v, int) and not isinstance(v, bool) if integer else isinstance(v, (int, float)) and not isinstance(v, bool)
    if not ok or (isinstance(v, float) and not math.isfinite(v)):
        raise check.fail(f"{what} must be {'an integer' if integer else 'a number'}, got {v!r}", *where)
    if (low is not None and v < low) or (high is not None and v > high):
        rng = f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        raise check.fail(f"{what} must be in {rng}, got {v!r}", *where)
    return v


def parse_study(data: dict, text: str, path: Path, validate_methods: bool = True) -> Study:
    """Check a parsed study file and expand its grid into cells (errors name the file's line)."""
    from semistylegan.config import PRESETS, TrainConfig
    from semistylegan.methods import METHOD_CLASSES

    lines = _Lines(text)
    check = _Checker(path, lines)
    for key in data:
        if key not in _TOP_KEYS:
            raise check.fail(f"unknown key '{key}' (expected one of: {', '.join(sorted(_TOP_KEYS))})", key)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    option_fields = sorted(fields - _RESERVED_FIELDS)

    def check_block(block: dict, where: tuple, allowed: set):
        for key in block:
            if key not in allowed:
                raise check.fail(f"unknown key '{key}' (expected one of: {', '.join(sorted(allowed))})", *where, key)
        if "preset" in block and block["preset"] not in PRESETS:
            raise check.fail(f"unknown preset '{block['preset']}'", *where, "preset")
        if "kimg" in block:
            _number(block["kimg"], "kimg", check, where + ("kimg",), low=0)
        if "options" in block and not isinstance(block["options"], dict):
            raise check.fail("'options' must be a table like {name = value}", *where, "options")
        for name in block.get("options", {}):
            if name not in fields or name in _RESERVED_FIELDS:
                hint = f"; set it with the study key '{name}'" if name in _RESERVED_FIELDS else ""
                raise check.fail(f"unknown option '{name}' (a TrainConfig field: {', '.join(option_fields)}){hint}",
                                 *where, "options")

    check_block({k: data[k] for k in ("preset", "kimg") if k in data}, (), _TOP_KEYS)
    for key in ("name", "description", "budget"):
        if key in data and not isinstance(data[key], str):
            raise check.fail(f"'{key}' must be a string", key)
    for key in ("dataset", "data_path"):
        if key in data and not isinstance(data[key], str):
            raise check.fail(f"'{key}' must be a string", key)
    if "resolution" in data:
        _number(data["resolution"], "resolution", check, ("resolution",), low=4, integer=True)

    metrics = dict(_METRIC_DEFAULTS)
    if "metrics" in data:
        if not isinstance(data["metrics"], dict):
            raise check.fail("'metrics' must be a table", "metrics")
        for key, v in data["metrics"].items():
            if key not in _METRIC_DEFAULTS:
                raise check.fail(f"unknown metrics key '{key}' (expected one of: {', '.join(_METRIC_DEFAULTS)})",
                                 "metrics", key)
            if isinstance(_METRIC_DEFAULTS[key], bool):
                if not isinstance(v, bool):
                    raise check.fail(f"metrics.{key} must be true or false, got {v!r}", "metrics", key)
            else:
                _number(v, f"metrics.{key}", check, ("metrics", key), low=2, integer=True)
            metrics[key] = v

    per_method = data.get("methods", {})
    if not isinstance(per_method, dict):
        raise check.fail("'methods' must be a table of [methods.NAME] tables", "methods")
    for name, block in per_method.items():
        if name not in METHOD_CLASSES:
            raise check.fail(f"unknown method '{name}' (choose from: {', '.join(METHOD_CLASSES)})", "methods", name)
        if not isinstance(block, dict):
            raise check.fail(f"[methods.{name}] must be a table", "methods", name)
        check_block(block, ("methods", name), _METHOD_KEYS)

    grid = data.get("grid")
    if not grid:
        raise check.fail("the study has no [[grid]] block (nothing to run)")
    if not isinstance(grid, list):
        raise check.fail("'grid' must be written as [[grid]] blocks", "grid")

    cells: dict[str, Cell] = {}
    for gi, block in enumerate(grid):
        where = ("grid", gi)
        check_block(block, where, _GRID_KEYS)
        if "methods" not in block:
            raise check.fail("a [[grid]] block needs 'methods = [...]'", *where)
        label = block.get("label", "")
        if not isinstance(label, str):
            raise check.fail("'label' must be a string", *where, "label")
        methods = _as_list(block["methods"], "methods", check, where + ("methods",))
        for m in methods:
            if m not in METHOD_CLASSES:
                raise check.fail(f"unknown method '{m}' (choose from: {', '.join(METHOD_CLASSES)})", *where, "methods")
        seeds = _as_list(block.get("seeds", data.get("seeds", [0])), "seeds", check,
                         where + ("seeds",) if "seeds" in block else ("seeds",))
        for s in seeds:
            _number(s, "a seed", check, where + ("seeds",) if "seeds" in block else ("seeds",), low=0, integer=True)
        etas = _as_list(block.get("eta", data.get("eta", [0.01])), "eta", check,
                        where + ("eta",) if "eta" in block else ("eta",))
        for e in etas:
            _number(e, "eta", check, where + ("eta",) if "eta" in block else ("eta",), low=0, high=1)
        gammas = _as_list(block.get("gamma", data.get("gamma", [1.0])), "gamma", check,
                          where + ("gamma",) if "gamma" in block else ("gamma",))
        for g in gammas:
            _number(g, "gamma", check, where + ("gamma",) if "gamma" in block else ("gamma",), low=0)
        for m in methods:
            mb = per_method.get(m, {})
            preset = block.get("preset", mb.get("preset", data.get("preset", "dsprites-cpu32")))
            kimg = block.get("kimg", mb.get("kimg", data.get("kimg")))
            options = {**mb.get("options", {}), **block.get("options", {})}
            try:
                labelled, gamma_too = uses_labels(m), takes_gamma(m)
            except UserError as e:
                raise check.fail(str(e), *where, "methods") from None
            m_etas = etas if labelled else [0.0]
            m_gammas = gammas if gamma_too else [None]
            for eta, gamma, seed in itertools.product(m_etas, m_gammas, seeds):
                if labelled and eta == 0:
                    raise check.fail(f"method '{m}' needs eta > 0", *where, "eta")
                cell = Cell(0, label, m, float(eta), None if gamma is None else float(gamma), int(seed), preset,
                            None if kimg is None else float(kimg), dict(options), lines.line(*where),
                            lines.line(*where, "options") if "options" in block else
                            (lines.line("methods", m, "options") if "options" in mb else None))
                cells.setdefault(cell.cell_id, cell)
    ordered = list(cells.values())
    for i, c in enumerate(ordered):
        c.index = i

    top = {k: data.get(k) for k in ("dataset", "data_path", "resolution")}
    study = Study(path, data.get("name", path.stem), data.get("description", ""), data.get("budget", ""), top,
                  metrics, ordered)
    _validate_configs(study, check, validate_methods)
    return study


def _validate_configs(study: Study, check: _Checker, validate_methods: bool):
    """Build every cell's config (and method, without networks): bad values fail before any training."""
    from semistylegan.methods import build_method

    infos: dict[tuple, dict] = {}
    for cell in study.cells:
        try:
            cfg = cell.config(study.top)
            if validate_methods:
                key = (cfg.dataset, cfg.resolution, cfg.data_path)
                if key not in infos:
                    from semistylegan.data import make_dataset

                    try:
                        infos[key] = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path).info()
                    except UserError:
                        infos[key] = None   # data not here (yet): the run will say so; configs are still checked
                if infos[key] is not None:
                    build_method(cfg, infos[key])
        except UserError as e:
            line = cell.options_line if cell.options_line and "--" in str(e) else cell.line
            where_line = f"{study.path}:{line}" if line else str(study.path)
            raise UserError(f"{where_line}: cell {cell.cell_id}: {e}") from None


def load_study(path: str | os.PathLike, validate_methods: bool = True) -> Study:
    path = Path(path)
    data, text = _read_toml(path)
    return parse_study(data, text, path, validate_methods)


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
    want_gen = method.has_generator and metrics["gen"] and identified
    want_fid = method.has_generator and metrics["fid"] and method.prior_samples
    if want_gen or want_fid:
        from semistylegan.metrics.oracle import get_oracle

        oracle = get_oracle(dataset, train_steps=int(metrics["oracle_steps"]))
        generate = generator_fn(method, nets, device)
        rs = np.random.RandomState(seed + 777)
        fs = dataset.factor_space
        if want_gen:
            ng = int(metrics["gen_samples"])
            classes = fs.sample_classes(ng, rs)
            codes = fs.classes_to_code(classes).astype(np.float32)
            read = oracle.encode(generate(codes, seed=seed + 778))
            varied = [k for k in range(K) if len(np.unique(classes[:, k])) > 1]
            out["mig_gen"] = float(M.mig(read, classes[:, varied])["discrete_mig"])
            out["l2_gen"] = float(np.sqrt(((read - codes) ** 2).sum(axis=1)).mean())
        if want_fid:
            nf = int(metrics["fid_samples"])
            classes = fs.sample_classes(nf, rs)
            if method.cfg.method == "infogan-cr":   # its prior: codes uniform in [0, 1] (-> [-1, 1] inside)
                codes = rs.uniform(0, 1, size=(nf, K)).astype(np.float32)
            else:
                codes = fs.classes_to_code(classes).astype(np.float32)
            fake = generate(codes, seed=seed + 779)
            real = dataset.images(rs.randint(len(dataset), size=nf))
            out["ofid"] = _frechet(oracle.features(real).astype(np.float64), oracle.features(fake).astype(np.float64))
    if notes:
        out["notes"] = notes
    del torch
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


def run_cell(study: Study, cell: Cell, out: Path, log=print) -> dict:
    """Train (or resume) one cell, evaluate it, write its result.json."""
    from semistylegan.checkpoint import list_snapshots, load_snapshot

    d = cell_dir(out, cell)
    d.mkdir(parents=True, exist_ok=True)
    cfg = cell.config(study.top)
    Trainer = _study_trainer_class()
    t0 = time.time()
    trainer = Trainer(cfg, d, progress=False)
    snaps = list_snapshots(d)
    resumed = 0.0
    if snaps:
        trainer.load_state_dict(load_snapshot(snaps[-1]), source=str(snaps[-1]))
        resumed = trainer.cur_nimg / 1000
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
        row.update(evaluate_cell(trainer.method, trainer.eval_nets, trainer.dataset, study.metrics, trainer.device,
                                 seed=cell.seed))
        row["eval_seconds"] = round(time.time() - t1, 1)
    else:
        row["message"] = result.get("message", "")
    _atomic_json(d / "result.json", row)
    shown = {k: round(v, 4) for k, v in row.items() if k in METRIC_COLUMNS and isinstance(v, float)}
    log(f"    {row['status']} in {train_seconds:.0f} s: {json.dumps(shown)}")
    return row


def partition(cells: list[Cell], workers: int, worker: int) -> list[Cell]:
    """The cells of one worker: every `workers`-th cell, starting at `worker`."""
    return [c for c in cells if c.index % workers == worker]


def run_study(study: Study, out: str | os.PathLike, max_cells: int | None = None, retry_failed: bool = False,
              workers: int = 1, worker: int | None = None, log=print) -> list[dict]:
    """Run the unfinished cells (of this worker), then write the summary. Returns the result rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = study.cells if worker is None else partition(study.cells, workers, worker)
    ran = 0
    for cell in todo:
        res = cell_result(out, cell)
        if res is not None and (res.get("status") == "done" or not retry_failed):
            continue
        if max_cells is not None and ran >= max_cells:
            break
        try:
            run_cell(study, cell, out, log)
        except UserError:
            raise
        except Exception as e:  # keep an overnight study going; the cell is recorded as failed
            d = cell_dir(out, cell)
            (d / "error.txt").write_text(traceback.format_exc())
            _atomic_json(d / "result.json", {"cell": cell.cell_id, "label": cell.label, "method": cell.method,
                                             "eta": cell.eta, "gamma": cell.gamma, "seed": cell.seed,
                                             "status": "error", "message": f"{type(e).__name__}: {e}"})
            log(f"    error: {type(e).__name__}: {e} (details in {d / 'error.txt'})")
        ran += 1
    rows = [r for r in (cell_result(out, c) for c in study.cells) if r is not None]
    if worker is None:
        summarise(study, rows, out)
    return rows


def run_parallel(study_path: Path, study: Study, out: Path, devices: list[str], retry_failed: bool, log=print):
    """One worker process per device (CUDA_VISIBLE_DEVICES set to it, or CPU workers when devices
    are 'cpu'), each running its share of the cells; then the summary."""
    procs = []
    for i, dev in enumerate(devices):
        env = dict(os.environ)
        if dev != "cpu":
            env["CUDA_VISIBLE_DEVICES"] = dev
        cmd = [sys.executable, "-m", "semistylegan", "study", str(study_path), "--out", str(out),
               "--worker", str(i), "--num-workers", str(len(devices))]
        if retry_failed:
            cmd.append("--retry-failed")
        procs.append(subprocess.Popen(cmd, env=env))
        log(f"worker {i} on {'GPU ' + dev if dev != 'cpu' else 'CPU'}: pid {procs[-1].pid}")
    codes = [p.wait() for p in procs]
    rows = [r for r in (cell_result(out, c) for c in study.cells) if r is not None]
    summarise(study, rows, out)
    return codes


# ---------------------------------------------------------------------------------------------
# Summary: results.csv, results.md, plots.

def _fmt(mean: float, std: float, n: int) -> str:
    digits = 3 if abs(mean) < 10 else 1
    s = f"{mean:.{digits}f}"
    return s + (f" +- {std:.{digits}f}" if n > 1 else "")


def _group_key(r: dict):
    return (r.get("label", ""), r["method"], r.get("eta", 0.0), r.get("gamma"))


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation (ddof = 1) over seeds, per (label, method, eta, gamma)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("status") == "done":
            groups.setdefault(_group_key(r), []).append(r)
    out = []
    for key, rs in groups.items():
        g = {"label": key[0], "method": key[1], "eta": key[2], "gamma": key[3], "seeds": len(rs)}
        for m in METRIC_COLUMNS:
            vals = [float(r[m]) for r in rs if isinstance(r.get(m), (int, float)) and math.isfinite(r[m])]
            if vals:
                g[m] = (float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0, len(vals))
        out.append(g)
    return out


def _row_name(g: dict, multi_eta: bool, multi_gamma: bool) -> str:
    name = g["label"] or display_name(g["method"])
    bits = []
    if multi_eta and uses_labels(g["method"]):
        bits.append(f"eta = {100 * g['eta']:g}%")
    if multi_gamma and g["gamma"] is not None:
        bits.append(f"gamma = {g['gamma']:g}")
    return name + (f" ({', '.join(bits)})" if bits else "")


def summarise(study: Study, rows: list[dict], out: Path) -> dict:
    """Write results.csv, results.md and the plots; returns {name: path} of what was written."""
    out = Path(out)
    written = {}
    cols = ["cell", "label", "method", "eta", "gamma", "seed", "preset", "kimg", "status", *METRIC_COLUMNS,
            "train_seconds", "eval_seconds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in cols})
    (out / "results.csv").write_text(buf.getvalue())
    written["csv"] = out / "results.csv"

    groups = aggregate(rows)
    used = [m for m in METRIC_COLUMNS if any(m in g for g in groups)]
    etas = {g["eta"] for g in groups if uses_labels(g["method"])}
    gammas = {g["gamma"] for g in groups if g["gamma"] is not None}
    lines = [f"# {study.name}", ""]
    if study.description:
        lines += [study.description.strip(), ""]
    if study.budget:
        lines += [f"Budget: {study.budget.strip()}", ""]
    n_done = sum(r.get("status") == "done" for r in rows)
    lines += [f"{n_done} of {len(study.cells)} cells finished"
              + (f"; {len(rows) - n_done} failed or diverged (see results.csv)" if len(rows) > n_done else "")
              + ". Mean +- sample standard deviation over seeds; 'seeds' = finished seeds of the row.", ""]
    if groups:
        lines.append("| method | seeds | " + " | ".join(METRIC_TITLES[m] for m in used) + " |")
        lines.append("|---|---|" + "---|" * len(used))
        for g in groups:
            cells = [(_fmt(*g[m]) if m in g else "-") for m in used]
            lines.append(f"| {_row_name(g, len(etas) > 1, len(gammas) > 1)} | {g['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["Metrics: MIG and Factor score of the encoder (disentanglement_lib semantics); L2 = mean ||E(x) - c||_2 "
              "on real images (identified codes only); MIG-gen / L2-gen read generated images with the oracle "
              "encoder; oracle FID = Frechet distance of oracle-encoder features (not Inception FID).",
              f"Evaluation sample sizes: {json.dumps(study.metrics)}.", ""]
    plots = plot_study(groups, out)
    written.update(plots)
    for key, p in plots.items():
        lines.append(f"![{key}]({p.name})")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    written["md"] = out / "results.md"
    return written


def plot_study(groups: list[dict], out: Path) -> dict:
    """fig_eta.png (Figure 2: MIG, L2, MIG-gen, L2-gen against eta, log axis) and fig_realism.png
    (oracle FID against MIG and MIG-gen, one point per gamma). A plot without data is not written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = {}
    curves: dict[tuple, list[dict]] = {}
    for g in groups:
        if uses_labels(g["method"]) and g["eta"] > 0:
            curves.setdefault((g["label"], g["method"], g["gamma"]), []).append(g)
    panels = ["mig", "l2", "mig_gen", "l2_gen"]
    if any(any(p in g for g in gs for p in panels) for gs in curves.values()):
        from matplotlib.ticker import FuncFormatter, NullFormatter

        keys = sorted(curves, key=str)
        colours = {k: f"C{i % 10}" for i, k in enumerate(keys)}   # one colour per curve in every panel
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
        for ax, metric in zip(axes, panels):
            for (label, method, gamma) in keys:
                gs = curves[(label, method, gamma)]
                pts = sorted((g["eta"], *g[metric][:2]) for g in gs if metric in g)
                if not pts:
                    continue
                x, y, e = map(np.asarray, zip(*pts))
                name = label or display_name(method)
                if gamma is not None:
                    name += f" (gamma={gamma:g})"
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=name, color=colours[(label, method, gamma)])
            ax.set_xscale("log")
            ax.set_xticks(sorted({g["eta"] for gs in curves.values() for g in gs}))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}%"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("eta (fraction of labelled images)")
            ax.set_title(METRIC_TITLES[metric])
            ax.grid(alpha=0.3)
        seen = {}
        for ax in axes:
            for h, nm in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(nm, h)
        handles, names = list(seen.values()), list(seen)
        if handles:
            fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=8)
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        fig.savefig(out / "fig_eta.png", dpi=110)
        plt.close(fig)
        written["eta curves"] = out / "fig_eta.png"
    pts = [g for g in groups if "ofid" in g and g["gamma"] is not None]
    if pts:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
        for ax, metric in zip(axes, ("mig", "mig_gen")):
            for g in pts:
                if metric not in g:
                    continue
                name = g["label"] or display_name(g["method"])
                ax.errorbar(g[metric][0], g["ofid"][0], xerr=g[metric][1], yerr=g["ofid"][1], marker="o", capsize=3)
                ax.annotate(f"{name} gamma={g['gamma']:g}" + (f" eta={100 * g['eta']:g}%" if uses_labels(g["method"]) else ""),
                            (g[metric][0], g["ofid"][0]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(METRIC_TITLES[metric] + " (disentanglement)")
            ax.set_ylabel("oracle FID (lower = more realistic)")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "fig_realism.png", dpi=110)
        plt.close(fig)
        written["realism vs disentanglement"] = out / "fig_realism.png"
    return written
