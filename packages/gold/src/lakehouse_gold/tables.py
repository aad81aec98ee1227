"""Every gold table, in build order: dimensions, facts, then marts (a table reads only tables before it), and
the build of all of them."""

from __future__ import annotations

import time
from typing import Callable

from pyspark.sql import SparkSession

from lakehouse_core import lineage
from lakehouse_core.batch import DataInterval
from lakehouse_core.parallel import run_tables
from lakehouse_core.registry import identifier
from lakehouse_core.settings import LakehouseSettings
from lakehouse_gold.build import GoldResult, GoldTable, build_table
from lakehouse_gold.dimensions import DIMENSIONS
from lakehouse_gold.facts import FACTS
from lakehouse_gold.marts import MARTS

GOLD_TABLES: dict[str, GoldTable] = {table.name: table for table in [*DIMENSIONS, *FACTS, *MARTS]}


def _check_build_order() -> None:
    built: set[str] = set()
    for table in GOLD_TABLES.values():
        missing = set(table.depends_on) - built
        if missing:
            raise RuntimeError(f"gold.{table.name} depends on {sorted(missing)}, built after it")
        built.add(table.name)


_check_build_order()


def build_tables(spark: SparkSession, settings: LakehouseSettings, interval: DataInterval, full_refresh: bool = False,
                 on_done: Callable[[GoldResult, float], None] | None = None) -> list[GoldResult]:
    """``build_table`` for every gold table, ``spark.parallel_tables`` at a time, each after the gold
    tables it reads (as this batch builds them); each reported as an OpenLineage run of its own
    with the column lineage its build read from its plan (the Spark listener sees checkpointed
    rows, not the tables read), and handed to ``on_done`` with its seconds. Raises what
    ``build_table`` raises, once the tables under way are staged."""
    def build(table: GoldTable) -> GoldResult:
        began = time.perf_counter()
        with lineage.lineage_run(settings, f"{spark.sparkContext.appName}.build_{table.name}") as run:
            result = build_table(spark, settings, table, interval, full_refresh=full_refresh)
            if not result.skipped:
                written = identifier("gold", table.name)
                run.inputs, run.outputs = lineage.table_step(
                    spark, [identifier("silver", t) for t in table.upstream]
                    + [identifier("gold", t) for t in table.depends_on], [written],
                    {written: result.column_lineage} if result.column_lineage else None)
        if on_done is not None:
            on_done(result, time.perf_counter() - began)
        return result

    return run_tables(spark, settings, list(GOLD_TABLES.values()), build,
                      depends_on=lambda table: [GOLD_TABLES[name] for name in table.depends_on])
