"""Bronze extraction benchmark: PostgreSQL COPY vs bronze (COPY/Arrow fast path, JDBC) vs dlt.

    uv sync --group bench                 # dlt + connectorx (the peer); not in the default sync
    .venv/bin/python bench/bronze.py --scale 1

One run, on its own fresh state folder (``LAKEHOUSE_HOME`` under /tmp, removed afterwards
unless ``--keep``) and its own embedded PostgreSQL:

1. generate the source at ``--scale`` (``--days`` 30: scale 1 ≈ 3 M rows in 24 tables), then
   ``VACUUM ANALYZE`` and one untimed ``COPY`` pass (hint bits, cache), as a source in steady
   state would be;
2. ``COPY (SELECT * FROM t) TO STDOUT`` of the 24 tables, one stream, psycopg2 ``copy_expert``
   into a null sink (text format, what the fast path reads: the baseline; CSV for reference);
3. dlt ``sql_table`` per table (backend ``connectorx``, ``partition_on`` the key with 2
   partitions above 50 k rows) in one ``pipeline.run`` into the ``filesystem`` destination as
   Parquet on local disk → dlt_seconds (whole ``pipeline.run``; a fresh pipeline per repeat);
4. one SparkSession (start timed), then per reader (``LAKEHOUSE_EXTRACT__READER``; COPY
   reader first, then JDBC: a JDBC pass's JVM aftermath would fall into the next pass) and
   repeat, a first bronze load of the 24 tables with the code
   ``lakehouse bronze extract`` runs (``extract_tables``: source clock and snapshot, plans,
   tables, audit branches, data, ``lakehouse.*`` state commits), every row checked against
   the source counts: bronze_seconds (COPY reader, i.e. the landing path) and
   bronze_jdbc_seconds (Spark's JDBC reader, the DataFrame path). Tables are dropped (PURGE)
   between repeats, untimed; the safety lag is 0 so the load reads every generated row.
   Right before each COPY-reader pass, one more COPY text pass: copy_seconds /
   copy_rows_per_s is the median of all COPY text passes (step 2 and these), so the
   baseline sees the same drifting machine load as the passes compared with it.

Numbers are medians of ``--repeats`` (5: single runs vary by ±20 % here). CPU seconds of
this process tree and of the PostgreSQL server are recorded per phase, with the load
average: the machine may be shared, so wall times alone can mislead. Results: a table on
stdout and ``bench/results/bronze.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "bronze.json"
# the batch of the benchmark loads: its interval ends after the generated data
INTERVAL = ("2023-01-30T17:00:00+00:00", "2023-01-31T17:00:00+00:00")
DLT_SPLIT_ROWS = 50_000


# ---------------------------------------------------------------- measuring

class CpuMeter:
    """CPU seconds (user + system, children included) of processes descended from ``roots``."""

    def __init__(self, roots: set[int]):
        self.roots = roots
        self.hz = os.sysconf("SC_CLK_TCK")

    def _processes(self) -> dict[int, tuple[int, str, float]]:
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            ticks = sum(int(x) for x in fields[11:15])
            found[int(entry)] = (int(fields[1]), cmd, ticks / self.hz)
        return found

    def snapshot(self) -> dict[int, tuple[str, float]]:
        procs, kept = self._processes(), {}
        for pid, (_, cmd, cpu) in procs.items():
            p = pid
            while p and p not in self.roots:
                p = procs.get(p, (0,))[0]
            if p:
                kind = ("spark_jvm" if "java" in cmd else "postgres" if "postgres" in cmd
                        else "python" if "python" in cmd else "other")
                kept[pid] = (kind, cpu)
        return kept

    @staticmethod
    def delta(before: dict, after: dict) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (kind, cpu) in after.items():
            out[kind] = out.get(kind, 0.0) + cpu - before.get(pid, (kind, 0.0))[1]
        return {k: round(v, 2) for k, v in sorted(out.items()) if k != "other"}


@dataclass
class Timed:
    seconds: float
    cpu: dict[str, float]
    load: float


def timed(meter: CpuMeter, fn: Callable[[], object]) -> tuple[Timed, object]:
    before, start = meter.snapshot(), time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return Timed(round(seconds, 3), meter.delta(before, meter.snapshot()), round(os.getloadavg()[0], 2)), result


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


# ---------------------------------------------------------------- the source

def generate_source(settings, scale: float, seed: int, days: int) -> dict[str, int]:
    from lakehouse_core import postgres
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    with contextlib.closing(postgres.connect(settings.source, settings)) as conn:
        create_source_schema(conn, reset=True)
        counts = generate(conn, scale=scale, seed=seed, days=days)
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
    return counts


class NullSink:
    def write(self, data) -> None:
        pass


def copy_pass(conn, tables: list[str], fmt: str) -> dict[str, float]:
    """One COPY of every table into a null sink; seconds per table."""
    from lakehouse_bronze.copy_reader import quote

    seconds = {}
    with conn.cursor() as cur:
        for table in tables:
            start = time.perf_counter()
            cur.copy_expert(f"COPY (SELECT * FROM public.{quote(table)}) TO STDOUT WITH (FORMAT {fmt})", NullSink())
            seconds[table] = time.perf_counter() - start
    return seconds


def bench_copy(settings, meter: CpuMeter, tables: list[str], repeats: int) -> dict:
    from lakehouse_core import postgres

    results = {}
    with contextlib.closing(postgres.connect(settings.source, settings)) as conn:
        conn.autocommit = True
        copy_pass(conn, tables, "text")  # warm-up: hint bits and cache, untimed
        for fmt in ("text", "csv"):
            runs = [timed(meter, lambda: copy_pass(conn, tables, fmt)) for _ in range(repeats)]
            results[fmt] = {
                "seconds": median([t.seconds for t, _ in runs]),
                "runs": [t.seconds for t, _ in runs],
                "cpu_seconds": runs[len(runs) // 2][0].cpu,
                "load_avg": [t.load for t, _ in runs],
                "per_table_seconds": {tb: median([r[tb] for _, r in runs]) for tb in tables},
            }
    return results


# ---------------------------------------------------------------- dlt

def bench_dlt(db, specs, counts: dict[str, int], work: Path, meter: CpuMeter, repeats: int) -> dict:
    """dlt sql_table (connectorx, partitioned on the key) → filesystem Parquet, whole pipeline.run."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt
    from dlt.sources.sql_database import sql_table

    password = f":{db.password.get_secret_value()}" if db.password else ""
    url = f"postgresql+psycopg2://{db.user}{password}@{db.host}:{db.port}/{db.dbname}"

    def resources(backend: str):
        out = []
        for spec in specs:
            kwargs = {}
            if backend == "connectorx" and counts[spec.name] > DLT_SPLIT_ROWS:
                kwargs = {"partition_on": spec.primary_key[0], "partition_num": 2}
            out.append(sql_table(credentials=url, schema="public", table=spec.name, backend=backend,
                                 backend_kwargs=kwargs))
        return out

    def run(index: int, backend: str):
        folder = work / f"dlt-{backend}-{index}"
        shutil.rmtree(folder, ignore_errors=True)
        pipeline = dlt.pipeline(pipeline_name=f"bench_bronze_{index}", pipelines_dir=str(folder / "pipelines"),
                                destination=dlt.destinations.filesystem(bucket_url=(folder / "data").as_uri()),
                                dataset_name="bronze")
        pipeline.run(resources(backend), loader_file_format="parquet")
        rows = pipeline.last_trace.last_normalize_info.row_counts
        return {t: n for t, n in rows.items() if not t.startswith("_dlt")}

    backend = "connectorx"
    runs = []
    for i in range(repeats):
        t, rows = timed(meter, lambda: run(i, backend))
        runs.append((t, rows))
        shutil.rmtree(work / f"dlt-{backend}-{i}", ignore_errors=True)
    loaded = runs[-1][1]
    missing = {k: (counts[k], loaded.get(k)) for k in counts if loaded.get(k) != counts[k]}
    if missing:
        raise RuntimeError(f"dlt loaded different row counts (source, dlt): {missing}")
    return {
        "seconds": median([t.seconds for t, _ in runs]),
        "runs": [t.seconds for t, _ in runs],
        "cpu_seconds": runs[len(runs) // 2][0].cpu,
        "load_avg": [t.load for t, _ in runs],
        "backend": backend,
        "partitioning": f"partition_on=<primary key>, partition_num=2 for tables over {DLT_SPLIT_ROWS} rows",
        "reflection_level": "full (default)",
        "note": "connectorx lands NUMERIC as decimal(38,10) (dlt keeps the arrow data unmodified), not the declared "
                "precision; dlt adds no row hash and no table-format commit",
    }


# ---------------------------------------------------------------- bronze

def with_reader(settings, reader: str):
    return settings.model_copy(update={"extract": settings.extract.model_copy(update={"reader": reader})})


def drop_bronze(spark, specs) -> None:
    from lakehouse_core.registry import identifier

    for spec in specs:
        spark.sql(f"DROP TABLE IF EXISTS {identifier('bronze', spec.name)} PURGE")


def bronze_pass(spark, settings, specs, counts: dict[str, int]) -> dict[str, int]:
    """One first load of every table with ``lakehouse_bronze.extract.extract_tables``, as
    ``lakehouse bronze extract`` runs it; raises when a table's row count differs from the source."""
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core.batch import DataInterval

    results = extract_tables(spark, settings, specs, DataInterval.parse(*INTERVAL), source_state(settings))
    written = {r.table: r.rows_written for r in results}
    wrong = {t: (counts[t], written.get(t)) for t in counts if written.get(t) != counts[t]}
    if wrong:
        raise RuntimeError(f"bronze row counts differ from the source (source, bronze): {wrong}")
    return written


def bench_bronze(settings, specs, counts: dict[str, int], meter: CpuMeter, repeats: int, with_jdbc: bool,
                 copy_text: Callable[[], object]) -> dict:
    """Bronze passes per reader, the COPY reader's first; before each COPY-reader pass, one ``copy_text``
    pass (the baseline again, under the same machine load as the pass it is compared with).

    Not alternating readers: a COPY-reader pass right after a JDBC pass (27 CPU-s in the JVM) took
    8.4 CPU-s, against 6.4 after a COPY-reader pass."""
    from lakehouse_core.spark import get_spark

    start_t, spark = timed(meter, lambda: get_spark(settings, "bench-bronze"))
    readers = ["copy", "jdbc"] if with_jdbc else ["copy"]
    runs: dict[str, list] = {name: [] for name in readers}
    beside: list[float] = []
    try:
        for name in readers:
            for _ in range(repeats):
                drop_bronze(spark, specs)
                if name == "copy":
                    beside.append(timed(meter, copy_text)[0].seconds)
                reader_settings = with_reader(settings, name)
                runs[name].append(timed(meter, lambda: bronze_pass(spark, reader_settings, specs, counts)))
        drop_bronze(spark, specs)
    finally:
        spark.stop()

    out = {"session_start_seconds": start_t.seconds, "session_start_cpu_seconds": start_t.cpu,
           "copy_text_beside_runs": beside}
    for name, results in runs.items():
        out[name] = {
            "seconds": median([t.seconds for t, _ in results]),
            "runs": [t.seconds for t, _ in results],
            # only the reader that ran first sees a cold session (Python workers, JIT, catalog)
            "first_run_incl_session_start_seconds": (round(start_t.seconds + results[0][0].seconds, 3)
                                                     if name == readers[0] else None),
            "cpu_seconds": sorted(results, key=lambda r: r[0].seconds)[len(results) // 2][0].cpu,
            "load_avg": [t.load for t, _ in results],
        }
    return out


# ---------------------------------------------------------------- report

def _version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def machine_info(settings) -> dict:
    from lakehouse_core import jvm, postgres

    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    with contextlib.closing(postgres.connect(settings.source, settings)) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    java = None
    with contextlib.suppress(OSError, IndexError):
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(), "cpu_model": cpu_model, "memory_gib": round(mem_kb / 2**20, 1),
        "platform": platform.platform(), "python": platform.python_version(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "spark_master": settings.spark.master, "spark_driver_memory": settings.spark.driver_memory,
        "spark_partitions": settings.spark.jdbc_partitions,
        "versions": {
            "postgresql": pg_version, "java": java, "pyspark": _version("pyspark"),
            "iceberg": jvm.ICEBERG_VERSION, "postgresql_jdbc": jvm.POSTGRES_JDBC_VERSION,
            "pyarrow": _version("pyarrow"), "psycopg2": _version("psycopg2-binary"), "dlt": _version("dlt"),
            "connectorx": _version("connectorx"), "lakehouse-bronze": _version("lakehouse-bronze"),
        },
        "git_commit": git.stdout.strip() or None, "git_dirty": bool(dirty.stdout.strip()),
    }


def rate(rows: int, seconds: float | None) -> int | None:
    return None if not seconds else round(rows / seconds)


def print_report(r: dict) -> None:
    rows, copy_s = r["rows"], r["copy"]["text"]["seconds"]
    lines = [("COPY text → null sink, 1 stream", copy_s), ("COPY csv → null sink, 1 stream", r["copy"]["csv"]["seconds"])]
    if r.get("dlt"):
        lines.append((f"dlt sql_table {r['dlt']['backend']} → Parquet (pipeline.run)", r["dlt"]["seconds"]))
    b = r.get("bronze")
    if b:
        lines.append(("bronze, COPY reader: landing (warm session)", b["copy"]["seconds"]))
        lines.append(("bronze, COPY reader, 1st run + session start", b["copy"]["first_run_incl_session_start_seconds"]))
        if "jdbc" in b:
            lines.append(("bronze, JDBC reader (warm session)", b["jdbc"]["seconds"]))
    print(f"\nscale {r['scale']} ({rows:,} rows in {len(r['tables'])} tables, {r['days']} days), "
          f"{r['machine']['cpus']} cores, load avg at start {r['machine']['load_avg_at_start']}")
    print(f"{'path':52s} {'seconds':>8s} {'rows/s':>11s} {'vs COPY':>8s}")
    for label, seconds in lines:
        print(f"{label:52s} {seconds:8.2f} {rows / seconds:11,.0f} {seconds / copy_s:8.2f}")
    if b:
        print(f"\nSparkSession start: {b['session_start_seconds']:.2f} s")
        for name in ("copy", "jdbc"):
            if name in b:
                print(f"bronze {name}: runs {b[name]['runs']}, CPU seconds {b[name]['cpu_seconds']}")
    goals = r["goals"]
    print(f"\ngoals: bronze >= 0.5x COPY rows/s: {goals['bronze_ge_half_copy']} ({goals['bronze_vs_copy_rate']}x); "
          f"bronze faster than dlt: {goals['bronze_faster_than_dlt']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--home", type=Path, help="state folder (default: a fresh one under /tmp, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the state folder")
    parser.add_argument("--skip-dlt", action="store_true")
    parser.add_argument("--skip-jdbc", action="store_true")
    parser.add_argument("--skip-spark", action="store_true", help="COPY (and dlt) only")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    home = args.home or Path(tempfile.mkdtemp(prefix="lakehouse-bench-", dir="/tmp"))
    os.environ["LAKEHOUSE_HOME"] = str(home)
    os.environ["LAKEHOUSE_LINEAGE__ENABLED"] = "false"
    os.environ["LAKEHOUSE_EXTRACT__SAFETY_LAG_SECONDS"] = "0"  # a full load: every generated row
    os.environ.setdefault("LAKEHOUSE_SPARK__DRIVER_MEMORY", "4g")  # STACK-NOTES: 4g on these machines
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python tasks run with this interpreter
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

    from lakehouse_core import postgres
    from lakehouse_core.registry import Registry
    from lakehouse_core.settings import LakehouseSettings

    settings = LakehouseSettings()
    report: dict = {"scale": args.scale, "days": args.days, "seed": args.seed, "repeats": args.repeats,
                    "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "command": " ".join([Path(sys.executable).name, *sys.argv])}
    try:
        with postgres.embedded_server(settings) as server:
            db = postgres.resolve(settings.source, settings)
            postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            meter = CpuMeter({os.getpid(), postmaster})
            report["machine"] = machine_info(settings)
            gen, counts = timed(meter, lambda: generate_source(settings, args.scale, args.seed, args.days))
            specs = [spec for spec in Registry.load(settings) if spec.name in counts]
            tables = [s.name for s in specs]
            rows = sum(counts[t] for t in tables)
            print(f"generated {rows:,} rows in {len(tables)} tables in {gen.seconds:.1f} s", flush=True)
            report |= {"rows": rows, "tables": tables, "table_rows": {t: counts[t] for t in tables},
                       "generate_seconds": gen.seconds}

            report["copy"] = bench_copy(settings, meter, tables, args.repeats)
            print(f"COPY text: {report['copy']['text']['seconds']:.2f} s", flush=True)
            if not args.skip_dlt:
                try:
                    report["dlt"] = bench_dlt(db, specs, counts, home / "dlt", meter, args.repeats)
                    print(f"dlt: {report['dlt']['seconds']:.2f} s", flush=True)
                except ImportError as exc:
                    print(f"dlt skipped ({exc}): install the bench group with `uv sync --group bench`", flush=True)
            if not args.skip_spark:
                with contextlib.closing(postgres.connect(settings.source, settings)) as conn:
                    conn.autocommit = True
                    report["bronze"] = bench_bronze(settings, specs, counts, meter, args.repeats, not args.skip_jdbc,
                                                    lambda: copy_pass(conn, tables, "text"))
    finally:
        if not args.keep and args.home is None:
            shutil.rmtree(home, ignore_errors=True)

    bronze = report.get("bronze", {})
    # the baseline: every COPY text pass of the run (before dlt, and beside each bronze pass)
    report["copy"]["text"]["all_runs"] = report["copy"]["text"]["runs"] + bronze.get("copy_text_beside_runs", [])
    copy_s = report["copy"]["text"]["seconds"] = median(report["copy"]["text"]["all_runs"])
    bronze_s = bronze.get("copy", {}).get("seconds")
    dlt_s = report.get("dlt", {}).get("seconds")
    report |= {
        "copy_seconds": copy_s,
        "copy_rows_per_s": rate(rows, copy_s),
        "bronze_seconds": bronze_s,
        "bronze_seconds_incl_session_start": bronze.get("copy", {}).get("first_run_incl_session_start_seconds"),
        "bronze_rows_per_s": rate(rows, bronze_s),
        "bronze_jdbc_seconds": bronze.get("jdbc", {}).get("seconds"),
        "bronze_jdbc_rows_per_s": rate(rows, bronze.get("jdbc", {}).get("seconds")),
        "dlt_seconds": dlt_s,
        "dlt_rows_per_s": rate(rows, dlt_s),
        "session_start_included_in_bronze_seconds": False,
    }
    report["goals"] = {
        "bronze_vs_copy_rate": round(copy_s / bronze_s, 3) if bronze_s else None,
        "bronze_ge_half_copy": bool(bronze_s and copy_s / bronze_s >= 0.5),
        "bronze_faster_than_dlt": bool(bronze_s and dlt_s and bronze_s < dlt_s),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    print_report(report)
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
