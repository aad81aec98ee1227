"""Table maintenance: what keeps a lakehouse's file and snapshot counts bounded as batches pile up.

For each Iceberg table of the chosen layers, with Iceberg's own procedures and the retention of
``settings.maintenance``:

1. ``rewrite_data_files`` where small files or delete files piled up (``iceberg.compact``);
2. ``rewrite_manifests``: few manifests instead of one per commit (and the table keeps only its
   last ``iceberg.METADATA_RETENTION`` metadata files);
3. ``expire_snapshots`` older than ``snapshot_retention_days``, keeping the last ``retain_last``
   (and every snapshot a branch or tag holds: the ``last_publish`` tag keeps each table's
   ``lakehouse.*`` batch state, an audit branch its staged batch);
4. ``remove_orphan_files`` older than ``orphan_retention_hours``: files no snapshot references
   (a crashed write's), never one a running write may still commit; it lists the whole table,
   so it runs once every ``orphan_sweep_days`` per table (``ORPHANS_SWEPT_AT``; a new table
   counts from its creation).

The rows read from ``main`` are unchanged (compaction and manifest rewrites commit ``replace``
snapshots). Run it when no batch of the table is being written (the DAG's last task).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from pyspark.sql import SparkSession

from lakehouse_core import iceberg
from lakehouse_core.parallel import run_in_dependency_order
from lakehouse_core.registry import identifier
from lakehouse_core.settings import CATALOG_NAME, LakehouseSettings
from lakehouse_core.spark import catalog_uri_for_cloned_sessions

LAYERS = ("bronze", "silver", "gold", "quarantine")


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    snapshots_before: int
    snapshots_after: int
    data_files_before: int  # of the current snapshot
    data_files_after: int
    expired_files: int  # data, delete, manifest and manifest-list files of expired snapshots
    orphan_files: int
    seconds: float


#: table property: when ``remove_orphan_files`` last ran on the table (epoch milliseconds)
ORPHANS_SWEPT_AT = f"{iceberg.PROPERTY_PREFIX}orphans-swept-at"


@dataclass(frozen=True)
class _Metadata:
    """What maintenance decides from: the table's current metadata, read in one call."""

    snapshot_times: list[int]  # epoch milliseconds of every snapshot
    data_files: int  # of the current snapshot
    delete_files: int
    properties: dict[str, str]

    @classmethod
    def read(cls, spark: SparkSession, ident: str) -> "_Metadata":
        table = iceberg.java_table(spark, ident)
        parser = iceberg.java_class(spark, "org.apache.iceberg.TableMetadataParser")
        metadata = json.loads(parser.toJson(table.operations().current()))
        snapshots = metadata.get("snapshots", [])
        current = next((s["summary"] for s in snapshots if s["snapshot-id"] == metadata.get("current-snapshot-id")), {})
        return cls([s["timestamp-ms"] for s in snapshots], int(current.get("total-data-files", 0)),
                   int(current.get("total-delete-files", 0)), metadata.get("properties", {}))


def maintain_table(spark: SparkSession, settings: LakehouseSettings, ident: str,
                   now: datetime | None = None) -> TableMaintenance:
    """Maintain ``ident`` (see the module), each step only where it has something to do (decided
    from the table's metadata, without a Spark job). ``now``: the clock retention counts back from."""
    began = time.perf_counter()
    options = settings.maintenance
    now_ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    table = ident.split(".", 1)[1]
    before = _Metadata.read(spark, ident)
    _keep_few_metadata_files(spark, ident, before.properties)
    expire_before = now_ms - int(options.snapshot_retention_days * 86_400_000)
    orphans_before = now_ms - int(options.orphan_retention_hours * 3_600_000)
    # a table never swept counts from its creation (its first snapshot)
    swept_at = int(before.properties.get(ORPHANS_SWEPT_AT, min(before.snapshot_times, default=now_ms)))
    expired_files = orphans = 0
    with catalog_uri_for_cloned_sessions(spark):
        if options.compact and (before.delete_files or before.data_files >= options.min_input_files):
            iceberg.compact(spark, ident, options.min_input_files, options.delete_file_threshold)
        spark.sql(f"CALL {CATALOG_NAME}.system.rewrite_manifests(table => '{table}')").collect()
        if len(before.snapshot_times) > options.retain_last and min(before.snapshot_times) < expire_before:
            expired = spark.sql(f"CALL {CATALOG_NAME}.system.expire_snapshots(table => '{table}', older_than => "
                                f"TIMESTAMP '{_timestamp(expire_before)}', retain_last => {options.retain_last})").first()
            expired_files = sum(int(v) for k, v in expired.asDict().items() if k.endswith("_count"))
        if now_ms - swept_at >= options.orphan_sweep_days * 86_400_000:
            # on object stores, list through the table's FileIO (no Hadoop S3 file system is configured)
            listing = ", prefix_listing => true" if settings.warehouse_uri.startswith("s3") else ""
            orphans = len(spark.sql(f"CALL {CATALOG_NAME}.system.remove_orphan_files(table => '{table}', "
                                    f"older_than => TIMESTAMP '{_timestamp(orphans_before)}'{listing})").collect())
            iceberg.java_table(spark, ident).updateProperties().set(ORPHANS_SWEPT_AT, str(now_ms)).commit()
    after = _Metadata.read(spark, ident)
    return TableMaintenance(table, len(before.snapshot_times), len(after.snapshot_times), before.data_files,
                            after.data_files, expired_files, orphans, round(time.perf_counter() - began, 2))


def _keep_few_metadata_files(spark: SparkSession, ident: str, properties: dict[str, str]) -> None:
    """Give a table created without them the ``iceberg.METADATA_RETENTION`` properties."""
    missing = {k: v for k, v in iceberg.METADATA_RETENTION.items() if properties.get(k) != v}
    if missing:
        update = iceberg.java_table(spark, ident).updateProperties()
        for key, value in missing.items():
            update = update.set(key, value)
        update.commit()


def _timestamp(epoch_ms: int) -> str:
    """``epoch_ms`` as a Spark SQL timestamp literal in the session's zone (UTC)."""
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def maintain(spark: SparkSession, settings: LakehouseSettings, layers: tuple[str, ...] = LAYERS,
             now: datetime | None = None) -> list[TableMaintenance]:
    """Maintain every table of ``layers`` (see the module), ``spark.parallel_tables`` at a time (each
    table's procedures are small Spark jobs and catalog commits: overlapped, they use the cores)."""
    tables = [identifier(layer, name) for layer in layers for name in iceberg.table_names(spark, layer)]
    return run_in_dependency_order(tables, lambda ident: maintain_table(spark, settings, ident, now),
                                   settings.spark.parallel_tables)
