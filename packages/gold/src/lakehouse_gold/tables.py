"""Every gold table, in build order: dimensions, then marts."""

from __future__ import annotations

from lakehouse_gold.build import GoldTable
from lakehouse_gold.dimensions import DIMENSIONS
from lakehouse_gold.marts import MARTS

GOLD_TABLES: dict[str, GoldTable] = {table.name: table for table in [*DIMENSIONS, *MARTS]}
