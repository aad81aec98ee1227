"""``lakehouse gold build``: rebuild the marts on the gold audit branches."""

from __future__ import annotations

import argparse

from lakehouse_core.cli import add_batch_arguments, start_layer_job
from lakehouse_core.parallel import run_in_dependency_order
from lakehouse_core.progress import Progress


def _build(args: argparse.Namespace) -> int:
    from lakehouse_core import lineage
    from lakehouse_core.registry import identifier
    from lakehouse_gold.build import build_table
    from lakehouse_gold.tables import GOLD_TABLES, GoldTable

    job = start_layer_job(args, "gold")
    progress = Progress("gold build", len(GOLD_TABLES))

    def build(table: GoldTable) -> None:
        # reported as a run of its own: the Spark listener sees checkpointed rows, not the silver
        # tables (the build reads its column lineage from the plan before the checkpoint)
        with progress.table(f"gold.{table.name}") as done, \
                lineage.lineage_run(job.settings, f"{job.spark.sparkContext.appName}.build_{table.name}") as run:
            result = build_table(job.spark, job.settings, table, job.interval, full_refresh=args.full_refresh)
            if not result.skipped:
                written = identifier("gold", table.name)
                run.inputs, run.outputs = lineage.table_step(
                    job.spark, [identifier("silver", t) for t in table.upstream]
                    + [identifier("gold", t) for t in table.depends_on], [written],
                    {written: result.column_lineage} if result.column_lineage else None)
            done("already published, skipped" if result.skipped else f"{result.rows} rows staged",
                 rows=None if result.skipped else result.rows, staged=not result.skipped)

    # a table after the gold tables it reads (as this batch builds them)
    run_in_dependency_order(list(GOLD_TABLES.values()), build, job.settings.spark.parallel_tables,
                            depends_on=lambda table: [GOLD_TABLES[name] for name in table.depends_on])
    progress.summary()
    return 0


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``lakehouse gold ...``."""
    gold = subparsers.add_parser("gold", help="gold layer").add_subparsers(dest="gold_command", required=True)
    build = gold.add_parser("build", help="build the gold tables (dimensions, facts, marts) on their audit branches")
    add_batch_arguments(build, with_tables=False)
    build.add_argument("--full-refresh", action="store_true",
                       help="rebuild every table from silver alone (history replayed), ignoring published gold")
    build.set_defaults(func=_build)
