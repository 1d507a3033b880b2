"""Reader for the plain folder format: images under a folder and labels.csv (docs/datasets.md),
a partial-label dataset; and `codes_to_values`, which reads codes back in the user's units.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os

import numpy as np

from semistylegan.data.array_files import check_dir, check_file
from semistylegan.data.cache import file_checksum, stat_fingerprint
from semistylegan.data.factors import FactorSpace
from semistylegan.data.image_folders import ImageFilesSource
from semistylegan.data.imaging import IMAGE_EXTENSIONS
from semistylegan.errors import UserError

__all__ = ["FolderSource", "codes_to_values"]


def _name_list(v) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [x.strip() for x in v.split(",") if x.strip()]
    return [str(x) for x in v]


def _parse_number(s: str):
    try:
        v = float(s)
    except ValueError:
        return None
    return v


class FolderSource(ImageFilesSource):
    """The plain format: images (PNG/JPEG) anywhere under PATH and PATH/labels.csv.

    labels.csv: header `file,<factor>,...`; one row per labelled image, paths relative to PATH;
    an empty value, or an image without a row, is unknown. A header cell may declare the type:
    `name:discrete`, `name:discrete[a|b|c]` (the allowed values, in that order),
    `name:continuous` or `name:continuous[lo..hi]` (the allowed range, used for normalising;
    `[lo;hi]` and a quoted `"name:continuous[lo,hi]"` work too).
    Undeclared factors are discrete when a value is not a number, or when all values are
    integers with at most 64 distinct values; otherwise continuous.
    Discrete: the sorted distinct values (numbers numerically, names as strings) are classes
    0..m-1 with code j/(m-1). Continuous: code = (v - min) / (max - min), and the classes the
    metrics need are `bins` equal-width bins of the code (default 10).
    """

    name = "folder"
    channels = 3
    is_grid = False
    MAX_INT_CLASSES = 64

    def __init__(self, path: str, discrete=None, continuous=None, bins: int = 10, mixed_sizes: bool = False):
        root = check_dir(str(path), "image folder")
        csv_path = check_file(os.path.join(root, "labels.csv"), "label file labels.csv")
        discrete = _name_list(discrete)
        continuous = _name_list(continuous)
        bins = int(bins)
        if bins < 2:
            raise UserError(f"folder: bins must be at least 2, got {bins}")
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in filenames:
                if fn.lower().endswith(IMAGE_EXTENSIONS) and not fn.startswith("."):
                    files.append(os.path.relpath(os.path.join(dirpath, fn), root).replace(os.sep, "/"))
        files.sort()
        if not files:
            raise UserError(f"{root}: no PNG or JPEG images found")
        self.csv_path = csv_path
        self.bins = bins
        self._parse_csv(csv_path, files, set(discrete or ()), set(continuous or ()))
        self.num_images = len(files)
        self._init_files(root, files, mixed_sizes=bool(mixed_sizes))
        self.options = {"discrete": sorted(discrete or ()), "continuous": sorted(continuous or ()), "bins": bins,
                        "mixed_sizes": bool(mixed_sizes)}

    def _parse_csv(self, csv_path, files, discrete, continuous):
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.reader(f))
        except UnicodeDecodeError:
            raise UserError(f"{csv_path}: not a UTF-8 text file") from None
        except csv.Error as e:
            raise UserError(f"{csv_path}: malformed CSV ({e})") from None
        if not rows or not rows[0] or rows[0][0].strip() != "file":
            raise UserError(f"{csv_path}: the header must start with 'file', then the factor names")
        specs = []
        for cell in rows[0][1:]:
            specs.append(self._parse_header(cell.strip(), csv_path))
        names = [s[0] for s in specs]
        if not names:
            raise UserError(f"{csv_path}: the header names no factor after 'file'; give at least one factor column")
        if len(set(names)) != len(names) or any(not n for n in names):
            raise UserError(f"{csv_path}: factor names must be unique and non-empty, got {names}")
        for n in set(discrete) | set(continuous):
            if n not in names:
                raise UserError(f"{csv_path}: declared factor '{n}' is not a column")
        k = len(names)
        position = {f: i for i, f in enumerate(files)}
        raw = [[None] * k for _ in files]
        seen = {}
        for ln, row in enumerate(rows[1:], 2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != k + 1:
                raise UserError(f"{csv_path}: line {ln} has {len(row)} fields, the header has {k + 1}")
            rel = os.path.normpath(row[0].strip()).replace(os.sep, "/")
            if rel not in position:
                raise UserError(f"{csv_path}: line {ln} names '{row[0].strip()}', which is not an image under "
                                f"{os.path.dirname(csv_path)}")
            if rel in seen:
                raise UserError(f"{csv_path}: line {ln} repeats '{rel}' (first on line {seen[rel]})")
            seen[rel] = ln
            raw[position[rel]] = [(c.strip() or None, ln) for c in row[1:]]
        n = len(files)
        classes = np.full((n, k), -1, dtype=np.int64)
        codes = np.full((n, k), np.nan, dtype=np.float32)
        mapping, sizes, values = [], [], []
        for j, (name, kind, allowed) in enumerate(specs):
            if name in discrete:
                kind = kind or "discrete"
            if name in continuous:
                kind = kind or "continuous"
            col = [(i, r[j]) for i, r in enumerate(raw) if r[j] is not None and r[j][0] is not None]
            cls_j, code_j, m = self._column(name, kind, allowed, col, csv_path)
            for (i, _), c, v in zip(col, cls_j, code_j):
                classes[i, j] = c
                codes[i, j] = v
            mapping.append(m)
            sizes.append(m["classes"])
            values.append(m["class_values"])
        self.mapping = mapping
        self._classes = classes
        self._codes = codes
        self.factor_space = FactorSpace(tuple(names), tuple(sizes), tuple(tuple(v) for v in values) if values else None)

    @staticmethod
    def _parse_header(cell, csv_path):
        name, kind, allowed = cell, None, None
        if ":" in cell:
            name, rest = cell.split(":", 1)
            rest = rest.strip()
            kind = rest.split("[", 1)[0].strip()
            if kind not in ("discrete", "continuous"):
                raise UserError(f"{csv_path}: header '{cell}': the type must be discrete or continuous")
            if "[" in rest:
                if not rest.endswith("]"):
                    raise UserError(f"{csv_path}: header '{cell}': unclosed '['")
                inner = rest[rest.index("[") + 1 : -1]
                if kind == "discrete":
                    allowed = [v.strip() for v in inner.split("|") if v.strip()]
                    if not allowed:
                        raise UserError(f"{csv_path}: header '{cell}': empty value list")
                else:
                    sep = ".." if ".." in inner else (";" if ";" in inner else ",")
                    parts = inner.split(sep)
                    lo, hi = (_parse_number(p) for p in parts) if len(parts) == 2 else (None, None)
                    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
                        raise UserError(f"{csv_path}: header '{cell}': the range must be [lo,hi] with lo < hi")
                    allowed = (lo, hi)
        return name.strip(), kind, allowed

    def _column(self, name, kind, allowed, col, csv_path):
        texts = [v[0] for _, v in col]
        lines = [v[1] for _, v in col]
        nums = [_parse_number(t) for t in texts]
        numeric = all(x is not None for x in nums)
        if numeric:
            bad = next((i for i, x in enumerate(nums) if not math.isfinite(x)), None)
            if bad is not None:
                raise UserError(f"{csv_path}: line {lines[bad]}: factor '{name}' value '{texts[bad]}' is not finite")
        if kind is None:
            if not numeric:
                kind = "discrete"
            else:
                integral = all(float(x).is_integer() for x in nums)
                kind = "discrete" if integral and len(set(nums)) <= self.MAX_INT_CLASSES else "continuous"
        if kind == "continuous":
            if not numeric:
                bad = next(i for i, x in enumerate(nums) if x is None)
                raise UserError(f"{csv_path}: line {lines[bad]}: continuous factor '{name}' has the non-number "
                                f"'{texts[bad]}'")
            arr = np.asarray(nums, dtype=np.float64)
            if allowed is not None:
                lo, hi = allowed
                out = np.flatnonzero((arr < lo) | (arr > hi))
                if len(out):
                    raise UserError(f"{csv_path}: line {lines[out[0]]}: factor '{name}' value {texts[out[0]]} is "
                                    f"outside its range [{lo:g}, {hi:g}]")
            else:
                lo, hi = (float(arr.min()), float(arr.max())) if len(arr) else (0.0, 1.0)
            span = hi - lo
            code = (arr - lo) / span if span > 0 else np.zeros_like(arr)
            cls = np.minimum((code * self.bins).astype(np.int64), self.bins - 1)
            centres = [lo + (b + 0.5) / self.bins * (span if span > 0 else 0.0) for b in range(self.bins)]
            return cls, code, {"name": name, "type": "continuous", "min": lo, "max": hi, "classes": self.bins,
                               "class_values": centres, "labelled": len(arr)}
        # discrete
        if allowed is not None:
            order = list(allowed)
            index = {v: i for i, v in enumerate(order)}
            if numeric and all(_parse_number(a) is not None for a in order):  # "1" and "1.0" are one value
                index = {_parse_number(v): i for i, v in enumerate(order)}
                keys = nums
            else:
                keys = texts
            bad = next((i for i, key in enumerate(keys) if key not in index), None)
            if bad is not None:
                raise UserError(f"{csv_path}: line {lines[bad]}: factor '{name}' value '{texts[bad]}' is not one of "
                                f"{'|'.join(order)}")
            cls = np.asarray([index[key] for key in keys], dtype=np.int64)
            shown = order
        elif numeric:
            uniq = sorted(set(nums))
            index = {v: i for i, v in enumerate(uniq)}
            cls = np.asarray([index[x] for x in nums], dtype=np.int64)
            shown = uniq
        else:
            uniq = sorted(set(texts))
            index = {v: i for i, v in enumerate(uniq)}
            cls = np.asarray([index[t] for t in texts], dtype=np.int64)
            shown = uniq
        m = max(len(shown), 1)
        code = cls / max(m - 1, 1)
        class_values = [float(v) if isinstance(v, (int, float)) else float(i) for i, v in enumerate(shown)] or [0.0]
        return cls, code, {"name": name, "type": "discrete", "values": shown, "classes": m,
                           "class_values": class_values, "labelled": len(cls)}

    def checksum(self):
        h = hashlib.sha256(file_checksum(self.csv_path).encode())
        h.update(stat_fingerprint(self.root, self.relpaths).encode())
        return h.hexdigest()

    def labels(self):
        return self._classes, self._codes

    def extra_info(self):
        return {"source": os.path.abspath(self.root), "factor_mapping": self.mapping}


def codes_to_values(mapping: list[dict], codes: np.ndarray) -> list[list]:
    """Read codes (N, K) back in the user's units using a folder dataset's info()['factor_mapping']."""
    codes = np.asarray(codes, dtype=np.float64)
    out = []
    for row in codes:
        vals = []
        for m, c in zip(mapping, row):
            if not np.isfinite(c):
                vals.append(None)
            elif m["type"] == "continuous":
                vals.append(m["min"] + float(np.clip(c, 0, 1)) * (m["max"] - m["min"]))
            else:
                k = len(m["values"])
                vals.append(m["values"][int(np.clip(np.rint(c * max(k - 1, 1)), 0, k - 1))])
        out.append(vals)
    return out
