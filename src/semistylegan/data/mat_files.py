"""Readers for the two datasets shipped as `.mat` files (docs/datasets.md):

- SmallNORB: NYU binary matrices; (category 5, instance 10, elevation 9, azimuth 18, lighting 6)
  placed by the info matrix of training + testing files (all 48,600 grid cells exactly once);
- Cars3D: MATLAB files; (elevation 4, azimuth 24, object n) over `car_*_mesh.mat` in list.txt order.

Grid rows are flat factor indices (last factor fastest), as in `semistylegan.data.array_files`.
"""
from __future__ import annotations

import glob
import hashlib
import os

import numpy as np

from semistylegan.data.array_files import BLOCK, check_dir, check_file
from semistylegan.data.cache import Source, file_checksum
from semistylegan.data.factors import FactorSpace
from semistylegan.errors import UserError

__all__ = ["Cars3DSource", "SmallNORBSource", "read_norb_matrix", "write_norb_matrix", "NORB_PREFIXES"]


class Cars3DSource(Source):
    """Cars3D: folder of car_XXX_mesh.mat (key `im` (H, W, 3, 24, 4)) and list.txt (file order)."""

    name = "cars3d"
    channels = 3
    parallel = True

    def __init__(self, path: str):
        root = check_dir(str(path), "Cars3D folder")
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
        return {"source": os.path.abspath(self.root), "object_order": self.order,
                "objects": [f[:-4] for f in self.files]}


# ---------------------------------------------------------------------------------------------
NORB_DTYPES = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32, 0x1E3D4C51: np.float32, 0x1E3D4C53: np.float64,
               0x1E3D4C56: np.int16}


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
    check_file(path, "SmallNORB file")
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
        raise UserError(f"{path}: {'truncated' if size < need else 'has trailing bytes'}: {size} bytes, the header "
                        f"{dims} needs {need}")
    if mmap and int(np.prod(dims)) > 0:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(dims))
    return np.fromfile(path, dtype=dtype, offset=offset).reshape(dims)


NORB_PREFIXES = ("smallnorb-5x46789x9x18x6x2x96x96-training", "smallnorb-5x01235x9x18x6x2x96x96-testing")


class SmallNORBSource(Source):
    """SmallNORB training + testing dat/cat/info matrices placed on the 5-factor grid."""

    name = "smallnorb"
    channels = 1

    def __init__(self, path: str):
        root = check_dir(str(path), "SmallNORB folder")
        self.root = root
        self.files = []
        parts = []
        for prefix in NORB_PREFIXES:
            names = {k: os.path.join(root, f"{prefix}-{k}.mat") for k in ("dat", "cat", "info")}
            for k, p in names.items():
                if not os.path.exists(p) and os.path.exists(p + ".gz"):
                    raise UserError(f"{p}.gz: gunzip the SmallNORB files first")
                check_file(p, "SmallNORB file")
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
            raise UserError(f"{root}: the SmallNORB files hold {len(labels)} images covering "
                            f"{int((counts > 0).sum())} of the {self.num_images} cells of the factor grid "
                            f"{list(sizes)}; each cell must appear once")
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
