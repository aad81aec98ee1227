"""The end-to-end tests' shared run: a simulated shop (three days) and a backfill of its first two
logical dates under Airflow 3 (``orchestration/run_local.py --to-date``: one ``dag.test()`` daily
run after another, SQLite metadata database), from the built wheels, on the embedded local
profile. Other end-to-end modules run the same shop elsewhere (one daily run on a Spark cluster
and S3) and compare their tables with this run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
#: the shop every end-to-end run simulates (``lakehouse simulate`` arguments)
SHOP = ["--scale", "0.01", "--seed", "3"]
#: the logical dates of the shared run's backfill: the first covers the first two simulated days (a
#: first load, whatever its interval), the second the third day
BACKFILL = ("2023-01-03", "2023-01-04")

DagRunner = Callable[..., tuple[subprocess.CompletedProcess, dict | None]]


@pytest.fixture(scope="session")
def shop_args() -> list[str]:
    """The ``lakehouse simulate``/``simulate-advance`` arguments of the shop every run simulates."""
    return SHOP


@pytest.fixture(scope="session")
def backfill_dates() -> tuple[str, str]:
    """The first and last logical date of the shared run's backfill."""
    return BACKFILL


@pytest.fixture(scope="session")
def runtime_bin() -> Path:
    path = Path(os.environ.get("LAKEHOUSE_RUNTIME_BIN", REPO / "dist" / "runtime" / "bin"))
    if not (path / "lakehouse").exists():
        pytest.fail(f"no built runtime at {path}: run `make runtime` (make test does)")
    return path


@pytest.fixture(scope="session")
def run_dag() -> DagRunner:
    """``run_dag(env, home, logical_date, to_date=None)``: one DAG run (``run_local.py``), or a
    backfill up to ``to_date``, reading the source as ``SOURCE_READER``; the process and the
    (last) run's ``{states, tries, data_interval, runs}`` (None when it wrote none)."""

    def run(env: dict[str, str], home: Path, logical_date: str,
            to_date: str | None = None) -> tuple[subprocess.CompletedProcess, dict | None]:
        states = home / f"states-{logical_date}.json"
        backfill = ["--to-date", to_date] if to_date else []
        proc = subprocess.run([sys.executable, str(REPO / "orchestration" / "run_local.py"),
                               "--logical-date", logical_date, *backfill, "--states-json", str(states)],
                              env={**env, "LAKEHOUSE_SOURCE__USER": SOURCE_READER}, capture_output=True, text=True,
                              timeout=1800)
        return proc, json.loads(states.read_text()) if states.exists() else None

    return run


#: the read-only role the DAG's tasks read the source with, as in compose
SOURCE_READER = "lakehouse_reader"


def _create_source_reader(home: Path) -> None:
    """The source database of ``home``'s embedded server, with the read-only role compose creates
    (``orchestration/compose/source-reader.sql``, run by psql as there) before the simulator (its
    owner) creates the tables."""
    from lakehouse_core.postgres import SUPERUSER, _pg_bin

    port = (home / "postgres" / "port").read_text().strip()
    psql = [_pg_bin("psql"), "-h", "127.0.0.1", "-p", port, "-U", SUPERUSER, "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*psql, "-d", "postgres", "-c", "CREATE DATABASE shop"], check=True, capture_output=True)
    subprocess.run([*psql, "-d", "shop", "-v", "reader_password=", "-v", f"owner={SUPERUSER}",
                    "-f", str(REPO / "orchestration" / "compose" / "source-reader.sql")], check=True, capture_output=True)


@pytest.fixture(scope="session")
def source_reader() -> str:
    """The read-only role the DAG's tasks read the source with."""
    return SOURCE_READER


@pytest.fixture(scope="session")
def simulated_shop(runtime_bin):
    """``simulated_shop(home, extra_env)``: a state folder ``home`` holding the simulated shop
    (three days), and the environment its runs use: the tasks find their suites in the installed
    wheels (no LAKEHOUSE_EXPECTATIONS_DIR). Each folder's database is stopped after the session."""
    homes: list[tuple[Path, dict[str, str]]] = []
    lakehouse = str(runtime_bin / "lakehouse")

    def simulate(home: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "LAKEHOUSE_EXPECTATIONS_DIR"}
        env |= {"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_RUNTIME_BIN": str(runtime_bin),
                "LAKEHOUSE_LINEAGE__ENABLED": "true",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}  # the tasks' output is part of the run's output
        env |= extra_env or {}
        homes.append((home, env))
        subprocess.run([lakehouse, "db", "start"], env=env, check=True, capture_output=True)
        _create_source_reader(home)
        proc = subprocess.run([lakehouse, "simulate", *SHOP, "--days", "3", "--reset"], env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        return env

    yield simulate
    for home, env in homes:
        subprocess.run([lakehouse, "db", "stop"], env=env, capture_output=True)


@pytest.fixture(scope="session")
def e2e_env(tmp_path_factory, simulated_shop):
    """The local run's state folder and environment."""
    home = tmp_path_factory.mktemp("airflow-e2e")
    return home, simulated_shop(home)


@pytest.fixture(scope="session")
def dag_run(e2e_env, run_dag: DagRunner):
    """The local backfill of ``BACKFILL``: its state folder, process and (last run's) result."""
    home, env = e2e_env
    proc, result = run_dag(env, home, *BACKFILL)
    return home, proc, result
