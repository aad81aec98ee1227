"""Every gold table, in build order: dimensions, facts, then marts (a table reads only tables before it)."""

from __future__ import annotations

from lakehouse_gold.build import GoldTable
from lakehouse_gold.dimensions import DIMENSIONS
from lakehouse_gold.facts import FACTS
from lakehouse_gold.marts import MARTS

GOLD_TABLES: dict[str, GoldTable] = {table.name: table for table in [*DIMENSIONS, *FACTS, *MARTS]}


def _check_build_order() -> None:
    built: set[str] = set()
    for table in GOLD_TABLES.values():
        missing = set(table.depends_on) - built
        if missing:
            raise RuntimeError(f"gold.{table.name} depends on {sorted(missing)}, built after it")
        built.add(table.name)


_check_build_order()
