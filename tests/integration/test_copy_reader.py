"""The COPY/Arrow fast path returns exactly what the JDBC path returns: schema, rows, NULLs, text.

A small simulated shop in its own database (``copy_test``) plus hand-written rows with the
values a CSV round trip can get wrong: NULL next to the empty string, the strings 'NULL',
'NA' and '\\N', embedded quotes, commas, newlines, carriage returns, tabs, backslashes,
unicode, JSON ``null`` vs SQL NULL, extreme numerics, microsecond timestamps and natural
keys spread over a huge range (so the key ranges are uneven and mostly empty).
"""

from __future__ import annotations

import contextlib
import re
import sys

import pytest

from lakehouse_core import postgres
from lakehouse_core.registry import Registry, TableSpec

pytestmark = pytest.mark.spark

TABLES = ("orders", "order_items", "customers", "geo_location", "customer_activity_log", "product")

TEXTS = ["", None, "NULL", "NA", "\\N", "\\.", "a,b", 'say "hi"', '"', ",", "line1\nline2", "cr\r\nlf",
         "tab\there", "back\\slash", "  padded  ", "Nguyễn Văn Á, Hà Nội", "😀 ünïcödé", "x" * 100]
TIMES = ["2023-01-01 12:34:56.123456", "2023-01-01 00:00:00.000001", "1999-12-31 23:59:59.999999",
         "2023-06-30 23:59:59.5", "1970-01-01 00:00:00", None]


def _edge_rows(cur) -> None:
    """Insert the edge-case rows (ids far above the generated ones)."""
    for i, text in enumerate(TEXTS):
        cur.execute(
            "INSERT INTO customers (id, customer_code, name, email, phone, tier, total_spent, created_at, updated_at, "
            "is_active) VALUES (%s, %s, %s, %s, %s, 'Gold', %s, %s, %s, %s)",
            (900_000 + i, f"EDGE-{i}", text, text, None if text is None else text[:20], [None, "0", "-1.50",
             "9999999999999.99"][i % 4], TIMES[i % len(TIMES)], TIMES[(i + 1) % len(TIMES)], [True, False, None][i % 3]))
    for i, text in enumerate(TEXTS):
        cur.execute(
            "INSERT INTO product (id, product_sku, name, description, price, created_at, is_active) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (900_000 + i, text if text is None else text[:50], text, text, [None, "0.00", "-1.50", "9999999999.99",
             "0.01"][i % 5], TIMES[i % len(TIMES)], [True, False, None][i % 3]))
    metadata = [None, "null", "{}", '""', '{"q": "a,\\"b\\"\\nc", "u": "ü😀", "bs": "\\\\", "n": 1.50}',
                '[1, "two", null, {"x": [true, false]}]']
    for i, doc in enumerate(metadata):
        cur.execute("INSERT INTO customer_activity_log (id, customer_id, activity_type, product_id, channel, metadata, "
                    "created_at) VALUES (%s, %s, 'view', NULL, %s, %s::jsonb, %s)",
                    (900_000 + i, 900_000 + i, TEXTS[i], doc, TIMES[i % len(TIMES)]))
    for i, ward in enumerate([-5, 0, 9_000_000_000_000, 2**62]):
        cur.execute("INSERT INTO geo_location (ward_code, ward_name, district_name, created_at, is_before) "
                    "VALUES (%s, %s, %s, %s, %s)", (ward, TEXTS[i + 6], TEXTS[i + 10], TIMES[i], None))
    for i, time in enumerate(TIMES):
        cur.execute(
            "INSERT INTO orders (id, customer_id, order_code, order_date, status, created_at, updated_at, total_price, "
            "profit, notes, confirmed_at, cancel_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (900_000 + i, 900_000 + i, f"EDGE-{i}", time, TEXTS[i + 2], time, time, "999999999.99", "-0.01",
             TEXTS[i + 8], time, TEXTS[-1 - i]))
        cur.execute("INSERT INTO order_items (id, order_id, unit_price, discount_amount, quantity, amount, is_active, "
                    "created_at) VALUES (%s, %s, %s, NULL, %s, %s, NULL, %s)",
                    (900_000 + i, 900_000 + i, "12.50", -i, "0.00", time))


@pytest.fixture(scope="module")
def copy_settings(settings):
    """Settings on the ``copy_test`` source database, filled with a small shop and the edge rows."""
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    ours = settings.model_copy(update={"source": settings.source.model_copy(update={"dbname": "copy_test"})})
    with contextlib.closing(postgres.connect(ours.source, ours)) as conn:
        create_source_schema(conn, reset=True)
        generate(conn, scale=0.01, seed=11, days=3)
        with conn.cursor() as cur:
            _edge_rows(cur)
        conn.commit()
    return ours


@pytest.fixture(scope="module")
def worker_spark(spark):
    """The shared session, with Python tasks run by this interpreter (the one that has the packages).

    PySpark starts Python workers with ``$PYSPARK_PYTHON`` or a bare ``python3`` from PATH;
    the session factory does not set it, so only this module's tasks are pointed at
    ``sys.executable`` here (no environment variable leaks into other tests' subprocesses).
    """
    context = spark.sparkContext
    previous = context.pythonExec
    context.pythonExec = sys.executable
    yield spark
    context.pythonExec = previous


@pytest.fixture
def split_small(monkeypatch):
    """Split results of more than 10 rows, so the small tables are read as several key ranges."""
    from lakehouse_bronze import copy_reader

    monkeypatch.setattr(copy_reader, "SPLIT_THRESHOLD", 10)


def _query(table: str, extra: str = "") -> str:
    return f'SELECT src_t.*{extra} FROM public."{table}" src_t'


def _both(spark, settings, spec: TableSpec, query: str, partitions: int | None = None):
    from lakehouse_bronze.copy_reader import read_source_copy
    from lakehouse_bronze.source import read_jdbc

    return read_jdbc(spark, settings, spec, query), read_source_copy(spark, settings, spec, query, partitions)


def _sorted_rows(df) -> list:
    return sorted(df.collect(), key=lambda row: [(v is None, repr(v)) for v in row])


@pytest.mark.parametrize("table", TABLES)
def test_copy_path_equals_jdbc_path(worker_spark, copy_settings, split_small, table):
    spec = Registry.load(copy_settings).get(table)
    jdbc, fast = _both(worker_spark, copy_settings, spec, _query(table), partitions=3)
    assert fast.schema == jdbc.schema  # types, nullability and field metadata
    assert fast.rdd.getNumPartitions() == 3
    expected, got = _sorted_rows(jdbc), _sorted_rows(fast)
    assert len(got) == len(expected) > 0
    assert got == expected


def test_the_source_password_reaches_the_tasks_but_no_pickled_task_or_repr(worker_spark, copy_settings):
    """A plan's tasks get the source password as a broadcast variable (the embedded server trusts
    local connections, so here the read succeeds with any password; the tasks show they got it)."""
    from pydantic import SecretStr
    from pyspark import cloudpickle

    from lakehouse_bronze.copy_reader import plan_copy, read_source_copy

    password = "copy-test-password-0451"  # pragma: allowlist secret (a test value)
    ours = copy_settings.model_copy(update={"source": copy_settings.source.model_copy(
        update={"password": SecretStr(password)})})
    spec = Registry.load(ours).get("orders")
    plan = plan_copy(ours, spec, _query("orders"))
    assert password not in repr(plan)
    assert password.encode() not in cloudpickle.dumps(plan)
    assert worker_spark.sparkContext.parallelize([0, 1], 2).map(lambda _: plan.password.get()).collect() == [
        password, password]
    assert read_source_copy(worker_spark, ours, spec, _query("orders")).count() == plan.rows > 0


def test_edge_values_arrive_intact(worker_spark, copy_settings):
    """Independent of JDBC: the edge strings and microseconds come back as inserted."""
    from datetime import datetime

    from lakehouse_bronze.copy_reader import read_source_copy

    spec = Registry.load(copy_settings).get("customers")
    rows = read_source_copy(worker_spark, copy_settings, spec, _query("customers") + " WHERE src_t.id >= 900000").collect()
    by_id = {r["id"] - 900_000: r for r in rows}
    assert [by_id[i]["name"] for i in range(len(TEXTS))] == TEXTS
    assert by_id[0]["created_at"] == datetime(2023, 1, 1, 12, 34, 56, 123456)
    assert by_id[1]["created_at"] == datetime(2023, 1, 1, 0, 0, 0, 1)
    assert str(by_id[3]["total_spent"]) == "9999999999999.99"


def test_expression_columns_and_empty_results(worker_spark, copy_settings, split_small):
    """Computed columns (as extract adds for xmin cursors) and an empty result keep the JDBC schema."""
    spec = Registry.load(copy_settings).get("orders")
    extra = (", src_t.xmin::text::bigint AS _source_xid, src_t.total_price * 2 AS doubled, "
             "'x'::varchar(3) AS tag, (src_t.id % 1000)::smallint AS small, now()::timestamptz AS at_utc")
    jdbc, fast = _both(worker_spark, copy_settings, spec, _query("orders", extra) + " WHERE src_t.id < 900010")
    assert fast.schema == jdbc.schema
    assert _sorted_rows(fast.drop("at_utc")) == _sorted_rows(jdbc.drop("at_utc"))

    jdbc, fast = _both(worker_spark, copy_settings, spec, _query("orders") + " WHERE false")
    assert fast.schema == jdbc.schema
    assert fast.count() == 0


def test_unsupported_type_fails_on_the_driver(worker_spark, copy_settings):
    from lakehouse_bronze.copy_reader import UnsupportedSourceType, read_source_copy

    spec = Registry.load(copy_settings).get("orders")
    with pytest.raises(UnsupportedSourceType, match="interval"):
        read_source_copy(worker_spark, copy_settings, spec, "SELECT id, interval '1 day' AS gap FROM public.orders")


def test_a_failing_range_fails_the_read(worker_spark, copy_settings, split_small):
    """An error in the middle of a COPY surfaces as a failed job, never as a short result."""
    from lakehouse_bronze.copy_reader import read_source_copy

    spec = Registry.load(copy_settings).get("orders")
    with contextlib.closing(postgres.connect(copy_settings.source, copy_settings)) as conn, conn.cursor() as cur:
        cur.execute("SELECT max(id) FROM public.orders WHERE id < 900000")
        last = cur.fetchone()[0]
    query = f"SELECT id, 1 / (id - {last}) AS boom FROM public.orders"
    with pytest.raises(Exception, match="division by zero"):
        read_source_copy(worker_spark, copy_settings, spec, query, 2).collect()


def test_ranges_read_on_one_connection_and_a_stopped_stream_leaves_it_usable(copy_settings, split_small, monkeypatch):
    """Landing tasks read all their ranges on one source connection; a range whose reader stops
    early is cancelled on the server, and the connection reads the next range completely."""
    from lakehouse_bronze import copy_reader
    from lakehouse_bronze.copy_reader import plan_copy

    monkeypatch.setattr(copy_reader, "BLOCK_SIZE", 1 << 12)  # many batches per range: stop mid-stream

    spec = Registry.load(copy_settings).get("customer_activity_log")
    plan = plan_copy(copy_settings, spec, _query("customer_activity_log"), num_partitions=4)
    assert len(plan.ranges) == 4
    with contextlib.closing(plan.connect()) as conn:
        backend = conn.get_backend_pid()
        stopped = plan.read_range(0, conn)
        next(stopped)  # the first batch only, then the reader goes away
        stopped.close()
        rows = [sum(batch.num_rows for batch in plan.read_range(i, conn)) for i in range(len(plan.ranges))]
        assert conn.get_backend_pid() == backend and not conn.closed
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM public.customer_activity_log")
            assert sum(rows) == cur.fetchone()[0] > 0


def test_key_ranges_cover_the_span_without_overlap():
    from lakehouse_bronze.copy_reader import key_ranges

    for low, high, parts in [(1, 10, 3), (-5, 2**62, 4), (7, 7, 4), (0, 2, 5)]:
        ranges = key_ranges(low, high, parts)
        assert ranges[0][0] == low and ranges[-1][1] == high + 1
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert all(lo < hi for lo, hi in ranges)
        assert len(ranges) == min(parts, high - low + 1)


def test_text_like_types_and_domains_equal_the_jdbc_path(worker_spark, copy_settings):
    """uuid, enum, json, jsonb and numeric columns, and domains (read as their base type): values
    and schema as the JDBC reader gives them."""
    from lakehouse_bronze.copy_reader import read_source_copy
    from lakehouse_bronze.source import read_jdbc

    with contextlib.closing(postgres.connect(copy_settings.source, copy_settings)) as conn, conn.cursor() as cur:
        cur.execute("DROP TYPE IF EXISTS copy_mood; CREATE TYPE copy_mood AS ENUM ('ok', 'sad');"
                    "DROP DOMAIN IF EXISTS copy_count; CREATE DOMAIN copy_count AS bigint CHECK (VALUE >= 0);"
                    "DROP DOMAIN IF EXISTS copy_stamp; CREATE DOMAIN copy_stamp AS timestamp")
        conn.commit()
    spec = Registry.load(copy_settings).get("orders")
    query = ("SELECT src_t.id, md5(src_t.id::text)::uuid AS u, "
             "(CASE WHEN src_t.id % 2 = 0 THEN 'ok' ELSE 'sad' END)::copy_mood AS mood, "
             "src_t.id::copy_count AS counted, src_t.created_at::copy_stamp AS stamped, "
             "jsonb_build_object('id', src_t.id, 'p', src_t.total_price) AS doc, "
             "'{\"a\":  [1, 2]}'::json AS raw_doc, src_t.total_price FROM public.orders src_t")
    jdbc = read_jdbc(worker_spark, copy_settings, spec, query)
    fast = read_source_copy(worker_spark, copy_settings, spec, query)
    assert [(f.name, f.dataType) for f in fast.schema] == [(f.name, f.dataType) for f in jdbc.schema]
    expected, got = _sorted_rows(jdbc), _sorted_rows(fast)
    assert len(got) == len(expected) > 0
    assert got == expected


@pytest.mark.parametrize("expression, value", [
    ("'infinity'::timestamp", "infinity"),
    ("'-infinity'::timestamptz", "-infinity"),
    ("'0044-03-15 BC'::date", "0044-03-15 BC"),
    ("'infinity'::date", "infinity"),
    ("'NaN'::numeric", "NaN"),
    ("0.0000000000000000001::numeric", "0.0000000000000000001"),
])
def test_values_spark_cannot_hold_fail_naming_table_column_and_value(worker_spark, copy_settings, expression, value):
    """Never a wrong or wrapped-around value: the task fails and says which value, where."""
    from lakehouse_bronze.copy_reader import read_source_copy

    spec = Registry.load(copy_settings).get("orders")
    query = f"SELECT src_t.id, CASE WHEN src_t.id = 900003 THEN {expression} END AS bad FROM public.orders src_t"
    with pytest.raises(Exception, match=rf"SourceValueError: source table orders, column bad: .*'{re.escape(value)}'"):
        read_source_copy(worker_spark, copy_settings, spec, query).collect()


def test_a_task_value_error_reaches_the_driver_as_itself(worker_spark, copy_settings):
    """Spark hands the driver a task's traceback as text; bronze raises it again as SourceValueError
    (one line in the CLI, exit 3) instead of a Py4J/Python worker traceback."""
    from lakehouse_bronze.copy_reader import SourceValueError, read_source_copy, task_errors

    spec = Registry.load(copy_settings).get("orders")
    query = "SELECT src_t.id, CASE WHEN src_t.id = 900003 THEN 'NaN'::numeric END AS bad FROM public.orders src_t"
    with pytest.raises(SourceValueError, match=r"^source table orders, column bad: .*'NaN'") as failed:
        with task_errors():
            read_source_copy(worker_spark, copy_settings, spec, query).collect()
    assert "\n" not in str(failed.value)


#: Long ``notes`` of the ``big_orders`` copy of orders (issue 10): id → SQL expression. Sizes around the
#: reader's BLOCK_SIZE (4 MiB) and far above it; COPY writes a newline, tab or backslash as two bytes.
BIG_NOTES = {
    900_100: "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 327680) g) || ' Nguyễn 😀'",  # 10 MiB +
    900_101: "repeat('y', 4194305)",  # BLOCK_SIZE + 1 bytes
    900_102: "repeat('z', 4194304)",  # BLOCK_SIZE
    900_103: "repeat('w', 4194303)",  # BLOCK_SIZE - 1
    900_104: "repeat(E'line\\n\\ttab\\\\back\\r\\\\N\\\\.ü', 400000)",  # 8.4 MB, 10.8 MB as COPY text
    900_105: "repeat(E'\\\\', 3000000)",  # 3 MB of backslashes: 6 MB as COPY text
    900_106: "''",
    900_107: "'\\N'",
}


@pytest.fixture(scope="module")
def big_orders(copy_settings):
    """``public.big_orders``: the first 40 orders (small notes), then rows whose ``notes`` are up to
    10 MiB long; returns the source's (id, octet_length, md5) of every row's ``notes``."""
    with contextlib.closing(postgres.connect(copy_settings.source, copy_settings)) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS public.big_orders; CREATE TABLE public.big_orders (LIKE public.orders);"
                    "INSERT INTO public.big_orders SELECT * FROM public.orders WHERE id < 900000 ORDER BY id LIMIT 40")
        columns = ("customer_id, payment_id, shipping_id, discount_id, location_id, logistics_partner_id, "
                   "order_channel_id, order_code || '{suffix}', order_date, status, is_active, created_at, updated_at, "
                   "total_price, profit, {notes}, confirmed_at, delivered_at, cancelled_at, cancel_reason")
        for i, (key, notes) in enumerate(BIG_NOTES.items()):
            select = columns.format(suffix="-big", notes=notes)
            cur.execute(f"INSERT INTO public.big_orders SELECT {key}, {select} "
                        "FROM public.big_orders WHERE id < 900000 ORDER BY id LIMIT 1 OFFSET %s", (i,))
        # small rows after the big ones too, so long rows sit between short ones in every range
        select = columns.format(suffix="-after", notes="notes")
        cur.execute(f"INSERT INTO public.big_orders SELECT id + 900200, {select} "
                    "FROM public.big_orders WHERE id < 900000")
        cur.execute("SELECT id, octet_length(notes), md5(notes) FROM public.big_orders")
        expected = sorted(cur.fetchall())
        conn.commit()
    assert {row[0] for row in expected} >= set(BIG_NOTES)
    assert max(row[1] or 0 for row in expected) > 10 << 20
    return expected


def _digests(ids, notes) -> list[tuple]:
    """(id, octet length, md5) of each ``notes`` value, as PostgreSQL computes them."""
    import hashlib

    return sorted((i, None, None) if n is None else (i, len(n.encode()), hashlib.md5(n.encode()).hexdigest())
                  for i, n in zip(ids, notes))


def test_values_larger_than_a_block_arrive_intact(worker_spark, copy_settings, split_small, big_orders):
    """Issue 10: a 10 MiB ``notes`` failed the read ("straddling object straddles two block boundaries");
    values of any size arrive byte for byte, and every other column as the JDBC reader gives it."""
    from pyspark.sql import functions as F

    spec = Registry.load(copy_settings).get("orders")
    jdbc, fast = _both(worker_spark, copy_settings, spec, _query("big_orders"), partitions=3)
    assert fast.rdd.getNumPartitions() == 3
    assert fast.schema == jdbc.schema
    digest = F.concat_ws(":", F.octet_length("notes"), F.md5(F.col("notes").cast("binary")))
    expected, got = (_sorted_rows(df.withColumn("notes", digest)) for df in (jdbc, fast))
    assert len(got) == len(expected) == len(big_orders)
    assert got == expected
    rows = fast.select("id", F.octet_length("notes"), F.md5(F.col("notes").cast("binary"))).collect()
    assert sorted(tuple(row) for row in rows) == big_orders


@pytest.mark.parametrize("block_size", [None, 1 << 12])
def test_read_range_reads_values_larger_than_a_block(copy_settings, split_small, big_orders, monkeypatch, block_size):
    """The landing path (``CopyPlan.read_range``): every range's batches hold the source values byte
    for byte, with the reader's block size and with a tiny one (rows spanning many chunks)."""
    from lakehouse_bronze import copy_reader
    from lakehouse_bronze.copy_reader import plan_copy

    if block_size:
        monkeypatch.setattr(copy_reader, "BLOCK_SIZE", block_size)
    spec = Registry.load(copy_settings).get("orders")
    plan = plan_copy(copy_settings, spec, _query("big_orders"), num_partitions=3)
    assert len(plan.ranges) == 3
    ids, notes = [], []
    with contextlib.closing(plan.connect()) as conn:
        for index in range(len(plan.ranges)):
            for batch in plan.read_range(index, conn):
                assert batch.schema == plan.arrow_schema
                ids += batch.column("id").to_pylist()
                notes += batch.column("notes").to_pylist()
    assert _digests(ids, notes) == big_orders


@pytest.mark.parametrize("expression, value", [
    ("'infinity'::date", "infinity"),  # refused by the CSV reader
    ("'NaN'::numeric", "NaN"),  # refused by the cast
])
def test_a_bad_value_after_long_rows_names_its_column(copy_settings, big_orders, monkeypatch, expression, value):
    """Rows read in chunks: a bad value in a later chunk, behind rows longer than a block, still
    names its table and column."""
    from lakehouse_bronze import copy_reader
    from lakehouse_bronze.copy_reader import SourceValueError, plan_copy

    monkeypatch.setattr(copy_reader, "BLOCK_SIZE", 1 << 12)
    spec = Registry.load(copy_settings).get("orders")
    query = (f"SELECT src_t.id, src_t.notes, CASE WHEN src_t.id = (SELECT max(id) FROM public.big_orders) "
             f"THEN {expression} END AS bad FROM public.big_orders src_t ORDER BY src_t.id")
    plan = plan_copy(copy_settings, spec, query)
    assert len(plan.ranges) == 1
    with pytest.raises(SourceValueError, match=rf"^source table orders, column bad: .*'{re.escape(value)}'") as failed:
        for _ in plan.read_range(0):
            pass
    assert "column ?" not in str(failed.value)
