"""Loss-free, duplicate-free bronze against a real PostgreSQL (own database ``bronze_cases``).

Each case builds its own source table, extracts batch after batch (publishing each one)
and compares bronze with the source, including a transaction left open across an
extraction. The hypothesis test does the same for random sequences of changes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from lakehouse_bronze.cursors import WatermarkError
from lakehouse_bronze.extract import MassDeleteError, extract_tables
from lakehouse_bronze.source import source_state
from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import ConfigurationError
from lakehouse_core.registry import TableSpec
from lakehouse_core.schema import SchemaDriftError

from source_cases import START, Case, open_transaction, ordered

pytestmark = pytest.mark.spark


def test_timestamp_cursor_catches_ties_updates_and_late_commits(spark, source):
    case = Case(spark, source, "updated_at")
    t = START
    case.sql(f"INSERT INTO {case.name} (v, updated_at) VALUES ('a', %s), ('b', %s)", (t + timedelta(hours=11),) * 2)
    first = case.extract()  # upper bound = clock 12:00 − 5 min safety lag
    assert first.watermark == {"kind": "timestamp", "value": "2023-01-01T11:55:00"}

    case.sql(f"INSERT INTO {case.name} (v, updated_at) VALUES ('tie', %s)", (t + timedelta(hours=11, minutes=55),))
    case.sql(f"UPDATE {case.name} SET v = 'a2', updated_at = %s WHERE v = 'a'", (t + timedelta(hours=12, minutes=30),))
    late = open_transaction(source, f"INSERT INTO {case.name} (v, updated_at) VALUES ('late', %s)",
                            (t + timedelta(hours=12, minutes=10),))
    case.set_clock(t + timedelta(hours=13))
    second = case.extract()
    assert second.rows_written == 2  # the tie and the update; 'b' was re-read and dropped
    late.commit()
    late.close()
    case.set_clock(t + timedelta(hours=14))
    third = case.extract()  # 'late' lies inside the lookback window
    assert third.rows_written == 1

    assert case.bronze_rows() == ordered([(1, "a", None, "upsert"), (2, "b", None, "upsert"), (3, "tie", None, "upsert"),
                                         (1, "a2", None, "upsert"), (4, "late", None, "upsert")])
    assert case.current_from_bronze() == case.current_in_source()


def test_xmin_cursor_catches_unbumped_updates_and_any_late_commit(spark, source):
    case = Case(spark, source, "xmin")
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('a', 1, '2020-01-01'), ('b', 1, '2020-01-01')")
    case.extract()
    # an update that leaves updated_at alone, and a commit that arrives after the next extraction
    case.sql(f"UPDATE {case.name} SET n = 2 WHERE v = 'a'")
    late = open_transaction(source, f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('late', 1, '1999-01-01')")
    assert case.extract().rows_written == 1
    late.commit()
    late.close()
    assert case.extract().rows_written == 1
    assert case.extract().rows_written == 0  # nothing new: nothing written
    assert case.current_from_bronze() == case.current_in_source()
    assert len(case.bronze_rows()) == 4


def test_serial_cursor_rereads_late_ids_within_lookback(spark, source):
    case = Case(spark, source, "id")
    case.sql(f"INSERT INTO {case.name} (v) SELECT 'r' || g FROM generate_series(1, 5) g")
    late = open_transaction(source, f"INSERT INTO {case.name} (v) VALUES ('late')")  # takes id 6
    case.sql(f"INSERT INTO {case.name} (v) VALUES ('seven')")
    assert case.extract().watermark == {"kind": "serial", "value": 7}
    late.commit()
    late.close()
    assert case.extract().rows_written == 1
    assert case.current_from_bronze() == case.current_in_source()
    assert len(case.bronze_rows()) == 7


def test_hard_deletes_are_recorded_by_key_reconciliation(spark, source):
    for load_mode, cursor, reconcile in [("incremental", "xmin", True), ("full", "xmin", False)]:
        case = Case(spark, source, cursor, load_mode=load_mode, reconcile=reconcile)
        case.sql(f"INSERT INTO {case.name} (v) SELECT 'r' || g FROM generate_series(1, 4) g")
        case.extract()
        case.sql(f"DELETE FROM {case.name} WHERE id IN (2, 3)")
        result = case.extract()
        assert (result.rows_written, result.deletes) == (0, 2), load_mode
        deletes = [r for r in case.bronze_rows() if r[3] == "delete"]
        assert [r[0] for r in deletes] == [2, 3]
        assert case.current_from_bronze() == case.current_in_source()
        case.sql(f"INSERT INTO {case.name} (id, v) VALUES (2, 'back')")  # a key deleted then re-inserted
        case.extract()
        assert case.current_from_bronze() == case.current_in_source()


def test_a_full_table_read_as_at_its_last_batch_stages_its_state_alone(spark, source):
    """A full-load table whose source rows read exactly as for its last published batch is not
    compared with bronze: the batch commits its state alone (no data file). A changed value, a
    NULL moved to another column, a delete or an insert is compared and lands; a row deleted and
    inserted again as it was leaves the source as bronze holds it."""
    case = Case(spark, source, "xmin", load_mode="full", reader="copy")
    case.sql(f"INSERT INTO {case.name} (v, n) VALUES ('a', 1), ('b', NULL), (NULL, 3), ('d', 4)")
    case.extract()  # the first load lands as files, without a fingerprint
    compared = case.extract()
    assert (compared.rows_written, compared.deletes, compared.as_last_read) == (0, 0, False)

    def data_files() -> int:
        return spark.sql(f"SELECT count(*) FROM {case.ident}.files").first()[0]

    files = data_files()
    quiet = case.extract()
    assert (quiet.rows_written, quiet.deletes, quiet.as_last_read) == (0, 0, True)
    assert data_files() == files
    summary = iceberg.summary(spark, case.ident)
    assert summary["lakehouse.source_rows"] == "4" and summary["lakehouse.landed_rows"] == "0"
    assert summary["lakehouse.batch_id"] == case.interval().batch_id

    for change, landed in [(f"UPDATE {case.name} SET n = 2 WHERE v = 'a'", (1, 0)),
                           # the same values in other places: rows ('b', 3) and (NULL, NULL)
                           (f"UPDATE {case.name} SET n = CASE WHEN v = 'b' THEN 3 ELSE NULL END WHERE v = 'b' OR v IS NULL",
                            (2, 0)),
                           (f"DELETE FROM {case.name} WHERE v = 'd'", (0, 1)),
                           (f"INSERT INTO {case.name} (v, n) VALUES ('e', 5)", (1, 0)),
                           (f"DELETE FROM {case.name} WHERE id = 5; INSERT INTO {case.name} (id, v, n) VALUES (5, 'e', 5)",
                            None)]:
        case.sql(change)
        result = case.extract()
        if landed is None:
            assert result.as_last_read, change
        else:
            assert ((result.rows_written, result.deletes), result.as_last_read) == (landed, False), change
        assert case.current_from_bronze() == case.current_in_source(), change


@pytest.mark.parametrize("cursor, reconcile", [("updated_at", False), ("id", False), ("xmin", False), ("updated_at", True)])
def test_an_incremental_window_read_as_at_its_last_batch_is_not_read(spark, source, cursor, reconcile):
    """A batch whose read window holds exactly the rows its table's last batch read (PostgreSQL's
    fingerprint of that window, and no other row in the new one; with ``reconcile_deletes``, the
    same keys in the whole table) stages its state alone without reading; an update inside the
    window that leaves the cursor alone, an insert, a new column or a reconciled delete is read
    and lands, and the batch after it is quiet again."""
    case = Case(spark, source, cursor, reconcile=reconcile)
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('a', 1, %s), ('b', NULL, NULL), ('z', 0, '2020-01-01')",
             (START + timedelta(hours=11),))
    case.extract()  # a first load: nothing to compare, no fingerprint taken
    assert not case.extract().as_last_read  # its window's fingerprint taken

    def quiet() -> None:
        result = case.extract()
        assert (result.rows_written, result.deletes, result.as_last_read) == (0, 0, True)
        summary = iceberg.summary(spark, case.ident)
        assert (summary["lakehouse.landed_rows"], summary["lakehouse.batch_id"]) == ("0", case.interval().batch_id)

    quiet()
    changes = [(f"UPDATE {case.name} SET n = 2 WHERE v = 'b'", (1, 0), ()),
               (f"INSERT INTO {case.name} (v, n) VALUES ('c', 3)", (1, 0), ()),
               (f"ALTER TABLE {case.name} ADD COLUMN w text", (0, 0), ("w",))]
    if reconcile:  # a key deleted outside the window (its cursor an hour before the watermark and more)
        changes.append((f"DELETE FROM {case.name} WHERE v = 'z'", (0, 1), ()))
    for change, landed, new_columns in changes:
        case.sql(change)
        result = case.extract()
        assert ((result.rows_written, result.deletes), result.as_last_read, result.new_columns) == \
            (landed, False, new_columns), change
        assert case.current_from_bronze() == case.current_in_source(), change
        quiet()


def test_a_mass_delete_is_held_until_confirmed(spark, source):
    """Deleting 25 of 60 keys (under ``extract.max_delete_share``) goes through; the table then
    emptied at the source is held: nothing staged, the error names the table, the counts and
    how to confirm; confirmed, the deletes land."""
    case = Case(spark, source, "xmin", load_mode="full")
    case.sql(f"INSERT INTO {case.name} (v) SELECT 'r' || g FROM generate_series(1, 60) g")
    case.extract()
    case.sql(f"DELETE FROM {case.name} WHERE id <= 25")
    assert case.extract().deletes == 25
    case.sql(f"DELETE FROM {case.name}")
    before = case.bronze_rows()
    with pytest.raises(MassDeleteError, match=rf"^bronze\.{case.name}: batch \S+ would delete 35 of the 35 keys "
                       rf"bronze holds \(100%.*--confirm-mass-deletes {case.name}"):
        case.extract()
    branch = iceberg.audit_branch(case.interval().batch_id)
    assert case.bronze_rows() == before
    assert not iceberg.branch_exists(spark, case.ident, branch) or iceberg.read_ref(spark, case.ident, branch).count() == len(before)
    assert case.extract(same_batch=True, confirm_deletes=True).deletes == 35
    assert case.current_from_bronze() == case.current_in_source() == {}


def test_confirming_the_deletes_of_a_table_outside_the_run_is_an_error(source):
    spec = TableSpec(name="orders", kind="mutable", primary_key=("id",), load_mode="full")
    with pytest.raises(ConfigurationError, match="--confirm-mass-deletes names cart, not among the tables of this run"):
        extract_tables(None, source, [spec], DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00"),
                       None, confirmed_deletes=["cart"])


def test_rerunning_a_batch_replaces_it(spark, source):
    case = Case(spark, source, "xmin")
    case.sql(f"INSERT INTO {case.name} (v) SELECT 'r' || g FROM generate_series(1, 3) g")
    case.extract()
    case.sql(f"UPDATE {case.name} SET v = 'changed' WHERE id = 1")
    case.day = 2
    for _ in range(3):  # an attempt of batch 2 that never published, retried: its branch is reset each time
        case.extract(publish=False, same_batch=True)
    iceberg.publish(spark, case.ident, iceberg.audit_branch(case.interval().batch_id))
    once = case.bronze_rows()
    snapshot = iceberg.snapshot_id(spark, case.ident)
    for _ in range(2):  # the published batch again: a no-op
        assert case.extract(same_batch=True).skipped
    assert case.bronze_rows() == once and iceberg.snapshot_id(spark, case.ident) == snapshot
    assert len(once) == 4


def test_null_cursor_rows_land_once_and_changes_land_again(spark, source):
    case = Case(spark, source, "updated_at")
    case.sql(f"INSERT INTO {case.name} (v, updated_at) VALUES ('no cursor', NULL)")
    case.extract()
    case.set_clock(case.now + timedelta(hours=1))
    assert case.extract().rows_written == 0  # re-read (NULL rule) but unchanged
    case.sql(f"UPDATE {case.name} SET v = 'still none' WHERE id = 1")
    case.set_clock(case.now + timedelta(hours=1))
    assert case.extract().rows_written == 1
    assert [r[1] for r in case.bronze_rows()] == ["no cursor", "still none"]


def test_watermark_never_moves_backwards(spark, source):
    case = Case(spark, source, "updated_at")
    case.sql(f"INSERT INTO {case.name} (v, updated_at) VALUES ('a', %s)", (START,))
    case.extract()
    case.set_clock(START)  # the source clock went back 12 hours
    with pytest.raises(WatermarkError, match=f"{case.name}.updated_at: watermark would move backwards"):
        case.extract()


@pytest.mark.parametrize("cursor", ["xmin", "id", "updated_at"])
def test_a_landed_first_load_equals_the_dataframe_first_load(spark, source, cursor):
    """The COPY reader's first load (files written by tasks, added to the branch) holds what
    the JDBC reader's first load writes, with the same schema and watermark, and later
    batches compare against the landed files: an unchanged re-read adds nothing."""
    cases = {reader: Case(spark, source, cursor, reader=reader) for reader in ("jdbc", "copy")}
    for case in cases.values():
        case.sql(f"INSERT INTO {case.name} (v, n, updated_at) VALUES ('a', 1, %s), (NULL, NULL, %s), "
                 f"('line1\nline2, \"q\"', -5, NULL), ('', 0, %s)", (START,) * 3)
    first = {reader: case.extract() for reader, case in cases.items()}
    jdbc, copy = cases["jdbc"], cases["copy"]
    assert first["copy"].rows_written == first["jdbc"].rows_written == 4
    if cursor != "xmin":  # an xmin watermark is the snapshot of its own run
        assert first["copy"].watermark == first["jdbc"].watermark
    assert spark.table(copy.ident).schema == spark.table(jdbc.ident).schema
    assert copy.bronze_rows() == jdbc.bronze_rows()
    state = iceberg.summary(spark, copy.ident)
    assert state["lakehouse.batch_id"] == copy.interval().batch_id
    assert state["lakehouse.watermark"] == iceberg.encode(first["copy"].watermark)
    files = spark.sql(f"SELECT file_path FROM {copy.ident}.files").collect()
    assert files and all(f"_batch_id={copy.interval().batch_id}/" in f.file_path for f in files)

    copy.set_clock(copy.now + timedelta(hours=1))
    assert copy.extract().rows_written == 0  # re-reads (lookback, NULL cursor) equal the landed rows
    copy.sql(f"INSERT INTO {copy.name} (v, n, updated_at) VALUES ('b', 7, %s)", (copy.now - timedelta(minutes=30),))
    if cursor != "id":  # a serial cursor reads appends only
        copy.sql(f"UPDATE {copy.name} SET n = 2, updated_at = %s WHERE v = 'a'", (copy.now - timedelta(minutes=30),))
    copy.set_clock(copy.now + timedelta(hours=1))
    assert copy.extract().rows_written == (1 if cursor == "id" else 2)
    assert copy.current_from_bronze() == copy.current_in_source()


def test_a_first_load_larger_than_a_slots_share_lands_in_key_ranges(spark, source, monkeypatch):
    """A table holding more than a task slot's share of a first load's rows is read in key ranges
    (``landing.rows_per_range``), one file each here: every row lands once."""
    from lakehouse_bronze import copy_reader, landing

    monkeypatch.setattr(copy_reader, "SPLIT_THRESHOLD", 4)  # so that 30 rows can be split
    monkeypatch.setattr(landing, "LANDING_ROWS_PER_FILE", 4)
    case = Case(spark, source, "id", reader="copy")
    case.sql(f"INSERT INTO {case.name} (v, n, updated_at) SELECT 'r' || i, i, %s FROM generate_series(1, 30) i",
             (START,))
    case.sql(f"ANALYZE {case.name}")  # the planned rows are the planner's estimate
    assert case.extract().rows_written == 30
    files = spark.sql(f"SELECT record_count FROM {case.ident}.files").collect()
    assert sorted(f.record_count for f in files) == [15, 15]  # this one table is the whole job: a slot's share each
    assert case.current_from_bronze() == case.current_in_source()


def test_schema_drift_new_column_widening_and_incompatible_change(spark, source):
    case = Case(spark, source, "xmin")
    case.sql(f"INSERT INTO {case.name} (v, n) VALUES ('a', 1)")
    case.extract()

    case.sql(f"ALTER TABLE {case.name} ADD COLUMN loyalty numeric(10,2); ALTER TABLE {case.name} ALTER COLUMN n TYPE bigint")
    case.sql(f"INSERT INTO {case.name} (v, n, loyalty) VALUES ('b', 5000000000, 1.5)")
    result = case.extract()
    assert result.new_columns == ("loyalty",)
    schema = {f.name: f.dataType.simpleString() for f in spark.table(case.ident).schema.fields}
    assert schema["loyalty"] == "decimal(10,2)" and schema["n"] == "bigint"
    assert spark.table(case.ident).where("v = 'b'").first().n == 5_000_000_000

    before = iceberg.snapshot_id(spark, case.ident)
    case.sql(f"ALTER TABLE {case.name} ALTER COLUMN loyalty TYPE text")
    case.sql(f"INSERT INTO {case.name} (v, loyalty) VALUES ('c', 'gold')")
    with pytest.raises(SchemaDriftError, match=rf"source table {case.name} changed incompatibly .*column loyalty: decimal\(10,2\) -> string"):
        case.extract()
    assert iceberg.snapshot_id(spark, case.ident) == before
    assert not iceberg.branch_exists(spark, case.ident, iceberg.audit_branch(case.interval().batch_id))


operation = st.one_of(
    st.tuples(st.just("insert"), st.integers(1, 3)),
    st.tuples(st.just("update"), st.integers(0, 20)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("extract"), st.just(0)),
)


@pytest.mark.parametrize("cursor,reader", [("xmin", "jdbc"), ("updated_at", "jdbc"), ("xmin", "copy"),
                                           ("updated_at", "copy")])
@hypothesis_settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operation, min_size=3, max_size=9))
def test_bronze_current_state_equals_source(spark, source, cursor, reader, steps):
    """For random inserts, updates and deletes interleaved with extractions, the state
    derived from bronze equals a full snapshot of the source (with either reader: with
    "copy" the first load lands as files and later loads compare against them)."""
    case = Case(spark, source, cursor, reconcile=True, reader=reader)
    for kind, arg in [*steps, ("extract", 0)]:
        ids = [r[0] for r in case.sql(f"SELECT id FROM {case.name} ORDER BY id")]
        if kind == "insert":
            case.sql(f"INSERT INTO {case.name} (v, n, updated_at) SELECT 'v' || g, g, %s FROM generate_series(1, %s) g",
                     (case.now - timedelta(minutes=30), arg))
        elif kind == "update" and ids:
            case.sql(f"UPDATE {case.name} SET n = coalesce(n, 0) + 1, updated_at = %s WHERE id = %s",
                     (case.now - timedelta(minutes=30), ids[arg % len(ids)]))
        elif kind == "delete" and ids:
            case.sql(f"DELETE FROM {case.name} WHERE id = %s", (ids[arg % len(ids)],))
        elif kind == "extract":
            case.set_clock(case.now + timedelta(hours=1))
            case.extract()
    assert case.current_from_bronze() == case.current_in_source()


def test_a_simulator_clock_without_its_row_is_an_error_not_a_crash(source):
    """The simulator clock is one row; an empty clock table names itself (it was a TypeError)."""
    from lakehouse_bronze.source import SourceSchemaError

    with postgres.connect(source.source, source) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, sim_now FROM lakehouse_sim.clock")
        saved = cur.fetchall()
        cur.execute("DELETE FROM lakehouse_sim.clock")
        conn.commit()
    try:
        with pytest.raises(SourceSchemaError, match=r"lakehouse_sim\.clock holds 0 rows; the simulator clock is one row"):
            source_state(source)
    finally:
        with postgres.connect(source.source, source) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO lakehouse_sim.clock (id, sim_now) VALUES (%s, %s)", saved)
            conn.commit()


def test_a_row_is_unchanged_only_when_key_checksum_and_new_columns_say_so(spark):
    """``changed_rows`` compares keys and checksums: a value moved into a NULL column, a float's
    -0.0, a new column's value and an older version equal to the row are each told apart
    as full rows would be."""
    from pyspark.sql import types as T

    from lakehouse_bronze.extract import changed_rows

    spec = TableSpec(name="checksums", kind="mutable", primary_key=("id",), load_mode="incremental", cursor="id")
    fields = [T.StructField("id", T.LongType()), T.StructField("a", T.LongType()), T.StructField("b", T.LongType()),
              T.StructField("x", T.DoubleType())]
    meta = [T.StructField("_batch_id", T.StringType()), T.StructField("_ingested_at", T.TimestampType()),
            T.StructField("_op", T.StringType())]
    at = START.replace(tzinfo=None)
    bronze = spark.createDataFrame([
        (1, None, 5, 0.0, "b1", at, "upsert"),  # id 1: a NULL beside a value
        (2, 7, 7, 1.0, "b1", at, "upsert"), (2, 8, 8, 1.0, "b2", at, "upsert"),  # id 2: latest is 8, 8
        (3, 1, 1, 0.0, "b1", at, "upsert"),  # id 3: 0.0 vs -0.0
        (4, 1, 1, 1.0, "b1", at, "upsert"),  # id 4: unchanged but gains a new column's value
        (5, 1, 1, 1.0, "b1", at, "upsert"),  # id 5: unchanged, the new column NULL
    ], T.StructType(fields + meta))
    extracted = spark.createDataFrame([
        (1, 5, None, 0.0, None), (2, 7, 7, 1.0, None), (3, 1, 1, -0.0, None),
        (4, 1, 1, 1.0, "new"), (5, 1, 1, 1.0, None), (6, 1, 1, 1.0, None),
    ], T.StructType(fields + [T.StructField("added", T.StringType())]))
    changed = {(r.id, r.a, r.b) for r in changed_rows(bronze, spec, extracted).collect()}
    # 1: the value moved to the NULL column; 2: equal to an older version, not the latest;
    # 4: a value in the new column; 6: a new key. Unchanged: 3 (-0.0 = 0.0) and 5.
    assert changed == {(1, 5, None), (2, 7, 7), (4, 1, 1), (6, 1, 1)}


def test_deletes_name_keys_gone_from_the_source_once_and_never_a_null_key(spark):
    """``deleted_rows``: a key live in bronze and absent from the source is deleted; a key whose
    latest version is already a delete, a key the source still holds (a later version, after a
    delete: re-inserted) and a NULL key (it names no row, even absent from the source keys'
    equality) are not."""
    from pyspark.sql import types as T

    from lakehouse_bronze.extract import deleted_rows

    spec = TableSpec(name="deletes", kind="mutable", primary_key=("id",), load_mode="incremental",
                     cursor="updated_at", reconcile_deletes=True)
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("v", T.StringType()),
                           T.StructField("_batch_id", T.StringType()), T.StructField("_ingested_at", T.TimestampType()),
                           T.StructField("_op", T.StringType())])
    at = START.replace(tzinfo=None)
    bronze = spark.createDataFrame([
        (1, "a", "b1", at, "upsert"),  # gone now
        (2, "b", "b1", at, "upsert"), (2, None, "b2", at, "delete"),  # gone, deleted before
        (3, "c", "b1", at, "upsert"), (3, None, "b2", at, "delete"), (3, "c2", "b3", at, "upsert"),  # re-inserted
        (None, "n", "b1", at, "upsert"),  # a NULL key
        (4, "d", "b1", at, "upsert"),  # still held
    ], schema)
    source_keys = spark.createDataFrame([(3,), (4,), (None,)], "id bigint")
    deleted = deleted_rows(bronze, spec, source_keys, bronze, "b4").collect()
    assert [(r.id, r.v, r._batch_id, r._op) for r in deleted] == [(1, None, "b4", "delete")]


def _scanned_data_files(df) -> dict[str, int]:
    """Run ``df`` and total its Iceberg scans' file metrics: the data files read and skipped."""
    df.collect()  # (the metrics of this plan's execution)
    plan = df._jdf.queryExecution().executedPlan()
    found = {"resultDataFiles": 0, "skippedDataFiles": 0}

    def walk(node) -> None:
        kind = node.getClass().getSimpleName()
        if kind == "AdaptiveSparkPlanExec":
            node = node.finalPhysicalPlan()
        elif kind.endswith("QueryStageExec"):  # (a leaf of the adaptive plan: what it ran is its plan)
            node = node.plan()
        if node.getClass().getSimpleName() == "BatchScanExec":
            metrics = node.metrics()
            for name in found:
                found[name] += metrics.apply(name).value()
        children = node.children().iterator()
        while children.hasNext():
            walk(children.next())

    walk(plan)
    return found


def test_comparing_new_rows_of_an_append_only_table_skips_its_older_files(spark, source):
    """``changed_rows`` bounds bronze by the keys it compares (``within_key_range``): the new ids
    of an insert-only table are compared with the file of their batch alone, the table's history
    is skipped by the files' bounds (a daily comparison does not grow with the table's age)."""
    from lakehouse_bronze.extract import changed_rows

    case = Case(spark, source, "id", kind="insert_only")
    for _ in range(3):
        case.sql(f"INSERT INTO {case.name} (v, n) SELECT 'x', g FROM generate_series(1, 10) g")
        case.extract()
    bronze = spark.read.table(case.ident)
    files = spark.sql(f"SELECT count(*) FROM {case.ident}.files").first()[0]
    newest = spark.sql(f"SELECT count(*) FROM {case.ident}.files WHERE partition._batch_id = "
                       f"'{case.interval().batch_id}'").first()[0]
    assert files >= 3 and newest >= 1
    # the last batch's rows, read again (as rows: no filter on the ids for Spark to infer on bronze)
    extracted = spark.createDataFrame(bronze.where("id > 20").collect(), bronze.schema)
    compared = changed_rows(bronze, case.spec, extracted)
    assert _scanned_data_files(compared) == {"resultDataFiles": newest, "skippedDataFiles": files - newest}
    assert compared.count() == 0  # (unchanged)
