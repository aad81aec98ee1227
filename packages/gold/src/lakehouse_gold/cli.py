"""``lakehouse gold build``: rebuild the marts on the gold audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import add_batch_arguments, add_gate_argument, gate_in_layer_job, start_layer_job
from lakehouse_core.progress import Progress


def _build(args: argparse.Namespace) -> int:
    from lakehouse_gold.build import GoldResult
    from lakehouse_gold.tables import GOLD_TABLES, build_tables

    job = start_layer_job(args, "gold")
    progress = Progress("gold build", len(GOLD_TABLES))

    def done(result: GoldResult, seconds: float) -> None:
        progress.done(f"gold.{result.table}", "already published, skipped" if result.skipped else
                      "inputs unchanged, its state staged alone" if result.unchanged else
                      f"{result.rows} rows staged", seconds, rows=None if result.skipped else result.rows,
                      staged=not result.skipped)

    build_tables(job.spark, job.settings, job.interval, full_refresh=args.full_refresh, on_done=done)
    progress.summary()
    if args.gate:
        gate_in_layer_job(job, "gold")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse gold ...``."""
    gold = subparsers.add_parser("gold", help="gold layer").add_subparsers(dest="gold_command", required=True)
    build = gold.add_parser("build", help="build the gold tables (dimensions, facts, marts) on their audit branches")
    add_batch_arguments(build, with_tables=False)
    build.add_argument("--full-refresh", action="store_true",
                       help="rebuild every table from silver alone (history replayed), ignoring published gold")
    add_gate_argument(build, "gold")
    build.set_defaults(func=_build)
