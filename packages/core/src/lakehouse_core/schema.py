"""Schema evolution rules shared by the layers, checked before anything is written.

A new column flows through with no code change; a safe widening (int → bigint,
float → double, decimal precision up at the same scale) is applied; any other
type change fails naming table, column and both types, and so does (for a source
table) a dropped or renamed column. A source column may be named with any characters: Spark
code refers to one through ``column``/``quoted``, never by its bare name.
"""

from __future__ import annotations

from lakehouse_core.errors import DataError
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (ByteType, DataType, DecimalType, DoubleType, FloatType, IntegerType, LongType,
                               ShortType, StructType)


def quoted(name: str) -> str:
    """``name`` as a Spark SQL identifier, in backticks (its own backticks doubled)."""
    return "`" + name.replace("`", "``") + "`"


def column(name: str, df: DataFrame | None = None) -> Column:
    """The column ``name`` (of ``df``) whatever characters it holds: a source column may be named
    with dots, backticks or quotes, which Spark would otherwise parse."""
    return F.col(quoted(name)) if df is None else df[quoted(name)]


class SchemaDriftError(DataError):
    """A column changed type incompatibly; nothing was written."""


def _widens(old: DataType, new: DataType) -> bool:
    if old == new:
        return True
    if isinstance(new, (ByteType, ShortType)) and isinstance(old, (IntegerType, LongType)):
        return True  # Iceberg stores a tinyint or smallint as int: every value fits what the table holds
    if isinstance(old, (ShortType, IntegerType)) and isinstance(new, (IntegerType, LongType)):
        return not (isinstance(old, IntegerType) and isinstance(new, IntegerType))
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale == old.scale and new.precision >= old.precision
    return False


def widened_columns(existing: StructType, incoming: StructType) -> dict[str, DataType]:
    """Columns of ``incoming`` whose type is a safe widening of the existing one."""
    current = {f.name: f.dataType for f in existing.fields}
    return {f.name: f.dataType for f in incoming.fields
            if f.name in current and current[f.name] != f.dataType and _widens(current[f.name], f.dataType)}


def check_evolution(what: str, existing: StructType, incoming: StructType, keep_columns: bool = False) -> list[str]:
    """Return the new column names; raise SchemaDriftError on an incompatible change.

    ``what`` names the table in the message (e.g. ``"source table orders"``); the
    message also names each column and both types. ``keep_columns``: a column of ``existing``
    missing from ``incoming`` (dropped or renamed at the source; metadata columns ``_*`` aside)
    is incompatible too, instead of arriving as NULL from then on.
    """
    current = {f.name: f.dataType for f in existing.fields}
    problems = [
        f"column {f.name}: {current[f.name].simpleString()} -> {f.dataType.simpleString()}"
        for f in incoming.fields if f.name in current and not _widens(current[f.name], f.dataType)
    ]
    if keep_columns:
        problems += [f"column {name}: dropped (a renamed column is a dropped one and a new one)"
                     for name in current if name not in incoming.fieldNames() and not name.startswith("_")]
    if problems:
        raise SchemaDriftError(f"{what} changed incompatibly ({'; '.join(problems)}); "
                               "nothing was written. Widen the type compatibly or migrate the table explicitly.")
    return [f.name for f in incoming.fields if f.name not in current]
