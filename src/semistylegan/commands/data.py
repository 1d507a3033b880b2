"""`semistylegan data info|preview|prepare NAME`: inspect a dataset, look at it, build its cache."""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from semistylegan.errors import UserError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="inspect datasets, preview them, build their caches", description=__doc__)
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=type(p))
    for action, text in (
        ("info", "print the factor table of a dataset"),
        ("preview", "save a grid of samples and a ground-truth traversal of each factor as PNGs"),
        ("prepare", "build the preprocessing cache (or the procedural geometry) with a progress bar"),
    ):
        q = sub.add_parser(action, help=text, description=text)
        name_help = "dataset name (see `semistylegan data info --list`)" if action != "info" else "dataset name"
        q.add_argument("name", metavar="NAME", help=name_help)
        q.add_argument("--data-path", default=None,
                       help="official file or folder; dsprites and shapes3d are procedural without it")
        q.add_argument("--resolution", type=int, default=None,
                       help="image side in pixels (default: the dataset's default)")
        q.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="dataset option, e.g. split=train, seed=1, scream_image=PATH, bins=8")
        q.add_argument("--workers", type=int, default=None,
                       help="processes for decoding and resizing (default: all cores)")
        q.add_argument("--quiet", action="store_true", help="no progress bars or lines on stderr")
        if action == "info":
            q.add_argument("--json", action="store_true", help="print info() as JSON")
        if action == "preview":
            q.add_argument("--out", default=None,
                           help="sample grid PNG (default preview-NAME.png); the traversal goes to OUT-traversal.png")
            q.add_argument("--num", type=int, default=64, help="number of samples in the grid")
            q.add_argument("--seed", type=int, default=0)
        if action == "prepare":
            q.add_argument("--out", default=None, help="also write the cache directory's path to this file")
        q.set_defaults(func=_run)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _options(args) -> dict:
    opts = {}
    for item in args.option:
        if "=" not in item:
            raise UserError(f"--option expects KEY=VALUE, got '{item}'")
        k, v = item.split("=", 1)
        k = k.strip().replace("-", "_")
        try:
            opts[k] = json.loads(v)
        except ValueError:
            opts[k] = v
    if args.workers is not None:
        if args.workers < 1:
            raise UserError(f"--workers must be at least 1, got {args.workers}")
        opts["workers"] = args.workers
    return opts


def _build(args, progress=True):
    from semistylegan.data import make_dataset

    if args.resolution is not None and not 1 <= args.resolution <= 4096:
        raise UserError(f"--resolution must be between 1 and 4096, got {args.resolution}")
    opts = _options(args)
    if args.data_path is not None:
        opts.setdefault("progress", progress)
    try:
        return make_dataset(args.name, args.resolution, args.data_path, **opts)
    except TypeError as e:
        raise UserError(f"dataset '{args.name}': {e}") from None


def _run(args) -> int:
    return {"info": _info, "preview": _preview, "prepare": _prepare}[args.data_command](args)


def _info(args) -> int:
    from semistylegan.data.registry import PAPER_RESOLUTIONS

    ds = _build(args)
    info = ds.info()
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    fs = ds.factor_space
    print(f"dataset      {args.name}")
    print(f"images       {len(ds):,} ({'full factor grid' if ds.is_grid else 'partial labels'})")
    print(f"resolution   {ds.resolution}x{ds.resolution}, {ds.channels} channel(s); paper: "
          f"{', '.join(map(str, PAPER_RESOLUTIONS.get(args.name, ())))}")
    if "cache" in info:
        print(f"cache        {info['cache']}")
    if not ds.is_grid:
        print(f"labelled     {len(ds.labeled_candidates()):,} images with at least one known factor")
    bases = fs.bases
    print()
    print(f"{'#':>2}  {'factor':<22} {'values':>6} {'base':>9}  range")
    mapping = {m["name"]: m for m in info.get("factor_mapping", [])}
    for k, (name, size) in enumerate(zip(fs.names, fs.sizes)):
        if name in mapping and mapping[name]["type"] == "continuous":
            rng = f"continuous {mapping[name]['min']:g}..{mapping[name]['max']:g} ({size} bins)"
        elif name in mapping:
            vals = [str(v) for v in mapping[name]["values"]]
            rng = ", ".join(vals[:6]) + (" ..." if len(vals) > 6 else "")
        elif fs.values is not None:
            v = fs.values[k]
            rng = f"{v[0]:g} .. {v[-1]:g}" if len(v) > 1 else f"{v[0]:g}"
        else:
            rng = f"0 .. {size - 1}"
        base = f"{bases[k]:>9}" if ds.is_grid else f"{'-':>9}"
        print(f"{k:>2}  {name:<22} {size:>6} {base}  {rng}")
    return 0


def _traversal(ds, rs, steps=10):
    """Rows of images: factor k stepped through (up to `steps` of) its values, the rest fixed."""
    fs = ds.factor_space
    rows, labels = [], []
    if ds.is_grid:
        base = fs.sample_classes(1, rs)[0]
        for k, size in enumerate(fs.sizes):
            vals = np.unique(np.linspace(0, size - 1, min(steps, size)).round().astype(np.int64))
            cls = np.repeat(base[None], len(vals), axis=0)
            cls[:, k] = vals
            imgs = ds.images(fs.classes_to_index(cls))
            rows.append(imgs)
            labels.append(fs.names[k])
    else:
        # Partial labels: for each value of factor k (up to `steps`), an image labelled with it.
        cand = ds.labeled_candidates()
        cls_all = ds.classes(cand) if len(cand) else np.zeros((0, fs.num_factors), dtype=np.int64)
        for k, size in enumerate(fs.sizes):
            vals = np.unique(np.linspace(0, size - 1, min(steps, size)).round().astype(np.int64))
            picks = []
            for v in vals:
                hit = cand[cls_all[:, k] == v] if len(cand) else []
                if len(hit):
                    picks.append(int(rs.choice(hit)))
            if picks:
                rows.append(ds.images(np.asarray(picks)))
                labels.append(fs.names[k])
    return rows, labels


def _preview(args) -> int:
    from semistylegan.data.imaging import save_grid

    out = args.out or f"preview-{args.name}.png"
    if not out.lower().endswith(".png"):
        raise UserError(f"--out must name a .png file, got '{out}'")
    if args.num < 1:
        raise UserError(f"--num must be at least 1, got {args.num}")
    if not (0 <= args.seed < 2**32):
        raise UserError(f"--seed must be in [0, 2**32 - 1], got {args.seed}")
    ds = _build(args)
    rs = np.random.RandomState(args.seed)
    n = max(1, min(args.num, len(ds)))
    idx = np.sort(rs.choice(len(ds), size=n, replace=False))
    imgs = ds.images(idx)
    save_grid(imgs, out, ncol=int(np.ceil(np.sqrt(n))))
    rows, labels = _traversal(ds, rs)
    trav = out[:-4] + "-traversal.png"
    if rows:
        width = max(len(r) for r in rows)
        blank = np.zeros((1,) + rows[0].shape[1:], dtype=np.uint8)
        padded = [np.concatenate([r] + [blank] * (width - len(r))) for r in rows]
        save_grid(np.concatenate(padded), trav, ncol=width, labels=labels)
        print(f"wrote {out} ({n} samples) and {trav} ({len(rows)} factors)")
    else:
        print(f"wrote {out} ({n} samples); no labelled images, so no traversal")
    return 0


def _prepare(args) -> int:
    t0 = time.time()
    from semistylegan import progress

    if args.data_path is None and args.name == "shapes3d":
        from semistylegan.data.registry import DEFAULT_RESOLUTIONS
        from semistylegan.data.shapes3d import ProceduralShapes3D

        ds = ProceduralShapes3D(args.resolution or DEFAULT_RESOLUTIONS["shapes3d"])
        ds.precompute(progress=lambda it: progress.bar(it, desc="shapes3d geometry", unit="geom"))
        where = ds._disk_path()
        print(f"shapes3d geometry ready in {time.time() - t0:.1f}s: {where}")
    else:
        ds = _build(args, progress=not progress.is_quiet())
        where = ds.info().get("cache")
        if where is None:
            print(f"{args.name} is procedural and renders on the fly; nothing to prepare")
        else:
            print(f"{args.name}: {len(ds):,} images at {ds.resolution}x{ds.resolution} ready in "
                  f"{time.time() - t0:.1f}s: {where}")
    if args.out and where:
        with open(args.out, "w") as f:
            f.write(str(where) + "\n")
    sys.stdout.flush()
    return 0
