"""`semistylegan serve`: a local web page to drive a trained model with sliders.

    semistylegan serve RUN_DIR                 # http://127.0.0.1:8000/
    semistylegan serve RUN_DIR --port 0        # any free port (printed)

One slider per named factor, a truncation slider, a new-z button, an image upload (encoded,
then edited with the sliders) and the traversal grid. Binds 127.0.0.1 by default; the page has
no authentication, so think before using --host 0.0.0.0. With --project, an upload is projected
(codes and noise fitted to it, as `semistylegan project` does; a few seconds) and the sliders then
edit the fitted point, keeping what the factors do not describe.
"""
from __future__ import annotations

import argparse


def add_parser(sub):
    p = sub.add_parser("serve", help="local web viewer with factor sliders",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (its newest snapshot) or a snapshot file")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    p.add_argument("--max-upload-mb", type=float, default=8.0, help="largest accepted upload")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="device")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.add_argument("--project", action="store_true", help="project uploads (fit codes and noise; slower, keeps "
                   "what the factors do not describe)")
    p.add_argument("--project-steps", type=int, default=None, help="projection steps with --project (default 200)")
    p.set_defaults(func=run)


def run(args) -> int:
    from semistylegan.errors import UserError
    from semistylegan.projection import DEFAULT_STEPS, check_steps
    from semistylegan.serve import serve

    if not (0 <= args.port <= 65535):
        raise UserError(f"--port must be in [0, 65535], got {args.port}")
    if not (0 < args.max_upload_mb <= 256):
        raise UserError(f"--max-upload-mb must be in (0, 256], got {args.max_upload_mb}")
    project_steps = check_steps(DEFAULT_STEPS if args.project_steps is None else args.project_steps)
    try:
        serve(args.run, args.host, args.port, device=args.device,
              max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), verbose=args.verbose,
              project_steps=project_steps if args.project else 0)
    except KeyboardInterrupt:
        print("stopped")
    return 0
