"""Table maintenance (``lakehouse_core.maintenance``): fewer files and snapshots, the same data
and batch state, batches still recognised after their snapshots expired; and a table never
maintained for 30 days stays readable."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lakehouse_core import iceberg
from lakehouse_core.maintenance import ORPHANS_SWEPT_AT, maintain_table

pytestmark = pytest.mark.spark

IDENT = "lakehouse.silver.maintenance_case"
BATCHES = [f"2023010{d}T1700_2023010{d + 1}T1700" for d in range(1, 7)]


def _files(spark) -> list[Path]:
    root = Path(urlparse(iceberg.java_table(spark, IDENT).location()).path)
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture
def table_with_history(spark):
    """Six published batches of a day-partitioned table (each an append and a state commit), and
    an orphan data file four days old (a crashed write's)."""
    spark.sql(f"DROP TABLE IF EXISTS {IDENT} PURGE")
    schema = spark.sql("SELECT 1L AS id, DATE'2023-01-01' AS day, 'x' AS note").schema
    iceberg.create_table(spark, IDENT, schema, partition_by=["day"])
    for n, batch in enumerate(BATCHES):
        rows = spark.sql(f"SELECT id, DATE'2023-01-01' + CAST(id % 2 AS INT) AS day, 'batch {n}' AS note "
                         f"FROM range({n * 10}, {n * 10 + 10})")
        iceberg.stage(spark, IDENT, batch, lambda branch: rows.writeTo(branch).append(), "lakehouse-core",
                      {"lakehouse.watermark": str(n)})
        iceberg.publish(spark, IDENT, iceberg.audit_branch(batch))
    data = Path(urlparse(iceberg.java_table(spark, IDENT).location()).path) / "data"
    orphan = data / "orphan-from-a-crashed-write.parquet"
    orphan.write_bytes(b"not referenced by any snapshot")
    four_days_ago = time.time() - 4 * 86400
    os.utime(orphan, (four_days_ago, four_days_ago))
    yield orphan
    spark.sql(f"DROP TABLE IF EXISTS {IDENT} PURGE")


def test_maintenance_drops_files_and_snapshots_and_keeps_data_and_state(spark, settings, table_with_history):
    orphan = table_with_history
    rows = sorted(spark.table(IDENT).collect())
    state = iceberg.summary(spark, IDENT)
    files = _files(spark)
    snapshots = spark.sql(f"SELECT count(*) AS n FROM {IDENT}.snapshots").first().n
    assert snapshots >= 2 * len(BATCHES) and orphan in files

    strict = settings.model_copy(update={"maintenance": settings.maintenance.model_copy(update={
        "snapshot_retention_days": 0, "retain_last": 1, "orphan_retention_hours": 24, "min_input_files": 2,
        "orphan_sweep_days": 0})})
    result = maintain_table(spark, strict, IDENT)

    assert result.snapshots_before == snapshots and result.snapshots_after < snapshots // 2
    assert result.data_files_after == 2 < result.data_files_before  # one per partition after compaction
    assert result.orphan_files == 1 and not orphan.exists()
    assert len(_files(spark)) < len(files) and result.expired_files > 0
    assert sorted(spark.table(IDENT).collect()) == rows and len(rows) == 60
    assert iceberg.summary(spark, IDENT) == state and state["lakehouse.watermark"] == "5"
    # the newest batch is still known as published (a rerun is a no-op), an older one as older
    assert iceberg.batch_status(spark, IDENT, BATCHES[-1]) == iceberg.BatchStatus(published=True)
    assert iceberg.batch_status(spark, IDENT, BATCHES[0]) == iceberg.BatchStatus(published=False, newer=BATCHES[-1])
    # history that was expired is an error naming the table and the setting, not a shorter history
    with pytest.raises(iceberg.HistoryExpiredError, match="maintenance_case.*SNAPSHOT_RETENTION_DAYS"):
        iceberg.published_snapshots(spark, IDENT, iceberg.snapshot_id(spark, IDENT), after=BATCHES[0])


def test_within_retention_nothing_is_deleted(spark, settings, table_with_history):
    """A file younger than the orphan retention may belong to a write still running, a snapshot
    younger than the snapshot retention is kept; the orphan sweep, which lists the whole table,
    runs once per ``orphan_sweep_days`` (a new table counts from its creation)."""
    orphan = table_with_history
    now = time.time()
    os.utime(orphan, (now, now))
    sweeping = settings.model_copy(update={"maintenance": settings.maintenance.model_copy(update={
        "orphan_sweep_days": 0})})
    result = maintain_table(spark, sweeping, IDENT)
    assert result.orphan_files == 0 and orphan.exists()
    assert result.expired_files == 0 and result.snapshots_after >= result.snapshots_before
    swept = iceberg.java_table(spark, IDENT).properties().get(ORPHANS_SWEPT_AT)
    assert swept is not None

    four_days_ago = now - 4 * 86400
    os.utime(orphan, (four_days_ago, four_days_ago))
    assert maintain_table(spark, settings, IDENT).orphan_files == 0  # swept less than 7 days ago
    assert iceberg.java_table(spark, IDENT).properties().get(ORPHANS_SWEPT_AT) == swept
    assert orphan.exists()


def test_thirty_days_without_maintenance_stay_readable(spark, settings):
    """A table published daily for 30 simulated days and never maintained: its metadata files stay
    bounded (old versions deleted on commit, not kept until maintenance), every day's batch is
    still in its history and readable as of its own snapshot, by Spark and by pyiceberg."""
    from lakehouse_core.catalog import load_catalog

    ident = "lakehouse.silver.thirty_days"
    spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
    iceberg.create_table(spark, ident, spark.sql("SELECT 1L AS id, DATE'2023-01-01' AS day").schema,
                         partition_by=["day"])
    days = [date(2023, 1, 1) + timedelta(days=n) for n in range(30)]
    batches = [f"{d:%Y%m%d}T1700_{d + timedelta(days=1):%Y%m%d}T1700" for d in days]
    try:
        for n, (day, batch) in enumerate(zip(days, batches)):
            rows = spark.sql(f"SELECT id, DATE'{day}' AS day FROM range({n * 20}, {n * 20 + 20})")
            iceberg.stage(spark, ident, batch, lambda branch: rows.writeTo(branch).append(), "lakehouse-core",
                          {"lakehouse.watermark": str(n)})
            iceberg.publish(spark, ident, iceberg.audit_branch(batch))

        metadata = Path(urlparse(iceberg.java_table(spark, ident).location()).path) / "metadata"
        versions = list(metadata.glob("*.metadata.json"))
        assert len(versions) <= int(iceberg.METADATA_RETENTION["write.metadata.previous-versions-max"]) + 1
        assert spark.table(ident).count() == 600
        history = iceberg.published_snapshots(spark, ident, iceberg.snapshot_id(spark, ident))
        assert [b for b, _ in history] == batches
        for n, (_, snapshot) in enumerate(history):  # each day as it was published
            as_of = spark.read.option("snapshot-id", snapshot).table(ident)
            assert as_of.count() == 20 * (n + 1)
        assert iceberg.batch_status(spark, ident, batches[-1]) == iceberg.BatchStatus(published=True)
        table = load_catalog(settings).load_table(ident.split(".", 1)[1])
        assert table.scan().to_arrow().num_rows == 600
        assert table.scan(snapshot_id=history[0][1]).to_arrow().num_rows == 20
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")


def test_tables_that_need_nothing_are_left_without_starting_spark(spark, settings):
    """``maintain`` decides each table's work from its metadata through pyiceberg: when no table
    needs anything (manifests, small files, snapshots and the orphan sweep all under their
    settings) it never asks for a Spark session and reports every table as it is; with the
    manifests due, it asks for one and rewrites them."""
    from lakehouse_core.maintenance import maintain

    namespace = "maintenance_probe"  # a layer of its own: only its tables are maintained
    ident = f"lakehouse.{namespace}.appended"
    spark.sql(f"CREATE NAMESPACE IF NOT EXISTS lakehouse.{namespace}")
    spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
    iceberg.create_table(spark, ident, spark.sql("SELECT 1L AS id").schema)
    for n in range(3):
        spark.sql(f"SELECT {n}L AS id").writeTo(ident).append()

    def options(**update):
        return settings.model_copy(update={"maintenance": settings.maintenance.model_copy(update={
            "min_input_files": 100, "orphan_sweep_days": 1000, **update})})

    def manifests() -> int:
        return spark.sql(f"SELECT count(*) FROM {ident}.manifests").first()[0]

    def no_spark():
        raise AssertionError("maintain asked for a Spark session with nothing to do")

    try:
        assert manifests() == 3
        (quiet,) = maintain(options(min_manifests=4), no_spark, layers=(namespace,))
        assert (quiet.table, quiet.snapshots_after, quiet.data_files_after) == \
            (f"{namespace}.appended", quiet.snapshots_before, 3)
        asked = []
        (done,) = maintain(options(min_manifests=3), lambda: asked.append(spark) or spark, layers=(namespace,))
        assert asked == [spark] and manifests() == 1 and done.snapshots_after == quiet.snapshots_after + 1
        assert sorted(r.id for r in spark.table(ident).collect()) == [0, 1, 2]
    finally:  # the namespace goes too: tests sharing this catalog list its namespaces
        spark.sql(f"DROP TABLE IF EXISTS {ident} PURGE")
        spark.sql(f"DROP NAMESPACE IF EXISTS lakehouse.{namespace}")
