"""Info-StyleGAN (eqs 1-2) and Semi-StyleGAN (eqs 3-7) of SPEC.md.

One step = a D/E phase, then a G phase (alternating updates, as in the paper's code):

  L^(D,E) = -L_GAN + gamma_E L_unsup + beta L_sup + alpha_E L_sr   (+ lazy R1 on reals)
  L^(G)   =  L_GAN + gamma_G L_unsup + alpha L_sr

L_GAN is the non-saturating logistic loss (softplus form). L_unsup = ||E(G(c, z)) - c||,
L_sup = ||E(x) - c|| on the labelled set J, L_sr = ||E(x~) - c~|| on MixUp pairs of a labelled
real image and a generated image (eq 5: lambda ~ Beta(xi, xi), lambda' = max(lambda, 1 - lambda)).
Every norm is the plain L2 norm per sample, averaged over the batch.

Which loss reaches which network follows from the phases: in the D/E phase G runs without
gradients, so L_sup and the D/E half of L_sr never reach G; in the G phase D's parameters do
not take gradients, so gamma_G L_unsup and the G half of L_sr only update G. With gamma_E = 0
(the Semi-StyleGAN default) L_unsup never reaches E. alpha_E defaults to alpha (SPEC.md: L_sr
reaches both); alpha_E = 0 keeps G's half of the mixes out of E's training, so that E cannot
learn G's stand-ins for a factor's values from them.

Optional pair head (`cond_gan` > 0, not part of SPEC.md): D gets a projection head cond(x, c)
trained to tell the labelled pairs (x, c) of J from generated pairs (G(c', z), c'), and G takes
softplus(-cond(G(c', z), c')). Unlike E (gamma_E = 0), this head sees G's images labelled with
the code they were asked for, and learns to reject a blob that E reads as a heart but that looks
like no real heart; unlike gamma_E > 0, it cannot be satisfied by reading G's stand-ins as c'.

Other options beyond SPEC.md (config fields; BENCHMARKS.md section 3, session 4, for what each
does on dSprites): `code_head = "classify"` (E reads each factor's value with a softmax; see
`_code_loss`), `fake_classes` (the classifier also learns G's images as classes of their own,
ADC-GAN), `encoder = "separate"` and `encoder_noise` (E a plain CNN of its own that reads through
Gaussian noise in training; nets.discriminator.SeparateEncoderDiscriminator), and `g_plain` /
`d_plain` with their Adam betas (no equalised learning rate). `dsprites-ctrl` combines the
classifier, the separate noisy E and the plain G.

Method option (`--set recon=W`, semi and semi-fine; not SPEC.md): W times the mean L1 distance
between G(c, z) (z drawn fresh) and the labelled image x whose code is c, over the labelled
images whose codes are all known, in G's loss. It suits the ground-truth datasets, whose factors
determine the image, so G(c, z) has one right answer there; with nuisance factors it pulls G
towards their average.

Method option (`--set recon_edges=W`, semi and semi-fine; not SPEC.md): W times the mean L1
distance between the image gradients (differences of neighbouring pixels, across and down) of the
same G(c, z) and x, in G's loss. Flat regions weigh nothing there, so it asks G for the outlines
and the shading where the pixel term is dominated by the large flat areas (walls, floor).

Method option (`--set recon_hard=W`, semi and semi-fine; not SPEC.md): W times the mean, over the
same images, of the worst 5% of each image's pixel errors (|G(c, z) - x| averaged over channels,
the top twentieth of the pixels). A small object drawn with the wrong outline costs little in the
mean over all pixels, which large flat areas dominate, and much among the worst pixels.
`--set recon_hard_frac=F` (0 < F <= 1, default 0.05) sets that share of the pixels.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from semistylegan import dist
from semistylegan.errors import UserError
from semistylegan.methods.base import Batch, Method, StepContext, l2_norm_loss, set_requires_grad
from semistylegan.nets import Discriminator, Generator
from semistylegan.nets.discriminator import SeparateEncoderDiscriminator, split_code_logits, value_logits
from semistylegan.nets.layers import store_at_runtime_scale

__all__ = ["SemiStyleGAN", "hard_pixel_count"]


def hard_pixel_count(num_pixels: int, fraction: float = 0.05) -> int:
    """How many of an image's pixels `recon_hard` averages: the worst `fraction` (0 < f <= 1) of
    them, a twentieth by default, and at least one."""
    return max(1, round(num_pixels * fraction))


class SemiStyleGAN(Method):
    ema_networks = ("G",)
    # MixUp partners: the step's own fakes when the labelled batch is no larger than the batch.
    reuse_step_fakes_for_mixup = True
    # G is conditioned on the K factor codes, so MIG-gen/L2-gen through the oracle apply.
    conditional_generator = True
    # semi's options; info (no labels) takes none; semi-fine adds its own
    options: tuple[str, ...] = ("recon", "recon_edges", "recon_hard", "recon_hard_frac")

    def __init__(self, cfg, dataset_info: dict):
        super().__init__(cfg, dataset_info)
        self.checked_options()
        self.recon = self._float("recon", 0.0)
        self.recon_edges = self._float("recon_edges", 0.0)
        self.recon_hard = self._float("recon_hard", 0.0)
        self.recon_hard_frac = self._float("recon_hard_frac", 0.05)
        if not 0 < self.recon_hard_frac <= 1:
            raise UserError(f"recon_hard_frac must be in (0, 1], got {self.recon_hard_frac}")
        self.name = cfg.method
        self.w = cfg.weights
        self.channels = int(dataset_info["channels"])
        self.uses_labels = self._need_labels()
        # Info-StyleGAN's codes are not identified with the factors (no L2 / L2-gen).
        self.identified_codes = cfg.method != "info"
        # E as a classifier (`code_head = "classify"`, not SPEC.md): see _code_loss.
        self.classify = cfg.code_head == "classify"
        self.fake_classes = float(cfg.fake_classes)

    def accepted_options(self) -> tuple[str, ...]:
        """Info-StyleGAN (this class with --method info) has no labels, so no `recon` (nor its variants)."""
        return () if self.cfg.method == "info" else self.options

    @property
    def code_sizes(self):
        """Values of each factor E reads (all factors here; the fine ones in semi-fine)."""
        return self.factor_sizes

    # ------------------------------------------------------------------------------------
    def build_networks(self) -> dict[str, nn.Module]:
        cfg = self.cfg
        G = Generator(self.num_factors, cfg.z_dim, cfg.w_dim, cfg.resolution, self.channels,
                      cfg.channel_base, cfg.channel_max, cfg.mapping_layers, cfg.mapping_lr_mul)
        D = Discriminator(self.num_factors, cfg.resolution, self.channels, cfg.channel_base, cfg.channel_max,
                          cfg.mbstd_group, conditional=cfg.cond_gan > 0,
                          code_classes=tuple(int(m) for m in self.factor_sizes) if self.classify else None,
                          fake_classes=self.fake_classes > 0)
        return self._finish_networks(G, D)

    def _finish_networks(self, G: nn.Module, D: nn.Module) -> dict[str, nn.Module]:
        """The options common to every generator/discriminator pair: plain G/D, separate E."""
        cfg = self.cfg
        if cfg.d_plain:
            store_at_runtime_scale(D)
        if cfg.encoder == "separate":
            D = SeparateEncoderDiscriminator(D, cfg.resolution, self.channels, len(self.code_sizes), D.code_classes,
                                             D.fake_classes, cfg.encoder_noise)
        return {"G": store_at_runtime_scale(G) if cfg.g_plain else G, "D": D}

    def build_optimizers(self, nets):
        cfg = self.cfg
        D = nets["D"]
        # Lazy R1 is added to every r1_interval-th ordinary D step (its weight scaled by the
        # interval, see d_phase_terms), not run as an extra optimiser step, so D's Adam keeps the
        # plain lr and betas: StyleGAN2's lr/beta correction only applies to a separate R1 step.
        d_group = {"lr": cfg.lr, "betas": (cfg.d_beta1, cfg.d_beta2)}
        if isinstance(D, SeparateEncoderDiscriminator):  # E in its own group: the plain CNN's Adam
            groups = [{"params": list(D.D.parameters()), **d_group},
                      {"params": list(D.E.parameters()), "lr": cfg.lr, "betas": (0.9, 0.999)}]
        else:
            groups = [{"params": list(D.parameters()), **d_group}]
        return {
            "G": self.g_optimizer(nets["G"]),
            "D": torch.optim.Adam(groups, eps=1e-8),
        }

    def g_optimizer(self, G: nn.Module) -> torch.optim.Optimizer:
        cfg = self.cfg
        return torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=(cfg.g_beta1, cfg.g_beta2), eps=1e-8)

    # E's losses: L_sup, L_unsup, L_sr ---------------------------------------------------------
    def _code_loss(self, out: torch.Tensor, codes: torch.Tensor, known: torch.Tensor | None = None,
                   target: str = "real") -> torch.Tensor:
        """||E(x) - c||_2 averaged over the batch (SPEC.md), or, with the classifier head, the
        cross-entropy of each factor's softmax against the value of c, averaged over the known
        factors and the batch. Regression pulls a weak reader's outputs towards the mean, so the
        code 1 of a real heart reads as 0.57 (BENCHMARKS.md, section 1), and L_unsup's target can
        only be met off the data; a classifier's target, the right value, is met by real images.
        `target` (fake classes only): "real" (a real image of value c), "fake" (a generated
        image asked for c) or "value" (either)."""
        if not self.classify:
            return l2_norm_loss(out, codes, known)
        return self._cross_entropy(out, codes, known, target).mean()

    def _cross_entropy(self, out: torch.Tensor, codes: torch.Tensor, known: torch.Tensor | None,
                       target: str = "real") -> torch.Tensor:
        """(N,) per-sample cross-entropy, mean over the known factors (0 when none is known)."""
        sizes = [int(m) for m in self.code_sizes]
        denom = torch.tensor([max(m - 1, 1) for m in sizes], dtype=torch.float32, device=out.device)
        classes = (codes.float() * denom).round().long()
        classes = torch.minimum(classes.clamp_min(0), (denom.long())[None].expand_as(classes))
        losses = []
        for k, (chunk, m) in enumerate(zip(split_code_logits(out.float(), sizes, self.fake_classes > 0), sizes)):
            idx = classes[:, k]
            if chunk.shape[1] != m:  # 2m logits: real values, then generated ones
                if target == "value":
                    chunk = value_logits(chunk, m)
                elif target == "fake":
                    idx = idx + m
            losses.append(F.cross_entropy(chunk, idx, reduction="none"))
        losses = torch.stack(losses, dim=1)
        if known is None:
            return losses.mean(dim=1)
        known = known.float()
        return (losses * known).sum(dim=1) / known.sum(dim=1).clamp_min(1.0)

    def _mix_loss(self, out: torch.Tensor, c_mix: torch.Tensor, lam: torch.Tensor, labeled_codes: torch.Tensor,
                  fake_codes: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Eq (6) on x~: ||E(x~) - c~|| or, for the classifier, the cross-entropy against the
        mixed one-hot targets l' onehot(c) + (1 - l') onehot(c') (MixUp's usual form)."""
        if not self.classify:
            return l2_norm_loss(out, c_mix, known)
        a = self._cross_entropy(out, labeled_codes, known, "value")
        b = self._cross_entropy(out, fake_codes, known, "value")  # the partner's code counts where c is known
        return (lam * a + (1.0 - lam) * b).mean()

    # random inputs ----------------------------------------------------------------------
    def _draw_fakes(self, ctx: StepContext, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """c' uniform over the factor grid, z ~ N(0, I): global draws, this rank's slice."""
        classes = ctx.integers(n, self.factor_sizes)
        codes = ctx.local(self.sample_prior_codes(classes))
        z = ctx.randn(n, self.z_dim)
        return codes, z

    def _mixup(self, ctx: StepContext, batch: Batch, fake: torch.Tensor, fake_codes: torch.Tensor):
        """Eq (5): x~ = l' x + (1 - l') x', c~ = l' c + (1 - l') c', l' = max(l, 1 - l)."""
        lam = ctx.beta(batch.global_labeled_batch, self.cfg.mixup_xi)
        lam = torch.maximum(lam, 1.0 - lam)
        x_mix = lam[:, None, None, None] * batch.labeled + (1.0 - lam[:, None, None, None]) * fake
        c_mix = lam[:, None] * self._label_targets(batch)[0] + (1.0 - lam[:, None]) * fake_codes
        return x_mix, c_mix, lam

    def _sr_term(self, ctx: StepContext, batch: Batch, G, D, fake: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """L_sr (eqs 5-6) on this step's MixUp pairs."""
        mix_fake, mix_codes = self._mix_partners(ctx, batch, G, fake, codes)
        x_mix, c_mix, lam = self._mixup(ctx, batch, mix_fake, mix_codes)
        targets, known = self._label_targets(batch)
        return self._mix_loss(D.encode(ctx.image(x_mix)), c_mix, lam, targets, mix_codes, known)

    def _synthesize(self, ctx: StepContext, G, codes: torch.Tensor, z: torch.Tensor, source: torch.Tensor,
                    **kwargs) -> torch.Tensor:
        """G(c, z) in a training step; `source` (this rank's real images of the step) is for
        generators that start from a real image (Semi-StyleGAN-fine) and unused here."""
        return G(codes, z, **kwargs)

    def _label_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The codes E is trained to read on labelled images, and which of them are known."""
        return batch.labeled_codes, batch.labeled_mask

    def _mix_partners(self, ctx: StepContext, batch: Batch, G, fake: torch.Tensor, codes: torch.Tensor):
        """Generated partners x' = G(c', z) for the MixUp pairs. When the labelled batch is no
        larger than the batch (and `reuse_step_fakes_for_mixup`), the step's own fakes are
        reused (their first L), which saves a generator pass; otherwise fresh ones are
        generated from the labelled images as `source`. (Two ranks then pair labelled images
        with other fakes than one process would: equivalent in distribution, bit-equal only
        when labeled_batch == batch.)"""
        n = batch.labeled.shape[0]
        if self.reuse_step_fakes_for_mixup and batch.global_labeled_batch <= batch.global_batch:
            return fake[:n], codes[:n]
        mix_codes, mix_z = self._draw_fakes(ctx, batch.global_labeled_batch)
        grad = torch.is_grad_enabled() and any(p.requires_grad for p in G.parameters())
        with torch.set_grad_enabled(grad):
            return ctx.image(self._synthesize(ctx, G, mix_codes, mix_z, batch.labeled)), mix_codes

    def _need_labels(self) -> bool:
        return (self.w["beta"] > 0 or self.w["alpha"] > 0 or self.w["alpha_E"] > 0 or self.cfg.cond_gan > 0
                or self._recon_weights())

    def _recon_weights(self) -> dict[str, float]:
        """The reconstruction terms that are on: {name: weight}."""
        return {k: w for k, w in (("recon", self.recon), ("recon_edges", self.recon_edges),
                                  ("recon_hard", self.recon_hard)) if w > 0}

    # phases -----------------------------------------------------------------------------
    def d_phase_terms(self, ctx: StepContext, nets, batch: Batch, do_r1: bool) -> dict[str, tuple[float, torch.Tensor]]:
        """Loss terms of the D/E phase as {name: (weight, value)}. G runs without gradients."""
        G, D = nets["G"], nets["D"]
        w = self.w
        cond_w = self.cfg.cond_gan
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        codes, z = self._draw_fakes(ctx, batch.global_batch)
        use_labels = self._need_labels() and batch.labeled is not None
        use_cond = use_labels and cond_w > 0
        with ctx.autocast():
            with torch.no_grad():
                fake = ctx.image(self._synthesize(ctx, G, codes, z, batch.real))
            fake_logits, fake_pred, fake_cond = D.heads(fake, need_codes=w["gamma_E"] > 0 or self.fake_classes > 0,
                                                        cond_codes=codes if use_cond else None)
            real = ctx.image(batch.real.detach().requires_grad_(do_r1))
            real_logits, _ = D(real, need_codes=False)
            terms["gan"] = (1.0, F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean())
            if w["gamma_E"] > 0:
                terms["unsup"] = (w["gamma_E"], self._code_loss(fake_pred, codes))
            if self.fake_classes > 0:  # E learns G's images as the generated class of c'
                terms["fake_cls"] = (self.fake_classes, self._code_loss(fake_pred, codes, target="fake"))
            labeled = lab_cond = None
            if use_labels and (w["beta"] > 0 or use_cond):
                targets, known = self._label_targets(batch)
                labeled = ctx.image(batch.labeled.detach().requires_grad_(do_r1 and use_cond))
                # one trunk pass for E's reading and the pair head
                _, pred, lab_cond = D.heads(labeled, need_logits=False, need_codes=w["beta"] > 0,
                                            cond_codes=targets if use_cond else None, cond_known=known)
                if w["beta"] > 0:
                    terms["sup"] = (w["beta"], self._code_loss(pred, targets, known))
                if use_cond:
                    terms["cond"] = (cond_w, F.softplus(fake_cond).mean() + F.softplus(-lab_cond).mean())
            if use_labels and w["alpha_E"] > 0:
                terms["sr"] = (w["alpha_E"], self._sr_term(ctx, batch, G, D, fake, codes))
        if do_r1:
            (grad,) = torch.autograd.grad(real_logits.float().sum(), real, create_graph=True)
            penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
            if lab_cond is not None:  # R1 of the pair head on the labelled real pairs
                (grad,) = torch.autograd.grad(lab_cond.float().sum(), labeled, create_graph=True)
                penalty = penalty + grad.float().square().sum(dim=(1, 2, 3)).mean()
            terms["r1"] = (self.cfg.r1_gamma / 2 * self.cfg.r1_interval, penalty)
        return terms

    def g_phase_terms(self, ctx: StepContext, nets, batch: Batch) -> dict[str, tuple[float, torch.Tensor]]:
        """Loss terms of the G phase; D's parameters do not take gradients here."""
        G, D = nets["G"], nets["D"]
        w = self.w
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        codes, z = self._draw_fakes(ctx, batch.global_batch)
        use_sr = self._need_labels() and w["alpha"] > 0 and batch.labeled is not None
        use_cond = self.cfg.cond_gan > 0 and batch.labeled is not None
        with ctx.autocast():
            fake = ctx.image(self._synthesize(ctx, G, codes, z, batch.real, update_w_avg=True))
            logits, pred, cond = D.heads(fake, need_codes=w["gamma_G"] > 0, cond_codes=codes if use_cond else None)
            terms["gan"] = (1.0, F.softplus(-logits).mean())
            if w["gamma_G"] > 0:
                terms["unsup"] = (w["gamma_G"], self._code_loss(pred, codes))
            if use_cond:
                terms["cond"] = (self.cfg.cond_gan, F.softplus(-cond).mean())
            if use_sr:
                terms["sr"] = (w["alpha"], self._sr_term(ctx, batch, G, D, fake, codes))
        weights = self._recon_weights()
        if weights and batch.labeled is not None:
            values = self._recon_terms(ctx, G, batch, weights)
            terms.update((k, (weights[k], values[k])) for k in weights)
        return terms

    def _recon_terms(self, ctx: StepContext, G, batch: Batch, which) -> dict[str, torch.Tensor]:
        """The reconstruction options named in `which` (`recon`, `recon_edges`, `recon_hard`):
        between G(c, z) and the labelled x of code c, the mean L1 over pixels, over image
        gradients, and over the worst `recon_hard_frac` of the pixels, averaged over the labelled images
        whose codes are all known (0 when none is). One G pass serves them all; z is drawn on
        every rank for the global labelled batch (one random stream)."""
        codes, known = self._label_targets(batch)
        full = known.all(dim=1).float()
        z = ctx.randn(batch.global_labeled_batch, self.z_dim)
        with ctx.autocast():
            out = ctx.image(self._synthesize(ctx, G, codes, z, batch.labeled))
        diff = out.float() - batch.labeled.float()
        norm = full.sum().clamp_min(1.0)
        per_image = {}
        if "recon" in which or "recon_hard" in which:
            err = diff.abs().mean(dim=1).flatten(1)  # (N, H*W) pixel errors, shared by both terms
            if "recon" in which:
                per_image["recon"] = err.mean(dim=1)
            if "recon_hard" in which:
                worst = err.topk(hard_pixel_count(err.shape[1], self.recon_hard_frac), dim=1, sorted=False).values
                per_image["recon_hard"] = worst.mean(dim=1)
        if "recon_edges" in which:  # gradient of the difference = difference of the gradients
            per_image["recon_edges"] = (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean(dim=(1, 2, 3)) \
                + (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        return {name: (v * full).sum() / norm for name, v in per_image.items()}

    def train_step(self, ctx: StepContext, nets, batch: Batch) -> None:
        G, D = nets["G"], nets["D"]
        cfg = self.cfg
        do_r1 = cfg.r1_interval > 0 and cfg.r1_gamma > 0 and ctx.step % cfg.r1_interval == 0
        if D.noise > 0:  # E's input noise, from the saved random stream (drawn only then)
            D.reseed_noise(int(ctx.rng.integers(2**62)) + dist.rank(), ctx.device)

        set_requires_grad(G, False)
        set_requires_grad(D, True)
        terms = self.d_phase_terms(ctx, nets, batch, do_r1)
        ctx.optimizer_step("D", sum(wt * v for wt, v in terms.values()), list(D.parameters()))
        for name, (_, v) in terms.items():
            ctx.report(f"D/{name}", v)

        set_requires_grad(G, True)
        set_requires_grad(D, False)
        terms = self.g_phase_terms(ctx, nets, batch)
        ctx.optimizer_step("G", sum(wt * v for wt, v in terms.values()), list(G.parameters()))
        for name, (_, v) in terms.items():
            ctx.report(f"G/{name}", v)
        set_requires_grad(D, True)

    # evaluation -------------------------------------------------------------------------
    def encode(self, nets, images: torch.Tensor) -> torch.Tensor:
        return nets["D"].read_codes(images)

    def generate(self, nets, codes: torch.Tensor, z: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        return nets["G"](codes, z, truncation_psi=truncation_psi)
