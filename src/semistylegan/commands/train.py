"""`semistylegan train`: train a model (Semi-StyleGAN on dSprites 32x32, eta = 1%, by default)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from semistylegan.errors import UserError

# CLI option -> config field, for the options that map one to one.
_FIELDS = {
    "dataset": "dataset", "data_path": "data_path", "resolution": "resolution", "method": "method",
    "labeled_fraction": "labeled_fraction", "gamma": "gamma", "gamma_g": "gamma_G", "gamma_e": "gamma_E",
    "beta": "beta", "alpha": "alpha", "alpha_e": "alpha_E", "kimg": "kimg", "batch": "batch", "labeled_batch": "labeled_batch",
    "lr": "lr", "seed": "seed", "snapshot_kimg": "snapshot_kimg", "grid_kimg": "grid_kimg",
    "metrics_kimg": "metrics_kimg", "device": "device", "r1_gamma": "r1_gamma", "r1_interval": "r1_interval",
    "z_dim": "z_dim", "cond_gan": "cond_gan", "code_head": "code_head", "fake_classes": "fake_classes", "g_plain": "g_plain", "g_beta1": "g_beta1", "g_beta2": "g_beta2", "d_plain": "d_plain", "encoder": "encoder", "encoder_noise": "encoder_noise", "d_beta1": "d_beta1", "d_beta2": "d_beta2", "channels_last": "channels_last", "bf16": "bf16",
}
# Options that may differ when resuming.
_RESUMABLE = {"kimg", "device", "snapshot_kimg", "grid_kimg", "metrics_kimg"}


def add_parser(sub):
    p = sub.add_parser("train", help="train a model", description=__doc__,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--preset", default=None, help="named preset (tiny, dsprites-quick, dsprites-cpu32, ...); default dsprites-cpu32")
    a("--dataset", default=None, help="dataset name (dsprites, shapes3d, ...)")
    a("--data-path", default=None, help="official dataset file/folder; omit for procedural data")
    a("--resolution", type=int, default=None, help="training resolution")
    a("--method", default=None, help="semi (Semi-StyleGAN) or info (Info-StyleGAN), or a baseline")
    a("--labeled-fraction", type=float, default=None, metavar="ETA", help="fraction of labelled images (default 0.01)")
    a("--gamma", type=float, default=None, help="gamma: sets gamma_G and beta (default 1)")
    a("--gamma-g", type=float, default=None, help="override gamma_G (L_unsup in G)")
    a("--gamma-e", type=float, default=None, help="override gamma_E (L_unsup in D/E)")
    a("--beta", type=float, default=None, help="override beta (L_sup)")
    a("--alpha", type=float, default=None, help="weight of the smoothness term L_sr (0 disables it)")
    a("--alpha-e", type=float, default=None, help="override the weight of L_sr in D/E's loss (default alpha)")
    a("--g-plain", action="store_const", const=True, default=None,
      help="G without the equalised learning rate (weights stored at run-time scale)")
    a("--g-beta1", type=float, default=None, help="G's Adam beta1 (StyleGAN: 0)")
    a("--g-beta2", type=float, default=None, help="G's Adam beta2 (StyleGAN: 0.99)")
    a("--d-plain", action="store_const", const=True, default=None,
      help="D (and E's head) without the equalised learning rate")
    a("--d-beta1", type=float, default=None, help="D's Adam beta1 (StyleGAN: 0)")
    a("--d-beta2", type=float, default=None, help="D's Adam beta2 (StyleGAN: 0.99)")
    a("--encoder", default=None, choices=["shared", "separate"],
      help="E as a head on D's trunk (SPEC.md) or a plain CNN of its own")
    a("--encoder-noise", type=float, default=None, metavar="STD",
      help="separate E: Gaussian noise added to every image E reads in training (0 = none)")
    a("--code-head", default=None, choices=["regress", "classify"],
      help="E reads each factor by regression (SPEC.md) or by a softmax over its values (grid factors)")
    a("--fake-classes", type=float, default=None, metavar="W",
      help="with --code-head classify: weight of teaching E G's images as classes of their own (ADC-GAN; 0 = off)")
    a("--cond-gan", type=float, default=None, metavar="W",
      help="weight of a pair real/fake head: labelled (x, c) of J vs (G(c', z), c') (not in SPEC.md; 0 = off)")
    a("--r1-gamma", type=float, default=None, help="R1 weight")
    a("--r1-interval", type=int, default=None, help="lazy R1 interval in steps")
    a("--z-dim", type=int, default=None, help="noise dimensions")
    a("--kimg", type=float, default=None, help="training length in thousands of images (total, also on resume)")
    a("--batch", type=int, default=None, help="global batch size")
    a("--labeled-batch", type=int, default=None, help="global labelled batch size")
    a("--lr", type=float, default=None, help="learning rate")
    a("--seed", type=int, default=None, help="random seed")
    a("--snapshot-kimg", type=float, default=None, help="snapshot interval")
    a("--grid-kimg", type=float, default=None, help="traversal grid interval")
    a("--metrics-kimg", type=float, default=None, help="in-training metrics interval (0: at the end only)")
    a("--device", default=None, choices=["auto", "cpu", "cuda"], help="device")
    a("--channels-last", action="store_const", const=True, default=None, help="channels_last memory format")
    a("--bf16", action="store_const", const=True, default=None, help="bfloat16 autocast")
    a("--set", action="append", default=None, metavar="KEY=VALUE",
      help="a config field (--set alpha_E=0) or a method option stored in config.extra "
           "(--set vae_beta=4, --set recon=20); repeatable")
    a("--out", default=None, help="run directory to create (default runs/<dataset>-<method>-...)")
    a("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    a("--no-progress", action="store_true", help="no progress bar")
    a("--dry-run", action="store_true", help="print the configuration and exit")
    p.set_defaults(func=run)


def _given(args) -> dict:
    given = {field: getattr(args, opt) for opt, field in _FIELDS.items() if getattr(args, opt) is not None}
    from semistylegan.config import TrainConfig

    for key, value in TrainConfig.parse_set(args.set).items():
        if key in given and given[key] != value:
            raise UserError(f"{key} is given twice, by its flag and by --set, with different values")
        given[key] = value
    return given


def _default_out(cfg) -> Path:
    eta = f"eta{cfg.labeled_fraction:g}" if cfg.method != "info" else "unsup"
    base = Path("runs") / f"{cfg.dataset}{cfg.resolution}-{cfg.method}-{eta}-g{cfg.gamma:g}-s{cfg.seed}"
    out, i = base, 1
    while out.exists():
        out = base.with_name(f"{base.name}-{i}")
        i += 1
    return out


def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file() or any(path.glob("snapshot-*.pt"))


def run(args) -> int:
    from semistylegan.config import TrainConfig, make_config

    given = _given(args)
    if args.resume:
        run_dir = Path(args.resume)
        if not run_dir.is_dir() or not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir}: not a semistylegan run directory (no config.json)")
        try:
            saved = json.loads((run_dir / "config.json").read_text())
            if not isinstance(saved, dict):
                raise UserError("it must hold a JSON object of config fields")
            cfg = TrainConfig.from_dict(saved).validate()
        except (OSError, json.JSONDecodeError, UserError) as e:
            raise UserError(f"{run_dir / 'config.json'}: unreadable ({e})") from None
        if args.preset is not None and args.preset != cfg.preset:
            raise UserError(f"{run_dir} belongs to another config: preset {cfg.preset}, not {args.preset}")
        for name, value in given.items():
            if name not in _RESUMABLE and getattr(cfg, name) != value:
                raise UserError(f"{run_dir} belongs to another config: {name} is {getattr(cfg, name)!r}, not {value!r}")
        for name in _RESUMABLE & set(given):
            setattr(cfg, name, given[name])
        cfg.validate()
        if args.out and Path(args.out) != run_dir:
            raise UserError("--out cannot be combined with --resume (the run continues in its own directory)")
    else:
        cfg = make_config(args.preset, **given)
        run_dir = Path(args.out) if args.out else _default_out(cfg)
        if run_dir.exists() and (run_dir.is_file() or _is_run(run_dir)):
            raise UserError(f"{run_dir} already holds a run; use --resume {run_dir} to continue it")
    from semistylegan import dist

    dist.check_batches_split(cfg)  # before anything is written, the same on every process
    if args.dry_run:
        print(json.dumps({"run_dir": str(run_dir), **cfg.to_dict()}, indent=2))
        return 0

    from semistylegan.train import Trainer

    trainer = Trainer(cfg, run_dir, progress=not args.no_progress)
    if args.resume:
        note = trainer.resume()
        if note and dist.is_main():
            print(f"semistylegan: note: {note}", file=sys.stderr, flush=True)
        if trainer.cur_nimg >= cfg.kimg * 1000:
            if dist.is_main():
                print(f"{run_dir}: already trained to {trainer.cur_nimg / 1000:g} kimg; "
                      "pass a larger --kimg to continue")
            return 0
    result = trainer.run()
    if not dist.is_main():
        return 0 if result["status"] == "done" else 1
    if result["status"] == "diverged":
        snaps = sorted(run_dir.glob("snapshot-*.pt"))
        keep = f"the last good snapshot is {snaps[-1]}" if snaps else "no snapshot was written"
        print(f"semistylegan: training stopped: {result['message']}; {keep}", file=sys.stderr)
        return 1
    print(f"run directory: {run_dir}")
    if (run_dir / "traversal.png").exists():
        print(f"traversal grid (one row per factor): {run_dir / 'traversal.png'}")
    if "metrics" in result:
        m = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result["metrics"].items()}
        print("metrics:", json.dumps(m))
    dist.shutdown()
    return 0
