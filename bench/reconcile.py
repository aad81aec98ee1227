"""Bronze reconciliation benchmark: a daily extract against the same day reconciling every table.

    .venv/bin/python bench/reconcile.py --scale 10 --days 8

One run, on its own fresh state folder and embedded PostgreSQL, in one Spark application:
the source is simulated for ``--days - 1`` days and extracted as one batch (published), then
for two more simulated days the daily extract of every table runs, first as usual (each
table reads what its cursor selects), then (the next day) with ``extract.reconcile_every_days``
= 1 (each incremental table read whole and compared with bronze, deletes included;
``*_rows_read``: the rows read from the source). Both are timed; ``reconcile_over_daily`` is
their ratio. Recorded in ``bench/results/reconcile.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import harness  # bench/harness.py (this folder is on sys.path when run as a script)


def main() -> int:
    parser = harness.arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    return harness.in_fresh_home("reconcile", args.keep, lambda home: run(args))


def run(args: argparse.Namespace) -> int:
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core import iceberg, postgres
    from lakehouse_core.registry import Registry, identifier
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_core.spark import get_spark
    from lakehouse_simulator.advance import advance

    settings = LakehouseSettings()
    server = harness.simulated_shop(settings, args.scale, args.seed, args.days - 1)
    spark = get_spark(settings, "bench-reconcile")
    registry = Registry.load(settings).in_dependency_order()

    def extract_day(day: dt.date, reconcile: bool) -> tuple[float, int, int]:
        with postgres.connect(settings.source, settings) as conn:
            advance(conn, days=1, seed=args.seed, scale=args.scale)
            conn.commit()
        extract = settings.extract.model_copy(update={"reconcile_every_days": 1 if reconcile else 0})
        batch = harness.days_interval(day, day)
        began = time.perf_counter()
        results = extract_tables(spark, settings.model_copy(update={"extract": extract}), registry, batch,
                                 source_state(settings))
        seconds = round(time.perf_counter() - began, 2)
        read = 0
        for spec in registry:
            ident = identifier("bronze", spec.name)
            iceberg.publish(spark, ident, iceberg.audit_branch(batch.batch_id))
            read += int(iceberg.summary(spark, ident)["lakehouse.source_rows"])
        return seconds, sum(r.rows_written + r.deletes for r in results), read

    history = harness.days_interval(harness.SHOP_START, harness.SHOP_START + dt.timedelta(days=args.days - 2))
    extract_tables(spark, settings, registry, history, source_state(settings))
    for spec in registry:
        iceberg.publish(spark, identifier("bronze", spec.name), iceberg.audit_branch(history.batch_id))
    day = harness.SHOP_START + dt.timedelta(days=args.days - 1)
    daily_seconds, daily_rows, daily_read = extract_day(day, reconcile=False)
    reconcile_seconds, reconcile_rows, reconcile_read = extract_day(day + dt.timedelta(days=1), reconcile=True)
    source_rows = sum(spark.table(identifier("bronze", spec.name)).count() for spec in registry)
    spark.stop()
    server.stop()

    result = {
        "scale": args.scale, "days": args.days, "seed": args.seed, "bronze_rows": source_rows,
        "command": f"python bench/reconcile.py --scale {args.scale:g} --days {args.days}",
        "daily_seconds": daily_seconds, "daily_rows_landed": daily_rows, "daily_rows_read": daily_read,
        "reconcile_seconds": reconcile_seconds, "reconcile_rows_landed": reconcile_rows,
        "reconcile_rows_read": reconcile_read,
        "reconcile_over_daily": round(reconcile_seconds / daily_seconds, 2),
    }
    harness.record("reconcile", args.scale, result | harness.provenance())
    print(f"daily extract {daily_seconds:.1f} s ({daily_rows} rows landed); reconciling extract "
          f"{reconcile_seconds:.1f} s ({reconcile_rows} rows landed); ratio {result['reconcile_over_daily']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
