"""Editing real images with a trained model: read factors, set some, generate.

Two routes, chosen by the run's method:

- Semi-StyleGAN / Info-StyleGAN ("semi", "info"): c = E(x) over all K factors (clipped to
  [0, 1]), the requested factors replaced, x' = G(c, z). The generator sees nothing of x but
  its code, so what the code does not describe (the nuisance) comes from z.
- Semi-StyleGAN-fine ("semi-fine"): the coarse content is x's own box downsample; c_fine =
  E_fine(x) over the fine factors, the requested ones replaced, x' = G(c_fine, z, down(x)).

By default z is not optimised: it is drawn from a fixed seed (default 0; one z shared by all
images) or is the zero vector with `zero_z` (the mode of N(0, I)). Simple and reproducible; the
price is that a reconstruction (no factor changed) is not pixel-exact, and what the factors do
not describe comes from z, not from the image. `Editor.project` (semistylegan.projection) fits
the codes and the noise to each image instead; passing its result to `edit` / `traverse` keeps
the fitted noise, so an edit keeps what the factors do not describe.

Images of any size and colour mode are accepted: transparency is composited onto white, the
picture converted to the model's channels (L or RGB), centre-cropped to a square and resized to
the model's resolution (box filter when shrinking, bicubic when enlarging). Files that are not
images, or are too large, raise UserError with one line naming the file.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch

from semistylegan.data.dataset import images_to_tensor, tensor_to_images
from semistylegan.errors import UserError

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "decode_image", "load_images", "Editor",
           "parse_assignments"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm")
MAX_IMAGE_BYTES = 32 * 1024 * 1024      # a file larger than this is refused before decoding
MAX_IMAGE_PIXELS = 6000 * 6000          # width x height larger than this is refused before decoding


def decode_image(data: bytes, resolution: int, channels: int, name: str = "image",
                 max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Encoded image bytes -> uint8 (channels, resolution, resolution). UserError if not an image."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UserError(f"{name}: empty file, not an image")
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
    except UnidentifiedImageError:
        raise UserError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{name}: not an image ({_first_line(e)})") from None
    except Image.DecompressionBombError:
        raise UserError(f"{name}: image too large") from None
    if w < 1 or h < 1:
        raise UserError(f"{name}: image has no pixels")
    if w * h > max_pixels:
        raise UserError(f"{name}: image too large ({w}x{h} pixels; at most {max_pixels} pixels)")
    try:
        img.seek(0)  # first frame of animations
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, rgba)
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            arr = np.asarray(img, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
            img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
        img = img.convert("L" if channels == 1 else "RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side))
        if side != resolution:
            img = img.resize((resolution, resolution), Image.BOX if side > resolution else Image.BICUBIC)
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{name}: cannot decode image ({_first_line(e)})") from None
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if channels not in (1, 3):
        # Other channel counts: repeat or average the grey/RGB planes.
        arr = np.repeat(arr.mean(axis=2, keepdims=True).round().astype(np.uint8), channels, axis=2)
    return np.array(arr.transpose(2, 0, 1), dtype=np.uint8, order="C", copy=True)  # writable


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return (s.splitlines()[0] if s else type(e).__name__)[:160]


def list_image_files(path: str | os.PathLike) -> list[Path]:
    """A file, or the image files (by extension) of a folder, sorted by name."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise UserError(f"{p}: no such file or folder")
    files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise UserError(f"{p}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_images(path: str | os.PathLike, resolution: int, channels: int, max_images: int = 1000,
                max_bytes: int = MAX_IMAGE_BYTES) -> tuple[list[Path], np.ndarray]:
    """Files and uint8 (N, C, R, R) images of a file or folder, converted for the model."""
    files = list_image_files(path)
    if len(files) > max_images:
        raise UserError(f"{path}: {len(files)} images, more than --max-images {max_images}")
    out = []
    for f in files:
        size = f.stat().st_size
        if size > max_bytes:
            raise UserError(f"{f}: file too large ({size} bytes; at most {max_bytes})")
        out.append(decode_image(f.read_bytes(), resolution, channels, name=str(f)))
    return files, np.stack(out)


def parse_assignments(items) -> dict[str, float]:
    """'a=0.3,b=0.5' (or a list of such strings) -> {'a': 0.3, 'b': 0.5}; values as typed."""
    if isinstance(items, str):
        items = [items]
    out: dict[str, float] = {}
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise UserError(f"--set expects NAME=VALUE, got '{part}'")
            try:
                v = float(value)
            except ValueError:
                raise UserError(f"--set {name.strip()}: '{value}' is not a number") from None
            out[name.strip()] = v
    if not out:
        raise UserError("--set: no NAME=VALUE given")
    return out


class Editor:
    """Factor reading and editing for a loaded run (semistylegan.evaluation.LoadedRun)."""

    def __init__(self, run, source: str = "run"):
        method = run.method
        editable = method.conditional_generator and method.has_encoder
        if not editable or "G" not in run.nets or "D" not in run.nets:
            raise UserError(f"{source}: a '{run.cfg.method}' snapshot cannot edit images "
                            "(needs a semi, info or semi-fine run: an encoder and a generator)")
        self.run = run
        self.method = method
        self.nets = run.nets
        self.device = run.device
        self.fine = method.coarse_input
        self.all_names = list(run.dataset_info["factors"]["names"])
        self.sizes = [int(s) for s in run.dataset_info["factors"]["sizes"]]
        self.names = list(method.fine_names) if self.fine else list(self.all_names)
        self.resolution = int(run.cfg.resolution)
        self.channels = int(run.dataset_info["channels"])
        self.z_dim = int(method.z_dim)

    # ------------------------------------------------------------------------------------
    def describe(self) -> dict:
        """Names, grids and ranges of the controllable factors (for the web page and export)."""
        size_of = dict(zip(self.all_names, self.sizes))
        return {
            "method": self.run.cfg.method,
            "dataset": self.run.cfg.dataset,
            "resolution": self.resolution,
            "channels": self.channels,
            "z_dim": self.z_dim,
            "needs_image": self.fine,
            "coarse_resolution": int(self.method.input_res) if self.fine else None,
            "factors": [{"name": n, "min": 0.0, "max": 1.0, "values": size_of[n]} for n in self.names],
        }

    def check_factor(self, name: str) -> int:
        if name not in self.names:
            what = "fine factors" if self.fine else "factors"
            raise UserError(f"unknown factor '{name}'; this model's {what} are: {', '.join(self.names)}")
        return self.names.index(name)

    def check_assignments(self, values: dict[str, float]) -> dict[int, float]:
        out = {}
        for name, v in values.items():
            i = self.check_factor(name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not (0.0 <= v <= 1.0):
                raise UserError(f"factor '{name}': value {v!r} is outside [0, 1]")
            out[i] = float(v)
        return out

    def z(self, n: int, seed: int = 0, zero_z: bool = False) -> torch.Tensor:
        if zero_z:
            return torch.zeros(n, self.z_dim, device=self.device)
        z = np.random.RandomState(seed).standard_normal((1, self.z_dim)).astype(np.float32)
        return torch.from_numpy(z).to(self.device).expand(n, -1)

    def to_tensor(self, images: np.ndarray) -> torch.Tensor:
        images = np.asarray(images)
        expect = (self.channels, self.resolution, self.resolution)
        if images.ndim != 4 or images.shape[1:] != expect or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, {expect[0]}, {expect[1]}, {expect[2]}), "
                             f"got {images.dtype} {images.shape}")
        return images_to_tensor(images, self.device)

    # ------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: np.ndarray) -> np.ndarray:
        """(N, F) codes of the controllable factors, clipped to [0, 1]."""
        x = self.to_tensor(images)
        if self.fine:
            c = self.method.encode_fine(self.nets, x)
        else:
            c = self.method.encode(self.nets, x)
        return c.clamp(0.0, 1.0).float().cpu().numpy()

    def project(self, images: np.ndarray, steps: int | None = None, **kwargs):
        """semistylegan.projection.project on this model: fitted codes and noise per image."""
        from semistylegan.projection import DEFAULT_STEPS, project

        return project(self, images, DEFAULT_STEPS if steps is None else steps, **kwargs)

    @torch.no_grad()
    def generate(self, codes: np.ndarray, images: np.ndarray | None = None, seed: int = 0,
                 truncation_psi: float = 1.0, zero_z: bool = False, noise: np.ndarray | None = None) -> np.ndarray:
        """uint8 images from (N, F) codes; semi-fine takes the coarse content from `images`
        (one image per code, or one image for all). `noise`: a projection's fitted noise (one
        row per code, or one for all) instead of the seeded z."""
        if noise is not None:
            from semistylegan.projection import render_images

            return render_images(self, codes, noise, images, truncation_psi)
        c = torch.from_numpy(np.asarray(codes, dtype=np.float32)).to(self.device)
        z = self.z(len(c), seed, zero_z)
        if self.fine:
            if images is None:
                coarse = self.method.reference_images(self.device)
            else:
                coarse = self.to_tensor(images)
            out = self.method.generate(self.nets, c, z, truncation_psi, coarse=coarse)
        else:
            out = self.method.generate(self.nets, c, z, truncation_psi)
        return tensor_to_images(out)

    def edit(self, images: np.ndarray, values: dict[str, float], seed: int = 0, truncation_psi: float = 1.0,
             zero_z: bool = False, projection=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(edited uint8 images, codes read from the images, codes used). With `projection`
        (of these images, from `project`), the fitted codes are the reading and its noise is kept."""
        assign = self.check_assignments(values)
        read = self.encode(images) if projection is None else projection.codes.copy()
        codes = read.copy()
        for i, v in assign.items():
            codes[:, i] = v
        noise = None if projection is None else projection.noise
        return self.generate(codes, images, seed, truncation_psi, zero_z, noise=noise), read, codes

    def traverse(self, images: np.ndarray, name: str, steps: int = 8, seed: int = 0, truncation_psi: float = 1.0,
                 zero_z: bool = False, projection=None) -> np.ndarray:
        """uint8 (N, steps, C, R, R): factor `name` swept over linspace(0, 1, steps) per image
        (from the projection's codes and noise when given)."""
        i = self.check_factor(name)
        if not (2 <= steps <= 64):
            raise UserError(f"--steps must be in [2, 64], got {steps}")
        read = self.encode(images) if projection is None else projection.codes
        n = len(read)
        codes = np.repeat(read[:, None, :], steps, axis=1)
        codes[:, :, i] = np.linspace(0.0, 1.0, steps, dtype=np.float32)[None, :]
        rep = np.repeat(images, steps, axis=0) if self.fine else None
        noise = None if projection is None else np.repeat(projection.noise, steps, axis=0)
        out = self.generate(codes.reshape(n * steps, -1), rep, seed, truncation_psi, zero_z, noise=noise)
        return out.reshape(n, steps, *out.shape[1:])


def load_editor(run_dir: str | os.PathLike, device: str = "cpu") -> Editor:
    """Editor for the newest snapshot of a run (or a snapshot file)."""
    from semistylegan.evaluation import load_run

    return Editor(load_run(run_dir, device=device), source=str(run_dir))
