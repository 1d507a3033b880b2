"""Glue between trained runs and the metrics: load a run, wrap its encoder and generator as
the array-in, array-out callables that `semistylegan.metrics` takes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from semistylegan.checkpoint import latest_snapshot, load_snapshot
from semistylegan.config import TrainConfig
from semistylegan.data import make_dataset
from semistylegan.data.dataset import ImageDataset, images_to_tensor, tensor_to_images
from semistylegan.errors import UserError
from semistylegan.methods import Method, build_method

__all__ = ["LoadedRun", "load_run", "encoder_fn", "generator_fn", "quick_encoder_metrics"]


@dataclass
class LoadedRun:
    cfg: TrainConfig
    method: Method
    nets: dict            # evaluation networks (EMA copies where the method keeps them)
    dataset_info: dict
    snapshot: Path
    kimg: float
    device: torch.device

    def dataset(self) -> ImageDataset:
        return make_dataset(self.cfg.dataset, self.cfg.resolution, self.cfg.data_path, **self.cfg.data_options)


def load_run(run_dir_or_snapshot: str | Path, device: str | torch.device = "cpu",
             overrides: dict | None = None) -> LoadedRun:
    """The newest snapshot of a run directory (or a given snapshot file), ready for evaluation.
    `overrides`: config fields to replace before the networks are built (for runs made by a
    bench script that changed the networks outside the config)."""
    path = Path(run_dir_or_snapshot)
    snap_path = path if path.is_file() else latest_snapshot(path)
    snap = load_snapshot(snap_path)
    cfg = TrainConfig.from_dict({**snap["config"], **(overrides or {})})
    method = build_method(cfg, snap["dataset"])
    nets = method.build_networks()
    try:
        for name, net in nets.items():
            state = snap["ema"].get(name, snap["networks"][name])
            net.load_state_dict(state)
    except (KeyError, RuntimeError) as e:
        raise UserError(f"{snap_path}: networks do not match the snapshot's config "
                        f"({str(e).splitlines()[0][:120]})") from None
    device = torch.device(device)
    nets = {k: v.to(device).eval().requires_grad_(False) for k, v in nets.items()}
    return LoadedRun(cfg, method, nets, snap["dataset"], snap_path, snap["state"]["cur_nimg"] / 1000, device)


def encoder_fn(method: Method, nets: dict, device: torch.device, batch_size: int = 256):
    """uint8 (N, C, H, W) images -> float64 (N, K) codes, batch-independent, no gradients."""

    @torch.no_grad()
    def encode(images: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = images_to_tensor(images[i:i + batch_size], device)
            out.append(method.encode(nets, x).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, method.num_factors))

    return encode


def generator_fn(method: Method, nets: dict, device: torch.device, batch_size: int = 256,
                 truncation_psi: float = 1.0):
    """(codes float (N, K), seed) -> uint8 (N, C, H, W) images; z ~ N(0, I) from the seed."""

    @torch.no_grad()
    def generate(codes: np.ndarray, seed: int = 0) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.float32)
        z = np.random.RandomState(seed).standard_normal((len(codes), method.z_dim)).astype(np.float32)
        out = []
        for i in range(0, len(codes), batch_size):
            c = torch.from_numpy(codes[i:i + batch_size]).to(device)
            zz = torch.from_numpy(z[i:i + batch_size]).to(device)
            out.append(tensor_to_images(method.generate(nets, c, zz, truncation_psi)))
        return np.concatenate(out)

    return generate


def quick_encoder_metrics(method: Method, nets: dict, dataset: ImageDataset, num_samples: int,
                          device: torch.device, seed: int = 0) -> dict:
    """Encoder MIG and L2 on `num_samples` random real images (fresh draws, seeded)."""
    from semistylegan import metrics

    rs = np.random.RandomState(seed)
    idx = rs.randint(len(dataset), size=num_samples)
    was_training = {k: n.training for k, n in nets.items()}
    for n in nets.values():
        n.eval()
    try:
        codes = encoder_fn(method, nets, device)(dataset.images(idx))
    finally:
        for k, n in nets.items():
            n.train(was_training[k])
    classes = dataset.classes(idx)
    true = dataset.codes(idx)
    # Semi-StyleGAN-fine predicts only its fine factors (NaN in the other columns).
    if codes.shape[1] == classes.shape[1]:
        finite = np.isfinite(codes).all(axis=0)
        codes, classes, true = codes[:, finite], classes[:, finite], true[:, finite]
    out = {}
    known = (classes >= 0).all(axis=1)
    if known.sum() > 1:
        try:
            out.update({"mig": float(metrics.mig(codes[known], classes[known])["discrete_mig"])})
        except ValueError as e:  # e.g. a collapsed code early in training
            out["mig_error"] = str(e)
    # L2 compares code k with factor k: only for codes identified with the factors.
    if codes.shape[1] == true.shape[1] and method.identified_codes:
        mask = ~np.isnan(true)
        err = np.where(mask, codes - np.nan_to_num(true), 0.0)
        out["l2"] = float(np.sqrt((err**2).sum(axis=1)).mean())
    return out


# --- Semi-StyleGAN-fine: edits of real images read by the oracle (apart from the metrics above) ---

def fine_edit_report(run: LoadedRun, n: int, seed: int = 0, oracle_steps: int | None = None, examples: int = 8):
    """(report, picture) of a semi-fine run: `fine_edit_metrics` on `n` held-out images under
    "fine_edits", the oracle's held-out quality under "oracle", and the picture of
    `fine_edit_examples` on the first `examples` of those images."""
    from semistylegan.metrics.fine_edits import fine_edit_examples, fine_edit_metrics, held_out_indices
    from semistylegan.metrics.oracle import get_oracle

    dataset = run.dataset()
    if not dataset.is_grid:
        raise UserError(f"evaluate: edits of a semi-fine run are scored on a full factor grid; {dataset.name} has none")
    oracle = get_oracle(dataset, **({"train_steps": oracle_steps} if oracle_steps else {}))
    with torch.no_grad():
        report = {"fine_edits": fine_edit_metrics(run.method, run.nets, dataset, oracle, n, seed, run.device),
                  "oracle": {k: v for k, v in oracle.info.items() if k != "factor_space"}}
        images = dataset.images(held_out_indices(run.method, dataset, min(examples, n), seed))
        picture = fine_edit_examples(run.method, run.nets, images, device=run.device)
    report["fine_edits"]["seed"] = int(seed)
    return report, picture
