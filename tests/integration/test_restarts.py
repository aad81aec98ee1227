"""The source and catalog database restarted under running jobs: nothing lost or duplicated.

A lakehouse of its own (state folder, embedded PostgreSQL holding both the source and the Iceberg
catalog), driven through the ``lakehouse`` CLI as Airflow drives it. The server is restarted in
place (``pg_ctl restart -m fast``: every connection dropped, as in a failover):

* day 1, bronze extract: as soon as it reports its first table, while other tables are still read
  from the source and committed to the catalog (a restart at a random time);
* day 1, bronze gate: with the gate stopped (``LAKEHOUSE_PAUSE_AT``, ``lakehouse_core.faults``)
  after validating, right before its first publish commit;
* day 2, bronze extract: stopped right before a table's state commit on its audit branch;
* day 2, bronze gate: stopped between two publish commits (one table published).

A job either rides a restart out or fails with one line and exit code 75 (Airflow retries it);
a stopped one must fail so (its layer lease went with the restart: ``locks.check_leases``), and
an extract never publishes. The reruns then publish bronze, whose current state equals the
source's, key by key, with no row landed twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest

from lakehouse_core import postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import EXIT_RETRYABLE
from lakehouse_core.settings import LakehouseSettings

pytestmark = pytest.mark.spark

DAY1 = DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00")
DAY2 = DataInterval.parse("2023-01-05T00:00:00+07:00", "2023-01-06T00:00:00+07:00")
SHOP = ["--scale", "0.01", "--seed", "3"]
REPO = Path(__file__).resolve().parents[2]
#: tables whose bronze equals the source after every batch (a timestamp cursor's rows near the
#: source clock wait for a later batch: README "Rows beyond the upper bound")
TABLES = ["customers", "orders", "order_items", "order_status_history", "cart", "cart_items", "wishlist", "inventory_log"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    return {**env, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_LINEAGE__ENABLED": "false",
            "LAKEHOUSE_EXPECTATIONS_DIR": str(REPO / "expectations")}


def _lakehouse(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lakehouse_core.cli", *args], env=_env(home),
                          capture_output=True, text=True, timeout=900)


def _interval(interval: DataInterval) -> list[str]:
    return ["--interval-start", interval.start.isoformat(), "--interval-end", interval.end.isoformat()]


def _through_a_restart(home: Path, args: list[str], pause_at: str | None = None) -> dict:
    """``lakehouse <args>`` with the server restarted under it: once it stopped at ``pause_at``
    (then resumed), else once it reported its first table."""
    server = postgres.EmbeddedPostgres.for_settings(LakehouseSettings(home=home))
    assert server.is_running()
    env = _env(home) | ({"LAKEHOUSE_PAUSE_AT": pause_at} if pause_at else {})
    proc = subprocess.Popen([sys.executable, "-m", "lakehouse_core.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
    marker = ("stderr", f"LAKEHOUSE_PAUSE_AT={pause_at}") if pause_at else ("stdout", "bronze.")
    trigger = threading.Event()

    def drain(name: str) -> None:
        for line in getattr(proc, name):
            lines[name].append(line)
            if name == marker[0] and marker[1] in line:
                trigger.set()

    drains = [threading.Thread(target=drain, args=(name,), daemon=True) for name in lines]
    for thread in drains:
        thread.start()
    while not trigger.wait(1) and proc.poll() is None:
        pass
    restarted_after = next((line.strip() for line in lines[marker[0]] if marker[1] in line), None)
    if restarted_after is not None:
        server.restart()
        if pause_at:
            os.kill(proc.pid, signal.SIGCONT)
    code = proc.wait(timeout=900)
    for thread in drains:
        thread.join()
    return {"code": code, "stderr": "".join(lines["stderr"]), "restarted_after": restarted_after}


def _bronze_against_source(home: Path) -> dict[str, tuple[int, int, int]]:
    """Per table: (keys bronze holds live, rows the source holds, keys landed twice in one batch)."""
    from lakehouse_core.catalog import load_catalog

    settings = LakehouseSettings(home=home)
    catalog = load_catalog(settings)
    found = {}
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        for table in TABLES:
            db = duckdb.connect()
            db.register("bronze", catalog.load_table(f"bronze.{table}").scan().to_arrow())
            live, twice = db.sql("""
                SELECT (SELECT count(*) FROM (SELECT id, arg_max(_op, _batch_id) AS op FROM bronze GROUP BY id)
                        WHERE op <> 'delete'),
                       (SELECT count(*) FROM (SELECT id FROM bronze GROUP BY id, _batch_id HAVING count(*) > 1))
            """).fetchone()
            cur.execute(f'SELECT count(*) FROM public."{table}"')
            found[table] = (live, cur.fetchone()[0], twice)
    return found


def _on_main(home: Path, batch_id: str) -> tuple[int, int]:
    """(rows of ``batch_id``, tables whose state is ``batch_id``'s) the bronze tables' ``main``
    shows (tables not created yet show none)."""
    from pyiceberg.exceptions import NoSuchTableError
    from pyiceberg.expressions import EqualTo

    from lakehouse_core.catalog import load_catalog

    catalog, rows, tables = load_catalog(LakehouseSettings(home=home)), 0, 0
    for name in TABLES:
        try:
            table = catalog.load_table(f"bronze.{name}")
        except NoSuchTableError:
            continue
        rows += table.scan(row_filter=EqualTo("_batch_id", batch_id)).to_arrow().num_rows
        head = table.current_snapshot()
        tables += head is not None and head.summary.get("lakehouse.batch_id") == batch_id
    return rows, tables


#: per day: where the extract and the gate meet the restart (None: once the first table is reported)
RESTARTS = {"day1": (DAY1, None, "gate.validated"), "day2": (DAY2, "stage.written", "gate.published_some")}


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    home = tmp_path_factory.mktemp("restarts")
    server = postgres.EmbeddedPostgres.for_settings(LakehouseSettings(home=home))
    # started here: a server a CLI process started would hold the pipes the test reads that process through
    server.start()
    observed = {}
    try:
        simulated = _lakehouse(home, "simulate", *SHOP, "--days", "4", "--reset")
        assert simulated.returncode == 0, simulated.stderr[-2000:]
        for day, (interval, extract_pause, gate_pause) in RESTARTS.items():
            if day == "day2":
                advanced = _lakehouse(home, "simulate-advance", *SHOP, "--days", "1")
                assert advanced.returncode == 0, advanced.stderr[-2000:]
            tables = ["--tables", ",".join(TABLES), *_interval(interval)]
            run = observed[day] = {"extract": _through_a_restart(home, ["bronze", "extract", *tables], extract_pause)}
            run["extract"]["published"] = _on_main(home, interval.batch_id)
            run["extract_rerun"] = _lakehouse(home, "bronze", "extract", *tables)
            run["gate"] = _through_a_restart(home, ["gate", "bronze", *tables], gate_pause)
            run["gate"]["published"] = _on_main(home, interval.batch_id)
            run["gate_rerun"] = _lakehouse(home, "gate", "bronze", *tables)
            run["bronze"] = _bronze_against_source(home)
        yield observed
    finally:
        server.stop()


def _check_restarted(run: dict, paused: bool) -> None:
    """A job the restart met: it rode it out, or failed with exit 75 and one line; a job stopped
    at a commit by ``LAKEHOUSE_PAUSE_AT`` failed so, its lease gone with the restart."""
    assert run["restarted_after"], "the job never reached the point the server was to restart at"
    assert run["code"] in ((EXIT_RETRYABLE,) if paused else (0, EXIT_RETRYABLE)), run["stderr"][-2000:]
    if run["code"] == EXIT_RETRYABLE:
        last = run["stderr"].strip().splitlines()[-1]
        assert last.startswith(("lakehouse: error: a database connection failed", "lakehouse: error: bronze")), last
        if paused:
            assert "lost its lease on the catalog database" in last, last


@pytest.mark.parametrize("day", list(RESTARTS))
def test_an_extract_through_a_restart_publishes_nothing_and_its_rerun_everything(restarted, day):
    run = restarted[day]
    _check_restarted(run["extract"], paused=RESTARTS[day][1] is not None)
    assert run["extract"]["published"] == (0, 0)
    assert run["extract_rerun"].returncode == 0, run["extract_rerun"].stderr[-2000:]


@pytest.mark.parametrize("day", list(RESTARTS))
def test_a_gate_through_a_restart_at_a_publish_commit_is_completed_by_its_rerun(restarted, day):
    run = restarted[day]
    _check_restarted(run["gate"], paused=True)
    rows, tables = run["gate"]["published"]
    # stopped before the first publish commit, or after the first table's
    assert tables == (0 if RESTARTS[day][2] == "gate.validated" else 1), (rows, tables)
    assert run["gate_rerun"].returncode == 0, run["gate_rerun"].stderr[-2000:]
    for table, (live, source, twice) in run["bronze"].items():
        assert (live, twice) == (source, 0), table
