"""The reconciliation's checksum SQL and key predicates (``lakehouse_bronze.checksums``), as text;
``tests/integration/test_bad_input.py`` runs them against PostgreSQL and Spark."""

from __future__ import annotations

from pyspark.sql import types as T

from lakehouse_bronze.checksums import checksummable, fetch_predicate, source_checksum
from lakehouse_bronze.source import quote


def test_a_key_predicate_escapes_its_values():
    assert fetch_predicate(("id",), [(1,), (22,)], quote) == 'src_t."id" = ANY(ARRAY[1, 22])'
    composite = fetch_predicate(("shop", 'we"ird'), [("it's", 1), ("x", 2)], quote)
    assert composite == """(src_t."shop", src_t."we""ird") IN (VALUES ('it''s', 1), ('x', 2))"""


def test_every_column_of_the_checksum_is_quoted_and_null_is_distinct_from_empty():
    sql = source_checksum([T.StructField('a "b"', T.StringType()), T.StructField("p", T.DecimalType(12, 2))], quote)
    assert sql.startswith("md5(CASE WHEN src_t.\"a \"\"b\"\"\" IS NULL THEN '-' ELSE ") and sql.endswith(") AS _row_md5")
    assert "round(src_t.\"p\", 2)::text" in sql


def test_a_type_without_a_canonical_rendering_is_not_checksummed():
    assert checksummable([T.StructField("id", T.LongType()), T.StructField("at", T.TimestampNTZType())])
    assert not checksummable([T.StructField("tags", T.ArrayType(T.StringType()))])
