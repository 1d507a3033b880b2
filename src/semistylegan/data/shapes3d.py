"""Procedural 3DShapes-like scenes: the factor grid of deepmind/3d-shapes, rendered offline.

Factors (docs/datasets.md), orientation fastest, bases [48000, 4800, 480, 60, 15, 1]:
floor_hue 10, wall_hue 10, object_hue 10 (0.0..0.9), scale 8 (linspace(0.75, 1.25, 8)),
shape 4 (cube, cylinder, sphere, capsule), orientation 15 (camera azimuth linspace(-30, 30, 15)
degrees); 480,000 images.

The scene imitates the GQN "rooms" look: a floor plane, two walls meeting in a vertical corner
behind the object, a constant sky band above the walls, one object resting on the floor at the
centre of rotation, a soft shadow cast by an area key light from behind, a fill light from the
camera side with a small white highlight, a brightness falloff on the floor and a faint diagonal
texture on the walls. Colours are HSV(hue, 1, 1).

Everything but the three hues is geometry, and the picture is linear in the three surface
colours: image = const + w_floor * rgb(floor) + w_wall * rgb(wall) + w_object * rgb(object),
where the weights hold shading, shadow and anti-aliased coverage. The 480 (shape, scale,
orientation) weight sets are ray cast once with numpy (4x4 supersampling at 64x64), lazily as
they are first needed, and saved to the cache directory when all are done; a batch is then an
einsum. The renderer is an imitation (no MuJoCo), not the official pixels.
"""
from __future__ import annotations

import os

import numpy as np

from semistylegan.data.dataset import GroundTruthDataset
from semistylegan.data.factors import FactorSpace

__all__ = ["SHAPES3D_FACTORS", "SHAPE_NAMES", "ProceduralShapes3D", "hsv_hues_to_rgb"]

_HUES = tuple(np.round(np.linspace(0.0, 0.9, 10), 6))
SHAPES3D_FACTORS = FactorSpace(
    names=("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"),
    sizes=(10, 10, 10, 8, 4, 15),
    values=(
        _HUES,
        _HUES,
        _HUES,
        tuple(np.round(np.linspace(0.75, 1.25, 8), 6)),
        (0.0, 1.0, 2.0, 3.0),
        tuple(np.linspace(-30.0, 30.0, 15)),
    ),
)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
GEOMETRY_VERSION = 1

# Scene constants (world: y up, object at the origin on the floor y = 0, camera at +z).
_SKY = np.array([0.60, 0.89, 0.98])
_CAM_DIST = 3.3
_CAM_HEIGHT = 1.45
_TARGET_Y = 0.62
_FOV_TAN = 0.62  # tan(half field of view)
_CORNER_Z = -2.2  # the vertical wall corner at (0, *, _CORNER_Z)
_WALL_TOP = 2.0
_KEY = np.array([-0.45, 1.0, -0.75])
_KEY /= np.linalg.norm(_KEY)
_FILL = np.array([0.35, 0.55, 1.0])
_FILL /= np.linalg.norm(_FILL)
_SIZE = 0.85  # world size unit of the object at scale 1


def hsv_hues_to_rgb(hue: np.ndarray) -> np.ndarray:
    """HSV(h, 1, 1) -> RGB in [0, 1]; hue array of any shape -> (..., 3)."""
    h = (np.asarray(hue, dtype=np.float64) % 1.0) * 6.0
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None]) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Ray casting. o, d: (N, 3) origins and unit directions. Each hit function returns (t, normal),
# t = inf where the ray misses.
def _hit_box(o, d, half, cy):
    lo = np.array([-half, cy - half, -half])
    hi = np.array([half, cy + half, half])
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
    tn = np.nan_to_num(np.minimum(t1, t2), nan=-np.inf)
    tf = np.nan_to_num(np.maximum(t1, t2), nan=np.inf)
    tmin = tn.max(axis=1)
    tmax = tf.min(axis=1)
    hit = (tmax >= tmin) & (tmin > 1e-6)
    t = np.where(hit, tmin, np.inf)
    axis = tn.argmax(axis=1)
    n = np.zeros_like(o)
    n[np.arange(len(o)), axis] = -np.sign(d[np.arange(len(o)), axis])
    return t, n


def _hit_sphere(o, d, c, r):
    oc = o - c
    b = np.einsum("ij,ij->i", oc, d)
    cc = np.einsum("ij,ij->i", oc, oc) - r * r
    disc = b * b - cc
    with np.errstate(invalid="ignore"):
        t = -b - np.sqrt(disc)
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    return t, (p - c) / r


def _hit_cyl_side(o, d, r, y0, y1):
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    disc = b * b - a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (-b - np.sqrt(disc)) / a
    y = o[:, 1] + t * d[:, 1]
    ok = (disc >= 0) & (a > 1e-12) & (t > 1e-6) & (y >= y0) & (y <= y1)
    t = np.where(ok, t, np.inf)
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    n = np.stack([p[:, 0] / r, np.zeros(len(o)), p[:, 2] / r], axis=1)
    return t, n


def _hit_cap(o, d, r, y, up):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (y - o[:, 1]) / d[:, 1]
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    ok = np.isfinite(t) & (t > 1e-6) & (p[:, 0] ** 2 + p[:, 2] ** 2 <= r * r)
    n = np.zeros_like(o)
    n[:, 1] = 1.0 if up else -1.0
    return np.where(ok, t, np.inf), n


def _closest(*hits):
    ts = np.stack([h[0] for h in hits])
    k = ts.argmin(axis=0)
    idx = np.arange(ts.shape[1])
    normals = np.stack([h[1] for h in hits])
    return ts[k, idx], normals[k, idx]


def hit_object(shape: int, scale: float, o: np.ndarray, d: np.ndarray):
    """Nearest intersection of rays with the object (shape class, scale value)."""
    u = _SIZE * scale
    if shape == 0:  # cube
        return _hit_box(o, d, 0.5 * u, 0.5 * u)
    if shape == 1:  # cylinder
        r, h = 0.5 * u, 1.0 * u
        return _closest(_hit_cyl_side(o, d, r, 0.0, h), _hit_cap(o, d, r, h, True))
    if shape == 2:  # sphere
        r = 0.6 * u
        return _hit_sphere(o, d, np.array([0.0, r, 0.0]), r)
    r, length = 0.4 * u, 0.85 * u  # capsule: vertical segment swept by a radius
    return _closest(
        _hit_cyl_side(o, d, r, r, r + length),
        _hit_sphere(o, d, np.array([0.0, r, 0.0]), r),
        _hit_sphere(o, d, np.array([0.0, r + length, 0.0]), r),
    )


def _camera_rays(azimuth_deg: float, res: int):
    a = np.deg2rad(azimuth_deg)
    cam = np.array([_CAM_DIST * np.sin(a), _CAM_HEIGHT, _CAM_DIST * np.cos(a)])
    f = np.array([0.0, _TARGET_Y, 0.0]) - cam
    f /= np.linalg.norm(f)
    r = np.cross(f, [0.0, 1.0, 0.0])
    r /= np.linalg.norm(r)
    up = np.cross(r, f)
    s = (np.arange(res) + 0.5) / res * 2.0 - 1.0
    xs, ys = np.meshgrid(s, -s)
    d = f[None] + _FOV_TAN * (xs.reshape(-1, 1) * r[None] + ys.reshape(-1, 1) * up[None])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.broadcast_to(cam, d.shape).copy(), d


def _room(o, d):
    """Hit of the room (floor / left wall / right wall / sky) -> kind 0..3, t, point."""
    corner = np.array([0.0, 0.0, _CORNER_Z])
    planes = [
        (np.array([0.0, 1.0, 0.0]), np.zeros(3)),
        (np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0), corner),
        (np.array([-1.0, 0.0, 1.0]) / np.sqrt(2.0), corner),
    ]
    ts = []
    for n, p in planes:
        nd = d @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((p - o) @ n) / nd
        ts.append(np.where((nd < -1e-9) & (t > 0), t, np.inf))
    ts = np.stack(ts)
    kind = ts.argmin(axis=0)
    t = ts.min(axis=0)
    p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
    sky = ~np.isfinite(t) | ((kind > 0) & (p[:, 1] > _WALL_TOP))
    kind = np.where(sky, 3, kind)
    return kind, np.where(sky, np.inf, t), p


_SHADOW_EXTENT = 3.2
_SHADOW_RES = 96


def _shadow_texture(shape: int, scale: float) -> np.ndarray:
    """Fraction of the area key light visible from floor points on a grid over [-E, E]^2."""
    g = (np.arange(_SHADOW_RES) + 0.5) / _SHADOW_RES * 2 * _SHADOW_EXTENT - _SHADOW_EXTENT
    xx, zz = np.meshgrid(g, g)  # rows: z, cols: x
    o = np.stack([xx.ravel(), np.full(xx.size, 1e-4), zz.ravel()], axis=1)
    rs = np.random.RandomState(1234)
    samples = 12
    # Directions spread over a disc of angular radius ~0.16 rad around the key light.
    t1 = np.cross(_KEY, [0.0, 0.0, 1.0])
    t1 /= np.linalg.norm(t1)
    t2 = np.cross(_KEY, t1)
    vis = np.zeros(len(o))
    ang = (np.arange(samples) + rs.uniform(size=samples)) / samples * 2 * np.pi
    rad = 0.16 * np.sqrt((np.arange(samples) % 4 + 0.5) / 4)
    for a, rr in zip(ang, rad):
        ld = _KEY + rr * (np.cos(a) * t1 + np.sin(a) * t2)
        ld /= np.linalg.norm(ld)
        t, _ = hit_object(shape, scale, o, np.broadcast_to(ld, o.shape))
        vis += ~np.isfinite(t)
    return (vis / samples).reshape(_SHADOW_RES, _SHADOW_RES)


def _sample_texture(tex: np.ndarray, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    fx = (x + _SHADOW_EXTENT) / (2 * _SHADOW_EXTENT) * _SHADOW_RES - 0.5
    fz = (z + _SHADOW_EXTENT) / (2 * _SHADOW_EXTENT) * _SHADOW_RES - 0.5
    inside = (fx > -0.5) & (fx < _SHADOW_RES - 0.5) & (fz > -0.5) & (fz < _SHADOW_RES - 0.5)
    fx = np.clip(fx, 0, _SHADOW_RES - 1.001)
    fz = np.clip(fz, 0, _SHADOW_RES - 1.001)
    x0 = fx.astype(np.int64)
    z0 = fz.astype(np.int64)
    ax = fx - x0
    az = fz - z0
    v = (
        tex[z0, x0] * (1 - ax) * (1 - az)
        + tex[z0, x0 + 1] * ax * (1 - az)
        + tex[z0 + 1, x0] * (1 - ax) * az
        + tex[z0 + 1, x0 + 1] * ax * az
    )
    return np.where(inside, v, 1.0)


class _GeometryRenderer:
    """Computes the (const RGB, w_floor, w_wall, w_object) maps of one (shape, scale, orientation)."""

    def __init__(self, res: int, supersample: int):
        self.res = res
        self.ss = supersample
        self._room_cache: dict[int, tuple] = {}
        self._shadow_cache: dict[tuple[int, int], np.ndarray] = {}

    def _room_for(self, orient: int):
        if orient not in self._room_cache:
            o, d = _camera_rays(SHAPES3D_FACTORS.values[5][orient], self.res * self.ss)
            kind, t, p = _room(o, d)
            shade = np.zeros(len(d))
            # floor: lit from above, falling off toward the far edge and the sides
            dist = np.sqrt(p[:, 0] ** 2 + (p[:, 2] - 0.6) ** 2)
            floor = 0.95 - 0.28 * np.clip(dist / 5.0, 0.0, 1.0) ** 1.5
            # walls: each plane shaded differently, with a faint diagonal texture
            stripes = 1.0 + 0.035 * np.sin(2 * np.pi * (p[:, 1] + np.abs(p[:, 0])) / 0.45)
            wall_l = 0.86 * stripes
            wall_r = 0.70 * stripes
            shade = np.select([kind == 0, kind == 1, kind == 2], [floor, wall_l, wall_r], 0.0)
            self._room_cache[orient] = (o, d, kind, t, p, shade)
        return self._room_cache[orient]

    def _shadow_for(self, shape: int, scale: int):
        key = (shape, scale)
        if key not in self._shadow_cache:
            self._shadow_cache[key] = _shadow_texture(shape, SHAPES3D_FACTORS.values[3][scale])
        return self._shadow_cache[key]

    def render(self, shape: int, scale: int, orient: int) -> np.ndarray:
        """float32 (6, res, res): const R, G, B, w_floor, w_wall, w_object."""
        o, d, kind, t_room, p, shade = self._room_for(orient)
        # Only rays that pass the object's bounding sphere need the exact intersection.
        u = _SIZE * SHAPES3D_FACTORS.values[3][scale]
        bound_c, bound_r = np.array([0.0, 0.9 * u, 0.0]), 1.2 * u  # contains every shape
        oc = o[0] - bound_c
        b = d @ oc
        near = b * b - (oc @ oc - bound_r * bound_r) >= 0
        t_obj = np.full(len(d), np.inf)
        n = np.zeros_like(d)
        if near.any():
            t_obj[near], n[near] = hit_object(shape, SHAPES3D_FACTORS.values[3][scale], o[near], d[near])
        obj = t_obj < t_room
        floor_vis = _sample_texture(self._shadow_for(shape, scale), p[:, 0], p[:, 2])
        floor_shade = shade * (0.38 + 0.62 * floor_vis)
        w_floor = np.where((kind == 0) & ~obj, floor_shade, 0.0)
        w_wall = np.where(((kind == 1) | (kind == 2)) & ~obj, shade, 0.0)
        nk = np.clip(n @ _KEY, 0.0, None)
        nf = np.clip(n @ _FILL, 0.0, None)
        half = _FILL - d
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        spec = np.clip(np.einsum("ij,ij->i", n, half), 0.0, None) ** 40
        w_obj = np.where(obj, 0.22 + 0.5 * nk + 0.5 * nf, 0.0)
        const = np.where((kind == 3) & ~obj, 1.0, 0.0)[:, None] * _SKY[None] + np.where(obj, 0.28 * spec, 0.0)[:, None]
        maps = np.concatenate([const, w_floor[:, None], w_wall[:, None], w_obj[:, None]], axis=1)
        r, s = self.res, self.ss
        maps = maps.reshape(r, s, r, s, 6).mean(axis=(1, 3))
        return maps.transpose(2, 0, 1).astype(np.float32)


def _cache_dir() -> str:
    from semistylegan.data.cache import cache_root

    return cache_root()


class ProceduralShapes3D(GroundTruthDataset):
    """3DShapes-like scenes rendered on the fly (RGB, resolution 8..128; 64 is the paper's)."""

    name = "shapes3d"
    channels = 3

    def __init__(self, resolution: int = 64, use_disk_cache: bool = True):
        resolution = int(resolution)
        if resolution not in (8, 16, 32, 64, 128):
            raise ValueError(f"procedural 3DShapes resolution must be 8, 16, 32, 64 or 128, got {resolution}")
        self.resolution = resolution
        self.factor_space = SHAPES3D_FACTORS
        self.render_res = max(64, resolution)
        self._renderer = _GeometryRenderer(self.render_res, 4 if self.render_res == 64 else 2)
        self._maps = np.zeros((4, 8, 15, 6, resolution, resolution), dtype=np.float32)
        self._done = np.zeros((4, 8, 15), dtype=bool)
        self._use_disk = use_disk_cache
        self._hue_rgb = hsv_hues_to_rgb(np.asarray(_HUES)).astype(np.float32)  # (10, 3)
        self._loaded = False

    # geometry -------------------------------------------------------------------------------
    def _disk_path(self) -> str:
        return self._disk_path_for(self.resolution)

    @staticmethod
    def _disk_path_for(resolution: int) -> str:
        return os.path.join(_cache_dir(), f"shapes3d-geometry-v{GEOMETRY_VERSION}-r{resolution}.npy")

    def _try_load(self):
        self._loaded = True
        if not self._use_disk:
            return
        path = self._disk_path()
        try:
            maps = np.load(path)
        except (OSError, ValueError, EOFError):
            maps = None
        if maps is None and self.resolution < 64:  # derive from the 64x64 geometry when present
            try:
                full = np.load(self._disk_path_for(64))
                f = 64 // self.resolution
                maps = full.reshape(full.shape[:4] + (self.resolution, f, self.resolution, f)).mean(axis=(5, 7))
            except (OSError, ValueError, EOFError):
                return
        if maps is not None and maps.shape == self._maps.shape:
            self._maps[...] = maps
            self._done[...] = True

    def _save(self):
        if not self._use_disk:
            return
        from semistylegan.data.cache import atomic_save_npy

        try:
            atomic_save_npy(self._disk_path(), self._maps)
        except OSError:
            pass  # a read-only cache directory only costs the precomputation next time

    def _ensure(self, keys: np.ndarray):
        if not self._loaded:
            self._try_load()
        if self._done.all():
            return
        uniq = np.unique(keys, axis=0)
        todo = [tuple(k) for k in uniq if not self._done[tuple(k)]]
        for shape, scale, orient in todo:
            m = self._renderer.render(shape, scale, orient)
            if self.resolution != self.render_res:
                m = area_downsample_float(m, self.resolution)
            self._maps[shape, scale, orient] = m
            self._done[shape, scale, orient] = True
        if todo and self._done.all():
            self._save()

    def precompute(self, progress=None) -> None:
        """Render all 480 geometries now (and save them to the cache directory)."""
        if not self._loaded:
            self._try_load()
        keys = np.argwhere(~self._done)
        it = keys if progress is None else progress(keys)
        for k in it:
            self._ensure(np.asarray(k)[None])

    # images ---------------------------------------------------------------------------------
    def images_from_classes(self, classes: np.ndarray, random_state=None) -> np.ndarray:
        classes = self.factor_space._check_classes(classes)
        geo = classes[:, [4, 3, 5]]  # shape, scale, orientation
        self._ensure(geo)
        maps = self._maps[geo[:, 0], geo[:, 1], geo[:, 2]]  # (N, 6, R, R)
        hues = self._hue_rgb
        cols = np.stack([hues[classes[:, 0]], hues[classes[:, 1]], hues[classes[:, 2]]], axis=1)
        out = maps[:, :3] + np.einsum("nkhw,nkc->nchw", maps[:, 3:], cols, optimize=True)
        return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


def area_downsample_float(maps: np.ndarray, resolution: int) -> np.ndarray:
    c, h, w = maps.shape
    f = h // resolution
    return maps.reshape(c, resolution, f, resolution, f).mean(axis=(2, 4))
