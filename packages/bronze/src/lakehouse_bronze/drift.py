"""Schema drift at the source, checked before anything is written.

A new column lands in bronze with no code change (Iceberg schema merge); a safe
widening (int → bigint, float → double, decimal precision up at the same scale)
is applied; any other type change fails naming table, column and both types.
"""

from __future__ import annotations

from pyspark.sql.types import (DataType, DecimalType, DoubleType, FloatType, IntegerType, LongType,
                               ShortType, StructType)


class SchemaDriftError(RuntimeError):
    """A source column changed type incompatibly; nothing was written."""


def _widens(old: DataType, new: DataType) -> bool:
    if old == new:
        return True
    if isinstance(old, (ShortType, IntegerType)) and isinstance(new, (IntegerType, LongType)):
        return not (isinstance(old, IntegerType) and isinstance(new, IntegerType))
    if isinstance(old, FloatType) and isinstance(new, DoubleType):
        return True
    if isinstance(old, DecimalType) and isinstance(new, DecimalType):
        return new.scale == old.scale and new.precision >= old.precision
    return False


def check_source_schema(table: str, bronze: StructType, incoming: StructType) -> list[str]:
    """Return the new column names; raise SchemaDriftError on an incompatible change."""
    existing = {f.name: f.dataType for f in bronze.fields}
    problems = [
        f"column {f.name}: {existing[f.name].simpleString()} -> {f.dataType.simpleString()}"
        for f in incoming.fields if f.name in existing and not _widens(existing[f.name], f.dataType)
    ]
    if problems:
        raise SchemaDriftError(f"source table {table} changed incompatibly ({'; '.join(problems)}); "
                               "nothing was written. Widen the type compatibly or migrate bronze explicitly.")
    return [f.name for f in incoming.fields if f.name not in existing]
