"""Access to the source database: its clock, its snapshot, its column types, and reads.

Identifiers reaching SQL come from the validated registry and are quoted here;
values are typed literals rendered by this module (Spark's JDBC reader cannot bind
parameters), never text taken from outside.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

import psycopg2.extensions
from psycopg2.pool import ThreadedConnectionPool
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import DecimalType, StructType

from lakehouse_core import postgres
from lakehouse_core.errors import ConfigurationError, DataError
from lakehouse_core.registry import TableSpec
from lakehouse_core.settings import LakehouseSettings

_SNAPSHOT = re.compile(r"^\d+:\d+:(\d+(,\d+)*)?$")
JDBC_SPLIT_THRESHOLD = 50_000

# xmin is 32 bits; widen it to a 64-bit xid8 with the epoch of the current snapshot's xmax
# (a value above the current low 32 bits belongs to the previous epoch). Frozen rows report
# xmin 2 and so compare as older than any snapshot.
XMIN_AS_XID8 = (
    "((((pg_snapshot_xmax(pg_current_snapshot())::text::bigint >> 32)"
    " - CASE WHEN src_t.xmin::text::bigint > (pg_snapshot_xmax(pg_current_snapshot())::text::bigint & 4294967295)"
    " THEN 1 ELSE 0 END) << 32) | src_t.xmin::text::bigint)"
)


class SourceSchemaError(ConfigurationError):
    """The source lacks a table or column the registry names."""


class SourceValueError(DataError):
    """A source value cannot be read as its column's type; nothing was written."""


@dataclass(frozen=True)
class SourceState:
    """The source as seen at the start of a run: its clock and its transaction snapshot."""

    now: datetime
    snapshot: str


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: datetime | int) -> str:
    """A SQL literal for a cursor bound (typed values only)."""
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    return str(int(value))


def snapshot_literal(snapshot: str) -> str:
    """A validated ``pg_snapshot`` literal; raises ValueError for anything else."""
    if not _SNAPSHOT.match(snapshot):
        raise ValueError(f"not a PostgreSQL snapshot: {snapshot!r}")
    return f"'{snapshot}'::pg_snapshot"


def source_state(settings: LakehouseSettings) -> SourceState:
    """The source's own notion of now (simulator clock when present, else the database clock)
    and its current snapshot, taken before any table of the run is read."""
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_current_snapshot()::text, localtimestamp")
        snapshot, db_now = cur.fetchone()
        clock = settings.extract.source_clock
        if clock in ("auto", "simulator"):
            cur.execute("SELECT to_regclass('lakehouse_sim.clock') IS NOT NULL")
            if cur.fetchone()[0]:
                cur.execute("SELECT sim_now FROM lakehouse_sim.clock")
                rows = cur.fetchall()
                if len(rows) != 1:
                    raise SourceSchemaError(f"lakehouse_sim.clock holds {len(rows)} rows; the simulator clock is one "
                                            "row (sim_now): set it, or drop the table to use the database clock")
                return SourceState(rows[0][0], snapshot)
            if clock == "simulator":
                raise SourceSchemaError("source_clock=simulator but lakehouse_sim.clock does not exist in the source")
        return SourceState(db_now, snapshot)


@contextlib.contextmanager
def connection_pool(settings: LakehouseSettings, size: int) -> Iterator[ThreadedConnectionPool]:
    """``size`` source connections that the driver's planning threads share (opened at once, kept
    between uses, closed at the end): a new connection costs the server a process and cold caches."""
    pool = ThreadedConnectionPool(size, size, **postgres.connection_params(settings.source, settings),
                                  application_name="lakehouse-bronze")
    try:
        yield pool
    finally:
        pool.closeall()


@contextlib.contextmanager
def connection(settings: LakehouseSettings, pool: ThreadedConnectionPool | None = None
               ) -> Iterator[psycopg2.extensions.connection]:
    """An autocommit source connection: borrowed from ``pool`` (and given back), else a new one (closed after)."""
    conn = pool.getconn() if pool else postgres.connect(settings.source, settings)
    conn.autocommit = True
    try:
        yield conn
    finally:
        if pool:
            pool.putconn(conn)
        else:
            conn.close()


def check_table_exists(settings: LakehouseSettings, table: str, pool: ThreadedConnectionPool | None = None) -> None:
    """Raises SourceSchemaError naming ``table`` when the source has no such table (dropped or
    renamed there): before anything of the table is read or written."""
    with connection(settings, pool) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s)", (f"public.{quote(table)}",))
        found = cur.fetchone()[0]
    if found is None:
        raise SourceSchemaError(f"source table {table} does not exist (dropped or renamed at the source); nothing of "
                                "it was read or written. Restore it, or remove it from the registry (its bronze "
                                "history stays)")


def value_beyond_type(settings: LakehouseSettings, spec: TableSpec, query: str, schema: StructType) -> DataError:
    """The error for a batch of ``query`` holding a number wider than the decimal type Spark reads
    its column as (an unconstrained ``numeric`` reads as decimal(38,18)): names the table, the
    first such column and one of its values (found with one query per decimal column)."""
    with connection(settings) as conn, conn.cursor() as cur:
        for field in schema.fields:
            if not isinstance(field.dataType, DecimalType):
                continue
            digits = field.dataType.precision - field.dataType.scale
            cur.execute(f"SELECT q.{quote(field.name)}::text FROM ({query}) q "
                        f"WHERE abs(q.{quote(field.name)}) >= 10::numeric ^ {digits} LIMIT 1")
            row = cur.fetchone()
            if row is not None:
                return SourceValueError(
                    f"source table {spec.name}, column {field.name}: value {row[0]} does not fit "
                    f"{field.dataType.simpleString()}, the type it is read as; nothing was written. Constrain "
                    "the source column (numeric(p,s) with p at most 38) or correct the value")
    return SourceValueError(f"source table {spec.name}: a number does not fit the decimal type it is read as; "
                            "nothing was written")


def column_type(settings: LakehouseSettings, table: str, column: str, pool: ThreadedConnectionPool | None = None) -> str:
    """The PostgreSQL data type of ``table.column``; raises SourceSchemaError naming both when absent."""
    with connection(settings, pool) as conn, conn.cursor() as cur:
        cur.execute("SELECT data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s AND column_name = %s", (table, column))
        row = cur.fetchone()
    if row is None:
        raise SourceSchemaError(f"source table {table}: column {column} (named by the registry) does not exist")
    return row[0]


def count_rows(settings: LakehouseSettings, spec: TableSpec, within: str, *subsets: str,
               pool: ThreadedConnectionPool | None = None) -> tuple[int, ...]:
    """Rows of ``spec``'s source table matching the predicate ``within``, and how many of them match
    each predicate of ``subsets`` (one scan)."""
    counts = ", ".join(["count(*)"] + [f"count(*) FILTER (WHERE {s})" for s in subsets])
    with connection(settings, pool) as conn, conn.cursor() as cur:
        cur.execute(select(spec, within, counts))
        return tuple(int(n) for n in cur.fetchone())


@dataclass(frozen=True)
class WindowRead:
    """A read window as the source holds it now (``read_window``): its rows and their fingerprint,
    and those of the window the table's last batch read (when given)."""

    rows: int
    fingerprint: str
    previous_fingerprint: str | None = None
    beyond_previous: int = 0  # rows of the window outside the previous one


def read_window(settings: LakehouseSettings, spec: TableSpec, within: str | None, previous: str | None = None,
                pool: ThreadedConnectionPool | None = None, compare: bool = False, keys: bool = False) -> WindowRead:
    """The rows of ``spec``'s source table that the predicate ``within`` (None: all) selects, with
    their fingerprint: ``<rows>:<sum of each row's 64-bit text hash>:<md5 of the column names and
    types>``, equal for the same multiset of rows under the same columns (up to a collision of the
    hash sums); with ``compare``, also the fingerprint of the rows ``previous`` (None: all) selects and
    how many rows ``within`` selects outside it (one scan, by PostgreSQL). With ``keys``, both
    fingerprints end with that of the table's primary keys (``;keys <count>:<sum of their hashes>``,
    a second scan, of the whole table): equal, no key was deleted or added anywhere."""
    row_hash = "hashtextextended(src_t::text, 0)::numeric"
    within, previous = within or "TRUE", previous or "TRUE"
    columns = [f"count(*) FILTER (WHERE {within})", f"coalesce(sum({row_hash}) FILTER (WHERE {within}), 0)"]
    if compare:
        columns += [f"count(*) FILTER (WHERE {previous})", f"coalesce(sum({row_hash}) FILTER (WHERE {previous}), 0)",
                    f"count(*) FILTER (WHERE ({within}) AND ({previous}) IS NOT TRUE)"]
    with connection(settings, pool) as conn, conn.cursor() as cur:
        cur.execute("SELECT md5(string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)) "
                    "FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                    (f"public.{quote(spec.name)}",))
        columns_digest = cur.fetchone()[0]
        cur.execute(select(spec, f"({within})" + (f" OR ({previous})" if compare else ""), ", ".join(columns)))
        found = cur.fetchone()
        if keys:
            key = ", ".join(f"src_t.{quote(k)}" for k in spec.primary_key)
            cur.execute(select(spec, None, f"count(*), coalesce(sum(hashtextextended(ROW({key})::text, 0)::numeric), 0)"))
            columns_digest += ";keys {}:{}".format(*cur.fetchone())
    rows, digest = int(found[0]), f"{found[0]}:{found[1]}:{columns_digest}"
    if not compare:
        return WindowRead(rows, digest)
    return WindowRead(rows, digest, f"{found[2]}:{found[3]}:{columns_digest}", int(found[4]))


def select(spec: TableSpec, predicate: str | None, columns: str = "src_t.*") -> str:
    """``SELECT columns FROM public.<table> src_t [WHERE predicate]``."""
    where = f" WHERE {predicate}" if predicate else ""
    return f"SELECT {columns} FROM public.{quote(spec.name)} src_t{where}"


def read_jdbc(spark: SparkSession, settings: LakehouseSettings, spec: TableSpec, query: str) -> DataFrame:
    """Read ``query`` over JDBC, split into key ranges on a single numeric primary key.

    Spark's PostgreSQL dialect quotes a column name without escaping the double quotes in it: a
    column so named is read under a positional alias and given its own name back."""
    db = postgres.resolve(settings.source, settings)
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT * FROM ({query}) q LIMIT 0")
        names = [column.name for column in cur.description]
        aliased = [f"_lakehouse_column_{i}" if '"' in name else name for i, name in enumerate(names)]
        if aliased != names:
            query = "SELECT " + ", ".join(f"q.{quote(n)} AS {quote(a)}" for n, a in zip(names, aliased)) + f" FROM ({query}) q"
        bounds = None
        if len(spec.primary_key) == 1:
            key = quote(spec.primary_key[0])
            cur.execute(f"SELECT min({key}), max({key}), count(*) FROM ({query}) q")
            bounds = cur.fetchone()
    reader = (spark.read.format("jdbc").option("url", postgres.jdbc_url(db)).option("user", db.user)
              .option("driver", "org.postgresql.Driver").option("fetchsize", settings.spark.jdbc_fetch_size)
              .option("preferTimestampNTZ", "true").option("dbtable", f"({query}) AS src"))
    if db.password:
        reader = reader.option("password", db.password.get_secret_value())
    if bounds is not None:
        low, high, count = bounds
        if isinstance(low, int) and count > JDBC_SPLIT_THRESHOLD:
            reader = (reader.option("partitionColumn", spec.primary_key[0]).option("lowerBound", low)
                      .option("upperBound", high + 1).option("numPartitions", settings.spark.jdbc_partitions))
    df = reader.load()
    return df.toDF(*names) if aliased != names else df
