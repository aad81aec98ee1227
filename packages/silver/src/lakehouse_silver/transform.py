"""Silver: bronze row versions → current state per primary key, typed and standardised.

For each table: read only the bronze snapshots published since the last silver run
(Iceberg incremental read between the upstream snapshot recorded in silver's
``last_publish`` tag and bronze ``main``), conform (generic rules plus an optional
per-table transformer), keep the latest version per key, and ``MERGE`` into the
silver audit branch (deletes applied). The bronze snapshot read up to is committed
with the data as ``lakehouse.upstream_snapshot``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.metadata import version
from typing import Callable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, TimestampNTZType

from lakehouse_core import iceberg
from lakehouse_core.batch import DataInterval, check_not_older
from lakehouse_core.registry import TableSpec, identifier
from lakehouse_core.settings import LakehouseSettings

PACKAGE = "lakehouse-silver"
BRONZE_META = ("_batch_id", "_ingested_at", "_op", "_row_hash", "_source_xid")

Transformer = Callable[[DataFrame], DataFrame]
TRANSFORMERS: dict[str, Transformer] = {}


def transformer(table: str) -> Callable[[Transformer], Transformer]:
    """Register table-specific logic, applied after the generic conform step."""
    def register(fn: Transformer) -> Transformer:
        TRANSFORMERS[table] = fn
        return fn
    return register


def canonical_enum(column: str) -> F.Column:
    """One canonical spelling: trimmed, snake_case, lower case (``DeliveryFailed`` → ``delivery_failed``)."""
    trimmed = F.trim(F.col(column))
    snake = F.regexp_replace(trimmed, r"([a-z0-9])([A-Z])", "$1_$2")
    return F.lower(F.regexp_replace(snake, r"[\s\-]+", "_"))


@transformer("orders")
def _orders(df: DataFrame) -> DataFrame:
    return df.withColumn("status", canonical_enum("status"))


def conform(df: DataFrame, settings: LakehouseSettings) -> DataFrame:
    """Generic rules: naive source-local timestamps → UTC instants, text trimmed."""
    for field in df.schema.fields:
        if field.name in BRONZE_META:
            continue
        if isinstance(field.dataType, TimestampNTZType):
            df = df.withColumn(field.name, F.to_utc_timestamp(F.col(field.name).cast("timestamp"), settings.source_zone))
        elif isinstance(field.dataType, StringType):
            df = df.withColumn(field.name, F.trim(F.col(field.name)))
    return df


def latest_per_key(df: DataFrame, spec: TableSpec) -> DataFrame:
    """Latest version per primary key.

    Tie-break: later batch, then later source version (``_source_xid`` for xmin cursors,
    else the cursor column), then later ingestion.
    """
    order = [F.col("_batch_id").desc()]
    if spec.cursor:
        order.append(F.col("_source_xid" if spec.uses_commit_cursor else spec.cursor).desc_nulls_last())
    order.append(F.col("_ingested_at").desc())
    window = Window.partitionBy(*spec.primary_key).orderBy(*order)
    return df.withColumn("_rn", F.row_number().over(window)).where("_rn = 1").drop("_rn")


def read_new_bronze(spark: SparkSession, bronze: str, since: int | None) -> tuple[DataFrame, int | None]:
    """Bronze rows appended after snapshot ``since`` up to ``main``'s head, and that head's id."""
    head = iceberg.snapshot_id(spark, bronze)
    if since is None:
        return spark.read.table(bronze), head
    if head == since:
        return spark.read.table(bronze).limit(0), head
    return (spark.read.format("iceberg").option("start-snapshot-id", str(since))
            .option("end-snapshot-id", str(head)).load(bronze)), head


@dataclass(frozen=True)
class SilverResult:
    table: str
    rows_merged: int
    upstream_snapshot: int | None
    skipped: bool = False


def _merge_condition(keys: tuple[str, ...]) -> str:
    return " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)


def transform_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                    interval: DataInterval) -> SilverResult:
    """Merge the table's new bronze versions into its silver audit branch.

    Raises BatchOrderError when a newer batch is already published.
    """
    bronze = identifier("bronze", spec.name)
    silver = identifier("silver", spec.name)
    batch_id = interval.batch_id
    branch = iceberg.audit_branch(batch_id)
    exists = iceberg.table_exists(spark, silver)
    since = None
    if exists:
        published = iceberg.published_batches(spark, silver)
        if batch_id in published:
            return SilverResult(spec.name, 0, None, skipped=True)
        check_not_older(batch_id, published, f"silver.{spec.name}")
        since = json.loads(iceberg.summary(spark, silver).get("lakehouse.upstream_snapshot", "null"))

    new_bronze, head = read_new_bronze(spark, bronze, since)
    changes = conform(latest_per_key(new_bronze, spec), settings)
    changes = TRANSFORMERS.get(spec.name, lambda d: d)(changes)
    changes = (changes.withColumnRenamed("_batch_id", "_source_batch_id")
               .withColumn("_silver_updated_at", F.current_timestamp())
               .drop("_ingested_at", "_row_hash", "_source_xid")).localCheckpoint()
    columns = [c for c in changes.columns if c != "_op"]

    if not exists:
        partition = [f"days({spec.event_time})"] if spec.partitioned else None
        iceberg.create_table(spark, silver, changes.select(*columns), partition_by=partition,
                             properties={"write.merge.mode": "merge-on-read", "write.delete.mode": "merge-on-read",
                                         "write.update.mode": "merge-on-read"})
    iceberg.start_audit_branch(spark, silver, branch)
    view = f"silver_changes_{re.sub(r'[^a-z0-9_]', '_', spec.name)}"
    changes.createOrReplaceTempView(view)
    assignments = ", ".join(f"t.`{c}` = s.`{c}`" for c in columns)
    spark.sql(f"""
        MERGE INTO {silver}.branch_{branch} t
        USING {view} s ON {_merge_condition(spec.primary_key)}
        WHEN MATCHED AND s._op = 'delete' THEN DELETE
        WHEN MATCHED THEN UPDATE SET {assignments}
        WHEN NOT MATCHED AND s._op <> 'delete' THEN INSERT ({", ".join(f"`{c}`" for c in columns)})
             VALUES ({", ".join(f"s.`{c}`" for c in columns)})
    """)
    iceberg.commit_properties(spark, silver, branch, {
        "lakehouse.batch_id": batch_id,
        "lakehouse.upstream_snapshot": iceberg.encode(head),
        "lakehouse.package_version": version(PACKAGE),
    })
    return SilverResult(spec.name, changes.count(), head)
