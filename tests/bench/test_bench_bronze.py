"""Smoke test of the benchmark harness ``bench/bronze.py``: a tiny source, COPY phase only.

It proves that the harness starts its own embedded PostgreSQL on a fresh state folder,
generates a source, measures and writes its result file with the documented keys. The
Spark and dlt phases are left out (a SparkSession and dlt would take far longer than a
smoke test should); the fast reader itself is covered by tests/integration/test_copy_reader.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_harness_runs_and_writes_results(tmp_path):
    out = tmp_path / "bronze.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bronze.py"), "--scale", "0.002", "--days", "2", "--repeats", "1",
         "--skip-spark", "--skip-dlt", "--output", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert {"scale", "copy_rows_per_s", "bronze_rows_per_s", "dlt_seconds", "bronze_seconds", "rows",
            "table_rows", "machine", "date"} <= set(result)
    assert result["scale"] == 0.002
    assert len(result["tables"]) == 24 and result["rows"] == sum(result["table_rows"].values()) > 0
    assert result["copy_rows_per_s"] > 0
    assert result["bronze_seconds"] is None and result["dlt_seconds"] is None  # phases skipped
    assert "copy_rows_per_s" in proc.stdout or "COPY text" in proc.stdout
