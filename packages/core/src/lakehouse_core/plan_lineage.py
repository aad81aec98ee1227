"""Column lineage read from a DataFrame's analyzed Spark plan.

A step that checkpoints its result before writing it (gold builds, silver merges) hands the
Spark listener a plan whose input is the checkpoint, not the tables it read: the listener's
column lineage stops there. ``column_lineage(df)``, called before the checkpoint, walks the
plan instead: each output column's value is traced through projections, aggregates, windows,
unions and generators back to the columns of the Iceberg tables the plan scans (DIRECT lineage),
and the columns that filter, join, group, sort or partition its rows are traced likewise
(INDIRECT lineage of the whole dataset).

The plan comes from Spark as JSON in one call (``TreeNode.toJSON``: nodes in pre-order, each
expression a pre-order list of its nodes); the JVM is asked only for what the JSON leaves out
(a scanned table's location, a union's children's outputs).
"""

from __future__ import annotations

from collections import defaultdict
import json
from typing import Any, Iterator

from pyspark.sql import DataFrame

from lakehouse_core.lineage import ColumnLineage, ColumnSource

#: how a column's value is derived, weakest first (OpenLineage DIRECT transformation subtypes)
SUBTYPES = ("IDENTITY", "TRANSFORMATION", "AGGREGATION")
#: the plan nodes whose expressions decide which rows there are: (node, field) → INDIRECT subtype
INDIRECT = {("Filter", "condition"): "FILTER", ("Join", "condition"): "JOIN",
            ("Aggregate", "groupingExpressions"): "GROUP_BY", ("Sort", "order"): "SORT",
            ("Window", "partitionSpec"): "WINDOW", ("Window", "orderSpec"): "WINDOW"}
_ATTRIBUTE = "AttributeReference"


def column_lineage(df: DataFrame) -> ColumnLineage:
    """The column lineage of writing ``df``: for each column the Iceberg table columns its value is
    computed from (none for a constant or a column of checkpointed or local rows), with the
    strongest derivation on the way (``IDENTITY`` a copy or rename, ``AGGREGATION`` through an
    aggregate function); and the columns its rows are filtered, joined, grouped, sorted or
    windowed by."""
    plan = df._jdf.queryExecution().analyzed()
    derived: dict[int, dict[int, int]] = defaultdict(dict)  # exprId → {exprId it is computed from: subtype}
    scanned: dict[int, tuple[str, str]] = {}  # exprId → (table location, column) of a scan's output
    deciding: dict[int, set[str]] = defaultdict(set)  # exprId → INDIRECT subtypes it is used in
    for node, java in zip(json.loads(plan.toJSON()), _preorder(plan)):
        kind = _kind(node)
        for (indirect_kind, key), subtype in INDIRECT.items():
            if kind == indirect_kind:
                for expression in _expressions(node.get(key)):
                    for column in _references(expression, 0):
                        deciding[column].add(subtype)
        if kind == "DataSourceV2Relation":
            table = java.table()
            if table.getClass().getSimpleName() == "SparkTable":  # an Iceberg table
                location = table.table().location()
                for attribute in _expressions(node["output"]):
                    scanned[_id(attribute[0])] = (location, attribute[0]["name"])
        elif kind == "Union":  # its output is its first child's: the others' columns feed it by position
            first, *others = ([_id_of(a) for a in _seq(child.output())] for child in _seq(java.children()))
            for position, column in enumerate(first):
                derived[column].update({other[position]: 0 for other in others})
        elif kind == "Generate":  # explode(...) and the like: each generated column from the generator's input
            inputs = _references(node["generator"], 0)
            for attribute in _expressions(node["generatorOutput"]):
                derived[_id(attribute[0])].update(dict.fromkeys(inputs, 1))
        for value in node.values():
            for expression in _expressions(value):
                for position, part in enumerate(expression):
                    if _kind(part) == "Alias":
                        derived[_id(part)].update(_alias_sources(expression, position))

    def trace(column: int) -> dict[tuple[str, str], int]:
        """The scanned columns ``column`` is computed from, each with the strongest derivation on any
        path (a union of a DataFrame with one derived from it maps a column onto itself: a walk
        over (column, derivation so far) states, each visited once)."""
        found: dict[tuple[str, str], int] = {}
        pending, seen = [(column, 0)], set()
        while pending:
            state = pending.pop()
            if state in seen:
                continue
            seen.add(state)
            current, strength = state
            if current in scanned:  # (a union's output may be a scan's column and another child's)
                found[scanned[current]] = max(found.get(scanned[current], 0), strength)
            pending.extend((parent, max(strength, subtype)) for parent, subtype in derived.get(current, {}).items())
        return found

    fields = {attribute.name(): [ColumnSource(location, column, "computed from it", subtype=SUBTYPES[subtype])
                                 for (location, column), subtype in sorted(trace(_id_of(attribute)).items())]
              for attribute in _seq(plan.output())}
    indirect = {(location, column, subtype) for used, subtypes in deciding.items()
                for location, column in trace(used) for subtype in subtypes}
    return ColumnLineage(fields, [ColumnSource(location, column, f"rows decided by it ({subtype.lower()})",
                                               subtype=subtype, kind="INDIRECT")
                                  for location, column, subtype in sorted(indirect)])


def _preorder(plan: Any) -> Iterator[Any]:
    """The plan's nodes (JVM objects) in the order of its JSON."""
    yield plan
    for child in _seq(plan.children()):
        yield from _preorder(child)


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _kind(node: dict) -> str:
    return node.get("class", "").rsplit(".", 1)[-1]


def _id(node: dict) -> int:
    return node["exprId"]["id"]


def _id_of(attribute: Any) -> int:
    return attribute.exprId().id()


def _expressions(value: Any) -> list[list[dict]]:
    """The expressions in a field of a node's JSON: one (a pre-order list of expression nodes), a
    list of them, or none."""
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], dict):
        return [value] if "num-children" in value[0] and "class" in value[0] else []
    return [e for item in value for e in _expressions(item)]


def _subtree(expression: list[dict], position: int) -> list[dict]:
    """The nodes of the subtree rooted at ``position`` of a pre-order expression."""
    end, open_slots = position, 1
    while open_slots:
        open_slots += expression[end]["num-children"] - 1
        end += 1
    return expression[position:end]


def _references(expression: list[dict], position: int) -> set[int]:
    return {_id(part) for part in _subtree(expression, position) if _kind(part) == _ATTRIBUTE}


def _alias_sources(expression: list[dict], position: int) -> dict[int, int]:
    """What the alias at ``position`` is computed from, with how: its child's attribute references."""
    value = _subtree(expression, position)[1:]
    if len(value) == 1 and _kind(value[0]) == _ATTRIBUTE:
        subtype = 0  # a rename
    else:
        subtype = 2 if any(_kind(part) == "AggregateExpression" for part in value) else 1
    return dict.fromkeys(_references(expression, position), subtype)
