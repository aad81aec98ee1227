"""A layer job that gates its own batch (``--gate``, DESIGN §6): the gate runs in the layer's Spark
application, and ``lakehouse gate`` for the same interval reports that outcome as its own step,
with its own OpenLineage run, without starting Spark; when an expectation failed in the layer
job, nothing is published and ``lakehouse gate`` validates again and fails.

The module has a source database of its own and empties the lakehouse before and after it (the
catalog is shared by the test process)."""

from __future__ import annotations

import json

import pytest

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import EXIT_DETERMINISTIC
from lakehouse_core.quality import recorded_gate
from lakehouse_core.registry import identifier

pytestmark = pytest.mark.spark

DAY1 = DataInterval.parse("2023-01-02T00:00:00+07:00", "2023-01-03T00:00:00+07:00")
DAY2 = DataInterval.parse("2023-01-03T00:00:00+07:00", "2023-01-04T00:00:00+07:00")
TABLES = "orders,payment"
#: the Airflow task a gate step would run under (its OpenLineage parent)
PARENT = {"OPENLINEAGE_PARENT_NAMESPACE": "airflow", "OPENLINEAGE_PARENT_JOB_NAME": "lakehouse_daily.bronze_gate",
          "OPENLINEAGE_PARENT_RUN_ID": "01930000-0000-7000-8000-000000000001"}


@pytest.fixture(scope="module")
def shop(spark, settings, empty_lakehouse):
    """A simulated shop (two days, clock at 2023-01-03 00:00) in a database of its own, which the
    in-process ``lakehouse`` commands read, with lineage to files on."""
    from lakehouse_core.settings import get_settings
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    with pytest.MonkeyPatch.context() as env:
        env.setenv("LAKEHOUSE_SOURCE__DBNAME", "gate_in_job")
        env.setenv("LAKEHOUSE_LINEAGE__ENABLED", "true")
        get_settings.cache_clear()
        own = get_settings()
        with postgres.connect(own.source, own) as conn:
            create_source_schema(conn)
            generate(conn, scale=0.01, seed=5, days=2)
            conn.commit()
        yield own
    get_settings.cache_clear()


def lakehouse(capsys, *argv: str) -> tuple[int, str, str]:
    """``lakehouse ARGV`` in this process: exit code, stdout, stderr."""
    from lakehouse_core.cli import main

    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def interval(day: DataInterval) -> list[str]:
    return ["--interval-start", day.start.isoformat(), "--interval-end", day.end.isoformat()]


def gate_events(settings) -> list[dict]:
    """The bronze gate runs' events so far (other modules of the test process may have written some)."""
    path = settings.lineage_dir / "python-events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["job"]["name"] == "lakehouse_bronze_gate"]


def test_the_gate_step_reports_the_layer_jobs_gate_without_spark(spark, shop, capsys, monkeypatch,
                                                                 openlineage_validate):
    earlier = len(gate_events(shop))
    code, out, err = lakehouse(capsys, "bronze", "extract", "--tables", TABLES, *interval(DAY1), "--gate")
    assert code == 0, err
    assert "bronze gate: 2 of 2 tables" in out and "bronze.orders: " in out
    for table in TABLES.split(","):
        assert iceberg.batch_status(spark, identifier("bronze", table), DAY1.batch_id).published, table
    assert len(gate_events(shop)) == earlier  # the layer job reports no gate run: the gate step does

    def no_spark(*args, **kwargs):
        raise AssertionError("the gate step started a Spark application")

    monkeypatch.setattr("lakehouse_core.spark.get_spark", no_spark)
    for name, value in PARENT.items():
        monkeypatch.setenv(name, value)
    code, out, err = lakehouse(capsys, "gate", "bronze", "--tables", TABLES, *interval(DAY1))
    assert code == 0, err
    assert f"batch {DAY1.batch_id} passed and was published by the bronze job" in out
    assert "bronze.orders: " in out and "published" in out

    start, complete = gate_events(shop)[earlier:]
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == PARENT["OPENLINEAGE_PARENT_RUN_ID"]
    inputs = {d["name"].rsplit("/", 1)[-1]: d["inputFacets"] for d in complete["inputs"]}
    assert set(inputs) == {"orders", "payment"}
    assert {d["name"].rsplit("/", 1)[-1] for d in complete["outputs"]} == {"orders", "payment"}
    orders_rows = spark.table("lakehouse.bronze.orders").count()
    assert inputs["orders"]["dataQualityMetrics"]["rowCount"] == orders_rows > 0
    assertions = inputs["orders"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert openlineage_validate(complete) >= 4

    # a recorded gate answers only for the tables it decided
    assert recorded_gate(shop, "bronze", DAY1.batch_id, ["orders"]) is not None
    assert recorded_gate(shop, "bronze", DAY1.batch_id, ["orders", "customers"]) is None
    assert recorded_gate(shop, "bronze", DAY2.batch_id, ["orders"]) is None
    # once the catalog moved on from what the gate left (a commit, a rollback), the record no longer
    # answers: the gate runs and finds for itself what is published
    spark.sql("ALTER TABLE lakehouse.bronze.orders SET TBLPROPERTIES ('comment' = 'touched')")
    assert recorded_gate(shop, "bronze", DAY1.batch_id, ["orders"]) is None


def test_a_failing_gate_in_the_layer_job_publishes_nothing_and_the_gate_step_fails(spark, shop, capsys):
    with postgres.connect(shop.source, shop) as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET total_price = -5, updated_at = '2023-01-03 09:00' "
                    "WHERE id = (SELECT max(id) FROM orders) RETURNING id")
        (bad_id,) = cur.fetchone()
        cur.execute("UPDATE lakehouse_sim.clock SET sim_now = '2023-01-04 00:00'")
        conn.commit()
    orders = identifier("bronze", "orders")
    before = iceberg.snapshot_id(spark, orders)

    code, out, err = lakehouse(capsys, "bronze", "extract", "--tables", TABLES, *interval(DAY2), "--gate")
    assert code == 0, err  # the layer did its work; the gate's outcome is the gate step's
    assert "bronze gate: 1 expectation(s) failed, nothing published" in out
    assert iceberg.snapshot_id(spark, orders) == before
    assert not iceberg.batch_status(spark, identifier("bronze", "payment"), DAY2.batch_id).published
    assert recorded_gate(shop, "bronze", DAY2.batch_id, TABLES.split(",")) is None

    code, out, err = lakehouse(capsys, "gate", "bronze", "--tables", TABLES, *interval(DAY2))
    assert code == EXIT_DETERMINISTIC
    assert len(err.splitlines()) == 1 and "expect_column_values_to_be_between(total_price)" in err
    assert f'"id": {bad_id}' in err
    assert iceberg.snapshot_id(spark, orders) == before
