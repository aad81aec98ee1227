"""Bronze extraction: source table → ``lakehouse.bronze.<table>`` on the batch's audit branch.

Per table, driven by the registry (see ``cursors`` for what each cursor kind reads):

* ``incremental`` tables read the rows their cursor selects; ``full`` tables read all rows.
* Rows equal to the latest bronze version of their key (same ``_row_hash``) are dropped,
  so re-reads (lookback overlap, full reloads) never inflate bronze.
* Hard deletes: ``full`` tables, and incremental tables with ``reconcile_deletes``,
  compare the source's primary keys with the live keys in bronze and record the
  missing ones as ``_op = 'delete'`` rows.
* Schema drift is checked before anything is written (``drift``).

Every row carries ``_batch_id``, ``_ingested_at``, ``_op`` and ``_row_hash`` (plus
``_source_xid`` for ``xmin`` cursors). The watermark is committed with the data on
the audit branch and published by the gate. A batch already published is skipped;
a batch never published replaces its own earlier attempt (the branch is reset).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.batch import DataInterval
from lakehouse_core.registry import LoadMode, TableSpec, identifier
from lakehouse_core.schema import check_evolution
from lakehouse_core.settings import LakehouseSettings
from lakehouse_bronze import cursors, source

META_COLUMNS = ("_source_xid", "_row_hash", "_batch_id", "_ingested_at", "_op")
PACKAGE = "lakehouse-bronze"


@dataclass(frozen=True)
class ExtractResult:
    table: str
    rows_written: int
    deletes: int
    watermark: dict | None
    new_columns: tuple[str, ...] = ()
    skipped: bool = False


def with_metadata(df: DataFrame, batch_id: str) -> DataFrame:
    """Add the bronze metadata columns; the row hash covers the source columns only."""
    source_columns = [c for c in df.columns if c not in META_COLUMNS]
    return (df.withColumn("_row_hash", F.sha2(F.to_json(F.struct(*source_columns)), 256))
              .withColumn("_batch_id", F.lit(batch_id))
              .withColumn("_ingested_at", F.current_timestamp())
              .withColumn("_op", F.lit("upsert")))


def latest_versions(bronze: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """The latest bronze version of every key (by batch, then ingestion time)."""
    order = Window.partitionBy(*key).orderBy(F.col("_batch_id").desc(), F.col("_ingested_at").desc())
    return bronze.withColumn("_rn", F.row_number().over(order)).where("_rn = 1").drop("_rn")


def changed_rows(current: DataFrame, spec: TableSpec, extracted: DataFrame) -> DataFrame:
    """Rows of ``extracted`` whose content differs from the latest bronze version of their key."""
    versions = current.select(*spec.primary_key, "_row_hash")
    return extracted.join(versions, [*spec.primary_key, "_row_hash"], "left_anti").select(*extracted.columns)


def deleted_rows(current: DataFrame, spec: TableSpec, source_keys: DataFrame, template: DataFrame,
                 batch_id: str) -> DataFrame:
    """Keys live in bronze but absent from the source, as ``_op = 'delete'`` rows shaped like ``template``."""
    live = current.where("_op <> 'delete'").select(*spec.primary_key)
    gone = live.join(source_keys.select(*spec.primary_key), list(spec.primary_key), "left_anti")
    filled = {
        "_batch_id": F.lit(batch_id), "_ingested_at": F.current_timestamp(), "_op": F.lit("delete"),
    }
    columns = [F.col(f.name) if f.name in spec.primary_key
               else filled.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name)
               for f in template.schema.fields]
    return gone.select(*columns)


def align_to_table(df: DataFrame, table_schema) -> DataFrame:
    """Order ``df`` like the bronze table with new columns last (where schema merge adds them);
    a column dropped at the source lands as NULL."""
    present = set(df.columns)
    columns = [F.col(f.name) if f.name in present else F.lit(None).cast(f.dataType).alias(f.name)
               for f in table_schema.fields]
    known = {f.name for f in table_schema.fields}
    return df.select(*columns, *[c for c in df.columns if c not in known])


def read_source(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, query: str) -> DataFrame:
    """Read ``query`` with the configured reader (``LAKEHOUSE_EXTRACT__READER``: jdbc | copy)."""
    if settings.extract.reader == "copy":
        from lakehouse_bronze.copy_reader import read_source_copy

        return read_source_copy(spark, settings, spec, query)
    return source.read_jdbc(spark, settings, spec, query)


def extract_table(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec,
                  interval: DataInterval, state: source.SourceState) -> ExtractResult:
    """Extract one table into its audit branch (see module docstring).

    Raises BatchOrderError when a newer batch is already published, SchemaDriftError
    on an incompatible source type change, WatermarkError when the watermark would
    move backwards, SourceSchemaError when the registry names a missing column.
    """
    ident = identifier("bronze", spec.name)
    batch_id = interval.batch_id
    branch = iceberg.audit_branch(batch_id)
    start = iceberg.start_batch(spark, ident, batch_id)
    if start.already_published:
        return ExtractResult(spec.name, 0, 0, None, skipped=True)
    exists, previous = start.exists, start.state("watermark")

    cursor_type = None
    if spec.cursor and not spec.uses_commit_cursor:
        cursor_type = source.column_type(settings, spec.name, spec.cursor)
    plan = cursors.plan_read(spec, cursor_type, previous, state, interval, settings)
    query = source.select(spec, plan.predicate, columns="src_t.*" + plan.extra_columns)
    extracted = with_metadata(read_source(spark, settings, spec, query), batch_id)

    new_columns: list[str] = []
    if not exists:
        # accept-any-schema lets new source columns land through mergeSchema; bronze is
        # append-only (the property breaks MERGE column resolution, so silver never sets it).
        iceberg.create_table(spark, ident, extracted, partition_by=["_batch_id"],
                             properties={"write.spark.accept-any-schema": "true"})
        new_rows = extracted
    else:
        table_schema = spark.table(ident).schema
        new_columns = check_evolution(f"source table {spec.name}", table_schema, extracted.schema)
        extracted = align_to_table(extracted, table_schema)
        current = latest_versions(spark.read.table(ident), spec.primary_key)
        new_rows = changed_rows(current, spec, extracted)
        if spec.load_mode is LoadMode.full or spec.reconcile_deletes:
            keys = extracted if spec.load_mode is LoadMode.full else read_source(
                spark, settings, spec, source.select(spec, None, ", ".join(f"src_t.{source.quote(k)}" for k in spec.primary_key)))
            new_rows = new_rows.unionByName(deleted_rows(current, spec, keys, extracted, batch_id))
    new_rows = new_rows.localCheckpoint()  # one source read, used for the write, the counts and the watermark

    watermark = plan.watermark
    if plan.watermark_is_max_of:
        seen = new_rows.where("_op = 'upsert'").agg(F.max(plan.watermark_is_max_of)).first()[0]
        if seen is not None and (watermark is None or int(seen) > int(watermark["value"])):
            watermark = {"kind": "serial", "value": int(seen)}

    iceberg.start_audit_branch(spark, ident, branch)
    new_rows.writeTo(f"{ident}.branch_{branch}").option("mergeSchema", "true").append()
    iceberg.commit_properties(spark, ident, branch, {
        "lakehouse.batch_id": batch_id,
        "lakehouse.watermark": iceberg.encode(watermark),
        "lakehouse.package_version": version(PACKAGE),
    })
    counts = new_rows.groupBy("_op").count().collect()
    by_op = {r["_op"]: r["count"] for r in counts}
    return ExtractResult(spec.name, by_op.get("upsert", 0), by_op.get("delete", 0), watermark, tuple(new_columns))
