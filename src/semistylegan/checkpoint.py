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
import zipfile
from pathlib import Path

import torch

from semistylegan.errors import UserError

__all__ = ["atomic_save", "load_snapshot", "atomic_write_text", "list_snapshots", "latest_snapshot",
           "newest_intact_snapshot", "remove_stale_temp_files", "FORMAT"]

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
    """Load and check a snapshot; any problem is a UserError, one sentence naming the file and
    what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such snapshot file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, corrupt, not a torch file, unsafe pickle
        raise UserError(f"{path} is not a readable snapshot: {_what_is_wrong(path, e)}.") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path} is not a semistylegan snapshot: it is a PyTorch file, but not a snapshot of this "
                        f"program (no '{FORMAT}' tag).")
    return obj


def _what_is_wrong(path: Path, error: Exception) -> str:
    """Why torch.load failed, in words: an empty file, a file that is not a PyTorch zip, a zip
    whose end is missing (an interrupted write or copy), or a damaged or unsafe one."""
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        return "it is not a snapshot of this program (not a PyTorch file)"
    if not zipfile.is_zipfile(path):  # the zip's directory sits at its end: a cut file has none
        return f"it is truncated at byte {size} (an interrupted write or copy)"
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"it is corrupt ({reason[:160].rstrip('.')})"


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that interrupted atomic writes left in a run directory
    (`.snapshot-*.pt.*.tmp`, `.config.json.*.tmp`, ...). Call only when no other process writes
    to the run: at the start of a run or a resume."""
    removed = []
    for tmp in Path(run_dir).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def newest_intact_snapshot(run_dir: str | os.PathLike,
                           map_location="cpu") -> tuple[Path | None, dict | None, list[str]]:
    """The newest snapshot of a run that loads, and the one-sentence problems of the newer ones
    that do not (newest first). (None, None, []) when the run has no snapshot; a UserError when
    it has snapshots and none of them loads."""
    problems = []
    for path in reversed(list_snapshots(run_dir)):
        try:
            return path, load_snapshot(path, map_location), problems
        except UserError as e:
            problems.append(str(e))
    if problems:
        older = " No older snapshot is intact." if len(problems) > 1 else ""
        raise UserError(problems[0] + older)
    return None, None, []


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
