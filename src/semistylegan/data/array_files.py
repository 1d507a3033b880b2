"""Readers for the official dataset files that hold numpy arrays: dSprites (.npz or HDF5),
3DShapes (HDF5) and MPI3D (.npz), plus the checks and block streaming every reader shares.

Each reader is a cache `Source`: it checks the files, knows the factor grid (or the labels),
and delivers the images in blocks; `semistylegan.data.cache` resizes them once into a
memory-mapped array that training reads. Every problem with the user's files is a UserError
whose one line names the file and the problem. The other readers (docs/datasets.md):
`semistylegan.data.mat_files` (SmallNORB, Cars3D), `semistylegan.data.image_folders`
(Falcor3D, Isaac3D, CelebA) and `semistylegan.data.folder_format` (images + labels.csv).

Grid datasets store row i = flat factor index i (last factor fastest):
- dSprites npz/hdf5: grid read from `latents_classes` (a constant factor, color, is dropped);
- 3DShapes h5: classes found by ranking the float `labels` of each column (as TFDS does);
- MPI3D npz: [6,6,2,3,3,40,40] when N = 1,036,800, [4,4,2,3,3,40,40] when N = 460,800.
"""
from __future__ import annotations

import os
import zipfile

import numpy as np

from semistylegan.data.cache import Source, file_checksum
from semistylegan.data.factors import FactorSpace
from semistylegan.errors import UserError

__all__ = [
    "DSpritesFileSource", "Shapes3DFileSource", "MPI3DSource", "MPI3D_FACTOR_NAMES",
    "BLOCK", "check_file", "check_dir",
]

BLOCK = 4096  # images per block when streaming an array


def check_file(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise UserError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise UserError(f"{path}: expected a {what} file, found a directory")
    return path


def check_dir(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise UserError(f"{path}: {what} not found")
    if not os.path.isdir(path):
        raise UserError(f"{path}: expected a {what} directory, found a file")
    return path


def _check_grid_order(classes: np.ndarray, path: str) -> np.ndarray:
    """sizes of a full row-major grid given per-image classes, or UserError."""
    classes = np.asarray(classes, dtype=np.int64)
    if classes.ndim != 2 or len(classes) == 0:
        raise UserError(f"{path}: factor labels must be a non-empty (N, K) array, got shape {classes.shape}")
    if (classes < 0).any():
        raise UserError(f"{path}: negative factor classes")
    sizes = classes.max(axis=0) + 1
    n = int(np.prod(sizes))
    if n != len(classes):
        raise UserError(f"{path}: {len(classes)} images but the factor grid {list(map(int, sizes))} needs {n}")
    fs = FactorSpace(tuple(f"f{k}" for k in range(len(sizes))), tuple(int(s) for s in sizes))
    if not np.array_equal(fs.index_to_classes(np.arange(n)), classes):
        raise UserError(f"{path}: images are not in row-major factor order (last factor fastest)")
    return sizes


# ---------------------------------------------------------------------------------------------
# Array streaming from .npz (zip of .npy members) and HDF5
def _npz_member_reader(path: str, key: str):
    """Open member `key` of an npz; returns (zipfile, file object, shape, dtype) positioned at data."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise UserError(f"{path}: not a valid .npz archive (truncated or corrupt)") from None
    except OSError as e:
        raise UserError(f"{path}: cannot open ({e.strerror})") from None
    names = zf.namelist()
    member = key + ".npy"
    if member not in names:
        zf.close()
        raise UserError(f"{path}: no array '{key}' in the archive (found: "
                        f"{', '.join(n[:-4] for n in names) or 'nothing'})")
    try:
        f = zf.open(member)
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    except Exception as e:
        zf.close()
        raise UserError(f"{path}: array '{key}' is corrupt ({type(e).__name__})") from None
    if fortran:
        zf.close()
        raise UserError(f"{path}: array '{key}' is stored in Fortran order, which this reader does not stream")
    return zf, f, tuple(shape), np.dtype(dtype)


def _npz_small_array(path: str, key: str) -> np.ndarray:
    zf, f, shape, dtype = _npz_member_reader(path, key)
    try:
        if dtype.hasobject:
            raise UserError(f"{path}: array '{key}' holds Python objects")
        buf = _read_exact(f, int(np.prod(shape)) * dtype.itemsize, path, key)
        return np.frombuffer(buf, dtype=dtype).reshape(shape)
    finally:
        f.close()
        zf.close()


def _read_exact(f, nbytes: int, path: str, key: str) -> bytes:
    try:
        buf = f.read(nbytes)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: array '{key}' is truncated or corrupt ({type(e).__name__}: {str(e)[:80]})") from None
    except Exception as e:  # zlib.error on damaged deflate data
        raise UserError(f"{path}: array '{key}' is corrupt ({type(e).__name__})") from None
    if len(buf) != nbytes:
        raise UserError(f"{path}: array '{key}' is truncated ({len(buf)} of {nbytes} bytes)")
    return buf


def _iter_npz_rows(path: str, key: str, block: int = BLOCK):
    zf, f, shape, dtype = _npz_member_reader(path, key)
    try:
        row = int(np.prod(shape[1:])) * dtype.itemsize
        start = 0
        while start < shape[0]:
            k = min(block, shape[0] - start)
            buf = _read_exact(f, row * k, path, key)
            yield start, np.frombuffer(buf, dtype=dtype).reshape((k,) + shape[1:])
            start += k
    finally:
        f.close()
        zf.close()


def _is_hdf5(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(8) == b"\x89HDF\r\n\x1a\n"


def _open_h5(path: str):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not a readable HDF5 file "
                        f"(truncated or corrupt: {str(e).splitlines()[0][:80]})") from None


def _h5_dataset(f, key: str, path: str):
    try:
        return f[key]
    except KeyError:
        raise UserError(f"{path}: no dataset '{key}' in the HDF5 file (found: {', '.join(f.keys())})") from None


def _h5_read(ds, sl, path, key):
    try:
        return ds[sl]
    except Exception as e:  # h5py raises OSError/RuntimeError on damaged chunks
        raise UserError(f"{path}: dataset '{key}' is truncated or corrupt ({type(e).__name__})") from None


def _to_nchw(images: np.ndarray, path: str, channels_last: bool) -> np.ndarray:
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4:
        return images.transpose(0, 3, 1, 2) if channels_last else images
    raise UserError(f"{path}: expected images of shape (N, H, W) or (N, H, W, C), got {images.shape}")


def _square(shape, path, key="images"):
    if len(shape) < 3 or shape[1] != shape[2] or shape[1] < 1:
        raise UserError(f"{path}: '{key}' must hold square images (N, H, W[, C]), got shape {tuple(shape)}")



# ---------------------------------------------------------------------------------------------
DSPRITES_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")


class DSpritesFileSource(Source):
    """dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz or .hdf5 (imgs 0/1, latents_classes)."""

    name = "dsprites"
    channels = 1

    def __init__(self, path: str):
        self.path = check_file(str(path), "dSprites file")
        self.hdf5 = _is_hdf5(self.path)
        if self.hdf5:
            with _open_h5(self.path) as f:
                classes = _h5_read(_h5_dataset(f, "latents/classes", self.path), (), self.path, "latents/classes")
                vals_ds = f.get("latents/values")
                values = _h5_read(vals_ds, (), self.path, "latents/values") if vals_ds is not None else None
                shape = _h5_dataset(f, "imgs", self.path).shape
        else:
            classes = _npz_small_array(self.path, "latents_classes")
            try:
                values = _npz_small_array(self.path, "latents_values")
            except UserError:
                values = None
            zf, fh, shape, _ = _npz_member_reader(self.path, "imgs")
            fh.close()
            zf.close()
        _square(shape, self.path, "imgs")
        if len(shape) != 3:
            raise UserError(f"{self.path}: 'imgs' must be (N, H, W), got {tuple(shape)}")
        if shape[0] != len(classes):
            raise UserError(f"{self.path}: {shape[0]} images but {len(classes)} rows of latents_classes")
        if classes.ndim != 2 or classes.shape[1] != 6:
            raise UserError(f"{self.path}: latents_classes must be (N, 6), got {classes.shape}")
        sizes = _check_grid_order(classes, self.path)
        keep = [k for k in range(6) if not (k == 0 and sizes[0] == 1)]
        vals = None
        if values is not None and values.shape == classes.shape:
            bases = FactorSpace(DSPRITES_NAMES, tuple(int(s) for s in sizes)).bases
            vals = tuple(tuple(float(values[j * bases[k], k]) for j in range(sizes[k])) for k in keep)
        self.factor_space = FactorSpace(tuple(DSPRITES_NAMES[k] for k in keep), tuple(int(sizes[k]) for k in keep),
                                        vals)
        self.num_images = int(shape[0])
        self.options = {}

    def checksum(self) -> str:
        return file_checksum(self.path)

    def iter_blocks(self):
        if self.hdf5:
            with _open_h5(self.path) as f:
                ds = _h5_dataset(f, "imgs", self.path)
                for s in range(0, self.num_images, BLOCK):
                    x = _h5_read(ds, slice(s, min(s + BLOCK, self.num_images)), self.path, "imgs")
                    yield np.arange(s, s + len(x)), self._scale(x)
        else:
            for s, x in _iter_npz_rows(self.path, "imgs"):
                yield np.arange(s, s + len(x)), self._scale(x)

    def _scale(self, x):
        x = np.asarray(x)
        if x.dtype != np.uint8 or x.max(initial=0) > 1:
            raise UserError(f"{self.path}: 'imgs' must be uint8 with values 0/1, got dtype {x.dtype} max "
                            f"{x.max(initial=0)}")
        return (x * np.uint8(255))[:, None]

    def extra_info(self):
        return {"source": os.path.abspath(self.path)}


SHAPES3D_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")


class Shapes3DFileSource(Source):
    """3dshapes.h5: images (N, 64, 64, 3) uint8, labels (N, 6) float64."""

    name = "shapes3d"
    channels = 3

    def __init__(self, path: str):
        self.path = check_file(str(path), "3DShapes file")
        if not _is_hdf5(self.path):
            raise UserError(f"{self.path}: not an HDF5 file (expected 3dshapes.h5)")
        with _open_h5(self.path) as f:
            labels = _h5_read(_h5_dataset(f, "labels", self.path), (), self.path, "labels")
            labels = np.asarray(labels, dtype=np.float64)
            shape = _h5_dataset(f, "images", self.path).shape
        if len(shape) != 4 or shape[3] != 3:
            raise UserError(f"{self.path}: 'images' must be (N, H, W, 3), got {tuple(shape)}")
        _square(shape, self.path)
        if labels.ndim != 2 or labels.shape != (shape[0], 6):
            raise UserError(f"{self.path}: 'labels' must be ({shape[0]}, 6), got {labels.shape}")
        if not np.isfinite(labels).all():
            raise UserError(f"{self.path}: 'labels' holds non-finite values")
        classes = np.empty(labels.shape, dtype=np.int64)
        values = []
        for k in range(6):
            uniq, inv = np.unique(np.round(labels[:, k], 6), return_inverse=True)
            classes[:, k] = inv.reshape(-1)
            values.append(tuple(float(u) for u in uniq))
        sizes = _check_grid_order(classes, self.path)
        self.factor_space = FactorSpace(SHAPES3D_NAMES, tuple(int(s) for s in sizes), tuple(values))
        self.num_images = int(shape[0])
        self.options = {}

    def checksum(self):
        return file_checksum(self.path)

    def iter_blocks(self):
        with _open_h5(self.path) as f:
            ds = _h5_dataset(f, "images", self.path)
            for s in range(0, self.num_images, BLOCK):
                x = _h5_read(ds, slice(s, min(s + BLOCK, self.num_images)), self.path, "images")
                yield np.arange(s, s + len(x)), np.asarray(x, dtype=np.uint8).transpose(0, 3, 1, 2)

    def extra_info(self):
        return {"source": os.path.abspath(self.path)}


MPI3D_FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                      "horizontal_axis", "vertical_axis")
MPI3D_SIZES = {1036800: (6, 6, 2, 3, 3, 40, 40), 460800: (4, 4, 2, 3, 3, 40, 40)}


class MPI3DSource(Source):
    """MPI3D npz (toy, realistic, real, complex): `images` (N, 64, 64, 3); grid picked from N."""

    name = "mpi3d"
    channels = 3

    def __init__(self, path: str, factor_sizes=None):
        self.path = check_file(str(path), "MPI3D npz file")
        zf, f, shape, dtype = _npz_member_reader(self.path, "images")
        f.close()
        zf.close()
        if len(shape) != 4 or shape[3] != 3 or dtype != np.uint8:
            raise UserError(f"{self.path}: 'images' must be uint8 (N, H, W, 3), got {dtype} {tuple(shape)}")
        _square(shape, self.path)
        n = int(shape[0])
        if factor_sizes is not None:
            sizes = tuple(int(s) for s in factor_sizes)
            if len(sizes) != 7:
                raise UserError(f"mpi3d: factor_sizes needs 7 sizes, got {len(sizes)}")
        elif n in MPI3D_SIZES:
            sizes = MPI3D_SIZES[n]
        else:
            raise UserError(f"{self.path}: {n} images; MPI3D files hold 1,036,800 (6 colours x 6 shapes) "
                            "or 460,800 (4 x 4)")
        if int(np.prod(sizes)) != n:
            raise UserError(f"{self.path}: {n} images but the factor grid {list(sizes)} needs {int(np.prod(sizes))}")
        self.factor_space = FactorSpace(MPI3D_FACTOR_NAMES, sizes)
        self.num_images = n
        self.options = {"factor_sizes": list(sizes)}

    def checksum(self):
        return file_checksum(self.path)

    def iter_blocks(self):
        for s, x in _iter_npz_rows(self.path, "images"):
            yield np.arange(s, s + len(x)), x.transpose(0, 3, 1, 2)

    def extra_info(self):
        sizes = self.factor_space.sizes
        return {"source": os.path.abspath(self.path), "variant": "6x6" if sizes[0] == 6 else f"{sizes[0]}x{sizes[1]}"}
