"""`ciuic` command line: one argparse parser, one module per subcommand.

Each subcommand module exposes `add_parser(subparsers)` (which sets `func`) and `run(args)`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from app.cli import simulate

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ciuic", description="Predictive GPU autoscaler")
    subparsers = parser.add_subparsers(dest="command", required=True)
    simulate.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)
