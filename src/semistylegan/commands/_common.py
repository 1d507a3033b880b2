"""Helpers shared by the commands that read a run."""
from __future__ import annotations

from pathlib import Path

from semistylegan.errors import UserError


def parse_seeds(text: str) -> list[int]:
    """'0-7' -> [0..7]; '1,5,9' -> [1, 5, 9]; '3' -> [3]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            if sep:
                if int(hi) < int(lo):
                    raise ValueError
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(lo))
    except ValueError:
        raise UserError(f"--seeds expects a list like 0-7 or 1,5,9, got '{text}'") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds expects non-negative seeds, got '{text}'")
    if len(seeds) > 1024:
        raise UserError(f"--seeds asks for {len(seeds)} images; at most 1024")
    return seeds


def parse_assignments(text: str, names: tuple[str, ...], what: str = "--code") -> dict[str, float]:
    """'shape=0.5,scale=1' -> {'shape': 0.5, 'scale': 1.0}, values checked to lie in [0, 1]."""
    out: dict[str, float] = {}
    for item in [t for t in text.split(",") if t.strip()]:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise UserError(f"{what} expects NAME=VALUE pairs, got '{item}'")
        if name not in names:
            raise UserError(f"{what}: unknown factor '{name}'; factors are: {', '.join(names)}")
        try:
            v = float(value)
        except ValueError:
            raise UserError(f"{what}: value of '{name}' must be a number, got '{value}'") from None
        if not (0.0 <= v <= 1.0):
            raise UserError(f"{what}: value of '{name}' must be in [0, 1], got {v}")
        out[name] = v
    return out


def check_truncation(psi: float) -> float:
    """--truncation of generate, traverse and edit: a psi in [0, 1] (NaN gives black images, > 1 nonsense)."""
    if not (0.0 <= psi <= 1.0):  # also refuses NaN
        raise UserError(f"--truncation must be in [0, 1], got {psi}")
    return psi


def check_out_path(path: str | Path, what: str = "--out") -> Path:
    """Refuse an output path that cannot be written, without creating anything: the folders it
    needs are made only when the result is written (save_png), after every input was checked."""
    p = Path(path)
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{what} '{path}': {parent} is a file, not a folder")
            break
    return p


def check_png_out(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got '{path}'")
    if p.is_dir():
        raise UserError(f"--out '{path}' is a folder; name a .png file")
    return check_out_path(p)
