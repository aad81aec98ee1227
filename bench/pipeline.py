"""Whole-pipeline benchmark: the daily DAG's steps at several scales, against the peers users would pick.

    uv sync --frozen --group bench        # dlt + connectorx, the extract-load peer
    .venv/bin/python bench/pipeline.py --scales 1,10

Per scale, on its own fresh state folder (``LAKEHOUSE_HOME`` under /tmp, removed afterwards unless
``--keep``) and its own embedded PostgreSQL:

1. the source is generated for ``--days`` − 1 days at the scale (the history);
2. **peers** on that snapshot: PostgreSQL ``COPY (SELECT * FROM t) TO STDOUT`` of the 24 tables in
   one stream (the extraction limit; median of ``--repeats``), dlt's ``sql_table`` with the
   connectorx backend into Parquet (extract-load; ``--skip-dlt`` leaves it out), and DuckDB
   computing the seven gold marts (``bench/duckdb_marts.py``) from the snapshot handed over as Arrow
   (the hand-over, a typed ``COPY … CSV`` per table into pyarrow, is timed on its own);
3. **first load**: the DAG's seven steps (``STEPS``, as ``orchestration/dags/lakehouse_daily.py``
   runs them: one ``lakehouse`` process per step; each layer step gates its batch in its own Spark
   application, and the gate step after it reports that outcome without one) over the history's
   interval;
4. **daily runs**: ``--daily-days`` times, the simulator advances one day and the seven steps run
   for that day;
5. **a quiet day**: the seven steps for the next day with no source change (the fixed cost).

Each step is a process like an Airflow task's: its wall time includes the Python and JVM start.
A sampler records the peak resident memory of the step's driver (the ``lakehouse`` Python process),
of its JVM and of Spark's Python workers. Results: ``bench/results/pipeline.json`` (keys in
``bench/README.md``), a chart of step times per scale (``bench/results/pipeline.png``), and a table
on stdout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import harness  # bench/harness.py (this folder is on sys.path when run as a script)

#: the daily DAG's steps (``orchestration/dags/lakehouse_daily.py``, ``STEPS``), as ``lakehouse`` arguments
STEPS: list[tuple[str, list[str]]] = [
    ("bronze_extract", ["bronze", "extract", "--gate"]),
    ("bronze_gate", ["gate", "bronze"]),
    ("silver_transform", ["silver", "transform", "--gate"]),
    ("silver_gate", ["gate", "silver"]),
    ("gold_build", ["gold", "build", "--gate"]),
    ("gold_gate", ["gate", "gold"]),
    ("maintenance", ["maintain"]),
]
#: the steps from source to published gold (end to end; maintenance is not needed to read gold)
TO_GOLD = [name for name, _ in STEPS if name != "maintenance"]
RESULTS = harness.REPO / "bench" / "results"
MB = 1024 * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,10", help="comma-separated simulator scales, e.g. 1,3,10")
    parser.add_argument("--days", type=int, default=30, help="simulated days of source before the daily runs "
                                                            "(the history is days − 1)")
    parser.add_argument("--daily-days", type=int, default=3, help="simulated days run one by one after the first load")
    parser.add_argument("--no-quiet-day", action="store_true", help="leave out the day with no source change")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3, help="COPY passes (median)")
    parser.add_argument("--skip-dlt", action="store_true", help="leave out the dlt peer (needs the bench group)")
    parser.add_argument("--lakehouse", type=Path, default=None,
                        help="the lakehouse command the steps run (default: $LAKEHOUSE_RUNTIME_BIN/lakehouse, "
                             "else the workspace's .venv/bin/lakehouse)")
    parser.add_argument("--output", type=Path, default=RESULTS / "pipeline.json")
    parser.add_argument("--chart", type=Path, default=None, help="default: the output's name with .png")
    parser.add_argument("--keep", action="store_true", help="keep the state folders")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other scales already in --output (a scale run again is replaced) and "
                             "compute the figures over all of them")
    args = parser.parse_args(argv)
    try:
        scales = [float(s) for s in args.scales.split(",")]
    except ValueError:
        parser.error(f"--scales takes comma-separated numbers, not {args.scales!r}")
    if not all(s > 0 for s in scales) or args.days < 2 or args.daily_days < 0:
        parser.error("every scale must be above 0, --days at least 2 and --daily-days at least 0")
    lakehouse = args.lakehouse or _default_lakehouse()
    if not lakehouse.is_file():
        parser.error(f"no lakehouse command at {lakehouse} (run `make runtime`, or give --lakehouse)")
    if not args.skip_dlt and importlib.util.find_spec("dlt") is None:
        parser.error("the dlt peer needs the bench group (uv sync --frozen --group bench), or give --skip-dlt")

    command = "python bench/pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    runs = []
    if args.merge and args.output.exists():
        runs = [r for r in json.loads(args.output.read_text())["scales"] if r["scale"] not in scales]
    for scale in scales:
        result: dict = {}
        harness.in_fresh_home(f"pipeline-{scale:g}", args.keep,
                              lambda home: result.update(run_scale(args, scale, lakehouse, home)) or 0)
        runs.append(result | {"command": command, **harness.provenance()})
        print_scale(result)
    runs.sort(key=lambda r: r["scale"])
    summary = summarise(runs)
    recorded = {"command": command, "lakehouse": str(lakehouse), **summary, "scales": runs, **harness.provenance()}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(recorded, indent=1) + "\n")
    chart(runs, args.chart or args.output.with_suffix(".png"))
    print(json.dumps(summary, indent=1))
    return 0


def _default_lakehouse() -> Path:
    runtime = os.environ.get("LAKEHOUSE_RUNTIME_BIN")
    return Path(runtime) / "lakehouse" if runtime else harness.REPO / ".venv" / "bin" / "lakehouse"


# ---------------------------------------------------------------- one step, as an Airflow task runs it

@dataclass
class Peaks:
    """The highest resident memory seen per kind of process in a step's process tree (written by the
    one sampler thread, read once it has stopped)."""

    driver: int = 0
    jvm: int = 0
    python_workers: int = 0
    jvm_seen: bool = False

    def sample(self, root) -> None:
        import psutil

        try:
            driver = root.memory_info().rss
            jvm = workers = 0
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    name = child.name()
                    if name == "java":
                        jvm += child.memory_info().rss
                    elif name.startswith("python"):
                        workers += child.memory_info().rss
        except psutil.Error:
            return
        self.driver, self.jvm = max(self.driver, driver), max(self.jvm, jvm)
        self.python_workers = max(self.python_workers, workers)
        self.jvm_seen = self.jvm_seen or jvm > 0


def run_step(lakehouse: Path, name: str, arguments: list[str], log: Path) -> dict:
    """Run one ``lakehouse`` step as a process, sampling its memory every 0.2 s and writing its output
    to ``log``, each line after the seconds since the step began; its seconds, peaks and whether it
    started a JVM. Raises RuntimeError naming the step with the tail of its output."""
    import psutil

    peaks, done = Peaks(), threading.Event()
    began = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n$ lakehouse {' '.join(arguments)}\n")
        proc = subprocess.Popen([str(lakehouse), *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
        root = psutil.Process(proc.pid)

        def sample() -> None:  # at once, then every 0.2 s (a gate step that reports its record takes ~1 s)
            peaks.sample(root)
            while not done.wait(0.2):
                peaks.sample(root)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tail: collections.deque[str] = collections.deque(maxlen=40)
        for line in proc.stdout:
            out.write(f"{time.perf_counter() - began:8.2f}  {line}")
            tail.append(line)
        code = proc.wait()
        done.set()
        sampler.join()
    seconds = time.perf_counter() - began
    if code != 0:
        raise RuntimeError(f"step {name} (lakehouse {' '.join(arguments)}) failed with exit {code}:\n{''.join(tail)}")
    return {"seconds": round(seconds, 2), "driver_peak_mb": round(peaks.driver / MB),
            "jvm_peak_mb": round(peaks.jvm / MB), "python_workers_peak_mb": round(peaks.python_workers / MB),
            "spark_applications": int(peaks.jvm_seen)}


def run_dag(lakehouse: Path, interval, log: Path, source_rows: int) -> dict:
    """The seven steps for ``interval``: per step its figures (``rows_per_s``: the source's rows over
    the step's seconds), and the totals."""
    window = ["--interval-start", interval.start.isoformat(), "--interval-end", interval.end.isoformat()]
    steps = {}
    for name, command in STEPS:
        step = run_step(lakehouse, name, command + (window if name != "maintenance" else []), log)
        steps[name] = step | {"rows_per_s": round(source_rows / step["seconds"])}
    return {"steps": steps, "seconds": round(sum(s["seconds"] for s in steps.values()), 2),
            "to_gold_seconds": round(sum(steps[n]["seconds"] for n in TO_GOLD), 2),
            "spark_applications": sum(s["spark_applications"] for s in steps.values())}


# ---------------------------------------------------------------- peers

def source_counts(conn, tables: list[str]) -> dict[str, int]:
    from lakehouse_bronze.copy_reader import quote

    with conn.cursor() as cur:
        counts = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM public.{quote(table)}")
            counts[table] = cur.fetchone()[0]
    return counts


def peer_copy(conn, tables: list[str], repeats: int) -> dict:
    """COPY text of every table in one stream into a null sink: the median of ``repeats`` passes after
    one untimed pass (cache)."""
    import bronze  # bench/bronze.py

    bronze.copy_pass(conn, tables, "text")
    runs = [sum(bronze.copy_pass(conn, tables, "text").values()) for _ in range(repeats)]
    return {"seconds": round(statistics.median(runs), 3), "runs": [round(r, 3) for r in runs]}


def peer_dlt(settings, specs, counts: dict[str, int], work: Path) -> dict:
    """dlt ``sql_table`` (connectorx) → Parquet, one ``pipeline.run`` (bench/bronze.py's set-up)."""
    import bronze  # bench/bronze.py
    from lakehouse_core import postgres

    meter = bronze.CpuMeter({os.getpid()})
    result = bronze.bench_dlt(postgres.resolve(settings.source, settings), specs, counts, work, meter, repeats=1)
    return {"seconds": result["seconds"], "backend": result["backend"], "cpu_seconds": result["cpu_seconds"]}


#: pyarrow types of the PostgreSQL types the source uses (information_schema.columns.data_type)
def _arrow_type(data_type: str, precision, scale):
    import pyarrow as pa

    simple = {"integer": pa.int32(), "bigint": pa.int64(), "smallint": pa.int16(), "boolean": pa.bool_(),
              "text": pa.string(), "character varying": pa.string(), "character": pa.string(),
              "date": pa.date32(), "double precision": pa.float64(), "real": pa.float32(), "uuid": pa.string(),
              "jsonb": pa.string(), "json": pa.string(),
              "timestamp without time zone": pa.timestamp("us"),
              "timestamp with time zone": pa.timestamp("us", tz="UTC")}
    if data_type == "numeric":
        return pa.decimal128(precision or 38, scale or 0)
    if data_type not in simple:
        raise ValueError(f"the DuckDB peer has no Arrow type for PostgreSQL type {data_type!r}")
    return simple[data_type]


def source_as_arrow(conn, tables: list[str]) -> dict:
    """Every source table as a pyarrow Table, typed from ``information_schema`` (``COPY … CSV`` read
    by pyarrow's CSV reader; timestamps with time zone in UTC)."""
    import io

    import pyarrow.csv as pacsv
    from lakehouse_bronze.copy_reader import quote

    out = {}
    with conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        for table in tables:
            cur.execute("SELECT column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns"
                        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", (table,))
            schema = {name: _arrow_type(kind, p, s) for name, kind, p, s in cur.fetchall()}
            buffer = io.BytesIO()
            cur.copy_expert(f"COPY public.{quote(table)} TO STDOUT WITH (FORMAT csv, HEADER true)", buffer)
            buffer.seek(0)
            out[table] = pacsv.read_csv(buffer, convert_options=pacsv.ConvertOptions(
                column_types=schema, strings_can_be_null=True, quoted_strings_can_be_null=False,
                true_values=["t"], false_values=["f"]))
            if out[table].schema.names != list(schema):
                raise ValueError(f"{table}: COPY gave columns {out[table].schema.names}, expected {list(schema)}")
    return out


def peer_duckdb(conn, tables: list[str], as_of: dt.date) -> dict:
    """The source handed over as Arrow, then DuckDB computing the seven gold marts from it."""
    import duckdb_marts  # bench/duckdb_marts.py

    began = time.perf_counter()
    snapshot = source_as_arrow(conn, tables)
    handed_over = time.perf_counter()
    marts = duckdb_marts.compute_marts(snapshot, as_of)
    computed = time.perf_counter()
    return {"seconds": round(computed - began, 2), "arrow_handover_seconds": round(handed_over - began, 2),
            "marts_seconds": round(computed - handed_over, 2), "mart_rows": {k: v.num_rows for k, v in marts.items()}}


# ---------------------------------------------------------------- one scale

def run_scale(args: argparse.Namespace, scale: float, lakehouse: Path, home: Path) -> dict:
    from lakehouse_core import postgres
    from lakehouse_core.registry import Registry
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_simulator.advance import advance

    settings = LakehouseSettings()
    specs = Registry.load(settings).in_dependency_order()
    tables = [spec.name for spec in specs]
    log = home / "steps.log"
    print(f"scale {scale:g}: generating {args.days - 1} days (state folder {home}, step output in {log})", flush=True)
    began = time.perf_counter()
    server = harness.simulated_shop(settings, scale, args.seed, args.days - 1)
    try:
        generated = round(time.perf_counter() - began, 1)
        with contextlib.closing(postgres.connect(settings.source, settings)) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM ANALYZE")
            counts = source_counts(conn, tables)
            rows = sum(counts.values())
            last_day = harness.SHOP_START + dt.timedelta(days=args.days - 2)
            peers = {"copy": peer_copy(conn, tables, args.repeats),
                     "duckdb": peer_duckdb(conn, tables, last_day)}
        if not args.skip_dlt:
            peers["dlt"] = peer_dlt(settings, specs, counts, home)
        first_load = run_dag(lakehouse, harness.days_interval(harness.SHOP_START, last_day), log, rows)
        daily = []
        for _ in range(args.daily_days):
            with contextlib.closing(postgres.connect(settings.source, settings)) as conn:
                changes = advance(conn, days=1, seed=args.seed, scale=scale)
                conn.commit()
                day_rows = sum(source_counts(conn, tables).values())
            last_day += dt.timedelta(days=1)
            changed = sum(sum(day.values()) for day in changes.values())
            run = run_dag(lakehouse, harness.days_interval(last_day, last_day), log, day_rows)
            daily.append(run | {"day": last_day.isoformat(), "changed_rows": changed,
                                "changed_share": round(changed / day_rows, 4)})
        quiet = None
        if not args.no_quiet_day:
            last_day += dt.timedelta(days=1)
            quiet = run_dag(lakehouse, harness.days_interval(last_day, last_day), log, day_rows if daily else rows)
    finally:
        server.stop()

    extract = first_load["steps"]["bronze_extract"]["seconds"]
    result = {"scale": scale, "days": args.days, "seed": args.seed, "source_rows": rows, "table_rows": counts,
              "generate_seconds": generated, "peers": peers, "first_load": first_load, "daily_runs": daily,
              "quiet_day": quiet,
              "total_seconds": round(first_load["seconds"] + sum(d["seconds"] for d in daily), 2),
              "copy_rows_per_s": round(rows / peers["copy"]["seconds"]),
              "bronze_first_load_rows_per_s": round(rows / extract),
              "bronze_over_copy": ratio(peers["copy"]["seconds"], extract),
              "e2e_over_duckdb": ratio(first_load["to_gold_seconds"], peers["duckdb"]["seconds"])}
    if "dlt" in peers:
        result["bronze_over_dlt"] = ratio(peers["dlt"]["seconds"], extract)
    if daily:
        result["incremental_over_full"] = ratio(statistics.median(d["seconds"] for d in daily), first_load["seconds"])
    return result


def ratio(numerator: float, denominator: float) -> float:
    """numerator/denominator to three significant figures (a fixed number of decimals rounds a tiny ratio to 0)."""
    return float(f"{numerator / denominator:.3g}")


# ---------------------------------------------------------------- figures across scales

def loglog_slope(points: list[tuple[float, float]]) -> float | None:
    """The least-squares slope of log(seconds) over log(scale), or None below two scales."""
    if len({s for s, _ in points}) < 2:
        return None
    xs, ys = [math.log(s) for s, _ in points], [math.log(t) for _, t in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs), 3)


def summarise(runs: list[dict]) -> dict:
    """The headline figures of the acceptance points: each at the scale its point names when that
    scale ran (incremental and end to end at 10, extraction at 1, fixed cost at the smallest), else at
    the nearest scale that ran; ``*_scale`` says which."""
    def at(scale: float, key: str) -> tuple[float | None, float | None]:
        candidates = [r for r in runs if r.get(key) is not None]
        if not candidates:
            return None, None
        chosen = min(candidates, key=lambda r: abs(math.log(r["scale"] / scale)))
        return chosen[key], chosen["scale"]

    smallest = min(runs, key=lambda r: r["scale"])
    summary: dict = {}
    for key, scale in (("incremental_over_full", 10), ("e2e_over_duckdb", 10), ("bronze_over_copy", 1),
                       ("bronze_over_dlt", 1)):
        summary[key], summary[f"{key}_scale"] = at(scale, key)
    summary["loglog_slope"] = loglog_slope([(r["scale"], r["total_seconds"]) for r in runs])
    summary["loglog_slope_daily"] = loglog_slope([(r["scale"], statistics.median(d["seconds"] for d in r["daily_runs"]))
                                                  for r in runs if r["daily_runs"]])
    quiet = smallest["quiet_day"]
    summary["fixed_cost_seconds"] = quiet["seconds"] if quiet else None
    summary["fixed_cost_scale"] = smallest["scale"] if quiet else None
    summary["fixed_cost_spark_applications"] = quiet["spark_applications"] if quiet else None
    summary["peak_jvm_mb"] = max(s["jvm_peak_mb"] for r in runs for run in _dag_runs(r) for s in run["steps"].values())
    summary["peak_driver_mb"] = max(s["driver_peak_mb"] for r in runs for run in _dag_runs(r)
                                    for s in run["steps"].values())
    return summary


def _dag_runs(result: dict) -> list[dict]:
    return [result["first_load"], *result["daily_runs"], *([result["quiet_day"]] if result["quiet_day"] else [])]


# ---------------------------------------------------------------- output

def print_scale(r: dict) -> None:
    print(f"\nscale {r['scale']:g}: {r['source_rows']:,} source rows, generated in {r['generate_seconds']} s")
    peers = r["peers"]
    print(f"  peers: COPY {peers['copy']['seconds']} s, DuckDB marts {peers['duckdb']['seconds']} s "
          f"(Arrow hand-over {peers['duckdb']['arrow_handover_seconds']} s)"
          + (f", dlt {peers['dlt']['seconds']} s" if "dlt" in peers else ""))
    runs = [("first load", r["first_load"]), *((f"day {d['day']}", d) for d in r["daily_runs"])]
    if r["quiet_day"]:
        runs.append(("quiet day", r["quiet_day"]))
    print(f"  {'run':<16}" + "".join(f"{name:>17}" for name, _ in STEPS) + f"{'total':>9}")
    for label, run in runs:
        print(f"  {label:<16}" + "".join(f"{run['steps'][n]['seconds']:>17.1f}" for n, _ in STEPS)
              + f"{run['seconds']:>9.1f}")
    print(f"  bronze/COPY {r['bronze_over_copy']}, end to end/DuckDB {r['e2e_over_duckdb']}, "
          f"daily/full {r.get('incremental_over_full')}", flush=True)


def chart(runs: list[dict], path: Path) -> None:
    """Stacked bars of step seconds per scale: the first load, the median daily run, the quiet day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [("first load", lambda r: [r["first_load"]]), ("daily run (median)", lambda r: r["daily_runs"]),
             ("quiet day", lambda r: [r["quiet_day"]] if r["quiet_day"] else [])]
    figure, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4.5), sharey=False)
    labels = [f"{r['scale']:g}" for r in runs]
    for axis, (title, pick) in zip(axes, kinds):
        bottom = [0.0] * len(runs)
        for name, _ in STEPS:
            heights = [statistics.median(run["steps"][name]["seconds"] for run in pick(r)) if pick(r) else 0.0
                       for r in runs]
            axis.bar(labels, heights, bottom=bottom, label=name)
            bottom = [b + h for b, h in zip(bottom, heights)]
        axis.set_title(title)
        axis.set_xlabel("scale")
        axis.set_ylabel("seconds")
    figure.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(STEPS), fontsize="small")
    figure.tight_layout(rect=(0, 0.08, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
