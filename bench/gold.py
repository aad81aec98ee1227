"""Gold build benchmark: a daily (incremental) run against a full rebuild, on the same silver.

    .venv/bin/python bench/gold.py --scale 1 --days 30

One run, on its own fresh state folder (``LAKEHOUSE_HOME`` under /tmp, removed afterwards
unless ``--keep``) and its own embedded PostgreSQL:

1. generate the source for ``--days - 1`` days at ``--scale``; one batch covering them all
   runs bronze → gate → silver → gate → gold → gate (the history);
2. the simulator advances one day; bronze and silver run for that day (gated);
3. timed: ``lakehouse gold build`` for the day (every gold table built on its audit branch,
   incrementally where the table supports it), then the same batch with ``--full-refresh``
   (every table from silver alone, history replayed), alternating ``--repeats`` times; each
   pass restarts the audit branches, nothing is published in between.

Per pass the seconds of each gold table are recorded; medians go to ``bench/results/gold.json``
(key ``scale_<scale>``, so runs at several scales add up) and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path

import harness  # bench/harness.py (this folder is on sys.path when run as a script)


def main() -> int:
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    return harness.in_fresh_home("gold", args.keep, lambda home: run(args, home))


def run(args: argparse.Namespace, home: Path) -> int:
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core import iceberg, postgres
    from lakehouse_core.batch import DataInterval
    from lakehouse_core.quality import run_gate
    from lakehouse_core.registry import Registry, identifier
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_core.spark import get_spark
    from lakehouse_gold.build import TOUCHED_DAYS, build_table
    from lakehouse_gold.tables import GOLD_TABLES
    from lakehouse_silver.transform import transform_table
    from lakehouse_simulator.advance import advance

    settings = LakehouseSettings()
    server = harness.simulated_shop(settings, args.scale, args.seed, args.days - 1)
    start, interval = harness.SHOP_START, harness.days_interval
    spark = get_spark(settings, "bench-gold")

    def bronze_and_silver(batch: DataInterval) -> None:
        registry = Registry.load(settings).in_dependency_order()
        extract_tables(spark, settings, registry, batch, source_state(settings))
        run_gate(spark, settings, "bronze", batch.batch_id)
        for spec in registry:
            transform_table(spark, settings, spec, batch)
        run_gate(spark, settings, "silver", batch.batch_id)

    def build(batch: DataInterval, full_refresh: bool) -> dict[str, float]:
        seconds = {}
        for table in GOLD_TABLES.values():
            began = time.perf_counter()
            build_table(spark, settings, table, batch, full_refresh=full_refresh)
            seconds[table.name] = time.perf_counter() - began
        return seconds

    history = interval(start, start + dt.timedelta(days=args.days - 2))
    bronze_and_silver(history)
    build(history, full_refresh=False)
    run_gate(spark, settings, "gold", history.batch_id)
    with postgres.connect(settings.source, settings) as conn:
        advance(conn, days=1, seed=args.seed, scale=args.scale)
        conn.commit()
    day = interval(start + dt.timedelta(days=args.days - 1), start + dt.timedelta(days=args.days - 1))
    bronze_and_silver(day)

    def days_rebuilt() -> dict[str, int | str]:
        """Per table, the days the pass just built rebuilt (``all``: the whole table)."""
        branch = iceberg.audit_branch(day.batch_id)
        touched = {t: json.loads(iceberg.summary(spark, identifier("gold", t), branch)[TOUCHED_DAYS])
                   for t in GOLD_TABLES}
        return {t: "all" if days is None else len(days) for t, days in touched.items()}

    passes: dict[str, list[dict[str, float]]] = {"incremental": [], "full": []}
    for _ in range(args.repeats):
        passes["incremental"].append(build(day, full_refresh=False))
        rebuilt = days_rebuilt()
        passes["full"].append(build(day, full_refresh=True))
    orders = spark.table("lakehouse.silver.orders").count()
    spark.stop()
    server.stop()

    def medians(kind: str) -> dict[str, float]:
        return {t: round(statistics.median(p[t] for p in passes[kind]), 2) for t in GOLD_TABLES}

    result = {
        "scale": args.scale, "days": args.days, "seed": args.seed, "repeats": args.repeats,
        "silver_orders": orders,
        "command": f"python bench/gold.py --scale {args.scale:g} --days {args.days} --repeats {args.repeats}",
        "incremental_seconds": round(statistics.median(sum(p.values()) for p in passes["incremental"]), 2),
        "full_rebuild_seconds": round(statistics.median(sum(p.values()) for p in passes["full"]), 2),
        "incremental_table_seconds": medians("incremental"), "full_rebuild_table_seconds": medians("full"),
        "incremental_days_rebuilt": rebuilt,
    }
    harness.record("gold", args.scale, result | harness.provenance())
    print(f"{'table':<28} {'incremental s':>14} {'days rebuilt':>13} {'full s':>10}")
    for table in GOLD_TABLES:
        print(f"{table:<28} {result['incremental_table_seconds'][table]:>14.2f} {rebuilt[table]!s:>13} "
              f"{result['full_rebuild_table_seconds'][table]:>10.2f}")
    print(f"{'total':<28} {result['incremental_seconds']:>14.2f} {result['full_rebuild_seconds']:>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
