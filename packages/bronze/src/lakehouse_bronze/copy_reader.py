r"""Bronze fast path: PostgreSQL ``COPY`` → Arrow → Spark, split into key ranges.

``read_source_copy`` is a drop-in replacement for the JDBC reader: same arguments,
same DataFrame schema and values. Spark's JDBC reader decodes every row in the JVM
and is CPU-bound at about a quarter of ``COPY`` speed (STACK-NOTES); here

1. the driver reads the query's result columns (``LIMIT 0``) and, for a single
   integer primary key, ``min``/``max`` of the key and the result's size (the planner's
   estimate, counted when small), and cuts the key span into equal-width ranges (one
   range when the result is small or the key is not a single integer column);
2. each range is one Spark task (``spark.range`` with one row per partition, then
   ``mapInArrow``) that opens its own psycopg2 connection and streams
   ``COPY (SELECT * FROM (<query>) q WHERE key >= lo AND key < hi) TO STDOUT`` (text format)
   through a pipe, cuts it into chunks of whole rows (about BLOCK_SIZE bytes; a longer row is a
   chunk of its own size, so values of any length load) and parses each chunk with pyarrow's CSV
   reader set for tab-separated fields, with the target Arrow type of every column given up front;
3. the tasks yield Arrow record batches typed exactly as the JDBC reader types the
   columns: no JDBC row decoding in the JVM and no file written in between; the batches
   feed whatever Spark plan consumes the DataFrame (for bronze, the Iceberg write).
   ``plan_copy`` + ``CopyPlan.read_range`` expose the same batches to other task
   functions (e.g. tasks that write Parquet themselves, ``lakehouse_bronze.landing``).

Python tasks run with ``$PYSPARK_PYTHON`` (default: a bare ``python3`` from PATH), which
must be an interpreter with this package installed, as the driver's is.

Why the text format: pyarrow has a C++ CSV parser (≈1–2.5 M rows/s per stream here) but
no decoder for PostgreSQL's binary format; a pure-Python binary decoder splits only
≈90 k rows/s, and the ADBC PostgreSQL driver's C++ binary decoder cost more client CPU
than this path (both measured). Of the server's formats, text is the cheapest to produce
(``FORMAT csv`` costs it ~20–50 % more CPU: quoting decisions per value) and it needs no
quote handling: NULL is ``\N``, the empty string is empty, and the only escapes are
``\\``, ``\b``, ``\f``, ``\n``, ``\r``, ``\t``, ``\v``, which are undone per text column, only
in batches holding a backslash. So text round-trips exactly.

Type mapping (PostgreSQL → Spark, as Spark 3.5's JDBC reader with ``preferTimestampNTZ``,
field metadata included): ``int2`` → smallint, ``int4`` → int, ``int8`` → bigint,
``numeric(p,s)`` → decimal(p,s) (unconstrained ``numeric`` → decimal(38,18)), ``float4`` →
float, ``float8`` → double, ``bool`` → boolean, ``text``/``varchar``/``bpchar``/``json``/
``jsonb``/``uuid``/enums → string, ``date`` → date, ``timestamp`` → timestamp_ntz,
``timestamptz`` → timestamp_ntz holding the UTC wall time (what JDBC gives when the JVM
zone is UTC). All fields are nullable, as the JDBC reader makes them.
Any other type raises ``UnsupportedSourceType`` on the driver, before any task runs
(use the JDBC reader for such a table). Values the Arrow types cannot hold fail the task
with ``SourceValueError`` naming the table, column and value instead of loading wrong
data: ``±infinity`` timestamps and dates, BC dates, ``numeric`` values with more than 18
decimals in an unconstrained column, NaN numerics.

Each range is read in its own transaction, as with Spark's JDBC reader: a query whose
predicate calls ``pg_current_snapshot()`` evaluates it per range.

Bronze uses this reader for incremental loads (a Spark plan compares the rows with bronze);
a first load skips Spark's rows altogether: its tasks write the same Arrow batches to
Parquet (``lakehouse_bronze.landing``). Numbers in bench/results/bronze.json.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import threading
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import psycopg2
from psycopg2.pool import ThreadedConnectionPool
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from lakehouse_core import postgres
from lakehouse_core.errors import ConfigurationError, DataError
from lakehouse_core.registry import TableSpec
from lakehouse_core.settings import LakehouseSettings
from lakehouse_core.task_secret import TaskSecret
from lakehouse_bronze import source

#: Results up to this many rows are read as one range (the JDBC reader's threshold too).
SPLIT_THRESHOLD = 50_000
#: Bytes of COPY text per chunk, parsed into one Arrow record batch (more for a longer row).
BLOCK_SIZE = 4 << 20
#: Session settings that fix the text form of values for the parser.
SESSION_OPTIONS = "-c DateStyle=ISO,YMD -c TimeZone=UTC -c IntervalStyle=postgres -c extra_float_digits=3"

_INTEGER_KEYS = ("int2", "int4", "int8")
_CSV_COLUMN = re.compile(r"CSV column #(\d+)")
#: The escapes COPY's text format writes (besides ``\\``), and what they stand for.
_ESCAPES = (("\\b", "\b"), ("\\f", "\f"), ("\\n", "\n"), ("\\r", "\r"), ("\\t", "\t"), ("\\v", "\v"))
_TEXT = ("text", "varchar", "bpchar", "name", "json", "jsonb", "uuid", "xml", "citext")


class UnsupportedSourceType(ConfigurationError):
    """A result column has a PostgreSQL type the COPY reader does not map (use the JDBC reader)."""


class SourceValueError(DataError):
    """A source value its column's Arrow/Spark type cannot hold (message: table, column, value)."""


_TASK_ERROR = re.compile(rf"{SourceValueError.__name__}: (.+)")


@contextlib.contextmanager
def task_errors() -> Iterator[None]:
    """Raise a SourceValueError that a Spark task raised as itself again on the driver (Spark hands the
    driver only the task's traceback text), so it is reported as one line like any expected failure."""
    try:
        yield
    except Exception as exc:
        found = _TASK_ERROR.search(str(exc))
        if found is None or isinstance(exc, SourceValueError):
            raise
        raise SourceValueError(found.group(1).strip()) from None


@dataclass(frozen=True)
class SourceColumn:
    """One result column: its name and PostgreSQL type, and how it is parsed and typed.

    ``parse_type`` is the Arrow type the COPY text is parsed into, ``arrow_type`` the type of
    the batches handed to Spark (they differ for ``timestamptz`` only), ``metadata`` the
    Spark field metadata the JDBC reader attaches (``isSigned``, ``scale`` and, for
    ``varchar(n)``/``char(n)``, Spark's char/varchar marker), so both schemas are equal.
    """

    name: str
    pg_type: str
    parse_type: pa.DataType
    arrow_type: pa.DataType
    spark_type: T.DataType
    metadata: dict

    @property
    def field(self) -> T.StructField:
        return T.StructField(self.name, self.spark_type, nullable=True, metadata=self.metadata)


@dataclass(frozen=True)
class CopyPlan:
    """What the tasks of one read need, planned on the driver (connection details resolved there).

    ``ranges`` are half-open key ranges on ``key``; ``key`` is None for a single unsplit read.
    ``rows`` is the result's size as planned (single integer key; an estimate when large), else None.
    ``table`` names the source table in errors. Picklable: it is shipped to the tasks (its
    ``password`` as a broadcast variable).
    """

    host: str
    port: int
    user: str
    dbname: str
    password: TaskSecret[str] | None
    query: str
    key: str | None
    ranges: tuple[tuple[int, int], ...]
    parse_schema: pa.Schema
    arrow_schema: pa.Schema
    spark_schema: T.StructType
    table: str
    rows: int | None = None

    def range_rows(self, index: int) -> float:
        """Expected rows of range ``index`` (ranges are equal-width; 0 without an estimate)."""
        return (self.rows or 0) / len(self.ranges)

    @property
    def server(self) -> tuple[str, int, str, str]:
        """Where the source is: host, port, user, database (plans with equal ``server`` share connections)."""
        return self.host, self.port, self.user, self.dbname

    def connect(self) -> psycopg2.extensions.connection:
        """A source connection for this plan's COPY streams (autocommit: each range is its own
        transaction); ``read_range`` takes it so that a task reading several ranges opens one."""
        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=self.dbname,
                                password=self.password.get() if self.password else None,
                                options=SESSION_OPTIONS, client_encoding="UTF8",
                                application_name="lakehouse-bronze-copy")
        conn.autocommit = True
        return conn

    def read_range(self, index: int, conn: psycopg2.extensions.connection | None = None) -> Iterator[pa.RecordBatch]:
        """The Arrow batches of range ``index`` (runs where it is called: in a task), read on ``conn``
        (from ``connect``; default: a connection of its own, closed at the end)."""
        if conn is not None:
            yield from _copy_range(self, index, conn)
            return
        with contextlib.closing(self.connect()) as own:
            yield from _copy_range(self, index, own)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def map_type(name: str, pg_type: str, typtype: str, typmod: int) -> SourceColumn:
    """The Arrow and Spark types of a result column of PostgreSQL type ``pg_type`` (base type for a
    domain) with type modifier ``typmod`` (-1: none); raises UnsupportedSourceType."""
    def column(arrow: pa.DataType, spark: T.DataType, signed: bool = False, scale: int = 0,
               parse: pa.DataType | None = None, **extra: str) -> SourceColumn:
        return SourceColumn(name, pg_type, parse or arrow, arrow, spark, {"isSigned": signed, "scale": scale, **extra})

    if pg_type == "int2":
        return column(pa.int16(), T.ShortType(), signed=True)
    if pg_type == "int4":
        return column(pa.int32(), T.IntegerType(), signed=True)
    if pg_type == "int8":
        return column(pa.int64(), T.LongType(), signed=True)
    if pg_type == "numeric":
        # parsed as text and cast, so that a value the decimal cannot hold is named in the error
        if typmod < 4:  # unconstrained numeric: Spark's JDBC default decimal(38,18)
            return column(pa.decimal128(38, 18), T.DecimalType(38, 18), signed=True, parse=pa.string())
        precision, scale = ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
        if precision > 38:
            raise UnsupportedSourceType(f"column {name}: numeric({precision},{scale}) exceeds Spark's precision 38")
        return column(pa.decimal128(precision, scale), T.DecimalType(precision, scale), signed=True, scale=scale,
                      parse=pa.string())
    if pg_type == "float4":
        return column(pa.float32(), T.FloatType(), signed=True, scale=8)
    if pg_type == "float8":
        return column(pa.float64(), T.DoubleType(), signed=True, scale=17)
    if pg_type == "bool":
        return column(pa.bool_(), T.BooleanType())
    if pg_type in ("varchar", "bpchar"):  # unbounded: the driver reports length 2147483647
        declared = f"{'varchar' if pg_type == 'varchar' else 'char'}({typmod - 4 if typmod >= 4 else 2**31 - 1})"
        return column(pa.string(), T.StringType(), **{"__CHAR_VARCHAR_TYPE_STRING": declared})
    if pg_type in _TEXT or typtype == "e":
        return column(pa.string(), T.StringType())
    if pg_type == "date":
        return column(pa.date32(), T.DateType())
    if pg_type == "timestamp":
        return column(pa.timestamp("us"), T.TimestampNTZType(), scale=6 if typmod < 0 else typmod)
    if pg_type == "timestamptz":
        # the JDBC reader (preferTimestampNTZ) gives the instant's wall time in the JVM zone,
        # UTC on the platform's sessions; read in a UTC session and drop the zone
        return column(pa.timestamp("us"), T.TimestampNTZType(), scale=6 if typmod < 0 else typmod,
                      parse=pa.timestamp("us", tz="UTC"))
    raise UnsupportedSourceType(f"column {name}: PostgreSQL type {pg_type!r} is not supported by the COPY reader; "
                                "read this table with the JDBC reader")


def source_columns(cur: psycopg2.extensions.cursor, query: str) -> list[SourceColumn]:
    """The result columns of ``query`` (run with ``LIMIT 0``), mapped to Arrow/Spark types.

    Type modifiers come from ``pg_attribute`` for columns taken from a table, else from
    what psycopg2 exposes of the result description (numeric precision/scale, char length).
    """
    cur.execute(f"SELECT * FROM ({query}) q LIMIT 0")
    description = cur.description
    cur.execute("SELECT t.oid, coalesce(b.typname, t.typname), coalesce(b.typtype, t.typtype) FROM pg_type t "
                "LEFT JOIN pg_type b ON t.typtype = 'd' AND b.oid = t.typbasetype WHERE t.oid = ANY(%s::oid[])",
                (sorted({d.type_code for d in description}),))
    types = {oid: (typname, typtype) for oid, typname, typtype in cur.fetchall()}
    relations = sorted({d.table_oid for d in description if d.table_oid})
    typmods: dict[tuple[int, int], int] = {}
    if relations:
        cur.execute("SELECT attrelid, attnum, atttypmod FROM pg_attribute WHERE attrelid = ANY(%s::oid[]) AND attnum > 0",
                    (relations,))
        typmods = {(rel, num): mod for rel, num, mod in cur.fetchall()}
    columns = []
    for d in description:
        pg_type, typtype = types[d.type_code]
        typmod = typmods.get((d.table_oid, d.table_column))
        if typmod is None:
            if pg_type == "numeric" and d.precision is not None and 0 < d.precision <= 1000:
                typmod = ((d.precision << 16) | d.scale) + 4
            elif pg_type in ("varchar", "bpchar") and d.internal_size and d.internal_size > 0:
                typmod = d.internal_size + 4
            else:
                typmod = -1
        columns.append(map_type(d.name, pg_type, typtype, typmod))
    return columns


def key_ranges(low: int, high: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous half-open ranges ``[lo, hi)`` covering ``low..high`` (inclusive), none empty."""
    span = high - low + 1
    parts = max(1, min(parts, span))
    bounds = [low + span * i // parts for i in range(parts)] + [high + 1]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def _range_sql(job: CopyPlan, index: int) -> str:
    select = f"SELECT * FROM ({job.query}) q"
    if job.key is not None:
        lo, hi = job.ranges[index]
        key = f"q.{quote(job.key)}"
        # the first range also takes NULL keys, as Spark's JDBC partitioning does
        null = f" OR {key} IS NULL" if index == 0 else ""
        select += f" WHERE ({key} >= {int(lo)} AND {key} < {int(hi)}){null}"
    return f"COPY ({select}) TO STDOUT"


def _csv_options(schema: pa.Schema) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    # positional names: result columns may share a name; the real names are set per batch
    names = [f"c{i}" for i in range(len(schema))]
    return (
        # the block size is set per chunk (``_parse``): a chunk is always one block
        pacsv.ReadOptions(column_names=names, block_size=BLOCK_SIZE, use_threads=False),
        # COPY text: tab-separated, no quoting; escapes are kept here and undone by _unescape
        pacsv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False, ignore_empty_lines=False),
        pacsv.ConvertOptions(column_types=dict(zip(names, schema.types)), null_values=["\\N"],
                             strings_can_be_null=True, true_values=["t"], false_values=["f"]),
    )


def _copy_range(job: CopyPlan, index: int, conn: psycopg2.extensions.connection) -> Iterator[pa.RecordBatch]:
    """Stream one range on ``conn``: COPY writes into a pipe from a thread, pyarrow parses the other end.
    A stream stopped early is cancelled on the server (``conn`` stays usable)."""
    failure: list[BaseException] = []
    read_fd, write_fd = os.pipe()

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as sink, conn.cursor() as cur:
                cur.copy_expert(_range_sql(job, index), sink)
        except BaseException as exc:  # re-raised in the consuming task below
            failure.append(exc)

    producer = threading.Thread(target=produce, name=f"copy-range-{index}", daemon=True)
    producer.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as source:
            yield from _parse(job, source)  # an empty result is an empty stream: no chunk, no batch
    finally:
        if producer.is_alive():  # the consumer stopped early or failed: stop the COPY
            conn.cancel()
        producer.join()
    if failure:
        raise failure[0]


def _row_chunks(source: BinaryIO, size: int) -> Iterator[pa.Buffer]:
    r"""The stream in chunks of whole rows: about ``size`` bytes each, or a row longer than that
    and at most ``size`` bytes of rows after it.

    In COPY's text format a newline byte only ever ends a row (a newline in a value is the escape
    ``\n``), so a chunk ends at the last newline read and the partial row after it begins the next
    chunk. A row longer than the buffer doubles it: rows of any length (pyarrow's streaming reader
    fails on a row longer than two of its blocks). The stream is read ``size`` bytes at a time, so a
    chunk holds at most ``size`` bytes besides its first row. Every chunk is a buffer of its own,
    handed to Arrow without a copy: only a partial row is copied.
    """
    buffer, filled = bytearray(size), 0
    while True:
        if filled == len(buffer):  # no newline yet: a row longer than the buffer
            buffer += bytes(len(buffer))
        with memoryview(buffer)[filled:filled + size] as free:  # released before the buffer may grow
            read = source.readinto(free)  # a buffered reader fills it unless the stream ends
        if not read:
            if filled:  # the last rows (COPY ends them with a newline too)
                yield pa.py_buffer(buffer).slice(0, filled)
            return
        end = buffer.rfind(b"\n", filled, filled + read) + 1  # what came before holds no newline
        filled += read
        if end:
            rest = filled - end
            following = bytearray(rest + size)
            following[:rest] = memoryview(buffer)[end:filled]
            yield pa.py_buffer(buffer).slice(0, end)
            buffer, filled = following, rest


def _parse(job: CopyPlan, source: BinaryIO) -> Iterator[pa.RecordBatch]:
    """The batches of a COPY text stream, typed as planned; a value its column's type cannot hold
    raises SourceValueError naming the table, the column and the value.

    Each chunk of whole rows (``_row_chunks``) is parsed as ONE block of pyarrow's CSV reader, so no
    row ever straddles blocks, whatever the size of its values."""
    read, parse, convert = _csv_options(job.parse_schema)
    try:
        for chunk in _row_chunks(source, BLOCK_SIZE):
            read.block_size = chunk.size
            for batch in pacsv.open_csv(pa.BufferReader(chunk), read_options=read, parse_options=parse,
                                        convert_options=convert):
                columns = [_cast(job, i, _unescape(column)) for i, column in enumerate(batch.columns)]
                yield pa.RecordBatch.from_arrays(columns, schema=job.arrow_schema)
    except pa.ArrowInvalid as exc:  # a text the CSV parser cannot convert (pyarrow names the column and value)
        found = _CSV_COLUMN.search(str(exc))
        where = f", column {job.parse_schema.field(int(found.group(1))).name}" if found else ""
        raise SourceValueError(f"source table {job.table}{where}: {exc}") from None


def _unescape(column: pa.Array) -> pa.Array:
    r"""A text column with COPY's escapes undone (unchanged when it holds no backslash, the usual case).

    ``\\`` first becomes NUL, which text values cannot contain, so ``\\n`` stays a backslash and an n.
    """
    if not pa.types.is_string(column.type):
        return column
    data = column.buffers()[2]  # all values' bytes: one memchr-speed scan (a per-value match is ~20x slower)
    if data is None or data.to_pybytes().find(b"\\") < 0:
        return column
    column = pc.replace_substring(column, "\\\\", "\0")
    for escape, char in _ESCAPES:
        column = pc.replace_substring(column, escape, char)
    return pc.replace_substring(column, "\0", "\\")


def _cast(job: CopyPlan, index: int, column: pa.Array) -> pa.Array:
    """Column ``index`` from its parsed to its planned type (text → decimal, UTC → wall time)."""
    target = job.arrow_schema.field(index)
    if column.type == target.type:
        return column
    try:
        return column.cast(target.type)
    except pa.ArrowInvalid as exc:
        bad = next(value for value in column.to_pylist() if not _fits(value, column.type, target.type))
        raise SourceValueError(f"source table {job.table}, column {target.name}: value {bad!r} does not fit "
                               f"{target.type} ({exc})") from None


def _fits(value: object, source: pa.DataType, target: pa.DataType) -> bool:
    try:
        pa.array([value], source).cast(target)
        return True
    except pa.ArrowInvalid:
        return False


def _read_partitions(plan: CopyPlan, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for index in batch.column(0).to_pylist():
            yield from plan.read_range(index)


def plan_copy(settings: LakehouseSettings, spec: TableSpec, query: str, num_partitions: int | None = None,
              max_rows_per_range: int | None = None, pool: ThreadedConnectionPool | None = None) -> CopyPlan:
    """Plan the read of ``query`` on the driver: result columns and key ranges (see read_source_copy).

    ``max_rows_per_range`` raises the number of ranges above ``num_partitions`` where needed;
    ``pool`` lends the connection (``source.connection_pool``). Raises UnsupportedSourceType for a
    column type without a mapping.
    """
    with source.connection(settings, pool) as conn, conn.cursor() as cur:
        columns = source_columns(cur, query)
        key, ranges, rows = None, ((0, 0),), None
        by_name = {c.name: c for c in columns}
        if len(spec.primary_key) == 1 and getattr(by_name.get(spec.primary_key[0]), "pg_type", None) in _INTEGER_KEYS:
            key = spec.primary_key[0]
            # min/max come from the key's index; the size only sets how many ranges there are:
            # the planner's estimate when it is large (a count would scan the table once more),
            # else a count (a table never analysed can look small)
            cur.execute(f"SELECT min({quote(key)}), max({quote(key)}) FROM ({query}) q")
            low, high = cur.fetchone()
            cur.execute(f"EXPLAIN (FORMAT JSON) {query}")
            count = int(cur.fetchone()[0][0]["Plan"]["Plan Rows"])
            if count <= SPLIT_THRESHOLD:
                cur.execute(f"SELECT count(*) FROM ({query}) q")
                count = cur.fetchone()[0]
            rows = count
            parts = num_partitions or settings.spark.jdbc_partitions
            if max_rows_per_range:
                parts = max(parts, math.ceil(count / max_rows_per_range))
            if low is None or count <= SPLIT_THRESHOLD or parts <= 1:
                key = None  # one range, no predicate
            else:
                ranges = tuple(key_ranges(low, high, min(parts, math.ceil(count / SPLIT_THRESHOLD))))
    server = postgres.connection_params(settings.source, settings)
    secret = server.pop("password")
    return CopyPlan(**server, password=TaskSecret(secret) if secret else None, query=query, key=key, ranges=ranges,
                    parse_schema=pa.schema([pa.field(c.name, c.parse_type) for c in columns]),
                    arrow_schema=pa.schema([pa.field(c.name, c.arrow_type) for c in columns]),
                    spark_schema=T.StructType([c.field for c in columns]), table=spec.name, rows=rows)


def read_source_copy(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, query: str,
                     num_partitions: int | None = None) -> DataFrame:
    """Read ``query`` from the source with COPY, split into key ranges on a single integer primary key.

    Same contract as the JDBC reader (``lakehouse_bronze.source.read_jdbc``): ``query`` is a
    SELECT over the source whose identifiers come from the validated registry. The result
    is split when it has more than SPLIT_THRESHOLD rows, into ``num_partitions`` ranges
    (default ``settings.spark.jdbc_partitions``), one Spark task each. Raises
    UnsupportedSourceType for a column type without a mapping (see module docstring).
    """
    plan = plan_copy(settings, spec, query, num_partitions)
    if plan.rows == 0:  # counted empty (an incremental read on a quiet day): no task, no Python worker
        return spark.createDataFrame([], plan.spark_schema)
    count = len(plan.ranges)
    return spark.range(0, count, 1, count).mapInArrow(functools.partial(_read_partitions, plan), plan.spark_schema)
