"""End to end: the registry-generated DAG runs the slice under Airflow 3 from the built wheels.

Runs ``orchestration/run_local.py`` (``dag.test()``, SQLite metadata DB) in a child
process with its own state folder, then checks every task instance and validates
every OpenLineage event against the official schemas in ``../shared/openlineage-spec``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse_core import iceberg
from lakehouse_core.errors import EXIT_DETERMINISTIC, EXIT_RETRYABLE

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
TASKS = ["bronze_extract", "bronze_gate", "silver_transform", "silver_gate", "gold_build", "gold_gate"]
LAYER_APPS = {"lakehouse_bronze": "bronze_extract", "lakehouse_silver": "silver_transform",
              "lakehouse_gold": "gold_build"}


@pytest.fixture(scope="module")
def runtime_bin() -> Path:
    path = Path(os.environ.get("LAKEHOUSE_RUNTIME_BIN", REPO / "dist" / "runtime" / "bin"))
    if not (path / "lakehouse").exists():
        pytest.fail(f"no built runtime at {path}: run `make runtime` (make test does)")
    return path


def run_dag(env: dict[str, str], home: Path, logical_date: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """One DAG run (``run_local.py``): the process and its ``{states, tries, data_interval}``."""
    states = home / f"states-{logical_date}.json"
    proc = subprocess.run([sys.executable, str(REPO / "orchestration" / "run_local.py"),
                           "--logical-date", logical_date, "--states-json", str(states)],
                          env=env, capture_output=True, text=True, timeout=900)
    return proc, json.loads(states.read_text()) if states.exists() else None


@pytest.fixture(scope="module")
def e2e_env(tmp_path_factory, runtime_bin):
    """A state folder with a simulated shop; the tasks find their suites in the installed wheels
    (no LAKEHOUSE_EXPECTATIONS_DIR)."""
    home = tmp_path_factory.mktemp("airflow-e2e")
    env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_EXPECTATIONS_DIR"}
    env |= {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_RUNTIME_BIN": str(runtime_bin), "LAKEHOUSE_LINEAGE__ENABLED": "true",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}  # the tasks' output is part of the run's output
    lakehouse = [str(runtime_bin / "lakehouse")]
    subprocess.run([*lakehouse, "simulate", "--scale", "0.01", "--seed", "3", "--days", "3", "--reset"],
                   env=env, check=True, capture_output=True)
    try:
        yield home, env
    finally:
        subprocess.run([*lakehouse, "db", "stop"], env=env, capture_output=True)


@pytest.fixture(scope="module")
def dag_run(e2e_env):
    home, env = e2e_env
    proc, result = run_dag(env, home, "2023-01-04")
    return home, proc, result


@pytest.fixture(scope="module")
def failing_gate_run(dag_run, e2e_env, runtime_bin):
    """The next day, with an order whose total is negative: the bronze gate fails."""
    home, env = e2e_env
    subprocess.run([str(runtime_bin / "lakehouse"), "simulate-advance", "--days", "1", "--seed", "3",
                    "--scale", "0.01"], env=env, check=True, capture_output=True)
    with _source(home) as cur:
        cur.execute("UPDATE orders SET total_price = -5 WHERE id = (SELECT max(id) FROM orders)")
    return run_dag(env, home, "2023-01-05")


@contextlib.contextmanager
def _source(home: Path):
    import psycopg2

    port = (home / "postgres" / "port").read_text().strip()
    conn = psycopg2.connect(host="127.0.0.1", port=port, user="lakehouse", dbname="shop")
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def test_every_task_succeeded(dag_run):
    home, proc, result = dag_run
    assert result is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["states"] == {t: "success" for t in TASKS}, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["data_interval"] == {"start": "2023-01-02T17:00:00+00:00", "end": "2023-01-03T17:00:00+00:00"}


def test_a_successful_run_logs_no_error_line(dag_run):
    """Nothing that is not an error is logged as one (Spark, OpenLineage, Great Expectations, Airflow)."""
    _, proc, result = dag_run
    assert result is not None and set(result["states"].values()) == {"success"}
    output = proc.stdout + proc.stderr
    assert "bronze.orders" in output  # the tasks' own output is part of what was read
    errors = [line for line in output.splitlines() if re.search(r"\bERROR\b", line)]
    assert errors == [], "\n".join(errors[:20])
    # a warning about a class-loader set-up the platform does not have (lakehouse_core/log4j2.properties)
    assert "illegal reflective access" not in output


def test_no_personal_data_in_lineage_reports_or_logs(dag_run):
    """Emails and phones of the source stay in bronze: not in lineage events, quality reports,
    Data Docs, validation results or the run's log output."""
    home, proc, _ = dag_run
    with _source(home) as cur:
        cur.execute("SELECT email, phone FROM customers")
        clear = {value for row in cur.fetchall() for value in row if value}
    assert len(clear) > 10
    places = [path for folder in ("lineage", "quality", "data_docs", "gx") for path in (home / folder).rglob("*")
              if path.is_file()]
    assert any(p.parent.name == "lineage" for p in places) and any(p.parent.name == "quality" for p in places)
    for path in places:
        text = path.read_text(errors="replace")
        assert not [v for v in clear if v in text], path
    assert not [v for v in clear if v in proc.stdout + proc.stderr]


def test_a_failing_gate_fails_its_task_without_retry(failing_gate_run):
    """A failing expectation is deterministic: the gate's task fails on its first try (retries are
    for infrastructure failures), nothing downstream runs, the report names the row."""
    proc, result = failing_gate_run
    assert result is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["states"]["bronze_extract"] == "success"
    assert result["states"]["bronze_gate"] == "failed"
    assert result["tries"]["bronze_gate"] == 1, result
    assert {result["states"][t] for t in TASKS[2:]} == {"upstream_failed"}
    assert "expect_column_values_to_be_between(total_price)" in proc.stdout + proc.stderr


def test_exit_codes_decide_retries():
    """Exit 3 (a deterministic failure) fails the task for good; other codes stay retryable."""
    sys.path.insert(0, str(REPO / "orchestration" / "dags"))
    try:
        from lakehouse_daily import raise_for_exit_code
    finally:
        sys.path.pop(0)
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    raise_for_exit_code(0)
    with pytest.raises(AirflowFailException):
        raise_for_exit_code(EXIT_DETERMINISTIC)
    for code in (1, EXIT_RETRYABLE, 137):
        with pytest.raises(AirflowException) as failure:
            raise_for_exit_code(code)
        assert not isinstance(failure.value, AirflowFailException)


def test_tasks_ran_the_built_wheels(dag_run, runtime_bin):
    """The runtime holds installed wheels (not the workspace), and their version is in the commits."""
    from pyiceberg.catalog.sql import SqlCatalog

    home, _, _ = dag_run
    probe = subprocess.run([str(runtime_bin / "python"), "-c",
                            "import json, lakehouse_bronze, importlib.metadata as m; print(json.dumps("
                            "{'file': lakehouse_bronze.__file__, **{l: m.version('lakehouse-' + l) "
                            "for l in ('bronze', 'silver', 'gold')}}))"],
                           capture_output=True, text=True, check=True)
    installed = json.loads(probe.stdout)
    assert "site-packages" in installed["file"] and "packages/bronze/src" not in installed["file"]

    # read through pyiceberg: the same JDBC catalog, named `lakehouse` on both sides
    port = (home / "postgres" / "port").read_text().strip()
    catalog = SqlCatalog("lakehouse", uri=f"postgresql+psycopg2://lakehouse@127.0.0.1:{port}/iceberg_catalog",
                         warehouse=(home / "warehouse").as_uri())
    for layer, table in [("bronze", "orders"), ("silver", "orders"), ("gold", "mart_daily_sales")]:
        loaded = catalog.load_table(f"{layer}.{table}")
        tag = loaded.metadata.refs[iceberg.PUBLISH_TAG]
        summary = loaded.metadata.snapshot_by_id(tag.snapshot_id).summary
        assert summary["lakehouse.package_version"] == installed[layer]
        assert loaded.scan().to_arrow().num_rows > 0


def test_lineage_events_are_valid_and_linked(dag_run, openlineage_validate):
    home, _, _ = dag_run
    airflow = [json.loads(l) for l in (home / "lineage" / "airflow-events.jsonl").read_text().splitlines()]
    # the Spark listener's events, and ours for steps it cannot see (bronze first loads: lakehouse_core.lineage)
    spark = [json.loads(l) for name in ("spark-events.jsonl", "python-events.jsonl")
             for l in (home / "lineage" / name).read_text().splitlines()]
    assert airflow and spark

    checked_facets = sum(openlineage_validate(event) for event in airflow + spark)
    assert checked_facets > 100

    # START and COMPLETE for every task
    for task in TASKS:
        kinds = {e["eventType"] for e in airflow if e["job"]["name"] == f"lakehouse_daily.{task}"}
        assert {"START", "COMPLETE"} <= kinds, task

    # every layer job emits Spark events with a parent facet and Iceberg outputs, linked to its Airflow task
    task_runs = {e["job"]["name"]: e["run"]["runId"] for e in airflow if e["eventType"] == "START"}
    for app, task in LAYER_APPS.items():
        app_events = [e for e in spark if e["job"]["name"] == app]
        assert any(e["run"]["facets"].get("parent", {}).get("run", {}).get("runId") == task_runs[f"lakehouse_daily.{task}"]
                   for e in app_events), app
        writes = [e for e in spark if e["job"]["name"].startswith(app + ".") and e.get("outputs")
                  and "parent" in e["run"].get("facets", {})]
        assert writes, app
        assert any(o["facets"].get("storage", {}).get("storageLayer") == "iceberg" for e in writes for o in e["outputs"])


def test_each_gate_reports_one_run_with_data_quality_facets(dag_run):
    """A gate runs without the Spark listener (no event per Great Expectations query) and reports
    one run under its Airflow task: every table it validated with the outcome of each expectation
    and the rows validated, every table it published."""
    home, _, _ = dag_run
    airflow, listener, python = ([json.loads(l) for l in (home / "lineage" / name).read_text().splitlines()]
                                 for name in ("airflow-events.jsonl", "spark-events.jsonl", "python-events.jsonl"))
    for layer in ("bronze", "silver", "gold"):
        gate = f"lakehouse_{layer}_gate"
        assert not [e for e in listener if e["job"]["name"].startswith(gate)], layer
        runs = [e for e in python if e["job"]["name"] == gate]
        complete = [e for e in runs if e["eventType"] == "COMPLETE" and e["inputs"]]
        assert complete and len([e for e in runs if e["eventType"] == "START"]) == len(runs) // 2, layer
        parents = {e["run"]["runId"] for e in airflow if e["job"]["name"] == f"lakehouse_daily.{layer}_gate"}
        for event in complete:
            assert event["run"]["facets"]["parent"]["run"]["runId"] in parents
            assert any("dataQualityAssertions" in d["inputFacets"] for d in event["inputs"]), layer
            for dataset in event["inputs"]:
                rows = dataset["inputFacets"]["dataQualityMetrics"]["rowCount"]
                if rows == 0 and "dataQualityAssertions" not in dataset["inputFacets"]:
                    continue  # the batch added no rows to it: its row-level checks had nothing to judge
                assertions = dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
                assert assertions and all({"assertion", "success", "severity"} <= set(a) for a in assertions)
            assert {d["name"] for d in event["outputs"]} == {d["name"] for d in event["inputs"]}, layer


def test_landed_first_loads_report_their_lineage(dag_run):
    """Bronze's first load lands files without a Spark write plan; its own event names every
    source table read and every bronze table written, with row counts, under the Airflow task."""
    home, _, _ = dag_run
    events = [json.loads(l) for l in (home / "lineage" / "python-events.jsonl").read_text().splitlines()]
    runs = [e for e in events if e["job"]["name"] == "lakehouse_bronze.land_first_loads"]
    assert [e["eventType"] for e in runs] == ["START", "COMPLETE"]
    complete = runs[-1]
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "lakehouse_daily.bronze_extract"
    assert len(complete["inputs"]) == len(complete["outputs"]) == 24
    assert all(i["namespace"].startswith("postgres://") for i in complete["inputs"])
    orders = next(o for o in complete["outputs"] if o["name"].endswith("/warehouse/bronze/orders"))
    assert orders["namespace"] == "file" and orders["facets"]["storage"]["storageLayer"] == "iceberg"
    assert orders["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assert {"id", "status", "_batch_id", "_op"} <= {f["name"] for f in orders["facets"]["schema"]["fields"]}
