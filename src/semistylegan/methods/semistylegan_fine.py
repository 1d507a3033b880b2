"""Semi-StyleGAN-fine (docs/method.md, "Semi-StyleGAN-fine").

The same losses as Semi-StyleGAN (eqs 3-7, via `SemiStyleGAN.train_step`), restricted to the
fine factors, with a generator that starts from a real image:

- the coarse input of every generated image is the box downsample of a real training image
  (the step's real batch for the GAN and L_unsup terms; the labelled images themselves for
  the MixUp pairs, so that x~ blends two renderings of the same layout);
- c_fine is drawn uniformly from the fine factors' grid (the prior), z ~ N(0, I);
- E_fine (a head on the block of D at `fine_head_res`) predicts the fine factors only;
  L_sup, L_sr and L_unsup compare fine factors only.

Config fields (TrainConfig): fine_factors (names, default per dataset below), fine_input_res
(default 16, at most resolution / 2), fine_head_res (default 32, at most resolution), and three
additions beyond the paper: coarse_skip (the coarse input also feeds G's RGB skip path, so G
starts from the upsampled input), input_const (a learned constant feature map added to G's input
features: positional information), hue_jitter (in training, G sees its coarse input with the
colours turned about the gray axis by a random angle per image, so it must take the hues from
c_fine while the regions of the image stay distinct; generation and editing turn nothing).
`recon` and `recon_hard` tie G's output to its coarse input on the labelled images whose fine
factors are known (SemiStyleGAN._recon_terms, with the fine codes).

Evaluation interfaces: `encode` returns (N, K) codes over *all* factors of the dataset with NaN
in the coarse columns (E_fine does not predict them); `encode_fine` returns (N, F). `generate`
takes (N, K) or (N, F) codes and a coarse image batch; without one it uses a fixed reference
image of the training set (`reference_images`), which is what the training loop's traversal
grid gets (its coarse-factor rows are then constant by construction).
"""
from __future__ import annotations

import re

import numpy as np
import torch

from semistylegan import dist
from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, StepContext
from semistylegan.methods.semistylegan import SemiStyleGAN
from semistylegan.nets.fine import FineDiscriminator, FineGenerator, rotate_hue

__all__ = ["SemiStyleGANFine", "DEFAULT_FINE_FACTORS", "resolve_fine_factors"]

# Dataset name -> default fine factors (for 3DShapes the three hues, as in the issue).
DEFAULT_FINE_FACTORS = {
    "falcor3d": ("lighting_intensity", "lighting_x-dir", "lighting_y-dir", "lighting_z-dir"),
    "isaac3d": ("lighting_intensity", "lighting_y-dir", "object_color", "wall_color"),
    "shapes3d": ("floor_hue", "wall_hue", "object_hue"),
}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def resolve_fine_factors(dataset_name: str, factor_names: list[str], requested=None) -> list[int]:
    """Indices of the fine factors. Names match case- and punctuation-insensitively
    (`lighting_x-dir` = `lighting_x_dir`). Unknown names or a missing default: UserError."""
    if requested is None or requested == "" or requested == []:
        base = _norm(dataset_name)
        default = next((v for k, v in DEFAULT_FINE_FACTORS.items() if base.startswith(k)), None)
        if default is None:
            raise UserError(f"semi-fine has no default fine factors for dataset '{dataset_name}'; "
                            f"pass --fine-factors NAME,NAME (factors: {', '.join(factor_names)})")
        requested = default
    if isinstance(requested, str):
        requested = [s.strip() for s in requested.split(",") if s.strip()]
    if not isinstance(requested, (list, tuple)) or not all(isinstance(s, str) for s in requested):
        raise UserError(f"fine_factors must be a list of factor names, got {requested!r}")
    lookup = {_norm(n): i for i, n in enumerate(factor_names)}
    out = []
    for name in requested:
        if _norm(name) not in lookup:
            raise UserError(f"unknown fine factor '{name}'; factors are: {', '.join(factor_names)}")
        idx = lookup[_norm(name)]
        if idx not in out:
            out.append(idx)
    if not out:
        raise UserError("fine_factors is empty")
    return sorted(out)


class SemiStyleGANFine(SemiStyleGAN):
    name = "semi-fine"
    display_name = "Semi-StyleGAN-fine"
    ema_networks = ("G",)
    coarse_input = True
    # (no warm-up: G starts from a real image's coarse input, which the warm-up step does not give)
    fields = tuple(f for f in SemiStyleGAN.fields if f != "warmup_kimg") + (
        "fine_factors", "fine_input_res", "fine_head_res", "coarse_skip", "input_const", "hue_jitter")
    # MixUp partners are generated from the labelled images' own coarse input (so a mixed
    # image keeps one layout), never taken from the step's fakes.
    reuse_step_fakes_for_mixup = False

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.factor_names = list(dataset_info["factors"]["names"])
        self.fine_idx = resolve_fine_factors(dataset_info.get("name", cfg.dataset), self.factor_names,
                                             cfg.fine_factors)
        self.fine_names = [self.factor_names[i] for i in self.fine_idx]
        self.num_fine = len(self.fine_idx)
        self.fine_sizes = self.factor_sizes[self.fine_idx]
        res = int(cfg.resolution)
        if res < 8:
            raise UserError("semi-fine needs a resolution of at least 8")
        self.input_res = self._res_option("fine_input_res", cfg.fine_input_res or min(16, res // 2), 4, res // 2)
        self.head_res = self._res_option("fine_head_res", cfg.fine_head_res or min(32, res), 8, res)
        self.coarse_skip, self.input_const, self.hue_jitter = cfg.coarse_skip, cfg.input_const, cfg.hue_jitter
        if self.hue_jitter and self.channels != 3:
            raise UserError(f"semi-fine: hue_jitter needs a colour dataset (3 channels); "
                            f"{dataset_info.get('name', cfg.dataset)} has {self.channels}")
        self._reference: torch.Tensor | None = None

    @staticmethod
    def _res_option(key, v, low, high) -> int:
        if v < low or v > high or v & (v - 1):
            raise UserError(f"semi-fine: --{key.replace('_', '-')} must be a power of two in [{low}, {high}], got {v}")
        return int(v)

    def traversed_factors(self) -> list[int]:
        """Only the fine factors: the coarse ones come from the input image."""
        return list(self.fine_idx)

    # ------------------------------------------------------------------------------------
    def build_networks(self):
        cfg = self.cfg
        G = FineGenerator(self.num_fine, cfg.z_dim, cfg.w_dim, cfg.resolution, self.channels, cfg.channel_base,
                          cfg.channel_max, cfg.mapping_layers, input_resolution=self.input_res,
                          coarse_skip=self.coarse_skip, input_const=self.input_const,
                          mapping_lr_mul=cfg.mapping_lr_mul)
        D = FineDiscriminator(self.num_fine, cfg.resolution, self.channels, cfg.channel_base, cfg.channel_max,
                              cfg.mbstd_group, head_resolution=self.head_res,
                              code_classes=tuple(int(m) for m in self.fine_sizes) if self.classify else None)
        return self._finish_networks(G, D)

    @property
    def code_sizes(self):
        return self.fine_sizes

    # random inputs ----------------------------------------------------------------------
    def _draw_fakes(self, ctx: StepContext, n: int):
        """c_fine uniform over the fine factors' grid, z ~ N(0, I): global draws, local slice."""
        classes = ctx.integers(n, self.fine_sizes)
        denom = np.maximum(self.fine_sizes - 1, 1).astype(np.float32)
        codes = ctx.local(classes.astype(np.float32) / denom)
        z = ctx.randn(n, self.z_dim)
        return codes, z

    def _fine_labels(self, batch: Batch):
        return batch.labeled_codes[:, self.fine_idx], batch.labeled_mask[:, self.fine_idx]

    # hooks into Semi-StyleGAN's phases: fine factors, real coarse inputs -------------------
    def _view_source(self, ctx: StepContext, source: torch.Tensor) -> torch.Tensor:
        if not self.hue_jitter:
            return source
        # G's view of the source in training, rotated by a random angle per image, drawn for the
        # global batch from the step's random stream, then this rank's part (batches split evenly
        # over ranks), so a run of N ranks draws what one process does
        n = source.shape[0] * dist.world_size()
        angles = ctx.local(ctx.rng.random(n) * (2 * np.pi))
        return rotate_hue(source, angles)

    def _synthesize(self, ctx: StepContext, G, codes, z, source, **kwargs):
        return G(codes, z, source, **kwargs)

    def _label_targets(self, batch: Batch):
        return self._fine_labels(batch)

    # evaluation -------------------------------------------------------------------------
    def encode_fine(self, nets, images: torch.Tensor) -> torch.Tensor:
        """(N, F) fine codes of images in [-1, 1]."""
        return nets["D"].read_codes(images)

    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        """(N, K) codes, NaN in the columns of the coarse factors (not predicted by E_fine)."""
        fine = self.encode_fine(nets, images)
        out = fine.new_full((fine.shape[0], self.num_factors), float("nan"))
        out[:, self.fine_idx] = fine
        return out

    def fine_codes(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.shape[1] == self.num_fine:
            return codes
        if codes.shape[1] == self.num_factors:
            return codes[:, self.fine_idx]
        raise ValueError(f"codes must have {self.num_factors} (all) or {self.num_fine} (fine) columns, got "
                         f"{codes.shape[1]}")

    def reference_images(self, device) -> torch.Tensor:
        """A fixed training image (seeded by cfg.seed) used as coarse input when none is given."""
        if self._reference is None:
            from semistylegan.data import make_dataset
            from semistylegan.data.dataset import images_to_tensor

            ds = make_dataset(self.cfg.dataset, self.cfg.resolution, self.cfg.data_path, **self.cfg.data_options)
            idx = np.random.RandomState(self.cfg.seed + 4242).randint(len(ds), size=1)
            self._reference = images_to_tensor(ds.images(idx))
        return self._reference.to(device)

    def set_reference_images(self, images: torch.Tensor):
        self._reference = images.detach().cpu()

    def generate(self, nets, codes: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0,
                 coarse: torch.Tensor | None = None) -> torch.Tensor:
        """G(c_fine, z, coarse): `coarse` real images in [-1, 1], one per code or one for all."""
        if coarse is None:
            coarse = self.reference_images(codes.device)
        return nets["G"](self.fine_codes(codes), z, coarse, truncation_psi=truncation_psi)
