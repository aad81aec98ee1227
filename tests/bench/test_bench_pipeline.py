"""The whole-pipeline benchmark ``bench/pipeline.py``: its figures from synthetic runs, and one
tiny run of the harness.

The tiny run proves that the harness generates a source, measures its peers (COPY, DuckDB on the
Arrow snapshot), runs the daily DAG's seven steps as ``lakehouse`` processes over the history and
writes ``pipeline.json`` with the documented keys and a PNG chart. It runs the first load only:
each step starts its own JVM (about 20 s each here), and a daily run or a quiet day is the same
``run_dag`` again. The dlt peer needs the bench dependency group and is left out.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADLINE_KEYS = {"scales", "incremental_over_full", "loglog_slope", "e2e_over_duckdb", "fixed_cost_seconds",
                 "bronze_over_copy"}
STEPS = ["bronze_extract", "bronze_gate", "silver_transform", "silver_gate", "gold_build", "gold_gate", "maintenance"]


@pytest.fixture(scope="module")
def pipeline():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import pipeline

        yield pipeline
    finally:
        sys.path.remove(str(REPO / "bench"))


def _run(seconds: float) -> dict:
    """A DAG run whose seven steps take ``seconds`` in all (the first six: end to end)."""
    step = {"seconds": seconds / 7, "driver_peak_mb": 200, "jvm_peak_mb": 900, "spark_applications": 1}
    return {"steps": {name: dict(step) for name in STEPS}, "seconds": seconds, "to_gold_seconds": seconds * 6 / 7,
            "spark_applications": 7}


def _scale(scale: float, first: float, daily: list[float], quiet: float | None) -> dict:
    return {"scale": scale, "first_load": _run(first), "daily_runs": [_run(s) for s in daily],
            "quiet_day": _run(quiet) if quiet else None, "total_seconds": first + sum(daily),
            "incremental_over_full": round(sorted(daily)[len(daily) // 2] / first, 3),
            "e2e_over_duckdb": first / scale, "bronze_over_copy": 0.5 * scale, "bronze_over_dlt": 2.0}


def test_headline_figures_come_from_the_scale_each_point_names(pipeline):
    runs = [_scale(0.1, 100, [50, 60, 70], 40), _scale(1, 200, [80, 90, 100], 45), _scale(10, 1600, [120, 130, 140], 50)]
    summary = pipeline.summarise(runs)
    assert summary["incremental_over_full"] == round(130 / 1600, 3) and summary["incremental_over_full_scale"] == 10
    assert summary["e2e_over_duckdb"] == 160 and summary["e2e_over_duckdb_scale"] == 10
    assert summary["bronze_over_copy"] == 0.5 and summary["bronze_over_copy_scale"] == 1
    assert summary["fixed_cost_seconds"] == 40 and summary["fixed_cost_scale"] == 0.1
    # totals 280, 470, 1990 over scales 0.1, 1, 10: the least-squares slope of the logs
    xs, ys = [math.log(s) for s in (0.1, 1, 10)], [math.log(t) for t in (280, 470, 1990)]
    expected = (ys[2] - ys[0]) / (xs[2] - xs[0])  # evenly spaced x: the end points give the slope
    assert summary["loglog_slope"] == pytest.approx(expected, abs=1e-3)
    assert summary["loglog_slope_daily"] == pytest.approx((math.log(130) - math.log(60)) / math.log(100), abs=1e-3)
    # without scale 10, the nearest scale run stands in, and says so
    partial = pipeline.summarise(runs[:2])
    assert partial["incremental_over_full_scale"] == 1 and partial["incremental_over_full"] == 0.45


def test_one_scale_has_no_slope(pipeline):
    assert pipeline.loglog_slope([(1.0, 10.0)]) is None
    assert pipeline.loglog_slope([(1.0, 10.0), (10.0, 100.0)]) == 1.0


def test_pipeline_benchmark_runs_the_dag_and_writes_results(tmp_path):
    out = tmp_path / "pipeline.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pipeline.py"), "--scales", "0.002", "--days", "2", "--daily-days", "0",
         "--no-quiet-day", "--repeats", "1", "--skip-dlt", "--output", str(out)],
        capture_output=True, text=True, timeout=1200, env=os.environ,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert HEADLINE_KEYS <= set(result)
    [scale] = result["scales"]
    assert scale["scale"] == 0.002 and scale["source_rows"] == sum(scale["table_rows"].values()) > 0
    assert len(scale["table_rows"]) == 24
    run = scale["first_load"]
    assert list(run["steps"]) == STEPS
    for step in run["steps"].values():
        assert step["seconds"] > 0 and step["rows_per_s"] > 0 and step["driver_peak_mb"] > 0
    # every step is its own process (what an Airflow task pays); a layer step gates its batch in its
    # Spark application, the gate step reports that without one; maintenance decides from the tables'
    # metadata that a first load leaves it nothing to do, and starts none
    layers = ["bronze_extract", "silver_transform", "gold_build"]
    assert run["spark_applications"] == 3 and all(run["steps"][s]["jvm_peak_mb"] > 0 for s in layers)
    assert all(run["steps"][s]["spark_applications"] == (s in layers) for s in STEPS)
    assert run["to_gold_seconds"] == pytest.approx(sum(run["steps"][s]["seconds"] for s in STEPS[:-1]), abs=0.05)
    # the DuckDB peer computed the seven marts from the snapshot
    marts = scale["peers"]["duckdb"]["mart_rows"]
    assert len(marts) == 7 and marts["mart_daily_sales"] > 0
    assert result["e2e_over_duckdb"] == scale["e2e_over_duckdb"] > 0 and result["bronze_over_copy"] > 0
    # one scale, no daily run, no quiet day: those figures are absent, not made up
    assert result["loglog_slope"] is None and result["fixed_cost_seconds"] is None
    assert result["incremental_over_full"] is None
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert "bronze_extract" in proc.stdout  # the table of step seconds
