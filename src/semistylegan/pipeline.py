"""What runs around the training step so that a GPU is never kept waiting by the host: the next
batch prepared in a background thread, the logged statistics kept on the device until the log
interval, and the numeric precision and backend settings chosen per device.

On a CPU the same code runs with the same values: the thread loads what the step would have
loaded, in the same order, and the statistics are the same numbers read later.
"""
from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from semistylegan import dist
from semistylegan.data.dataset import images_to_tensor, uint8_to_float

__all__ = ["mixed_precision", "configure_backend", "compile_forward", "eager_forward", "HostBatch", "BatchPrefetcher",
           "StatsWindow"]


# precision -------------------------------------------------------------------------------
def mixed_precision(device_type: str, enabled: bool, bf16_supported: bool) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, whether a gradient scaler is needed) for a device.

    bfloat16 keeps float32's exponent range, so it needs no loss scaling; a GPU without it
    (before Ampere) gets float16, whose small range needs a GradScaler against underflow."""
    if not enabled:
        return None, False
    if device_type == "cuda" and not bf16_supported:
        return torch.float16, True
    return torch.bfloat16, False


def cuda_bf16_supported() -> bool:
    """Native bfloat16 on this GPU (emulation does not count: it is slower than float32)."""
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # older torch: no emulation argument
        return bool(torch.cuda.is_bf16_supported())


def configure_backend(device: torch.device):
    """On CUDA: TF32 matmuls and convolutions, and cuDNN's autotuner (the shapes of a run are
    fixed, so the search pays after the first steps). Nothing changes on a CPU."""
    if device.type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


# torch.compile -----------------------------------------------------------------------------
_eager = threading.local()


@contextlib.contextmanager
def eager_forward():
    """Networks wrapped by `compile_forward` run their plain forward inside this block (a graph
    that will be differentiated twice through a non-leaf input)."""
    before = getattr(_eager, "on", False)
    _eager.on = True
    try:
        yield
    finally:
        _eager.on = before


def compile_forward(module: torch.nn.Module) -> torch.nn.Module:
    """Make `module(...)` (and `module.heads(...)`, a discriminator's fused pass) run a
    torch.compile'd version, in place (parameters, state_dict keys and snapshots stay the same).
    Compiled graphs have no double backward, so a call whose input is a leaf tensor that requires a
    gradient (the input of a gradient penalty such as R1), or a call inside `eager_forward()`, runs
    the plain version."""
    for name in ("forward", "heads"):
        if hasattr(module, name):
            setattr(module, name, _compiled_or_plain(getattr(module, name)))
    return module


def _compiled_or_plain(plain):
    compiled = torch.compile(plain, dynamic=False)

    def run(*args, **kwargs):
        tensors = [t for a in (*args, *kwargs.values()) for t in (a if isinstance(a, (list, tuple)) else [a])]
        penalty_input = any(torch.is_tensor(t) and t.is_leaf and t.requires_grad for t in tensors)
        if penalty_input or getattr(_eager, "on", False):
            return plain(*args, **kwargs)
        return compiled(*args, **kwargs)

    return run


# data ------------------------------------------------------------------------------------
@dataclass
class HostBatch:
    """One step's data as loaded on the host: on a CPU already the step's float tensors; for a
    GPU uint8 images in pinned memory, copied without blocking by `to_device`."""

    real: torch.Tensor | None
    labeled: torch.Tensor | None
    labeled_codes: torch.Tensor | None
    labeled_mask: torch.Tensor | None


def load_images(images: np.ndarray, device: torch.device, channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> on a CPU the float tensor in [-1, 1]; for a GPU the uint8 tensor,
    pinned (a quarter of the bytes to copy; the conversion runs on the GPU in `device_images`)."""
    if device.type == "cpu":
        t = images_to_tensor(images)
        return t.to(memory_format=torch.channels_last) if channels_last else t
    t = torch.from_numpy(np.ascontiguousarray(images))
    return t.pin_memory() if torch.cuda.is_available() else t


def device_images(t: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    if t.device == device:
        return t
    t = uint8_to_float(t.to(device, non_blocking=True))
    # `.to(memory_format=...)`, not `.contiguous(...)`: see StepContext.image.
    return t.to(memory_format=torch.channels_last) if channels_last else t


def to_device(host: HostBatch, device: torch.device, channels_last: bool):
    """(real, labeled, labeled_codes, labeled_mask) on the device; non-blocking from pinned memory."""
    real = None if host.real is None else device_images(host.real, device, channels_last)
    labeled = None if host.labeled is None else device_images(host.labeled, device, False)
    codes = None if host.labeled_codes is None else host.labeled_codes.to(device, non_blocking=True)
    mask = None if host.labeled_mask is None else host.labeled_mask.to(device, non_blocking=True)
    return real, labeled, codes, mask


class BatchPrefetcher:
    """Loads the next step's data in a background thread while the current step runs.

    Exactness: the indices of every batch are drawn by `draw(step)` in the calling thread, in step
    order, from the run's data generator `rng`; the thread only runs `load(indices)`. The batch
    prepared ahead has already advanced `rng`, so `rng_state()` is the generator's state from
    *before* that draw: a snapshot saves it, and the resumed run draws the same batch again.
    The trajectory therefore does not depend on prefetching or on when a snapshot is taken."""

    def __init__(self, rng: np.random.Generator, draw: Callable[[int], object], load: Callable[[object], object],
                 enabled: bool = True):
        self.rng = rng
        self.draw = draw
        self.load = load
        self.enabled = enabled
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._pending_step: int | None = None
        self._state_before_pending: str | None = None

    def next(self, step: int) -> object:
        """Step `step`'s data, as `load` returns it; starts loading step + 1's."""
        if self._pending is not None and self._pending_step != step:
            self.discard()  # loaded for another step: rewind and draw this one
        if self._pending is None:
            host = self.load(self.draw(step))
        else:
            host = self._pending.result()
            self._pending = None
        if self.enabled:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="semistylegan-data")
            self._state_before_pending = json.dumps(self.rng.bit_generator.state)
            self._pending_step = step + 1
            self._pending = self._pool.submit(self.load, self.draw(step + 1))
        return host

    def rng_state(self) -> str:
        """The data generator's state as a snapshot must save it (JSON of the bit generator's state)."""
        if self._pending is not None:
            return self._state_before_pending
        return json.dumps(self.rng.bit_generator.state)

    def discard(self):
        """Drop the batch prepared ahead and rewind the generator to before its draw (before the
        generator is set from a snapshot, and when a run stops)."""
        if self._pending is not None:
            self._pending.cancel()
            try:
                self._pending.result()
            except Exception:  # noqa: BLE001 - a failed load of a batch nobody will use
                pass
            self.rng.bit_generator.state = json.loads(self._state_before_pending)
            self._pending = None

    def close(self):
        """discard(), and end the thread (a later `next` starts a new one)."""
        self.discard()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


# statistics ------------------------------------------------------------------------------
class StatsWindow:
    """The statistics of the steps since the last read, kept where they were computed.

    A step's stats are tensors on the device (a loss, a count) or Python numbers; `add` stacks a
    step's tensors into one device vector without reading it. `read()` fetches all the pending
    steps at once: one device-to-host copy (and one all-reduce over ranks) per read instead of
    one per value per step. It returns each step's values, averaged over ranks, exactly as a
    per-step read gave them."""

    def __init__(self, device: torch.device):
        self.device = device
        self._steps: list[tuple[int, list[str], list[str], torch.Tensor | None, list[float]]] = []

    def __len__(self) -> int:
        return len(self._steps)

    def add(self, step: int, stats: dict):
        names = [k for k, v in stats.items() if torch.is_tensor(v)]
        vector = torch.stack([stats[k].detach().reshape(()).float() for k in names]) if names else None
        numbers = [float(v) for v in stats.values() if not torch.is_tensor(v)]
        self._steps.append((step, list(stats), names, vector, numbers))

    def read(self) -> list[tuple[int, dict[str, float]]]:
        """[(step, {name: value})] of the pending steps, in order; empties the window."""
        steps, self._steps = self._steps, []
        if not steps:
            return []
        vectors = [vector for *_, vector, _ in steps if vector is not None]
        numbers = [x for *_, nums in steps for x in nums]
        parts = []
        if vectors:
            parts.append(torch.cat(vectors).to(torch.float64))
        if numbers:
            parts.append(torch.tensor(numbers, dtype=torch.float64).to(self.device))
        values = dist.all_reduce_mean_tensor(torch.cat(parts)).tolist()  # the one host read
        from_tensors = iter(values[:sum(len(v) for v in vectors)])
        from_numbers = iter(values[sum(len(v) for v in vectors):])
        out = []
        for step, keys, names, _, _ in steps:
            tensor_names = set(names)
            got = {k: next(from_tensors) for k in names}
            got.update({k: next(from_numbers) for k in keys if k not in tensor_names})
            out.append((step, {k: got[k] for k in keys}))  # the order the step reported them in
        return out
