"""The study file: parse and check a TOML grid, expand it into cells (errors name the line)."""
from __future__ import annotations

import dataclasses
import itertools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path


from semistylegan.errors import UserError

__all__ = ["Cell", "Study", "load_study", "parse_study", "uses_labels", "takes_gamma", "display_name",
           "METRIC_COLUMNS", "METRIC_TITLES"]




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


METRIC_COLUMNS = ("factor_score", "mig", "l2", "dci", "mig_gen", "l2_gen", "ofid")
METRIC_TITLES = {"factor_score": "Factor score", "mig": "MIG", "l2": "L2", "dci": "DCI D", "mig_gen": "MIG-gen",
                 "l2_gen": "L2-gen",
                 "ofid": "oracle FID"}

_TOP_KEYS = {"name", "description", "budget", "preset", "kimg", "dataset", "data_path", "resolution", "seeds", "eta",
             "gamma", "metrics", "methods", "grid", "claim"}
_GRID_KEYS = {"label", "methods", "eta", "gamma", "seeds", "preset", "kimg", "options"}
_METHOD_KEYS = {"preset", "kimg", "options"}
_METRIC_DEFAULTS = {"samples": 10000, "factor_train": 10000, "factor_eval": 5000, "factor_variance": 10000,
                    "dci_train": 10000, "dci_test": 5000, "gen_samples": 10000, "oracle_steps": 3000,
                    "fid_samples": 10000, "gen": True, "fid": True, "dci": True}
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
    claims: list = field(default_factory=list)   # study.claims.Claim


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
    if integer:
        ok = isinstance(v, int) and not isinstance(v, bool)
    else:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
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
    # Seed by seed: every row's first seed runs before any row's second, so a study stopped part way
    # already has every row (stable: within a seed, the file's order).
    ordered = sorted(cells.values(), key=lambda c: c.seed)
    for i, c in enumerate(ordered):
        c.index = i

    top = {k: data.get(k) for k in ("dataset", "data_path", "resolution")}
    from semistylegan.study.claims import parse_claims

    claims = parse_claims(data["claim"], ordered, check) if "claim" in data else []
    study = Study(path, data.get("name", path.stem), data.get("description", ""), data.get("budget", ""), top,
                  metrics, ordered, claims)
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
                        infos[key] = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path, **cfg.data_options).info()
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


