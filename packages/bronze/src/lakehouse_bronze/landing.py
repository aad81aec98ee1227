"""First loads land as files: COPY → Arrow → Parquet in Spark tasks, added to the audit branch.

A table's first bronze batch has nothing to compare with (no earlier version of any
key, no live key to reconcile), so its rows need no Spark plan at all. For every table
of the run that loads for the first time, with the COPY reader:

1. the driver plans the read (``copy_reader.plan_copy``: result columns, planned rows) and
   the table's folder (``<warehouse>/bronze/<table>``); a table larger than a task slot's share
   of all the rows (``rows_per_range``) is planned again in key ranges of at most that share;
2. ONE Spark job lands every table or range, packed into a few tasks of balanced size
   (``pack_tasks``), each task with one source connection for all its reads: per read, a task
   streams it with COPY into Arrow batches (the COPY reader's task code), appends ``_batch_id``,
   ``_ingested_at`` and ``_op``, and writes them as Parquet files of about
   LANDING_ROWS_PER_FILE rows in the table's ``_batch_id=<batch>`` data folder (local disk or
   S3, with the catalog's FileIO properties), returning each file's path, row count and the
   serial cursor's maximum;
3. per table, ONE catalog commit creates the bronze table (schema = the Spark schema the
   COPY reader gives, plus the bronze metadata columns; at that folder) with its audit
   branch holding the files and the ``lakehouse.*`` state properties
   (``iceberg.create_table(..., staged=...)``: column metrics from the Parquet footers,
   read through the table's name mapping since the files carry no Iceberg field ids).
   Publishing is the gate's, as for any bronze batch.

Rows are parsed once (COPY text → Arrow in C++) and encoded once (Arrow → Parquet); the JVM
never converts a row, and the tasks still scale out on a cluster. A failed task fails
the job before any table exists, so a rerun is a first load again; files already
written are unreferenced (Iceberg's ``remove_orphan_files`` removes them).
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import uuid
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlparse

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pyspark.sql import SparkSession
from pyspark.sql import types as T

from lakehouse_core.catalog import catalog_properties
from lakehouse_core.settings import LakehouseSettings
from lakehouse_core.task_secret import TaskSecret
from lakehouse_bronze.copy_reader import CopyPlan

#: A landed file is closed once it holds this many rows (at the end of the batch that reaches it).
LANDING_ROWS_PER_FILE = 250_000
#: What a task returns per file, as Spark DDL and as Arrow.
_RESULT_DDL = "job int, path string, rows long, max_value long"
_RESULT_ARROW = pa.schema([("job", pa.int32()), ("path", pa.string()), ("rows", pa.int64()), ("max_value", pa.int64())])


def _max(a: int | None, b: int | None) -> int | None:
    """The larger of two values of which either may be None."""
    return a if b is None else b if a is None else max(a, b)


#: The bronze metadata columns (``extract.with_metadata`` adds the same in a Spark plan).
METADATA = T.StructType([T.StructField("_batch_id", T.StringType()), T.StructField("_ingested_at", T.TimestampType()),
                         T.StructField("_op", T.StringType())])
_METADATA_ARROW = [pa.field("_batch_id", pa.string()), pa.field("_ingested_at", pa.timestamp("us", tz="UTC")),
                   pa.field("_op", pa.string())]


@dataclass(frozen=True)
class LandingJob:
    """One table's first load: its read plan and where its files go. Picklable (shipped to tasks)."""

    ident: str
    plan: CopyPlan
    location: str  # the table's folder (``iceberg.table_location``)
    batch_id: str
    max_of: str | None  # serial cursor column whose maximum the tasks report

    @property
    def folder(self) -> str:
        """The data folder of the batch's partition."""
        return data_folder(self.location, self.batch_id)

    def file_schema(self) -> pa.Schema:
        """The landed files' schema: the source columns, then the bronze metadata columns."""
        return pa.schema(list(self.plan.arrow_schema) + _METADATA_ARROW)

    def table_schema(self) -> T.StructType:
        """The bronze table's Spark schema (as ``file_schema``)."""
        return T.StructType(self.plan.spark_schema.fields + METADATA.fields)


@dataclass(frozen=True)
class Landed:
    """What landed for one table: its files, rows, and the serial cursor's maximum (None if none)."""

    files: tuple[str, ...]
    rows: int
    max_value: int | None


def data_folder(table_location: str, batch_id: str) -> str:
    """The folder of ``batch_id``'s partition in a table at ``table_location`` (identity-partitioned
    by ``_batch_id``, as Spark would name it)."""
    return f"{table_location.rstrip('/')}/data/_batch_id={batch_id}"


def filesystem(location: str, properties: dict[str, str]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow file system and path of a warehouse ``location`` (``file:`` or ``s3://``), configured
    from the catalog's ``s3.*`` FileIO properties (``lakehouse_core.catalog.catalog_properties``).

    pyarrow directly, not pyiceberg's FileIO: importing that costs each Python worker ~1.7 s.
    Raises ValueError for another scheme.
    """
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return pafs.LocalFileSystem(), parsed.path
    if parsed.scheme in ("s3", "s3a"):
        return pafs.S3FileSystem(
            access_key=properties.get("s3.access-key-id"), secret_key=properties.get("s3.secret-access-key"),
            region=properties.get("s3.region"), endpoint_override=properties.get("s3.endpoint"),
            force_virtual_addressing=properties.get("s3.force-virtual-addressing") == "true",
        ), f"{parsed.netloc}{parsed.path}"
    raise ValueError(f"warehouse location {location!r}: scheme {parsed.scheme!r} is not supported (file:, s3://)")


def _land_range(job: LandingJob, range_index: int, ingested_at: pa.Scalar, io_properties: dict[str, str],
                conn: psycopg2.extensions.connection) -> Iterator[tuple[str, int, int | None]]:
    """Write one key range to Parquet files of about LANDING_ROWS_PER_FILE rows (a file is closed
    at the first batch that reaches it): (path, rows, the serial cursor's maximum) per file as it is
    closed; no file for an empty range."""
    fs, folder = filesystem(job.folder, io_properties)
    fs.create_dir(folder, recursive=True)
    schema = job.file_schema()
    # dictionaries for text only: ids, amounts and timestamps rarely repeat, and trying costs CPU
    # (on the benchmark's tables: a third smaller files for a little less CPU than dictionaries everywhere)
    dictionary = [f.name for f in schema if pa.types.is_string(f.type)]
    with contextlib.ExitStack() as open_file:
        name, rows, top = None, 0, None
        for batch in job.plan.read_range(range_index, conn):
            n = batch.num_rows
            if not n:
                continue
            if name is None:
                name, rows, top = f"{uuid.uuid4().hex}.parquet", 0, None
                stream = open_file.enter_context(fs.open_output_stream(f"{folder}/{name}"))
                writer = open_file.enter_context(pq.ParquetWriter(stream, schema, compression="zstd",
                                                                  use_dictionary=dictionary))
            meta = [pa.repeat(pa.scalar(job.batch_id), n), pa.repeat(ingested_at, n), pa.repeat(pa.scalar("upsert"), n)]
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns + meta, schema=schema))
            rows += n
            if job.max_of is not None:
                top = _max(top, pc.max(batch.column(job.max_of)).as_py())
            if rows >= LANDING_ROWS_PER_FILE:
                open_file.close()  # the writer, then its stream
                yield f"{job.folder}/{name}", rows, top
                name = None
        if name is not None:
            open_file.close()
            yield f"{job.folder}/{name}", rows, top


def _land_partitions(jobs: tuple[LandingJob, ...], tasks: tuple[tuple[tuple[int, int], ...], ...], ingested_at_us: int,
                     storage: TaskSecret[dict[str, str]], batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    ingested_at = pa.scalar(ingested_at_us, pa.timestamp("us", tz="UTC"))
    io_properties = storage.get()
    # one source connection per task and database: a new server session costs ~20 ms here
    connections: dict[tuple, psycopg2.extensions.connection] = {}
    try:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                for job_index, range_index in tasks[task]:
                    plan = jobs[job_index].plan
                    conn = connections.get(plan.server)
                    if conn is None:
                        conn = connections[plan.server] = plan.connect()
                    for path, rows, top in _land_range(jobs[job_index], range_index, ingested_at, io_properties, conn):
                        yield pa.RecordBatch.from_pylist(
                            [{"job": job_index, "path": path, "rows": rows, "max_value": top}], schema=_RESULT_ARROW)
    finally:
        for conn in connections.values():
            conn.close()


def rows_per_range(jobs: list[LandingJob], slots: int) -> int:
    """The most rows a table is read in as one stream: a task slot's share of all the jobs' planned
    rows, and at least LANDING_ROWS_PER_FILE. A larger table is split into key ranges so that every
    slot stays busy; a smaller one is read whole, since each range's predicate costs the source CPU
    (at scale 1 on 2 cores, splitting the four largest tables into 11 ranges cost the server a
    third more CPU for them)."""
    planned = sum(job.plan.rows or 0 for job in jobs)
    return max(LANDING_ROWS_PER_FILE, math.ceil(planned / max(1, slots)))


def pack_tasks(jobs: list[LandingJob], slots: int) -> list[list[tuple[int, int]]]:
    """Every (job, range) in at most ``2 × slots`` tasks of balanced expected rows (largest first,
    each into the least loaded task). A Python task costs ~50 ms of fixed overhead here, so the
    small tables share tasks instead of getting one each."""
    units = sorted(((j, r) for j, job in enumerate(jobs) for r in range(len(job.plan.ranges))),
                   key=lambda u: -jobs[u[0]].plan.range_rows(u[1]))
    tasks: list[list[tuple[int, int]]] = [[] for _ in range(min(len(units), 2 * slots))]
    loads = [0.0] * len(tasks)
    for unit in units:
        least = loads.index(min(loads))
        tasks[least].append(unit)
        loads[least] += jobs[unit[0]].plan.range_rows(unit[1]) + 1
    return tasks


def land(spark: SparkSession, settings: LakehouseSettings, jobs: list[LandingJob]) -> list[Landed]:
    """Land every range of every job in one Spark job; return what landed per job (in ``jobs`` order).

    Nothing is committed here. A task failure (source error, a value the Arrow types cannot
    hold) raises the Spark job's error.
    """
    if not jobs:
        return []
    tasks = tuple(tuple(t) for t in pack_tasks(jobs, spark.sparkContext.defaultParallelism))
    ingested_at_us = time.time_ns() // 1000  # the driver's clock, as current_timestamp() in a Spark plan
    # the object store's keys (no catalog secrets), out of the pickled tasks
    storage = TaskSecret({k: v for k, v in catalog_properties(settings).items() if k.startswith("s3.")})
    run = functools.partial(_land_partitions, tuple(jobs), tasks, ingested_at_us, storage)
    landed = [Landed((), 0, None) for _ in jobs]
    for r in spark.range(0, len(tasks), 1, len(tasks)).mapInArrow(run, _RESULT_DDL).collect():
        before = landed[r["job"]]
        landed[r["job"]] = Landed(before.files + (r["path"],), before.rows + r["rows"], _max(before.max_value, r["max_value"]))
    return landed
