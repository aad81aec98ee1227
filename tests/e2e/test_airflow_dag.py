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
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest

from lakehouse_core import iceberg
from lakehouse_core.errors import EXIT_DETERMINISTIC, EXIT_RETRYABLE
from lakehouse_core.registry import Registry
from lakehouse_core.settings import LakehouseSettings

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
TASKS = ["bronze_extract", "bronze_gate", "silver_transform", "silver_gate", "gold_build", "gold_gate", "maintenance"]
LAYER_APPS = {"lakehouse_bronze": "bronze_extract", "lakehouse_silver": "silver_transform",
              "lakehouse_gold": "gold_build"}


@pytest.fixture(scope="module")
def failing_gate_run(dag_run, e2e_env, runtime_bin, run_dag, shop_args):
    """The next day, with an order whose total is negative: the bronze gate fails."""
    home, env = e2e_env
    subprocess.run([str(runtime_bin / "lakehouse"), "simulate-advance", "--days", "1", *shop_args], env=env,
                   check=True, capture_output=True)
    with _source(home) as cur:
        cur.execute("UPDATE orders SET total_price = -5 WHERE id = (SELECT max(id) FROM orders)")
    return run_dag(env, home, "2023-01-05")


@contextlib.contextmanager
def _source(home: Path, user: str = "lakehouse"):
    import psycopg2

    port = (home / "postgres" / "port").read_text().strip()
    conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, dbname="shop")
    try:
        with conn, conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def test_the_tasks_read_the_source_through_a_read_only_role(dag_run, source_reader):
    """The runs read the source as ``source_reader`` (they succeeded): it reads every table and
    the simulator's clock, and can change nothing."""
    import psycopg2

    with _source(dag_run[0], source_reader) as cur:
        cur.execute("SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone() == (False, False, False)
        cur.execute("SELECT count(*) FROM orders")
        assert cur.fetchone()[0] > 0
        cur.execute("SELECT count(*) FROM lakehouse_sim.clock")
    for statement in ("UPDATE orders SET total_price = 0 WHERE id = 1", "DELETE FROM cart_items",
                      "CREATE TABLE stolen (x int)"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege), _source(dag_run[0], source_reader) as cur:
            cur.execute(statement)


def test_every_task_of_the_backfill_succeeded(dag_run, backfill_dates):
    """The backfill ran one daily run per logical date, in order, each covering the day before."""
    home, proc, result = dag_run
    assert result is not None, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["runs"] == dict.fromkeys(backfill_dates, "success"), proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["states"] == {t: "success" for t in TASKS}, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert result["data_interval"] == {"start": "2023-01-02T17:00:00+00:00", "end": "2023-01-03T17:00:00+00:00"}
    # the first run's extract was the tables' first load, the second an incremental one
    extracted = re.findall(r"\] bronze\.(\w+): \d+ rows and \d+ deletes staged, (.*)$", proc.stdout + proc.stderr,
                           re.MULTILINE)
    assert {table for table, rest in extracted if "(landed with the other first loads)" in rest} == {
        spec.name for spec in Registry.load(LakehouseSettings()).in_dependency_order()}
    assert [rest for table, rest in extracted if table == "orders" and "landed" not in rest]


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
    # nor noise a new user would stop at: Airflow creating the assets the gates' aliases name (the
    # runner's logging levels), Hadoop's missing native library, an EOFError traceback from the
    # first task (the one writing the class archive: lakehouse_core/class_archive.py)
    for noise in ("cannot create asset event", "inactive AssetModel", "native-hadoop", "Traceback"):
        assert noise not in output, output[max(0, output.find(noise) - 1500):output.find(noise) + 1500]


def test_the_run_shows_its_progress(dag_run):
    """Each task is printed as it finishes, in order; each layer command and gate prints a line
    per table as it is done and ends with a summary table."""
    _, proc, result = dag_run
    assert result is not None
    finished = re.findall(r"^task (\w+): success in \d+ s$", proc.stdout, re.MULTILINE)
    assert finished == TASKS * 2, proc.stdout[-3000:]  # the backfill's two runs
    output = proc.stdout + proc.stderr
    for title in ("bronze extract", "bronze gate", "silver transform", "silver gate", "gold build", "gold gate"):
        assert re.search(rf"{title}: (\d+) of \1 tables in [\d.]+ s", output), title
    assert re.search(r"\[ ?\d+/24\] silver\.orders: \d+ keys merged", output)
    assert re.search(r"\[ ?\d+/\d+\] gold\.mart_daily_sales: [\d,]+ rows, \d+ expectations, 0 failing", output)
    assert re.search(r"^.*total +[\d,]+ ", output, re.MULTILINE)


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


def _dag_module():
    sys.path.insert(0, str(REPO / "orchestration" / "dags"))
    try:
        import lakehouse_daily
    finally:
        sys.path.pop(0)
    return lakehouse_daily


def test_exit_codes_decide_retries():
    """Exit 3 (a deterministic failure) fails the task for good; other codes stay retryable."""
    raise_for_exit_code = _dag_module().raise_for_exit_code
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    raise_for_exit_code(0)
    with pytest.raises(AirflowFailException):
        raise_for_exit_code(EXIT_DETERMINISTIC)
    for code in (1, EXIT_RETRYABLE, 137):
        with pytest.raises(AirflowException) as failure:
            raise_for_exit_code(code)
        assert not isinstance(failure.value, AirflowFailException)


def test_airflow_connections_give_the_tasks_their_databases(monkeypatch):
    """A defined ``lakehouse_source``/``lakehouse_catalog`` connection becomes the task's settings
    variables (password decoded, schema as the database); without one the settings stand."""
    monkeypatch.setenv("AIRFLOW_CONN_LAKEHOUSE_SOURCE", "postgres://shop_reader:s%40cret@db.internal:6543/shop")  # pragma: allowlist secret (a test value)
    monkeypatch.delenv("AIRFLOW_CONN_LAKEHOUSE_CATALOG", raising=False)
    dag = _dag_module()
    assert dag.connection_env("lakehouse_source", dag.CONNECTIONS["lakehouse_source"]) == {
        "LAKEHOUSE_SOURCE__HOST": "db.internal", "LAKEHOUSE_SOURCE__PORT": "6543",
        "LAKEHOUSE_SOURCE__USER": "shop_reader", "LAKEHOUSE_SOURCE__PASSWORD": "s@cret",  # pragma: allowlist secret
        "LAKEHOUSE_SOURCE__DBNAME": "shop"}
    assert dag.connection_env("lakehouse_catalog", dag.CONNECTIONS["lakehouse_catalog"]) == {}
    from lakehouse_core.settings import LakehouseSettings

    for key, value in dag.connection_env("lakehouse_source", "LAKEHOUSE_SOURCE__").items():
        monkeypatch.setenv(key, value)
    source = LakehouseSettings().source
    assert (source.host, source.port, source.dbname) == ("db.internal", 6543, "shop")


def test_gates_announce_what_they_published_as_airflow_assets(dag_run):
    """Each gate adds an asset event per table it published (through its alias
    ``lakehouse_<layer>``): a DAG scheduled on ``lakehouse.gold.mart_daily_sales`` runs after it."""
    import sqlite3

    home, _, result = dag_run
    assert result is not None
    with contextlib.closing(sqlite3.connect(home / "airflow" / "airflow.db")) as db:
        events = db.execute("SELECT a.name, a.uri, e.source_task_id FROM asset_event e JOIN asset a ON a.id = e.asset_id"
                            ).fetchall()
    by_name = {name: (uri, task) for name, uri, task in events}
    assert by_name["lakehouse.gold.mart_daily_sales"] == ((home / "warehouse" / "gold" / "mart_daily_sales").as_uri(),
                                                          "gold_gate")
    assert by_name["lakehouse.bronze.orders"][1] == "bronze_gate" and by_name["lakehouse.silver.orders"][1] == "silver_gate"
    assert len([n for n in by_name if n.startswith("lakehouse.silver.")]) == 24


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


def test_lineage_walks_from_every_source_table_to_gold(dag_run, runtime_bin):
    """The recorded events (Spark listener, the platform's own, Airflow's) form one graph: every
    source table reaches gold through bronze and silver, every gold table is reached; every run is
    a child of its Airflow task's run (a Spark action's of its application's); silver columns name
    their bronze columns (masked PII marked); ``lakehouse lineage`` draws it as an SVG."""
    from xml.etree import ElementTree

    from lakehouse_core.lineage_graph import LineageGraph

    home, _, _ = dag_run
    graph = LineageGraph.read(home / "lineage")
    sources = [d for d in graph.datasets if d.layer == "source"]
    assert len(sources) == 24 and graph.unconnected_sources() == []
    for source in sources:
        assert {"bronze", "silver", "gold"} <= {d.layer for d in graph.downstream(source)}, source.label
    gold = {d for d in graph.datasets if d.layer == "gold"}
    assert len(gold) == 24 and gold <= set().union(*(graph.downstream(d) for d in sources))

    events = {name: [json.loads(l) for l in (home / "lineage" / f"{name}-events.jsonl").read_text().splitlines()]
              for name in ("airflow", "spark", "python")}
    # (the files also hold the next day's run, whose bronze gate fails)
    task_runs, app_runs = defaultdict(set), defaultdict(set)
    for event in events["airflow"]:
        dag, _, task = event["job"]["name"].partition(".")
        task_runs[task].add(event["run"]["runId"])
    for event in events["spark"]:
        if event["job"]["name"] in LAYER_APPS:
            app_runs[event["job"]["name"]].add(event["run"]["runId"])
    task_of = {**LAYER_APPS, **{f"lakehouse_{layer}_gate": f"{layer}_gate" for layer in ("bronze", "silver", "gold")}}
    for source, stream in (("spark", events["spark"]), ("python", events["python"])):
        for event in stream:
            name = event["job"]["name"]
            app = name.split(".", 1)[0]
            expected = task_runs[task_of[app]] | (app_runs[app] if "." in name and source == "spark" else set())
            assert event["run"]["facets"]["parent"]["run"]["runId"] in expected, (name, event["eventType"])

    customers = next(o for e in events["python"] for o in e.get("outputs", [])
                     if e["job"]["name"] == "lakehouse_silver.transform_customers" and e["eventType"] == "COMPLETE")
    fields = customers["facets"]["columnLineage"]["fields"]
    email = fields["email"]["inputFields"][0]
    assert email["name"].endswith("/bronze/customers") and email["field"] == "email"
    assert email["transformations"][0]["masking"] is True
    assert fields["id"]["inputFields"][0]["transformations"][0]["masking"] is False

    # gold columns name their silver or gold source columns, read from each build's Spark plan
    built = {e["job"]["name"].removeprefix("lakehouse_gold.build_"): o for e in events["python"]
             for o in e.get("outputs", []) if e["job"]["name"].startswith("lakehouse_gold.build_")
             and e["eventType"] == "COMPLETE"}
    # every one but the calendar (dim_date reads no column: its days are generated)
    assert len(built) == 24 and {t for t, o in built.items() if "columnLineage" not in o["facets"]} == {"dim_date"}

    def sources(table: str, column: str) -> dict[tuple[str, str], str]:
        """(layer.table, column) → subtype of each source of ``column`` of ``gold.<table>``."""
        return {(f["name"].split("/")[-2] + "." + f["name"].split("/")[-1], f["field"]): f["transformations"][0]["subtype"]
                for f in built[table]["facets"]["columnLineage"]["fields"][column]["inputFields"]}

    assert sources("mart_daily_sales", "gmv")[("gold.fct_orders", "total_price")] == "AGGREGATION"
    assert ("gold.dim_channel", "channel_name") in sources("mart_daily_sales", "channel")
    assert ("silver.orders", "total_price") in sources("fct_orders", "total_price")
    indirect = built["mart_daily_sales"]["facets"]["columnLineage"]["dataset"]
    assert {"JOIN", "GROUP_BY"} <= {f["transformations"][0]["subtype"] for f in indirect}

    picture = home / "lineage-picture.svg"
    drawn = subprocess.run([str(runtime_bin / "lakehouse"), "lineage", "--output", str(picture)],
                           env={**os.environ, "LAKEHOUSE_HOME": str(home)}, capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    assert "every source table reaches gold" in drawn.stdout
    labels = {t.text for t in ElementTree.parse(picture).iter("{http://www.w3.org/2000/svg}text")}
    assert {"source.orders", "bronze.orders", "silver.orders", "gold.mart_daily_sales", "lakehouse_silver"} <= labels


def test_each_gate_reports_one_run_with_data_quality_facets(dag_run):
    """A gate runs in its layer's Spark application with the Spark listener held back (no event per
    Great Expectations query while it validates) and reports one run under its own Airflow task:
    every table it validated with the outcome of each expectation and the rows validated, every
    table it published."""
    home, _, _ = dag_run
    airflow, listener, python = ([json.loads(l) for l in (home / "lineage" / name).read_text().splitlines()]
                                 for name in ("airflow-events.jsonl", "spark-events.jsonl", "python-events.jsonl"))
    for layer in ("bronze", "silver", "gold"):
        gate = f"lakehouse_{layer}_gate"
        assert not [e for e in listener if e["job"]["name"].startswith(gate)], layer
        reports = [json.loads(p.read_text()) for p in (home / "quality").glob(f"{layer}-*.json")]
        assert reports and all(r["started"] and r["finished"] for r in reports), layer
        layer_app = [datetime.fromisoformat(e["eventTime"]) for e in listener
                     if e["job"]["name"].startswith(f"lakehouse_{layer}")]
        assert layer_app, layer
        during = [t for t in layer_app for r in reports
                  if datetime.fromisoformat(r["started"]) < t < datetime.fromisoformat(r["finished"])]
        assert during == [], (layer, during[:5])
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


def test_the_airflow_ui_shows_the_run_in_the_dag_grid(dag_run, failing_gate_run, tmp_path):
    """After the runs (a successful day, then a day whose bronze gate fails), Airflow's api-server
    serves the UI: headless Chromium opens the DAG's page and finds every task in its grid, the
    failed run and the gates' asset events; a screenshot goes to ``test-artifacts/airflow/``."""
    import socket
    import time
    import urllib.request

    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    home, _, result = dag_run
    assert result is not None
    sys.path.insert(0, str(REPO / "orchestration"))
    try:
        from run_local import DAG_ID, airflow_environment
    finally:
        sys.path.pop(0)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **airflow_environment(home), "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = (tmp_path / "api-server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert browser and driver, "chromium and chromium-driver are not installed: run scripts/install-system-deps.sh"
    chrome = None
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "api-server.log").read_text()[-3000:]
                time.sleep(1)
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1600,1000"):
            options.add_argument(flag)
        chrome = webdriver.Chrome(service=Service(driver), options=options)
        chrome.get(f"http://127.0.0.1:{port}/dags/{DAG_ID}")
        # the grid lists the tasks; the overview the failed run (the next day's, whose bronze gate
        # failed) and the asset events the gates created. The overview's widgets load one by one,
        # so the wait covers every item, not only the first to appear.
        # (Airflow labels the failed-run button "Failed Runs" even at a count of 0, hence the count.)
        expected = [DAG_ID, *TASKS, "Created Asset Events", "lakehouse.gold.mart_"]
        failed_runs = re.compile(r"\b([1-9]\d*)\s*Failed Runs?\b")

        def missing(text: str) -> list[str]:
            return [item for item in expected if item not in text] + ([] if failed_runs.search(text) else
                                                                       ["a failed-run count of at least 1"])

        screenshots = Path(os.environ.get("LAKEHOUSE_TEST_ARTIFACTS", REPO / "test-artifacts")) / "airflow"
        screenshots.mkdir(parents=True, exist_ok=True)
        try:
            WebDriverWait(chrome, 120).until(lambda c: not missing(c.execute_script("return document.body.innerText")))
        except TimeoutException:
            text = chrome.execute_script("return document.body.innerText")
            chrome.save_screenshot(str(screenshots / "dag-grid-timeout.png"))
            pytest.fail(f"the DAG page never showed {missing(text)}; it showed: {text[-2000:]}")
        chrome.save_screenshot(str(screenshots / "dag-grid.png"))
    finally:
        if chrome is not None:
            chrome.quit()
        server.terminate()
        server.wait(timeout=60)
        log.close()
