"""How a gold table is built: a function of silver, read at pinned snapshots, and the run's data interval.

Results depend on the logical date of the run, never on the wall clock. Silver is read at
pinned snapshots (``SilverSnapshots``: ``main`` of each upstream table when the build starts),
and the ids read are the ones committed as ``lakehouse.upstream_snapshot``, so a build can
be repeated exactly from its commit. Every table is rebuilt on the batch's audit branch and
published by the gold gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.batch import DataInterval
from lakehouse_core.registry import identifier
from lakehouse_core.settings import LakehouseSettings

PACKAGE = "lakehouse-gold"


@dataclass(frozen=True)
class SilverSnapshots:
    """Silver tables pinned at snapshot ids: what a gold table reads, and all it may read."""

    spark: SparkSession
    ids: dict[str, int]

    @classmethod
    def current(cls, spark: SparkSession, tables: tuple[str, ...]) -> "SilverSnapshots":
        """``main`` of each table now (published silver)."""
        return cls(spark, {t: iceberg.snapshot_id(spark, identifier("silver", t)) for t in tables})

    def read(self, table: str) -> DataFrame:
        """``silver.<table>`` as of its pinned snapshot. Raises KeyError for a table not pinned
        (a build reading a table it does not declare upstream)."""
        if table not in self.ids:
            raise KeyError(f"silver.{table} is not an upstream table of this build (pinned: {sorted(self.ids)})")
        return self.spark.read.option("snapshot-id", str(self.ids[table])).table(identifier("silver", table))


@dataclass(frozen=True)
class GoldTable:
    """A gold table (``dim_*``, ``fct_*``, ``mart_*``): how it is built from silver, and from which tables."""

    name: str
    partition_by: list[str]
    build: Callable[[SilverSnapshots, LakehouseSettings, DataInterval], DataFrame]
    upstream: tuple[str, ...]


def business_day(ts: F.Column, settings: LakehouseSettings) -> F.Column:
    """The calendar day of a UTC instant in the business zone."""
    return F.to_date(F.from_utc_timestamp(ts, settings.business_zone))


@dataclass(frozen=True)
class GoldResult:
    table: str
    rows: int
    skipped: bool = False


def build_table(spark: SparkSession, settings: LakehouseSettings, table: GoldTable, interval: DataInterval) -> GoldResult:
    """Rebuild ``gold.<table>`` on the batch's audit branch, recording the silver snapshots read.

    Raises BatchOrderError when a newer batch is already published and
    UpstreamNotPublishedError when the silver batch of an upstream table is not published.
    """
    ident = identifier("gold", table.name)
    batch_id = interval.batch_id
    start = iceberg.start_batch(spark, ident, batch_id)
    if start.already_published:
        return GoldResult(table.name, 0, skipped=True)
    for upstream in table.upstream:
        iceberg.require_published(spark, identifier("silver", upstream), batch_id, f"gold.{table.name}")
    silver = SilverSnapshots.current(spark, table.upstream)
    df = table.build(silver, settings, interval).localCheckpoint()
    if not start.exists:
        iceberg.create_table(spark, ident, df.schema, partition_by=table.partition_by)
    iceberg.stage(spark, ident, batch_id, lambda target: df.writeTo(target).overwrite(F.lit(True)), PACKAGE,
                  {"lakehouse.upstream_snapshot": iceberg.encode(silver.ids)})
    return GoldResult(table.name, df.count())
