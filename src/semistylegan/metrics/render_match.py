"""The ground-truth renderer as a reader: pixel distance to the asked code, exact nearest real image.

For a grid the project renders itself (procedural dSprites, procedural 3DShapes) the real image
of every code is known exactly, so a generated image x asked for code c can be judged without
any learned model:
- render distance: the mean squared pixel error (values in [0, 1]) between x and the real image
  of c;
- exact match: x's nearest real image over the whole grid (squared L2 on the uint8 pixels) is
  the image of c; ties (codes whose images are identical, e.g. a dSprites square at orientation
  classes 0, 10, 29 and 39 at 32x32) count as a match when c is among the nearest;
- the nearest real image's code, a reading with no model in it (MIG-gen "renderer").

The nearest-image search is exact, without rendering the grid (737,280 images for dSprites).
A dSprites image is a binary 32x32 template of (shape, scale, orientation) pasted into a 64x64
canvas at an integer offset and area-downsampled by f = 64 / resolution; the downsampled image is
therefore a small kernel (one per template and offset phase mod f) placed at the offset // f,
zeros elsewhere. For v = x - r, the orthogonal projection onto the matrices that are a row
constant plus a column constant gives the lower bound
    ||v||^2 >= ||rowsums(v)||^2 / W + ||colsums(v)||^2 / H - sum(v)^2 / (H W),
whose three terms depend on (template, x phase, posY), (template, y phase, posX) and
(template, phases) only, so it is evaluated for all 737,280 codes with a few small matrix
products. Every code whose bound is at most the exact distance to the asked code's image is
then measured exactly (integer arithmetic on the kernel window), in increasing order of the
bound, stopping when the bound exceeds the best distance found; the asked code's bound is at
most its distance, so the smallest exact distance found is the global minimum. The tests compare it with
a brute-force search over every rendered image of a small grid.

3DShapes: the render distance only; its exact search is not implemented (docs/method.md ("Generator metrics")).
"""

from __future__ import annotations

import numpy as np

__all__ = ["DSpritesGridSearch", "ground_truth_renderer", "render_distance"]


def _slack(d2: int) -> float:
    """A squared distance plus room for rounding in the float bound (distances are integers)."""
    return d2 + 1.0 + 1e-9 * d2


def render_distance(images: np.ndarray, real: np.ndarray) -> np.ndarray:
    """float64 (N,) mean squared pixel error in [0, 1] units between two uint8 image batches."""
    a = np.asarray(images, dtype=np.int64)
    b = np.asarray(real, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    return ((a - b) ** 2).reshape(len(a), -1).mean(axis=1) / 255.0**2


def ground_truth_renderer(dataset):
    """(renderer kind, exact search or None) for a dataset the project renders, else (None, None)."""
    from semistylegan.data.dsprites import ProceduralDSprites
    from semistylegan.data.shapes3d import ProceduralShapes3D

    if type(dataset) is ProceduralDSprites:
        return "procedural dSprites", DSpritesGridSearch(dataset)
    if type(dataset) is ProceduralShapes3D:
        return "procedural 3DShapes", None
    return None, None


class DSpritesGridSearch:
    """Exact nearest real image over the procedural dSprites grid at the dataset's resolution."""

    def __init__(self, dataset, template_subset=None):
        """template_subset: optional flat (shape, scale, orientation) indices to restrict the grid to (tests)."""
        from semistylegan.data.dsprites import (
            TEMPLATE,
            area_downsample,
            render_templates,
        )

        self.dataset = dataset
        self.space = dataset.factor_space
        res = int(dataset.resolution)
        f = 64 // res
        self.res, self.f = res, f
        templates = render_templates().reshape(-1, TEMPLATE, TEMPLATE).astype(np.uint8) * 255  # (720, 32, 32)
        self.num_templates = len(templates)
        side = -(-(TEMPLATE + f - 1) // f) * f  # canvas holding a template at any phase, a multiple of f
        self.ks = side // f
        kernels = np.zeros((f, f, self.num_templates, self.ks, self.ks), dtype=np.int64)
        for py in range(f):
            for px in range(f):
                canvas = np.zeros((self.num_templates, 1, side, side), dtype=np.uint8)
                canvas[:, 0, py : py + TEMPLATE, px : px + TEMPLATE] = templates
                kernels[py, px] = area_downsample(canvas, self.ks)[:, 0]
        self.kernels = kernels
        self.kernels32 = kernels.astype(np.int32)
        self.allowed = np.ones(self.num_templates, dtype=bool)
        if template_subset is not None:
            self.allowed[:] = False
            self.allowed[np.asarray(template_subset, dtype=np.int64)] = True
        # offsets of the dSprites position classes in the 64x64 canvas (as ProceduralDSprites places them)
        offset = np.rint(32.0 * np.arange(32) / 31.0).astype(np.int64)
        self.phase, self.cell = offset % f, offset // f
        rows = kernels.sum(axis=4)  # (fy, fx, T, ks): row sums of each kernel
        cols = kernels.sum(axis=3)  # (fy, fx, T, ks): column sums
        self.kernel_total = kernels.sum(axis=(3, 4))  # (fy, fx, T)
        self.kernel_energy = (kernels**2).sum(axis=(3, 4))  # (fy, fx, T)
        # Full-image row profile of template t at posY class j, for each x phase: (fx, T, 32 posY, res rows)
        self.row_profile = np.zeros((f, self.num_templates, 32, res + self.ks), dtype=np.int64)
        self.col_profile = np.zeros((f, self.num_templates, 32, res + self.ks), dtype=np.int64)
        for j in range(32):
            cy = self.cell[j]
            self.row_profile[:, :, j, cy : cy + self.ks] = rows[self.phase[j]]  # phase of posY j; all x phases
            self.col_profile[:, :, j, cy : cy + self.ks] = cols[:, self.phase[j]]  # phase of posX j; all y phases
        if (self.row_profile[..., res:] != 0).any() or (self.col_profile[..., res:] != 0).any():
            raise AssertionError("a dSprites template leaves the image")  # the canvas is 64 = 32 + max offset
        # flattened for matrix products: |a - p|^2 = |a|^2 - 2 a.p + |p|^2
        self.row_profile = self.row_profile[..., :res].reshape(-1, res).astype(np.float64)  # (fx * T * 32, res)
        self.col_profile = self.col_profile[..., :res].reshape(-1, res).astype(np.float64)  # (fy * T * 32, res)
        self.row_energy = (self.row_profile**2).sum(axis=1)
        self.col_energy = (self.col_profile**2).sum(axis=1)

    # ---------------------------------------------------------------------------------------
    def _split(self, classes: np.ndarray):
        """classes (N, 5) -> template index, posX class, posY class."""
        t = (classes[:, 0] * 6 + classes[:, 1]) * 40 + classes[:, 2]
        return t, classes[:, 3], classes[:, 4]

    def exact_distances(self, image: np.ndarray, t: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """int64 squared L2 (uint8 units) between one (res, res) image and the codes (t, posX, posY)."""
        x = np.zeros((self.res + self.ks, self.res + self.ks), dtype=np.int32)  # sums < 2^31: 289 * 255^2
        x[: self.res, : self.res] = image
        ar = np.arange(self.ks)
        rows = self.cell[py][:, None] + ar[None]
        cols = self.cell[px][:, None] + ar[None]
        window = x[rows[:, :, None], cols[:, None, :]]  # (S, ks, ks)
        kern = self.kernels32[self.phase[py], self.phase[px], t]
        dot = np.einsum("sij,sij->s", window, kern).astype(np.int64)
        return int((x.astype(np.int64) ** 2).sum()) - 2 * dot + self.kernel_energy[self.phase[py], self.phase[px], t]

    def nearest(self, images: np.ndarray, asked: np.ndarray, budget: int = 50000) -> dict:
        """Exact nearest real image of each image (N, 1, res, res) given the asked classes (N, 5).

        Returns int64 "asked_d2" (squared distance to the asked code's image), "nearest_d2",
        "nearest_classes" (the asked classes where they are among the nearest, else the lowest
        flat index among the nearest), "match" (bool), "candidates" (codes measured exactly),
        "finished" (the search ended within `budget` measured codes: everything above is exact)
        and "determined" (finished, or a code closer than the asked one was found, so "match" is
        exact). An unfinished search (noise-like images, whose bound prunes little) reports the
        nearest code found so far."""
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (1, self.res, self.res) or images.dtype != np.uint8:
            raise ValueError(
                f"grid search needs uint8 images (N, 1, {self.res}, {self.res}), got {images.dtype} {images.shape}"
            )
        asked = self.space._check_classes(asked)
        n, res = len(images), self.res
        out = {k: np.zeros(n, dtype=np.int64) for k in ("asked_d2", "nearest_d2", "candidates")}
        out["nearest_classes"] = np.zeros((n, 5), dtype=np.int64)
        out["match"] = np.zeros(n, dtype=bool)
        out["finished"] = np.zeros(n, dtype=bool)
        out["determined"] = np.zeros(n, dtype=bool)
        t_ask, px_ask, py_ask = self._split(asked)
        f, nt = self.f, self.num_templates
        x_all = images[:, 0].astype(np.int64)
        xr, xc = (
            x_all.sum(axis=2).astype(np.float64),
            x_all.sum(axis=1).astype(np.float64),
        )  # (N, res) row / column sums
        xt = x_all.sum(axis=(1, 2)).astype(np.float64)
        in_phase = [self.phase == p for p in range(f)]  # position classes of each offset phase
        for s0 in range(0, n, 64):
            sl = slice(s0, min(s0 + 64, n))
            # the three projection terms of the lower bound for every code, for a chunk of images
            row = ((xr[sl] ** 2).sum(1)[:, None] - 2.0 * xr[sl] @ self.row_profile.T + self.row_energy) / res
            col = ((xc[sl] ** 2).sum(1)[:, None] - 2.0 * xc[sl] @ self.col_profile.T + self.col_energy) / res
            row = row.reshape(-1, f, nt, 32)  # (B, x phase, T, posY)
            col = col.reshape(-1, f, nt, 32)  # (B, y phase, T, posX)
            tot = (xt[sl, None, None, None] - self.kernel_total[None]) ** 2 / (res * res)  # (B, y phase, x phase, T)
            # The bound is a row term (posY) plus a column term (posX): its minimum over the positions of
            # one (template, y phase, x phase) is the sum of the two minima, a bound for the whole template.
            row_min = np.stack(
                [row[..., in_phase[p]].min(axis=3) for p in range(f)], axis=1
            )  # (B, y phase, x phase, T)
            col_min = np.stack(
                [col[..., in_phase[p]].min(axis=3) for p in range(f)], axis=2
            )  # (B, y phase, x phase, T)
            template_bound = row_min + col_min - tot
            template_bound[..., ~self.allowed] = np.inf
            for b in range(row.shape[0]):
                i = s0 + b
                x = x_all[i]
                ub = int(self.exact_distances(x, t_ask[i : i + 1], px_ask[i : i + 1], py_ask[i : i + 1])[0])
                # templates (with their offset phases) in increasing order of their bound; stop once the
                # bound passes the best distance found, or when the budget of measured codes is spent
                fy_s, fx_s, t_s = np.nonzero(template_bound[b] <= _slack(ub))
                order = np.argsort(template_bound[b][fy_s, fx_s, t_s], kind="stable")
                fy_s, fx_s, t_s = fy_s[order], fx_s[order], t_s[order]
                lower_t = template_bound[b][fy_s, fx_s, t_s]
                best, measured, finished = ub, 0, True
                found_t, found_x, found_y, found_d = [], [], [], []
                for c0 in range(0, len(t_s), 32):
                    if lower_t[c0] > _slack(best):
                        break
                    if measured >= budget:
                        finished = False
                        break
                    fy, fx, t = fy_s[c0 : c0 + 32], fx_s[c0 : c0 + 32], t_s[c0 : c0 + 32]
                    # expand to positions of the matching phases: (S, posX, posY)
                    bound = row[b, fx, t][:, None, :] + col[b, fy, t][:, :, None] - tot[b, fy, fx, t][:, None, None]
                    bound[self.phase[None, :] != fx[:, None]] = np.inf  # posX of another phase
                    bound.transpose(0, 2, 1)[self.phase[None, :] != fy[:, None]] = np.inf  # posY of another phase
                    k, px, py = np.nonzero(bound <= _slack(best))
                    if len(k):
                        d2 = self.exact_distances(x, t[k], px, py)
                        measured += len(k)
                        found_t.append(t[k]), found_x.append(px), found_y.append(py), found_d.append(d2)
                        best = min(best, int(d2.min()))
                out["asked_d2"][i], out["nearest_d2"][i], out["candidates"][i] = ub, best, measured
                out["finished"][i] = finished
                # the asked code is the nearest iff nothing closer exists; an unfinished search that found
                # something closer has settled that it is not
                out["match"][i] = ub == best
                out["determined"][i] = finished or best < ub
                if ub == best:
                    out["nearest_classes"][i] = asked[i]
                else:
                    t, px, py, d2 = (np.concatenate(a) for a in (found_t, found_x, found_y, found_d))
                    j = np.flatnonzero(d2 == best)
                    tt, xx, yy = t[j], px[j], py[j]
                    first = np.argmin((tt * 32 + xx) * 32 + yy)  # lowest flat index (posY fastest)
                    s, rest = divmod(int(tt[first]), 240)
                    out["nearest_classes"][i] = (s, rest // 40, rest % 40, int(xx[first]), int(yy[first]))
        return out
