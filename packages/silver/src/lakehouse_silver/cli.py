"""``lakehouse silver transform``: merge new bronze versions into the silver audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import (add_batch_arguments, add_gate_argument, gate_in_layer_job, hold_leases, start_layer_job,
                                utility_spark)
from lakehouse_core.progress import Progress
from lakehouse_core.registry import Registry
from lakehouse_core.settings import get_settings


def _transform(args: argparse.Namespace) -> int:
    from lakehouse_silver.transform import SilverResult, transform_tables

    job = start_layer_job(args, "silver")
    progress = Progress("silver transform", len(job.tables))

    def done(result: SilverResult, seconds: float) -> None:
        progress.done(f"silver.{result.table}", "already published, skipped" if result.skipped else
                      f"{result.rows_merged} keys merged, {result.quarantined} quarantined, "
                      f"{result.quarantine_closed} quarantine rows closed (bronze snapshot {result.upstream_snapshot})",
                      seconds, merged=result.rows_merged, quarantined=result.quarantined,
                      released=result.quarantine_closed, staged=not result.skipped)

    transform_tables(job.spark, job.settings, job.tables, job.interval, on_done=done)
    progress.summary()
    if args.gate:
        gate_in_layer_job(job, "silver", [t.name for t in job.tables])
    return 0


def _quarantine(args: argparse.Namespace) -> int:
    from lakehouse_silver.quarantine import open_summary

    spark = utility_spark("lakehouse-quarantine")
    summary = open_summary(spark, Registry.load(get_settings()).in_dependency_order())
    for row in summary:
        heals = "retried by every batch" if row.heals else "stays until fixed"
        print(f"{row.table:<36} {row.rule:<28} {row.open_rows:>7,} open  "
              f"batches {row.first_batch} .. {row.last_batch}  ({heals})")
    if not summary:
        print("no open quarantined rows")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from lakehouse_silver.quarantine import request_replay

    settings = get_settings()
    spec = Registry.load(settings).get(args.table)
    hold_leases(settings, ["silver"], "quarantine replay")
    count = request_replay(utility_spark("lakehouse-quarantine"), spec)
    print(f"quarantine.silver_{spec.name}: {count:,} open row{'' if count == 1 else 's'} will be retried by the next "
          "silver batch")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse silver ...``."""
    silver = subparsers.add_parser("silver", help="silver layer").add_subparsers(dest="silver_command", required=True)
    transform = silver.add_parser("transform", help="merge bronze changes into silver audit branches")
    add_batch_arguments(transform)
    add_gate_argument(transform, "silver")
    transform.set_defaults(func=_transform)
    listing = subparsers.add_parser("quarantine", help="list the open quarantined rows per table and rule")
    listing.set_defaults(func=_quarantine)
    replay = listing.add_subparsers(dest="quarantine_command").add_parser(
        "replay", help="have the table's next silver batch retry every open row (after a fix)")
    replay.add_argument("--table", required=True, help="a registered table, e.g. order_items")
    replay.set_defaults(func=_replay)
