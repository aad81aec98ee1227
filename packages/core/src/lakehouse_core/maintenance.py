"""Table maintenance: what keeps a lakehouse's file and snapshot counts bounded as batches pile up.

For each Iceberg table of the chosen layers, with Iceberg's own procedures and the retention of
``settings.maintenance``:

1. ``rewrite_data_files`` where small files or delete files piled up (``iceberg.compact``);
2. ``rewrite_manifests`` where ``min_manifests`` piled up: few manifests instead of one per commit
   (and the table keeps only its last ``iceberg.METADATA_RETENTION`` metadata files);
3. ``expire_snapshots`` older than ``snapshot_retention_days``, keeping the last ``retain_last``
   (and every snapshot a branch or tag holds: the ``last_publish`` tag keeps each table's
   ``lakehouse.*`` batch state, an audit branch its staged batch);
4. ``remove_orphan_files`` older than ``orphan_retention_hours``: files no snapshot references
   (a crashed write's), never one a running write may still commit; it lists the whole table,
   so it runs once every ``orphan_sweep_days`` per table (``ORPHANS_SWEPT_AT``; a new table
   counts from its creation).

What each table needs is decided from its metadata, read through pyiceberg (``maintain``): a
run that finds nothing to do on any table starts no Spark application. The rows read from ``main``
are unchanged (compaction and manifest rewrites commit ``replace`` snapshots). Run it when no batch
of the table is being written (the DAG's last task).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from pyspark.sql import SparkSession

from lakehouse_core import iceberg
from lakehouse_core.catalog import load_catalog
from lakehouse_core.parallel import run_tables
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
    properties: dict[str, str]
    manifests: int  # of the current snapshot
    #: the most data files, and delete files, one partition holds (where not counted: the table's,
    #: an upper bound)
    partition_files: int
    partition_delete_files: int

    @classmethod
    def read(cls, spark: SparkSession, ident: str) -> "_Metadata":
        """Through Spark's JVM (the table as the procedures will see it)."""
        table = iceberg.java_table(spark, ident)
        parser = iceberg.java_class(spark, "org.apache.iceberg.TableMetadataParser")
        metadata = json.loads(parser.toJson(table.operations().current()))
        snapshots = metadata.get("snapshots", [])
        current = next((s["summary"] for s in snapshots if s["snapshot-id"] == metadata.get("current-snapshot-id")), {})
        head = table.currentSnapshot()
        return cls([s["timestamp-ms"] for s in snapshots], int(current.get("total-data-files", 0)),
                   metadata.get("properties", {}),
                   0 if head is None else head.allManifests(table.io()).size(), int(current.get("total-data-files", 0)),
                   int(current.get("total-delete-files", 0)))

    @classmethod
    def of(cls, table: Any) -> "_Metadata":
        """From a pyiceberg table (no JVM)."""
        metadata, head = table.metadata, table.current_snapshot()
        summary = {} if head is None or head.summary is None else head.summary
        partitions = [] if head is None else table.inspect.partitions().to_pylist()
        return cls([s.timestamp_ms for s in metadata.snapshots], int(summary.get("total-data-files", 0)),
                   dict(metadata.properties),
                   0 if head is None else len(head.manifests(table.io)),
                   max((p["file_count"] for p in partitions), default=0),
                   max((p["position_delete_file_count"] + p["equality_delete_file_count"] for p in partitions), default=0))


@dataclass(frozen=True)
class _Due:
    """What maintenance has to do to a table (``_due``)."""

    properties: dict[str, str]  # ``iceberg.METADATA_RETENTION`` properties the table lacks
    compact: bool
    rewrite_manifests: bool
    expire_before: int | None  # epoch ms: expire older snapshots (None: none to expire)
    sweep_before: int | None  # epoch ms: remove orphan files older (None: not swept this time)

    @property
    def anything(self) -> bool:
        return bool(self.properties or self.compact or self.rewrite_manifests or self.expire_before is not None
                    or self.sweep_before is not None)


def _due(settings: LakehouseSettings, metadata: _Metadata, now_ms: int) -> _Due:
    """What the table of ``metadata`` needs, under ``settings.maintenance`` and the clock ``now_ms``."""
    options = settings.maintenance
    expire_before = now_ms - int(options.snapshot_retention_days * 86_400_000)
    # a table never swept counts from its creation (its first snapshot)
    swept_at = int(metadata.properties.get(ORPHANS_SWEPT_AT, min(metadata.snapshot_times, default=now_ms)))
    return _Due(
        properties={k: v for k, v in iceberg.METADATA_RETENTION.items() if metadata.properties.get(k) != v},
        # (a data file has at most its partition's delete files)
        compact=options.compact and (metadata.partition_files >= options.min_input_files
                                     or metadata.partition_delete_files >= options.delete_file_threshold),
        rewrite_manifests=metadata.manifests >= options.min_manifests,
        expire_before=expire_before if (len(metadata.snapshot_times) > options.retain_last
                                        and min(metadata.snapshot_times) < expire_before) else None,
        sweep_before=(now_ms - int(options.orphan_retention_hours * 3_600_000)
                      if now_ms - swept_at >= options.orphan_sweep_days * 86_400_000 else None))


def maintain_table(spark: SparkSession, settings: LakehouseSettings, ident: str,
                   now: datetime | None = None) -> TableMaintenance:
    """Maintain ``ident`` (see the module), each step only where it has something to do (decided
    from the table's metadata, without a Spark job). ``now``: the clock retention counts back from."""
    began = time.perf_counter()
    options = settings.maintenance
    now_ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    table = ident.split(".", 1)[1]
    before = _Metadata.read(spark, ident)
    due = _due(settings, before, now_ms)
    _keep_few_metadata_files(spark, ident, due.properties)
    expired_files = orphans = 0
    with catalog_uri_for_cloned_sessions(spark):
        if due.compact:
            iceberg.compact(spark, ident, options.min_input_files, options.delete_file_threshold)
        if due.rewrite_manifests:
            spark.sql(f"CALL {CATALOG_NAME}.system.rewrite_manifests(table => '{table}')").collect()
        if due.expire_before is not None:
            expired = spark.sql(f"CALL {CATALOG_NAME}.system.expire_snapshots(table => '{table}', older_than => "
                                f"TIMESTAMP '{_timestamp(due.expire_before)}', retain_last => {options.retain_last})").first()
            expired_files = sum(int(v) for k, v in expired.asDict().items() if k.endswith("_count"))
        if due.sweep_before is not None:
            # on object stores, list through the table's FileIO (no Hadoop S3 file system is configured)
            listing = ", prefix_listing => true" if settings.warehouse_uri.startswith("s3") else ""
            orphans = len(spark.sql(f"CALL {CATALOG_NAME}.system.remove_orphan_files(table => '{table}', "
                                    f"older_than => TIMESTAMP '{_timestamp(due.sweep_before)}'{listing})").collect())
            iceberg.java_table(spark, ident).updateProperties().set(ORPHANS_SWEPT_AT, str(now_ms)).commit()
    after = _Metadata.read(spark, ident)
    return TableMaintenance(table, len(before.snapshot_times), len(after.snapshot_times), before.data_files,
                            after.data_files, expired_files, orphans, round(time.perf_counter() - began, 2))


def _keep_few_metadata_files(spark: SparkSession, ident: str, missing: dict[str, str]) -> None:
    """Give a table created without them the ``iceberg.METADATA_RETENTION`` properties ``missing``."""
    if missing:
        update = iceberg.java_table(spark, ident).updateProperties()
        for key, value in missing.items():
            update = update.set(key, value)
        update.commit()


def _timestamp(epoch_ms: int) -> str:
    """``epoch_ms`` as a Spark SQL timestamp literal in the session's zone (UTC)."""
    return datetime.fromtimestamp(epoch_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


#: threads reading tables' metadata through pyiceberg (each waits on the catalog and the file system)
METADATA_THREADS = 8


def maintain(settings: LakehouseSettings, spark_for: Callable[[], SparkSession], layers: tuple[str, ...] = LAYERS,
             now: datetime | None = None) -> list[TableMaintenance]:
    """Maintain every table of ``layers`` (see the module). Each table's metadata is read through
    pyiceberg and what it needs decided (``_due``); the tables that need something are maintained
    in the Spark session ``spark_for()`` returns (called only then), ``spark.parallel_tables`` at a
    time (each table's procedures are small Spark jobs and catalog commits: overlapped, they use
    the cores); the others are reported as they are."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    now_ms = int((now or datetime.now(timezone.utc)).timestamp() * 1000)
    catalog = load_catalog(settings)

    def tables_of(layer: str) -> list[str]:
        try:
            return sorted(f"{layer}.{name}" for _, name in catalog.list_tables(layer))
        except NoSuchNamespaceError:  # (no table of the layer written yet)
            return []

    def decide(table: str) -> tuple[str, _Metadata, bool, float]:
        began = time.perf_counter()
        metadata = _Metadata.of(catalog.load_table(table))
        return table, metadata, _due(settings, metadata, now_ms).anything, time.perf_counter() - began

    with ThreadPoolExecutor(METADATA_THREADS) as threads:
        decided = list(threads.map(decide, [t for layer in layers for t in tables_of(layer)]))
    due = [f"{CATALOG_NAME}.{table}" for table, _, anything, _ in decided if anything]
    maintained = {}
    if due:
        spark = spark_for()
        maintained = dict(zip(due, run_tables(spark, settings, due,
                                              lambda ident: maintain_table(spark, settings, ident, now))))
    return [maintained.get(f"{CATALOG_NAME}.{table}") or TableMaintenance(
                table, len(m.snapshot_times), len(m.snapshot_times), m.data_files, m.data_files, 0, 0,
                round(seconds, 2))
            for table, m, _, seconds in decided]
