"""Silver layout after N simulated days: data and delete files per partition.

    .venv/bin/python bench/silver_layout.py --scale 0.1 --days 30

On a fresh state folder and embedded PostgreSQL: generate the shop (1 day), then for each
simulated day advance the source one day (normal scenario) and run bronze and silver for
the tables partitioned by day (registry ``partitioned = true``) in one SparkSession,
publishing each batch (the quality gates are left out: they do not change the layout).
Silver compacts each table before its batch (``LAKEHOUSE_MAINTENANCE__*``; ``--no-compact``
measures the layout without it).
Then count, per table, the live data files and delete files per partition
(``<table>.files`` / ``<table>.delete_files``). Results: stdout and
``bench/results/silver_layout.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "silver_layout.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-compact", action="store_true", help="LAKEHOUSE_MAINTENANCE__COMPACT=false")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.no_compact:
        os.environ["LAKEHOUSE_MAINTENANCE__COMPACT"] = "false"

    home = Path(tempfile.mkdtemp(prefix="lakehouse-layout-"))
    os.environ.update({"LAKEHOUSE_HOME": str(home), "LAKEHOUSE_LINEAGE__ENABLED": "false",
                       "LAKEHOUSE_EXPECTATIONS_DIR": str(REPO / "expectations")})
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core import iceberg, postgres
    from lakehouse_core.batch import DataInterval
    from lakehouse_core.registry import Registry, identifier
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_core.spark import get_spark
    from lakehouse_silver.transform import transform_table
    from lakehouse_simulator.advance import advance
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    settings = LakehouseSettings()
    server = postgres.EmbeddedPostgres.for_settings(settings)
    server.start()
    try:
        start = dt.date(2023, 1, 1)
        with postgres.connect(settings.source, settings) as conn:
            create_source_schema(conn)
            generate(conn, scale=args.scale, seed=args.seed, start=start, days=1)
            conn.commit()
        spark = get_spark(settings, "bench-silver-layout")
        tables = [t for t in Registry.load(settings).in_dependency_order() if t.partitioned]
        timings = []
        for day in range(1, args.days + 1):
            began = time.perf_counter()
            if day > 1:
                with postgres.connect(settings.source, settings) as conn:
                    advance(conn, days=1, seed=args.seed, scale=args.scale)
                    conn.commit()
            first = dt.datetime.combine(start + dt.timedelta(days=day - 1), dt.time())
            interval = DataInterval.parse(first.isoformat() + "+07:00",
                                          (first + dt.timedelta(days=1)).isoformat() + "+07:00")
            branch = iceberg.audit_branch(interval.batch_id)
            state = source_state(settings)
            extract_tables(spark, settings, tables, interval, state)
            for spec in tables:
                iceberg.publish(spark, identifier("bronze", spec.name), branch)
            for spec in tables:
                transform_table(spark, settings, spec, interval)
                iceberg.publish(spark, identifier("silver", spec.name), branch)
            timings.append(round(time.perf_counter() - began, 1))
            print(f"day {day}: {timings[-1]} s", flush=True)

        layout = {}
        for spec in tables:
            ident = identifier("silver", spec.name)
            partitions = spark.sql(f"SELECT partition, count(*) AS n FROM {ident}.data_files GROUP BY partition").collect()
            deletes = spark.sql(f"SELECT count(*) AS n FROM {ident}.delete_files").first().n
            counts = sorted(r.n for r in partitions)
            layout[spec.name] = {
                "partitions": len(counts), "data_files": sum(counts), "delete_files": deletes,
                "max_data_files_per_partition": counts[-1] if counts else 0,
                "median_data_files_per_partition": counts[len(counts) // 2] if counts else 0,
                "rows": spark.table(ident).count(),
            }
        result = {"scale": args.scale, "days": args.days, "seed": args.seed,
                  "maintenance": settings.maintenance.model_dump(),
                  "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": f"python bench/silver_layout.py --scale {args.scale} --days {args.days}"
                             + (" --no-compact" if args.no_compact else ""),
                  "seconds_per_day": timings, "tables": layout}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        for name, row in layout.items():
            print(f"{name:<24} partitions {row['partitions']:>4}  data files {row['data_files']:>5}  "
                  f"max/partition {row['max_data_files_per_partition']:>3}  delete files {row['delete_files']:>5}")
        print(f"wrote {args.output}")
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
