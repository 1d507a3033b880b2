"""Progress on stderr for the commands that run longer than a few seconds.

One switch for the whole process: `set_quiet(True)` (the commands' `--quiet`) silences both the
stage lines and the bars. Results still go to stdout and files; progress never does.
"""
from __future__ import annotations

import sys
import time

__all__ = ["set_quiet", "is_quiet", "stage", "bar"]

_state = {"quiet": False, "t0": time.monotonic()}


def set_quiet(flag: bool) -> None:
    _state["quiet"] = bool(flag)


def is_quiet() -> bool:
    return _state["quiet"]


def stage(message: str) -> None:
    """One line on stderr, stamped with the seconds since the process started."""
    if not _state["quiet"]:
        print(f"[{time.monotonic() - _state['t0']:7.1f}s] {message}", file=sys.stderr, flush=True)


def bar(iterable=None, **kwargs):
    """A tqdm bar on stderr (disabled when quiet); the same keyword arguments as tqdm (`disable`
    can only add to quiet)."""
    from tqdm import tqdm

    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    disable = bool(kwargs.pop("disable", False)) or _state["quiet"]
    return tqdm(iterable, file=sys.stderr, disable=disable, **kwargs)
