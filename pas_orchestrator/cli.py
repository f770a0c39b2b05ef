"""The ``pas`` command line. Exit codes: 0 ok, 1 failure, 2 usage error."""

from __future__ import annotations

import argparse
import logging
import sys

from pas_models.errors import PasError
from pas_orchestrator import __version__
from pas_orchestrator.commands import (
    bench_model,
    cancel,
    data,
    doctor,
    export,
    flops,
    report,
    search,
    status,
    train,
)

COMMANDS = (search, status, report, cancel, export, train, flops, bench_model, data, doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pas", description="Progressive Architecture Shrinkage on SLURM clusters.")
    parser.add_argument("--version", action="version", version=f"pas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except PasError as exc:
        print(f"pas {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"pas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
