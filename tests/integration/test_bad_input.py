"""The bad-input corpus: a source anomaly applied to a live source between two runs, one case each.

Each case gives a source table of its own (``source_cases.Case``, in the ``bronze_cases``
database) to bronze, batch after batch, applies one anomaly between two batches and checks that
bronze either carries it exactly (bronze's current state equals the source's: nothing lost,
nothing doubled) or refuses the batch before anything is published, with an error naming the
table, the column and the value. The anomalies other modules apply are listed in
``tests/README.md`` (bad-input corpus) with the test of each.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from lakehouse_bronze.extract import DriftError
from lakehouse_bronze.source import SourceSchemaError, SourceValueError
from lakehouse_core import iceberg
from lakehouse_core.quality import QualityGateFailed, run_gate
from lakehouse_core.registry import identifier
from lakehouse_core.schema import SchemaDriftError, column

from lakehouse_silver.transform import transform_table
from source_cases import Case

pytestmark = pytest.mark.spark


def _nothing_published(case: Case, before: int | None) -> None:
    assert iceberg.snapshot_id(case.spark, case.ident) == before
    assert not iceberg.branch_exists(case.spark, case.ident, iceberg.audit_branch(case.interval().batch_id))


def _first_batch(case: Case) -> int | None:
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('a', 1, %s), ('b', 2, %s)",
             (case.now - timedelta(hours=1),) * 2)
    case.extract()
    return iceberg.snapshot_id(case.spark, case.ident)


def _next_day(case: Case) -> None:
    case.set_clock(case.now + timedelta(days=1))


def test_a_timestamp_far_in_the_future_is_deferred_counted_and_lands_when_due(spark, source):
    case = Case(spark, source, "updated_at")
    _first_batch(case)
    due = case.now + timedelta(days=3)
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('from the future', 3, %s)", (due,))
    _next_day(case)
    held = case.extract()
    assert (held.deferred.rows, held.deferred.future) == (1, 1)
    assert "from the future" not in {r[1] for r in case.bronze_rows()}
    assert iceberg.summary(spark, case.ident)["lakehouse.future_rows"] == "1"
    for _ in range(3):
        _next_day(case)
        case.extract()
    assert case.current_from_bronze() == case.current_in_source()
    assert [r[1] for r in case.bronze_rows()].count("from the future") == 1


def test_a_cursor_moved_backwards_within_the_lookback_is_caught(spark, source):
    case = Case(spark, source, "updated_at")
    _first_batch(case)
    _next_day(case)
    case.extract()
    watermark = case.now - timedelta(seconds=case.settings.extract.safety_lag_seconds)
    back = watermark - timedelta(seconds=case.settings.extract.lookback_seconds) / 2  # (before the watermark)
    case.sql(f"UPDATE {case.name} SET n = 20, updated_at = %s WHERE v = 'b'", (back,))
    case.set_clock(case.now + timedelta(minutes=30))
    assert case.extract().rows_written == 1
    assert case.current_from_bronze() == case.current_in_source()


@pytest.mark.parametrize("reader", ["jdbc", "copy"])
def test_a_10_mb_text_value_lands_intact(spark, source, reader):
    case = Case(spark, source, "xmin", reader=reader)
    case.sql(f"INSERT INTO {case.name} (v, n) VALUES (repeat('0123456789', 1048576) || '✓', 1)")
    case.extract()  # the first load (reader "copy": landed from COPY as files)
    case.sql(f"INSERT INTO {case.name} (v, n) VALUES (repeat('ab', 5242880), 2)")
    case.extract()
    source_digests = dict(case.sql(f"SELECT n, md5(v) FROM {case.name}"))
    landed = spark.table(case.ident).selectExpr("n", "md5(v) AS digest", "length(v) AS chars").collect()
    assert {r.n: r.digest for r in landed} == source_digests
    assert sorted(r.chars for r in landed) == [10 * 1048576, 10 * 1048576 + 1]


UNUSUAL_TEXT = ["👩‍👩‍👧‍👦 family", "e\u0301 combining", "\u202eright to left", "zero\u200bwidth", "\u00a0no-break",
                "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "tab\tnew\nline\rreturn", "back\\slash", '"quoted, comma"', "\\N", "", " ",
                "中文 العربية עברית", "\U0010fffd private use", "\ufeffbyte order mark"]


@pytest.mark.parametrize("reader", ["jdbc", "copy"])
def test_emoji_and_unusual_unicode_land_byte_for_byte(spark, source, reader):
    case = Case(spark, source, "xmin", reader=reader)
    for number, text in enumerate(UNUSUAL_TEXT):
        case.sql(f"INSERT INTO {case.name} (v, n) VALUES (%s, %s)", (text, number))
    case.extract()
    case.sql(f"UPDATE {case.name} SET v = v || '·' WHERE mod(n, 2) = 0")
    case.extract()
    landed = {r.n: r.v for r in case.spark.table(case.ident).select("n", "v", "_batch_id").collect()
              if r._batch_id == case.interval().batch_id or r.n % 2}
    expected = {n: t + ("·" if n % 2 == 0 else "") for n, t in enumerate(UNUSUAL_TEXT)}
    assert {n: v.encode() for n, v in landed.items()} == {n: v.encode() for n, v in expected.items()}


def test_a_number_beyond_the_bronze_type_is_refused_naming_table_column_and_value(spark, source):
    case = Case(spark, source, "xmin")
    case.sql(f"ALTER TABLE {case.name} ADD COLUMN amount numeric(12, 2)")
    _first_batch(case)
    before = iceberg.snapshot_id(spark, case.ident)
    case.sql(f"ALTER TABLE {case.name} ALTER COLUMN amount TYPE numeric")
    case.sql(f"INSERT INTO {case.name} (v, amount) VALUES ('huge', 1e40)")
    with pytest.raises(SourceValueError, match=rf"source table {case.name}, column amount: value 1{'0' * 40} "
                                               r"does not fit decimal\(38,18\)"):
        case.extract()
    _nothing_published(case, before)


def test_a_key_deleted_and_inserted_again_is_current(spark, source):
    case = Case(spark, source, "xmin", reconcile=True)
    _first_batch(case)
    case.sql(f"DELETE FROM {case.name} WHERE v = 'a'")
    case.extract()
    assert 1 not in case.current_from_bronze()
    case.sql(f"INSERT INTO {case.name} (id, v, n) VALUES (1, 'a again', 10)")
    case.sql(f"DELETE FROM {case.name} WHERE v = 'b'")
    case.sql(f"INSERT INTO {case.name} (id, v, n) VALUES (2, 'b again', 20)")  # (gone and back within a batch)
    case.extract()
    assert case.current_from_bronze() == case.current_in_source() == {1: ("a again", 10), 2: ("b again", 20)}


@pytest.mark.parametrize(("change", "message"), [
    ("DROP COLUMN n", r"column n: dropped"),
    ("RENAME COLUMN n TO quantity", r"column n: dropped"),
    ("ALTER COLUMN n TYPE numeric(3,0)", r"column n: int -> decimal\(3,0\)"),
    ("ALTER COLUMN v TYPE integer USING length(v)", r"column v: string -> int"),
], ids=["dropped", "renamed", "narrowed", "retyped"])
def test_a_column_dropped_renamed_or_narrowed_is_refused_naming_it(spark, source, change, message):
    case = Case(spark, source, "xmin")
    before = _first_batch(case)
    case.sql(f"ALTER TABLE {case.name} {change}")
    case.sql(f"INSERT INTO {case.name} (v) VALUES ('7')" if "v TYPE" not in change
             else f"INSERT INTO {case.name} (v) VALUES (7)")
    with pytest.raises(SchemaDriftError, match=rf"source table {case.name} changed incompatibly .*{message}"):
        case.extract()
    _nothing_published(case, before)


def test_a_table_dropped_from_the_source_is_refused_naming_it(spark, source):
    case = Case(spark, source, "xmin")
    before = _first_batch(case)
    case.sql(f"DROP TABLE {case.name}")
    with pytest.raises(SourceSchemaError, match=f"source table {case.name} does not exist"):
        case.extract()
    _nothing_published(case, before)


@pytest.mark.parametrize(("rows", "landed", "failure"), [
    ("(NULL, 'no key')", ["no key"], "expect_column_values_to_not_be_null(id) failed on 1 row(s)"),
    ("(1, 'same key'), (1, 'same key again')", ["same key", "same key again"],
     "expect_compound_columns_to_be_unique(None) failed on 2 row(s)"),
], ids=["null-key", "duplicate-key"])
def test_a_null_or_duplicate_key_stops_the_bronze_gate_naming_it(spark, source, tmp_path, rows, landed, failure):
    """Once the source's key constraint is gone: bronze lands what the source holds (nothing
    lost), and its gate refuses the batch naming the key column and the rows."""
    suites = tmp_path / "bronze"
    suites.mkdir()
    case = Case(spark, source.model_copy(update={"expectations_dir": tmp_path}), "xmin")
    suites.joinpath(f"{case.name}.json").write_text(
        '{"name": "x", "meta": {"primary_key": ["id", "_batch_id"]}, "expectations": ['
        '{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},'
        '{"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "_batch_id"]}}]}')
    before = _first_batch(case)
    case.sql(f"ALTER TABLE {case.name} DROP CONSTRAINT {case.name}_pkey, ALTER COLUMN id DROP NOT NULL")
    case.sql(f"INSERT INTO {case.name} (id, v) VALUES {rows}")
    case.extract(publish=False)
    batch = case.interval().batch_id
    staged = spark.read.option("branch", iceberg.audit_branch(batch)).table(case.ident).where(f"_batch_id = '{batch}'")
    assert sorted(r.v for r in staged.collect()) == landed
    with pytest.raises(QualityGateFailed) as failed:
        run_gate(spark, case.settings, "bronze", batch, tables=[case.name])
    assert f"bronze.{case.name}: {failure}" in str(failed.value)
    assert iceberg.snapshot_id(spark, case.ident) == before


def _extract_settings(case: Case, **values) -> None:
    case.settings = case.settings.model_copy(update={"extract": case.settings.extract.model_copy(update=values)})


def _reconciling(case: Case) -> None:
    """From now on every batch of ``case`` reads its table whole and compares it with bronze."""
    _extract_settings(case, reconcile_every_days=1)


@pytest.mark.parametrize("cursor", ["updated_at", "id"])
def test_a_change_the_cursor_cannot_see_is_found_by_the_reconciliation(spark, source, cursor):
    """A timestamp cursor moved back past the lookback, or an update of a row a serial cursor
    read long ago: the incremental batch misses it, the next reconciling batch lands it (and
    nothing else twice), and the watermark does not move back."""
    case = Case(spark, source, cursor)
    _extract_settings(case, lookback_ids=0)  # (a serial cursor re-reads no id before its watermark)
    _first_batch(case)
    _next_day(case)
    case.extract()
    watermark = iceberg.summary(spark, case.ident)["lakehouse.watermark"]
    case.sql(f"UPDATE {case.name} SET n = 20, updated_at = %s WHERE v = 'a'", (case.now - timedelta(days=30),))
    _next_day(case)
    case.extract()
    assert case.current_from_bronze() != case.current_in_source()  # missed: what the reconciliation is for
    _reconciling(case)
    _next_day(case)
    assert case.extract().rows_written == 1
    assert case.current_from_bronze() == case.current_in_source()
    after = iceberg.summary(spark, case.ident)["lakehouse.watermark"]
    assert after >= watermark if cursor == "updated_at" else after == watermark
    assert case.extract(same_batch=True).rows_written == 0  # (its rerun: published already, nothing lands again)


#: a column of every type the readers map (``lakehouse_bronze.copy_reader.map_type``), and rows of
#: values whose text could be mistaken for another's (separators, an empty string against NULL)
EVERY_TYPE = ("small int2", "big int8", "price numeric(12,2)", "ratio numeric", "score real", "weight float8",
              "flag bool", "code char(5)", "label varchar(20)", "doc jsonb", "day date", "seen timestamptz")
EVERY_TYPE_ROWS = [
    ("a", 1, 7, 9000000000, "12.50", "0.333", 0.1, 2.5, True, "ab", "3:x-", '{"k": [1, "é"]}', "2023-01-01",
     "2023-01-01 10:00:00.123456+07"),
    ("b", 2, None, None, "0.00", None, None, -1.25, False, None, "", None, None, None),
    ("🎉 émoji, \\ and 'quotes'\nnew line", None, -1, -1, "-0.01", "100", 1e10, 0.0, None, "a b", "-", "[]",
     "1999-12-31", "2023-06-30 23:59:59.999999+00"),
]


@pytest.mark.parametrize("reader", ["jdbc", "copy"])
def test_a_reconciliation_of_every_column_type_lands_only_what_changed(spark, source, reader):
    """With a column of every type the readers map, NULLs and unusual text, a reconciling batch of
    a table equal to bronze lands nothing; an update its cursor cannot see lands that row alone and
    a delete its key. (A smallint column stays one: Iceberg holds it as int.)"""
    case = Case(spark, source, "updated_at", reader=reader, reconcile=True)
    case.sql(f"ALTER TABLE {case.name} " + ", ".join(f"ADD COLUMN {c}" for c in EVERY_TYPE))
    names = ", ".join(c.split()[0] for c in EVERY_TYPE)
    values = ", ".join(["%s"] * (3 + len(EVERY_TYPE)))
    for row in EVERY_TYPE_ROWS:
        case.sql(f"INSERT INTO {case.name} (v, n, updated_at, {names}) VALUES ({values})",
                 (row[0], row[1], case.now - timedelta(days=10), *row[2:]))  # (before the cursor's lookback)
    case.extract()
    _reconciling(case)
    _next_day(case)
    result = case.extract()
    assert (result.rows_written, result.deletes) == (0, 0)
    case.sql(f"UPDATE {case.name} SET price = price + 1, seen = seen + interval '1 microsecond' WHERE v = 'a'")
    case.sql(f"DELETE FROM {case.name} WHERE v = 'b'")
    _next_day(case)
    result = case.extract()
    assert (result.rows_written, result.deletes) == (1, 1)
    assert case.current_from_bronze() == case.current_in_source()


@pytest.mark.parametrize(("change", "drift"), [
    ("DELETE FROM {table} WHERE v = 'a'", "deleted"),
    ("UPDATE {table} SET n = 10 WHERE v = 'a'", "changed"),
], ids=["delete", "update"])
def test_an_insert_only_table_changed_at_the_source_is_refused_by_the_reconciliation(spark, source, change, drift):
    case = Case(spark, source, "id", kind="insert_only")
    _extract_settings(case, lookback_ids=0)
    _first_batch(case)
    case.sql(change.format(table=case.name))
    case.sql(f"INSERT INTO {case.name} (v, n) VALUES ('c', 3)")
    _next_day(case)
    case.extract()  # incremental: the new row only
    assert {v for v, _ in case.current_from_bronze().values()} == {"a", "b", "c"}
    _reconciling(case)
    before = iceberg.snapshot_id(spark, case.ident)
    _next_day(case)
    with pytest.raises(DriftError, match=rf"bronze.{case.name}: the registry calls it insert_only, .*"
                                         rf"\{{'id': 1\}} \({drift}\)"):
        case.extract()
    _nothing_published(case, before)


def test_an_insert_a_serial_cursor_missed_is_landed_by_the_reconciliation(spark, source):
    case = Case(spark, source, "id", kind="insert_only")
    _first_batch(case)
    case.sql(f"INSERT INTO {case.name} (id, v, n) VALUES (100000, 'far ahead', 1)")
    _next_day(case)
    case.extract()
    case.sql(f"INSERT INTO {case.name} (id, v, n) VALUES (50, 'committed late, far behind', 2)")
    _next_day(case)
    case.extract()
    assert 50 not in case.current_from_bronze()
    _reconciling(case)
    _next_day(case)
    assert case.extract().rows_written == 1
    assert case.current_from_bronze() == case.current_in_source()


ODD_NAME = 'odd "quoted" `back`ticked` Name; DROP TABLE x'


def _to_silver(case: Case) -> None:
    """Merge the case's latest bronze batch into silver and publish it."""
    interval = case.interval()
    transform_table(case.spark, case.settings, case.spec, interval)
    iceberg.publish(case.spark, identifier("silver", case.name), iceberg.audit_branch(interval.batch_id))


@pytest.mark.parametrize("reader", ["jdbc", "copy"])
def test_a_column_with_quotes_and_backticks_in_its_name_lands_under_that_name(spark, source, reader):
    """A source column named with double quotes, backticks, spaces, capitals and a semicolon (there
    from the first load, and one added between two batches) is quoted and escaped everywhere: it
    lands in bronze and silver under its own name with its values, and no statement breaks on it."""
    case = Case(spark, source, "updated_at", reader=reader)
    odd, new = ('"' + name.replace('"', '""') + '"' for name in (ODD_NAME, ODD_NAME.replace("odd", "new")))
    case.sql(f"ALTER TABLE {case.name} ADD COLUMN {odd} text")
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at, {odd}) VALUES ('a', 1, %s, 'first')",
             (case.now - timedelta(hours=1),))
    case.extract()
    _to_silver(case)
    case.sql(f"ALTER TABLE {case.name} ADD COLUMN {new} int")
    _next_day(case)
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at, {odd}, {new}) VALUES ('b', 2, %s, 'second', 7)",
             (case.now - timedelta(hours=1),))
    case.sql(f"UPDATE {case.name} SET {odd} = 'first, changed', updated_at = %s WHERE v = 'a'",
             (case.now - timedelta(hours=1),))
    case.extract()
    _to_silver(case)
    assert case.current_from_bronze() == case.current_in_source()
    for layer, expected in (("bronze", {("a", "first", None), ("a", "first, changed", None), ("b", "second", 7)}),
                            ("silver", {("a", "first, changed", None), ("b", "second", 7)})):
        table = spark.read.table(identifier(layer, case.name))
        rows = table.select("v", column(ODD_NAME), column(ODD_NAME.replace("odd", "new"))).collect()
        assert {tuple(r) for r in rows} == expected, layer
