"""One module per ``pas`` subcommand; each has ``add_parser(subparsers)`` and ``run(args) -> int``."""
