"""Silver: bronze row versions → current state per primary key, typed, standardised and masked.

For each table: read only the bronze snapshots published since the last silver run
(Iceberg incremental read between the upstream snapshot recorded in silver's
``last_publish`` tag and bronze ``main``); conform every version (generic rules, then
an optional per-table transformer); set aside versions that break a hard rule into
``quarantine.silver_<table>`` (and retry the open ones that may pass now, see
``lakehouse_silver.quarantine``); keep the latest valid version per key; evolve the silver
schema if bronze gained columns; ``MERGE`` into the silver audit branch (deletes
applied). The bronze snapshot read up to is committed with the data as
``lakehouse.upstream_snapshot``; on the batches the settings schedule, the current state is
reconciled with bronze (``lakehouse_silver.reconcile``). A table whose bronze landed no row
since, with nothing to retry or replay, stages its state alone: no Spark job, no files.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Callable

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import IntegralType, StringType, TimestampNTZType

from lakehouse_core import iceberg, lineage, quality
from lakehouse_core.batch import DataInterval
from lakehouse_core.business_days import edge_business_day
from lakehouse_core.parallel import run_tables
from lakehouse_core.registry import TableSpec, identifier
from lakehouse_core.schema import check_evolution, column, quoted, widened_columns
from lakehouse_core.settings import LakehouseSettings
from lakehouse_silver import pii, quarantine, reconcile
from lakehouse_silver.vocabulary import canonical, enum_columns

PACKAGE = "lakehouse-silver"
BRONZE_META = ("_batch_id", "_ingested_at", "_op", "_source_xid")
#: Silver's own columns: which bronze batch landed the version, when silver merged it.
SILVER_META = ("_source_batch_id", "_silver_updated_at")

Transformer = Callable[[DataFrame], DataFrame]
TRANSFORMERS: dict[str, Transformer] = {}


def transformer(table: str) -> Callable[[Transformer], Transformer]:
    """Register table-specific logic, applied after the generic conform step."""
    def register(fn: Transformer) -> Transformer:
        TRANSFORMERS[table] = fn
        return fn
    return register


@transformer("order_items")
def _order_items(df: DataFrame) -> DataFrame:
    # a line amount is never negative (the source trigger does not clamp it: source-system.md §1.5 T3)
    return df.withColumn("amount", F.greatest(F.col("amount"), F.lit(0).cast(df.schema["amount"].dataType)))


def conform(df: DataFrame, spec: TableSpec, settings: LakehouseSettings) -> DataFrame:
    """Generic rules: source-local timestamps → UTC instants, text trimmed (empty → NULL),
    enumerations to their canonical vocabulary, PII replaced by its keyed hash (an email or phone
    first checked: ``<column>_is_valid``, whether it was well formed).

    Unknown enumeration values become NULL here and are caught by the quarantine rules
    (which compare with the raw value kept in ``_raw``). ``df`` carries the masked copies of the
    PII columns (``pii.with_masked_copies``), which replace them.
    """
    spec.check_columns(df.columns, f"bronze.{spec.name}")
    enums = enum_columns(spec.name)
    for field in df.schema.fields:
        name, col = field.name, column(field.name)
        if name in BRONZE_META or name in (quarantine.RAW_COLUMN, quarantine.RETRY_COLUMN) or \
                name.startswith(pii.MASKED_PREFIX):
            continue
        if isinstance(field.dataType, TimestampNTZType):
            df = df.withColumn(name, F.to_utc_timestamp(col.cast("timestamp"), settings.source_zone))
        elif isinstance(field.dataType, StringType):
            df = df.withColumn(name, F.when(F.trim(col) == "", None).otherwise(F.trim(col)))
            if name in enums:
                df = df.withColumn(name, canonical(F.col(name), enums[name]))
        if name in spec.pii:  # of any type: a number can be personal data too (masked to text)
            checked = pii.well_formed(column(name), spec.pii[name])
            if checked is not None:
                df = df.withColumn(f"{name}{pii.VALIDITY_SUFFIX}", checked)
            df = df.withColumn(name, F.when(column(name).isNotNull(), pii.masked_copy(name)))
    return df.drop(*[c for c in df.columns if c.startswith(pii.MASKED_PREFIX)])


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


def read_new_bronze(spark: SparkSession, bronze: str, since: int | None, batch_id: str) -> tuple[DataFrame, int | None]:
    """Bronze rows appended after snapshot ``since`` up to the snapshot that published ``batch_id``
    (not ``main``'s head: a newer bronze batch published meanwhile is the next silver batch's),
    and that snapshot's id."""
    head = iceberg.published_head(spark, bronze, batch_id)
    if head is None:  # a table without a snapshot: nothing to read
        return spark.read.table(bronze), head
    if since is None:
        return spark.read.format("iceberg").option("snapshot-id", str(head)).load(bronze), head
    if head == since:
        return spark.read.table(bronze).limit(0), head
    return (spark.read.format("iceberg").option("start-snapshot-id", str(since))
            .option("end-snapshot-id", str(head)).load(bronze)), head


def changes_from_bronze(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                        bronze_rows: DataFrame, branch: str) -> tuple[DataFrame, DataFrame]:
    """Bronze row versions → (latest valid version per key, conformed; rows breaking a hard rule).

    Every version is conformed and checked before the latest is chosen, so a bad latest
    version leaves the key at its last valid version: processing bronze batch by batch or
    all at once gives the same silver. Retried quarantined versions (``quarantine.RETRY_COLUMN``
    set) keep that column on both sides.
    """
    rows = pii.with_masked_copies(bronze_rows, spec.pii, pii.pii_key(settings) if spec.pii else b"")
    raw = rows.withColumn(quarantine.RAW_COLUMN, quarantine.raw_values(rows, spec))
    conformed = TRANSFORMERS.get(spec.name, lambda d: d)(conform(raw, spec, settings))
    accepted, rejected = quarantine.split(spark, conformed, spec, branch, quality.quarantine_rules(settings, spec.name))
    latest = (latest_per_key(accepted, spec).withColumnRenamed("_batch_id", "_source_batch_id")
              .withColumn("_silver_updated_at", F.current_timestamp())
              .drop("_ingested_at", "_source_xid", quarantine.RAW_COLUMN))
    return latest, rejected


def with_retries(new_bronze: DataFrame, retries: quarantine.Retries | None) -> tuple[DataFrame, DataFrame | None]:
    """The batch's bronze rows plus the versions ``retries`` retries (``quarantine.retries``), and
    the open rows they retry (None when none is open)."""
    rows = new_bronze.withColumn(quarantine.RETRY_COLUMN, F.lit(None).cast("string"))
    if retries is None:
        return rows, None
    return rows.unionByName(retries.versions), retries.opened


def as_released(latest: DataFrame, batch_id: str) -> DataFrame:
    """The changes to merge: a retried version that passed is merged as landed by ``batch_id``,
    the batch that released it (gold finds it among that batch's changes)."""
    retried = F.col(quarantine.RETRY_COLUMN)
    return (latest.withColumn("_source_batch_id", F.when(retried.isNotNull(), F.lit(batch_id))
                              .otherwise(F.col("_source_batch_id")))
            .drop(quarantine.RETRY_COLUMN))


@dataclass(frozen=True)
class SilverResult:
    table: str
    rows_merged: int
    quarantined: int
    upstream_snapshot: int | None
    new_columns: tuple[str, ...] = ()
    skipped: bool = False
    quarantine_closed: int = 0  # open quarantine rows this batch released or superseded


def _evolve(spark: SparkSession, silver: str, incoming: DataFrame) -> list[str]:
    """Add new columns and apply safe widenings to the silver table; raise SchemaDriftError otherwise."""
    existing = spark.table(silver).schema
    added = check_evolution(silver, existing, incoming.schema)
    for name in added:
        spark.sql(f"ALTER TABLE {silver} ADD COLUMN {quoted(name)} {incoming.schema[name].dataType.simpleString()}")
    for name, data_type in widened_columns(existing, incoming.schema).items():
        spark.sql(f"ALTER TABLE {silver} ALTER COLUMN {quoted(name)} TYPE {data_type.simpleString()}")
    return added


def merge_into(spark: SparkSession, target: str, changes: DataFrame, spec: TableSpec) -> None:
    """``MERGE`` the changes (``_op`` upsert/delete) into ``target`` (a silver table's branch identifier).

    A version equal to the row silver holds (re-read by a cursor's lookback, or a full reload)
    leaves the row untouched: ``_source_batch_id`` stays the batch that last changed it, which
    is how gold finds what changed, and no delete file is written for it.

    The match also bounds each integral key column of the target by the changes' lowest and
    highest value (``key_bounds``): it matches the same rows, and the target's scan skips the
    data files whose keys lie outside (a log's new rows are its newest keys, in its newest files).
    """
    columns = [c for c in changes.columns if c != "_op"]
    content = [c for c in columns if c not in SILVER_META]
    view = f"silver_changes_{re.sub(r'[^a-z0-9_]', '_', spec.name)}"
    changes.createOrReplaceTempView(view)
    on = " AND ".join([f"t.{quoted(k)} = s.{quoted(k)}" for k in spec.primary_key]
                      + [f"t.{quoted(k)} BETWEEN {low} AND {high}" for k, (low, high) in key_bounds(changes, spec).items()])
    assignments = ", ".join(f"t.{quoted(c)} = s.{quoted(c)}" for c in columns)
    spark.sql(f"""
        MERGE INTO {target} t
        USING {view} s ON {on}
        WHEN MATCHED AND s._op = 'delete' THEN DELETE
        WHEN MATCHED AND ({" OR ".join(f"NOT (t.{quoted(c)} <=> s.{quoted(c)})" for c in content)}) THEN UPDATE SET {assignments}
        WHEN NOT MATCHED AND s._op <> 'delete' THEN INSERT ({", ".join(quoted(c) for c in columns)})
             VALUES ({", ".join(f"s.{quoted(c)}" for c in columns)})
    """)


def append_upserts(target: str, changes: DataFrame) -> None:
    """Write the upserted rows of ``changes`` to ``target``, a silver table's branch that holds no
    row yet (its first load): what ``merge_into`` would insert, deletes dropped, without the
    MERGE's join against the empty target (scale 3, a first load: the silver step about 10 % less)."""
    changes.where(F.col("_op") != "delete").drop("_op").writeTo(target).append()


def key_bounds(changes: DataFrame, spec: TableSpec) -> dict[str, tuple[int, int]]:
    """The lowest and highest value of each integral primary-key column of ``changes`` (none when
    it holds no row)."""
    integral = [k for k in spec.primary_key if isinstance(changes.schema[k].dataType, IntegralType)]
    if not integral:
        return {}
    row = changes.select(*[f(column(k)) for k in integral for f in (F.min, F.max)]).first()
    return {} if row[0] is None else {k: (int(row[2 * i]), int(row[2 * i + 1])) for i, k in enumerate(integral)}


def table_lineage(spark: SparkSession, spec: TableSpec) -> tuple[list, list]:
    """The OpenLineage datasets of ``spec``'s silver step: bronze read, silver (with the source of
    each column) and its quarantine table written."""
    bronze, silver = identifier("bronze", spec.name), identifier("silver", spec.name)
    source = iceberg.java_table(spark, bronze).location()
    def column_source(column: str) -> lineage.ColumnSource:
        checked = column.removesuffix(pii.VALIDITY_SUFFIX)
        if checked != column and checked in spec.pii:
            return lineage.ColumnSource(source, checked, "well-formed check (before PII masking)")
        return lineage.ColumnSource(source, "_batch_id" if column == "_source_batch_id" else column,
                                    "keyed hash (PII masking)" if column in spec.pii else "typed, standardised",
                                    masked=column in spec.pii)

    sources = {column: [column_source(column)] for column in spark.table(silver).columns
               if column not in SILVER_META[1:]}
    return lineage.table_step(spark, [bronze, silver], [silver, identifier("quarantine", f"silver_{spec.name}")],
                              {silver: lineage.ColumnLineage(sources)})


def transform_tables(spark: SparkSession, settings: LakehouseSettings, specs: list[TableSpec],
                     interval: DataInterval, on_done: Callable[[SilverResult, float], None] | None = None
                     ) -> list[SilverResult]:
    """``transform_table`` for each of ``specs``, ``spark.parallel_tables`` at a time, a child table
    after its parents among them (its foreign keys are checked against them as this batch stages
    them); each table reported as an OpenLineage run of its own (the Spark listener sees the MERGE's
    source as checkpointed rows) and handed to ``on_done`` with its seconds. Raises what
    ``transform_table`` raises, once the tables under way are staged."""
    def transform(spec: TableSpec) -> SilverResult:
        began = time.perf_counter()
        with lineage.lineage_run(settings, f"{spark.sparkContext.appName}.transform_{spec.name}") as run:
            result = transform_table(spark, settings, spec, interval)
            if not result.skipped:
                run.inputs, run.outputs = table_lineage(spark, spec)
        if on_done is not None:
            on_done(result, time.perf_counter() - began)
        return result

    return run_tables(spark, settings, specs, transform,
                      depends_on=lambda spec: [t for t in specs if t.name in spec.parent_tables()])


def transform_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                    interval: DataInterval) -> SilverResult:
    """Merge the table's new bronze versions into its silver audit branch.

    Raises BatchOrderError when a newer batch is already published, UpstreamNotPublishedError
    when the bronze batch is not published, and SchemaDriftError when bronze changed a column
    type incompatibly (nothing written).
    """
    bronze = identifier("bronze", spec.name)
    silver = identifier("silver", spec.name)
    batch_id = interval.batch_id
    branch = iceberg.audit_branch(batch_id)
    start = iceberg.start_batch(spark, silver, batch_id)
    if start.already_published:
        return SilverResult(spec.name, 0, 0, None, skipped=True)
    iceberg.require_published(spark, bronze, batch_id, f"silver.{spec.name}")
    exists, since = start.exists, start.state("upstream_snapshot")

    new_bronze, head = read_new_bronze(spark, bronze, since, batch_id)
    replay = quarantine.pending_replay(spark, spec)
    retries = quarantine.retries(spark, spec, replay is not None)  # open rows that can heal, all for a replay
    if replay is None and retries is None and _unchanged(spark, settings, spec, interval, since, head):
        return _stage_unchanged(spark, settings, spec, interval, start, head)
    candidates, opened = with_retries(new_bronze, retries)
    latest, rejected = changes_from_bronze(spark, settings, spec, candidates, branch)
    latest, rejected = latest.localCheckpoint(), rejected.localCheckpoint()
    changes = as_released(latest, batch_id)
    table_columns = changes.drop("_op")
    if exists:  # an incompatible change fails here, before anything (quarantine included) is written
        check_evolution(silver, spark.table(silver).schema, table_columns.schema)
    closed = None if opened is None else quarantine.closings(spec, opened, latest, rejected)
    stale = quarantine.superseded(spark, spec, new_bronze, opened)
    closed = stale if closed is None else closed if stale is None else closed.unionByName(stale)
    quarantined, closed_rows = quarantine.stage(spark, rejected, spec, batch_id, PACKAGE, closed, replay)

    new_columns: list[str] = []
    if not exists:
        partition = [f"days({spec.event_time})"] if spec.partitioned else None
        iceberg.create_table(spark, silver, table_columns.schema, partition_by=partition,
                             properties={"write.merge.mode": "merge-on-read", "write.delete.mode": "merge-on-read",
                                         "write.update.mode": "merge-on-read"})
    else:
        new_columns = _evolve(spark, silver, table_columns)
        if settings.maintenance.compact:  # MERGEs leave small files and delete files behind
            iceberg.compact(spark, silver, settings.maintenance.min_input_files,
                            settings.maintenance.delete_file_threshold)
    merged = changes.count()
    state = {"lakehouse.upstream_snapshot": iceberg.encode(head), "lakehouse.quarantined_rows": str(quarantined),
             "lakehouse.merged_rows": str(merged)}

    def merge_and_measure(target: str) -> None:
        if exists:
            merge_into(spark, target, changes, spec)
        else:
            append_upserts(target, changes)
        lag = freshness_lag_days(spark.table(target), spec.event_time, interval, settings) if spec.event_time else None
        if lag is not None:
            state[FRESHNESS] = str(lag)
        if settings.quality.reconciles(interval, settings.business_zone):
            state.update(reconcile.reconciliation(spark, spec, head, target, branch))

    iceberg.stage(spark, silver, batch_id, merge_and_measure, PACKAGE, lambda: state)
    return SilverResult(spec.name, merged, quarantined, head, tuple(new_columns), quarantine_closed=closed_rows)


FRESHNESS = "lakehouse.measure.freshness_lag_days"


def _unchanged(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, interval: DataInterval,
               since: int | None, head: int | None) -> bool:
    """Whether bronze landed no row since the bronze snapshot silver read up to (its batches since
    committed their state alone) and the batch is not one that reconciles: with nothing to retry
    or replay, the batch leaves the silver table as published."""
    return (since is not None and head is not None
            and not settings.quality.reconciles(interval, settings.business_zone)
            and iceberg.same_rows_between(spark, identifier("bronze", spec.name), since, head))


def _stage_unchanged(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, interval: DataInterval,
                     start: iceberg.BatchStart, head: int) -> SilverResult:
    """Stage an unchanged table's state alone (no Spark job, no files): the bronze snapshot read up to,
    nothing merged or quarantined, and its freshness lag carried forward (the newest event is the
    one the last published batch measured, the logical date moved on)."""
    batch_id = interval.batch_id
    quarantine.stage_nothing(spark, spec, batch_id)
    state = {"lakehouse.upstream_snapshot": iceberg.encode(head), "lakehouse.quarantined_rows": "0",
             "lakehouse.merged_rows": "0"}
    lag = start.summary.get(FRESHNESS)
    if lag is not None:
        previous = DataInterval.from_batch_id(start.summary[f"{iceberg.PROPERTY_PREFIX}batch_id"])
        zone = settings.business_zone
        state[FRESHNESS] = str(int(lag) + (interval.last_day(zone) - previous.last_day(zone)).days)
    iceberg.stage(spark, identifier("silver", spec.name), batch_id, None, PACKAGE, state)
    return SilverResult(spec.name, 0, 0, head)


def freshness_lag_days(table: DataFrame, event_time: str, interval: DataInterval,
                       settings: LakehouseSettings) -> int | None:
    """Days from the newest business day of ``event_time`` in ``table`` to the run's logical date
    (0: the table holds events of the logical date; negative: events dated after it; None: no
    events). The events from the interval's start are read first (most tables hold the batch's own)."""
    newest = edge_business_day(table, event_time, settings.business_zone, last=True, near=interval.start)
    return None if newest is None else (interval.last_day(settings.business_zone) - newest).days
