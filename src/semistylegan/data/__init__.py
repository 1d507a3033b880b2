"""Datasets: a registry of names usable as `--dataset NAME [--data-path PATH]`."""
from __future__ import annotations

from typing import Callable

from semistylegan.data.dataset import GroundTruthDataset, ImageDataset, LabeledSubset
from semistylegan.data.factors import FactorSpace
from semistylegan.errors import UserError

__all__ = [
    "FactorSpace", "ImageDataset", "GroundTruthDataset", "LabeledSubset", "make_dataset", "register_dataset",
    "DATASETS",
]

# name -> builder(resolution: int | None, data_path: str | None, **options) -> ImageDataset
DATASETS: dict[str, Callable[..., ImageDataset]] = {}


def register_dataset(name: str):
    def deco(fn):
        DATASETS[name] = fn
        return fn

    return deco


@register_dataset("dsprites")
def _dsprites(resolution=None, data_path=None, **options):
    from semistylegan.data.dsprites import ProceduralDSprites

    if data_path is not None:
        from semistylegan.data import dsprites

        reader = getattr(dsprites, "OfficialDSprites", None)
        if reader is None:
            raise UserError("reading the official dSprites file is not available in this version")
        return reader(data_path, resolution=resolution or 64, **options)
    return ProceduralDSprites(resolution=resolution or 64)


def make_dataset(name: str, resolution: int | None = None, data_path: str | None = None, **options) -> ImageDataset:
    """Build a dataset by name. Unknown names and bad paths raise UserError (one clear line)."""
    _load_plugins()
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; choose one of: {', '.join(sorted(DATASETS))}")
    try:
        return DATASETS[name](resolution=resolution, data_path=data_path, **options)
    except ValueError as e:
        raise UserError(f"dataset '{name}': {e}") from None


def _load_plugins():
    # Modules that register more datasets on import; absent modules are simply skipped.
    import importlib

    for mod in ("semistylegan.data.registry",):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
