"""Shared set-up of the baseline tests: one real 16x16 batch and a step context."""
import numpy as np
import torch

from semistylegan.config import make_config
from semistylegan.data import make_dataset
from semistylegan.data.dataset import images_to_tensor
from semistylegan.methods import Batch, StepContext, build_method


def setup(method: str, preset: str = "tiny", batch: int = 16, **overrides):
    cfg = make_config(preset, method=method, resolution=16, batch=batch, labeled_batch=batch, **overrides)
    ds = make_dataset("dsprites", 16)
    m = build_method(cfg, ds.info())
    torch.manual_seed(0)
    nets = m.build_networks()
    opts = m.build_optimizers(nets)
    rs = np.random.RandomState(0)
    idx = rs.randint(len(ds), size=batch)
    lidx = rs.randint(len(ds), size=batch)
    codes = torch.from_numpy(ds.codes(lidx))
    b = Batch(images_to_tensor(ds.images(idx)), images_to_tensor(ds.images(lidx)), codes,
              torch.ones_like(codes, dtype=torch.bool), batch, batch)
    ctx = StepContext(np.random.default_rng(0), torch.device("cpu"), opts, step=0)
    return cfg, m, nets, b, ctx


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: torch.nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p.detach(), q) for p, q in zip(module.parameters(), before))


def all_finite(stats: dict) -> bool:
    return bool(stats) and all(np.isfinite(float(v)) for v in stats.values())  # tensors or numbers
