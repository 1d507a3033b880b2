"""Readers for datasets stored as folders of image files (docs/datasets.md):

- Falcor3D / Isaac3D (NVlabs): images/NNNNNN.png, the row given by the factor bases;
- CelebA: img_align_celeba/*.jpg with 40 binary attributes (a partial-label dataset).

`ImageFilesSource` is their base (and the folder format's): workers decode, check and resize
the images in chunks.
"""
from __future__ import annotations

import hashlib
import os

import numpy as np

from semistylegan.data.array_files import check_dir, check_file
from semistylegan.data.cache import Source, file_checksum, stat_fingerprint
from semistylegan.data.factors import FactorSpace
from semistylegan.data.imaging import image_size, load_image, resize_batch
from semistylegan.errors import UserError

__all__ = [
    "ImageFilesSource", "GridFolderSource", "falcor3d_source", "isaac3d_source", "FALCOR3D_FACTORS",
    "ISAAC3D_FACTORS", "CelebASource", "CELEBA_ATTRIBUTES",
]


FALCOR3D_FACTORS = FactorSpace(
    ("lighting_intensity", "lighting_x-dir", "lighting_y-dir", "lighting_z-dir", "camera_x-pos", "camera_y-pos",
     "camera_z-pos"),
    (5, 6, 6, 6, 6, 6, 6),
)
# dataset_demo.py order: the README's names for slots 1-4 do not fit its own bases.
ISAAC3D_FACTORS = FactorSpace(
    ("object_shape", "robot_x-move", "robot_y-move", "camera_height", "object_scale", "lighting_intensity",
     "lighting_y-dir", "object_color", "wall_color"),
    (3, 8, 5, 4, 4, 4, 6, 4, 4),
)


def _parallel_chunks(n: int, chunk: int | None = None) -> list[tuple[int, int]]:
    # About 32+ tasks so every worker stays busy, at most 64 images per task.
    chunk = chunk or int(np.clip(n // 32, 1, 64))
    return [(s, min(s + chunk, n)) for s in range(0, n, chunk)]


class ImageFilesSource(Source):
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
                raise UserError(f"{path}: image is {size[0]}x{size[1]} but {self.relpaths[0]} is "
                                f"{self.expected_size[0]}x{self.expected_size[1]}; all images must have one size")
            if self.target_resolution:
                img = resize_batch(img[None], self.target_resolution)[0]
            out.append(img)
        return self.row_of(np.arange(s, e)), np.stack(out)

    def row_of(self, positions: np.ndarray) -> np.ndarray:
        return positions

    def iter_blocks(self):
        for t in self.tasks():
            yield self.load(t)


class GridFolderSource(ImageFilesSource):
    """NVlabs folders: `images/{index:06d}.png` (or the PNGs directly in PATH), index from the bases."""

    channels = 3

    def __init__(self, name: str, path: str, factor_space: FactorSpace, factor_sizes=None):
        self.name = name
        root = check_dir(str(path), f"{name} folder")
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
            raise UserError(f"{root}: {len(pngs)} PNG images, but the {name} factor grid {list(factor_space.sizes)} "
                            f"needs {n:,} (images/000000.png ...)")
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


class CelebASource(ImageFilesSource):
    """CelebA: list_attr_celeba.txt (+ optional list_eval_partition.txt) and img_align_celeba/*.jpg.

    Images are centre-cropped to a square (178x178 of the aligned 178x218) and resized.
    """

    name = "celeba"
    channels = 3
    is_grid = False

    def __init__(self, path: str, split: str = "all"):
        root = check_dir(str(path), "CelebA folder")
        attr_path = check_file(os.path.join(root, "list_attr_celeba.txt"), "CelebA attribute file list_attr_celeba.txt")
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
        img_dir = os.path.join(root, "img_align_celeba")
        if not os.path.isdir(img_dir):
            img_dir = root
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
