"""Procedural dSprites: the exact factor grid of deepmind/dsprites-dataset, rendered offline.

Factors (docs/datasets.md): shape 3 (square, ellipse, heart), scale 6 (0.5..1.0),
orientation 40 (linspace(0, 2 pi, 40)), posX 32, posY 32; 737,280 images, posY fastest.

Geometry (measured on the official GIF): white filled shapes on black, sprite centre at
(16 + 32 posX, 16 + 32 posY) pixels with posY = 0 at the top, square side 20 s, ellipse
semi-axes 13 s x 7 s (major axis horizontal at orientation 0), heart 20 s wide x 17 s tall
(lobes up), rotating counter-clockwise on screen as the orientation class grows.

The 720 (shape, scale, orientation) templates are rendered once, 4x supersampled and
thresholded at half coverage so the images stay binary; a batch is then made by pasting
templates at integer offsets. Documented tolerance: the sprite centre is placed at
16 + round(32 pos) pixels, within 0.5 px of the official 16 + 32 pos.
"""
from __future__ import annotations

import functools

import numpy as np

from semistylegan.data.dataset import GroundTruthDataset
from semistylegan.data.factors import FactorSpace

__all__ = ["DSPRITES_FACTORS", "ProceduralDSprites", "render_templates", "area_downsample"]

_ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
DSPRITES_FACTORS = FactorSpace(
    names=("shape", "scale", "orientation", "posX", "posY"),
    sizes=(3, 6, 40, 32, 32),
    values=(
        (1.0, 2.0, 3.0),
        tuple(np.round(np.linspace(0.5, 1.0, 6), 6)),
        tuple(_ORIENTATIONS),
        tuple(np.linspace(0.0, 1.0, 32)),
        tuple(np.linspace(0.0, 1.0, 32)),
    ),
)
SHAPE_NAMES = ("square", "ellipse", "heart")
TEMPLATE = 32  # template patch side, pixels; the largest sprite (45-degree square) spans < 29 px
SUPERSAMPLE = 4


@functools.lru_cache(maxsize=1)  # a pure function; computing it once per process saves minutes
@functools.lru_cache(maxsize=1)
def _heart_box() -> tuple[float, float, float, float]:
    """Bounding box of the implicit heart (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, found numerically."""
    g = np.linspace(-1.5, 1.5, 3001)
    x, y = np.meshgrid(g, g)
    inside = (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0
    return x[inside].min(), x[inside].max(), y[inside].min(), y[inside].max()


def _inside(shape: int, u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    """Membership in the canonical (unrotated) shape; u right, v up, in pixels."""
    if shape == 0:  # square, side 20 s
        half = 10.0 * scale
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if shape == 1:  # ellipse, semi-axes 13 s (horizontal) x 7 s
        return (u / (13.0 * scale)) ** 2 + (v / (7.0 * scale)) ** 2 <= 1.0
    x0, x1, y0, y1 = _heart_box()
    hx = u * (x1 - x0) / (20.0 * scale)
    hy = v * (y1 - y0) / (17.0 * scale) + 0.5 * (y0 + y1)
    return (hx**2 + hy**2 - 1) ** 3 - hx**2 * hy**3 <= 0


@functools.lru_cache(maxsize=1)
def render_templates() -> np.ndarray:
    """uint8 (3, 6, 40, 32, 32) binary templates, sprite centre at patch coordinate (16, 16)."""
    sub = (np.arange(TEMPLATE * SUPERSAMPLE) + 0.5) / SUPERSAMPLE - TEMPLATE / 2
    dx, dy = np.meshgrid(sub, sub)  # dx: column offset, dy: row offset (down)
    u0, v0 = dx, -dy
    out = np.zeros((3, 6, 40, TEMPLATE, TEMPLATE), dtype=np.uint8)
    for k, theta in enumerate(_ORIENTATIONS):
        c, s = np.cos(theta), np.sin(theta)
        # Inverse rotation: a shape turned counter-clockwise by theta contains p iff R(-theta) p is inside.
        u = c * u0 + s * v0
        v = -s * u0 + c * v0
        for shape in range(3):
            for si, scale in enumerate(DSPRITES_FACTORS.values[1]):
                inside = _inside(shape, u, v, scale)
                cover = inside.reshape(TEMPLATE, SUPERSAMPLE, TEMPLATE, SUPERSAMPLE).mean(axis=(1, 3))
                out[shape, si, k] = cover >= 0.5
    return out


def area_downsample(images: np.ndarray, resolution: int) -> np.ndarray:
    """Box-filter uint8 (N, C, H, W) images down to resolution x resolution (H a multiple of it)."""
    n, c, h, w = images.shape
    if h == resolution:
        return images
    if h % resolution or w != h:
        raise ValueError(f"cannot area-downsample {h}x{w} to {resolution}x{resolution}")
    f = h // resolution
    pooled = images.reshape(n, c, resolution, f, resolution, f).mean(axis=(3, 5), dtype=np.float32)
    return np.rint(pooled).astype(np.uint8)


class ProceduralDSprites(GroundTruthDataset):
    """dSprites rendered on the fly at 64x64 and area-downsampled to `resolution` (64, 32 or 16)."""

    name = "dsprites"
    channels = 1

    def __init__(self, resolution: int = 64):
        if resolution not in (64, 32, 16, 8):
            raise ValueError(f"dSprites resolution must be 64, 32, 16 or 8, got {resolution}")
        self.resolution = int(resolution)
        self.factor_space = DSPRITES_FACTORS
        self._templates = render_templates()
        self._arange = np.arange(TEMPLATE)

    def images_from_classes(self, classes: np.ndarray, random_state: np.random.RandomState | None = None) -> np.ndarray:
        classes = self.factor_space._check_classes(classes)
        n = len(classes)
        shape, scale, orient, pos_x, pos_y = classes.T
        # Patch top-left corner so that the centre lands at 16 + round(32 * pos) pixels.
        x0 = np.rint(32.0 * pos_x / 31.0).astype(np.int64)
        y0 = np.rint(32.0 * pos_y / 31.0).astype(np.int64)
        rows = y0[:, None] + self._arange[None, :]
        cols = x0[:, None] + self._arange[None, :]
        canvas = np.zeros((n, 64, 64), dtype=np.uint8)
        canvas[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]] = self._templates[shape, scale, orient]
        canvas *= 255
        return area_downsample(canvas[:, None], self.resolution)
