"""Projection of real images into a trained generator: the (c, z) that reproduce each image.

Which space. The generator is G(c, z) with one w = mapping(c, z) driving every layer (there
is no per-layer w, so StyleGAN's W+ does not exist here). We fit (c, z), not (c, w): an edit
changes c, and only the mapping network knows how a change of c moves w. A fitted w would
reproduce the image more closely, but editing it would mean re-mapping a c with some z, and the
fit would be lost; a fitted (c, z) is edited by G(c', z), a point the generator was trained to
draw, so what the factors do not describe stays in z. Semi-StyleGAN-fine's G(c_fine, z, x)
takes its coarse input from the image itself, so there the fit refines the fine codes and z on
top of that input.

The noise we fit is the mapping network's normalised noise input n = z / rms(z), not z: G
normalises z, so z = 0 is a degenerate point (any small step from it jumps onto the sphere
rms = 1). n starts at 0 (the mode of N(0, I), what `edit --zero-z` uses) and is kept in the
ball rms(n) <= 1 (rescaled after each step); on the sphere rms(n) = 1 it is exactly a z of
G(c, z). `render` draws G from (c, n) for either generator.

The codes stay in [0, 1]: we optimise their logits, starting from E's reading (clipped to
[0.001, 0.999] so the logit is finite).

Objective, per image x and its rendering x' = G(c, n), both in [-1, 1] (not one of the paper's
equations; Adam on the logits and n):

    L_proj(x, x') = mean (x - x')^2 + lambda_D * mean_l mean_hw || f_l(x) - f_l(x') ||^2

f_l are D's trunk activations (the input of each residual block and the 4x4 output of the
last), each normalised to unit length over its channels (as LPIPS does with its features):
an offline perceptual distance, no downloaded network. The best (lowest L_proj) point of each
image over the steps is kept, so the projection never ends worse than its start. An image
whose loss becomes NaN or infinite is marked diverged and frozen; the others go on (each
image's variables and Adam statistics are its own, so one image cannot disturb another).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from semistylegan.data.dataset import tensor_to_images
from semistylegan.errors import UserError
from semistylegan.nets.layers import normalize_2nd_moment

__all__ = ["DEFAULT_STEPS", "LATENTS_FORMAT", "Projection", "check_steps", "load_latents", "project",
           "reconstruction_error", "render", "render_images", "save_latents"]

DEFAULT_STEPS = 200
LATENTS_FORMAT = "semistylegan-projection"
CODE_CLIP = 1e-3  # E's reading is clipped to [CODE_CLIP, 1 - CODE_CLIP] before taking its logit


@dataclass
class Projection:
    """The fitted latents of N images (arrays on the CPU)."""

    codes: np.ndarray            # (N, F) in [0, 1]: the controllable factors (fine ones for semi-fine)
    noise: np.ndarray            # (N, z_dim): the mapping network's normalised noise input, rms <= 1
    start_codes: np.ndarray      # (N, F) E's reading, where the fit started
    loss: np.ndarray             # (N,) L_proj at the kept point (NaN where diverged)
    start_loss: np.ndarray       # (N,) L_proj at the start (E's reading, n = 0)
    diverged: np.ndarray         # (N,) bool
    steps: int = 0
    losses: list[list[float]] = field(default_factory=list)  # per step, per image (for plots / tests)


# ----------------------------------------------------------------------------------------------
def _mapped_w(G, codes: torch.Tensor, noise: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
    """w = mapping(c, z) with the normalised noise input given directly (no normalisation of it)."""
    m = G.mapping
    parts = []
    if m.z_dim > 0:
        parts.append(noise)
    if m.c_dim > 0:
        parts.append(normalize_2nd_moment(m.embed(codes)))
    w = m.layers(torch.cat(parts, dim=1))
    if truncation_psi != 1.0:
        w = m.w_avg.lerp(w, truncation_psi)
    return w


def render(nets, codes: torch.Tensor, noise: torch.Tensor, coarse: torch.Tensor | None = None,
           truncation_psi: float = 1.0) -> torch.Tensor:
    """G drawn from codes and normalised noise (float images in [-1, 1]); `coarse`: semi-fine's
    real images (one per code, or one for all). The w computed here replaces the mapping
    network's output through a forward hook, so G's own forward (its coarse input, skip path,
    ...) runs unchanged for either generator."""
    G = nets["G"]
    w = _mapped_w(G, codes, noise, truncation_psi)
    handle = G.mapping.register_forward_hook(lambda module, inputs, output: w)
    try:
        if coarse is not None:
            return G(codes, noise, coarse)
        return G(codes, noise)
    finally:
        handle.remove()


def _trunk(D):
    """The discriminator whose convolutional trunk gives the features (D itself, or the D of a
    separate-encoder pair)."""
    return D.D if hasattr(D, "D") and hasattr(D.D, "blocks_forward") else D


def _features(D, images: torch.Tensor) -> list[torch.Tensor]:
    """D's trunk activations (each block's input and the 4x4 output), unit length over channels."""
    trunk = _trunk(D)
    keep = tuple(int(k) for k in trunk.blocks)
    last, kept = trunk.blocks_forward(images, keep=keep)
    feats = [kept[r] for r in keep] + [last]
    return [f / (f.square().sum(dim=1, keepdim=True) + 1e-10).sqrt() for f in feats]


def _pixel_term(target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """(N,) mean squared pixel error."""
    return (target - output).square().flatten(1).mean(dim=1)


def _perceptual_term(target_feats: list[torch.Tensor], output_feats: list[torch.Tensor]) -> torch.Tensor:
    """(N,) mean over layers of the spatial mean of the squared distance of unit features."""
    per_layer = [(a - b).square().sum(dim=1).flatten(1).mean(dim=1) for a, b in zip(target_feats, output_feats)]
    return torch.stack(per_layer, dim=0).mean(dim=0)


def reconstruction_error(images: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """(N,) mean absolute pixel error of uint8 images, in [0, 1] units."""
    diff = images.astype(np.float64) - recon.astype(np.float64)
    return np.abs(diff).reshape(len(images), -1).mean(axis=1) / 255.0


# ----------------------------------------------------------------------------------------------
def project(editor, images: np.ndarray, steps: int = DEFAULT_STEPS, lr: float = 0.05,
            perceptual_weight: float = 0.1, fit_codes: bool = True, progress=None) -> Projection:
    """Fits (codes, noise) to uint8 images (N, C, R, R) of the editor's model (see the module
    docstring). `progress`: a callable wrapping the step range (a tqdm bar), or None."""
    check_steps(steps)
    nets, device = editor.nets, editor.device
    G, D = nets["G"], nets["D"]
    x = editor.to_tensor(images)
    n = len(x)
    coarse = x if editor.fine else None
    read = torch.from_numpy(editor.encode(images)).to(device)
    logits = torch.logit(read.clamp(CODE_CLIP, 1.0 - CODE_CLIP)).clone().requires_grad_(fit_codes)
    noise = torch.zeros(n, editor.z_dim, device=device, requires_grad=True)
    params = [noise] + ([logits] if fit_codes else [])
    optimizer = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999))
    grads_were = {name: [p.requires_grad for p in net.parameters()] for name, net in (("G", G), ("D", D))}
    for net in (G, D):
        net.requires_grad_(False)
    try:
        with torch.no_grad():
            target_feats = _features(D, x)

        def objective() -> torch.Tensor:
            out = render(nets, torch.sigmoid(logits), noise, coarse)
            # projection objective L_proj (module docstring): pixel term + lambda_D * D-feature term
            return _pixel_term(x, out) + perceptual_weight * _perceptual_term(target_feats, _features(D, out))

        best_logits, best_noise = logits.detach().clone(), noise.detach().clone()
        with torch.no_grad():
            start_loss = objective().detach()
        best_loss = start_loss.clone()
        diverged = ~torch.isfinite(start_loss)
        history = [start_loss.cpu().tolist()]
        step_range = range(steps) if progress is None else progress(range(steps))
        for _ in step_range:
            per_image = objective()
            bad = ~torch.isfinite(per_image.detach())
            diverged |= bad
            live = ~diverged
            optimizer.zero_grad(set_to_none=True)
            if live.any():
                per_image[live].sum().backward()
            with torch.no_grad():
                # the loss just computed belongs to the current point: keep it if it is the best
                better = live & (per_image.detach() < best_loss)
                best_loss = torch.where(better, per_image.detach(), best_loss)
                best_logits[better] = logits.detach()[better]
                best_noise[better] = noise.detach()[better]
            optimizer.step()
            with torch.no_grad():  # a diverged image goes back to its best point and stays there
                noise[diverged] = best_noise[diverged]
                logits[diverged] = best_logits[diverged]
                rms = noise.square().mean(dim=1, keepdim=True).sqrt() if editor.z_dim > 0 else None
                if rms is not None:
                    noise.div_(rms.clamp_min(1.0))  # stay inside the ball rms(n) <= 1
            history.append(per_image.detach().cpu().tolist())
            if hasattr(step_range, "set_postfix") and live.any():
                step_range.set_postfix(loss=f"{float(best_loss[live].mean()):.4f}")
        if steps > 0:  # the point reached by the last step has not been scored yet
            with torch.no_grad():
                last = objective().detach()
            diverged |= ~torch.isfinite(last)
            better = ~diverged & (last < best_loss)
            best_loss = torch.where(better, last, best_loss)
            best_logits[better] = logits.detach()[better]
            best_noise[better] = noise.detach()[better]
            history.append(last.cpu().tolist())
    finally:
        for name, net in (("G", G), ("D", D)):
            for p, flag in zip(net.parameters(), grads_were[name]):
                p.requires_grad_(flag)
    codes = torch.sigmoid(best_logits)
    best_loss = torch.where(diverged, torch.full_like(best_loss, float("nan")), best_loss)
    return Projection(codes=codes.cpu().numpy().astype(np.float32), noise=best_noise.cpu().numpy().astype(np.float32),
                      start_codes=read.cpu().numpy().astype(np.float32), loss=best_loss.cpu().numpy(),
                      start_loss=start_loss.cpu().numpy(), diverged=diverged.cpu().numpy(), steps=int(steps),
                      losses=history)


@torch.no_grad()
def render_images(editor, codes: np.ndarray, noise: np.ndarray, images: np.ndarray | None = None,
                  truncation_psi: float = 1.0) -> np.ndarray:
    """uint8 images drawn from fitted (codes, noise); semi-fine takes `images` as coarse input
    (one per code, or one for all)."""
    c = torch.from_numpy(np.asarray(codes, dtype=np.float32)).to(editor.device)
    nz = torch.from_numpy(np.asarray(noise, dtype=np.float32)).to(editor.device)
    if nz.shape[0] == 1 and c.shape[0] > 1:
        nz = nz.expand(c.shape[0], -1)
    coarse = None
    if editor.fine:
        coarse = editor.to_tensor(images) if images is not None else editor.method.reference_images(editor.device)
    return tensor_to_images(render(editor.nets, c, nz, coarse, truncation_psi))


# ----------------------------------------------------------------------------------------------
def save_latents(path: str | os.PathLike, projection: Projection, keep: np.ndarray, names: list[str],
                 factor_names: list[str], meta: dict) -> None:
    """Writes the kept images' latents: tensors `codes` (N, F) and `noise` (N, z_dim); metadata:
    the image names, the factor names, and `meta` (run, method, ...), as JSON strings."""
    from safetensors.torch import save_file

    keep = np.asarray(keep, dtype=bool)
    tensors = {"codes": torch.from_numpy(np.ascontiguousarray(projection.codes[keep])),
               "noise": torch.from_numpy(np.ascontiguousarray(projection.noise[keep]))}
    metadata = {"format": LATENTS_FORMAT, "images": json.dumps([n for n, k in zip(names, keep) if k]),
                "factors": json.dumps(list(factor_names)),
                "noise": "the mapping network's normalised noise input (z / rms(z)), rms <= 1",
                **{k: json.dumps(v) for k, v in meta.items()}}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def load_latents(path: str | os.PathLike) -> dict:
    """{'codes': (N, F) array, 'noise': (N, z_dim) array, 'images': [...], 'factors': [...], ...}."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != LATENTS_FORMAT:
                raise UserError(f"{path}: not a projection latents file")
            out = {k: f.get_tensor(k).numpy() for k in ("codes", "noise")}
    except (OSError, ValueError, SafetensorError) as e:
        raise UserError(f"{path}: cannot read latents ({str(e).splitlines()[0][:160]})") from None
    for k, v in meta.items():
        if k not in ("format", "noise"):
            out[k] = json.loads(v)
    return out


def check_steps(steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not (0 <= steps <= 100_000):
        raise UserError(f"--steps must be an integer in [0, 100000], got {steps!r}")
    return steps
