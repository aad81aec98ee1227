"""``python -m lakehouse_simulator simulate ...``: the simulator commands without the other layers."""

from __future__ import annotations

import argparse
import sys

from lakehouse_simulator.cli import add_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse_simulator")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
