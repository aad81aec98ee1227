"""``lakehouse bronze extract``: extract the batch's tables into their audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import add_batch_arguments, add_gate_argument, gate_in_layer_job, start_layer_job
from lakehouse_core.progress import Progress


def _extract(args: argparse.Namespace) -> int:
    from lakehouse_bronze.extract import ExtractResult, extract_tables
    from lakehouse_bronze.source import source_state

    job = start_layer_job(args, "bronze")
    state = source_state(job.settings)  # one clock reading and snapshot for the whole run
    progress = Progress("bronze extract", len(job.tables))

    def done(result: ExtractResult) -> None:
        outcome = ("already published, skipped" if result.skipped else
                   "source as at the last batch, its state staged alone" if result.as_last_read else
                   f"{result.rows_written} rows and {result.deletes} deletes staged, watermark {result.watermark}"
                   + ("" if result.seconds is not None else " (landed with the other first loads)"))
        deferred = result.deferred
        if deferred.rows:
            outcome += (f"; {deferred.rows} source rows beyond the upper bound left for a later batch"
                        + (f" ({deferred.future} dated after the source clock)" if deferred.future else ""))
        progress.done(f"bronze.{result.table}", outcome, result.seconds, rows=result.rows_written,
                      deletes=result.deletes, deferred=deferred.rows, staged=not result.skipped)

    extract_tables(job.spark, job.settings, job.tables, job.interval, state, on_done=done,
                   confirmed_deletes=args.confirm_mass_deletes)
    progress.summary()
    if args.gate:
        gate_in_layer_job(job, "bronze", [t.name for t in job.tables])
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse bronze ...``."""
    bronze = subparsers.add_parser("bronze", help="bronze layer").add_subparsers(dest="bronze_command", required=True)
    extract = bronze.add_parser("extract", help="extract source tables into bronze audit branches")
    add_batch_arguments(extract)
    extract.add_argument("--confirm-mass-deletes", default=[], metavar="TABLE[,TABLE...]",
                         type=lambda names: [n.strip() for n in names.split(",") if n.strip()],
                         help="let these tables' deletes through although they exceed LAKEHOUSE_EXTRACT__MAX_DELETE_SHARE")
    add_gate_argument(extract, "bronze")
    extract.set_defaults(func=_extract)
