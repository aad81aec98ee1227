"""Quality gate benchmark: each layer's gate against the layer's own run, on a history and a day.

    .venv/bin/python bench/gates.py --scale 1 --days 30

One run, on its own fresh state folder (``LAKEHOUSE_HOME`` under /tmp, removed afterwards
unless ``--keep``) and its own embedded PostgreSQL, all in one Spark application (Great
Expectations imported in a thread from the start and each gate's checkpoints prepared in a thread
while its layer runs, as a layer job with ``--gate`` does):

1. the source is generated for ``--days - 1`` days at ``--scale``; one batch covering them all
   runs bronze extract, bronze gate, silver transform, silver gate, gold build, gold gate (the
   history: first loads);
2. the simulator advances one day and the same six steps run for it (the daily run).

Every step is timed; per batch and layer the gate's seconds are divided by the layer's
(``gate_share``: the target is at most 0.2). Results go to ``bench/results/gates.json`` under
``scale_<scale>`` and a table is printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import cProfile
import time
from pathlib import Path

import harness  # bench/harness.py (this folder is on sys.path when run as a script)

LAYERS = ("bronze", "silver", "gold")


def main() -> int:
    parser = harness.arguments(__doc__.splitlines()[0])
    parser.add_argument("--profile", type=Path, help="write a cProfile of each gate to this folder")
    args = parser.parse_args()
    return harness.in_fresh_home("gates", args.keep, lambda home: run(args))


def run(args: argparse.Namespace) -> int:
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_core import postgres
    from lakehouse_core.batch import DataInterval
    from lakehouse_core.cli import await_great_expectations, preload_great_expectations
    from lakehouse_core.quality import run_gate
    from lakehouse_core.registry import Registry
    from lakehouse_core.settings import LakehouseSettings
    from lakehouse_core.spark import get_spark
    from lakehouse_gold.tables import build_tables
    from lakehouse_silver.transform import transform_tables
    from lakehouse_simulator.advance import advance

    preload_great_expectations()  # (as a layer job with --gate does: imported while the JVM starts and the layer runs)
    settings = LakehouseSettings()
    server = harness.simulated_shop(settings, args.scale, args.seed, args.days - 1)
    start, interval = harness.SHOP_START, harness.days_interval
    spark = get_spark(settings, "bench-gates")
    registry = Registry.load(settings).in_dependency_order()

    def timed(step) -> float:
        began = time.perf_counter()
        step()
        return round(time.perf_counter() - began, 2)

    def gate(layer: str, batch_id: str, profile: Path | None) -> None:  # (profile: <folder>/<batch>-<layer>-gate.prof)
        if profile is None:
            run_gate(spark, settings, layer, batch_id)
            return
        profile.parent.mkdir(parents=True, exist_ok=True)
        with cProfile.Profile() as profiler:
            run_gate(spark, settings, layer, batch_id)
        profiler.dump_stats(profile.parent / f"{profile.name}-{layer}-gate.prof")

    def batch(batch_interval: DataInterval, profile: Path | None) -> dict[str, dict[str, float]]:
        layers = {
            "bronze": lambda: extract_tables(spark, settings, registry, batch_interval, source_state(settings)),
            "silver": lambda: transform_tables(spark, settings, registry, batch_interval),
            "gold": lambda: build_tables(spark, settings, batch_interval),
        }
        seconds = {}
        for layer, step in layers.items():
            preload_great_expectations(settings, layer)  # (as the layer job with --gate does)
            layer_seconds = timed(step)
            # (a preparation the layer outlasts is the gate's: the layer job's gate waits for it likewise)
            gate_seconds = timed(lambda: (await_great_expectations(), gate(layer, batch_interval.batch_id, profile)))
            seconds[layer] = {"layer_seconds": layer_seconds, "gate_seconds": gate_seconds,
                              "gate_share": round(gate_seconds / layer_seconds, 2)}
        return seconds

    history = batch(interval(start, start + dt.timedelta(days=args.days - 2)), args.profile and args.profile / "history")
    with postgres.connect(settings.source, settings) as conn:
        advance(conn, days=1, seed=args.seed, scale=args.scale)
        conn.commit()
    last = start + dt.timedelta(days=args.days - 1)
    daily = batch(interval(last, last), args.profile and args.profile / "daily")
    orders = spark.table("lakehouse.silver.orders").count()
    spark.stop()
    server.stop()

    result = {
        "scale": args.scale, "days": args.days, "seed": args.seed, "silver_orders": orders,
        "command": f"python bench/gates.py --scale {args.scale:g} --days {args.days}",
        "history_batch": history, "daily_batch": daily,
    }
    harness.record("gates", args.scale, result | harness.provenance())
    print(f"{'batch':<10} {'layer':<8} {'layer s':>9} {'gate s':>8} {'gate share':>11}")
    for name, seconds in (("history", history), ("daily", daily)):
        for layer in LAYERS:
            s = seconds[layer]
            print(f"{name:<10} {layer:<8} {s['layer_seconds']:>9.2f} {s['gate_seconds']:>8.2f} {s['gate_share']:>11.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
