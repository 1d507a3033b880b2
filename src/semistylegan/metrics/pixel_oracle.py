"""The second oracle: a fully connected network on raw pixels, a reader of another family than E.

Why it exists (docs/method.md ("Generator metrics")): the CNN oracle has the architecture of Semi-StyleGAN's
separate encoder E, and G is trained to satisfy E, so an image drawn to please E can please the
CNN oracle for the same wrong reason. This reader shares no code path with any encoder of the
project: no convolution (no weight sharing, no translation equivariance), its own module, its
own training loop and its own input augmentation.

Design choices (documented):
- Architecture: the flattened image (C * R * R values in [-1, 1]) -> Linear 1024 -> GELU ->
  Linear 512 -> GELU -> one linear classification head per factor (cross-entropy, unknown
  labels ignored), the same per-factor classification as the CNN oracle so that their
  readings are comparable (class j of m -> code j / (m - 1)).
- For a bright object on black (dSprites, coloured dSprites) the image is first shifted by whole
  pixels so that its brightness centroid sits at the centre; the centroid and the row and column
  brightness profiles of the unshifted image are extra inputs, and each position factor has a
  centroid head: its class position is mu = a * centroid + b + r(h) (a, b started by least
  squares on 2,048 real images, r a learned correction: a heart's centroid is off its centre by
  an amount that depends on its scale and angle), with logits -(mu - j)^2 * precision for class
  j, so it is still a softmax classifier trained with cross-entropy. Why centre: a plain MLP
  must learn each shape at every one of the 1,024 positions (measured at 32x32 after 1,000
  steps: shape 54% and scale 45% right, against the CNN's 100% and 99.6%); centred, it sees
  each shape in one place. Why centroid heads: with the centroid only as an input, hearts'
  positions were read right 46% of the time (squares and ellipses 100%). Other datasets
  (3DShapes, noisy/scream dSprites) are read uncentred.
- Augmentation, drawn per image and applied to every training batch; none of them changes
  what a factor describes (position, size, angle, shape and the hue of a surface survive
  them): Gaussian pixel noise with a standard deviation uniform in [0, 0.08] (of the [-1, 1]
  range); a contrast gain in [0.8, 1.2] and a brightness offset in [-0.1, 0.1], the same for
  every channel (a hue is unchanged by a common gain and offset); with probability 0.3 a
  3x3 binomial blur. No shifts, rotations, flips or crops: they change factors.
- Training: Adam (lr 1e-3, cosine decay), batch 128, 3000 steps by default, seeded; the same
  held-out 5% of the grid as the CNN oracle is never trained on and gives the held-out accuracy
  and confidence floor stored with the weights.
- Cache: next to the CNN oracle's files, `pixelmlp_<dataset>_r<res>_c<ch>_v<version>_t<steps>_s<seed>.pt`;
  a file whose meta does not match the dataset (name, resolution, channels, factor sizes, image
  hash) or the version is rebuilt.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from semistylegan import progress
from semistylegan.data.dataset import images_to_tensor
from semistylegan.data.factors import FactorSpace
from semistylegan.metrics.oracle import (
    TrainedReader,
    _draw_indices,
    _evaluate,
    _threads,
    cached_or_trained,
    dataset_fingerprint,
    oracle_cache_dir,
)

__all__ = [
    "PIXEL_DEFAULT_STEPS",
    "PIXEL_ORACLE_VERSION",
    "PixelMLP",
    "PixelOracle",
    "augment",
    "get_pixel_oracle",
    "pixel_oracle_path",
    "train_pixel_oracle",
]

PIXEL_ORACLE_VERSION = 3  # bump when the network, its inputs or its training change
PIXEL_DEFAULT_STEPS = 3000


def centre_on_mass(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift each image (circularly, whole pixels) so that its brightness centroid lands on the centre.

    x: (B, C, R, R) in [-1, 1], a bright object on a dark background. Returns the shifted images
    and the centroids (B, 2) (row, column) scaled to [-1, 1]. Brightness under 0.1 (of [0, 1]) is
    ignored so that faint background noise does not pull the centroid; an all-dark image is
    left in place."""
    b, _, r, _ = x.shape
    w = ((x + 1.0) * 0.5 - 0.1).clamp_min(0.0).sum(dim=1)  # (B, R, R)
    mass = w.sum(dim=(1, 2)).clamp_min(1e-6)
    grid = torch.arange(r, dtype=x.dtype)
    cy = (w.sum(dim=2) * grid).sum(dim=1) / mass
    cx = (w.sum(dim=1) * grid).sum(dim=1) / mass
    empty = w.sum(dim=(1, 2)) <= 1e-6
    cy = torch.where(empty, torch.full_like(cy, (r - 1) / 2), cy)
    cx = torch.where(empty, torch.full_like(cx, (r - 1) / 2), cx)
    sy = torch.round((r - 1) / 2 - cy).long()
    sx = torch.round((r - 1) / 2 - cx).long()
    rows = (grid.long()[None, :] - sy[:, None]) % r  # (B, R): source row of each output row
    cols = (grid.long()[None, :] - sx[:, None]) % r
    c = x.shape[1]
    x = x.gather(2, rows[:, None, :, None].expand(b, c, r, r))
    x = x.gather(3, cols[:, None, None, :].expand(b, c, r, r))
    return x, torch.stack([cy, cx], dim=1) * (2.0 / (r - 1)) - 1.0


class PixelMLP(nn.Module):
    """Fully connected reader; with `centre` the image is first centred on its brightness centroid (for a
    bright object on black: dSprites, coloured dSprites) and the position factors get centroid heads."""

    def __init__(
        self,
        resolution: int,
        channels: int,
        sizes,
        names=None,
        hidden: tuple[int, int] = (1024, 512),
        centre: bool = False,
    ):
        super().__init__()
        self.centre = bool(centre)
        names = list(names) if names is not None else [""] * len(sizes)
        # position factor -> centroid axis (0: row, 1: column); only when centring
        self.position_axis = {
            k: {"posY": 0, "posX": 1}[n] for k, n in enumerate(names) if self.centre and n in ("posX", "posY")
        }
        extra = 2 + 2 * resolution if self.centre else 0
        self.body = nn.Sequential(
            nn.Linear(channels * resolution * resolution + extra, hidden[0]),
            nn.GELU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.GELU(),
        )
        self.heads = nn.ModuleList(
            [nn.Linear(hidden[1], 1 if k in self.position_axis else int(m)) for k, m in enumerate(sizes)]
        )
        self.sizes = [int(m) for m in sizes]
        # centroid heads: class position mu = a * centroid + b + residual(h); logits -(mu - j)^2 * precision
        self.pos_affine = nn.Parameter(torch.tensor([[1.0, 0.0]] * len(sizes)))
        self.pos_precision = nn.Parameter(torch.full((len(sizes),), 1.85))  # softplus(1.85) ~ 2

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        centroid = None
        if self.centre:
            # the position stays readable from the centroid and from the row / column brightness
            # profiles of the uncentred image
            bright = (x + 1.0).mean(dim=1)  # (B, R, R) in [0, 2]
            profiles = torch.cat([bright.mean(dim=2), bright.mean(dim=1)], dim=1)
            x, centroid = centre_on_mass(x)
            h = torch.cat([x.flatten(1), 4.0 * centroid, 4.0 * profiles], dim=1)
        else:
            h = x.flatten(1)
        h = self.body(h)
        out = []
        for k, head in enumerate(self.heads):
            if k in self.position_axis:
                # the centroid of a heart is off its centre by an amount that depends on its scale and
                # angle: the residual, read off the centred image, corrects for it
                mu = self.pos_affine[k, 0] * centroid[:, self.position_axis[k]] + self.pos_affine[k, 1] + head(h)[:, 0]
                classes = torch.arange(self.sizes[k], dtype=mu.dtype)
                out.append(-((mu[:, None] - classes[None, :]) ** 2) * F.softplus(self.pos_precision[k]))
            else:
                out.append(head(h))
        return out

    @torch.no_grad()
    def fit_position_affine(self, x: torch.Tensor, classes: torch.Tensor) -> None:
        """Least-squares start of each centroid head: class ~ a * centroid + b on real images."""
        if not self.position_axis:
            return
        centroid = centre_on_mass(x)[1]
        for k, axis in self.position_axis.items():
            design = torch.stack([centroid[:, axis], torch.ones_like(centroid[:, axis])], dim=1).double()
            sol = torch.linalg.lstsq(design, classes[:, k : k + 1].double()).solution[:, 0]
            self.pos_affine[k] = sol.float()


CENTRED_DATASETS = ("dsprites", "dsprites-color", "dsprites-real", "dsprites-inpainted")


def augment(x: torch.Tensor, generator: torch.Generator, blur_probability: float = 0.3) -> torch.Tensor:
    """Factor-preserving augmentation of a batch in [-1, 1] (see the module docstring)."""
    n = x.shape[0]

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand((n, 1, 1, 1), generator=generator)

    blur = torch.rand((n,), generator=generator) < blur_probability
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :] / 16.0).expand(x.shape[1], 1, 3, 3)
        blurred = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
        x = x.clone()
        x[blur] = blurred
    x = x * uniform(0.8, 1.2) + uniform(-0.1, 0.1)
    x = x + uniform(0.0, 0.08) * torch.randn(x.shape, generator=generator)
    return x.clamp(-1.0, 1.0)


class PixelOracle(TrainedReader):
    """A trained pixel MLP with the CNN oracle's reading interface (`read`, `predict_classes`, `encode`)."""

    kind = "pixel-mlp"

    @staticmethod
    def build_net(meta: dict, space: FactorSpace) -> nn.Module:
        return PixelMLP(meta["resolution"], meta["channels"], space.sizes, space.names,
                        centre=meta.get("centre", False))

    @torch.inference_mode()
    def read(self, images, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """int64 (N, K) arg-max classes and float32 (N, K) max-softmax confidence."""
        images = np.asarray(images)
        r, c = self.meta["resolution"], self.meta["channels"]
        if images.ndim != 4 or images.shape[1:] != (c, r, r) or images.dtype != np.uint8:
            raise ValueError(
                f"pixel-oracle images must be uint8 of shape (N, {c}, {r}, {r}), got {images.dtype} {images.shape}"
            )
        k = self.factor_space.num_factors
        classes, confidence = [np.zeros((0, k), np.int64)], [np.zeros((0, k), np.float32)]
        with _threads(self.num_threads):
            for s in range(0, len(images), batch_size):
                probs = [lg.softmax(1) for lg in self.net(images_to_tensor(images[s : s + batch_size]))]
                classes.append(np.stack([p.argmax(1).numpy() for p in probs], axis=1).astype(np.int64))
                confidence.append(np.stack([p.amax(1).numpy() for p in probs], axis=1))
        return np.concatenate(classes), np.concatenate(confidence)

    def predict_classes(self, images) -> np.ndarray:
        return self.read(images)[0]

    def encode(self, images) -> np.ndarray:
        return self.factor_space.classes_to_code(self.predict_classes(images))



def pixel_oracle_path(dataset, train_steps: int = PIXEL_DEFAULT_STEPS, seed: int = 0, cache_dir=None) -> Path:
    folder = Path(cache_dir) if cache_dir is not None else oracle_cache_dir()
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(dataset.name))
    return folder / (
        f"pixelmlp_{name}_r{int(dataset.resolution)}_c{int(dataset.channels)}_v{PIXEL_ORACLE_VERSION}"
        f"_t{int(train_steps)}_s{int(seed)}.pt"
    )


def train_pixel_oracle(
    dataset,
    train_steps: int = PIXEL_DEFAULT_STEPS,
    batch_size: int = 128,
    seed: int = 0,
    lr: float = 1e-3,
    eval_samples: int = 5000,
    num_threads: int | None = 1,
    verbose: bool = False,
) -> PixelOracle:
    """Train the pixel MLP on the labelled images of `dataset` (held-out 5% excluded)."""
    if int(train_steps) < 1:
        raise ValueError(f"train_steps must be positive, got {train_steps}")
    space = dataset.factor_space
    with _threads(num_threads), torch.enable_grad():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 17)
        rs = np.random.RandomState(seed + 3)
        centre = str(dataset.name) in CENTRED_DATASETS
        candidates = None if getattr(dataset, "is_grid", False) else np.asarray(dataset.labeled_candidates())
        net = PixelMLP(int(dataset.resolution), int(dataset.channels), space.sizes, space.names, centre=centre)
        if net.position_axis:
            start_idx = _draw_indices(2048, candidates, len(dataset), rs, held_out=False)
            net.fit_position_affine(
                images_to_tensor(dataset.images(start_idx)), torch.from_numpy(np.asarray(dataset.classes(start_idx)))
            )
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        steps = int(train_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
        start = time.time()
        net.train()
        for step in progress.bar(range(steps), desc="training the pixel-MLP reader", unit="step"):
            idx = _draw_indices(int(batch_size), candidates, len(dataset), rs, held_out=False)
            x = augment(images_to_tensor(dataset.images(idx)), gen)
            y = torch.from_numpy(np.asarray(dataset.classes(idx), dtype=np.int64))
            logits = net(x)
            loss = sum(F.cross_entropy(lg, y[:, k], ignore_index=-1) for k, lg in enumerate(logits)) / len(logits)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if verbose and (step % 500 == 0 or step == steps - 1):
                print(
                    f"pixel oracle step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True
                )
        net.eval()
    meta = {
        "version": PIXEL_ORACLE_VERSION,
        "kind": PixelOracle.kind,
        "dataset": str(dataset.name),
        "resolution": int(dataset.resolution),
        "channels": int(dataset.channels),
        "factor_space": {"names": list(space.names), "sizes": list(space.sizes)},
        "train_steps": steps,
        "centre": centre,
        "batch_size": int(batch_size),
        "seed": int(seed),
        "train_seconds": float(time.time() - start),
        "fingerprint": dataset_fingerprint(dataset),
    }
    oracle = PixelOracle(net, space, meta)
    # the CNN oracle's held-out draw (same seed offset), so the two accuracies are on the same images
    eval_idx = _draw_indices(
        int(eval_samples), candidates, len(dataset), np.random.RandomState(seed + 1), held_out=True
    )
    oracle.meta.update(_evaluate(oracle, dataset, eval_idx))
    return oracle


def get_pixel_oracle(
    dataset,
    train_steps: int = PIXEL_DEFAULT_STEPS,
    seed: int = 0,
    cache_dir=None,
    cache: bool = True,
    verbose: bool = False,
    **train_options,
) -> PixelOracle:
    """Load the cached pixel oracle of `dataset` or train it (and cache it atomically)."""
    path = pixel_oracle_path(dataset, train_steps, seed, cache_dir)
    return cached_or_trained(path, PixelOracle.from_state, PIXEL_ORACLE_VERSION, dataset, train_steps, seed, cache,
                             verbose, lambda: train_pixel_oracle(dataset, train_steps=train_steps, seed=seed,
                                                                 verbose=verbose, **train_options),
                             what="pixel oracle")
