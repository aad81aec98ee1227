"""Bronze extraction: source table → ``lakehouse.bronze.<table>`` on the batch's audit branch.

Per table, driven by the registry (see ``cursors`` for what each cursor kind reads):

* ``incremental`` tables read the rows their cursor selects; ``full`` tables read all rows.
* Rows equal to the latest bronze version of their key are dropped (the same key and the same
  checksum of every source column bronze has, and NULL in any column it does not have yet), so
  re-reads (lookback overlap, full reloads, reconciliations) never inflate bronze.
* A quiet table is not read at all: each batch commits its read window (``cursors.ReadPlan.window``)
  with the window's fingerprint taken by PostgreSQL before the read (``source.read_window``). When
  the rows of that window still have that fingerprint and the new window holds no other row (and
  the batch does not reconcile; a table reconciling its deletes also holds the same keys), bronze
  holds the latest version of every row the batch would read: it stages its state alone, without a
  Spark read. A row changed between the fingerprint and the read makes the next fingerprint differ:
  that batch reads.
* Hard deletes: ``full`` tables, and incremental tables with ``reconcile_deletes``,
  compare the source's primary keys with the live keys in bronze and record the
  missing ones as ``_op = 'delete'`` rows. A batch deleting more than
  ``extract.max_delete_share`` of a table's keys (a table emptied at the source, a lost
  connection to half of it) is held: ``MassDeleteError``, nothing staged for the table, until
  the deletes are confirmed for it.
* Reconciliation (on the batches ``extract.reconcile_every_days`` picks): an incremental table is
  read whole, compared with bronze like a full one, its deletes included. It lands what its
  cursor cannot see (a timestamp moved back past the lookback, an old row updated under a
  serial cursor, an insert committed far behind it); in an append-only table a changed row, or
  a deleted one unless the registry reconciles its deletes, is refused: ``DriftError``.
* Schema drift is checked before anything is written (``lakehouse_core.schema``): a dropped or
  renamed source column is refused like an incompatible type; a source table that no longer
  exists, or a number wider than the decimal type it is read as, ends the table's batch with an
  error naming table, column and value.

* A table's first load with the COPY reader has nothing to compare with: it lands as
  files written by Spark tasks (``landing``), all such tables of a run in one Spark job.

Every row carries ``_batch_id``, ``_ingested_at`` and ``_op`` (plus ``_source_xid`` for
``xmin`` cursors). The watermark is committed with the data on the audit branch and
published by the gate. A batch already published is skipped; a batch never published
replaces its own earlier attempt (the branch is reset).
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib.metadata import version
from typing import Callable, Collection

from psycopg2.pool import ThreadedConnectionPool
from py4j.protocol import Py4JJavaError
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse_core import iceberg, lineage, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import ConfigurationError, DataError
from lakehouse_core.faults import crash_point
from lakehouse_core.parallel import run_tables
from lakehouse_core.registry import LoadMode, TableSpec, identifier
from lakehouse_core.schema import check_evolution, column
from lakehouse_core.settings import LakehouseSettings
from lakehouse_bronze import cursors, landing, source
from lakehouse_bronze.copy_reader import plan_copy, task_errors

META_COLUMNS = ("_source_xid", "_batch_id", "_ingested_at", "_op")
PACKAGE = "lakehouse-bronze"
#: Threads for per-table driver work that waits on the source or the catalog.
DRIVER_THREADS = 8


@dataclass(frozen=True)
class Deferred:
    """Source rows a timestamp-cursor batch leaves for later batches, beyond its upper bound
    (``cursors``): how many, and how many of them are dated after the source's clock. Zero for
    other cursors."""

    rows: int = 0
    future: int = 0


@dataclass(frozen=True)
class ExtractResult:
    table: str
    rows_written: int
    deletes: int
    watermark: dict | None
    new_columns: tuple[str, ...] = ()
    skipped: bool = False
    deferred: Deferred = Deferred()
    seconds: float | None = None  # its own extraction (None: landed in one job with other first loads)
    #: the source window read as for the last published batch: nothing was read (module docstring)
    as_last_read: bool = False


@dataclass(frozen=True)
class TablePlan:
    """One table's batch as planned before any row is read (``read`` is None when already published)."""

    spec: TableSpec
    ident: str
    batch_id: str
    start: iceberg.BatchStart
    read: cursors.ReadPlan | None = None
    query: str | None = None
    deferred: Deferred = Deferred()
    #: the batch reads the whole table and compares it with bronze (``extract.reconcile_every_days``)
    reconcile: bool = False
    #: the source rows of the read window (None: not taken, the batch reads whatever it holds)
    window: source.WindowRead | None = None
    #: the window holds the rows the last published batch read: nothing to read (module docstring)
    as_last_read: bool = False

    @property
    def branch(self) -> str:
        return iceberg.audit_branch(self.batch_id)

    def state_properties(self, watermark: dict | None, source_rows: int, landed_rows: int) -> dict[str, str]:
        """The ``lakehouse.*`` properties committed with the batch's data (``*_rows``: validated by
        the bronze ``_batch`` suite; ``source_rows``: the rows read from the source; ``landed_rows``:
        the rows this batch appends, new and changed versions and deletes, which the gate counts
        again in the table; ``read_window``: the window read and its fingerprint, when taken)."""
        read_window = {} if self.window is None else {f"{iceberg.PROPERTY_PREFIX}{READ_WINDOW}": iceberg.encode(
            {"window": self.read.window, "fingerprint": self.window.fingerprint})}
        return {"lakehouse.batch_id": self.batch_id, "lakehouse.watermark": iceberg.encode(watermark),
                "lakehouse.package_version": version(PACKAGE), "lakehouse.source_rows": str(source_rows),
                "lakehouse.landed_rows": str(landed_rows),
                "lakehouse.deferred_rows": str(self.deferred.rows), "lakehouse.future_rows": str(self.deferred.future),
                **read_window}

    def result(self, rows: int, deletes: int, watermark: dict | None, new_columns: tuple[str, ...] = (),
               as_last_read: bool = False) -> ExtractResult:
        return ExtractResult(self.spec.name, rows, deletes, watermark, new_columns, deferred=self.deferred,
                             as_last_read=as_last_read)

    def watermark(self, seen_max: int | None) -> dict | None:
        """The watermark to commit: the plan's, or for a serial cursor the highest id read."""
        watermark = self.read.watermark
        if self.read.watermark_is_max_of and seen_max is not None and (
                watermark is None or int(seen_max) > int(watermark["value"])):
            watermark = {"kind": "serial", "value": int(seen_max)}
        return watermark


def with_metadata(df: DataFrame, batch_id: str) -> DataFrame:
    """Add the bronze metadata columns ``_batch_id``, ``_ingested_at``, ``_op``."""
    return (df.withColumn("_batch_id", F.lit(batch_id))
              .withColumn("_ingested_at", F.current_timestamp())
              .withColumn("_op", F.lit("upsert")))


#: the state (``lakehouse.<key>``) holding the read window of a batch and its fingerprint
READ_WINDOW = "read_window"


def latest_versions(bronze: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """The latest bronze version of every key (by batch, then ingestion time)."""
    order = Window.partitionBy(*key).orderBy(F.col("_batch_id").desc(), F.col("_ingested_at").desc())
    return bronze.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def row_hash(df: DataFrame, columns: list[str]) -> Column:
    """A 64-bit checksum of a row's ``columns`` that tells NULL from every value (Spark's hashes
    skip a NULL argument) and a float's -0.0 from nothing else (it equals 0.0)."""
    def normalized(name: str) -> Column:
        value = column(name, df)
        if isinstance(df.schema[name].dataType, (T.FloatType, T.DoubleType)):
            return F.when(value == 0, F.lit(0).cast(df.schema[name].dataType)).otherwise(value)
        return value

    return F.xxhash64(F.array(*[column(c, df).isNull() for c in columns]), *[normalized(c) for c in columns])


def within_key_range(bronze: DataFrame, extracted: DataFrame, key: str) -> DataFrame:
    """The rows of ``bronze`` whose ``key`` lies between the least and the greatest value of it in
    ``extracted`` (found by one job): a literal filter, so Iceberg skips the data files outside by
    their bounds. An append-only table's new rows have keys beyond its older files: a daily
    comparison reads the newest files, not the table's whole history. Every row of ``bronze``
    when ``extracted`` holds no key value."""
    low, high = extracted.agg(F.min(column(key, extracted)), F.max(column(key, extracted))).first()
    return bronze if low is None else bronze.where(column(key, bronze).between(F.lit(low), F.lit(high)))


def changed_rows(bronze: DataFrame, spec: TableSpec, extracted: DataFrame) -> DataFrame:
    """Rows of ``extracted`` that differ from the latest bronze version of their key.

    Equal means: the same key, the same checksum (``row_hash``) of every source column bronze
    has, and NULL in every column it has not (a new source column with a value makes a new
    version). Only keys and checksums of bronze's versions are shuffled to find the latest, not
    whole rows (a reconciling batch compares every row of the table). Two different rows share a
    checksum with odds of about 2⁻⁶⁴: such a change would be missed until the row changes again.
    """
    source_columns = [c for c in extracted.columns if c not in META_COLUMNS]
    compared = [c for c in source_columns if c in bronze.columns]
    new = [c for c in source_columns if c not in bronze.columns]
    key = list(spec.primary_key)
    candidates = within_key_range(bronze, extracted, key[0]).join(extracted.select(*key), key, "left_semi")
    latest = latest_versions(candidates.select(*key, "_batch_id", "_ingested_at",
                                               row_hash(candidates, compared).alias("_row_hash")), spec.primary_key)
    # (a row with a value in a new column has no checksum: it equals no version)
    without_new = functools.reduce(lambda a, b: a & b, [column(c, extracted).isNull() for c in new], F.lit(True))
    checked = extracted.withColumn("_row_hash", F.when(without_new, row_hash(extracted, compared)))
    return checked.join(latest.select(*key, "_row_hash"), [*key, "_row_hash"], "left_anti").drop("_row_hash")


def deleted_rows(bronze: DataFrame, spec: TableSpec, source_keys: DataFrame, template: DataFrame,
                 batch_id: str) -> DataFrame:
    """Keys live in bronze but absent from the source, as ``_op = 'delete'`` rows shaped like
    ``template``. Only the versions of keys absent from the source are ordered to find the latest
    (a few: those deleted now or before), not every version bronze holds. A NULL key names no row:
    it is never deleted."""
    key = list(spec.primary_key)
    absent = bronze.select(*key).join(source_keys.select(*key), key, "left_anti").distinct()
    versions = latest_versions(bronze.join(absent, key, "left_semi").select(*key, "_op", "_batch_id", "_ingested_at"),
                               spec.primary_key)
    gone = versions.where("_op <> 'delete'").select(*key)
    filled = {
        "_batch_id": F.lit(batch_id), "_ingested_at": F.current_timestamp(), "_op": F.lit("delete"),
    }
    columns = [F.col(f.name) if f.name in spec.primary_key
               else filled.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name)
               for f in template.schema.fields]
    return gone.select(*columns)


def align_to_table(df: DataFrame, table_schema) -> DataFrame:
    """Order ``df`` like the bronze table with new columns last (where schema merge adds them);
    a column ``df`` lacks lands as NULL (a source column cannot be missing: ``check_evolution``
    refuses a dropped one)."""
    present = set(df.columns)
    columns = [column(f.name) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
               for f in table_schema.fields]
    known = {f.name for f in table_schema.fields}
    return df.select(*columns, *[column(c) for c in df.columns if c not in known])


def read_source(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, query: str) -> DataFrame:
    """Read ``query`` with the configured reader (``LAKEHOUSE_EXTRACT__READER``: jdbc | copy)."""
    if settings.extract.reader == "copy":
        from lakehouse_bronze.copy_reader import read_source_copy

        return read_source_copy(spark, settings, spec, query)
    return source.read_jdbc(spark, settings, spec, query)


def plan_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, interval: DataInterval,
               state: source.SourceState, pool: ThreadedConnectionPool | None = None) -> TablePlan:
    """Where ``spec``'s bronze table stands and what this batch reads from the source (``pool`` lends
    the source connection).

    A batch already published is a no-op: it is recognised before anything is planned (so an
    older published batch rerun after newer ones is skipped, not refused by its watermark). A
    reconciling batch reads the whole table (as a first read would), keeping a serial watermark.
    Raises BatchOrderError, WatermarkError, SourceSchemaError (see ``extract_tables``).
    """
    ident = identifier("bronze", spec.name)
    start = iceberg.start_batch(spark, ident, interval.batch_id)
    if start.already_published:
        return TablePlan(spec, ident, interval.batch_id, start)
    source.check_table_exists(settings, spec.name, pool)
    cursor_type = None
    if spec.cursor and not spec.uses_commit_cursor:
        cursor_type = source.column_type(settings, spec.name, spec.cursor, pool)
    watermark = start.state("watermark")
    reconcile = (watermark is not None and spec.load_mode is LoadMode.incremental
                 and settings.extract.reconciles(interval, settings.source_zone))
    read = cursors.plan_read(spec, cursor_type, None if reconcile else watermark, state, interval, settings)
    if reconcile and read.watermark_is_max_of:
        read = replace(read, watermark=watermark)  # (a serial watermark never moves back)
    query = source.select(spec, read.predicate, columns="src_t.*" + read.extra_columns)
    deferred = Deferred()
    if read.deferred:
        deferred = Deferred(*source.count_rows(settings, spec, read.deferred, read.future, pool=pool))
    window, as_last_read = None, False
    if start.exists and not reconcile:
        window, as_last_read = _window_as_last_read(settings, spec, read, start.state(READ_WINDOW), pool)
    return TablePlan(spec, ident, interval.batch_id, start, read, query, deferred, reconcile, window, as_last_read)


def _window_as_last_read(settings: LakehouseSettings, spec: TableSpec, read: cursors.ReadPlan, last: dict | None,
                         pool: ThreadedConnectionPool | None) -> tuple[source.WindowRead, bool]:
    """The source rows of ``read``'s window, and whether they are those the last published batch
    read: the rows of its window (``last``, of the same cursor) have the fingerprint it committed and
    the new window holds no other row (and, for an incremental table reconciling its deletes, the
    table holds the keys it held then)."""
    previous = (last or {}).get("window")
    comparable = previous is not None and (previous.get("kind"), previous.get("column")) == \
        (read.window["kind"], read.window.get("column"))
    found = source.read_window(settings, spec, read.predicate, cursors.window_predicate(previous) if comparable else None,
                               pool, compare=comparable,
                               keys=spec.reconcile_deletes and spec.load_mode is LoadMode.incremental)
    return found, comparable and found.previous_fingerprint == last.get("fingerprint") and found.beyond_previous == 0


#: the keys a DriftError names
MAX_DRIFT_KEYS = 5


class DriftError(DataError):
    """A reconciliation found source rows the registry's kind rules out (an update or a delete
    in an insert-only table); nothing was staged for the table."""


def _refuse_rewritten_history(spec: TableSpec, bronze: DataFrame, new_rows: DataFrame) -> None:
    """Raise DriftError naming (a few of) the keys of an append-only table that a reconciliation
    found changed at the source, or deleted unless the registry reconciles its deletes: its silver
    table appends, it would hold a key twice. Keys bronze has never seen are missed inserts, and land."""
    seen = bronze.select(*spec.primary_key).distinct()
    rewritten = new_rows.join(seen, list(spec.primary_key), "left_semi")
    if spec.reconcile_deletes:
        rewritten = rewritten.where("_op <> 'delete'")
    found = rewritten.select(*spec.primary_key, "_op").limit(MAX_DRIFT_KEYS).collect()
    if found:
        keys = ", ".join(f"{ {k: r[k] for k in spec.primary_key} } ({'deleted' if r['_op'] == 'delete' else 'changed'})"
                         for r in found)
        raise DriftError(f"bronze.{spec.name}: the registry calls it {spec.kind}, but the source changed or deleted "
                         f"rows bronze holds: {keys}; nothing was staged for the table. Correct the registry "
                         "(kind = \"mutable\", reconcile_deletes = true) or the source")


class MassDeleteError(DataError):
    """A batch would delete more of a table's keys than ``extract.max_delete_share``; held until confirmed."""


def _hold_mass_delete(spark: SparkSession, settings: LakehouseSettings, plan: TablePlan, deletes: int) -> None:
    """Raise MassDeleteError when the batch deletes more than ``extract.max_delete_share`` of the
    keys bronze holds for the table (and at least ``extract.mass_delete_min_keys``)."""
    bounds = settings.extract
    if deletes < bounds.mass_delete_min_keys:
        return
    held = latest_versions(spark.read.table(plan.ident), plan.spec.primary_key).where("_op <> 'delete'").count()
    if deletes > bounds.max_delete_share * held:
        raise MassDeleteError(
            f"bronze.{plan.spec.name}: batch {plan.batch_id} would delete {deletes} of the {held} keys bronze holds "
            f"({deletes / held:.0%}, more than LAKEHOUSE_EXTRACT__MAX_DELETE_SHARE={bounds.max_delete_share:g}); "
            f"nothing was staged for the table. If the source really lost them, confirm: lakehouse bronze extract "
            f"--confirm-mass-deletes {plan.spec.name} (Airflow: trigger the run with "
            f'{{"confirm_mass_deletes": ["{plan.spec.name}"]}})')


def _extract_dataframe(spark: SparkSession, settings: LakehouseSettings, plan: TablePlan,
                       confirmed_deletes: Collection[str]) -> ExtractResult:
    """Extract one table through a Spark plan: compare with bronze, reconcile deletes (a mass
    delete held unless the table is in ``confirmed_deletes``), append."""
    spec, ident, batch_id = plan.spec, plan.ident, plan.batch_id
    if plan.as_last_read:
        # bronze holds the latest version of every row of the window: nothing to read or compare
        watermark = plan.watermark(None)
        iceberg.stage(spark, ident, batch_id, None, PACKAGE, plan.state_properties(watermark, plan.window.rows, 0))
        return plan.result(0, 0, watermark, as_last_read=True)
    # one source read: the comparison with bronze, the write and the count of rows read
    read = read_source(spark, settings, spec, plan.query)
    try:
        extracted = with_metadata(read, batch_id).localCheckpoint()
    except Py4JJavaError as exc:
        if "DECIMAL_PRECISION_EXCEEDS_MAX_PRECISION" not in str(exc.java_exception):
            raise
        raise source.value_beyond_type(settings, spec, plan.query, read.schema) from None
    read_rows = extracted.count()
    new_columns: list[str] = []
    if not plan.start.exists:
        # accept-any-schema lets new source columns land through mergeSchema; bronze is
        # append-only (the property breaks MERGE column resolution, so silver never sets it).
        iceberg.create_table(spark, ident, extracted.schema, partition_by=["_batch_id"],
                             properties={"write.spark.accept-any-schema": "true"})
        new_rows = extracted
    else:
        table_schema = spark.table(ident).schema
        new_columns = check_evolution(f"source table {spec.name}", table_schema, extracted.schema, keep_columns=True)
        extracted = align_to_table(extracted, table_schema)
        reads_keys = spec.load_mode is LoadMode.full or spec.reconcile_deletes or plan.reconcile
        if not (reads_keys or new_columns) and read_rows == 0:
            # nothing read (a quiet day of an incremental table): nothing changed, bronze is not read,
            # the batch stages its state alone
            watermark = plan.watermark(None)
            iceberg.stage(spark, ident, batch_id, None, PACKAGE, plan.state_properties(watermark, 0, 0))
            return plan.result(0, 0, watermark)
        bronze = spark.read.table(ident)
        new_rows = changed_rows(bronze, spec, extracted)
        if reads_keys:
            keys = extracted if spec.load_mode is LoadMode.full else read_source(
                spark, settings, spec, source.select(spec, None, ", ".join(f"src_t.{source.quote(k)}" for k in spec.primary_key)))
            new_rows = new_rows.unionByName(deleted_rows(bronze, spec, keys, extracted, batch_id))
        if plan.reconcile and spec.append_only:
            new_rows = new_rows.localCheckpoint()
            _refuse_rewritten_history(spec, bronze, new_rows)
    new_rows = new_rows.localCheckpoint()  # computed once: the write, the counts and the watermark

    # per operation, in one job: its rows and (a serial cursor) the highest id of the upserts
    highest = F.max(column(plan.read.watermark_is_max_of)) if plan.read.watermark_is_max_of else F.lit(None)
    counted = new_rows.groupBy("_op").agg(F.count(F.lit(1)).alias("count"), highest.alias("highest")).collect()
    by_op = {r["_op"]: r["count"] for r in counted}
    watermark = plan.watermark(next((r["highest"] for r in counted if r["_op"] == "upsert"), None))
    if plan.spec.name not in confirmed_deletes:
        _hold_mass_delete(spark, settings, plan, by_op.get("delete", 0))
    # no rows and no new source column: the batch's state alone (an empty append would commit nothing else)
    append = None if not (by_op or new_columns) else (
        lambda branch: new_rows.writeTo(branch).option("mergeSchema", "true").append())
    iceberg.stage(spark, ident, batch_id, append, PACKAGE,
                  plan.state_properties(watermark, read_rows, sum(by_op.values())))
    return plan.result(by_op.get("upsert", 0), by_op.get("delete", 0), watermark, tuple(new_columns))


def _land_first_loads(spark: SparkSession, settings: LakehouseSettings, plans: list[TablePlan],
                      connections: ThreadedConnectionPool) -> list[ExtractResult]:
    """First loads of ``plans`` (no bronze table yet) as landed files, all in one Spark job
    (``landing``), then one commit per table creating it with its audit branch, files and state.

    The per-table driver work (planning the ranges, committing) waits on the source and
    the catalog, so it runs in a few threads.
    """
    def job(plan: TablePlan, rows_per_range: int | None = None) -> landing.LandingJob:
        """The table's landing job, read as one stream or, given ``rows_per_range``, in key ranges of
        at most about that many rows."""
        copy_plan = plan_copy(settings, plan.spec, plan.query, num_partitions=1, max_rows_per_range=rows_per_range,
                              pool=connections)
        location = iceberg.table_location(settings.warehouse_uri, plan.ident)
        return landing.LandingJob(plan.ident, copy_plan, location, plan.batch_id, plan.read.watermark_is_max_of)

    def commit(plan: TablePlan, job: landing.LandingJob, landed: landing.Landed) -> ExtractResult:
        watermark = plan.watermark(landed.max_value)
        staged = iceberg.StagedFiles(plan.branch, landed.files, f"_batch_id={plan.batch_id}",
                                     plan.state_properties(watermark, landed.rows, landed.rows))
        iceberg.create_table(spark, plan.ident, job.table_schema(), partition_by=["_batch_id"],
                             properties={"write.spark.accept-any-schema": "true"},
                             location=job.location, staged=staged)
        return plan.result(landed.rows, 0, watermark)

    if not plans:
        return []
    # no Spark write plan names these tables: report their lineage here
    with lineage.lineage_run(settings, f"{spark.sparkContext.appName}.land_first_loads") as reported, \
            ThreadPoolExecutor(DRIVER_THREADS) as threads:
        source_db = postgres.resolve(settings.source, settings)
        reported.inputs = [lineage.postgres_table(source_db, plan.spec.name) for plan in plans]
        jobs = list(threads.map(job, plans))
        share = landing.rows_per_range(jobs, spark.sparkContext.defaultParallelism)  # (larger: planned again)
        jobs = list(threads.map(lambda plan, whole: job(plan, share) if (whole.plan.rows or 0) > share else whole,
                                plans, jobs))
        landed = landing.land(spark, settings, jobs)
        crash_point("landing.files_written")
        results = list(threads.map(commit, plans, jobs, landed))
        reported.outputs = [
            lineage.iceberg_table(job.location, [(f.name, f.dataType.simpleString()) for f in job.table_schema().fields],
                                  done.rows, len(done.files), source)
            for job, done, source in zip(jobs, landed, reported.inputs)]
        return results


def extract_tables(spark: SparkSession, settings: LakehouseSettings, specs: list[TableSpec],
                   interval: DataInterval, state: source.SourceState,
                   on_done: Callable[[ExtractResult], None] | None = None,
                   confirmed_deletes: Collection[str] = ()) -> list[ExtractResult]:
    """Extract ``specs`` into their audit branches (see module docstring); results in ``specs`` order,
    each also handed to ``on_done`` as soon as it is staged (first loads: once all have landed).
    ``confirmed_deletes``: tables whose mass delete (``extract.max_delete_share``) goes ahead.

    Raises BatchOrderError when a newer batch is already published, SchemaDriftError
    on an incompatible source type change, WatermarkError when the watermark would
    move backwards, SourceSchemaError when the registry names a missing column,
    UnsupportedSourceType when the COPY reader meets a type it does not map, SourceValueError when
    a source value does not fit its column's type (naming table, column and value), MassDeleteError
    for a mass delete not confirmed, ConfigurationError when ``confirmed_deletes`` names a table
    not among ``specs``.
    """
    unknown = sorted(set(confirmed_deletes) - {spec.name for spec in specs})
    if unknown:
        raise ConfigurationError(f"--confirm-mass-deletes names {', '.join(unknown)}, not among the tables of this run")
    with source.connection_pool(settings, max(1, min(DRIVER_THREADS, len(specs)))) as connections:
        with ThreadPoolExecutor(DRIVER_THREADS) as threads:  # catalog and source round trips
            plans = list(threads.map(lambda spec: plan_table(spark, settings, spec, interval, state, connections), specs))
        first_loads = [p for p in plans if settings.extract.reader == "copy" and not p.start.exists]
        with task_errors():
            landed = _land_first_loads(spark, settings, first_loads, connections)
    results = dict(zip((p.spec.name for p in first_loads), landed))
    report = on_done or (lambda result: None)
    for result in landed:
        report(result)
    for plan in plans:
        if plan.start.already_published:
            results[plan.spec.name] = ExtractResult(plan.spec.name, 0, 0, plan.start.state("watermark"), skipped=True,
                                                    seconds=0.0)
            report(results[plan.spec.name])

    def extract(plan: TablePlan) -> ExtractResult:
        began = time.perf_counter()
        with task_errors():
            result = _extract_dataframe(spark, settings, plan, confirmed_deletes)
        result = replace(result, seconds=round(time.perf_counter() - began, 3))
        report(result)
        return result

    # the other tables, ``spark.parallel_tables`` at a time (nothing is published before the gate)
    incremental = [plan for plan in plans if plan.spec.name not in results]
    for plan, result in zip(incremental, run_tables(spark, settings, incremental, extract)):
        results[plan.spec.name] = result
    return [results[spec.name] for spec in specs]


def extract_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                  interval: DataInterval, state: source.SourceState, confirm_deletes: bool = False) -> ExtractResult:
    """Extract one table (``extract_tables`` for one table; raises the same errors)."""
    return extract_tables(spark, settings, [spec], interval, state,
                          confirmed_deletes=[spec.name] if confirm_deletes else ())[0]
