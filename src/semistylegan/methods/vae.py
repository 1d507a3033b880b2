"""The VAE baselines of the paper: beta-VAE, beta-TCVAE and FactorVAE, trained by the common loop.

All three share the network of `semistylegan.nets.vae` (disentanglement_lib's conv encoder and
deconv decoder), a Gaussian q(z | x) with diagonal covariance, a N(0, I) prior, and a Bernoulli
decoder on pixels rescaled to [0, 1] (dlib's `bernoulli_loss`; `--reconstruction gaussian`
switches to dlib's `l2_loss`, the squared error of sigmoid(logits)). Per sample, every loss is
summed over pixels and latent dimensions and then averaged over the batch, as in dlib.

    beta-VAE   (Higgins et al. 2017):   recon + beta KL(q(z|x) || p(z))
    beta-TCVAE (Chen et al. 2018):      recon + KL + (beta - 1) TC,  TC by minibatch-weighted sampling
    FactorVAE  (Kim & Mnih 2018):       recon + KL + gamma TC,       TC = E[log D(z) / (1 - D(z))]

Defaults (the dSprites settings of the papers and of disentanglement_lib's study,
Locatello et al. 2019, whose grids are beta in {1, 2, 4, 6, 8, 16} for beta-VAE,
beta in {1, 2, 4, 6, 8, 10} for beta-TCVAE and gamma in {10, 20, 30, 40, 50, 100} for FactorVAE):
  latent_dim = 10 (dlib), Adam(lr 1e-4, betas 0.9/0.999, eps 1e-8) on the VAE, batch 64,
  300k steps (= 19,200 kimg) at 64x64 (dlib; preset `vae64`);
  beta-VAE beta = 4 (Higgins et al.'s dSprites value, inside dlib's grid),
  beta-TCVAE beta = 6 (middle of dlib's grid; Chen et al. sweep 1..10 on dSprites),
  FactorVAE gamma = 35 (Kim & Mnih's dSprites value), discriminator Adam(lr 1e-4, betas 0.5/0.9).
The network widths and the step budget come from the config (cfg.lr, cfg.batch, cfg.kimg): the
presets in `semistylegan.methods.presets` carry the papers' values (`vae64`) and CPU-sized ones
(`vae-cpu32`, `vae-cpu16`). Config fields (`semistylegan train --vae-beta 2`, ...):
  latent_dim, vae_beta (beta-VAE), tc_beta (beta-TCVAE), factor_gamma (FactorVAE),
  reconstruction (bernoulli | gaussian), d_lr (FactorVAE discriminator learning rate).

Evaluation: the representation is the encoder mean (N, latent_dim), as dlib evaluates VAEs.
The latents are not identified with the factors, so only permutation-invariant encoder
metrics (MIG, Factor score, ...) mean something; L2 and L2-gen do not. `generate(codes, z)`
decodes a latent vector whose first min(K, latent_dim) dimensions are 4 c - 2 (a code in
[0, 1] becomes a latent value in [-2, 2], the usual traversal range of a unit Gaussian) and
whose other dimensions are z (`z_dim` is the latent size): a traversal grid of the first K
latents, useful as a picture, not as a controllability measure.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from semistylegan import dist
from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, Method, StepContext, set_requires_grad
from semistylegan.nets.vae import VAE, FactorDiscriminator

__all__ = ["VAEMethod", "BetaVAE", "BetaTCVAE", "FactorVAE", "gaussian_log_density", "total_correlation_mws",
           "permute_dims", "kl_normal"]

DEFAULT_LATENT_DIM = 10
VAE_ADAM_BETAS = (0.9, 0.999)          # dlib / Higgins et al.
FACTOR_D_ADAM_BETAS = (0.5, 0.9)       # Kim & Mnih 2018, discriminator


# ---------------------------------------------------------------------------------------------
# Pure functions (tested on their own).

def kl_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions."""
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1.0).sum(dim=1)


def gaussian_log_density(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (math.log(2 * math.pi) + logvar + (x - mean).square() * torch.exp(-logvar))


def total_correlation_mws(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                          dataset_size: int | None = None) -> torch.Tensor:
    """Minibatch-weighted-sampling estimate of TC(z) = KL(q(z) || prod_d q(z_d)) (Chen et al. 2018).

    log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M), and the same per dimension for the
    marginals. The log(N M) terms add the constant (D - 1) log(N M), which does not change the
    gradient; it is included when `dataset_size` is given so that the value is the estimate
    itself (dlib leaves it out).
    """
    m, d = z.shape
    log_q = gaussian_log_density(z[:, None, :], mean[None, :, :], logvar[None, :, :])   # (M, M, D)
    log_qz = torch.logsumexp(log_q.sum(dim=2), dim=1)                                    # (M,)
    log_prod = torch.logsumexp(log_q, dim=1).sum(dim=1)                                  # (M,)
    tc = log_qz - log_prod
    if dataset_size:
        tc = tc + (d - 1) * math.log(dataset_size * m)
    return tc.mean()


def permute_dims(z: torch.Tensor, keys: np.ndarray) -> torch.Tensor:
    """FactorVAE's permutation trick: each column of z permuted independently across the batch.

    `keys` (M, D) are random numbers; column d is reordered by argsort(keys[:, d]). The result
    samples prod_d q(z_d) while keeping every marginal exactly.
    """
    if keys.shape != tuple(z.shape):
        raise ValueError(f"keys must have the shape of z {tuple(z.shape)}, got {keys.shape}")
    order = torch.from_numpy(np.argsort(keys, axis=0, kind="stable")).to(z.device)
    return torch.gather(z, 0, order)


# ---------------------------------------------------------------------------------------------

class VAEMethod(Method):
    """The shared part: networks, reparameterisation, reconstruction and KL terms."""

    ema_networks: tuple[str, ...] = ()
    has_generator = True
    has_encoder = True
    uses_labels = False
    identified_codes = False      # the latents are not the factor codes (no L2, L2-gen, MIG-gen)
    fields: tuple[str, ...] = ("latent_dim", "reconstruction")

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.latent_dim = int(cfg.latent_dim) or DEFAULT_LATENT_DIM
        self.reconstruction = cfg.reconstruction
        if cfg.resolution < 8:
            raise UserError(f"the VAE baselines need --resolution >= 8, got {cfg.resolution}")
        self.channels = int(dataset_info["channels"])
        self.dataset_size = int(dataset_info.get("num_images", 0)) or None

    @property
    def z_dim(self) -> int:
        return self.latent_dim

    def build_networks(self) -> dict[str, nn.Module]:
        return {"vae": VAE(self.cfg.resolution, self.channels, self.latent_dim)}

    def build_optimizers(self, nets):
        return {"vae": torch.optim.Adam(nets["vae"].parameters(), lr=self.cfg.lr, betas=VAE_ADAM_BETAS, eps=1e-8)}

    # pieces of the loss ------------------------------------------------------------------
    def forward_terms(self, ctx: StepContext, nets, batch: Batch):
        """Returns (z, mean, logvar, recon per-sample mean, kl per-sample mean)."""
        vae = nets["vae"]
        x = batch.real
        mean, logvar = vae.encoder(x)
        eps = ctx.randn(batch.global_batch, self.latent_dim)
        z = mean + torch.exp(0.5 * logvar) * eps
        logits = vae.decoder(z)
        target = (x + 1.0) * 0.5
        if self.reconstruction == "bernoulli":
            recon = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            recon = (torch.sigmoid(logits) - target).square()
        recon = recon.flatten(1).sum(dim=1).mean()
        kl = kl_normal(mean, logvar).mean()
        return z, mean, logvar, recon, kl

    def regulariser(self, ctx: StepContext, nets, z, mean, logvar, kl) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def train_step(self, ctx: StepContext, nets, batch: Batch) -> None:
        vae = nets["vae"]
        set_requires_grad(vae, True)
        with ctx.autocast():
            z, mean, logvar, recon, kl = self.forward_terms(ctx, nets, batch)
            reg, stats = self.regulariser(ctx, nets, z, mean, logvar, kl)
        loss = recon + reg
        ctx.optimizer_step("vae", loss, list(vae.parameters()))
        ctx.report("vae/loss", loss)
        ctx.report("vae/recon", recon)
        ctx.report("vae/kl", kl)
        for k, v in stats.items():
            ctx.report(k, v)
        self.after_vae_step(ctx, nets, batch, z.detach())

    def after_vae_step(self, ctx: StepContext, nets, batch: Batch, z: torch.Tensor) -> None:
        pass

    # evaluation ---------------------------------------------------------------------------
    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        return nets["vae"].encode(images)

    def codes_to_latents(self, codes: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        latent = z[:, : self.latent_dim].clone()
        m = min(codes.shape[1], self.latent_dim)
        latent[:, :m] = 4.0 * codes[:, :m].to(latent.dtype) - 2.0
        return latent

    def generate(self, nets, codes: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        latent = self.codes_to_latents(codes, z) * truncation_psi
        return torch.sigmoid(nets["vae"].decoder(latent)) * 2.0 - 1.0


class BetaVAE(VAEMethod):
    """beta-VAE: recon + beta KL. Default beta = 4 (Higgins et al. 2017, dSprites)."""

    name, display_name = "beta-vae", "beta-VAE"
    fields = VAEMethod.fields + ("vae_beta",)

    def __init__(self, cfg, dataset_info):
        super().__init__(cfg, dataset_info)
        self.beta = float(cfg.vae_beta)

    def regulariser(self, ctx, nets, z, mean, logvar, kl):
        return self.beta * kl, {}


class BetaTCVAE(VAEMethod):
    """beta-TCVAE: recon + KL + (beta - 1) TC (the decomposition of Chen et al. 2018 with alpha =
    gamma = 1, as dlib implements it). Default beta = 6."""

    name, display_name = "beta-tcvae", "beta-TCVAE"
    fields = VAEMethod.fields + ("tc_beta",)

    def __init__(self, cfg, dataset_info):
        super().__init__(cfg, dataset_info)
        self.beta = float(cfg.tc_beta)

    def regulariser(self, ctx, nets, z, mean, logvar, kl):
        # The loss leaves out the constant (D - 1) log(N M) (as dlib); the reported TC includes it.
        tc = total_correlation_mws(z, mean, logvar)
        const = (self.latent_dim - 1) * math.log(self.dataset_size * z.shape[0]) if self.dataset_size else 0.0
        return kl + (self.beta - 1.0) * tc, {"vae/tc": tc.detach() + const}


class FactorVAE(VAEMethod):
    """FactorVAE: recon + KL + gamma TC, with TC estimated by a discriminator D on latent samples.

    One step: (1) the VAE step, where D is frozen and TC = mean(D_0(z) - D_1(z)) (the log-odds
    that z comes from q(z)); (2) the discriminator step on the *detached* samples of the same
    batch (as dlib does; Kim & Mnih draw a second batch): z labelled 0, permute_dims(z)
    labelled 1, cross-entropy averaged over both halves. D has its own Adam optimiser
    (lr `d_lr`, default 1e-4, betas 0.5/0.9). Default gamma = 35 (Kim & Mnih, dSprites).
    """

    name, display_name = "factor-vae", "FactorVAE"
    fields = VAEMethod.fields + ("factor_gamma", "factor_d_lr")

    def __init__(self, cfg, dataset_info):
        super().__init__(cfg, dataset_info)
        self.gamma = float(cfg.factor_gamma)
        self.d_lr = float(cfg.factor_d_lr)

    def build_networks(self):
        nets = super().build_networks()
        nets["D"] = FactorDiscriminator(self.latent_dim)
        return nets

    def build_optimizers(self, nets):
        opts = super().build_optimizers(nets)
        opts["D"] = torch.optim.Adam(nets["D"].parameters(), lr=self.d_lr, betas=FACTOR_D_ADAM_BETAS, eps=1e-8)
        return opts

    def regulariser(self, ctx, nets, z, mean, logvar, kl):
        # D's parameters take no gradient from the VAE loss: the graph is built with them frozen.
        set_requires_grad(nets["D"], False)
        try:
            logits = nets["D"](z)
        finally:
            set_requires_grad(nets["D"], True)
        tc = (logits[:, 0] - logits[:, 1]).mean()
        return kl + self.gamma * tc, {"vae/tc": tc}

    def after_vae_step(self, ctx, nets, batch, z):
        D = nets["D"]
        # Global draw (same stream on every rank), this rank's rows: each rank permutes its own samples.
        keys = ctx.rng.random((batch.global_batch, self.latent_dim))
        keys = keys[dist.local_slice(batch.global_batch)]
        z_perm = permute_dims(z, keys)
        with ctx.autocast():
            logits_q = D(z)
            logits_p = D(z_perm)
            zeros = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
            loss = 0.5 * (F.cross_entropy(logits_q, zeros) + F.cross_entropy(logits_p, zeros + 1))
        ctx.optimizer_step("D", loss, list(D.parameters()))
        with torch.no_grad():
            acc = 0.5 * ((logits_q.argmax(1) == 0).float().mean() + (logits_p.argmax(1) == 1).float().mean())
        ctx.report("D/loss", loss)
        ctx.report("D/acc", acc)

