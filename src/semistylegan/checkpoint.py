"""Snapshots: atomic writes, safe loads.

A snapshot holds only tensors, plain containers and the config, so it loads with
`torch.load(weights_only=True)`. It is written to a temporary file in the same directory,
flushed and fsynced, then renamed over the target, so a kill at any moment leaves either the
previous snapshot or the new one, never a torn file.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

import torch

from semistylegan.errors import UserError

__all__ = ["atomic_save", "load_snapshot", "atomic_write_text", "list_snapshots", "latest_snapshot", "FORMAT"]

FORMAT = "semistylegan-snapshot-v1"
_SNAP = re.compile(r"^snapshot-(\d+)\.pt$")


@contextlib.contextmanager
def _atomic_file(path: Path, mode: str):
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`,
    on any error remove it, so `path` is always either the old or the complete new file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj, path: str | os.PathLike):
    with _atomic_file(Path(path), "wb") as f:
        torch.save(obj, f)


def atomic_write_text(path: str | os.PathLike, text: str):
    with _atomic_file(Path(path), "w") as f:
        f.write(text)


def load_snapshot(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load and check a snapshot; any problem is a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such snapshot file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, corrupt, not a torch file, unsafe pickle
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable snapshot ({reason[:160]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path}: not a semistylegan snapshot")
    return obj


def list_snapshots(run_dir: str | os.PathLike) -> list[Path]:
    """Snapshots of a run, oldest first (by training step)."""
    run_dir = Path(run_dir)
    found = []
    for p in run_dir.glob("snapshot-*.pt"):
        m = _SNAP.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_snapshot(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    snaps = list_snapshots(run_dir)
    if not snaps:
        if not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir}: not a semistylegan run directory (no config.json, no snapshot)")
        raise UserError(f"{run_dir}: the run has no snapshot yet")
    return snaps[-1]
