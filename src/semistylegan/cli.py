"""Command line: `semistylegan COMMAND ...` (also `python -m semistylegan`).

Each command lives in `semistylegan.commands.<name>` and provides `add_parser(subparsers)`,
which registers its options and sets `func` to the function that runs it. The CLI only
parses; the commands build configs and call the library.

Errors a user can cause (UserError, bad option values) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from semistylegan.errors import UserError

# Order shown in --help. A module that is not present in this version is skipped.
COMMANDS = ("train", "evaluate", "generate", "traverse", "edit", "project", "serve", "export", "data", "study", "bench")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (no usage dump) and exits with status 2."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="semistylegan", description=__doc__.splitlines()[0])
    from semistylegan import __version__

    parser.add_argument("--version", action="version", version=f"semistylegan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"semistylegan.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"semistylegan.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        from semistylegan import progress

        progress.set_quiet(bool(getattr(args, "quiet", False)))  # per call: tests run several in one process
        result = args.func(args)
        return int(result or 0)
    except UserError as e:
        # Under torchrun every process checks the same input: only rank 0 reports it. Once the
        # process group runs, an error may be one process's own, so each one reports it.
        tdist = sys.modules.get("torch.distributed")  # not imported for the error alone
        group_running = tdist is not None and tdist.is_available() and tdist.is_initialized()
        if group_running or os.environ.get("RANK", "0") == "0":
            print(f"semistylegan: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("semistylegan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
