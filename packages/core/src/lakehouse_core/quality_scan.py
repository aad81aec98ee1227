"""A gate's decision in one scan: a suite's expectations compiled to Spark aggregates.

Great Expectations resolves a suite metric by metric, a few Spark jobs per expectation level
and table, which costs a gate more than the layer it guards when a batch is small. For the
expectation types below, ``decide`` computes what GE's Spark engine computes (the same row
domains: nulls skipped, ``ignore_row_if``, a ``spark`` ``row_condition``; the same conditions)
as one aggregate over the frame, plus one query per ``unexpected_rows_expectation``. A suite that
passes needs nothing more; a failing one, or one with anything this module does not compile
(another expectation type, ``mostly``, a column the frame lacks, bounds of another type than the
column), is left to GE's checkpoint, which decides and names the failing rows.
``tests/integration/test_quality_scan.py`` holds every compiled type to GE's own result on
frames made to pass and to fail.

Where the rows validated are whole data files (a bronze batch's: the files of its ``_batch_id``
partition), ``decide_from_file_metrics`` first tries to show the suite passing from the counts and
bounds Iceberg keeps per file, reading no row; whatever those cannot show passing is scanned
(``tests/integration/test_quality_metrics.py``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import reduce
from typing import Any, Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse_core import iceberg
from lakehouse_core.errors import ConfigurationError

#: a compiled expectation: (the rows it judges, the unexpected-row condition) or, for uniqueness,
#: (the rows it judges, the value that must not repeat there)
_Compiled = tuple[str, Column, Any]


@dataclass(frozen=True)
class ScanDecision:
    """What one scan found: the frame's rows and, per expectation of the suite (in order),
    whether it passed."""

    rows: int
    passed: tuple[bool, ...]
    #: what decided it (``meta.lakehouse_decided_by`` of the stored result)
    decided_by: str = "lakehouse_core.quality_scan"

    @property
    def success(self) -> bool:
        return all(self.passed)


class _NotCompiled(Exception):
    """An expectation this module leaves to Great Expectations."""


def _column(df: DataFrame, name: Any) -> T.StructField:
    if not isinstance(name, str) or name not in df.columns:
        raise _NotCompiled(name)
    return df.schema[name]


def _row_domain(df: DataFrame, kwargs: dict[str, Any]) -> Column:
    """The rows an expectation looks at before its own null handling: its ``row_condition``."""
    condition = kwargs.get("row_condition")
    if condition is None:
        return F.lit(True)
    if kwargs.get("condition_parser") != "spark" or not isinstance(condition, str):
        raise _NotCompiled("row_condition")
    return F.expr(condition)


def _comparable(field: T.StructField, value: Any) -> bool:
    """Whether GE's Spark engine compares ``field`` with ``value`` as this scan does (numbers with
    numbers, dates and timestamps with ISO strings or dates)."""
    if isinstance(field.dataType, T.NumericType):
        return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)
    if isinstance(field.dataType, (T.DateType, T.TimestampType, T.TimestampNTZType)):
        return isinstance(value, (str, date, datetime))
    return isinstance(field.dataType, T.StringType) and isinstance(value, str)


def _between(df: DataFrame, kwargs: dict[str, Any]) -> Column:
    field = _column(df, kwargs.get("column"))
    return _bounded(F.col(field.name), kwargs, lambda value: _comparable(field, value))


def _lengths(df: DataFrame, kwargs: dict[str, Any]) -> Column:
    field = _column(df, kwargs.get("column"))
    if not isinstance(field.dataType, T.StringType):
        raise _NotCompiled("lengths")
    return _bounded(F.length(F.col(field.name)), kwargs,
                    lambda value: isinstance(value, int) and not isinstance(value, bool))


def _bounded(column: Column, kwargs: dict[str, Any], comparable: Callable[[Any], bool]) -> Column:
    """``column`` within ``min_value``/``max_value`` (``strict_min``/``strict_max``: excluded)."""
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    bounds = [v for v in (low, high) if v is not None]
    if not bounds or not all(comparable(v) for v in bounds):
        raise _NotCompiled("bounds")  # (GE raises for some of these: let it report them)
    try:
        if len(bounds) == 2 and low > high:
            raise _NotCompiled("bounds")
    except TypeError:  # (a date and a string)
        raise _NotCompiled("bounds") from None
    expected = F.lit(True)
    if low is not None:
        expected = expected & (column > F.lit(low) if kwargs.get("strict_min") else column >= F.lit(low))
    if high is not None:
        expected = expected & (column < F.lit(high) if kwargs.get("strict_max") else column <= F.lit(high))
    return expected


def _regex(df: DataFrame, kwargs: dict[str, Any]) -> Column:
    field = _column(df, kwargs.get("column"))
    if not isinstance(field.dataType, T.StringType) or not isinstance(kwargs.get("regex"), str):
        raise _NotCompiled("regex")
    return F.col(field.name).rlike(kwargs["regex"])


def _in_set(df: DataFrame, kwargs: dict[str, Any]) -> Column:
    column = F.col(_column(df, kwargs.get("column")).name)
    values = kwargs.get("value_set")
    if values is None:
        return F.lit(True)
    if not isinstance(values, list):
        raise _NotCompiled("value_set")
    return column.isin(values)


#: column map expectations: the condition a judged (non-null) value meets
_COLUMN_CONDITIONS: dict[str, Callable[[DataFrame, dict[str, Any]], Column]] = {
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_not_be_in_set": lambda df, kw: ~_in_set(df, kw),
    "expect_column_values_to_be_between": _between,
    "expect_column_value_lengths_to_be_between": _lengths,
    "expect_column_values_to_match_regex": _regex,
    "expect_column_values_to_not_match_regex": lambda df, kw: ~_regex(df, kw),
}

_PAIR_IGNORED = {"both_values_are_missing": lambda a, b: a.isNull() & b.isNull(),
                 "either_value_is_missing": lambda a, b: a.isNull() | b.isNull(),
                 "neither": lambda a, b: F.lit(False)}
_LIST_IGNORED = {"all_values_are_missing": lambda cs: reduce(lambda x, y: x & y, [c.isNull() for c in cs]),
                 "any_value_is_missing": lambda cs: reduce(lambda x, y: x | y, [c.isNull() for c in cs]),
                 "never": lambda cs: F.lit(False)}


def _compile(df: DataFrame, expectation: dict[str, Any]) -> _Compiled:
    """``("rows", domain, unexpected)``: the rows of ``domain`` meeting ``unexpected`` fail it;
    ``("unique", domain, value)``: ``value`` (a column, or a struct of the compound's columns)
    must not repeat within ``domain``;
    ``("schema", passed, None)``: decided from the schema. Raises _NotCompiled."""
    kind, kwargs = expectation.get("type"), dict(expectation.get("kwargs") or {})
    if "mostly" in kwargs:
        raise _NotCompiled("mostly")
    domain = _row_domain(df, kwargs)
    if kind == "expect_column_values_to_be_in_type_list":
        field = _column(df, kwargs.get("column"))
        names = kwargs.get("type_list")
        if names is None:
            return "schema", True, None
        known = [getattr(T, n) for n in names if isinstance(n, str) and isinstance(getattr(T, n, None), type)]
        if not known:
            raise _NotCompiled("type_list")  # (GE raises: no recognised type)
        return "schema", isinstance(field.dataType, tuple(known)), None
    if kind == "expect_column_values_to_not_be_null":
        return "rows", domain, F.col(_column(df, kwargs.get("column")).name).isNull()
    if kind in _COLUMN_CONDITIONS:
        column = F.col(_column(df, kwargs.get("column")).name)
        return "rows", domain & column.isNotNull(), ~_COLUMN_CONDITIONS[kind](df, kwargs)
    if kind == "expect_column_values_to_be_unique":
        column = F.col(_column(df, kwargs.get("column")).name)
        return "unique", domain & column.isNotNull(), column  # (its values as they are: cheaper
        # to hash and compare than a struct of one field, and NULL is outside the domain)
    if kind in ("expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"):
        a, b = (F.col(_column(df, kwargs.get(k)).name) for k in ("column_A", "column_B"))
        ignored = _PAIR_IGNORED.get(kwargs.get("ignore_row_if", "both_values_are_missing"))
        if ignored is None:
            raise _NotCompiled("ignore_row_if")
        if kind == "expect_column_pair_values_to_be_equal":
            expected = a.eqNullSafe(b)
        else:
            expected = (a >= b) | a.eqNullSafe(b) if kwargs.get("or_equal") else a > b
        return "rows", domain & ~ignored(a, b), ~expected
    if kind == "expect_compound_columns_to_be_unique":
        names = kwargs.get("column_list")
        if not isinstance(names, list) or not names:
            raise _NotCompiled("column_list")
        columns = [F.col(_column(df, n).name) for n in names]
        ignored = _LIST_IGNORED.get(kwargs.get("ignore_row_if", "all_values_are_missing"))
        if ignored is None:
            raise _NotCompiled("ignore_row_if")
        return "unique", domain & ~ignored(columns), F.struct(*columns)  # (a NULL field repeats too)
    raise _NotCompiled(kind)


def unexpected_rows(df: DataFrame, rule: dict[str, Any]) -> Column:
    """Whether a row of ``df`` breaks the column row rule ``rule`` (a column map expectation), as
    Great Expectations finds its unexpected rows: NULL breaks only ``not_be_null``.

    Raises ConfigurationError naming the rule when this module does not compile it."""
    try:
        kind, domain, unexpected = _compile(df, rule)
    except _NotCompiled as exc:
        raise ConfigurationError(f"row rule {rule.get('type')}({(rule.get('kwargs') or {}).get('column')}): "
                                 f"cannot be applied to a row ({exc})") from None
    if kind != "rows" or "column" not in rule.get("kwargs", {}):
        raise ConfigurationError(f"row rule {rule.get('type')}: not a column row rule")
    return domain & unexpected


def decide(df: DataFrame, suite: dict[str, Any]) -> ScanDecision | None:
    """The outcome of every expectation of ``suite`` on ``df`` in one aggregate (and one query
    per ``unexpected_rows_expectation``, reading the frame as ``{batch}``); None when an
    expectation is one GE must judge (see the module's docstring)."""
    try:
        compiled = [None if e.get("type") == "unexpected_rows_expectation" else _compile(df, e)
                    for e in suite["expectations"]]
    except _NotCompiled:
        return None
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for number, entry in enumerate(compiled):
        if entry is None or entry[0] == "schema":
            continue
        kind, domain, detail = entry
        if kind == "rows":  # (a NULL condition is not unexpected: GE counts `condition == True`)
            aggregates.append(F.sum(F.when(domain & detail, 1).otherwise(0)).alias(f"e{number}"))
        else:  # unique: as many distinct values as judged rows
            judged = F.when(domain, detail)
            aggregates.append((F.count(judged) - F.count_distinct(judged)).alias(f"e{number}"))
    counts = df.agg(*aggregates).first().asDict()
    view = f"lakehouse_scan_{uuid.uuid4().hex}"  # the frame as ``{batch}`` in queries

    def passed(number: int, entry: _Compiled | None, expectation: dict[str, Any]) -> bool:
        if entry is None:  # unexpected_rows_expectation: its query returns no row
            return df.sparkSession.sql(expectation["kwargs"]["unexpected_rows_query"].format(batch=view)).isEmpty()
        if entry[0] == "schema":
            return bool(entry[1])
        return not counts[f"e{number}"]

    df.createOrReplaceTempView(view)
    try:
        outcomes = tuple(passed(n, entry, e) for n, (entry, e) in enumerate(zip(compiled, suite["expectations"])))
    finally:
        df.sparkSession.catalog.dropTempView(view)
    return ScanDecision(int(counts["rows"]), outcomes)


#: ``decide_from_file_metrics``'s mark on what it decided
FILE_METRICS = "lakehouse_core.quality_scan (Iceberg file metrics)"


def _passes_on_metrics(field: T.StructField, expectation: dict[str, Any], metrics: "iceberg.ColumnMetrics") -> bool:
    """Whether ``metrics`` (of the rows validated) show that every row passes ``expectation``,
    one of the column checks ``decide_from_file_metrics`` takes: no null, each file's bounds
    within, or each file's values one value of the set (lower bound = upper bound: Iceberg
    truncates a long string's bounds so that they differ)."""
    kind, kwargs = expectation["type"], expectation["kwargs"]
    if kind == "expect_column_values_to_not_be_null":
        return metrics.nulls == 0
    if metrics.bounds is None:
        return False
    if kind == "expect_column_values_to_be_in_set":
        values = kwargs.get("value_set")
        return (isinstance(values, list) and isinstance(field.dataType, (T.StringType, T.IntegralType))
                and all(low == high and low in values for low, high in metrics.bounds))
    if not isinstance(field.dataType, (T.IntegralType, T.DecimalType)):  # (exact bounds, no NaN)
        return False
    minimum, maximum = kwargs.get("min_value"), kwargs.get("max_value")
    given = [v for v in (minimum, maximum) if v is not None]
    if not given or not all(_comparable(field, v) for v in given) or (len(given) == 2 and minimum > maximum):
        return False  # (what the scan leaves to GE too)
    strict_min, strict_max = kwargs.get("strict_min"), kwargs.get("strict_max")
    return all((minimum is None or (low > minimum if strict_min else low >= minimum))
               and (maximum is None or (high < maximum if strict_max else high <= maximum))
               for low, high in metrics.bounds)


#: the column checks decided from file metrics (a pass only)
_METRIC_CHECKS = ("expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
                  "expect_column_values_to_be_between")


def decide_from_file_metrics(df: DataFrame, suite: dict[str, Any], ident: str, ref: str, column: str,
                             value: str) -> ScanDecision | None:
    """Every expectation of ``suite`` passing on the rows of ``df`` (``ident`` at ``ref``) where
    ``column`` = ``value``, shown by the metrics Iceberg keeps of the data files holding them
    (``iceberg.partition_file_metrics``: a bronze batch's files), without reading a row; None
    when they do not show it, for the scan to decide (``decide``): a suite with another type of
    expectation, a ``row_condition`` or ``mostly``, a column without metrics or bounds, a check
    failing or not provable on them, rows that are not whole files."""
    checked: list[tuple[T.StructField, dict[str, Any]]] = []
    for expectation in suite["expectations"]:
        kind, kwargs = expectation.get("type"), expectation.get("kwargs") or {}
        if kind == "expect_column_values_to_be_in_type_list":  # decided on the schema
            try:
                if not _compile(df, expectation)[1]:
                    return None
            except _NotCompiled:
                return None
        elif (kind in _METRIC_CHECKS and "mostly" not in kwargs and "row_condition" not in kwargs
              and kwargs.get("column") in df.columns):
            checked.append((df.schema[kwargs["column"]], expectation))
        else:
            return None
    found = iceberg.partition_file_metrics(df.sparkSession, ident, ref, column, value,
                                           sorted({field.name for field, _ in checked}))
    if found is None or not all(field.name in found.columns and _passes_on_metrics(field, e, found.columns[field.name])
                                for field, e in checked):
        return None
    return ScanDecision(found.rows, (True,) * len(suite["expectations"]), FILE_METRICS)
