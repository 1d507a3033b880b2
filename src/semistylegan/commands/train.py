"""`semistylegan train`: train a model (Semi-StyleGAN on dSprites 32x32, eta = 1%, by default)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from semistylegan.errors import UserError

# Fields that may differ when resuming.
_RESUMABLE = {"kimg", "device", "snapshot_kimg", "grid_kimg", "metrics_kimg"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-").lower()


def add_parser(sub):
    import dataclasses

    from semistylegan.config import TrainConfig

    p = sub.add_parser("train", help="train a model", description=__doc__)
    a = p.add_argument
    a("--config", default=None, metavar="FILE",
      help="config file (.toml or .json) with any of the fields of a run's config.json; the flags here override it")
    a("--preset", default=None, help="named preset (see the README's preset table); default dsprites-cpu32")
    a("--out", default=None, help="run directory to create (default runs/<dataset>-<method>-...)")
    a("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR exactly")
    a("--no-progress", action="store_true", help="no progress bar")
    a("--quiet", action="store_true", help="no progress bar or progress lines on stderr")
    a("--dry-run", action="store_true", help="print the configuration and exit")
    # One flag per config field, its help from the field (config.opt); unset flags leave the
    # preset's value.
    fields = p.add_argument_group("config fields (each overrides the preset)")
    for f in dataclasses.fields(TrainConfig):
        if f.name == "preset":
            continue
        default = f.default
        kind = type(default) if default is not None else (str if f.name == "data_path" else float)
        meta = f.metadata
        shown = f"{meta['help']} (default {default})".replace("%", "%%")
        if default is dataclasses.MISSING:  # a table of options (data_options): KEY=VALUE, repeatable
            fields.add_argument(_flag(f.name), dest=f.name, action="append", default=None, metavar="KEY=VALUE",
                                help=meta["help"].replace("%", "%%"))
        elif kind is bool:
            fields.add_argument(_flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=shown)
        else:
            fields.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, choices=meta["choices"],
                                metavar=f.name.upper() if not meta["choices"] else None, help=shown)
    p.set_defaults(func=run)


def _given(args) -> dict:
    """The config fields given on the command line."""
    import dataclasses

    from semistylegan.config import TrainConfig

    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if f.name != "preset" and getattr(args, f.name, None) is not None}
    if "data_options" in given:
        given["data_options"] = _options(given["data_options"], _flag("data_options"))
    return given


def _options(pairs: list[str], flag: str) -> dict:
    """KEY=VALUE strings -> {KEY: VALUE parsed as JSON when it is JSON, else the text}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"{flag} expects KEY=VALUE, got '{pair}'")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _config_from_file(args, given: dict):
    """Defaults <- preset (--preset, else the file's) <- the file's fields <- the flags given here
    (data_options: the flags' keys added to the file's)."""
    from semistylegan.config import make_config, read_config_file

    values = read_config_file(args.config)
    preset = args.preset or values.pop("preset", None)
    values.pop("preset", None)
    if "data_options" in given and "data_options" in values:
        given["data_options"] = {**values["data_options"], **given["data_options"]}
    return make_config(preset, file_values=values, **given)


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
    if args.resume and args.config:
        raise UserError("--config cannot be combined with --resume (the run continues with its own config.json)")
    if args.resume:
        run_dir = Path(args.resume)
        if not run_dir.is_dir() or not (run_dir / "config.json").is_file():
            raise UserError(f"{run_dir}: not a semistylegan run directory (no config.json)")
        path = run_dir / "config.json"
        try:
            saved = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: unreadable ({e})") from None
        if not isinstance(saved, dict):
            raise UserError(f"{path}: unreadable (it must hold a JSON object of config fields)")
        cfg = TrainConfig.from_dict(saved, source=str(path)).validate()
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
        cfg = _config_from_file(args, given) if args.config else make_config(args.preset, **given)
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
