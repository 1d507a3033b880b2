"""Readers for the official dataset files (docs/datasets.md) and the plain folder format.

Each reader is a cache `Source`: it checks the files, knows the factor grid (or the labels),
and delivers the images in blocks; `semistylegan.data.cache` resizes them once into a
memory-mapped array that training reads. Every problem with the user's files is a UserError
whose one line names the file and the problem.

Grid datasets store row i = flat factor index i (last factor fastest):
- dSprites npz/hdf5: grid read from `latents_classes` (a constant factor, color, is dropped);
- 3DShapes h5: classes found by ranking the float `labels` of each column (as TFDS does);
- MPI3D npz: [6,6,2,3,3,40,40] when N = 1,036,800, [4,4,2,3,3,40,40] when N = 460,800;
- Cars3D: (elevation 4, azimuth 24, object n) over `car_*_mesh.mat` in list.txt order;
- SmallNORB: (category 5, instance 10, elevation 9, azimuth 18, lighting 6) placed by the
  info matrix of training + testing files (all 48,600 grid cells exactly once);
- Falcor3D / Isaac3D: images/NNNNNN.png with the bases listed in docs/datasets.md.
Partial-label datasets: CelebA (40 binary attributes) and the folder format.
"""
from __future__ import annotations

import csv
import glob
import hashlib
import math
import os
import zipfile

import numpy as np

from semistylegan.data.cache import Source, file_checksum, stat_fingerprint
from semistylegan.data.factors import FactorSpace
from semistylegan.data.imaging import IMAGE_EXTENSIONS, image_size, load_image, resize_batch
from semistylegan.errors import UserError

__all__ = [
    "DSpritesFileSource", "Shapes3DFileSource", "MPI3DSource", "Cars3DSource", "SmallNORBSource",
    "GridFolderSource", "falcor3d_source", "isaac3d_source", "CelebASource", "FolderSource",
    "FALCOR3D_FACTORS", "ISAAC3D_FACTORS", "MPI3D_FACTOR_NAMES", "CELEBA_ATTRIBUTES",
    "read_norb_matrix", "write_norb_matrix", "codes_to_values",
]

BLOCK = 4096  # images per block when streaming an array


def _check_file(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise UserError(f"{path}: {what} not found")
    if os.path.isdir(path):
        raise UserError(f"{path}: expected a {what} file, found a directory")
    return path


def _check_dir(path: str, what: str) -> str:
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
        raise UserError(f"{path}: no array '{key}' in the archive (found: {', '.join(n[:-4] for n in names) or 'nothing'})")
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
        raise UserError(f"{path}: not a readable HDF5 file (truncated or corrupt: {str(e).splitlines()[0][:80]})") from None


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
        self.path = _check_file(str(path), "dSprites file")
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
        self.factor_space = FactorSpace(tuple(DSPRITES_NAMES[k] for k in keep), tuple(int(sizes[k]) for k in keep), vals)
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
            raise UserError(f"{self.path}: 'imgs' must be uint8 with values 0/1, got dtype {x.dtype} max {x.max(initial=0)}")
        return (x * np.uint8(255))[:, None]

    def extra_info(self):
        return {"source": os.path.abspath(self.path)}


SHAPES3D_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")


class Shapes3DFileSource(Source):
    """3dshapes.h5: images (N, 64, 64, 3) uint8, labels (N, 6) float64."""

    name = "shapes3d"
    channels = 3

    def __init__(self, path: str):
        self.path = _check_file(str(path), "3DShapes file")
        if not _is_hdf5(self.path):
            raise UserError(f"{self.path}: not an HDF5 file (expected 3dshapes.h5)")
        with _open_h5(self.path) as f:
            labels = np.asarray(_h5_read(_h5_dataset(f, "labels", self.path), (), self.path, "labels"), dtype=np.float64)
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


MPI3D_FACTOR_NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color", "horizontal_axis", "vertical_axis")
MPI3D_SIZES = {1036800: (6, 6, 2, 3, 3, 40, 40), 460800: (4, 4, 2, 3, 3, 40, 40)}


class MPI3DSource(Source):
    """MPI3D npz (toy, realistic, real, complex): `images` (N, 64, 64, 3); grid picked from N."""

    name = "mpi3d"
    channels = 3

    def __init__(self, path: str, factor_sizes=None):
        self.path = _check_file(str(path), "MPI3D npz file")
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
            raise UserError(f"{self.path}: {n} images; MPI3D files hold 1,036,800 (6 colours x 6 shapes) or 460,800 (4 x 4)")
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
        return {"source": os.path.abspath(self.path), "variant": "6x6" if self.factor_space.sizes[0] == 6 else f"{self.factor_space.sizes[0]}x{self.factor_space.sizes[1]}"}


class Cars3DSource(Source):
    """Cars3D: folder of car_XXX_mesh.mat (key `im` (H, W, 3, 24, 4)) and list.txt (file order)."""

    name = "cars3d"
    channels = 3
    parallel = True

    def __init__(self, path: str):
        root = _check_dir(str(path), "Cars3D folder")
        for sub in ("data/cars", "cars"):
            if os.path.isdir(os.path.join(root, sub)):
                root = os.path.join(root, sub)
                break
        self.root = root
        listing = os.path.join(root, "list.txt")
        if os.path.exists(listing):
            with open(listing) as f:
                names = [ln.strip() for ln in f if ln.strip()]
            files = [n if n.endswith(".mat") else n + ".mat" for n in names]
            for fn in files:
                if not os.path.exists(os.path.join(root, fn)):
                    raise UserError(f"{listing}: names '{fn}', which is not in {root}")
            self.order = "list.txt"
        else:
            files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(root, "car_*_mesh.mat")))
            self.order = "sorted file names (no list.txt)"
        if not files:
            raise UserError(f"{root}: no car_*_mesh.mat files found")
        if len(set(files)) != len(files):
            raise UserError(f"{listing}: lists a file more than once")
        self.files = files
        self.factor_space = FactorSpace(("elevation", "azimuth", "object"), (4, 24, len(files)))
        self.num_images = 4 * 24 * len(files)
        self.options = {}

    def checksum(self):
        h = hashlib.sha256()
        for fn in self.files:
            h.update(fn.encode() + b"\0" + file_checksum(os.path.join(self.root, fn)).encode())
        return h.hexdigest()

    def tasks(self):
        return list(range(len(self.files)))

    def load(self, j):
        import scipy.io

        path = os.path.join(self.root, self.files[j])
        try:
            im = scipy.io.loadmat(path, variable_names=["im"]).get("im")
        except Exception as e:
            raise UserError(f"{path}: cannot read the MATLAB file ({type(e).__name__}: {str(e)[:80]})") from None
        if im is None:
            raise UserError(f"{path}: no variable 'im' in the MATLAB file")
        if im.ndim != 5 or im.shape[2] != 3 or im.shape[3:] != (24, 4) or im.shape[0] != im.shape[1]:
            raise UserError(f"{path}: 'im' must be (H, H, 3, 24, 4), got {im.shape}")
        x = np.asarray(im, dtype=np.uint8).transpose(4, 3, 2, 0, 1)  # (elev, azim, C, H, W)
        n_obj = len(self.files)
        rows = (np.arange(4)[:, None] * 24 * n_obj + np.arange(24)[None, :] * n_obj + j).reshape(-1)
        return rows, x.reshape(96, 3, im.shape[0], im.shape[1])

    def extra_info(self):
        return {"source": os.path.abspath(self.root), "object_order": self.order, "objects": [f[:-4] for f in self.files]}


# ---------------------------------------------------------------------------------------------
NORB_DTYPES = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32, 0x1E3D4C51: np.float32, 0x1E3D4C53: np.float64, 0x1E3D4C56: np.int16}


def write_norb_matrix(path: str, array: np.ndarray) -> None:
    """Write an NYU binary matrix (the SmallNORB '.mat' format)."""
    array = np.ascontiguousarray(array)
    magic = {np.dtype(v): k for k, v in NORB_DTYPES.items()}[array.dtype]
    dims = list(array.shape) + [1] * max(0, 3 - array.ndim)
    with open(path, "wb") as f:
        np.array([magic, array.ndim] + dims, dtype="<i4").tofile(f)
        f.write(array.astype(array.dtype.newbyteorder("<")).tobytes())


def read_norb_matrix(path: str, mmap: bool = False) -> np.ndarray:
    """Read an NYU binary matrix; a bad magic number or a size mismatch raises UserError."""
    _check_file(path, "SmallNORB file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{path}: truncated header")
        magic, ndim = np.frombuffer(head, dtype="<i4")
        if int(magic) not in NORB_DTYPES:
            raise UserError(f"{path}: not a SmallNORB binary matrix (magic {int(magic):#x})")
        if not 0 < ndim <= 8:
            raise UserError(f"{path}: bad number of dimensions {int(ndim)}")
        nd = max(3, int(ndim))
        dims_raw = f.read(4 * nd)
        if len(dims_raw) < 4 * nd:
            raise UserError(f"{path}: truncated header")
        dims = [int(d) for d in np.frombuffer(dims_raw, dtype="<i4")][: int(ndim)]
    if any(d < 0 for d in dims):
        raise UserError(f"{path}: negative dimension in header {dims}")
    dtype = np.dtype(NORB_DTYPES[int(magic)]).newbyteorder("<")
    offset = 8 + 4 * nd
    need = offset + int(np.prod(dims)) * dtype.itemsize
    if size != need:
        raise UserError(f"{path}: {'truncated' if size < need else 'has trailing bytes'}: {size} bytes, the header {dims} needs {need}")
    if mmap and int(np.prod(dims)) > 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(dims))
    return np.fromfile(path, dtype=dtype, offset=offset).reshape(dims)


NORB_PREFIXES = ("smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing")


class SmallNORBSource(Source):
    """SmallNORB training + testing dat/cat/info matrices placed on the 5-factor grid."""

    name = "smallnorb"
    channels = 1

    def __init__(self, path: str):
        root = _check_dir(str(path), "SmallNORB folder")
        self.root = root
        self.files = []
        parts = []
        for prefix in NORB_PREFIXES:
            names = {k: os.path.join(root, f"{prefix}-{k}.mat") for k in ("dat", "cat", "info")}
            for k, p in names.items():
                if not os.path.exists(p) and os.path.exists(p + ".gz"):
                    raise UserError(f"{p}.gz: gunzip the SmallNORB files first")
                _check_file(p, "SmallNORB file")
            dat = read_norb_matrix(names["dat"], mmap=True)
            cat = read_norb_matrix(names["cat"])
            info = read_norb_matrix(names["info"])
            n = dat.shape[0]
            if dat.ndim != 4 or dat.shape[1] != 2 or dat.shape[2] != dat.shape[3]:
                raise UserError(f"{names['dat']}: expected (N, 2, H, H) images, got {dat.shape}")
            if cat.shape != (n,):
                raise UserError(f"{names['cat']}: expected ({n},) categories, got {cat.shape}")
            if info.shape != (n, 4):
                raise UserError(f"{names['info']}: expected ({n}, 4) info rows, got {info.shape}")
            if (info[:, 2] % 2).any():
                raise UserError(f"{names['info']}: azimuth values must be even (0, 2, ..., 34)")
            lab = np.stack([cat, info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]], axis=1).astype(np.int64)
            if (lab < 0).any():
                raise UserError(f"{names['info']}: negative labels")
            parts.append((names, lab))
            self.files += list(names.values())
        labels = np.concatenate([p[1] for p in parts])
        sizes = tuple(int(s) for s in labels.max(axis=0) + 1)
        self.factor_space = FactorSpace(("category", "instance", "elevation", "azimuth", "lighting"), sizes)
        self.num_images = self.factor_space.num_combinations
        idx = self.factor_space.classes_to_index(labels)
        counts = np.bincount(idx, minlength=self.num_images)
        if len(labels) != self.num_images or (counts != 1).any():
            raise UserError(f"{root}: the SmallNORB files hold {len(labels)} images covering {int((counts > 0).sum())} of the {self.num_images} cells of the factor grid {list(sizes)}; each cell must appear once")
        self._rows = [self.factor_space.classes_to_index(p[1]) for p in parts]
        self._dat = [p[0]["dat"] for p in parts]
        self.options = {}

    def checksum(self):
        h = hashlib.sha256()
        for p in self.files:
            h.update(file_checksum(p).encode())
        return h.hexdigest()

    def iter_blocks(self):
        for path, rows in zip(self._dat, self._rows):
            dat = read_norb_matrix(path, mmap=True)
            for s in range(0, len(rows), BLOCK):
                yield rows[s : s + BLOCK], np.asarray(dat[s : s + BLOCK, 0])[:, None]

    def extra_info(self):
        return {"source": os.path.abspath(self.root), "camera": "left image of each stereo pair"}


# ---------------------------------------------------------------------------------------------
FALCOR3D_FACTORS = FactorSpace(
    ("lighting_intensity", "lighting_x-dir", "lighting_y-dir", "lighting_z-dir", "camera_x-pos", "camera_y-pos", "camera_z-pos"),
    (5, 6, 6, 6, 6, 6, 6),
)
# dataset_demo.py order: the README's names for slots 1-4 do not fit its own bases.
ISAAC3D_FACTORS = FactorSpace(
    ("object_shape", "robot_x-move", "robot_y-move", "camera_height", "object_scale", "lighting_intensity", "lighting_y-dir", "object_color", "wall_color"),
    (3, 8, 5, 4, 4, 4, 6, 4, 4),
)


def _parallel_chunks(n: int, chunk: int | None = None) -> list[tuple[int, int]]:
    # About 32+ tasks so every worker stays busy, at most 64 images per task.
    chunk = chunk or int(np.clip(n // 32, 1, 64))
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


class _ImageFilesSource(Source):
    """A list of image files; workers decode, check the size and resize each chunk."""

    parallel = True

    def _init_files(self, root: str, relpaths: list[str], mixed_sizes: bool = False):
        self.root = root
        self.relpaths = relpaths
        self.mixed_sizes = mixed_sizes
        self.expected_size = image_size(os.path.join(root, relpaths[0])) if relpaths else None
        self.target_resolution = None

    def tasks(self):
        return _parallel_chunks(len(self.relpaths))

    def load(self, task):
        s, e = task
        out = []
        for i in range(s, e):
            path = os.path.join(self.root, self.relpaths[i])
            img = load_image(path, self.channels)
            size = (img.shape[2], img.shape[1])
            if not self.mixed_sizes and size != tuple(self.expected_size):
                raise UserError(f"{path}: image is {size[0]}x{size[1]} but {self.relpaths[0]} is {self.expected_size[0]}x{self.expected_size[1]}; all images must have one size")
            if self.target_resolution:
                img = resize_batch(img[None], self.target_resolution)[0]
            out.append(img)
        return self.row_of(np.arange(s, e)), np.stack(out)

    def row_of(self, positions: np.ndarray) -> np.ndarray:
        return positions

    def iter_blocks(self):
        for t in self.tasks():
            yield self.load(t)


class GridFolderSource(_ImageFilesSource):
    """NVlabs folders: `images/{index:06d}.png` (or the PNGs directly in PATH), index from the bases."""

    channels = 3

    def __init__(self, name: str, path: str, factor_space: FactorSpace, factor_sizes=None):
        self.name = name
        root = _check_dir(str(path), f"{name} folder")
        if os.path.isdir(os.path.join(root, "images")):
            root = os.path.join(root, "images")
        if factor_sizes is not None:
            sizes = tuple(int(s) for s in factor_sizes)
            if len(sizes) != factor_space.num_factors:
                raise UserError(f"{name}: factor_sizes needs {factor_space.num_factors} sizes, got {len(sizes)}")
            factor_space = FactorSpace(factor_space.names, sizes)
        self.factor_space = factor_space
        n = factor_space.num_combinations
        pngs = {e.name for e in os.scandir(root) if e.name.lower().endswith(".png")}
        expected = [f"{i:06d}.png" for i in range(n)]
        if len(pngs) < n:
            raise UserError(f"{root}: {len(pngs)} PNG images, but the {name} factor grid {list(factor_space.sizes)} needs {n:,} (images/000000.png ...)")
        missing = next((e for e in expected if e not in pngs), None)
        if missing is not None:
            raise UserError(f"{os.path.join(root, missing)}: image missing from the {name} factor grid")
        self.num_images = n
        self._init_files(root, expected)
        self.options = {"factor_sizes": list(factor_space.sizes)}

    def checksum(self):
        return stat_fingerprint(self.root, self.relpaths)

    def extra_info(self):
        return {"source": os.path.abspath(self.root), "native_size": list(self.expected_size)}


def falcor3d_source(path, factor_sizes=None):
    return GridFolderSource("falcor3d", path, FALCOR3D_FACTORS, factor_sizes)


def isaac3d_source(path, factor_sizes=None):
    return GridFolderSource("isaac3d", path, ISAAC3D_FACTORS, factor_sizes)


# ---------------------------------------------------------------------------------------------
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
CELEBA_SPLITS = {"train": 0, "valid": 1, "test": 2}


class CelebASource(_ImageFilesSource):
    """CelebA: list_attr_celeba.txt (+ optional list_eval_partition.txt) and img_align_celeba/*.jpg.

    Images are centre-cropped to a square (178x178 of the aligned 178x218) and resized.
    """

    name = "celeba"
    channels = 3
    is_grid = False

    def __init__(self, path: str, split: str = "all"):
        root = _check_dir(str(path), "CelebA folder")
        attr_path = _check_file(os.path.join(root, "list_attr_celeba.txt"), "CelebA attribute file list_attr_celeba.txt")
        if split not in ("all",) + tuple(CELEBA_SPLITS):
            raise UserError(f"celeba: split must be all, train, valid or test, got '{split}'")
        with open(attr_path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
        if len(lines) < 2:
            raise UserError(f"{attr_path}: too short; expected a count line and a header of attribute names")
        try:
            count = int(lines[0].split()[0])
        except (ValueError, IndexError):
            raise UserError(f"{attr_path}: line 1 must be the number of images, got '{lines[0][:40]}'") from None
        names = lines[1].split()
        if not names:
            raise UserError(f"{attr_path}: line 2 must list the attribute names")
        rows = [ln.split() for ln in lines[2:] if ln.strip()]
        if len(rows) != count:
            raise UserError(f"{attr_path}: line 1 says {count} images but {len(rows)} rows follow (truncated?)")
        files, values = [], np.empty((len(rows), len(names)), dtype=np.int64)
        for i, r in enumerate(rows):
            if len(r) != len(names) + 1:
                raise UserError(f"{attr_path}: line {i + 3} has {len(r) - 1} values, expected {len(names)}")
            try:
                v = [int(x) for x in r[1:]]
            except ValueError:
                raise UserError(f"{attr_path}: line {i + 3}: attribute values must be -1 or 1") from None
            if any(x not in (-1, 1, 0) for x in v):
                raise UserError(f"{attr_path}: line {i + 3}: attribute values must be -1 or 1")
            files.append(r[0])
            values[i] = v
        values = np.where(values > 0, 1, 0)
        img_dir = os.path.join(root, "img_align_celeba") if os.path.isdir(os.path.join(root, "img_align_celeba")) else root
        keep = np.ones(len(files), dtype=bool)
        part_path = os.path.join(root, "list_eval_partition.txt")
        self.partition_file = os.path.exists(part_path)
        if split != "all":
            if not self.partition_file:
                raise UserError(f"{part_path}: needed for split '{split}' but not found")
            part = {}
            with open(part_path) as f:
                for ln, line in enumerate(f, 1):
                    p = line.split()
                    if not p:
                        continue
                    if len(p) != 2 or p[1] not in ("0", "1", "2"):
                        raise UserError(f"{part_path}: line {ln} must be '<file> 0|1|2'")
                    part[p[0]] = int(p[1])
            missing = next((fn for fn in files if fn not in part), None)
            if missing:
                raise UserError(f"{part_path}: no partition for {missing}")
            keep = np.array([part[fn] == CELEBA_SPLITS[split] for fn in files])
        files = [fn for fn, k in zip(files, keep) if k]
        values = values[keep]
        if not files:
            raise UserError(f"{attr_path}: no images in split '{split}'")
        present = set(os.listdir(img_dir))
        missing = next((fn for fn in files if fn not in present), None)
        if missing:
            raise UserError(f"{os.path.join(img_dir, missing)}: image listed in list_attr_celeba.txt not found")
        self.attr_path = attr_path
        self.part_path = part_path if self.partition_file else None
        self.factor_space = FactorSpace(tuple(names), (2,) * len(names))
        self.num_images = len(files)
        self._classes = values
        self._init_files(img_dir, files)
        self.split = split
        self.options = {"split": split}

    def checksum(self):
        h = hashlib.sha256(file_checksum(self.attr_path).encode())
        if self.part_path:
            h.update(file_checksum(self.part_path).encode())
        h.update(stat_fingerprint(self.root, self.relpaths).encode())
        return h.hexdigest()

    def labels(self):
        return self._classes, self._classes.astype(np.float32)

    def extra_info(self):
        return {"source": os.path.abspath(self.root), "split": self.split, "crop": "centre square"}


# ---------------------------------------------------------------------------------------------
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


class FolderSource(_ImageFilesSource):
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
        root = _check_dir(str(path), "image folder")
        csv_path = _check_file(os.path.join(root, "labels.csv"), "label file labels.csv")
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
        self.options = {"discrete": sorted(discrete or ()), "continuous": sorted(continuous or ()), "bins": bins, "mixed_sizes": bool(mixed_sizes)}

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
                raise UserError(f"{csv_path}: line {ln} names '{row[0].strip()}', which is not an image under {os.path.dirname(csv_path)}")
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
                raise UserError(f"{csv_path}: line {lines[bad]}: continuous factor '{name}' has the non-number '{texts[bad]}'")
            arr = np.asarray(nums, dtype=np.float64)
            if allowed is not None:
                lo, hi = allowed
                out = np.flatnonzero((arr < lo) | (arr > hi))
                if len(out):
                    raise UserError(f"{csv_path}: line {lines[out[0]]}: factor '{name}' value {texts[out[0]]} is outside its range [{lo:g}, {hi:g}]")
            else:
                lo, hi = (float(arr.min()), float(arr.max())) if len(arr) else (0.0, 1.0)
            span = hi - lo
            code = (arr - lo) / span if span > 0 else np.zeros_like(arr)
            cls = np.minimum((code * self.bins).astype(np.int64), self.bins - 1)
            centres = [lo + (b + 0.5) / self.bins * (span if span > 0 else 0.0) for b in range(self.bins)]
            return cls, code, {"name": name, "type": "continuous", "min": lo, "max": hi, "classes": self.bins, "class_values": centres, "labelled": len(arr)}
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
                raise UserError(f"{csv_path}: line {lines[bad]}: factor '{name}' value '{texts[bad]}' is not one of {'|'.join(order)}")
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
        return cls, code, {"name": name, "type": "discrete", "values": shown, "classes": m, "class_values": class_values, "labelled": len(cls)}

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
