"""Preprocessing cache: a source (official files, a folder) resized once to the training resolution.

Layout: `<root>/<name>-r<R>-<source checksum[:16]>-<options hash[:8]>/` holding
- `images.npy`  uint8 (N, C, R, R), opened memory-mapped (np.load(mmap_mode='r'));
- `classes.npy` int64 (N, K) factor classes, -1 unknown (partial-label sources only);
- `codes.npy`   float32 (N, K) codes in [0, 1], NaN unknown (partial-label sources only);
- `meta.json`   name, resolution, channels, factors, source checksum, options, extra info.
Full-grid sources store row i = flat factor index i, so classes come from the FactorSpace.

`<root>` is `$SEMISTYLEGAN_CACHE` or `~/.cache/semistylegan/data`. A cache is built in a
temporary directory `.tmp-...` next to it and renamed into place only when complete, so an
interrupted or failed build never leaves a partial cache under the final name.

Source checksum: sha256 of the content of every label/array file (memoised per file by path,
size and mtime under `<root>/checksums/`), plus, for folders of images, sha256 over the sorted
(relative path, size, mtime) of every image. A changed source therefore gets a new cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Iterable

import numpy as np

from semistylegan.data.dataset import GroundTruthDataset, ImageDataset
from semistylegan.data.factors import FactorSpace
from semistylegan.errors import UserError

__all__ = [
    "cache_root", "atomic_save_npy", "file_checksum", "stat_fingerprint", "Source", "build_cache", "open_cache",
    "cached_dataset", "CachedGridDataset", "CachedImageDataset",
]

CACHE_VERSION = 1


def cache_root() -> str:
    root = os.environ.get("SEMISTYLEGAN_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "semistylegan",
                                                                 "data")
    return root


def atomic_save_npy(path: str, array: np.ndarray) -> None:
    """np.save into a temporary file in the same directory, then rename."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def file_checksum(path: str) -> str:
    """sha256 of a file's content; memoised by (absolute path, size, mtime) in the cache root."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    key = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()
    memo = os.path.join(cache_root(), "checksums", key + ".json")
    try:
        with open(memo) as f:
            m = json.load(f)
        if m["size"] == st.st_size and m["mtime_ns"] == st.st_mtime_ns:
            return m["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    digest = h.hexdigest()
    try:
        os.makedirs(os.path.dirname(memo), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(memo))
        with os.fdopen(fd, "w") as f:
            json.dump({"path": os.path.abspath(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest},
                      f)
        os.replace(tmp, memo)
    except OSError:
        pass
    return digest


def stat_fingerprint(root: str, relpaths: Iterable[str]) -> str:
    """sha256 over (relative path, size, mtime) of many files (the images of a folder)."""
    h = hashlib.sha256()
    for rel in relpaths:
        st = os.stat(os.path.join(root, rel))
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Source:
    """What a reader hands the cache builder.

    Subclasses set `name`, `factor_space`, `num_images`, `channels`, `is_grid` and implement
    `checksum()`, `tasks()` and `load(task) -> (rows, images uint8 (n, C, H, W))`. `load` may run
    in worker processes when `parallel` is true (the source must then pickle). Partial-label
    sources implement `labels() -> (classes, codes)`. `extra_info()` goes into meta.json and
    the dataset's info().
    """

    name: str = "source"
    factor_space: FactorSpace
    num_images: int
    channels: int = 3
    is_grid: bool = True
    parallel: bool = False
    options: dict = {}

    def checksum(self) -> str:
        raise NotImplementedError

    def tasks(self) -> list:
        raise NotImplementedError

    def load(self, task) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def iter_blocks(self):
        """Serial loading: yields (rows, images). Sources may override to stream one open file."""
        for t in self.tasks():
            yield self.load(t)

    def labels(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def extra_info(self) -> dict:
        return {}


def _cache_key(source: Source, resolution: int) -> str:
    opts = json.dumps({"v": CACHE_VERSION, "options": source.options}, sort_keys=True, default=str)
    oh = hashlib.sha1(opts.encode()).hexdigest()[:8]
    return f"{source.name}-r{int(resolution)}-{source.checksum()[:16]}-{oh}"


# worker side ---------------------------------------------------------------------------------
_W: dict = {}


def _worker_init(source, path, resolution):
    _W["source"] = source
    _W["path"] = path
    _W["resolution"] = resolution
    _W["out"] = None


def _write_block(out, rows, images, resolution, source_name):
    from semistylegan.data.imaging import resize_batch

    images = np.asarray(images)
    if images.ndim != 4:
        raise UserError(f"{source_name}: expected images of shape (N, C, H, W), got {images.shape}")
    if len(rows) == 0:
        return 0
    out[np.asarray(rows)] = resize_batch(images, resolution)
    return len(rows)


def _worker_run(task):
    if _W["out"] is None:
        _W["out"] = np.load(_W["path"], mmap_mode="r+")
    src = _W["source"]
    rows, images = src.load(task)
    n = _write_block(_W["out"], rows, images, _W["resolution"], src.name)
    return n


def build_cache(source: Source, resolution: int, workers: int | None = None, progress: bool = True,
                root: str | None = None) -> str:
    """Build (or reuse) the cache of `source` at `resolution`; returns its directory."""
    root = root or cache_root()
    final = os.path.join(root, _cache_key(source, resolution))
    if _valid(final):
        return final
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as e:
        raise UserError(f"{root}: cannot create the cache directory ({e.strerror})") from None
    n, c, r = int(source.num_images), int(source.channels), int(resolution)
    need = n * c * r * r
    free = shutil.disk_usage(root).free
    if need + (64 << 20) > free:
        raise UserError(f"{root}: not enough disk space for the cache ({need / 2**30:.2f} GiB needed, "
                        f"{free / 2**30:.2f} GiB free)")
    if hasattr(source, "target_resolution"):
        source.target_resolution = r  # image-file sources resize each image in the worker
    tmp = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(final)}-", dir=root)
    try:
        img_path = os.path.join(tmp, "images.npy")
        out = np.lib.format.open_memmap(img_path, mode="w+", dtype=np.uint8, shape=(n, c, r, r))
        filled = np.zeros(n, dtype=bool) if n else np.zeros(0, dtype=bool)
        from semistylegan.progress import bar as progress_bar

        bar = progress_bar(total=n, unit="img", desc=f"caching {source.name} at {r}x{r}", disable=not progress)
        workers = max(1, int(workers or os.cpu_count() or 1))
        if source.parallel and workers > 1:
            out.flush()
            del out
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
            tasks = source.tasks()
            total = 0
            with ctx.Pool(min(workers, max(1, len(tasks))), initializer=_worker_init,
                          initargs=(source, img_path, r)) as pool:
                for k in pool.imap_unordered(_worker_run, tasks):
                    total += k
                    bar.update(k)
            filled[:] = total == n  # parallel tasks partition the rows, so the count is the check
        else:
            total = 0
            for rows, images in source.iter_blocks():
                k = _write_block(out, rows, images, r, source.name)
                filled[np.asarray(rows, dtype=np.int64)] = True
                total += k
                bar.update(k)
            out.flush()
            del out
        bar.close()
        if total != n or not filled.all():
            raise UserError(f"{source.name}: the source delivered {total} images, expected {n}")
        if not source.is_grid:
            classes, codes = source.labels()
            np.save(os.path.join(tmp, "classes.npy"), np.asarray(classes, dtype=np.int64))
            if codes is not None:
                np.save(os.path.join(tmp, "codes.npy"), np.asarray(codes, dtype=np.float32))
        meta = {
            "version": CACHE_VERSION,
            "name": source.name,
            "resolution": r,
            "channels": c,
            "num_images": n,
            "is_grid": bool(source.is_grid),
            "factors": source.factor_space.to_dict(),
            "source_checksum": source.checksum(),
            "options": source.options,
            "extra": source.extra_info(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "complete": True,
        }
        with open(os.path.join(tmp, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1, default=str)
        try:
            os.rename(tmp, final)
        except OSError:
            if _valid(final):  # another process finished the same cache first
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                raise
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _valid(path: str) -> bool:
    try:
        with open(os.path.join(path, "meta.json")) as f:
            meta = json.load(f)
        return (bool(meta.get("complete")) and meta.get("version") == CACHE_VERSION
                and os.path.exists(os.path.join(path, "images.npy")))
    except (OSError, ValueError):
        return False


def find_cache(source: Source, resolution: int, root: str | None = None) -> str | None:
    path = os.path.join(root or cache_root(), _cache_key(source, resolution))
    return path if _valid(path) else None


class _CachedMixin:
    def _open(self, path: str):
        with open(os.path.join(path, "meta.json")) as f:
            self.meta = json.load(f)
        self.path = path
        self.name = self.meta["name"]
        self.resolution = int(self.meta["resolution"])
        self.channels = int(self.meta["channels"])
        self.factor_space = FactorSpace.from_dict(self.meta["factors"])
        self._images = None

    @property
    def array(self) -> np.ndarray:
        if self._images is None:
            self._images = np.load(os.path.join(self.path, "images.npy"), mmap_mode="r")
        return self._images

    def __getstate__(self):  # pickling must not copy the memory map
        d = dict(self.__dict__)
        d["_images"] = None
        return d

    def _rows(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return np.zeros((0, self.channels, self.resolution, self.resolution), dtype=np.uint8)
        order = np.argsort(idx, kind="stable")  # sorted reads are friendlier to the page cache
        out = np.empty((len(idx), self.channels, self.resolution, self.resolution), dtype=np.uint8)
        out[order] = self.array[idx[order]]
        return out

    def info(self) -> dict:
        d = super().info()
        d["cache"] = self.path
        d["source_checksum"] = self.meta.get("source_checksum")
        d.update(self.meta.get("extra") or {})
        return d


class CachedGridDataset(_CachedMixin, GroundTruthDataset):
    """A full factor grid loaded from the cache (row = flat factor index)."""

    def __init__(self, path: str):
        self._open(path)
        if len(self.array) != self.factor_space.num_combinations:
            raise UserError(f"{path}: cache holds {len(self.array)} images but the factor grid has "
                            f"{self.factor_space.num_combinations}")

    def images(self, indices) -> np.ndarray:
        return self._rows(indices)

    def images_from_classes(self, classes, random_state=None) -> np.ndarray:
        return self._rows(self.factor_space.classes_to_index(np.asarray(classes, dtype=np.int64)))


class CachedImageDataset(_CachedMixin, ImageDataset):
    """Images with (partial) labels loaded from the cache."""

    def __init__(self, path: str):
        self._open(path)
        self._classes = np.load(os.path.join(path, "classes.npy"))
        cp = os.path.join(path, "codes.npy")
        self._codes = np.load(cp) if os.path.exists(cp) else None

    def __len__(self) -> int:
        return len(self._classes)

    def images(self, indices) -> np.ndarray:
        return self._rows(indices)

    def classes(self, indices) -> np.ndarray:
        return self._classes[np.asarray(indices, dtype=np.int64)]

    def codes(self, indices) -> np.ndarray:
        if self._codes is None:
            return super().codes(indices)
        return self._codes[np.asarray(indices, dtype=np.int64)]

    def labeled_candidates(self) -> np.ndarray:
        return np.flatnonzero((self._classes >= 0).any(axis=1)).astype(np.int64)


def open_cache(path: str) -> ImageDataset:
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    return CachedGridDataset(path) if meta.get("is_grid") else CachedImageDataset(path)


def cached_dataset(source: Source, resolution: int, workers: int | None = None, progress: bool = True) -> ImageDataset:
    """Build the cache if needed and return the dataset that reads it."""
    return open_cache(build_cache(source, resolution, workers=workers, progress=progress))
