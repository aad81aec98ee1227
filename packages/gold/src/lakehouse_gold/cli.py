"""``lakehouse gold build``: rebuild the marts on the gold audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import add_batch_arguments, start_layer_job


def _build(args: argparse.Namespace) -> int:
    from lakehouse_gold.build import build_table
    from lakehouse_gold.tables import GOLD_TABLES

    job = start_layer_job(args, "gold")
    for table in GOLD_TABLES.values():
        result = build_table(job.spark, job.settings, table, job.interval, full_refresh=args.full_refresh)
        print(f"gold.{table.name}: " + ("already published, skipped" if result.skipped else f"{result.rows} rows staged"))
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse gold ...``."""
    gold = subparsers.add_parser("gold", help="gold layer").add_subparsers(dest="gold_command", required=True)
    build = gold.add_parser("build", help="build the gold tables (dimensions, facts, marts) on their audit branches")
    add_batch_arguments(build, with_tables=False)
    build.add_argument("--full-refresh", action="store_true",
                       help="rebuild every table from silver alone (history replayed), ignoring published gold")
    build.set_defaults(func=_build)
