"""The production path on this machine: a Spark standalone cluster and an S3 API, by settings alone.

The daily DAG runs the end-to-end shop (``conftest.simulated_shop``) with

* ``LAKEHOUSE_SPARK__MASTER`` pointing at a Spark standalone master and worker started from the
  runtime environment (the scripts shipped with Spark; executors run the runtime's Python, which
  holds the built wheels and no source tree), and
* ``LAKEHOUSE_WAREHOUSE=s3://…`` with ``LAKEHOUSE_S3__*`` pointing at an S3-compatible server on
  127.0.0.1 (moto's server mode: no cloud account can be reached from here; MinIO in compose):
  bronze landing (pyarrow's S3 file system), Iceberg data and metadata (Iceberg's S3FileIO, path-
  style access), silver, gold, gates and pyiceberg reads all go through it.

Its tables are compared row by row with the local run of the same shop (``conftest.dag_run``), a
backfill of two logical dates ending on this run's: the same tables, whether on a cluster and S3
or locally, and whether the days came in one daily run or in a backfill's runs one after another.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import closing
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

pytestmark = pytest.mark.airflow

BUCKET = "lakehouse-prod"
LAYERS = ("bronze", "silver", "gold", "quarantine")
#: columns whose values depend on when, in which source transaction or in which batch (of the
#: backfill's two, or the daily run's one) a row was processed
VOLATILE_COLUMNS = {"_ingested_at", "_source_xid", "_silver_updated_at", "quarantined_at", "closed_at",
                    "_batch_id", "_source_batch_id", "batch_id"}
#: credentials of the throw-away S3 server (moto accepts any)
S3_KEY, S3_SECRET = "lakehouse-test", "lakehouse-test-secret"  # pragma: allowlist secret (moto accepts any)


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Wait until ``url`` answers; fail with the server's log when it exits or never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


def _start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)


def _stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """An S3 API on 127.0.0.1 (moto's server) holding the bucket ``BUCKET``."""
    import boto3

    port, logs = _free_port(), tmp_path_factory.mktemp("s3")
    server = _start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], logs / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{endpoint}/moto-api/", server, logs / "moto.log")
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        _stop(server)


@pytest.fixture(scope="module")
def spark_master(runtime_bin, tmp_path_factory):
    """A Spark standalone master and one worker (2 cores) started with the runtime's Spark scripts;
    yields the master URL and the master's web UI URL."""
    logs = tmp_path_factory.mktemp("spark-cluster")
    port, ui_port, worker_ui = _free_port(), _free_port(), _free_port()
    # the runtime's pyspark is the Spark the scripts run; the workers' own `python3` (PATH) is
    # not the runtime's: executors must run the Python the settings name
    spark_home = subprocess.run([str(runtime_bin / "python"), "-c", "import pyspark, os; print(os.path.dirname("
                                 "pyspark.__file__))"], capture_output=True, text=True, check=True).stdout.strip()
    env = {**os.environ, "SPARK_HOME": spark_home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(logs / "work")}
    spark_class = str(runtime_bin / "spark-class")
    master = _start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                     "--port", str(port), "--webui-port", str(ui_port)], logs / "master.log", env)
    url, ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
    worker = None
    try:
        _wait_for(f"{ui}/json/", master, logs / "master.log")
        worker = _start([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                         "--cores", "2", "--memory", "6g", "--webui-port", str(worker_ui), url],
                        logs / "worker.log", env)
        deadline = time.monotonic() + 120
        while not _cluster(ui)["aliveworkers"]:
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Spark worker did not register:\n{(logs / 'worker.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, ui
    finally:
        _stop(*[p for p in (worker, master) if p is not None])


def _cluster(ui: str) -> dict:
    with urllib.request.urlopen(f"{ui}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def production(dag_run, backfill_dates, simulated_shop, s3_endpoint, spark_master, run_dag, runtime_bin,
               tmp_path_factory):
    """The shop run by the DAG on the cluster with an S3 warehouse (the local run's PII key, so
    that masked values compare), one daily run of the local backfill's last date: its state
    folder, environment and run."""
    local_home = dag_run[0]
    home = tmp_path_factory.mktemp("production")
    env = simulated_shop(home, {
        "LAKEHOUSE_SPARK__MASTER": spark_master[0],
        "LAKEHOUSE_SPARK__EXECUTOR_PYTHON": str(runtime_bin / "python"),
        "LAKEHOUSE_WAREHOUSE": f"s3://{BUCKET}/warehouse",
        "LAKEHOUSE_S3__ENDPOINT": s3_endpoint,
        "LAKEHOUSE_S3__ACCESS_KEY_ID": S3_KEY,
        "LAKEHOUSE_S3__SECRET_ACCESS_KEY": S3_SECRET,
        "LAKEHOUSE_PII_SECRET": (local_home / "secrets" / "pii.key").read_text().strip(),
        # a first load leaves maintenance nothing it would do (and then no Spark application): every
        # table's orphan files are swept, on the cluster, listing the bucket through the table's FileIO
        "LAKEHOUSE_MAINTENANCE__ORPHAN_SWEEP_DAYS": "0",
        "SPARK_LOCAL_IP": "127.0.0.1",  # the driver's address, as the workers reach it
    })
    # the databases through Airflow connections, as a deployment defines them: its server runs and
    # holds the catalog's database (the embedded profile starts and creates them only without a host)
    subprocess.run([str(runtime_bin / "lakehouse"), "db", "start"], env=env, check=True, capture_output=True)
    port = (home / "postgres" / "port").read_text().strip()
    with closing(psycopg2.connect(host="127.0.0.1", port=port, user="lakehouse", dbname="postgres")) as db:
        db.autocommit = True
        db.cursor().execute("CREATE DATABASE iceberg_catalog")
    env |= {f"AIRFLOW_CONN_LAKEHOUSE_{name.upper()}": f"postgres://lakehouse@127.0.0.1:{port}/{dbname}"
            for name, dbname in (("source", "shop"), ("catalog", "iceberg_catalog"))}
    proc, result = run_dag(env, home, backfill_dates[-1])
    return home, env, proc, result


def _check_succeeded(proc: subprocess.CompletedProcess, result: dict | None) -> None:
    output = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert result is not None, output
    assert set(result["states"].values()) == {"success"}, output


def test_the_daily_run_succeeds_on_the_cluster(production, spark_master):
    """Every task succeeded (its databases given by Airflow connections), each layer application
    and maintenance's ran on the cluster, and the daily run started at most 8 Spark applications."""
    *_, proc, result = production
    _check_succeeded(proc, result)
    apps = [app["name"] for app in _cluster(spark_master[1])["completedapps"]]
    assert {"lakehouse_bronze", "lakehouse_silver", "lakehouse_gold", "lakehouse_maintenance"} <= set(apps), apps
    assert len(apps) <= 8, apps
    assert "Airflow connection lakehouse_source gives the tasks" in proc.stdout + proc.stderr


def test_executors_ran_the_runtime_environment(production, runtime_bin):
    """The first loads ran the COPY reader in executors' Python tasks, on workers whose own
    ``python3`` lacks the wheels: the executors ran the runtime's Python (installed wheels, no
    source tree)."""
    home, _, proc, result = production
    _check_succeeded(proc, result)
    workers_python = subprocess.run(["python3", "-c", "import lakehouse_bronze"], capture_output=True)
    assert workers_python.returncode != 0
    landed = [json.loads(line) for line in (home / "lineage" / "python-events.jsonl").read_text().splitlines()]
    complete = [e for e in landed if e["job"]["name"] == "lakehouse_bronze.land_first_loads"
                and e["eventType"] == "COMPLETE"]
    assert complete and len(complete[0]["outputs"]) == 24
    probe = subprocess.run([str(runtime_bin / "python"), "-c", "import lakehouse_bronze; print(lakehouse_bronze.__file__)"],
                           capture_output=True, text=True, check=True)
    assert "site-packages" in probe.stdout and "packages/bronze/src" not in probe.stdout


def test_the_warehouse_is_in_the_bucket(production, s3_endpoint):
    """Data and metadata files of every layer are objects of the bucket; nothing on local disk."""
    import boto3

    home, *_ = production
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET,
                      region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET) for o in page["Contents"]]
    for layer, table in [("bronze", "orders"), ("silver", "orders"), ("gold", "mart_daily_sales")]:
        prefix = f"warehouse/{layer}/{table}/"
        assert any(k.startswith(prefix + "data/") and k.endswith(".parquet") for k in keys), prefix
        assert any(k.startswith(prefix + "metadata/") and k.endswith(".metadata.json") for k in keys), prefix
    assert not (home / "warehouse").exists()


def _tables(home: Path, env: dict[str, str]) -> dict[str, list[tuple]]:
    """Every table of every layer of ``home``'s catalog, read through pyiceberg (its rows without
    ``VOLATILE_COLUMNS``, sorted)."""
    from lakehouse_core.catalog import load_catalog
    from lakehouse_core.settings import LakehouseSettings

    values = {k.removeprefix("LAKEHOUSE_").lower(): v for k, v in env.items()
              if k in ("LAKEHOUSE_HOME", "LAKEHOUSE_WAREHOUSE")}
    s3 = {k.removeprefix("LAKEHOUSE_S3__").lower(): v for k, v in env.items() if k.startswith("LAKEHOUSE_S3__")}
    settings = LakehouseSettings(**values, **({"s3": s3} if s3 else {}))
    catalog = load_catalog(settings)
    tables = {}
    for layer in LAYERS:
        for _, name in catalog.list_tables(layer):
            arrow = catalog.load_table(f"{layer}.{name}").scan().to_arrow()
            columns = sorted(set(arrow.column_names) - VOLATILE_COLUMNS)
            rows = arrow.select(columns).to_pylist()
            tables[f"{layer}.{name}"] = sorted((tuple((c, _comparable(r[c])) for c in columns) for r in rows), key=repr)
    return tables


def _comparable(value):
    return value.normalize() if isinstance(value, Decimal) else value


def _compared(production, dag_run, backfill_dates) -> tuple[dict, dict]:
    """(local backfill's tables, cluster daily run's tables), a periodic snapshot (the inventory's,
    ``snapshot_day``) cut to the days the daily run took: the backfill's first run took one more,
    of its own day, which the daily run has no reason to hold."""
    home, env, proc, result = production
    _check_succeeded(proc, result)
    local_home = dag_run[0]
    local = _tables(local_home, {"LAKEHOUSE_HOME": str(local_home)})
    remote = _tables(home, env)
    assert sorted(remote) == sorted(local)
    assert sum(len(rows) for rows in local.values()) > 1000
    first_run_day = date.fromisoformat(backfill_dates[0]) - timedelta(days=1)
    snapshots = [name for name, rows in local.items() if rows and "snapshot_day" in dict(rows[0])]
    assert {"gold.fct_inventory_daily", "gold.mart_inventory_daily"} <= set(snapshots)
    for name in snapshots:
        days = {dict(row)["snapshot_day"] for row in remote[name]}
        assert {dict(row)["snapshot_day"] for row in local[name]} - days == {first_run_day}, name
        local[name] = [row for row in local[name] if dict(row)["snapshot_day"] in days]
    return local, remote


def test_tables_equal_the_local_backfill(production, dag_run, backfill_dates):
    """Row by row, every table of every layer of the daily run on the cluster equals the local
    backfill's (read through pyiceberg, the cluster run's from S3)."""
    local, remote = _compared(production, dag_run, backfill_dates)
    differing = {name: next((a, b) for a, b in zip(local[name] + [None], remote[name] + [None]) if a != b)
                 for name in local if local[name] != remote[name]}
    assert differing == {}, f"{len(differing)} tables differ; first differing rows (local, cluster): {differing}"
