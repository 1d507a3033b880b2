"""Registrations of every dataset name, and the paper's resolutions for presets.

`make_dataset(NAME, resolution, data_path, **options)` with NAME one of:
  dsprites, dsprites-color, dsprites-noisy, dsprites-scream, dsprites-real (alias
  dsprites-inpainted), shapes3d, mpi3d, cars3d, smallnorb, falcor3d, isaac3d, celeba, folder.
dsprites* and shapes3d are procedural unless `data_path` names the official file; the others
read the official files (docs/datasets.md) through the preprocessing cache.

Options (keyword arguments of make_dataset):
- every file dataset: `workers` (cache build processes, default all cores), `progress` (bar).
- dsprites-color/-noisy/-scream: `seed` (nuisance stream, default 0); scream: `scream_image`.
- dsprites-real: `num_images` (default 737280), `seed`.
- celeba: `split` = all | train | valid | test (needs list_eval_partition.txt unless all).
- folder: `discrete`, `continuous` (lists of factor names), `bins` (classes of a continuous
  factor, default 10), `mixed_sizes` (allow images of different sizes; default False).
- falcor3d/isaac3d/mpi3d: `factor_sizes` (declare a smaller grid; for tests and subsets).
"""
from __future__ import annotations

from semistylegan.data import register_dataset
from semistylegan.errors import UserError

__all__ = ["PAPER_RESOLUTIONS", "DEFAULT_RESOLUTIONS", "DATASET_NAMES"]

# The resolutions the paper () uses for each dataset; presets pick from these.
PAPER_RESOLUTIONS: dict[str, tuple[int, ...]] = {
    "dsprites": (64,),
    "dsprites-color": (64,),
    "dsprites-noisy": (64,),
    "dsprites-scream": (64,),
    "dsprites-real": (64,),
    "shapes3d": (64,),
    "mpi3d": (64,),
    "cars3d": (64,),
    "smallnorb": (64,),
    "falcor3d": (128, 1024),
    "isaac3d": (128, 512),
    "celeba": (256,),
    "folder": (64,),
}
# The resolution used when none is given (the smallest paper resolution; CelebA 64 to keep
# the default cache small: 202,599 x 3 x 256 x 256 would be 40 GB).
DEFAULT_RESOLUTIONS: dict[str, int] = {k: min(v) for k, v in PAPER_RESOLUTIONS.items()}
DEFAULT_RESOLUTIONS["celeba"] = 64

DATASET_NAMES = tuple(PAPER_RESOLUTIONS)

_FILE_OPTIONS = ("workers", "progress")


def _res(name, resolution):
    return int(resolution) if resolution else DEFAULT_RESOLUTIONS[name]


def _no_options(name, options, allowed=()):
    extra = sorted(set(options) - set(allowed))
    if extra:
        raise UserError(f"dataset '{name}' does not take the option(s): {', '.join(extra)}")


def _cache_opts(options):
    return {k: options.pop(k) for k in _FILE_OPTIONS if k in options}


def _official_dsprites(data_path, resolution, **cache_opts):
    from semistylegan.data.cache import cached_dataset
    from semistylegan.data.array_files import DSpritesFileSource

    return cached_dataset(DSpritesFileSource(data_path), resolution, **cache_opts)


@register_dataset("dsprites")
def _dsprites(resolution=None, data_path=None, **options):
    from semistylegan.data.dsprites import ProceduralDSprites

    res = _res("dsprites", resolution)
    if data_path is not None:
        cache = _cache_opts(options)
        _no_options("dsprites", options)
        return _official_dsprites(data_path, res, **cache)
    _no_options("dsprites", options)
    return ProceduralDSprites(resolution=res)


def _variant(kind):
    def build(resolution=None, data_path=None, **options):
        from semistylegan.data.dsprites_variants import DSpritesVariant

        name = f"dsprites-{kind}"
        cache = _cache_opts(options)
        allowed = ("seed", "scream_image") if kind == "scream" else ("seed",)
        _no_options(name, options, allowed)
        base = _official_dsprites(data_path, 64, **cache) if data_path is not None else None
        return DSpritesVariant(kind, resolution=_res(name, resolution), base=base, **options)

    return build


for _kind in ("color", "noisy", "scream"):
    register_dataset(f"dsprites-{_kind}")(_variant(_kind))


def _real(resolution=None, data_path=None, **options):
    from semistylegan.data.dsprites_variants import RealValuedDSprites

    if data_path is not None:
        raise UserError("dsprites-real is procedural only; it takes no --data-path")
    _no_options("dsprites-real", options, ("seed", "num_images"))
    return RealValuedDSprites(resolution=_res("dsprites-real", resolution), **options)


register_dataset("dsprites-real")(_real)
register_dataset("dsprites-inpainted")(_real)


@register_dataset("shapes3d")
def _shapes3d(resolution=None, data_path=None, **options):
    res = _res("shapes3d", resolution)
    if data_path is not None:
        from semistylegan.data.cache import cached_dataset
        from semistylegan.data.array_files import Shapes3DFileSource

        cache = _cache_opts(options)
        _no_options("shapes3d", options)
        return cached_dataset(Shapes3DFileSource(data_path), res, **cache)
    from semistylegan.data.shapes3d import ProceduralShapes3D

    _no_options("shapes3d", options, ("use_disk_cache",))
    return ProceduralShapes3D(resolution=res, **options)


def _file_dataset(name, source_factory, allowed=()):
    def build(resolution=None, data_path=None, **options):
        if data_path is None:
            raise UserError(f"dataset '{name}' reads the official files: give --data-path (see docs/datasets.md)")
        from semistylegan.data.cache import cached_dataset

        cache = _cache_opts(options)
        _no_options(name, options, allowed)
        return cached_dataset(source_factory(data_path, **options), _res(name, resolution), **cache)

    register_dataset(name)(build)


def _register_files():
    from semistylegan.data.array_files import MPI3DSource
    from semistylegan.data.folder_format import FolderSource
    from semistylegan.data.image_folders import CelebASource, falcor3d_source, isaac3d_source
    from semistylegan.data.mat_files import Cars3DSource, SmallNORBSource

    _file_dataset("mpi3d", MPI3DSource, ("factor_sizes",))
    _file_dataset("cars3d", Cars3DSource)
    _file_dataset("smallnorb", SmallNORBSource)
    _file_dataset("falcor3d", falcor3d_source, ("factor_sizes",))
    _file_dataset("isaac3d", isaac3d_source, ("factor_sizes",))
    _file_dataset("celeba", CelebASource, ("split",))
    _file_dataset("folder", FolderSource, ("discrete", "continuous", "bins", "mixed_sizes"))


_register_files()
