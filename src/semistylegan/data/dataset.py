"""Datasets of images with ground-truth factors, and the labelled subset J.

Conventions used everywhere in the package:
- images are uint8 numpy arrays of shape (N, C, H, W), values 0..255;
- `classes` are int64 (N, K) factor classes, -1 where a factor is unknown for that image;
- `codes` are float32 (N, K) in [0, 1] (docs/method.md: c), NaN where unknown.

`GroundTruthDataset` is the full-grid case (dSprites, 3DShapes, MPI3D, ...): every factor
combination has exactly one image and can be asked for by its classes, which is what the
sampled metrics (FactorVAE, BetaVAE score) need. `ImageDataset` is the general case (CelebA,
a folder with a partial label CSV).
"""
from __future__ import annotations

import numpy as np
import torch

from semistylegan.data.factors import FactorSpace

__all__ = ["ImageDataset", "GroundTruthDataset", "LabeledSubset", "images_to_tensor", "tensor_to_images"]


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 tensor in [-1, 1]."""
    return uint8_to_float(torch.from_numpy(np.ascontiguousarray(images)).to(device=device))


def uint8_to_float(t: torch.Tensor) -> torch.Tensor:
    """uint8 image tensor (0..255) -> float32 in [-1, 1], on the tensor's device."""
    return t.to(torch.float32).div_(127.5).sub_(1.0)


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float tensor in [-1, 1] (N, C, H, W) -> uint8 (N, C, H, W)."""
    return ((x.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy()


class ImageDataset:
    """Images with (possibly partial) factor labels. Subclasses implement `images` and `classes`."""

    name: str = "dataset"
    factor_space: FactorSpace
    resolution: int
    channels: int
    is_grid: bool = False

    def __len__(self) -> int:
        raise NotImplementedError

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 (N, C, H, W) images for the given dataset indices."""
        raise NotImplementedError

    def classes(self, indices: np.ndarray) -> np.ndarray:
        """int64 (N, K) factor classes; -1 where unknown."""
        raise NotImplementedError

    def codes(self, indices: np.ndarray) -> np.ndarray:
        """float32 (N, K) normalised codes in [0, 1]; NaN where unknown."""
        cls = self.classes(indices)
        known = cls >= 0
        denom = np.maximum(np.asarray(self.factor_space.sizes, dtype=np.float64) - 1.0, 1.0)
        out = np.where(known, cls / denom, np.nan)
        return out.astype(np.float32)

    def labeled_candidates(self) -> np.ndarray:
        """Indices of the images that have at least one known factor (all, for a full grid)."""
        return np.arange(len(self), dtype=np.int64)

    def info(self) -> dict:
        return {
            "name": self.name,
            "resolution": int(self.resolution),
            "channels": int(self.channels),
            "num_images": int(len(self)),
            "factors": self.factor_space.to_dict(),
        }


class GroundTruthDataset(ImageDataset):
    """A full factor grid: index i <-> factor classes via the FactorSpace (row-major)."""

    is_grid = True

    def __len__(self) -> int:
        return self.factor_space.num_combinations

    def images_from_classes(self, classes: np.ndarray, random_state: np.random.RandomState | None = None) -> np.ndarray:
        raise NotImplementedError

    def images(self, indices: np.ndarray) -> np.ndarray:
        return self.images_from_classes(self.factor_space.index_to_classes(indices))

    def classes(self, indices: np.ndarray) -> np.ndarray:
        return self.factor_space.index_to_classes(indices)

    # disentanglement_lib's GroundTruthData interface, used by the sampled metrics -------------
    @property
    def num_factors(self) -> int:
        return self.factor_space.num_factors

    @property
    def factors_num_values(self) -> list[int]:
        return list(self.factor_space.sizes)

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.factor_space.sample_classes(num, random_state)

    def sample_observations_from_factors(self, factors: np.ndarray, random_state: np.random.RandomState) -> np.ndarray:
        return self.images_from_classes(np.asarray(factors, dtype=np.int64), random_state)

    def sample(self, num: int, random_state: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        return self.sample(num, random_state)[1]


class LabeledSubset:
    """The labelled set J: a seeded random fraction eta of the images whose codes training may see.

    eta = 1 labels every candidate (fully supervised); eta = 0 labels none (Info-StyleGAN).
    At least one image is labelled whenever eta > 0. For datasets with partial labels (a
    folder with a CSV, CelebA) the fraction is taken of the images that carry labels.
    """

    def __init__(self, dataset: ImageDataset, fraction: float, seed: int = 0):
        if not (0.0 <= float(fraction) <= 1.0) or np.isnan(fraction):
            raise ValueError(f"labelled fraction must be in [0, 1], got {fraction}")
        self.fraction = float(fraction)
        self.seed = int(seed)
        candidates = dataset.labeled_candidates()
        count = int(round(self.fraction * len(candidates)))
        if self.fraction > 0:
            count = max(count, 1)
        if count >= len(candidates):
            chosen = candidates
        else:
            # A dedicated stream so the subset depends only on (seed, dataset size, eta).
            rs = np.random.RandomState(self.seed)
            chosen = candidates[rs.choice(len(candidates), size=count, replace=False)]
        self.indices = np.sort(np.asarray(chosen, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.indices)

    def sample(self, n: int, generator: torch.Generator) -> np.ndarray:
        """n labelled indices drawn uniformly with replacement using a torch Generator."""
        if len(self.indices) == 0:
            raise ValueError("the labelled subset is empty (labelled fraction 0)")
        pos = torch.randint(len(self.indices), (n,), generator=generator).numpy()
        return self.indices[pos]

    def fingerprint(self) -> str:
        """A short hash of the chosen indices, stored in checkpoints to check a resume."""
        import hashlib

        return hashlib.sha1(self.indices.tobytes()).hexdigest()[:16]
