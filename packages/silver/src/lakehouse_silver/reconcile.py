"""Silver's current state reconciled with bronze: the rows a silver table holds after a batch
equal the keys whose latest accepted bronze version is not a delete (bronze latest versions −
deletes − quarantined).

Counted straight from bronze, without the batch's incremental path (the snapshots read since
the last batch, the retries, the ``MERGE``): a lost bronze snapshot, a ``MERGE`` that duplicates or
drops keys, a quarantined row released twice or never, all make the two counts differ. Both are
committed with the batch as ``lakehouse.reconcile.current_rows.bronze|silver``, which silver's
``_batch`` suite expects equal. It reads the table's whole bronze history, so it runs on the
batches ``LAKEHOUSE_QUALITY__RECONCILE_EVERY_DAYS`` schedules.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.registry import TableSpec, identifier
from lakehouse_silver import quarantine

#: snapshot-summary properties: the current rows expected from bronze, those silver holds
EXPECTED, HELD = "lakehouse.reconcile.current_rows.bronze", "lakehouse.reconcile.current_rows.silver"


def _never_merged(spark: SparkSession, spec: TableSpec, branch: str) -> DataFrame | None:
    """The bronze versions (``_batch_id``, ``_key_json``) quarantine holds back: open or
    superseded rows, as staged by the batch (its branch) or published (None: nothing quarantined)."""
    ident = quarantine.quarantine_table(spec)
    if not iceberg.table_exists(spark, ident):
        return None
    rows = iceberg.read_ref(spark, ident, branch if iceberg.branch_exists(spark, ident, branch) else "main")
    status = F.col("status") if "status" in rows.columns else F.lit(None).cast("string")
    landed = F.col("source_batch_id") if "source_batch_id" in rows.columns else F.lit(None).cast("string")
    # rows quarantined before source_batch_id was recorded: the silver batch of the same interval landed them
    return (rows.where(F.coalesce(status, F.lit(quarantine.OPEN)) != quarantine.RELEASED)
            .select(F.coalesce(landed, F.col("batch_id")).alias("_batch_id"), F.col("primary_key").alias("_key_json")))


def expected_rows(spark: SparkSession, spec: TableSpec, bronze_snapshot: int | None, branch: str) -> int:
    """The keys of ``bronze.<table>`` (up to ``bronze_snapshot``) whose latest version not held
    back by quarantine is not a delete. The latest: later batch, then later source version,
    then later ingestion (as silver chooses it)."""
    if bronze_snapshot is None:
        return 0
    versions = (spark.read.option("snapshot-id", str(bronze_snapshot)).table(identifier("bronze", spec.name))
                .withColumn("_key_json", quarantine.key_json(spec)))
    held_back = _never_merged(spark, spec, branch)
    if held_back is not None:
        versions = versions.join(held_back, ["_batch_id", "_key_json"], "left_anti")
    order = [F.col("_batch_id")]
    if spec.cursor:
        order.append(F.col("_source_xid" if spec.uses_commit_cursor else spec.cursor))
    order.append(F.col("_ingested_at"))
    latest = versions.groupBy("_key_json").agg(F.max_by("_op", F.struct(*order)).alias("_op"))
    return latest.where(F.col("_op") != "delete").count()


def reconciliation(spark: SparkSession, spec: TableSpec, bronze_snapshot: int | None, target: str,
                   branch: str) -> dict[str, str]:
    """The reconciliation's state properties for the staged silver table ``target`` (a branch
    identifier), after its ``MERGE``."""
    return {EXPECTED: str(expected_rows(spark, spec, bronze_snapshot, branch)),
            HELD: str(spark.table(target).count())}
