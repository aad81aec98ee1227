"""``lakehouse simulate``: create the source schema and fill it with simulated shop data;
``lakehouse simulate-advance``: advance it by whole simulated days."""

from __future__ import annotations

import argparse
import datetime as dt
import time

from lakehouse_simulator.generate import DEFAULT_DAYS, DEFAULT_START


def _simulate(args: argparse.Namespace) -> int:
    from lakehouse_core import postgres
    from lakehouse_core.settings import get_settings

    from lakehouse_core.progress import Progress

    from lakehouse_simulator.generate import generate, source_is_empty
    from lakehouse_simulator.schema import SOURCE_TABLES, create_source_schema

    settings = get_settings()
    began = time.perf_counter()
    conn = postgres.connect(settings.source, settings)
    try:
        create_source_schema(conn, reset=args.reset)
        if args.if_empty and not source_is_empty(conn):
            print(f"lakehouse simulate: {settings.source.dbname} already holds data; nothing generated (--if-empty)")
            return 0
        progress = Progress(f"simulate {settings.source.dbname}", len(SOURCE_TABLES))
        print(f"generating {len(SOURCE_TABLES)} tables (scale {args.scale:g}, seed {args.seed}, {args.start} + "
              f"{args.days} days), then loading each:", flush=True)
        generate(conn, scale=args.scale, seed=args.seed, start=args.start, days=args.days,
                 progress=progress)
        conn.commit()
    except RuntimeError as exc:   # e.g. tables already filled without --reset
        conn.rollback()
        print(f"lakehouse simulate: {exc}")
        return 1
    finally:
        conn.close()
    progress.summary()
    print(f"generated {settings.source.dbname} (scale {args.scale:g}, seed {args.seed}, "
          f"{args.start} + {args.days} days) in {time.perf_counter() - began:.1f} s")
    return 0


def _advance(args: argparse.Namespace) -> int:
    from lakehouse_core import postgres
    from lakehouse_core.settings import get_settings

    from lakehouse_simulator.advance import SourceBehaviour, advance, read_clock

    settings = get_settings()
    behaviour = SourceBehaviour(unbumped_update_share=args.unbumped_update_share,
                                wall_clock_columns=args.wall_clock, late_rows_share=args.late_rows_share)
    began = time.perf_counter()
    conn = postgres.connect(settings.source, settings)
    try:
        counts = advance(conn, days=args.days, seed=args.seed, scale=args.scale, scenario=args.scenario,
                         behaviour=behaviour)
        conn.commit()
        clock = read_clock(conn)
    except RuntimeError as exc:   # e.g. no generated source yet
        conn.rollback()
        print(f"lakehouse simulate-advance: {exc}")
        return 1
    finally:
        conn.close()
    tables: dict[str, dict[str, int]] = {}
    for day in counts.values():
        for key, n in day.items():
            table, op = key.rsplit(".", 1)
            tables.setdefault(table, {}).setdefault(op, 0)
            tables[table][op] += n
    width = max(map(len, tables), default=5)
    print(f"{'table':<{width}}  {'inserted':>10}  {'updated':>10}  {'deleted':>10}")
    for table, ops in tables.items():
        print(f"{table:<{width}}  {ops.get('inserted', 0):>10,}  {ops.get('updated', 0):>10,}  "
              f"{ops.get('deleted', 0):>10,}")
    print(f"advanced {settings.source.dbname} by {args.days} day(s) of {args.scenario} (scale {args.scale:g}, "
          f"seed {args.seed}) to {clock} in {time.perf_counter() - began:.1f} s")
    return 0


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return value


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
    reset = p.add_mutually_exclusive_group()
    reset.add_argument("--reset", action="store_true",
                       help="drop and recreate the source tables first (otherwise they must be absent or empty)")
    reset.add_argument("--if-empty", action="store_true",
                       help="generate only when the source tables are absent or empty, else do nothing "
                            "(a one-shot set-up step that may run again)")
    p.set_defaults(func=_simulate)

    from lakehouse_simulator.scenarios import SCENARIOS

    a = subparsers.add_parser(
        "simulate-advance", help="advance the simulated source by whole days (inserts, updates, deletes)",
        description="Simulate whole days from the simulator clock (lakehouse_sim.clock) of a generated "
                    "source: new customers, carts and orders, status transitions, stock movements, returns, "
                    "reviews, hard deletes. Deterministic in (state, seed, day, scenario).")
    a.add_argument("--days", type=_positive_int, default=1, help="number of days to simulate (default 1)")
    a.add_argument("--scenario", choices=list(SCENARIOS), default="normal", help="kind of day (default normal)")
    a.add_argument("--seed", type=int, required=True, help="random seed (same state and seed → same days)")
    a.add_argument("--scale", type=_positive_float, required=True,
                   help="shop size, as for simulate (1 ≈ 3,300 orders per normal day)")
    a.add_argument("--unbumped-update-share", type=_share, default=0.0,
                   help="share of updated rows whose updated_at is left untouched (default 0)")
    a.add_argument("--wall-clock", action="store_true",
                   help="trigger-like columns (customers/cart updated_at, history and stock log rows) get the "
                        "database wall clock instead of sim time")
    a.add_argument("--late-rows-share", type=_share, default=0.0,
                   help="share of direct orders, browsing events and wishlist adds inserted a day late "
                        "(default 0)")
    a.set_defaults(func=_advance)
