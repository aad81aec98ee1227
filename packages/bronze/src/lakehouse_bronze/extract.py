"""Bronze extraction: source table → ``lakehouse.bronze.<table>`` on the batch's audit branch.

Per table (from the registry):

* ``incremental``: rows whose cursor lies in ``[previous watermark − lookback, upper)``
  where ``upper = min(end of the data interval, source now − safety lag)``, all in the
  source's own local time and clock. Re-read rows whose content did not change are
  dropped by comparing ``_row_hash`` with the latest bronze version of their key, so
  the lookback overlap does not inflate bronze.
* ``full``: the whole table; only new or changed rows are appended, and keys that
  disappeared from the source are recorded as ``_op = 'delete'`` rows.

Every row carries ``_batch_id``, ``_ingested_at``, ``_op`` and ``_row_hash``. The new
watermark is committed on the audit branch with the data and published by the gate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib.metadata import version

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval, check_not_older
from lakehouse_core.registry import LoadMode, TableSpec, identifier
from lakehouse_core.settings import LakehouseSettings

META_COLUMNS = ("_batch_id", "_ingested_at", "_op", "_row_hash")
PACKAGE = "lakehouse-bronze"


@dataclass(frozen=True)
class CursorBounds:
    """Cursor window of one extraction: ``lower <= cursor < upper`` (None = unbounded)."""

    lower: datetime | int | None
    upper: datetime | int | None


@dataclass(frozen=True)
class ExtractResult:
    table: str
    rows_written: int
    watermark: str | None
    skipped: bool = False


def source_now(settings: LakehouseSettings) -> datetime:
    """The source's own notion of now (simulator clock when present, else the database clock)."""
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        clock = settings.extract.source_clock
        if clock in ("auto", "simulator"):
            cur.execute("SELECT to_regclass('lakehouse_sim.clock') IS NOT NULL")
            if cur.fetchone()[0]:
                cur.execute("SELECT sim_now FROM lakehouse_sim.clock")
                return cur.fetchone()[0]
            if clock == "simulator":
                raise RuntimeError("source_clock=simulator but lakehouse_sim.clock does not exist in the source")
        cur.execute("SELECT localtimestamp")
        return cur.fetchone()[0]


def plan_bounds(spec: TableSpec, previous: str | None, now: datetime, interval: DataInterval,
                settings: LakehouseSettings, cursor_is_serial: bool) -> CursorBounds:
    """The cursor window for this batch (see module docstring)."""
    if spec.load_mode is LoadMode.full:
        return CursorBounds(None, None)
    if cursor_is_serial:
        return CursorBounds(None if previous is None else int(previous) + 1, None)
    upper = min(interval.end_in_zone(settings.source_zone), now - timedelta(seconds=settings.extract.safety_lag_seconds))
    lower = None
    if previous is not None:
        lower = datetime.fromisoformat(previous) - timedelta(seconds=settings.extract.lookback_seconds)
    return CursorBounds(lower, upper)


def source_column_type(settings: LakehouseSettings, table: str, column: str) -> str:
    """The PostgreSQL data type of ``table.column``; raises LookupError naming both when absent."""
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s AND column_name = %s", (table, column))
        row = cur.fetchone()
    if row is None:
        raise LookupError(f"source table {table}: column {column} (the registry's cursor) does not exist")
    return row[0]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: datetime | int) -> str:
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return str(int(value))


def source_query(spec: TableSpec, bounds: CursorBounds) -> str:
    """SELECT for the batch; identifiers come from the validated registry, bounds are typed values."""
    conditions = []
    if spec.cursor and bounds.lower is not None:
        conditions.append(f"{_quote(spec.cursor)} >= {_literal(bounds.lower)}")
    if spec.cursor and bounds.upper is not None:
        conditions.append(f"{_quote(spec.cursor)} < {_literal(bounds.upper)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT * FROM public.{_quote(spec.name)}{where}"


def read_source(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, query: str) -> DataFrame:
    """Read ``query`` over JDBC, split into key ranges on a single numeric primary key."""
    db = postgres.resolve(settings.source, settings)
    reader = (spark.read.format("jdbc").option("url", postgres.jdbc_url(db)).option("user", db.user)
              .option("driver", "org.postgresql.Driver").option("fetchsize", settings.spark.jdbc_fetch_size)
              .option("preferTimestampNTZ", "true"))
    if db.password:
        reader = reader.option("password", db.password.get_secret_value())
    key = spec.primary_key[0]
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT min({_quote(key)}), max({_quote(key)}), count(*) FROM ({query}) q")
        low, high, count = cur.fetchone()
    reader = reader.option("dbtable", f"({query}) AS src")
    if len(spec.primary_key) == 1 and isinstance(low, int) and count > 50_000:
        reader = (reader.option("partitionColumn", key).option("lowerBound", low).option("upperBound", high + 1)
                  .option("numPartitions", settings.spark.jdbc_partitions))
    return reader.load()


def with_metadata(df: DataFrame, batch_id: str) -> DataFrame:
    source_columns = [c for c in df.columns if c not in META_COLUMNS]
    return (df.withColumn("_row_hash", F.sha2(F.to_json(F.struct(*source_columns)), 256))
              .withColumn("_batch_id", F.lit(batch_id))
              .withColumn("_ingested_at", F.current_timestamp())
              .withColumn("_op", F.lit("upsert")))


def latest_versions(bronze: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """The latest bronze version of every key (by batch, then ingestion time)."""
    order = Window.partitionBy(*key).orderBy(F.col("_batch_id").desc(), F.col("_ingested_at").desc())
    return bronze.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def changed_rows(spark: SparkSession, ident: str, spec: TableSpec, extracted: DataFrame) -> DataFrame:
    """Rows of ``extracted`` whose content differs from the latest bronze version of their key."""
    current = latest_versions(spark.read.table(ident), spec.primary_key).select(*spec.primary_key, "_row_hash")
    return extracted.join(current, [*spec.primary_key, "_row_hash"], "left_anti").select(*extracted.columns)


def deleted_rows(spark: SparkSession, ident: str, spec: TableSpec, extracted: DataFrame, batch_id: str) -> DataFrame:
    """For a full extract: keys live in bronze but absent from the source, as ``_op='delete'`` rows."""
    live = latest_versions(spark.read.table(ident), spec.primary_key).where("_op <> 'delete'")
    gone = live.join(extracted.select(*spec.primary_key), list(spec.primary_key), "left_anti")
    nulls = [F.lit(None).cast(f.dataType).alias(f.name) for f in extracted.schema.fields
             if f.name not in spec.primary_key and f.name not in META_COLUMNS]
    return gone.select(*spec.primary_key, *nulls, F.lit(None).cast("string").alias("_row_hash"),
                       F.lit(batch_id).alias("_batch_id"), F.current_timestamp().alias("_ingested_at"),
                       F.lit("delete").alias("_op")).select(*extracted.columns)


def next_watermark(spec: TableSpec, bounds: CursorBounds, extracted: DataFrame, previous: str | None) -> str | None:
    """Serial cursors: the highest id seen; timestamp cursors: the window's upper bound."""
    if spec.load_mode is LoadMode.full:
        return None
    if bounds.upper is not None:
        return bounds.upper.isoformat() if isinstance(bounds.upper, datetime) else str(bounds.upper)
    seen = extracted.agg(F.max(spec.cursor)).first()[0]
    return previous if seen is None else str(seen)


def extract_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                  interval: DataInterval, now: datetime) -> ExtractResult:
    """Extract one table into its audit branch (see module docstring).

    Raises BatchOrderError when a newer batch is already published.
    """
    ident = identifier("bronze", spec.name)
    batch_id = interval.batch_id
    branch = iceberg.audit_branch(batch_id)
    exists = iceberg.table_exists(spark, ident)
    previous = None
    if exists:
        published = iceberg.published_batches(spark, ident)
        if batch_id in published:
            return ExtractResult(spec.name, 0, None, skipped=True)
        check_not_older(batch_id, published, f"bronze.{spec.name}")
        previous = json.loads(iceberg.summary(spark, ident).get("lakehouse.watermark", "null"))

    cursor_is_serial = spec.cursor is not None and source_column_type(settings, spec.name, spec.cursor) in (
        "integer", "bigint", "smallint")
    bounds = plan_bounds(spec, previous, now, interval, settings, cursor_is_serial)
    extracted = with_metadata(read_source(spark, settings, spec, source_query(spec, bounds)), batch_id)

    if not exists:
        # accept-any-schema lets a new source column land through mergeSchema; bronze is
        # append-only (the property breaks MERGE column resolution, so silver never sets it).
        iceberg.create_table(spark, ident, extracted, partition_by=["_batch_id"],
                             properties={"write.spark.accept-any-schema": "true"})
        new_rows = extracted
    else:
        new_rows = changed_rows(spark, ident, spec, extracted)
        if spec.load_mode is LoadMode.full:
            new_rows = new_rows.unionByName(deleted_rows(spark, ident, spec, extracted, batch_id))
    new_rows = new_rows.localCheckpoint()  # one source read, used for the write and the count
    watermark = next_watermark(spec, bounds, new_rows, previous)

    iceberg.start_audit_branch(spark, ident, branch)
    new_rows.writeTo(f"{ident}.branch_{branch}").option("mergeSchema", "true").append()
    iceberg.commit_properties(spark, ident, branch, {
        "lakehouse.batch_id": batch_id,
        "lakehouse.watermark": iceberg.encode(watermark),
        "lakehouse.package_version": version(PACKAGE),
    })
    return ExtractResult(spec.name, new_rows.count(), watermark)
