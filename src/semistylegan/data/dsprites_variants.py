"""dSprites variants of disentanglement_lib (docs/datasets.md) and a real-valued dSprites.

All variants keep the 5 dSprites factors; the extra randomness is nuisance, never a factor:
- `dsprites-color`: the sprite multiplied by one RGB colour per image, each channel U(0.5, 1);
  the background stays black.
- `dsprites-noisy`: min(x + U(0,1)^(64x64x3), 1): a white sprite on i.i.d. uniform noise.
- `dsprites-scream`: a random 64x64 crop of a texture, tinted with a random colour per image
  (background = (crop + U(0,1)^3) / 2) and inverted under the sprite (1 - background). The
  texture is The Scream in disentanglement_lib; offline it is a user's image (`scream_image`,
  thumbnailed to fit 350x274 as upstream) or, by default, a procedural stand-in: smooth,
  swirling coloured noise made from a fixed seed (clearly not the painting).
- `dsprites-real` (alias `dsprites-inpainted`): continuous factor values instead of the grid
  (scale U(0.5, 1), orientation U(0, 2 pi), position U(0, 1)^2, shape one of 3) rendered with
  anti-aliased edges (grey coverage values "inpainted" along the boundary by 4x4 supersampling)
  at the exact sub-pixel centre 16 + 32 pos. Codes are real-valued; `classes` are the nearest
  dSprites grid classes so the discrete metrics still apply.

Nuisance draws: `sample_observations_from_factors(f, random_state)` uses the given RandomState
(as disentanglement_lib does); `images(indices)` uses the dataset's own RandomState seeded by
`seed` (default 0), so a run with the same seed and call sequence sees the same images.
"""
from __future__ import annotations

import numpy as np

from semistylegan.data.dataset import GroundTruthDataset, ImageDataset
from semistylegan.data.dsprites import DSPRITES_FACTORS, ProceduralDSprites, _inside, area_downsample
from semistylegan.errors import UserError

__all__ = ["DSpritesVariant", "RealValuedDSprites", "procedural_scream_texture", "load_scream_image"]

VARIANTS = ("color", "noisy", "scream")


def procedural_scream_texture(seed: int = 0, height: int = 274, width: int = 350) -> np.ndarray:
    """float32 (H, W, 3) in [0, 1]: smooth swirling coloured noise standing in for The Scream."""
    rs = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)

    def smooth(cells: int) -> np.ndarray:
        g = rs.uniform(size=(cells + 1, cells + 1))
        fy = yy / (height - 1) * cells
        fx = xx / (width - 1) * cells
        y0 = np.minimum(fy.astype(int), cells - 1)
        x0 = np.minimum(fx.astype(int), cells - 1)
        ay = fy - y0
        ax = fx - x0
        ay = ay * ay * (3 - 2 * ay)
        ax = ax * ax * (3 - 2 * ax)
        return (g[y0, x0] * (1 - ax) * (1 - ay) + g[y0, x0 + 1] * ax * (1 - ay)
                + g[y0 + 1, x0] * (1 - ax) * ay + g[y0 + 1, x0 + 1] * ax * ay)

    warp = smooth(4) * 6.0 + smooth(9) * 2.0
    out = np.empty((height, width, 3))
    for c, phase in enumerate((0.0, 2.1, 4.2)):
        bands = 0.5 + 0.5 * np.sin(yy / 11.0 + xx / 37.0 + warp + phase)
        out[..., c] = 0.65 * bands + 0.35 * smooth(12)
    return out.astype(np.float32)


def load_scream_image(path: str) -> np.ndarray:
    """A user's image as the Scream texture: thumbnail to fit (350, 274), float32 [0, 1] HWC."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((350, 274))
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except FileNotFoundError:
        raise UserError(f"{path}: scream image not found") from None
    except Exception as e:
        raise UserError(f"{path}: cannot decode the scream image ({type(e).__name__})") from None
    if arr.shape[0] < 64 or arr.shape[1] < 64:
        raise UserError(f"{path}: the scream image must be at least 64x64 after thumbnailing to 350x274, got "
                        f"{arr.shape[1]}x{arr.shape[0]}")
    return arr


class DSpritesVariant(GroundTruthDataset):
    """Color / Noisy / Scream dSprites over a binary dSprites grid dataset (procedural or official)."""

    channels = 3

    def __init__(self, kind: str, resolution: int = 64, seed: int = 0, scream_image: str | None = None,
                 base: GroundTruthDataset | None = None):
        if kind not in VARIANTS:
            raise ValueError(f"unknown dSprites variant '{kind}'; choose one of {', '.join(VARIANTS)}")
        if resolution not in (64, 32, 16, 8):
            raise ValueError(f"dSprites resolution must be 64, 32, 16 or 8, got {resolution}")
        self.kind = kind
        self.name = f"dsprites-{kind}"
        self.resolution = int(resolution)
        self.base = base if base is not None else ProceduralDSprites(64)
        if self.base.resolution != 64 or self.base.channels != 1:
            raise ValueError("the dSprites variants need a 64x64 single-channel base dataset")
        self.factor_space = self.base.factor_space
        self.seed = int(seed)
        self._rs = np.random.RandomState(self.seed)
        self.scream_source = None
        self._texture = None
        if kind == "scream":
            if scream_image:
                self._texture = load_scream_image(scream_image)
                self.scream_source = str(scream_image)
            else:
                self._texture = procedural_scream_texture()
                self.scream_source = "procedural"

    def images(self, indices) -> np.ndarray:
        return self.images_from_classes(self.factor_space.index_to_classes(indices), self._rs)

    def images_from_classes(self, classes, random_state=None) -> np.ndarray:
        rs = random_state if random_state is not None else self._rs
        mask = self.base.images_from_classes(np.asarray(classes, dtype=np.int64)) >= 128  # (N, 1, 64, 64)
        n = len(mask)
        if self.kind == "color":
            colour = rs.uniform(0.5, 1.0, size=(n, 3, 1, 1))
            x = mask * colour
        elif self.kind == "noisy":
            x = np.minimum(mask + rs.uniform(0.0, 1.0, size=(n, 3, 64, 64)), 1.0)
        else:
            tex = self._texture
            h, w = tex.shape[:2]
            x = np.empty((n, 3, 64, 64))
            for i in range(n):
                y0 = rs.randint(0, h - 64 + 1)
                x0 = rs.randint(0, w - 64 + 1)
                crop = tex[y0 : y0 + 64, x0 : x0 + 64].transpose(2, 0, 1)
                bg = (crop + rs.uniform(0.0, 1.0, size=(3, 1, 1))) / 2.0
                x[i] = np.where(mask[i], 1.0 - bg, bg)
        out = np.rint(x * 255.0).astype(np.uint8)
        return area_downsample(out, self.resolution)

    def info(self) -> dict:
        d = super().info()
        d.update({"variant": self.kind, "nuisance_seed": self.seed})
        if self.scream_source:
            d["scream_image"] = self.scream_source
        if hasattr(self.base, "path"):  # the official file, read through the cache
            d["base"] = self.base.info()
        return d


class RealValuedDSprites(ImageDataset):
    """dSprites with continuous factor values and anti-aliased rendering (see module doc)."""

    name = "dsprites-real"
    channels = 1

    def __init__(self, resolution: int = 64, num_images: int = 737280, seed: int = 0):
        if resolution not in (64, 32, 16, 8):
            raise ValueError(f"dSprites resolution must be 64, 32, 16 or 8, got {resolution}")
        if int(num_images) < 1:
            raise ValueError(f"num_images must be positive, got {num_images}")
        self.resolution = int(resolution)
        self.factor_space = DSPRITES_FACTORS
        self.seed = int(seed)
        self.num_images = int(num_images)
        rs = np.random.RandomState(self.seed)
        # Per-index continuous values: shape class, scale, orientation, posX, posY.
        self._shape = rs.randint(3, size=self.num_images).astype(np.int64)
        self._values = np.stack(
            [rs.uniform(0.5, 1.0, self.num_images), rs.uniform(0.0, 2 * np.pi, self.num_images),
             rs.uniform(0.0, 1.0, self.num_images), rs.uniform(0.0, 1.0, self.num_images)],
            axis=1,
        )
        ss = 4
        sub = (np.arange(32 * ss) + 0.5) / ss  # patch sub-pixel centres, pixels
        self._sub = sub

    def __len__(self) -> int:
        return self.num_images

    def _idx(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and ((idx < 0).any() or (idx >= self.num_images).any()):
            raise ValueError(f"index out of range [0, {self.num_images})")
        return idx

    def codes(self, indices) -> np.ndarray:
        idx = self._idx(indices)
        v = self._values[idx]
        return np.stack([self._shape[idx] / 2.0, (v[:, 0] - 0.5) / 0.5, v[:, 1] / (2 * np.pi), v[:, 2], v[:, 3]],
                        axis=1).astype(np.float32)

    def classes(self, indices) -> np.ndarray:
        idx = self._idx(indices)
        c = self.codes(idx).astype(np.float64)
        c[:, 0] = self._shape[idx] / 2.0
        return self.factor_space.code_to_classes(c)

    def images(self, indices) -> np.ndarray:
        idx = self._idx(indices)
        ss = 4
        scale, theta, px, py = (self._values[idx, k][:, None, None] for k in range(4))
        cx, cy = 16.0 + 32.0 * px, 16.0 + 32.0 * py
        x0, y0 = np.floor(cx).astype(np.int64) - 16, np.floor(cy).astype(np.int64) - 16  # patch origins
        dx = x0 + self._sub[None, None, :] - cx  # (N, 1, 128)
        dy = y0 + self._sub[None, :, None] - cy  # (N, 128, 1)
        c, s = np.cos(theta), np.sin(theta)
        dx, dy, c, s = (a.astype(np.float32) for a in (dx, dy, c, s))  # float32 halves the cost
        u = c * dx - s * dy  # inverse rotation of (dx, -dy)
        v = -s * dx - c * dy
        scale = scale.astype(np.float32)
        inside = np.zeros(u.shape, dtype=bool)
        for shape in range(3):
            sel = self._shape[idx] == shape
            if sel.any():
                inside[sel] = _inside(shape, u[sel], v[sel], scale[sel])
        cover = inside.reshape(len(idx), 32, ss, 32, ss).mean(axis=(2, 4))
        patch = np.rint(cover * 255.0).astype(np.uint8)
        # Paste each 32x32 patch into a padded canvas, then crop the 64x64 view.
        canvas = np.zeros((len(idx), 64 + 64, 64 + 64), dtype=np.uint8)
        ar = np.arange(32)
        rows = (y0[:, 0, 0] + 32)[:, None] + ar[None]
        cols = (x0[:, 0, 0] + 32)[:, None] + ar[None]
        canvas[np.arange(len(idx))[:, None, None], rows[:, :, None], cols[:, None, :]] = patch
        out = np.ascontiguousarray(canvas[:, None, 32:96, 32:96])
        return area_downsample(out, self.resolution)

    def info(self) -> dict:
        d = super().info()
        d.update({"continuous": True, "seed": self.seed,
                  "classes": "nearest dSprites grid class of each continuous value"})
        return d
