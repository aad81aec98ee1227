"""What the Spark benchmarks share: a fresh state folder per run, where a result came from, and
recording it under ``scale_<scale>`` in ``bench/results/<name>.json``."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO).stdout.strip()


def arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every run takes: ``--scale``, ``--days``, ``--seed``, ``--keep``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    return parser


def in_fresh_home(name: str, keep: bool, run: Callable[[Path], int]) -> int:
    """``run(home)`` on a new state folder under /tmp (removed afterwards unless ``keep``), lineage
    off, the repository's suites, no extract safety lag."""
    home = Path(tempfile.mkdtemp(prefix=f"lakehouse-bench-{name}-"))
    os.environ.update({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_LINEAGE__ENABLED": "false",
                       "LAKEHOUSE_EXPECTATIONS_DIR": str(REPO / "expectations"),
                       "LAKEHOUSE_EXTRACT__SAFETY_LAG_SECONDS": "0"})
    try:
        return run(home)
    finally:
        if not keep:
            shutil.rmtree(home, ignore_errors=True)


def provenance() -> dict:
    """When, on what machine and from which commit a result was measured."""
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_at_end": os.getloadavg()},
            "git_commit": _git("rev-parse", "--short", "HEAD"), "git_dirty": bool(_git("status", "--porcelain"))}


def record(name: str, scale: float, result: dict) -> None:
    """Store ``result`` as ``scale_<scale>`` in ``bench/results/<name>.json`` (other scales kept)."""
    path = REPO / "bench" / "results" / f"{name}.json"
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded[f"scale_{scale:g}"] = result
    path.write_text(json.dumps(recorded, indent=1, ensure_ascii=False) + "\n")


def simulated_shop(settings, scale: float, seed: int, days: int):
    """Start the embedded PostgreSQL of ``settings`` and simulate ``days`` days of the shop from
    SHOP_START at ``scale``; returns the server (stop it when done)."""
    from lakehouse_core import postgres
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    server = postgres.EmbeddedPostgres.for_settings(settings)
    server.start()
    with postgres.connect(settings.source, settings) as conn:
        create_source_schema(conn)
        generate(conn, scale=scale, seed=seed, days=days)
        conn.commit()
    return server


#: the first simulated day, and the shop's time zone (the simulator's)
SHOP_START = dt.date(2023, 1, 1)
SHOP_ZONE = dt.timezone(dt.timedelta(hours=7))


def days_interval(first: dt.date, last: dt.date):
    """The batch interval of the shop's days ``first`` to ``last``."""
    from lakehouse_core.batch import DataInterval

    return DataInterval(dt.datetime.combine(first, dt.time(), SHOP_ZONE).astimezone(dt.timezone.utc),
                        dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), SHOP_ZONE).astimezone(dt.timezone.utc))
