"""The training loop: method-agnostic steps, EMA, logging, snapshots, exact resume, DDP.

    semistylegan train --preset dsprites-quick --out runs/quick
    torchrun --nproc_per_node 4 -m semistylegan train --preset dsprites64 --out runs/gpu

Exactness: every random draw of training comes from two numpy Generators (data indices, and
the method's c/z/MixUp draws) whose states are saved in each snapshot together with the
networks, EMA, optimiser states, step count and the labelled subset's fingerprint. The
trajectory depends on none of --kimg, the snapshot/grid/metrics intervals or interruptions:
a run stopped at step S and resumed reaches bit-identical weights at step 2S on CPU.

The next batch is loaded in a background thread while a step runs (its draw is made in order
and a snapshot saves the data generator from before it), and the logged statistics stay on the
device until the log interval: a GPU is not stalled by the host once per step (pipeline.py).
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semistylegan import dist, pipeline
from semistylegan.checkpoint import (FORMAT, atomic_save, atomic_write_text, list_snapshots, newest_intact_snapshot,
                                     remove_stale_temp_files)
from semistylegan.config import TrainConfig
from semistylegan.data import LabeledSubset, make_dataset
from semistylegan.data.dataset import ImageDataset, tensor_to_images
from semistylegan.errors import UserError
from semistylegan.methods import Batch, Method, StepContext, StepPlan, build_method
from semistylegan.viz import labeled_grid, save_png, traversal_codes

__all__ = ["Trainer", "train", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    pass


# Steps in a row with non-finite gradient values (zeroed by StepContext.optimizer_step) after
# which the run stops as diverged instead of carrying on with frozen or damaged weights. The
# check runs when the loop reads the stats (each log interval, and before every grid, metrics
# line and snapshot), over each step's recorded count: it names the step it happened at, and no
# grid, metrics line or snapshot is written after that step; the run may take up to log_every
# steps more before it stops.
NONFINITE_PATIENCE = 8


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state)


def _set_rng_state(rng: np.random.Generator, state: str):
    rng.bit_generator.state = json.loads(state)


class Trainer:
    """Holds everything of one run. `run()` trains until cfg.kimg; snapshots are resumable."""

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, dataset: ImageDataset | None = None,
                 progress: bool = True, prefetch: bool = True):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.progress_label: str | None = None  # the bar's description (a study names its cell)
        self.device = dist.init(cfg.device)
        if cfg.compile:   # this machine's tools, not the config: checked here, before the data is built
            _check_compile_available()
        if cfg.deterministic and self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        pipeline.configure_backend(self.device)
        if dataset is None:
            dataset = make_dataset(cfg.dataset, cfg.resolution, cfg.data_path, **cfg.data_options)
        self.dataset = dataset
        if self.dataset.resolution != cfg.resolution:
            raise UserError(f"dataset resolution {self.dataset.resolution} differs from --resolution {cfg.resolution}")
        self.labeled = LabeledSubset(self.dataset, cfg.labeled_fraction, seed=cfg.seed)
        self.method: Method = build_method(cfg, self.dataset.info())

        torch.manual_seed(cfg.seed)  # network initialisation; identical on every rank
        self.nets = {k: v.to(self.device) for k, v in self.method.build_networks().items()}
        if cfg.channels_last:
            self.nets = {k: v.to(memory_format=torch.channels_last) for k, v in self.nets.items()}
        for net in self.nets.values():
            dist.broadcast_module(net)
        self.ema = {k: copy.deepcopy(self.nets[k]).eval().requires_grad_(False) for k in self.method.ema_networks}
        if cfg.compile:  # after the EMA copies: those stay plain modules (evaluation only)
            for net in self.nets.values():
                pipeline.compile_forward(net)
        self.optimizers = self.method.build_optimizers(self.nets)
        bf16_supported = pipeline.cuda_bf16_supported() if self.device.type == "cuda" else True
        self.autocast_dtype, need_scaler = pipeline.mixed_precision(self.device.type, cfg.bf16, bf16_supported)
        self.scalers = {k: torch.amp.GradScaler(self.device.type) for k in self.optimizers} if need_scaler else {}
        self.rng = np.random.default_rng([cfg.seed, 1])       # the method's draws
        self.data_rng = np.random.default_rng([cfg.seed, 2])  # dataset indices
        self.prefetcher = pipeline.BatchPrefetcher(self.data_rng, self._draw_indices, self._load, enabled=prefetch)
        self.stats_window = pipeline.StatsWindow(self.device)
        self.step = 0
        self.cur_nimg = 0
        self.last_stats: dict[str, float] = {}
        self.nonfinite_streak = 0

    # nets used for evaluation: EMA copies where they exist ---------------------------------
    @property
    def eval_nets(self) -> dict[str, torch.nn.Module]:
        return {**self.nets, **self.ema}

    # snapshots -----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "format": FORMAT,
            "config": self.cfg.to_dict(),
            "dataset": self.dataset.info(),
            "networks": {k: v.state_dict() for k, v in self.nets.items()},
            "ema": {k: v.state_dict() for k, v in self.ema.items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.items()},
            **({"scalers": {k: v.state_dict() for k, v in self.scalers.items()}} if self.scalers else {}),
            "state": {
                "step": self.step,
                "cur_nimg": self.cur_nimg,
                "rng": _rng_state(self.rng),
                "data_rng": self.prefetcher.rng_state(),  # before the batch loaded ahead
                "labeled_count": len(self.labeled),
                "labeled_fingerprint": self.labeled.fingerprint(),
            },
            "stats": dict(self.last_stats),
        }

    def load_state_dict(self, snap: dict, source: str = "snapshot"):
        state = snap["state"]
        if state["labeled_fingerprint"] != self.labeled.fingerprint():
            raise UserError(f"{source}: its labelled subset differs from this configuration's")
        try:
            for k, v in self.nets.items():
                v.load_state_dict(snap["networks"][k])
            for k, v in self.ema.items():
                v.load_state_dict(snap["ema"][k])
            for k, v in self.optimizers.items():
                v.load_state_dict(snap["optimizers"][k])
            for k, v in self.scalers.items():
                if k in snap.get("scalers", {}):
                    v.load_state_dict(snap["scalers"][k])
        except (KeyError, RuntimeError, ValueError) as e:
            raise UserError(f"{source}: networks do not match this configuration "
                            f"({str(e).splitlines()[0][:120]})") from None
        self.step = int(state["step"])
        self.cur_nimg = int(state["cur_nimg"])
        _set_rng_state(self.rng, state["rng"])
        self.prefetcher.discard()
        _set_rng_state(self.data_rng, state["data_rng"])
        self.last_stats = dict(snap.get("stats", {}))

    def resume(self) -> str:
        """Continue the run in run_dir: load its newest intact snapshot, or start again from step 0
        when the run stopped before its first one. Unreadable newer snapshots are renamed to
        *.pt.bad (kept for inspection, out of the way of the snapshots to come). Returns a one-line
        note for the user, empty when the newest snapshot was loaded."""
        path, snap, problems = newest_intact_snapshot(self.run_dir)
        if path is None and not (self.run_dir / "config.json").is_file():
            raise UserError(f"{self.run_dir}: not a semistylegan run directory (no config.json, no snapshot)")
        if path is None:
            return (f"{self.run_dir} has no snapshot yet (the run stopped before its first one), "
                    "so it starts again from step 0.")
        self.load_state_dict(snap, source=str(path))
        if not problems:
            return ""
        snaps = list_snapshots(self.run_dir)
        bad = snaps[snaps.index(path) + 1:]
        if dist.is_main():
            for p in bad:
                p.rename(p.with_name(p.name + ".bad"))
        return (f"Resuming from {path.name}, the newest intact snapshot. " + " ".join(problems)
                + f" Renamed to {', '.join(p.name + '.bad' for p in bad)}.")

    def save_snapshot(self):
        if not dist.is_main():
            return
        path = self.run_dir / f"snapshot-{self.step:08d}.pt"
        atomic_save(self.state_dict(), path)
        snaps = list_snapshots(self.run_dir)
        for old in snaps[:-max(1, self.cfg.keep_snapshots)]:
            old.unlink(missing_ok=True)

    # data ----------------------------------------------------------------------------------
    def _draw_indices(self, step: int) -> tuple[StepPlan, np.ndarray | None, np.ndarray | None]:
        """Step `step`'s plan and dataset indices (global batches, only those the step reads; every
        rank draws the same), in the calling thread."""
        plan = self.method.step_plan(step)
        idx = self.data_rng.integers(len(self.dataset), size=plan.real) if plan.real else None
        lidx = None
        if plan.labeled and len(self.labeled) > 0:
            lidx = self.labeled.indices[self.data_rng.integers(len(self.labeled), size=plan.labeled)]
        return plan, idx, lidx

    def _load(self, drawn) -> tuple[StepPlan, pipeline.HostBatch]:
        """This rank's slice of a step's data, on the host (runs in the prefetch thread)."""
        cfg = self.cfg
        plan, idx, lidx = drawn
        real = None
        if idx is not None:
            real = pipeline.load_images(self.dataset.images(idx[dist.local_slice(plan.real)]), self.device,
                                        cfg.channels_last)
        if lidx is None:
            return plan, pipeline.HostBatch(real, None, None, None)
        lidx = lidx[dist.local_slice(plan.labeled)]
        codes = self.dataset.codes(lidx)
        mask = torch.from_numpy(~np.isnan(codes))
        codes = torch.from_numpy(np.nan_to_num(codes, nan=0.0))
        if self.device.type == "cuda":
            codes, mask = codes.pin_memory(), mask.pin_memory()
        labeled = pipeline.load_images(self.dataset.images(lidx), self.device, False)
        return plan, pipeline.HostBatch(real, labeled, codes, mask)

    def _batch(self) -> tuple[StepPlan, Batch]:
        """The current step's plan and data."""
        plan, host = self.prefetcher.next(self.step)
        real, labeled, codes, mask = pipeline.to_device(host, self.device, self.cfg.channels_last)
        return plan, Batch(real, labeled, codes, mask, plan.real, plan.labeled)

    # one step ------------------------------------------------------------------------------
    def _step(self):
        """One step; its stats go to `stats_window` unread."""
        cfg = self.cfg
        for net in self.nets.values():
            net.train()
        plan, batch = self._batch()
        ctx = StepContext(self.rng, self.device, self.optimizers, self.step, channels_last=cfg.channels_last,
                          autocast_dtype=self.autocast_dtype, scalers=self.scalers)
        self.method.train_step(ctx, self.nets, batch)
        self.step += 1
        self.cur_nimg += plan.nimg
        self._update_ema(plan.nimg)
        self.stats_window.add(self.step, ctx.stats)

    def read_stats(self) -> list[dict[str, float]]:
        """The stats of the steps since the last read (each averaged over ranks), checked step by
        step: TrainingDiverged names the first step whose losses turned non-finite, or at which
        gradients had held non-finite values for NONFINITE_PATIENCE steps in a row."""
        out = []
        for step, stats in self.stats_window.read():
            bad = [k for k, v in stats.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"losses turned non-finite at step {step} ({', '.join(sorted(bad))})")
            grads = {k: v for k, v in stats.items() if k.endswith("/nonfinite_grads") and v > 0}
            self.nonfinite_streak = self.nonfinite_streak + 1 if grads else 0
            if self.nonfinite_streak >= NONFINITE_PATIENCE:
                raise TrainingDiverged(f"gradients held non-finite values for {self.nonfinite_streak} steps in a row "
                                       f"at step {step} ({', '.join(sorted(grads))})")
            out.append(stats)
        return out

    def train_one_step(self) -> dict[str, float]:
        """One step with its stats read and checked at once (tests, tools; `run` reads them once
        per log interval)."""
        self._step()
        return self.read_stats()[-1]

    def _update_ema(self, step_nimg: int):
        cfg = self.cfg
        ema_nimg = cfg.ema_kimg * 1000
        if cfg.ema_rampup:
            ema_nimg = min(ema_nimg, self.cur_nimg * cfg.ema_rampup)
        beta = 0.5 ** (step_nimg / max(ema_nimg, 1e-8))
        with torch.no_grad():
            for name, ema in self.ema.items():
                src = self.nets[name]
                for p_ema, p in zip(ema.parameters(), src.parameters()):
                    p_ema.copy_(p.detach().lerp(p_ema, beta))
                for b_ema, b in zip(ema.buffers(), src.buffers()):
                    b_ema.copy_(b)

    # pictures and metrics ------------------------------------------------------------------
    @torch.no_grad()
    def traversal_image(self, steps: int = 10, seed: int = 0, truncation_psi: float = 1.0):
        """One row per factor: that factor swept over [0, 1], the other factors and z fixed."""
        fs = self.dataset.factor_space
        rs = np.random.RandomState(seed)
        base = fs.classes_to_code(fs.sample_classes(1, rs))[0]
        rows = self.method.traversed_factors()
        codes = traversal_codes(base, steps).reshape(fs.num_factors, steps, -1)[rows].reshape(len(rows) * steps, -1)
        codes = torch.from_numpy(codes).to(self.device)
        z = torch.from_numpy(rs.standard_normal((1, self.method.z_dim)).astype(np.float32)).to(self.device)
        z = z.expand(len(codes), -1)
        imgs = tensor_to_images(self.method.generate(self.eval_nets, codes, z, truncation_psi))
        return labeled_grid(imgs, len(rows), steps, row_labels=[fs.names[r] for r in rows],
                            scale=max(1, 64 // self.cfg.resolution))

    def write_grid(self, name: str | None = None, writer=None):
        """The traversal grid as PNGs, and as an image in TensorBoard when `writer` is given."""
        if not dist.is_main() or not self.method.has_generator:
            return
        img = self.traversal_image()
        save_png(img, self.run_dir / (name or f"traversal-{self.cur_nimg // 1000:06d}k.png"))
        save_png(img, self.run_dir / "traversal.png")
        if writer is not None:
            writer.add_image("traversal", np.asarray(img.convert("RGB")), self.cur_nimg, dataformats="HWC")

    def quick_metrics(self) -> dict:
        """Cheap metrics for the log: encoder MIG and L2 on held-out real images."""
        from semistylegan.evaluation import quick_encoder_metrics

        return quick_encoder_metrics(self.method, self.eval_nets, self.dataset, self.cfg.metrics_samples,
                                     self.device, seed=self.cfg.seed + 12345)

    # the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.cfg
        total = int(round(cfg.kimg * 1000))
        main = dist.is_main()
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.run_dir)  # of writes a kill interrupted
            # Lines a stopped run logged after its last snapshot are redone from it: drop them.
            for log in ("stats.jsonl", "metrics-train.jsonl"):
                _truncate_log(self.run_dir / log, self.step)
            atomic_write_text(self.run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")
            atomic_write_text(self.run_dir / "dataset.json", json.dumps(self.dataset.info(), indent=2) + "\n")
        # TensorBoard's global step is cur_nimg; on a resume its events after the snapshot are purged.
        writer = _tensorboard(self.run_dir, self.cur_nimg + 1 if (self.run_dir / "tensorboard").is_dir() else None) \
            if main else None
        bar = None
        if main and self.progress:
            from semistylegan import progress

            bar = progress.bar(total=total, initial=min(self.cur_nimg, total), unit="img", unit_scale=True, leave=True,
                               desc=self.progress_label or f"{cfg.method} {cfg.dataset}{cfg.resolution}")

        def crossed(interval_kimg: float, before: int) -> bool:
            if interval_kimg <= 0:
                return False
            every = int(round(interval_kimg * 1000))
            return before // every != self.cur_nimg // every

        t0 = time.time()
        nimg0 = self.cur_nimg
        window: dict[str, list[float]] = {}
        result = {"status": "done"}
        try:
            while self.cur_nimg < total:
                before = self.cur_nimg
                self._step()
                if bar is not None:
                    bar.update(min(self.cur_nimg, total) - min(before, total))
                done = self.cur_nimg >= total
                log_due = self.step % cfg.log_every == 0 or done
                grid_due = crossed(cfg.grid_kimg, before) or done
                metrics_crossed = crossed(cfg.metrics_kimg, before) or done
                snapshot_due = crossed(cfg.snapshot_kimg, before) or done
                # Read (and check) the stats only when something is written: no picture, metric or
                # snapshot of weights that turned non-finite since the last read. The same steps on
                # every rank (the read is an all-reduce).
                if log_due or grid_due or metrics_crossed or snapshot_due:
                    for stats in self.read_stats():
                        for k, v in stats.items():
                            window.setdefault(k, []).append(v)
                if log_due:
                    elapsed = max(time.time() - t0, 1e-9)
                    self.last_stats = {k: float(np.mean(v)) for k, v in window.items()}
                    window = {}
                    line = {"step": self.step, "kimg": self.cur_nimg / 1000,
                            "img_per_s": (self.cur_nimg - nimg0) / elapsed,
                            **self.last_stats}
                    if main:
                        with open(self.run_dir / "stats.jsonl", "a") as f:
                            f.write(json.dumps(line) + "\n")
                        if writer is not None:
                            for k, v in line.items():
                                if k not in ("step",):
                                    writer.add_scalar(k, v, self.cur_nimg)
                        if bar is not None:
                            bar.set_postfix({"img/s": f"{line['img_per_s']:.1f}",
                                             "D": f"{self.last_stats.get('D/gan', 0):.2f}",
                                             "G": f"{self.last_stats.get('G/gan', 0):.2f}"})
                if grid_due:
                    self.write_grid(writer=writer)
                if metrics_crossed and main and self.method.has_encoder:
                    m = {"step": self.step, "kimg": self.cur_nimg / 1000, **self.quick_metrics()}
                    with open(self.run_dir / "metrics-train.jsonl", "a") as f:
                        f.write(json.dumps(m) + "\n")
                    if writer is not None:
                        for k, v in m.items():
                            if isinstance(v, float) and k != "kimg":
                                writer.add_scalar(f"metrics/{k}", v, self.cur_nimg)
                    result["metrics"] = m
                if snapshot_due:
                    self.save_snapshot()
        except TrainingDiverged as e:
            result = {"status": "diverged", "message": str(e)}
        finally:
            self.prefetcher.close()  # the data generator as if nothing was loaded ahead
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        dist.barrier()
        return result


def _tensorboard(run_dir: Path, purge_step: int | None = None):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: stats.jsonl still has every number
        return None
    return SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)


def _truncate_log(path: Path, step: int):
    """Keep the lines of a JSON-lines log up to `step` (and drop a line a kill cut short)."""
    if not path.is_file():
        return
    kept, dropped = [], False
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
                continue
        except (ValueError, KeyError, TypeError):
            pass
        dropped = True
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))


def _check_compile_available():
    """--compile needs TorchDynamo on this Python, and on a CPU a C++ compiler for the kernels."""
    import shutil

    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        raise UserError("--compile: torch.compile does not support this Python version")
    if not torch.cuda.is_available() and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "c++",
                                                                              "clang++")):
        raise UserError("--compile on a CPU needs a C++ compiler (g++ or clang++) on the PATH")


def train(cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool = False, progress: bool = True,
          dataset: ImageDataset | None = None) -> dict:
    """Train from scratch into run_dir, or continue the run in run_dir (resume=True; from its newest
    intact snapshot, or from step 0 when it has none yet, with a one-line note on stderr)."""
    trainer = Trainer(cfg, run_dir, dataset=dataset, progress=progress)
    if resume:
        note = trainer.resume()
        if note and dist.is_main():
            print(f"semistylegan: note: {note}", file=sys.stderr, flush=True)
    return trainer.run()
