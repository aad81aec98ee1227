"""Quarantine: rows that break a hard rule go to ``quarantine.silver_<table>``, the rest proceeds.

Rules (first failing rule wins, all are reported by name):

* ``null_key``            a primary-key column is NULL;
* ``unknown_<column>``    an enumerated column holds a value outside its vocabulary;
* ``orphan_<column>``     a declared foreign key points at no row of the parent
                          (the parent as staged by this run, i.e. its audit branch, else ``main``).

Each quarantined row keeps the rule, the batch id and the bronze values as JSON, with the
table's PII columns masked exactly as silver masks them. Quarantine rows are staged on the
batch's audit branch and published (or not) by the silver gate together with silver; a
rerun of an unpublished batch starts the branch again, so counts never double.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse_core import iceberg
from lakehouse_core.registry import TableSpec, identifier
from lakehouse_core.settings import LakehouseSettings
from lakehouse_silver import pii
from lakehouse_silver.vocabulary import enum_columns

RAW_COLUMN = "_raw"


def raw_values(bronze_rows: DataFrame, spec: TableSpec, settings: LakehouseSettings) -> Column:
    """The source values of a bronze row as JSON (kept for quarantined rows), PII columns masked."""
    key = pii.pii_key(settings) if spec.pii else b""
    return F.to_json(F.struct(*[pii.mask(F.col(c), spec.pii[c], key).alias(c) if c in spec.pii else F.col(c)
                                for c in bronze_rows.columns if not c.startswith("_")]))


def _raw_field(column: str) -> Column:
    return F.get_json_object(F.col(RAW_COLUMN), f"$.{column}")


def _parent_keys(spark: SparkSession, parent: str, branch: str) -> DataFrame | None:
    ident = identifier("silver", parent)
    if not iceberg.table_exists(spark, ident):
        return None
    ref = branch if iceberg.branch_exists(spark, ident, branch) else "main"
    return iceberg.read_ref(spark, ident, ref)


def split(spark: SparkSession, candidates: DataFrame, spec: TableSpec, branch: str) -> tuple[DataFrame, DataFrame]:
    """(rows that pass, rows that fail with a ``_rule`` column). Delete rows are never quarantined."""
    rules: list[tuple[str, Column]] = [
        ("null_key", F.greatest(*[F.col(k).isNull() for k in spec.primary_key]) if len(spec.primary_key) > 1
         else F.col(spec.primary_key[0]).isNull()),
    ]
    for column in enum_columns(spec.name):
        if column in candidates.columns:
            rules.append((f"unknown_{column}", F.col(column).isNull() & _raw_field(column).isNotNull()))
    df = candidates
    for column, target in spec.foreign_keys.items():
        parent, parent_column = target.split(".")
        parents = _parent_keys(spark, parent, branch)
        if parents is None:
            continue
        parent_key = f"_parent_{column}"
        keys = parents.select(F.col(parent_column).alias(parent_key)).distinct()
        df = df.join(keys, F.col(column) == F.col(parent_key), "left")
        rules.append((f"orphan_{column}", F.col(column).isNotNull() & F.col(parent_key).isNull()))
    rule = F.lit(None).cast("string")
    for name, failed in reversed(rules):
        rule = F.when(failed, F.lit(name)).otherwise(rule)
    df = df.withColumn("_rule", F.when(F.col("_op") == "delete", None).otherwise(rule))
    df = df.drop(*[c for c in df.columns if c.startswith("_parent_")])
    return df.where("_rule IS NULL").drop("_rule"), df.where("_rule IS NOT NULL")


def stage(spark: SparkSession, rejected: DataFrame, spec: TableSpec, batch_id: str, package: str) -> int:
    """Stage this batch's rows of ``quarantine.silver_<table>`` on the batch's audit branch (published
    by the silver gate with silver); return how many were quarantined. With none, the table is not
    touched (and a branch left by an earlier attempt of the batch is dropped)."""
    rows = rejected.select(
        F.col("_rule").alias("rule"), F.lit(batch_id).alias("batch_id"),
        F.to_json(F.struct(*[F.col(k) for k in spec.primary_key])).alias("primary_key"),
        F.col(RAW_COLUMN).alias("raw_values"), F.current_timestamp().alias("quarantined_at"),
    ).localCheckpoint()
    count = rows.count()
    ident = identifier("quarantine", f"silver_{spec.name}")
    exists = iceberg.table_exists(spark, ident)
    if count == 0:
        if exists:
            iceberg.drop_branch(spark, ident, iceberg.audit_branch(batch_id))
        return 0
    if not exists:
        iceberg.create_table(spark, ident, rows.schema, partition_by=["batch_id"])
    iceberg.stage(spark, ident, batch_id, lambda target: rows.writeTo(target).append(), package,
                  {"lakehouse.quarantined_rows": str(count)})
    return count
