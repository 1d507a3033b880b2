"""Edits of real images by a Semi-StyleGAN-fine model, read by the oracle encoder.

For `n` held-out images (outside the run's labelled subset J; the GAN's real-image stream draws
from the whole grid, so they are "unlabelled", not "never seen"), one fine factor per image
(round robin over the fine factors) is set to a random grid value other than the image's own,
with everything else as the edit route of `semistylegan edit` does it: c_fine = E_fine(x)
clipped to [0, 1], the one factor replaced, x' = G(c_fine, z, down(x)) with one z for all images
(z drawn from seed 0, as `edit --seed 0`). The oracle (trained on every label of the dataset)
reads its factor classes off the images. Errors are |class read - class wanted| / (size - 1),
i.e. in units of the factor's range as codes in [0, 1], and "exact" is the share of equal classes:

- edited: the edited factor against the requested value (does the edit follow the request?);
- coarse kept: the coarse factors against the image's own (does the edit keep the layout?);
- other fine kept: the fine factors not edited against the image's own (kept through E_fine -> G?);
- the same for the plain reconstruction (codes as E_fine reads them, nothing set);
- references: the oracle on the real inputs (its own error floor), on the bilinear upsample of
  the coarse input G gets (what the coarse input alone tells the oracle), and between random
  pairs of the held-out images (chance);
- E_fine on the edits against the request and on the reconstructions against its first reading.

On datasets with an `object_hue` factor (3DShapes) `object_pixels` adds where the pixel error of
G(true fine codes, z, down(x)) lies: the object's pixels are those that change when only the
object's hue moves by half its range (the object and what its colour tints), and the report
gives the mean error inside and outside them and the object's share of each image's worst 5% of
pixels (what `recon_hard` averages).

The held-out images and the requested values come from one numpy RandomState (an int seed or
a RandomState passed in): the same seed gives the same draws, hence the same numbers.
"""
from __future__ import annotations

import numpy as np
import torch

from semistylegan.data.dataset import LabeledSubset, images_to_tensor, tensor_to_images

__all__ = ["HEADLINE", "fine_edit_examples", "fine_edit_metrics", "held_out_indices"]

# Keys of the headline numbers and how `semistylegan evaluate` prints them.
HEADLINE = (
    ("edited_abs_err", "fine edit: edited factor error"),
    ("edited_exact", "fine edit: edited factor exact"),
    ("coarse_kept_abs_err", "fine edit: coarse factors kept, error"),
    ("other_fine_kept_abs_err", "fine edit: other fine kept, error"),
)
_BATCH = 256
_EDIT_Z_SEED = 0  # the z of `semistylegan edit` by default


def _random_state(seed) -> np.random.RandomState:
    if isinstance(seed, np.random.RandomState):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return np.random.RandomState(int(seed))
    raise ValueError(f"seed must be an int or a numpy RandomState, got {type(seed).__name__}")


def _edit_z(method, device) -> torch.Tensor:
    z = np.random.RandomState(_EDIT_Z_SEED).standard_normal((1, int(method.z_dim))).astype(np.float32)
    return torch.from_numpy(z).to(device)


@torch.no_grad()
def _read_fine(method, nets, images: np.ndarray, device) -> np.ndarray:
    """(N, F) fine codes read by E_fine, clipped to [0, 1] as the edit route does."""
    out = [np.zeros((0, len(method.fine_idx)), dtype=np.float32)]
    for s in range(0, len(images), _BATCH):
        x = images_to_tensor(images[s:s + _BATCH], device)
        out.append(method.encode_fine(nets, x).clamp(0.0, 1.0).float().cpu().numpy())
    return np.concatenate(out)


@torch.no_grad()
def _generate_tensor(method, nets, fine_codes: np.ndarray, images: np.ndarray, z: torch.Tensor, device) -> torch.Tensor:
    """G(c_fine, z, down(x)) in [-1, 1] on the CPU, one coarse image per code, one z (1, z_dim) for all."""
    out = []
    for s in range(0, len(fine_codes), _BATCH):
        c = torch.from_numpy(np.asarray(fine_codes[s:s + _BATCH], dtype=np.float32)).to(device)
        x = images_to_tensor(images[s:s + _BATCH], device)
        out.append(method.generate(nets, c, z.expand(len(c), -1), coarse=x).float().cpu())
    return torch.cat(out)


def _generate(method, nets, fine_codes: np.ndarray, images: np.ndarray, z: torch.Tensor, device) -> np.ndarray:
    return tensor_to_images(_generate_tensor(method, nets, fine_codes, images, z, device))


def _upsampled_coarse_input(images: np.ndarray, input_res: int) -> np.ndarray:
    """The coarse input G gets (box downsample), bilinearly upsampled back to full size, uint8."""
    from semistylegan.nets.fine import box_downsample

    small = box_downsample(torch.from_numpy(images).float(), int(input_res))
    up = torch.nn.functional.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return up.round().clamp(0, 255).to(torch.uint8).numpy()


def held_out_indices(method, dataset, n: int, seed=0) -> np.ndarray:
    """`n` random dataset indices outside the run's labelled subset J (with repeats), drawn one by
    one from the seed's stream: the images `fine_edit_metrics` edits, in its order."""
    rs = _random_state(seed)
    labelled = set(LabeledSubset(dataset, method.cfg.labeled_fraction, seed=method.cfg.seed).indices.tolist())
    if len(dataset) - len(labelled) < 1:
        raise ValueError("every image of the dataset is labelled: no held-out image to edit")
    idx = []
    while len(idx) < n:
        i = int(rs.randint(len(dataset)))
        if i not in labelled:
            idx.append(i)
    return np.asarray(idx, dtype=np.int64)


def fine_edit_metrics(method, nets, dataset, oracle, n: int = 300, seed=0, device="cpu") -> dict:
    """The edit report of a semi-fine model (see the module docstring), a JSON-ready dict.

    method: a SemiStyleGANFine (uses fine_idx, fine_names, input_res, z_dim, cfg.labeled_fraction,
    cfg.seed, encode_fine, generate); nets: its evaluation networks; dataset: a full factor grid;
    oracle: anything with `predict_classes(uint8 images) -> int (N, K)`; seed: int or RandomState.
    """
    if not getattr(dataset, "is_grid", False):
        raise ValueError("fine edit metrics need a dataset with a full factor grid (every factor known)")
    if int(n) < 1:
        raise ValueError(f"fine edit metrics need at least one image, got n={n}")
    rs = _random_state(seed)
    device = torch.device(device)
    names = list(dataset.factor_space.names)
    sizes = np.asarray(dataset.factor_space.sizes, dtype=np.int64)
    fine = [int(k) for k in method.fine_idx]
    coarse = [k for k in range(len(names)) if k not in fine]
    small = [names[k] for k in fine if sizes[k] < 2]
    if small:
        raise ValueError(f"fine factor(s) {', '.join(small)} have one value: nothing to edit to")

    idx = held_out_indices(method, dataset, int(n), rs)
    images = dataset.images(idx)
    true_cls = np.asarray(dataset.classes(idx), dtype=np.int64)
    true = np.asarray(dataset.codes(idx), dtype=np.float64)
    which = np.asarray([fine[i % len(fine)] for i in range(len(idx))])  # edited factor, round robin
    target_cls = np.empty(len(idx), dtype=np.int64)
    for i, k in enumerate(which):
        target_cls[i] = rs.choice([c for c in range(sizes[k]) if c != true_cls[i, k]])
    target = target_cls / (sizes[which] - 1)
    chance_pairs = rs.permutation(len(idx))

    z = _edit_z(method, device)
    read = _read_fine(method, nets, images, device)
    recon = _generate(method, nets, read, images, z, device)
    codes = read.copy()
    codes[np.arange(len(idx)), [fine.index(k) for k in which]] = target
    edited = _generate(method, nets, codes, images, z, device)

    o_real = oracle.predict_classes(images)
    o_coarse = oracle.predict_classes(_upsampled_coarse_input(images, method.input_res))
    o_recon = oracle.predict_classes(recon)
    o_edit = oracle.predict_classes(edited)
    e_edit = _read_fine(method, nets, edited, device)
    e_recon = _read_fine(method, nets, recon, device)
    denom = np.maximum(sizes - 1, 1)

    def err(pred_cls, ref_cls, k) -> dict:
        if len(pred_cls) == 0:
            return {"abs_err": float("nan"), "exact": float("nan")}
        return {"abs_err": float(np.mean(np.abs(pred_cls[:, k] - ref_cls[:, k]) / denom[k])),
                "exact": float(np.mean(pred_cls[:, k] == ref_cls[:, k]))}

    factors = {}
    for k in range(len(names)):
        row = {"role": "fine" if k in fine else "coarse",
               "oracle_on_real": err(o_real, true_cls, k),
               "oracle_on_upsampled_coarse_input": err(o_coarse, true_cls, k),
               "reconstruction": err(o_recon, true_cls, k),
               "chance_random_image": err(true_cls[chance_pairs], true_cls, k)}
        if k in fine:
            j, sel = fine.index(k), which == k
            wanted = true_cls.copy()
            wanted[sel, k] = target_cls[sel]
            row["edited"] = err(o_edit[sel], wanted[sel], k)
            row["kept_when_other_factor_edited"] = err(o_edit[~sel], true_cls[~sel], k)
            row["E_fine_read_error"] = float(np.mean(np.abs(read[:, j] - true[:, k])))
            row["E_fine_on_edit_vs_request"] = (float(np.mean(np.abs(e_edit[sel, j] - target[sel]))) if sel.any()
                                                else float("nan"))
            row["E_fine_on_reconstruction_vs_read"] = float(np.mean(np.abs(e_recon[:, j] - read[:, j])))
        else:
            row["kept_when_fine_factor_edited"] = err(o_edit, true_cls, k)
        factors[names[k]] = row

    def mean(ks, *path):
        vals = []
        for k in ks:
            v = factors[names[k]]
            for p in path:
                v = v[p]
            vals.append(v)
        vals = [v for v in vals if np.isfinite(v)]  # a fine factor no image edited (n < F) has none
        return float(np.mean(vals)) if vals else float("nan")

    report = {
        "n_images": len(idx),
        "edited_abs_err": mean(fine, "edited", "abs_err"),
        "edited_exact": mean(fine, "edited", "exact"),
        "coarse_kept_abs_err": mean(coarse, "kept_when_fine_factor_edited", "abs_err"),
        "coarse_kept_exact": mean(coarse, "kept_when_fine_factor_edited", "exact"),
        "other_fine_kept_abs_err": mean(fine, "kept_when_other_factor_edited", "abs_err"),
        "other_fine_kept_exact": mean(fine, "kept_when_other_factor_edited", "exact"),
        "reconstruction_fine_abs_err": mean(fine, "reconstruction", "abs_err"),
        "reconstruction_coarse_abs_err": mean(coarse, "reconstruction", "abs_err"),
        "oracle_on_real_abs_err": mean(range(len(names)), "oracle_on_real", "abs_err"),
        "coarse_from_upsampled_input_abs_err": mean(coarse, "oracle_on_upsampled_coarse_input", "abs_err"),
        "fine_chance_abs_err": mean(fine, "chance_random_image", "abs_err"),
        "coarse_chance_abs_err": mean(coarse, "chance_random_image", "abs_err"),
        "E_fine_on_edit_vs_request": mean(fine, "E_fine_on_edit_vs_request"),
        "factors": factors,
    }
    if "object_hue" in names:
        report["object_pixels"] = _object_pixel_errors(method, nets, dataset, images, true_cls, true[:, fine], z,
                                                       names.index("object_hue"), device)
    return report


@torch.no_grad()
def _object_pixel_errors(method, nets, dataset, images, true_cls, fine_codes, z, hue: int, device) -> dict:
    """Where G's reconstruction from the true fine codes errs: on the object or elsewhere."""
    from semistylegan.methods.semistylegan import hard_pixel_count

    space = dataset.factor_space
    x = images_to_tensor(images)
    out = _generate_tensor(method, nets, fine_codes, images, z, device)
    err = (out - x).abs().mean(dim=1).flatten(1)  # (N, H*W), images in [-1, 1]
    other = true_cls.copy()
    other[:, hue] = (other[:, hue] + space.sizes[hue] // 2) % space.sizes[hue]
    moved = images_to_tensor(dataset.images(space.classes_to_index(other)))
    obj = ((moved - x).abs().mean(dim=1).flatten(1) > 0.05).float()
    k = hard_pixel_count(err.shape[1])  # the worst 5%, as recon_hard averages by default
    worst = torch.zeros_like(err).scatter_(1, err.topk(k, dim=1).indices, 1.0)
    rest = 1.0 - obj
    return {
        "mean_error": float(err.mean()),
        "mean_error_object": float((err * obj).sum() / obj.sum()) if obj.sum() > 0 else float("nan"),
        "mean_error_elsewhere": float((err * rest).sum() / rest.sum()) if rest.sum() > 0 else float("nan"),
        "object_pixel_share": float(obj.mean()),
        "worst5_mean_error": float(err.topk(k, dim=1).values.mean()),
        "object_share_of_worst5": float((worst * obj).sum() / worst.sum()),
    }


def fine_edit_examples(method, nets, images: np.ndarray, factor: str | None = None, values=(0.0, 1 / 3, 2 / 3, 1.0),
                       device="cpu", scale: int = 2):
    """A labelled picture (PIL image) of edits, one column per image: rows input, reconstruction,
    then `factor` (a fine factor's name; default wall_hue when there is one, else the first fine
    factor) set to each of `values`, with the edit route of `fine_edit_metrics`."""
    from semistylegan.viz import labeled_grid

    names = list(method.fine_names)
    if factor is None:
        factor = "wall_hue" if "wall_hue" in names else names[0]
    if factor not in names:
        raise ValueError(f"'{factor}' is not a fine factor of this model ({', '.join(names)})")
    device = torch.device(device)
    z = _edit_z(method, device)
    read = _read_fine(method, nets, images, device)
    rows, labels = [images, _generate(method, nets, read, images, z, device)], ["input", "recon"]
    for v in values:
        codes = read.copy()
        codes[:, names.index(factor)] = v
        rows.append(_generate(method, nets, codes, images, z, device))
        labels.append(f"{factor}={v:.2g}")
    return labeled_grid(np.concatenate(rows), len(rows), len(images), row_labels=labels, scale=scale)
