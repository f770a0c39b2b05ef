"""The ``pas`` command line. Exit codes: 0 ok, 1 failure, 2 usage error, 130 interrupted.

Only the module of the command that runs is imported (``pas status`` never imports torch): the
other commands are listed from ``COMMANDS`` for ``pas --help``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from pas_models.errors import PasError
from pas_orchestrator import __version__

# name -> (module, one-line help); each module's add_parser registers the same help
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("pas_orchestrator.commands.search", "start or resume a PAS search"),
    "status": ("pas_orchestrator.commands.status", "the state of a search"),
    "report": ("pas_orchestrator.commands.report", "table and plot of a search"),
    "cancel": ("pas_orchestrator.commands.cancel", "cancel a search and its jobs"),
    "study": ("pas_orchestrator.commands.study", "the paper's other experiments on a finished search"),
    "export": ("pas_orchestrator.commands.export", "export the best model of a search"),
    "train": ("pas_orchestrator.commands.train", "train one hypothesis (or the base network) here"),
    "flops": ("pas_orchestrator.commands.flops", "GFLOPs per view of a backbone after a sequence of reduction "
                                                 "operators"),
    "bench-model": ("pas_orchestrator.commands.bench_model", "measured latency beside GFLOPs, per step of an "
                                                             "operator sequence"),
    "data": ("pas_orchestrator.commands.data", "synthetic dataset, dataset checks, video re-encoding"),
    "doctor": ("pas_orchestrator.commands.doctor", "what pas finds here: Python, torch/CUDA/NCCL, video backends, "
                                                   "SLURM"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, the other commands are placeholders (listed by --help, not imported)."""
    parser = argparse.ArgumentParser(prog="pas", description="Progressive Architecture Shrinkage on SLURM clusters.")
    parser.add_argument("--version", action="version", version=f"pas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, text) in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=text)
    return parser


def _command(argv: list[str]) -> str | None:
    """The command word of ``argv`` (the first argument that is not an option), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name = _command(argv)
    args = build_parser(only=name or "").parse_args(argv)
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
    except BrokenPipeError:  # `pas status | head`: the reader has gone; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":
    sys.exit(main())
