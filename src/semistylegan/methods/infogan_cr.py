"""InfoGAN-CR (Lin, Thekumparampil, Fanti, Oh; ICML 2020): InfoGAN plus a contrastive regulariser.

Latent input: L continuous codes c ~ U(-1, 1)^L and a noise vector z ~ N(0, I).

    InfoGAN term:  L_info = 1/2 ||Q(G(c, z)) - c||^2   (Gaussian with fixed unit variance; minimised by G and D/Q)
    CR term:       draw a pair that shares exactly one code dimension k: c and c' independent
                   except c_k = c'_k; x = G(c, z), x' = G(c', z'); H(x, x') classifies k.
                   L_cr = cross-entropy(H(x, x'), k), minimised by H *and* G (G is rewarded for
                   making the shared factor visible: traversing one code changes one thing).
    D/Q:  softplus(D(G(c, z))) + softplus(-D(x)) + info_weight L_info
    H:    cr_weight L_cr     on pairs generated without gradients to G
    G:    softplus(-D(G(c, z))) + info_weight L_info + cr_weight L_cr

Defaults. What this module could verify about the paper is its structure (the regulariser
above, on dSprites with 5 continuous codes, the FactorVAE-style conv networks of about 0.76M
parameters). The numbers below are recalled, not checked against the paper's text, and are
flagged as such: latent_dim = K codes (5 on dSprites), noise_dim = 5, info_weight = 0.2,
cr_weight = 2.0, Adam betas (0.5, 0.999), batch 64, lr from the config (presets: 2e-4 for
`infogancr64`, 5e-4 on the CPU preset).
Progressive training: the paper first trains the CR discriminator on pairs whose non-shared
codes differ by at least a "contrastive gap" (an easy task) and later lowers the gap to 0. Here:
  cr_gap (default 0 = off), cr_gap_kimg (the gap applies until this many kimg), and a linear
  ramp of the CR weight, cr_start_kimg / cr_ramp_kimg (default 0 / 0 = full weight from the start).
Gap sampling: for each non-shared dimension a value a is drawn uniformly from the values that
admit a partner at distance >= gap, then the partner uniformly from [-1, a - gap] u [a + gap, 1],
and the two are swapped with probability 1/2.

Evaluation: the representation is Q's output (N, latent_dim). The codes are not identified
with the factors (unsupervised), so L2 and L2-gen mean nothing; MIG and Factor score apply.
`generate(codes, z)` feeds 2 c - 1 for the first min(K, L) codes (codes in [0, 1] -> [-1, 1]) and
0 for the others.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, Method, StepContext, set_requires_grad
from semistylegan.nets.infogan import InfoGANDiscriminator, InfoGANGenerator, PairDiscriminator

__all__ = ["InfoGANCR", "make_pairs", "cr_weight_at"]

ADAM_BETAS = (0.5, 0.999)


def make_pairs(rng: np.random.Generator, n: int, code_dim: int, gap: float = 0.0):
    """n code pairs in [-1, 1]^code_dim sharing exactly dimension k[i] (global draws).

    Returns (c1, c2, k): float32 (n, L), float32 (n, L), int64 (n,). For j != k[i],
    |c1[i, j] - c2[i, j]| >= gap (gap in [0, 2)).
    """
    if not 0.0 <= gap < 2.0:
        raise ValueError(f"the contrastive gap must be in [0, 2), got {gap}")
    k = rng.integers(0, code_dim, size=n)
    if gap <= 0:
        c1 = rng.uniform(-1.0, 1.0, size=(n, code_dim))
        c2 = rng.uniform(-1.0, 1.0, size=(n, code_dim))
    else:
        r = max(0.0, gap - 1.0)  # |a| >= r leaves room for a partner at distance >= gap
        sign = np.where(rng.random((n, code_dim)) < 0.5, -1.0, 1.0)
        a = sign * rng.uniform(r, 1.0, size=(n, code_dim)) if r > 0 else rng.uniform(-1.0, 1.0, size=(n, code_dim))
        left = np.maximum(0.0, a - gap + 1.0)     # length of [-1, a - gap]
        right = np.maximum(0.0, 1.0 - a - gap)    # length of [a + gap, 1]
        t = rng.random((n, code_dim)) * (left + right)
        b = np.where(t < left, -1.0 + t, a + gap + (t - left))
        swap = rng.random((n, code_dim)) < 0.5
        c1, c2 = np.where(swap, b, a), np.where(swap, a, b)
    shared = rng.uniform(-1.0, 1.0, size=n)
    rows = np.arange(n)
    c1[rows, k] = shared
    c2[rows, k] = shared
    return c1.astype(np.float32), c2.astype(np.float32), k.astype(np.int64)


def cr_weight_at(kimg: float, weight: float, start_kimg: float, ramp_kimg: float) -> float:
    """CR weight: 0 before start_kimg, then a linear ramp over ramp_kimg to `weight`."""
    if kimg < start_kimg:
        return 0.0
    if ramp_kimg <= 0:
        return weight
    return weight * min(1.0, (kimg - start_kimg) / ramp_kimg)


class InfoGANCR(Method):
    ema_networks = ("G",)
    has_generator = True
    has_encoder = True
    uses_labels = False
    identified_codes = False
    name, display_name = "infogan-cr", "InfoGAN-CR"
    prior_samples = True
    fields = ("latent_dim", "noise_dim", "info_weight", "cr_weight", "cr_start_kimg", "cr_ramp_kimg", "cr_gap",
              "cr_gap_kimg")

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.code_dim = int(cfg.latent_dim) or self.num_factors
        self.noise_dim = int(cfg.noise_dim)
        if self.code_dim < 2:
            raise UserError(f"InfoGAN-CR needs latent_dim >= 2 (H classifies the shared code), got {self.code_dim}")
        self.info_weight = float(cfg.info_weight)
        self.cr_weight = float(cfg.cr_weight)
        self.cr_start_kimg = float(cfg.cr_start_kimg)
        self.cr_ramp_kimg = float(cfg.cr_ramp_kimg)
        self.cr_gap = float(cfg.cr_gap)
        self.cr_gap_kimg = float(cfg.cr_gap_kimg)
        if cfg.resolution < 8:
            raise UserError(f"InfoGAN-CR needs --resolution >= 8, got {cfg.resolution}")
        self.channels = int(dataset_info["channels"])

    @property
    def z_dim(self) -> int:
        return self.noise_dim

    def build_networks(self):
        r, ch = self.cfg.resolution, self.channels
        return {"G": InfoGANGenerator(self.code_dim, self.noise_dim, r, ch),
                "D": InfoGANDiscriminator(self.code_dim, r, ch),
                "H": PairDiscriminator(self.code_dim, r, ch)}

    def build_optimizers(self, nets):
        lr = self.cfg.lr
        return {k: torch.optim.Adam(nets[k].parameters(), lr=lr, betas=ADAM_BETAS, eps=1e-8) for k in ("G", "D", "H")}

    # random inputs ----------------------------------------------------------------------
    def _draw(self, ctx: StepContext, n: int):
        codes = ctx.local(ctx.rng.uniform(-1.0, 1.0, size=(n, self.code_dim)).astype(np.float32))
        return codes, ctx.randn(n, self.noise_dim)

    def _draw_pairs(self, ctx: StepContext, n: int):
        kimg = ctx.step * self.cfg.batch / 1000.0
        gap = self.cr_gap if kimg < self.cr_gap_kimg else 0.0
        c1, c2, k = make_pairs(ctx.rng, n, self.code_dim, gap)
        z1, z2 = ctx.randn(n, self.noise_dim), ctx.randn(n, self.noise_dim)
        return ctx.local(c1), ctx.local(c2), ctx.local(k).long(), z1, z2

    def current_cr_weight(self, ctx: StepContext) -> float:
        kimg = ctx.step * self.cfg.batch / 1000.0
        return cr_weight_at(kimg, self.cr_weight, self.cr_start_kimg, self.cr_ramp_kimg)

    @staticmethod
    def info_loss(pred: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        return 0.5 * (pred.float() - codes).square().sum(dim=1).mean()

    # the step ---------------------------------------------------------------------------
    def train_step(self, ctx: StepContext, nets, batch: Batch) -> None:
        G, D, H = nets["G"], nets["D"], nets["H"]
        n = batch.global_batch
        n_pairs = max(1, n // 2)
        w_cr = self.current_cr_weight(ctx)

        # D/Q phase.
        set_requires_grad(G, False)
        set_requires_grad(H, False)
        set_requires_grad(D, True)
        codes, z = self._draw(ctx, n)
        with ctx.autocast():
            with torch.no_grad():
                fake = G(codes, z)
            fake_logits, q = D(fake)
            real_logits, _ = D(batch.real)
            gan = F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()
            info = self.info_loss(q, codes)
        ctx.optimizer_step("D", gan + self.info_weight * info, list(D.parameters()))
        ctx.report("D/gan", gan)
        ctx.report("D/info", info)

        # H phase (pairs from G without gradients).
        set_requires_grad(H, True)
        c1, c2, k, z1, z2 = self._draw_pairs(ctx, n_pairs)
        with ctx.autocast():
            with torch.no_grad():
                x1, x2 = G(c1, z1), G(c2, z2)
            logits = H(x1, x2)
            cr = F.cross_entropy(logits.float(), k)
        if w_cr > 0:
            ctx.optimizer_step("H", w_cr * cr, list(H.parameters()))
        ctx.report("H/cr", cr)
        ctx.report("H/acc", (logits.argmax(1) == k).float().mean())

        # G phase.
        set_requires_grad(G, True)
        set_requires_grad(D, False)
        set_requires_grad(H, False)
        codes, z = self._draw(ctx, n)
        c1, c2, k, z1, z2 = self._draw_pairs(ctx, n_pairs)
        with ctx.autocast():
            fake_logits, q = D(G(codes, z))
            gan = F.softplus(-fake_logits).mean()
            info = self.info_loss(q, codes)
            loss = gan + self.info_weight * info
            if w_cr > 0:
                cr = F.cross_entropy(H(G(c1, z1), G(c2, z2)).float(), k)
                loss = loss + w_cr * cr
                ctx.report("G/cr", cr)
        ctx.optimizer_step("G", loss, list(G.parameters()))
        ctx.report("G/gan", gan)
        ctx.report("G/info", info)
        ctx.report("cr_weight", w_cr)
        set_requires_grad(D, True)
        set_requires_grad(H, True)

    # evaluation -------------------------------------------------------------------------
    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        return nets["D"].encode(images)

    def codes_to_latents(self, codes: torch.Tensor) -> torch.Tensor:
        latent = codes.new_zeros(codes.shape[0], self.code_dim)
        m = min(codes.shape[1], self.code_dim)
        latent[:, :m] = 2.0 * codes[:, :m] - 1.0
        return latent

    def generate(self, nets, codes: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return nets["G"](self.codes_to_latents(codes), z[:, : self.noise_dim] * truncation_psi)
