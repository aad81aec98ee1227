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
