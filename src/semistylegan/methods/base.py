"""What a method supplies to the training loop, and what the loop gives a method each step.

Methods are data, not forks of the loop: a `Method` builds its networks and optimisers, runs
its loss phases in `train_step`, and says how to encode images and generate from codes.
`train.py` owns the data, EMA, logging, snapshots, resume and distribution. What a method can
do (identified codes, a conditional generator, labels, the factors it traverses, the config
fields it reads) is said once, by the attributes of its class; config, study, train and
evaluate read them there.

Randomness: every random draw of a step comes from `ctx.rng`, a numpy Generator whose state is
saved in snapshots (exact resume). All ranks hold the same stream and draw the *global* batch,
then keep their contiguous slice (`ctx.local`), so N processes reproduce one process.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn as nn

from semistylegan import dist

__all__ = ["Batch", "StepContext", "Method", "l2_norm_loss", "set_requires_grad"]


@dataclass
class Batch:
    """This rank's slice of one step's data."""

    real: torch.Tensor | None             # (B, C, H, W) in [-1, 1], real images (unlabelled use;
                                          # None when the step reads none, Method.step_plan)
    labeled: torch.Tensor | None          # (L, C, H, W) labelled real images (None when eta = 0)
    labeled_codes: torch.Tensor | None    # (L, K) their codes in [0, 1] (0 where unknown)
    labeled_mask: torch.Tensor | None     # (L, K) bool, which factors are known
    global_batch: int                     # the global sizes, for drawing the global random stream
    global_labeled_batch: int


class StepPlan(NamedTuple):
    """What one training step reads and how many images it counts towards kimg (global sizes)."""

    real: int      # real images drawn for the step (0: none)
    labeled: int   # labelled images drawn for it (0: none)
    nimg: int      # images the step adds to the run's image count


class StepContext:
    """What the loop gives a method for one step: the random stream, the device, the optimisers,
    the precision, and `stats`, where the step reports what it logs. Stats stay tensors on the
    device (the loop reads them once per log interval, not once per value per step)."""

    def __init__(self, rng: np.random.Generator, device: torch.device, optimizers: dict, step: int,
                 channels_last: bool = False, autocast_dtype: torch.dtype | None = None,
                 scalers: dict | None = None):
        self.rng = rng
        self.device = device
        self.optimizers = optimizers
        self.step = step
        # The autocast dtype the loop chose for the device (pipeline.mixed_precision; None = fp32)
        # and, for float16, a GradScaler per optimiser.
        self.autocast_dtype = autocast_dtype
        self.scalers = scalers or {}
        self.channels_last = channels_last
        # On a CPU reading a value costs nothing; on an accelerator it waits for the whole queue.
        self.host_reads_are_free = device.type == "cpu"
        self.stats: dict[str, torch.Tensor | float] = {}

    # random draws: global batch, then this rank's slice ----------------------------------
    def local(self, array: np.ndarray) -> torch.Tensor:
        part = array[dist.local_slice(array.shape[0])]
        t = torch.from_numpy(np.ascontiguousarray(part)).to(self.device)
        return t.float() if t.is_floating_point() else t

    def randn(self, n: int, *shape: int) -> torch.Tensor:
        return self.local(self.rng.standard_normal((n, *shape), dtype=np.float32))

    def beta(self, n: int, a: float) -> torch.Tensor:
        return self.local(self.rng.beta(a, a, size=n).astype(np.float32))

    def integers(self, n: int, highs) -> np.ndarray:
        """Global (n, len(highs)) integer draws, one column per high (not sliced)."""
        highs = np.asarray(highs, dtype=np.int64)
        return self.rng.integers(0, highs, size=(n, len(highs)))

    # optimisation ------------------------------------------------------------------------
    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def image(self, x: torch.Tensor) -> torch.Tensor:
        # `.to(memory_format=...)`, not `.contiguous(...)`: a 1-channel image is contiguous in both
        # formats, and `.contiguous` keeps its NCHW strides, from which the convolutions pick NCHW
        # and the first layers of D then mix both formats (slow; BENCHMARKS.md section 2).
        return x.to(memory_format=torch.channels_last) if self.channels_last else x

    def optimizer_step(self, name: str, loss: torch.Tensor, params: list[torch.Tensor]):
        """Backward, average gradients over ranks, step and clear the gradients. Non-finite
        gradient values are zeroed for this step and counted (stat `<name>/nonfinite_grads`);
        the loop stops the run when they persist (train.NONFINITE_PATIENCE steps in a row, checked
        from each step's count when the loop reads the stats). With float16 autocast a GradScaler
        scales the loss instead; it skips the steps whose gradients overflowed and lowers its scale."""
        opt = self.optimizers[name]
        scaler = self.scalers.get(name)
        for p in params:
            p.grad = None
        (scaler.scale(loss) if scaler is not None else loss).backward()
        dist.all_reduce_grads(params)
        grads = [p.grad for p in params if p.grad is not None]
        if scaler is not None:
            scaler.step(opt)  # unscales; an overflow (expected while the scale settles) skips the step
            scaler.update()
        else:
            if grads:
                self.stats[f"{name}/nonfinite_grads"] = self._zero_nonfinite(grads)
            opt.step()
        for p in params:
            p.grad = None

    def _zero_nonfinite(self, grads: list[torch.Tensor]) -> torch.Tensor | float:
        """Zero the non-finite gradient values; their count (a device tensor, or a number on a CPU)."""
        if self.host_reads_are_free:
            # One fused reduction per step; the values are only counted and zeroed when some norm
            # is not finite (zeroing finite values would change nothing).
            bad = 0
            if not bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all()):
                bad = int(sum((~torch.isfinite(g)).sum() for g in grads))
                for g in grads:
                    torch.nan_to_num_(g, nan=0.0, posinf=0.0, neginf=0.0)
            return float(bad)
        # On an accelerator, no host read: count and zero on the device every step, over one flat
        # copy of the gradients (a handful of kernels, not a few per parameter tensor); the loop
        # reads the count with the other stats.
        flat = torch.cat([g.reshape(-1) for g in grads])
        bad = (~torch.isfinite(flat)).sum().float()
        flat.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        torch._foreach_copy_(grads, [f.view(g.shape) for f, g in zip(flat.split([g.numel() for g in grads]), grads)])
        return bad

    def report(self, name: str, value):
        """Log `value` (a tensor stays on its device; the loop reads it at the log interval)."""
        self.stats[name] = value.detach() if torch.is_tensor(value) else float(value)

    def values(self) -> dict[str, float]:
        """The stats as numbers (reads the device: for tests and tools, not the training loop)."""
        return {k: float(v) for k, v in self.stats.items()}


def set_requires_grad(module: nn.Module, flag: bool):
    for p in module.parameters():
        p.requires_grad_(flag)


def l2_norm_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the batch of the plain (not squared) L2 norm ||pred - target||_2 (the paper).

    With a mask, only the known factors of each sample count. The epsilon keeps the
    gradient finite at a perfect prediction.
    """
    diff = (pred.float() - target.float()).square()
    if mask is not None:
        diff = diff * mask.float()
    return (diff.sum(dim=1) + 1e-8).sqrt().mean()


class Method:
    """Interface. Subclasses: semistylegan.SemiStyleGAN, baselines in sibling modules."""

    name: str = "method"
    display_name: str = "method"           # the name in tables and plots
    ema_networks: tuple[str, ...] = ()     # networks that get an EMA copy (used for generation)
    has_generator: bool = True
    has_encoder: bool = True
    uses_labels: bool = True               # learns from the labelled set J (eta applies; eta > 0 needed)
    identified_codes: bool = False         # E's codes are the factor codes (L2 applies)
    conditional_generator: bool = False    # G takes the factor codes (MIG-gen, L2-gen, factor traversals)
    prior_samples: bool = False            # G samples images from its prior (realism metrics apply)
    coarse_input: bool = False             # G starts from a real image's downsample (fine-grained edits)
    fields: tuple[str, ...] = ()           # the method-specific config fields it reads (config.opt(method=True))

    def __init__(self, cfg, dataset_info: dict):
        self.cfg = cfg
        self.dataset_info = dataset_info
        self.num_factors = len(dataset_info["factors"]["sizes"])
        self.factor_sizes = np.asarray(dataset_info["factors"]["sizes"], dtype=np.int64)

    def traversed_factors(self) -> list[int]:
        """The factors a traversal grid sweeps, one row each (all of them by default)."""
        return list(range(self.num_factors))

    def build_networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def build_optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def step_plan(self, step: int) -> StepPlan:
        """What step `step` reads: by default a batch of reals and, for a method that learns from
        labels, a labelled batch; the step counts its batch of reals. The loop draws only these."""
        cfg = self.cfg
        return StepPlan(cfg.batch, cfg.labeled_batch if self.uses_labels else 0, cfg.batch)

    def train_step(self, ctx: StepContext, nets: dict[str, nn.Module], batch: Batch) -> None:
        raise NotImplementedError

    # evaluation interfaces (images in [-1, 1]) ------------------------------------------
    def encode(self, nets: dict[str, nn.Module], images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generate(self, nets: dict[str, nn.Module], codes: torch.Tensor, z: torch.Tensor,
                 truncation_psi: float = 1.0) -> torch.Tensor:
        raise NotImplementedError

    @property
    def z_dim(self) -> int:
        return int(self.cfg.z_dim)

    def sample_prior_codes(self, classes: np.ndarray) -> np.ndarray:
        """Factor classes -> codes in [0, 1] (class j of m -> j / (m - 1))."""
        denom = np.maximum(self.factor_sizes - 1, 1).astype(np.float32)
        return classes.astype(np.float32) / denom


Factory = Callable[..., Method]
