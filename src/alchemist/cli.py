"""`alchemist <command>`: the commands the Snakemake rules call.

Each command lives in its module of `alchemist.commands` (COMMANDS) with `HELP`,
`add_arguments(parser)` and `run(args) -> int`. Command modules import heavy libraries (torch, mlflow) inside `run`, so
`alchemist --help` stays fast. A `UserError` becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from alchemist.errors import UserError

#: command name -> its module in alchemist.commands
COMMANDS = {
    "prep": "prep",
    "plan": "plan",
    "probe": "probe",
    "budget": "budget",
    "train": "train",
    "aggregate": "aggregate",
    "select": "select",
    "sync": "sync",
    "plot": "plot",
    "publish": "publish",
    "lr-find": "lr_find",
    "sanity": "sanity",
    "diagnostics": "diagnostics",
    "final-test": "final_test",
    "lockbox": "lockbox",
    "predict": "predict",
    "progress": "progress",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, just that command's module is imported (fast, and isolated)."""
    parser = argparse.ArgumentParser(
        prog="alchemist",
        description="Deep-learning hyperparameter pipeline commands (called by the Snakemake rules).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in [only] if only else COMMANDS:
        module = importlib.import_module(f"alchemist.commands.{COMMANDS[name]}")
        p = sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP)  # help is %-formatted
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The exit status of the `alchemist` command in `argv` (default sys.argv[1:]): the command's own (0 if
    none), 2 after a UserError, 1 after a full disk; other errors are raised."""
    # pyarrow's default allocator (mimalloc) reserves GBs of address space it never touches; a
    # training job's memory cap (RLIMIT_DATA, alchemist.train.memory) would count it. Set before
    # any command imports pyarrow; the system allocator uses as much resident memory.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    argv = sys.argv[1:] if argv is None else list(argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UserError as err:
        print(f"alchemist {args.command}: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:                    # noqa: BLE001 - only a full disk is answered here
        if not disk_full(err):
            raise
        where = getattr(err, "filename", None) or next(
            (str(getattr(args, a)) for a in ("out", "out_dir", "results", "marker") if getattr(args, a, None)), None)
        print(f"alchemist {args.command}: error: disk full{f' writing {where}' if where else ''} "
              f"({err.__class__.__name__}: {str(err).splitlines()[0][:160]}); free space there "
              "and run the same command again — what was written before is kept (every output is "
              "replaced only once complete)", file=sys.stderr)
        return 1


def disk_full(err: BaseException) -> bool:
    """Whether `err` (or what it was raised from) is a full disk or quota: OSError's errno, or
    the message pyarrow, torch.save and numpy pass on."""
    while err is not None:
        if getattr(err, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or \
                any(t in str(err) for t in ("No space left on device", "Disk quota exceeded")):
            return True
        err = err.__cause__ or err.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
