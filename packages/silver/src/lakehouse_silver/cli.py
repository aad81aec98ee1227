"""``lakehouse silver transform``: merge new bronze versions into the silver audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import add_batch_arguments, start_layer_job


def _transform(args: argparse.Namespace) -> int:
    from lakehouse_silver.transform import transform_table

    job = start_layer_job(args, "silver")
    for spec in job.tables:
        result = transform_table(job.spark, job.settings, spec, job.interval)
        outcome = ("already published, skipped" if result.skipped else
                   f"{result.rows_merged} keys merged, {result.quarantined} quarantined "
                   f"(bronze snapshot {result.upstream_snapshot})")
        print(f"silver.{spec.name}: {outcome}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse silver ...``."""
    silver = subparsers.add_parser("silver", help="silver layer").add_subparsers(dest="silver_command", required=True)
    transform = silver.add_parser("transform", help="merge bronze changes into silver audit branches")
    add_batch_arguments(transform)
    transform.set_defaults(func=_transform)
