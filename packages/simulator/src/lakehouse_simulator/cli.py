"""``lakehouse simulate``: create the source schema and fill it with simulated shop data."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import time

from lakehouse_simulator.generate import DEFAULT_DAYS, DEFAULT_START


def _simulate(args: argparse.Namespace) -> int:
    from lakehouse_core import postgres
    from lakehouse_core.settings import get_settings

    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    settings = get_settings()
    began = time.perf_counter()
    # The embedded server is started on demand and stopped afterwards unless it was already running.
    server = postgres.embedded_server(settings) if settings.source.host is None else contextlib.nullcontext()
    with server:
        conn = postgres.connect(settings.source, settings)
        try:
            create_source_schema(conn, reset=args.reset)
            counts = generate(conn, scale=args.scale, seed=args.seed, start=args.start, days=args.days)
            conn.commit()
        except RuntimeError as exc:   # e.g. tables already filled without --reset
            conn.rollback()
            print(f"lakehouse simulate: {exc}")
            return 1
        finally:
            conn.close()
    width = max(map(len, counts))
    for table, n in counts.items():
        print(f"{table:<{width}}  {n:>10,}")
    print(f"{'total':<{width}}  {sum(counts.values()):>10,}")
    print(f"generated {settings.source.dbname} (scale {args.scale:g}, seed {args.seed}, "
          f"{args.start} + {args.days} days) in {time.perf_counter() - began:.1f} s")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register the simulator sub-commands."""
    p = subparsers.add_parser(
        "simulate", help="create the source schema and fill it with deterministic simulated data",
        description="Create the 24 source tables (and the simulator clock) and fill them. "
                    "Volumes: scale 1 ≈ 10,000 customers and 100,000 orders per 30 simulated days.")
    p.add_argument("--scale", type=_positive_float, required=True, help="shop size (1 ≈ 100k orders / 30 days)")
    p.add_argument("--seed", type=int, required=True, help="random seed (same inputs → identical data)")
    p.add_argument("--start", type=dt.date.fromisoformat, default=DEFAULT_START,
                   help=f"first simulated day (default {DEFAULT_START})")
    p.add_argument("--days", type=_positive_int, default=DEFAULT_DAYS,
                   help=f"number of simulated days (default {DEFAULT_DAYS})")
    p.add_argument("--reset", action="store_true",
                   help="drop and recreate the source tables first (otherwise they must be absent or empty)")
    p.set_defaults(func=_simulate)
