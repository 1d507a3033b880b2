"""Image helpers shared by the readers and the cache: resizing, decoding, grids.

Resizing rule used everywhere (documented in the data README of the report):
- non-square images are centre-cropped to a square (the shorter side) first;
- an integer down-scale factor uses an exact box (area) average, like `area_downsample`;
- an integer up-scale factor repeats pixels (nearest);
- any other ratio uses PIL's BOX filter when shrinking and BICUBIC when growing.
"""
from __future__ import annotations

import os

import numpy as np

from semistylegan.errors import UserError

__all__ = ["center_crop_square", "resize_batch", "load_image", "image_size", "IMAGE_EXTENSIONS", "save_grid", "to_hwc"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def center_crop_square(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C, S, S) with S = min(H, W), centred."""
    h, w = images.shape[-2:]
    if h == w:
        return images
    s = min(h, w)
    top = (h - s) // 2
    left = (w - s) // 2
    return images[..., top : top + s, left : left + s]


def resize_batch(images: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (N, C, R, R) following the module rule."""
    images = center_crop_square(np.asarray(images))
    n, c, s, _ = images.shape
    r = int(resolution)
    if s == r:
        return np.ascontiguousarray(images, dtype=np.uint8)
    if s % r == 0:
        f = s // r
        pooled = images.reshape(n, c, r, f, r, f).mean(axis=(3, 5), dtype=np.float32)
        return np.rint(pooled).astype(np.uint8)
    if r % s == 0:
        f = r // s
        return np.ascontiguousarray(images.repeat(f, axis=2).repeat(f, axis=3), dtype=np.uint8)
    from PIL import Image

    method = Image.Resampling.BOX if r < s else Image.Resampling.BICUBIC
    out = np.empty((n, c, r, r), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            out[i, ch] = np.asarray(Image.fromarray(images[i, ch]).resize((r, r), method))
    return out


def load_image(path: str, channels: int = 3) -> np.ndarray:
    """Decode one PNG/JPEG into uint8 (C, H, W). A corrupt or missing file raises UserError."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            arr = np.asarray(im)
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except Exception as e:  # PIL raises many types for truncated/corrupt data
        raise UserError(f"{path}: cannot decode image ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'corrupt'})") from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return arr


def image_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise UserError(f"{path}: image file not found") from None
    except Exception as e:
        raise UserError(f"{path}: cannot read image header ({type(e).__name__})") from None


def to_hwc(images: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, H, W, 3) RGB for saving."""
    images = np.asarray(images)
    if images.shape[1] == 1:
        images = np.repeat(images, 3, axis=1)
    return images.transpose(0, 2, 3, 1)


def save_grid(images: np.ndarray, path: str | os.PathLike, ncol: int, pad: int = 2,
              labels: list[str] | None = None) -> None:
    """Save uint8 (N, C, H, W) images as one PNG grid, row-major; optional text label per row."""
    from PIL import Image, ImageDraw

    imgs = to_hwc(images)
    n, h, w, _ = imgs.shape
    nrow = (n + ncol - 1) // ncol
    label_w = 0
    if labels:
        label_w = 8 + 6 * max(len(s) for s in labels)
    canvas = np.full((nrow * (h + pad) + pad, label_w + ncol * (w + pad) + pad, 3), 40, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, ncol)
        y = pad + r * (h + pad)
        x = label_w + pad + c * (w + pad)
        canvas[y : y + h, x : x + w] = imgs[i]
    im = Image.fromarray(canvas)
    if labels:
        draw = ImageDraw.Draw(im)
        for r, text in enumerate(labels):
            draw.text((4, pad + r * (h + pad) + max(0, h // 2 - 6)), text, fill=(230, 230, 230))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    im.save(path)
