"""Pictures: image grids, factor traversals, plots."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["image_grid", "save_png", "traversal_codes", "labeled_grid"]


def image_grid(images: np.ndarray, rows: int, cols: int, pad: int = 1, pad_value: int = 64) -> np.ndarray:
    """uint8 (N, C, H, W) -> uint8 (H', W', C) grid, row-major, with a thin separator."""
    n, c, h, w = images.shape
    if n != rows * cols:
        raise ValueError(f"{n} images do not fill a {rows}x{cols} grid")
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        out[y:y + h, x:x + w] = images[i].transpose(1, 2, 0)
    return out


def labeled_grid(images: np.ndarray, rows: int, cols: int, row_labels: list[str] | None = None,
                 scale: int = 1) -> Image.Image:
    """A grid as a PIL image, optionally upscaled (nearest) and with a label left of each row."""
    grid = image_grid(images, rows, cols)
    if grid.shape[2] == 1:
        img = Image.fromarray(grid[:, :, 0], mode="L").convert("RGB")
    else:
        img = Image.fromarray(grid, mode="RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if not row_labels:
        return img
    font = ImageFont.load_default()
    margin = max(int(font.getlength(label)) for label in row_labels) + 8
    canvas = Image.new("RGB", (img.width + margin, img.height), (255, 255, 255))
    canvas.paste(img, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    cell = img.height / rows
    for r, label in enumerate(row_labels):
        draw.text((4, int(r * cell + cell / 2 - 6)), label, fill=(0, 0, 0), font=font)
    return canvas


def save_png(img: Image.Image, path: str | os.PathLike):
    """Write a PNG atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def traversal_codes(base_code: np.ndarray, steps: int) -> np.ndarray:
    """(K*steps, K) codes: row k sweeps factor k over linspace(0, 1, steps), others at base_code."""
    k = base_code.shape[0]
    codes = np.repeat(base_code[None, None, :], k * steps, axis=0).reshape(k, steps, k).copy()
    sweep = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    for i in range(k):
        codes[i, :, i] = sweep
    return codes.reshape(k * steps, k).astype(np.float32)
