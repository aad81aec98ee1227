"""Compaction of a merge-on-read table (``iceberg.compact``, run by silver before each batch).

A day-partitioned merge-on-read table receives many small MERGEs (updates and deletes),
as silver's ``orders`` does day after day: data and delete files pile up per partition.
Compaction leaves one data file per partition and no delete file, the same rows, and the
published state still readable at the ``last_publish`` tag.
"""

from __future__ import annotations

import pytest

from lakehouse_core import iceberg

pytestmark = pytest.mark.spark

IDENT = "lakehouse.silver.compaction_case"


def _layout(spark) -> tuple[int, int]:
    """(max data files in a partition, delete files)."""
    per_partition = spark.sql(f"SELECT count(*) AS n FROM {IDENT}.data_files GROUP BY partition").collect()
    deletes = spark.sql(f"SELECT count(*) AS n FROM {IDENT}.delete_files").first().n
    return max(r.n for r in per_partition), deletes


def test_compaction_bounds_files_per_partition_and_keeps_rows_and_state(spark):
    spark.sql(f"DROP TABLE IF EXISTS {IDENT} PURGE")
    seed = spark.sql("SELECT id, CAST(id % 3 AS INT) AS n, "
                     "timestamp_ntz'2023-01-01 00:00:00' + make_interval(0, 0, 0, CAST(id % 2 AS INT)) AS at "
                     "FROM range(60)")
    iceberg.create_table(spark, IDENT, seed.schema, partition_by=["days(at)"],
                         properties={"write.merge.mode": "merge-on-read", "write.delete.mode": "merge-on-read",
                                     "write.update.mode": "merge-on-read"})
    seed.writeTo(IDENT).append()
    for step in range(8):  # small MERGEs: one update and one delete in both partitions each time
        spark.sql(f"""
            MERGE INTO {IDENT} t
            USING (SELECT id, {step} + 10 AS n, at FROM {IDENT} WHERE id IN ({step}, {step + 30})) s
            ON t.id = s.id WHEN MATCHED THEN UPDATE SET n = s.n""")
        spark.sql(f"DELETE FROM {IDENT} WHERE id IN ({59 - step}, {29 - step})")
    branch = "audit_compaction"
    iceberg.start_audit_branch(spark, IDENT, branch)
    iceberg.commit_properties(spark, IDENT, branch, {"lakehouse.batch_id": "b1", "lakehouse.watermark": "7"})
    iceberg.publish(spark, IDENT, branch)

    before_rows = sorted(spark.table(IDENT).collect())
    most_files, deletes = _layout(spark)
    assert most_files >= 4 and deletes >= 1  # the pile-up compaction exists for

    counts = iceberg.compact(spark, IDENT, min_input_files=2, delete_file_threshold=1)
    assert counts["rewritten_data_files_count"] >= most_files and counts["added_data_files_count"] == 2

    assert _layout(spark) == (1, 0)
    assert sorted(spark.table(IDENT).collect()) == before_rows and len(before_rows) == 44
    assert iceberg.summary(spark, IDENT)["lakehouse.watermark"] == "7"  # the tag kept the state
    # the compaction snapshot carries no batch: the published batch is still found behind it
    assert iceberg.batch_status(spark, IDENT, "b1") == iceberg.BatchStatus(published=True)
    assert iceberg.batch_status(spark, IDENT, "b0") == iceberg.BatchStatus(published=False, newer="b1")
    spark.sql(f"DROP TABLE {IDENT} PURGE")
