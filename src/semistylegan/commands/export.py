"""`semistylegan export`: write a run's EMA generator for use without this package.

    semistylegan export RUN_DIR --out exported/

Files: generator.safetensors (weights), generator.pt and encoder.pt (TorchScript, loadable with
torch.jit.load alone), model.json (factor names, ranges and input shapes).
"""
from __future__ import annotations

import argparse


def add_parser(sub):
    p = sub.add_parser("export", help="export the generator (safetensors + TorchScript + JSON)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (its newest snapshot) or a snapshot file")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan.export import export_run

    model = export_run(args.run, args.out)
    names = ", ".join(f["name"] for f in model["factors"])
    print(f"exported {model['method']} generator ({model['resolution']}x{model['resolution']}, factors: {names}) -> {args.out}")
    return 0
