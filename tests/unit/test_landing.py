"""Where first loads land (lakehouse_bronze.landing): folders and file systems, without Spark."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyarrow import fs as pafs

from lakehouse_bronze import landing
from lakehouse_core import iceberg


def test_landed_files_go_to_the_batch_partition_of_the_table_folder():
    location = iceberg.table_location("file:///tmp/home/warehouse/", "lakehouse.bronze.orders")
    assert location == "file:///tmp/home/warehouse/bronze/orders"
    assert landing.data_folder(location, "20230101T1700_20230102T1700") == \
        "file:///tmp/home/warehouse/bronze/orders/data/_batch_id=20230101T1700_20230102T1700"


def test_local_and_s3_locations_map_to_pyarrow_file_systems():
    fs, path = landing.filesystem("file:///tmp/w/bronze/orders/data", {})
    assert isinstance(fs, pafs.LocalFileSystem) and path == "/tmp/w/bronze/orders/data"

    fs, path = landing.filesystem("s3://lake/warehouse/bronze/orders/data", {
        "s3.endpoint": "http://127.0.0.1:9", "s3.region": "us-east-1", "s3.access-key-id": "k",
        "s3.secret-access-key": "s", "s3.force-virtual-addressing": "false"})
    assert isinstance(fs, pafs.S3FileSystem) and path == "lake/warehouse/bronze/orders/data"
    assert fs.region == "us-east-1"

    with pytest.raises(ValueError, match="scheme 'hdfs' is not supported"):
        landing.filesystem("hdfs://nn/warehouse", {})


def test_landed_files_carry_the_source_columns_then_the_bronze_metadata():
    from lakehouse_bronze.copy_reader import CopyPlan

    source = pa.schema([("id", pa.int64()), ("status", pa.string())])
    plan = CopyPlan(host="h", port=1, user="u", dbname="d", password=None, query="q", key=None, ranges=((0, 0),),
                    parse_schema=source, arrow_schema=source, spark_schema=None, table="t")
    job = landing.LandingJob("lakehouse.bronze.t", plan, "file:///x/bronze/t", "b", None)
    assert job.folder == "file:///x/bronze/t/data/_batch_id=b"
    assert job.file_schema().names == ["id", "status", "_batch_id", "_ingested_at", "_op"]
    assert job.file_schema().field("_ingested_at").type == pa.timestamp("us", tz="UTC")


def test_ranges_are_packed_into_few_balanced_tasks():
    """Every range lands exactly once; at most two tasks per slot; the largest go first."""
    from types import SimpleNamespace

    sizes = {"big": (1_000_000, 4), "mid": (300_000, 2), **{f"small{i}": (100 * i, 1) for i in range(20)}}
    jobs = [SimpleNamespace(plan=SimpleNamespace(ranges=[None] * parts, range_rows=lambda _, r=rows, p=parts: r / p))
            for rows, parts in sizes.values()]
    tasks = landing.pack_tasks(jobs, slots=2)
    units = [u for task in tasks for u in task]
    assert sorted(units) == sorted((j, r) for j, (_, parts) in enumerate(sizes.values()) for r in range(parts))
    assert len(tasks) == 4
    loads = [sum(jobs[j].plan.range_rows(r) for j, r in task) for task in tasks]
    assert max(loads) - min(loads) <= 250_000  # within one range of each other
    assert landing.pack_tasks(jobs[2:4], slots=8) == [[(1, 0)], [(0, 0)]]  # no more tasks than ranges; largest first


def test_a_read_lands_as_files_closed_once_they_reach_the_row_limit(tmp_path, monkeypatch):
    """Files are cut at batch boundaries once they hold LANDING_ROWS_PER_FILE rows; every row lands
    once, in order, with the bronze metadata; each file reports its own rows and cursor maximum."""
    import pyarrow.parquet as pq
    from types import SimpleNamespace

    monkeypatch.setattr(landing, "LANDING_ROWS_PER_FILE", 5)
    source = pa.schema([("id", pa.int64())])
    sizes = [3, 0, 3, 4, 2]  # 3+3 closes the first file (6 rows), 4+2 the second (6 rows); an empty batch writes nothing
    batches, first = [], 0
    for size in sizes:
        batches.append(pa.record_batch([pa.array(range(first, first + size), pa.int64())], schema=source))
        first += size
    plan = SimpleNamespace(arrow_schema=source, read_range=lambda index, conn: iter(batches))
    job = landing.LandingJob("lakehouse.bronze.t", plan, tmp_path.as_uri(), "b1", "id")
    ingested_at = pa.scalar(0, pa.timestamp("us", tz="UTC"))

    files = list(landing._land_range(job, 0, ingested_at, {}, conn=None))

    assert [(rows, top) for _, rows, top in files] == [(6, 5), (6, 11)]
    tables = [pq.read_table(path.removeprefix("file://")) for path, _, _ in files]
    assert [t.column("id").to_pylist() for t in tables] == [list(range(6)), list(range(6, 12))]
    assert all(t.schema.names == ["id", "_batch_id", "_ingested_at", "_op"] for t in tables)
    assert all(path.startswith(f"{job.folder}/") for path, _, _ in files)

    empty = SimpleNamespace(arrow_schema=source, read_range=lambda index, conn: iter([batches[1]]))
    assert list(landing._land_range(landing.LandingJob("lakehouse.bronze.e", empty, tmp_path.as_uri(), "b1", None),
                                    0, ingested_at, {}, conn=None)) == []
    assert len(list(tmp_path.rglob("*.parquet"))) == 2  # an empty read leaves no file


def test_only_a_table_larger_than_a_slots_share_of_the_rows_is_read_in_ranges():
    from types import SimpleNamespace

    def job(rows):
        return SimpleNamespace(plan=SimpleNamespace(rows=rows))

    jobs = [job(1_000_000), job(730_000), job(1_000), job(None)]  # None: no integer key, rows not planned
    assert landing.rows_per_range(jobs, slots=2) == 865_500  # the largest table alone is split
    assert landing.rows_per_range(jobs, slots=64) == landing.LANDING_ROWS_PER_FILE  # never below one file's rows
    assert landing.rows_per_range([], slots=2) == landing.LANDING_ROWS_PER_FILE
