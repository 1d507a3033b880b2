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


def check_png_out(path: str) -> Path:
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise UserError(f"--out must name a .png file, got '{path}'")
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    return p
