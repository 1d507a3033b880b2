"""Info-StyleGAN (eqs 1-2) and Semi-StyleGAN (eqs 3-7), docs/method.md.

One step = a D/E phase, then a G phase (alternating updates, as in the paper's code):

  L^(D,E) = -L_GAN + gamma_E L_unsup + beta L_sup + alpha_E L_sr   (+ lazy R1 on reals)
  L^(G)   =  L_GAN + gamma_G L_unsup + alpha L_sr                  (+ recon terms, below)

L_GAN is the non-saturating logistic loss (softplus form). L_unsup = ||E(G(c, z)) - c||,
L_sup = ||E(x) - c|| on the labelled set J, L_sr = ||E(x~) - c~|| on MixUp pairs of a labelled
real image and a generated image (eq 5: lambda ~ Beta(xi, xi), lambda' = max(lambda, 1 - lambda)).
Every norm is the plain L2 norm per sample, averaged over the batch.

Which loss reaches which network follows from the phases: in the D/E phase G runs without
gradients, so L_sup and the D/E half of L_sr never reach G; in the G phase D's parameters do
not take gradients, so gamma_G L_unsup and the G half of L_sr only update G. With gamma_E = 0
(the Semi-StyleGAN default) L_unsup never reaches E. alpha_E defaults to alpha (the paper: L_sr
reaches both); alpha_E = 0 keeps G's half of the mixes out of E's training, so that E cannot
learn G's stand-ins for a factor's values from them.

This project's additions (config fields; docs/method.md, "This project's additions"):
`code_head = "classify"` (E reads each factor's value with a softmax; see `_code_loss`),
`encoder = "separate"` with `encoder_noise` (E a plain CNN of its own that reads through Gaussian
noise in training), `g_plain` with G's Adam betas (no equalised learning rate in G), and two
labelled reconstruction terms in G's loss: `recon` (W times the mean |G(c, z) - x| over the
labelled images x whose codes c are all known) and `recon_hard` (the same over the worst 5% of
each image's pixels, where a small object's wrong outline weighs). They suit datasets whose
factors determine the image, so G(c, z) has one right answer there.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from semistylegan import dist, pipeline
from semistylegan.methods.base import Batch, Method, StepContext, StepPlan, l2_norm_loss, set_requires_grad
from semistylegan.nets import Discriminator, Generator
from semistylegan.nets.discriminator import SeparateEncoderDiscriminator, split_code_logits
from semistylegan.nets.layers import store_at_runtime_scale

__all__ = ["SemiStyleGAN", "InfoStyleGAN", "hard_pixel_count", "HARD_PIXEL_FRACTION", "build_discriminator",
           "with_encoder", "d_optimizer", "head_sizes", "code_loss", "code_cross_entropy", "mix_code_loss"]

# The share of each image's pixels `recon_hard` averages (docs/negative-results.md: 2% was worse).
HARD_PIXEL_FRACTION = 0.05
# D's Adam betas (StyleGAN's).
D_BETAS = (0.0, 0.99)

_GAN_FIELDS = ("gamma", "gamma_G", "gamma_E", "code_head", "encoder", "encoder_noise", "r1_gamma", "r1_interval",
               "g_plain", "g_beta1", "g_beta2")


@dataclass
class StepDraws:
    """The random inputs of one phase (SemiStyleGAN._draw_step)."""

    codes: torch.Tensor                     # c' of the fakes, from the prior
    z: torch.Tensor
    mix_codes: torch.Tensor | None = None   # fresh MixUp partners' c' and z (None: the fakes are reused)
    mix_z: torch.Tensor | None = None
    lam: torch.Tensor | None = None         # MixUp's lambda' (eq 5), None without L_sr
    recon_z: torch.Tensor | None = None     # z for G(c, z) of the labelled codes (reconstruction terms)


@dataclass
class StepImages:
    """The generated images of one phase (SemiStyleGAN._generate)."""

    fake: torch.Tensor
    partners: torch.Tensor | None = None        # MixUp partners x' and their codes c'
    partner_codes: torch.Tensor | None = None
    recon: torch.Tensor | None = None           # G(c, z) for the labelled codes c


def hard_pixel_count(num_pixels: int) -> int:
    """How many of an image's pixels `recon_hard` averages: the worst twentieth, at least one."""
    return max(1, round(num_pixels * HARD_PIXEL_FRACTION))


def build_discriminator(cfg, factor_sizes, channels: int) -> Discriminator:
    """D with its code head on the shared trunk: one output per factor (regression) or one per
    value of each factor (`code_head = "classify"`)."""
    classes = tuple(int(m) for m in factor_sizes) if cfg.code_head == "classify" else None
    return Discriminator(len(factor_sizes), cfg.resolution, channels, cfg.channel_base, cfg.channel_max,
                         cfg.mbstd_group, code_classes=classes)


def with_encoder(cfg, D: nn.Module, num_codes: int) -> nn.Module:
    """D as it is (E shares its trunk), or D beside a plain CNN E of its own (`encoder = "separate"`)."""
    if cfg.encoder != "separate":
        return D
    return SeparateEncoderDiscriminator(D, cfg.resolution, D.img_channels, num_codes, D.code_classes,
                                        cfg.encoder_noise)


def d_optimizer(cfg, D: nn.Module) -> torch.optim.Optimizer:
    """D/E's Adam. Lazy R1 is added to every r1_interval-th ordinary D step (its weight scaled by
    the interval, see d_phase_terms), not run as an extra optimiser step, so D keeps the plain lr
    and betas: StyleGAN2's lr/beta correction only applies to a separate R1 step. A separate E is
    a plain CNN and has a group of its own with Adam's usual betas."""
    d_group = {"lr": cfg.lr, "betas": D_BETAS}
    if isinstance(D, SeparateEncoderDiscriminator):
        groups = [{"params": list(D.D.parameters()), **d_group},
                  {"params": list(D.E.parameters()), "lr": cfg.lr, "betas": (0.9, 0.999)}]
    else:
        groups = [{"params": list(D.parameters()), **d_group}]
    return torch.optim.Adam(groups, eps=1e-8)


def head_sizes(cfg, factor_sizes) -> list[int] | None:
    """The classifier's values per factor (`code_head = "classify"`), None for the regression head."""
    return [int(m) for m in factor_sizes] if cfg.code_head == "classify" else None


def code_loss(out: torch.Tensor, codes: torch.Tensor, known: torch.Tensor | None,
              sizes: list[int] | None) -> torch.Tensor:
    """||E(x) - c||_2 averaged over the batch (eqs 1, 3), or, with the classifier head (`sizes`,
    the values of each factor), the cross-entropy of each factor's softmax against the value of c,
    averaged over the known factors and the batch. Regression pulls a weak reader's outputs towards
    the mean, so the code 1 of a real heart reads as 0.57 (docs/negative-results.md), and L_unsup's
    target can only be met off the data; a classifier's target, the right value, is met by real images."""
    if sizes is None:
        return l2_norm_loss(out, codes, known)
    return code_cross_entropy(out, codes, known, sizes).mean()


def code_cross_entropy(out: torch.Tensor, codes: torch.Tensor, known: torch.Tensor | None,
                       sizes: list[int]) -> torch.Tensor:
    """(N,) per-sample cross-entropy, mean over the known factors (0 when none is known)."""
    denom = torch.tensor([max(m - 1, 1) for m in sizes], dtype=torch.float32, device=out.device)
    classes = (codes.float() * denom).round().long()
    classes = torch.minimum(classes.clamp_min(0), (denom.long())[None].expand_as(classes))
    losses = torch.stack([F.cross_entropy(chunk, classes[:, k], reduction="none")
                          for k, chunk in enumerate(split_code_logits(out.float(), sizes))], dim=1)
    if known is None:
        return losses.mean(dim=1)
    known = known.float()
    return (losses * known).sum(dim=1) / known.sum(dim=1).clamp_min(1.0)


def mix_code_loss(out: torch.Tensor, c_mix: torch.Tensor, lam: torch.Tensor, codes_a: torch.Tensor,
                  codes_b: torch.Tensor, known: torch.Tensor | None, sizes: list[int] | None) -> torch.Tensor:
    """Eq (6) on x~ = l' x_a + (1 - l') x_b: ||E(x~) - c~|| or, for the classifier, the
    cross-entropy against the mixed one-hot targets l' onehot(c_a) + (1 - l') onehot(c_b)
    (MixUp's usual form), over the factors `known` (those of c_a; c_b counts where c_a is known)."""
    if sizes is None:
        return l2_norm_loss(out, c_mix, known)  # eq (6)
    a = code_cross_entropy(out, codes_a, known, sizes)
    b = code_cross_entropy(out, codes_b, known, sizes)
    return (lam * a + (1.0 - lam) * b).mean()  # eq (6)


class SemiStyleGAN(Method):
    name = "semi"
    display_name = "Semi-StyleGAN"
    ema_networks = ("G",)
    uses_labels = True
    identified_codes = True
    conditional_generator = True
    prior_samples = True
    fields = _GAN_FIELDS + ("beta", "alpha", "alpha_E", "mixup_xi", "recon", "recon_hard", "warmup_kimg")
    # MixUp partners: the step's own fakes when the labelled batch is no larger than the batch.
    reuse_step_fakes_for_mixup = True

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.recon = float(cfg.recon)
        self.recon_hard = float(cfg.recon_hard)
        # the warm-up's steps, each on a labelled batch (it counts those images)
        self.warmup_steps = int(round(cfg.warmup_kimg * 1000 / cfg.labeled_batch))
        self.w = cfg.weights
        self.channels = int(dataset_info["channels"])
        # Labelled batches are drawn only when a term reads them.
        self.uses_labels = self._need_labels()
        # E as a classifier (`code_head = "classify"`): see _code_loss.
        self.classify = cfg.code_head == "classify"

    @property
    def code_sizes(self):
        """Values of each factor E reads (all factors here; the fine ones in semi-fine)."""
        return self.factor_sizes

    # ------------------------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        cfg = self.cfg
        G = Generator(self.num_factors, cfg.z_dim, cfg.w_dim, cfg.resolution, self.channels,
                      cfg.channel_base, cfg.channel_max, cfg.mapping_layers, cfg.mapping_lr_mul)
        D = build_discriminator(cfg, self.factor_sizes, self.channels)
        return self._finish_networks(G, D)

    def _finish_networks(self, G: nn.Module, D: nn.Module) -> dict[str, nn.Module]:
        """The options common to every generator/discriminator pair: plain G, separate E."""
        return {"G": store_at_runtime_scale(G) if self.cfg.g_plain else G,
                "D": with_encoder(self.cfg, D, len(self.code_sizes))}

    def build_optimizers(self, nets):
        opts = {"G": self.g_optimizer(nets["G"]), "D": d_optimizer(self.cfg, nets["D"])}
        if self.warmup_steps:
            # An Adam of its own: G's Adam carried out of the warm-up, whose small squared-error
            # gradients leave tiny second moments, takes huge steps on the first GAN gradients and
            # wiped out the warm-up's shapes within 20 kimg (docs/negative-results.md).
            opts["G_warmup"] = self.g_optimizer(nets["G"])
        return opts

    def g_optimizer(self, G: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        return torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.g_beta1, cfg.g_beta2), eps=1e-8)

    # E's losses: L_sup, L_unsup, L_sr ---------------------------------------------------------
    def _code_loss(self, out: torch.Tensor, codes: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        return code_loss(out, codes, known, head_sizes(self.cfg, self.code_sizes))

    def _mix_loss(self, out: torch.Tensor, c_mix: torch.Tensor, lam: torch.Tensor, labeled_codes: torch.Tensor,
                  fake_codes: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        return mix_code_loss(out, c_mix, lam, labeled_codes, fake_codes, known, head_sizes(self.cfg, self.code_sizes))

    # random inputs ----------------------------------------------------------------------
    def _draw_fakes(self, ctx: StepContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """c' uniform over the factor grid, z ~ N(0, I): global draws, this rank's slice."""
        classes = ctx.integers(n, self.factor_sizes)
        codes = ctx.local(self.sample_prior_codes(classes))
        z = ctx.randn(n, self.z_dim)
        return codes, z

    def _synthesize(self, ctx: StepContext, G, codes: torch.Tensor, z: torch.Tensor, source: torch.Tensor | None,
                    **kwargs) -> torch.Tensor:
        """G(c, z) in a training step; `source` (real images, one per code; None unless the method's
        `coarse_input`) is for generators that start from a real image (Semi-StyleGAN-fine)."""
        return G(codes, z, **kwargs)

    def _view_source(self, ctx: StepContext, source: torch.Tensor) -> torch.Tensor:
        """G's view of a batch of source images in training (Semi-StyleGAN-fine jitters their hue)."""
        return source

    def _label_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes E is trained to read on labelled images, and which of them are known."""
        return batch.labeled_codes, batch.labeled_mask

    def _draw_step(self, ctx: StepContext, batch: Batch, sr: bool, recon: bool) -> StepDraws:
        """Every random input of one phase, drawn before any network runs, in this order: G's
        (c', z); fresh MixUp partners' (c', z) when the step's fakes are not reused; MixUp's
        lambda (eq 5); z for the reconstruction terms."""
        codes, z = self._draw_fakes(ctx, batch.global_batch)
        draws = StepDraws(codes, z)
        if sr:
            if not self._reuses_step_fakes(batch):
                draws.mix_codes, draws.mix_z = self._draw_fakes(ctx, batch.global_labeled_batch)
            lam = ctx.beta(batch.global_labeled_batch, self.cfg.mixup_xi)
            draws.lam = torch.maximum(lam, 1.0 - lam)  # eq (5): lambda' = max(lambda, 1 - lambda)
        if recon:
            draws.recon_z = ctx.randn(batch.global_labeled_batch, self.z_dim)
        return draws

    def _reuses_step_fakes(self, batch: Batch) -> bool:
        """MixUp partners are the step's own fakes (their first L) when the labelled batch is no
        larger than the batch (and `reuse_step_fakes_for_mixup`), which saves generating them.
        (Two ranks then pair labelled images with other fakes than one process would: equivalent
        in distribution, bit-equal only when labeled_batch == batch.)"""
        return self.reuse_step_fakes_for_mixup and batch.global_labeled_batch <= batch.global_batch

    def _generate(self, ctx: StepContext, G, batch: Batch, draws: StepDraws, train: bool) -> StepImages:
        """One generator pass over every image the phase needs: the fakes G(c', z) from the
        prior, fresh MixUp partners, and G(c, z) for the labelled codes c of the reconstruction
        terms. Only the prior fakes move G's average w (`train`)."""
        parts = [(draws.codes, draws.z, batch.real)]
        if draws.mix_z is not None:
            parts.append((draws.mix_codes, draws.mix_z, batch.labeled))
        if draws.recon_z is not None:
            parts.append((self._label_targets(batch)[0], draws.recon_z, batch.labeled))
        codes, z, sources = zip(*parts)
        sizes = [int(c.shape[0]) for c in codes]
        # only a generator that starts from a real image reads the sources
        source = torch.cat([self._view_source(ctx, s) for s in sources]) if self.coarse_input else None
        out = ctx.image(self._synthesize(ctx, G, torch.cat(codes), torch.cat(z), source,
                                         update_w_avg=train, w_avg_rows=sizes[0]))
        chunks = list(out.split(sizes))
        images = StepImages(fake=chunks.pop(0))
        if draws.mix_z is not None:
            images.partners, images.partner_codes = chunks.pop(0), draws.mix_codes
        elif draws.lam is not None:
            n = batch.labeled.shape[0]
            images.partners, images.partner_codes = images.fake[:n], draws.codes[:n]
        if draws.recon_z is not None:
            images.recon = chunks.pop(0)
        return images

    def _mixup(self, batch: Batch, draws: StepDraws, images: StepImages) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq (5): x~ = l' x + (1 - l') x', c~ = l' c + (1 - l') c' for the labelled x and the
        generated partner x' = G(c', z)."""
        lam = draws.lam
        x_mix = lam[:, None, None, None] * batch.labeled + (1.0 - lam[:, None, None, None]) * images.partners  # eq (5)
        c_mix = lam[:, None] * self._label_targets(batch)[0] + (1.0 - lam[:, None]) * images.partner_codes  # eq (5)
        return x_mix, c_mix

    def _sr_loss(self, batch: Batch, draws: StepDraws, images: StepImages, c_mix: torch.Tensor,
                 out: torch.Tensor) -> torch.Tensor:
        """L_sr (eq 6) from E's output on this phase's MixUp images."""
        targets, known = self._label_targets(batch)
        return self._mix_loss(out, c_mix, draws.lam, targets, images.partner_codes, known)

    def _need_labels(self) -> bool:
        return bool(self.w["beta"] > 0 or self.w["alpha"] > 0 or self.w["alpha_E"] > 0 or self._recon_weights()
                    or self.warmup_steps > 0)

    def _recon_weights(self) -> dict[str, float]:
        """The reconstruction terms that are on: {name: weight}."""
        return {k: w for k, w in (("recon", self.recon), ("recon_hard", self.recon_hard)) if w > 0}

    # phases -----------------------------------------------------------------------------
    # Each phase makes one generator pass and one pass of D (and of E, when separate) over every
    # image it reads, its sources concatenated (Discriminator.heads): larger convolutions than one
    # pass per source, and nothing mixes the sources (minibatch-stddev groups stay within each).
    def d_phase_terms(self, ctx: StepContext, nets, batch: Batch, do_r1: bool) -> dict[str, tuple[float, torch.Tensor]]:
        """Loss terms of the D/E phase as {name: (weight, value)}. G runs without gradients."""
        G, D = nets["G"], nets["D"]
        w = self.w
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        use_labels = self._need_labels() and batch.labeled is not None
        sup, sr = use_labels and w["beta"] > 0, use_labels and w["alpha_E"] > 0
        draws = self._draw_step(ctx, batch, sr=sr, recon=False)
        with ctx.autocast():
            with torch.no_grad():
                images = self._generate(ctx, G, batch, draws, train=False)
            real = ctx.image(batch.real.detach().requires_grad_(do_r1))
            # R1 differentiates the real logits with respect to the real images: those get a pass
            # of their own on R1 steps, so that its double backward runs over them alone.
            inputs = [(images.fake, True, w["gamma_E"] > 0)]
            if not do_r1:
                inputs.append((real, True, False))
            if sup:
                inputs.append((ctx.image(batch.labeled), False, True))
            if sr:
                x_mix, c_mix = self._mixup(batch, draws, images)
                inputs.append((ctx.image(x_mix), False, True))
            outs = D.heads(*map(list, zip(*inputs)))
            (fake_logits, fake_pred), rest = outs[0], outs[1:]
            if do_r1:  # differentiated twice: never through a compiled graph (--compile)
                with pipeline.eager_forward():
                    real_logits = D.heads([real], [True], [False])[0][0]
            else:
                real_logits = rest.pop(0)[0]
            # -L_GAN for D: softplus(D(G(c, z))) + softplus(-D(x))
            terms["gan"] = (1.0, F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean())  # eq (2)
            if w["gamma_E"] > 0:
                terms["unsup"] = (w["gamma_E"], self._code_loss(fake_pred, draws.codes))  # eq (1)
            if sup:
                targets, known = self._label_targets(batch)
                terms["sup"] = (w["beta"], self._code_loss(rest.pop(0)[1], targets, known))  # eq (3)
            if sr:
                terms["sr"] = (w["alpha_E"], self._sr_loss(batch, draws, images, c_mix, rest.pop(0)[1]))  # eq (6)
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
            penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
            terms["r1"] = (self.cfg.r1_gamma / 2 * self.cfg.r1_interval, penalty)
        return terms

    def g_phase_terms(self, ctx: StepContext, nets, batch: Batch) -> dict[str, tuple[float, torch.Tensor]]:
        """Loss terms of the G phase; D's parameters do not take gradients here."""
        G, D = nets["G"], nets["D"]
        w = self.w
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        labeled = self._need_labels() and batch.labeled is not None
        sr = labeled and w["alpha"] > 0
        weights = self._recon_weights() if labeled else {}
        draws = self._draw_step(ctx, batch, sr=sr, recon=bool(weights))
        with ctx.autocast():
            images = self._generate(ctx, G, batch, draws, train=True)
            inputs = [(images.fake, True, w["gamma_G"] > 0)]
            if sr:
                x_mix, c_mix = self._mixup(batch, draws, images)
                inputs.append((ctx.image(x_mix), False, True))
            outs = D.heads(*map(list, zip(*inputs)))
            logits, pred = outs[0]
            terms["gan"] = (1.0, F.softplus(-logits).mean())  # eq (2): L_GAN for G, non-saturating
            if w["gamma_G"] > 0:
                terms["unsup"] = (w["gamma_G"], self._code_loss(pred, draws.codes))  # eq (1)
            if sr:
                terms["sr"] = (w["alpha"], self._sr_loss(batch, draws, images, c_mix, outs[1][1]))  # eq (6)
        if weights:
            values = self._recon_terms(batch, images.recon, weights)
            terms.update((k, (weights[k], values[k])) for k in weights)
        return terms

    def _over_known(self, batch: Batch, per_image: torch.Tensor) -> torch.Tensor:
        """The mean of a per-image value over the labelled images whose codes are all known (0
        when none is): the images whose code fixes the picture G is asked to redraw."""
        full = self._label_targets(batch)[1].all(dim=1).float()
        return (per_image * full).sum() / full.sum().clamp_min(1.0)

    def _recon_terms(self, batch: Batch, out: torch.Tensor, which) -> dict[str, torch.Tensor]:
        """The reconstruction terms named in `which` (`recon`, `recon_hard`): between G(c, z) (`out`)
        and the labelled x of code c, the mean L1 over pixels and over the worst twentieth of the
        pixels, averaged over the labelled images whose codes are all known (0 when none is)."""
        err = (out.float() - batch.labeled.float()).abs().mean(dim=1).flatten(1)  # (N, H*W) pixel errors
        per_image = {}
        if "recon" in which:
            per_image["recon"] = err.mean(dim=1)
        if "recon_hard" in which:
            per_image["recon_hard"] = err.topk(hard_pixel_count(err.shape[1]), dim=1, sorted=False).values.mean(dim=1)
        return {name: self._over_known(batch, v) for name, v in per_image.items()}

    def warmup_terms(self, ctx: StepContext, nets, batch: Batch) -> dict[str, tuple[float, torch.Tensor]]:
        """A warm-up step's one term: the mean squared pixel error between G(c, z) and the labelled
        image x of code c, over the labelled images whose codes are all known (no D, no E). Squared,
        not absolute: the L1 minimiser of an unsure pixel is its median, the background, and G
        learned to draw faint blobs (docs/negative-results.md)."""
        z = ctx.randn(batch.global_labeled_batch, self.z_dim)
        with ctx.autocast():
            out = self._synthesize(ctx, nets["G"], self._label_targets(batch)[0], z, None)
        per_image = (out.float() - batch.labeled.float()).square().flatten(1).mean(dim=1)
        return {"warmup": (1.0, self._over_known(batch, per_image))}

    def step_plan(self, step: int) -> StepPlan:
        """A warm-up step reads a labelled batch and no reals, and counts the labelled images."""
        if step < self.warmup_steps:
            return StepPlan(0, self.cfg.labeled_batch, self.cfg.labeled_batch)
        return super().step_plan(step)

    def train_step(self, ctx: StepContext, nets, batch: Batch) -> None:
        G, D = nets["G"], nets["D"]
        cfg = self.cfg
        if ctx.step < self.warmup_steps:
            set_requires_grad(G, True)
            terms = self.warmup_terms(ctx, nets, batch)
            # warm-up, G alone: the squared reconstruction error (this project's addition, docs/method.md)
            ctx.optimizer_step("G_warmup", sum(wt * v for wt, v in terms.values()), list(G.parameters()))
            ctx.report("G/warmup", terms["warmup"][1])
            return
        do_r1 = cfg.r1_gamma > 0 and ctx.step % cfg.r1_interval == 0
        if D.noise > 0:  # E's input noise, from the saved random stream (drawn only then)
            D.reseed_noise(int(ctx.rng.integers(2**62)) + dist.rank(), ctx.device)

        set_requires_grad(G, False)
        set_requires_grad(D, True)
        terms = self.d_phase_terms(ctx, nets, batch, do_r1)
        # eq (7), D/E: -L_GAN + gamma_E L_unsup + beta L_sup + alpha_E L_sr (+ R1)
        ctx.optimizer_step("D", sum(wt * v for wt, v in terms.values()), list(D.parameters()))
        for name, (_, v) in terms.items():
            ctx.report(f"D/{name}", v)

        set_requires_grad(G, True)
        set_requires_grad(D, False)
        terms = self.g_phase_terms(ctx, nets, batch)
        # eq (7), G: L_GAN + gamma_G L_unsup + alpha L_sr (+ recon terms)
        ctx.optimizer_step("G", sum(wt * v for wt, v in terms.values()), list(G.parameters()))
        for name, (_, v) in terms.items():
            ctx.report(f"G/{name}", v)
        set_requires_grad(D, True)

    # evaluation -------------------------------------------------------------------------
    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        return nets["D"].read_codes(images)

    def generate(self, nets, codes: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return nets["G"](codes, z, truncation_psi=truncation_psi)


class InfoStyleGAN(SemiStyleGAN):
    """Info-StyleGAN (eqs 1-2): no labels; L_unsup reaches G and E (gamma_E defaults to gamma).
    Its codes are not identified with the factors (no L2 / L2-gen), but G is conditioned on K
    codes, so MIG-gen applies."""

    name = "info"
    display_name = "Info-StyleGAN"
    uses_labels = False
    identified_codes = False
    fields = _GAN_FIELDS

    def _need_labels(self) -> bool:
        return False
