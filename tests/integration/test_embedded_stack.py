"""The embedded PostgreSQL: started on demand, state survives a restart, one command removes it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lakehouse_core import postgres
from lakehouse_core.settings import LakehouseSettings


def _lakehouse(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAKEHOUSE_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "lakehouse_core.cli", *args], env=env,
                          capture_output=True, text=True, check=True)


def test_state_survives_restart_and_clean_removes_it(tmp_path):
    home = tmp_path / "state"
    settings = LakehouseSettings(home=home)
    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:  # starts on demand
        cur.execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
        conn.commit()
    server = postgres.EmbeddedPostgres.for_settings(settings)
    assert server.is_running()
    assert "stopped" in _lakehouse(home, "db", "stop").stdout
    assert not server.is_running()

    with postgres.connect(settings.source, settings) as conn, conn.cursor() as cur:
        cur.execute("SELECT v FROM kept")
        assert cur.fetchone() == (42,)
    assert (home / "postgres" / "data" / "PG_VERSION").exists()

    assert "removed" in _lakehouse(home, "clean").stdout
    assert not home.exists() and not server.is_running()


def _simulate(home: Path, database: str = "shop") -> None:
    """``lakehouse simulate`` (a command that needs the server, no Spark) into ``database``."""
    env = {**os.environ, "LAKEHOUSE_HOME": str(home), "LAKEHOUSE_SOURCE__DBNAME": database}
    proc = subprocess.run([sys.executable, "-m", "lakehouse_core.cli", "simulate", "--scale", "0.001", "--seed", "1",
                           "--days", "1", "--reset"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _command_in_progress(home: Path) -> subprocess.Popen:
    """Another process in the middle of a command that uses the server: it connected, and ends
    (as ``lakehouse`` commands do) when a line is written to its stdin."""
    code = ("from lakehouse_core import postgres; from lakehouse_core.settings import LakehouseSettings\n"
            "with postgres.released_after():\n"
            f"    settings = LakehouseSettings(home={str(home)!r})\n"
            "    postgres.connect(settings.source, settings).close()\n"
            "    print('connected', flush=True)\n"
            "    input()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "connected"
    return proc


def test_a_command_stops_the_server_it_started_unless_another_process_uses_it(tmp_path):
    """DESIGN §7: started on demand by any command that needs it, stopped afterwards."""
    home = tmp_path / "state"
    server = postgres.EmbeddedPostgres.for_settings(LakehouseSettings(home=home))

    _simulate(home)  # alone: started for the command, stopped when it returned
    assert not server.is_running()

    # two commands at once: the first to end leaves the server to the other, the last stops it
    other = _command_in_progress(home)
    _simulate(home)
    assert server.is_running()
    other.communicate("\n", timeout=60)
    assert other.returncode == 0 and not server.is_running()

    # a process killed in the middle of a command does not keep it running
    killed = _command_in_progress(home)
    killed.kill()
    killed.wait()
    _simulate(home)
    assert not server.is_running()

    # `lakehouse db start` keeps it running after the commands that use it, until `db stop`
    assert "running until" in _lakehouse(home, "db", "start").stdout
    _simulate(home)
    assert server.is_running()
    _lakehouse(home, "db", "stop")
    assert not server.is_running()
