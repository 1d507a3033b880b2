"""torch.distributed helpers that are no-ops in a single process.

Under `torchrun --nproc_per_node N` (RANK/WORLD_SIZE/LOCAL_RANK in the environment) `init()`
starts a process group: NCCL when CUDA is available, gloo on CPU. Synchronisation follows
StyleGAN3: parameters are broadcast from rank 0 once, and after each backward pass the
gradients of a phase are flattened, summed across ranks and divided by the world size.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["init", "rank", "world_size", "is_main", "barrier", "broadcast_module", "all_reduce_grads",
           "all_reduce_mean", "all_reduce_mean_tensor", "local_slice", "shutdown", "launched_world_size",
           "check_batches_split"]


def init(device: str = "auto") -> torch.device:
    """Start the process group when launched by torchrun; return this process's device."""
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        from semistylegan.errors import UserError

        raise UserError("--device cuda was asked for but CUDA is not available")
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    if use_cuda:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def barrier():
    if is_dist():
        dist.barrier()


def shutdown():
    if is_dist():
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module):
    """Make every rank start from rank 0's parameters and buffers."""
    if not is_dist():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def all_reduce_grads(params: list[torch.Tensor]):
    """Average the gradients of `params` over ranks (one flat all-reduce)."""
    params = [p for p in params if p.grad is not None]
    if not params or not is_dist():
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Mean of scalar stats over ranks."""
    if not is_dist() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


def all_reduce_mean_tensor(t: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (the tensor itself in one process)."""
    if not is_dist():
        return t
    dist.all_reduce(t)
    return t.div_(world_size())


def local_slice(global_n: int) -> slice:
    """This rank's contiguous part of a global batch (the global batch must divide evenly)."""
    ws, r = world_size(), rank()
    if global_n % ws:
        from semistylegan.errors import UserError

        raise UserError(f"batch {global_n} does not split evenly over {ws} processes")
    per = global_n // ws
    return slice(r * per, (r + 1) * per)


def launched_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun), known before init()."""
    if is_dist():
        return world_size()
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", 1))) if "RANK" in os.environ else 1
    except ValueError:
        return 1


def check_batches_split(cfg) -> None:
    """The global batches must split evenly over the processes; checked before a run writes anything."""
    from semistylegan.errors import UserError

    n = launched_world_size()
    for name in ("batch", "labeled_batch"):
        value = getattr(cfg, name)
        if value % n:
            raise UserError(f"--{name.replace('_', '-')} {value} does not split evenly over {n} processes; "
                            f"use a multiple of {n}")
