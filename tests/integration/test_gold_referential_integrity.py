"""Each gold fact's referential-integrity expectation (the ``unexpected_rows_query`` of its suite in
``expectations/gold/``) finds exactly the rows whose dimension key is not a row of that dimension,
one row per broken reference naming it and its value, and skips NULL keys.

The query reads the fact once (each row's keys stacked as (reference, value) pairs) instead of once
per dimension; this holds it to what the per-dimension anti-joins it replaced returned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lakehouse_core import quality_scan
from lakehouse_core.quality import UNEXPECTED_ROWS, resolve_tables

pytestmark = pytest.mark.spark

SUITES = sorted((Path(__file__).parents[2] / "expectations" / "gold").glob("fct_*.json"))
MISSING = 99  # a key no dimension holds (each holds 1 and 2)


class _DimensionViews:
    """The dimensions a gate would read, as temporary views of two rows each (keys 1 and 2)."""

    def __init__(self, spark):
        self.spark, self.names = spark, []

    def view(self, suite_name: str, layer: str, table: str) -> str:
        name = f"ri_test_{layer}_{table}"
        key = table.removeprefix("dim_") + "_key"
        self.spark.createDataFrame([(1,), (2,)], f"{key} long").createOrReplaceTempView(name)
        self.names.append(name)
        return name


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_a_fact_key_missing_from_its_dimension_is_named_with_its_reference(spark, path):
    suite = json.loads(path.read_text())
    (expectation,) = [e for e in suite["expectations"] if e["type"] == UNEXPECTED_ROWS]
    references = [c.strip() for c in expectation["meta"]["column"].split(",")]
    query = expectation["kwargs"]["unexpected_rows_query"]
    assert re.findall(r"\{gold\.dim_(\w+)\}", query) == [r.removesuffix("_key") for r in references]
    keys = suite["meta"]["primary_key"]
    rows = [("ok", *[1] * len(references)), ("nulls", *[None] * len(references))]
    rows += [(f"broken {r}", *[MISSING if other == r else 2 for other in references]) for r in references]
    rows.append(("broken all", *[MISSING] * len(references)))  # a row that misses every dimension: each named
    # the primary-key columns hold the row's label (their types do not matter to the query)
    batch = spark.createDataFrame([(label,) * len(keys) + tuple(values) for label, *values in rows],
                                  ", ".join([f"{k} string" for k in keys] + [f"{r} long" for r in references]))
    dimensions = _DimensionViews(spark)
    resolved = resolve_tables(suite, dimensions)
    ri_suite = {**resolved, "expectations": [e for e in resolved["expectations"] if e["type"] == UNEXPECTED_ROWS]}
    try:
        batch.createOrReplaceTempView("ri_test_batch")
        (resolved_query,) = [e["kwargs"]["unexpected_rows_query"] for e in ri_suite["expectations"]]
        found = spark.sql(resolved_query.format(batch="ri_test_batch")).collect()
        assert sorted((r["reference"], r[keys[0]], r["value"]) for r in found) == sorted(
            [(r, f"broken {r}", MISSING) for r in references] + [(r, "broken all", MISSING) for r in references])
        assert quality_scan.decide(batch, ri_suite).passed == (False,)
        assert quality_scan.decide(batch.where(f"{keys[0]} IN ('ok', 'nulls')"), ri_suite).passed == (True,)
    finally:
        for name in [*dimensions.names, "ri_test_batch"]:
            spark.catalog.dropTempView(name)
