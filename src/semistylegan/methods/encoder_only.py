"""Encoder-only baselines of the paper's ablation tables (docs/method.md): the encoder E trained on the
labelled set J alone, without a generator.

    Encoder-only:             L = L_sup = ||E(x) - c||_2                         on (x, c) in J  (eq 3)
    Encoder-only with MixUp:  L = L_sup + alpha L_sr,  L_sr = ||E(x~) - c~||_2   (eqs 5-6)

where the MixUp pairs are two labelled images: x~ = l' x_i + (1 - l') x_j, c~ = l' c_i + (1 - l') c_j,
l ~ Beta(xi, xi), l' = max(l, 1 - l) (eq 5 with a labelled image in place of the generated one),
and j is a random permutation of the labelled batch. Where factors are partly unknown, a mixed
sample keeps only the factors known in both images.

E is exactly Semi-StyleGAN's D/E module built from the same config fields: the code head on the
discriminator trunk (the paper), or with `encoder = "separate"` the plain CNN E of its own that reads
through `encoder_noise`; a regression head or, with `code_head = "classify"`, a classifier whose loss is
the cross-entropy (and MixUp's mixed one-hot targets), as in Semi-StyleGAN. It is optimised by the same
Adam (methods.semistylegan.d_optimizer), so the comparison is of losses, not architectures. The
real/fake head exists but is never trained or used. Options: alpha (--alpha, default 1) weighs L_sr;
mixup_xi (default 0.75) is xi.

One step draws `labeled_batch` labelled images; set `batch` = `labeled_batch` (the presets
`encoder-cpu32`, `encoder64` do) so that kimg counts labelled images shown.
"""
from __future__ import annotations

import numpy as np
import torch

from semistylegan import dist
from semistylegan.methods.base import Batch, Method, StepContext
from semistylegan.methods.semistylegan import (build_discriminator, code_loss, d_optimizer, head_sizes, mix_code_loss,
                                               with_encoder)

__all__ = ["EncoderOnly", "EncoderMixup", "labeled_pairs"]


def labeled_pairs(keys: np.ndarray) -> np.ndarray:
    """A permutation of range(len(keys)) from random keys: partner j of each labelled sample i."""
    return np.argsort(keys, kind="stable")


class EncoderOnly(Method):
    name, display_name = "encoder-only", "Encoder-only"
    ema_networks: tuple[str, ...] = ()
    has_generator = False
    has_encoder = True
    uses_labels = True
    identified_codes = True
    mixup = False
    fields = ("code_head", "encoder", "encoder_noise")

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.channels = int(dataset_info["channels"])

    def build_networks(self):
        D = build_discriminator(self.cfg, self.factor_sizes, self.channels)
        return {"E": with_encoder(self.cfg, D, self.num_factors)}

    def build_optimizers(self, nets):
        return {"E": d_optimizer(self.cfg, nets["E"])}

    def terms(self, ctx: StepContext, nets, batch: Batch) -> dict[str, tuple[float, torch.Tensor]]:
        E = nets["E"]
        if batch.labeled is None:
            raise RuntimeError("encoder-only training got no labelled batch")
        sizes = head_sizes(self.cfg, self.factor_sizes)
        sup = code_loss(E.encode(ctx.image(batch.labeled)), batch.labeled_codes, batch.labeled_mask, sizes)  # eq (3)
        out = {"sup": (1.0, sup)}
        if self.mixup and self.cfg.alpha > 0:
            x_mix, c_mix, m_mix, lam, partner = self.mix(ctx, batch)
            sr = mix_code_loss(E.encode(ctx.image(x_mix)), c_mix, lam, batch.labeled_codes,  # eq (6)
                               batch.labeled_codes[partner], m_mix, sizes)
            out["sr"] = (self.cfg.alpha, sr)
        return out

    def mix(self, ctx: StepContext, batch: Batch):
        """Eq (5) between labelled pairs (i, partner(i)) of this rank's labelled batch."""
        n_global = batch.global_labeled_batch
        lam = ctx.beta(n_global, self.cfg.mixup_xi)
        lam = torch.maximum(lam, 1.0 - lam)
        keys = ctx.rng.random(n_global)[dist.local_slice(n_global)]
        partner = torch.from_numpy(labeled_pairs(keys)).to(batch.labeled.device)
        x, c, m = batch.labeled, batch.labeled_codes, batch.labeled_mask
        lx = lam[:, None, None, None]
        x_mix = lx * x + (1.0 - lx) * x[partner]  # eq (5)
        c_mix = lam[:, None] * c + (1.0 - lam[:, None]) * c[partner]  # eq (5)
        m_mix = m & m[partner] if m is not None else None
        return x_mix, c_mix, m_mix, lam, partner

    def train_step(self, ctx: StepContext, nets, batch: Batch) -> None:
        E = nets["E"]
        E.requires_grad_(True)
        if E.noise > 0:  # E's input noise, from the saved random stream (as Semi-StyleGAN)
            E.reseed_noise(int(ctx.rng.integers(2**62)) + dist.rank(), ctx.device)
        with ctx.autocast():
            terms = self.terms(ctx, nets, batch)
        ctx.optimizer_step("E", sum(w * v for w, v in terms.values()), list(E.parameters()))
        for name, (_, v) in terms.items():
            ctx.report(f"E/{name}", v)

    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        return nets["E"].read_codes(images)

    def generate(self, nets, codes, z, truncation_psi: float = 1.0):
        raise NotImplementedError(f"{self.name} has no generator")


class EncoderMixup(EncoderOnly):
    name, display_name = "encoder-mixup", "Encoder-only with MixUp"
    fields = EncoderOnly.fields + ("alpha", "mixup_xi")
    mixup = True
