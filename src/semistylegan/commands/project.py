"""`semistylegan project`: fit the generator's latents to real images (projection).

    semistylegan project RUN_DIR --images DIR --out projected/ [--steps 200] [--quiet]

Starts from E's reading of each image and the noise at 0, then Adam fits the codes (kept in
[0, 1]) and the noise to reproduce the image: a pixel loss plus a perceptual distance on the
discriminator's features (nothing is downloaded). Semi-StyleGAN-fine runs keep each image's own
coarse input and fit the fine codes and the noise on top of it. Images of another size or
colour mode are converted with a note on stderr.

Writes into --out: latents.safetensors (tensors `codes` (N, F) and `noise` (N, z_dim), the image
and factor names in its metadata; read it with semistylegan.projection.load_latents), one
NAME_projected.png per image at the model's resolution, grid.png (input, E-only reconstruction,
projection) and projection.json with each image's codes and reconstruction errors (mean absolute
pixel error in [0, 1]: E-only as `edit` draws it, and projected). An image whose fit diverges
(NaN) is reported there and on stderr, and gets no PNG or latents; the others go on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("project", help="fit codes and noise to real images (projection)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("run", metavar="RUN_DIR", help="run directory (its newest snapshot) or a snapshot file")
    a("--images", required=True, help="an image file or a folder of images")
    a("--out", required=True, help="output folder")
    a("--steps", type=int, default=None, help="optimisation steps (default 200; 0: E's reading only)")
    a("--lr", type=float, default=0.05, help="Adam learning rate of the codes' logits and the noise")
    a("--perceptual", type=float, default=0.1, help="weight of the discriminator-feature distance")
    a("--seed", type=int, default=0, help="seed of the z of the E-only reconstruction it is compared with")
    a("--max-images", type=int, default=1000, help="refuse folders with more images")
    a("--device", default="cpu", choices=["cpu", "cuda"], help="device")
    a("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def read_images(path, resolution: int, channels: int, max_images: int = 1000):
    """(files, uint8 images (N, C, R, R), notes): every image decoded before anything is
    written (a bad one raises UserError); a note per image that had to be converted."""
    import numpy as np
    from PIL import Image

    from semistylegan.editing import MAX_IMAGE_BYTES, decode_image, list_image_files
    from semistylegan.errors import UserError

    files = list_image_files(path)
    if len(files) > max_images:
        raise UserError(f"{path}: {len(files)} images, more than --max-images {max_images}")
    mode = "L" if channels == 1 else "RGB"
    images, notes = [], {}
    for f in files:
        size = f.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise UserError(f"{f}: file too large ({size} bytes; at most {MAX_IMAGE_BYTES})")
        data = f.read_bytes()
        images.append(decode_image(data, resolution, channels, name=str(f)))
        with Image.open(f) as img:  # decoded above, so this only reads the header again
            if img.size != (resolution, resolution) or img.mode != mode:
                notes[str(f)] = (f"{img.width}x{img.height} {img.mode} image converted to "
                                 f"{resolution}x{resolution} {mode}")
    return files, np.stack(images), notes


def run(args) -> int:
    import numpy as np

    from semistylegan import progress
    from semistylegan.editing import load_editor
    from semistylegan.errors import UserError
    from semistylegan.projection import (
        DEFAULT_STEPS,
        check_steps,
        reconstruction_error,
        render_images,
        save_latents,
    )
    from semistylegan.viz import labeled_grid, save_png

    progress.set_quiet(args.quiet)
    steps = check_steps(DEFAULT_STEPS if args.steps is None else args.steps)
    if not (0.0 < args.lr <= 10.0):
        raise UserError(f"--lr must be in (0, 10], got {args.lr}")
    if not (0.0 <= args.perceptual <= 1000.0):
        raise UserError(f"--perceptual must be in [0, 1000], got {args.perceptual}")
    progress.stage(f"loading {args.run}")
    editor = load_editor(args.run, device=args.device)
    files, images, notes = read_images(args.images, editor.resolution, editor.channels, args.max_images)
    for name, note in notes.items():
        print(f"note: {name}: {note}", file=sys.stderr)
    progress.stage(f"projecting {len(files)} image(s), {steps} steps")
    fit = editor.project(images, steps, lr=args.lr, perceptual_weight=args.perceptual,
                         progress=lambda r: progress.bar(r, desc="project", unit="step"))
    ok = ~fit.diverged
    e_only = editor.generate(fit.start_codes, images, seed=args.seed)
    recon = render_images(editor, fit.codes, fit.noise, images)
    err_e_only = reconstruction_error(images, e_only)
    err_proj = reconstruction_error(images, recon)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress.stage(f"writing {out}")
    names = [f.name for f in files]
    report = {"run": str(args.run), "method": editor.run.cfg.method, "factors": editor.names, "steps": steps,
              "lr": args.lr, "perceptual": args.perceptual, "seed": args.seed,
              "error": "mean absolute pixel error, pixels in [0, 1]", "images": []}
    for i, f in enumerate(files):
        item = {"file": str(f), "status": "ok" if ok[i] else "diverged",
                "read": dict(zip(editor.names, map(float, fit.start_codes[i]))),
                "error_e_only": float(err_e_only[i])}
        if str(f) in notes:
            item["note"] = notes[str(f)]
        if ok[i]:
            save_png(_pil(recon[i]), out / f"{f.stem}_projected.png")
            item.update(codes=dict(zip(editor.names, map(float, fit.codes[i]))), error_projected=float(err_proj[i]),
                        loss_start=float(fit.start_loss[i]), loss=float(fit.loss[i]))
        else:
            print(f"semistylegan: {f}: projection diverged (NaN loss); skipped", file=sys.stderr)
        report["images"].append(item)
    if ok.any():
        save_latents(out / "latents.safetensors", fit, ok, names, editor.names,
                     {"run": str(args.run), "method": editor.run.cfg.method, "steps": steps,
                      "needs_image": bool(editor.fine)})
        keep = np.flatnonzero(ok)
        cells = np.stack([images[keep], e_only[keep], recon[keep]], axis=1).reshape(-1, *images.shape[1:])
        save_png(labeled_grid(cells, len(keep), 3, scale=max(1, 64 // editor.resolution)), out / "grid.png")
    if ok.any():
        report["mean_error_e_only"] = float(err_e_only[ok].mean())
        report["mean_error_projected"] = float(err_proj[ok].mean())
    report["diverged"] = int((~ok).sum())
    (out / "projection.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = (f"{int(ok.sum())} of {len(files)} image(s) projected -> {out}")
    if ok.any():
        summary += f" (error {report['mean_error_e_only']:.4f} E-only -> {report['mean_error_projected']:.4f})"
    print(summary)
    return 0 if ok.any() else 1


def _pil(img):
    from semistylegan.commands.edit import _pil as to_pil

    return to_pil(img)
