"""`semistylegan export`: write a run's EMA generator and its encoder for use without this package.

    semistylegan export RUN_DIR --out exported/

Files: generator/encoder .safetensors (weights), .pt2 (torch.export programs: torch.export.load),
.onnx (onnxruntime and other ONNX runtimes), model.json (factor names, value grids, resolution,
input shapes). Load them back with semistylegan.load_generator(dir) / load_encoder(dir), which
need only torch and safetensors. A folder that holds another model's export is refused unless
--force.
"""
from __future__ import annotations

import argparse


def add_parser(sub):
    p = sub.add_parser("export", help="export the generator and encoder (safetensors, torch.export, ONNX, JSON)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (its newest snapshot) or a snapshot file")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="replace another model's export in --out")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX files (no onnx/onnxscript needed)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan import progress
    from semistylegan.export import export_run

    model = export_run(args.run, args.out, force=args.force, onnx=not args.no_onnx,
                       log=lambda message: progress.stage(f"export: {message}"))
    names = ", ".join(f["name"] for f in model["factors"])
    print(f"exported {model['method']} generator and encoder ({model['resolution']}x{model['resolution']}, "
          f"factors: {names}) -> {args.out}")
    return 0
