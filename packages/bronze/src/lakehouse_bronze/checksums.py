"""Per-row checksums of a table, computed alike at the source (SQL) and in bronze (Spark).

A reconciling batch (``extract.reconcile_every_days``) reads from the source only each row's
key and an MD5 of its values, compares them with the same checksum of the latest bronze
version of every key, and then reads in full only the rows whose checksum differs or which
bronze lacks (``fetch_predicate``). Keys live in bronze but absent from the source are its deletes.

Both sides hash the same text: each column bronze holds, in table order, rendered canonically
(``CANONICAL``, chosen by the column's type in bronze) and written as ``<length>:<text>``, or
``-`` when NULL, so no two rows share a text. Were a value rendered differently on the two
sides, its row would be read in full and compared exactly, as any differing row is: a checksum
can cost a read, never a missed or a false change. Only a table holding a column type
without a canonical rendering is read whole instead (``checksummable``).
"""

from __future__ import annotations

from typing import Callable, Iterable

from psycopg2.extensions import adapt
from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse_core.schema import column

#: the checksum column of both sides
CHECKSUM = "_row_md5"
#: the most rows a reconciling batch reads by their keys (beyond it, the whole table)
MAX_FETCH_KEYS = 50_000

_TIMESTAMPS = (T.TimestampType, T.TimestampNTZType)
#: Spark type → (SQL rendering of a source value ``{c}``, Spark rendering of a bronze value), both
#: of a value that is not NULL:
#: * text through its type's output function (``format``: a ``char(n)`` keeps its padding, as the
#:   readers read it; ``chr(37)`` is ``%``, kept out of the SQL for drivers that substitute parameters);
#: * a decimal rounded to the scale bronze holds it at (PostgreSQL pads to it, as Spark prints it);
#: * a timestamp as microseconds since the epoch (a ``timestamptz`` is read as its UTC wall time, a
#:   ``timestamp`` as its own, and ``extract(epoch ...)`` takes each so);
#: * a float as the bits of its double (the two print floats differently; a ``real`` widens exactly).
CANONICAL: tuple[tuple[type | tuple[type, ...], str, Callable[[Column], Column]], ...] = (
    (T.StringType, "format(chr(37) || 's', {c})", lambda c: c),
    ((T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.BooleanType), "{c}::text", lambda c: c.cast("string")),
    (T.DecimalType, "round({c}, {s})::text", lambda c: c.cast("string")),
    (T.DateType, "to_char({c}, 'YYYY-MM-DD')", lambda c: c.cast("string")),
    (_TIMESTAMPS, "(extract(epoch FROM {c}) * 1000000)::bigint::text",
     lambda c: F.unix_micros(c.cast("timestamp")).cast("string")),
    ((T.FloatType, T.DoubleType), "('x' || encode(float8send({c}::float8), 'hex'))::bit(64)::bigint::text",
     lambda c: F.when(c.isNotNull(), F.reflect(F.lit("java.lang.Double"), F.lit("doubleToLongBits"), c.cast("double")))),
)


def _rendering(data_type: T.DataType):
    for types, sql, spark in CANONICAL:
        if isinstance(data_type, types):
            return sql, spark
    return None


def checksummable(fields: Iterable[T.StructField]) -> bool:
    """Whether every column of ``fields`` has a canonical rendering on both sides."""
    return all(_rendering(f.dataType) is not None for f in fields)


def source_checksum(fields: list[T.StructField], quote: Callable[[str], str]) -> str:
    """The SQL expression of a source row's checksum over ``fields`` (named as in the source,
    quoted by ``quote``), aliased ``_row_md5``."""
    pieces = []
    for field in fields:
        sql, _ = _rendering(field.dataType)
        name = f"src_t.{quote(field.name)}"
        rendered = sql.format(c=name, s=field.dataType.scale if isinstance(field.dataType, T.DecimalType) else 0)
        pieces.append(f"CASE WHEN {name} IS NULL THEN '-' ELSE length({rendered})::text || ':' || {rendered} END")
    return f"md5({' || '.join(pieces)}) AS {CHECKSUM}"


def bronze_checksum(fields: list[T.StructField]) -> Column:
    """The Spark column of a bronze row's checksum over ``fields``, equal to ``source_checksum``'s."""
    pieces = []
    for field in fields:
        _, spark = _rendering(field.dataType)
        value = column(field.name)
        rendered = spark(value)
        pieces.append(F.when(value.isNull(), F.lit("-"))
                      .otherwise(F.concat(F.length(rendered).cast("string"), F.lit(":"), rendered)))
    return F.md5(F.concat(*pieces)).alias(CHECKSUM)


def fetch_predicate(key: tuple[str, ...], values: list[tuple], quote: Callable[[str], str]) -> str:
    """A SQL predicate selecting the rows of the keys ``values`` (tuples in ``key`` order), the
    values bound as escaped literals."""
    names = [f"src_t.{quote(k)}" for k in key]
    if len(key) == 1:
        return f"{names[0]} = ANY(ARRAY[{', '.join(_literal(v[0]) for v in values)}])"
    rows = ", ".join("(" + ", ".join(_literal(x) for x in v) + ")" for v in values)
    return f"({', '.join(names)}) IN (VALUES {rows})"


def _literal(value: object) -> str:
    """``value`` as an escaped SQL literal (text as UTF-8)."""
    quoted = adapt(value)
    if hasattr(quoted, "encoding"):
        quoted.encoding = "utf8"
    return quoted.getquoted().decode()
