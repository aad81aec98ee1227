"""The ``lakehouse`` command. Layer packages add sub-commands through the
``lakehouse.commands`` entry-point group: each entry point is a callable
``add_commands(subparsers)`` whose parsers set ``func(args) -> int``.

Expected failures (``lakehouse_core.errors.LakehouseError``) are printed as one line
``lakehouse: error: ...`` with the exit code the error chooses (3: do not retry,
75: a retry may succeed), and so is a lost database connection (75); anything else keeps its
traceback. A command that writes a layer holds the layer's lease (``lakehouse_core.locks``)
until it returns; the embedded PostgreSQL it started is stopped when it returns, unless another
process uses it or ``lakehouse db start`` keeps it running.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import shutil
import sys
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse_core import faults, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import ConfigurationError, InfrastructureError, LakehouseError
from lakehouse_core.locks import WRITTEN_LAYERS, check_leases, layer_leases
from lakehouse_core.progress import Progress
from lakehouse_core.registry import Registry, TableSpec
from lakehouse_core.settings import LakehouseSettings, get_settings

if TYPE_CHECKING:  # pyspark is imported lazily: `lakehouse db ...` must not start a JVM
    from pyspark.sql import SparkSession

_log = logging.getLogger(__name__)


def add_batch_arguments(parser: argparse.ArgumentParser, with_tables: bool = True) -> None:
    """The arguments every layer job takes: the data interval (and optionally the tables)."""
    parser.add_argument("--interval-start", required=True, help="data interval start, ISO-8601 with offset")
    parser.add_argument("--interval-end", required=True, help="data interval end, ISO-8601 with offset")
    if with_tables:
        parser.add_argument("--tables", default=None,
                            help="comma-separated table names (default: every registered table)")


@dataclass
class LayerJob:
    """What a layer job needs: settings, registry, its tables, the interval, one SparkSession."""

    settings: LakehouseSettings
    registry: Registry
    tables: list[TableSpec]
    interval: DataInterval
    spark: "SparkSession"


#: the layer leases (``lakehouse_core.locks``) the running command holds; ``main`` releases them
_leases = contextlib.ExitStack()


def hold_leases(settings: LakehouseSettings, layers: list[str], job: str) -> None:
    """Take the leases of ``layers`` until the command returns. Raises ConcurrentRunError when
    another job holds one."""
    _leases.enter_context(layer_leases(settings, layers, job))


def start_layer_job(args: argparse.Namespace, layer: str, spark_lineage: bool = True) -> LayerJob:
    """Build the job context from parsed arguments: takes the lease of the layer it writes
    (``layer``, or the layer of a ``<layer>_gate``), then starts the process's single SparkSession
    (without the OpenLineage Spark listener when not ``spark_lineage``).

    Raises ConcurrentRunError when another job writes the layer, RegistryError for an unknown
    table and ConfigurationError for a malformed interval.
    """
    from lakehouse_core.spark import ParentRun, get_spark

    settings = get_settings()
    faults.arm(settings.crash_at, settings.pause_at)
    hold_leases(settings, [layer.removesuffix("_gate")], f"{layer} job")
    registry = Registry.load(settings)
    names = getattr(args, "tables", None)
    tables = [registry.get(n.strip()) for n in names.split(",")] if names else registry.in_dependency_order()
    interval = _interval(args)
    if getattr(args, "gate", False):
        preload_great_expectations(settings, layer)
    spark = get_spark(settings, f"lakehouse_{layer}", ParentRun.from_env(), listener=spark_lineage)
    return LayerJob(settings, registry, tables, interval, spark)


def _interval(args: argparse.Namespace) -> DataInterval:
    """The job's data interval. Raises ConfigurationError when it is malformed."""
    try:
        return DataInterval.parse(args.interval_start, args.interval_end)
    except ValueError as exc:
        raise ConfigurationError(f"data interval: {exc}") from None


def add_gate_argument(parser: argparse.ArgumentParser, layer: str) -> None:
    """``--gate``: the layer job gates its batch in its own Spark application (``gate_in_layer_job``)."""
    parser.add_argument("--gate", action="store_true",
                        help=f"then validate the batch and publish it all or none in this Spark application; "
                             f"`lakehouse gate {layer}` for the interval then reports the outcome without one of "
                             "its own (when an expectation failed, it validates again and fails)")


def gate_in_layer_job(job: LayerJob, layer: str, tables: list[str] | None = None) -> None:
    """Gate the batch the layer job just staged in its Spark application (DESIGN §6: one JVM start
    less per layer). A failing expectation publishes nothing and is not the layer job's failure:
    the gate step reports it. Raises what ``quality.run_gate`` raises otherwise."""
    from lakehouse_core.quality import run_gate_in_layer_job

    await_great_expectations()
    progress = Progress(f"{layer} gate", 0)
    report = run_gate_in_layer_job(job.spark, job.settings, layer, job.interval.batch_id, tables, progress)
    progress.summary()
    for line in report.summary_lines():
        print(line)
    if not report.success:
        failed = sum(len(t.blocking_failures) for t in report.tables)
        print(f"{layer} gate: {failed} expectation(s) failed, nothing published; `lakehouse gate {layer}` for this "
              "interval validates again and fails")


#: Importing Great Expectations takes ~8 s of CPU: a gate overlaps it with the JVM start (or the layer's work)
_GREAT_EXPECTATIONS = threading.Thread(target=importlib.import_module, args=("great_expectations",), daemon=True)
#: the threads preparing a gate's checkpoints (``preload_great_expectations``)
_GATES_PREPARING: list[threading.Thread] = []


def preload_great_expectations(settings: LakehouseSettings | None = None, layer: str | None = None) -> None:
    """Start importing Great Expectations in a thread (once per process) and, given ``settings``
    and ``layer`` (``bronze``, ``silver``, ``gold``), preparing its gate's checkpoints in another
    (``quality.prepare_gate``): a gate's process overlaps both with the JVM start or the layer's
    work (``await_great_expectations`` before the gate)."""
    if _GREAT_EXPECTATIONS.ident is None:
        _GREAT_EXPECTATIONS.start()
    if layer is not None:
        # (not a daemon: a process ending early still finishes the project files it is writing)
        preparing = threading.Thread(target=_prepare_gate, args=(settings, layer),
                                     name=f"prepare {layer} gate")
        preparing.start()
        _GATES_PREPARING.append(preparing)


def _prepare_gate(settings: LakehouseSettings, layer: str) -> None:
    from lakehouse_core.quality import prepare_gate

    _GREAT_EXPECTATIONS.join()
    try:
        prepare_gate(settings, layer)
    except Exception as exc:  # (the gate saves what is missing itself, and raises what stops it)
        _log.warning("preparing the %s gate's checkpoints ahead of it failed (%s: %s); the gate prepares them",
                     layer, type(exc).__name__, exc)


def await_great_expectations() -> None:
    """Wait until Great Expectations is imported (started now unless preloaded) and the gates
    being prepared are ready."""
    preload_great_expectations()
    _GREAT_EXPECTATIONS.join()
    while _GATES_PREPARING:
        _GATES_PREPARING.pop().join()


def _db(args: argparse.Namespace) -> int:
    settings = get_settings()
    server = postgres.EmbeddedPostgres.for_settings(settings)
    if args.action == "start":
        port = server.start(keep_running=True)
        print(f"embedded PostgreSQL on 127.0.0.1:{port} ({server.data_dir}), running until `lakehouse db stop`")
    elif args.action == "stop":
        server.stop()
        print("embedded PostgreSQL stopped")
    else:
        print("running" if server.is_running() else "stopped")
    return 0


def _clean(args: argparse.Namespace) -> int:
    settings = get_settings()
    postgres.EmbeddedPostgres.for_settings(settings).stop()
    shutil.rmtree(settings.home, ignore_errors=True)
    print(f"removed {settings.home}")
    return 0


def _gate(args: argparse.Namespace) -> int:
    from lakehouse_core.quality import recorded_gate, report_recorded_gate, run_gate

    tables = [n.strip() for n in args.gate_tables.split(",")] if args.gate_tables else None
    settings, batch_id = get_settings(), _interval(args).batch_id
    recorded = recorded_gate(settings, args.layer, batch_id, tables)
    if recorded is not None:  # the layer job gated its batch (--gate): report that, no Spark application
        report_recorded_gate(settings, recorded)
        print(f"{args.layer} gate: batch {batch_id} passed and was published by the {args.layer} job")
        for line in recorded.summary_lines():
            print(line)
        return 0
    preload_great_expectations(settings, args.layer)  # overlapped with the JVM start
    # a gate reports one OpenLineage run with the data-quality facets of every table it validated
    # (lakehouse_core.quality), not a Spark event per Great Expectations query
    job = start_layer_job(args, f"{args.layer}_gate", spark_lineage=False)
    await_great_expectations()
    progress = Progress(f"{args.layer} gate", 0)
    report = run_gate(job.spark, job.settings, args.layer, job.interval.batch_id, tables, progress)
    progress.summary()
    for line in report.summary_lines():
        print(line)
    return 0


def utility_spark(name: str) -> "SparkSession":
    """The SparkSession of a utility command (it reads tables; not a pipeline job, so it emits
    no lineage)."""
    from lakehouse_core.spark import get_spark

    settings = get_settings()
    return get_spark(settings.model_copy(update={"lineage": settings.lineage.model_copy(update={"enabled": False})}),
                     name)


def _tables(args: argparse.Namespace) -> int:
    from lakehouse_core import iceberg
    from lakehouse_core.settings import CATALOG_NAME

    settings = get_settings()
    spark = utility_spark("lakehouse-tables")
    for layer in ("bronze", "silver", "gold", "quarantine"):
        for name in iceberg.table_names(spark, layer):
            count = spark.table(f"{CATALOG_NAME}.{layer}.{name}").count()
            print(f"{layer}.{name:<32} {count:>10,} rows")
    print(f"warehouse:       {settings.warehouse_uri}")
    print(f"Data Docs:       {settings.data_docs_dir / 'index.html'}")
    print(f"quality reports: {settings.quality_dir}")
    print(f"lineage events:  {settings.lineage_dir}")
    return 0


def _quality(args: argparse.Namespace) -> int:
    from lakehouse_core.quality import latest_results

    results = latest_results(get_settings())
    if not results:
        print(f"no gate has run yet (reports: {get_settings().quality_dir})")
        return 0
    print(f"{'table':<40} {'batch':<29} {'pass':>5} {'warn':>5} {'fail':>5} {'rows':>10} {'quarantined':>11} "
          f"{'published':>9}  data docs")
    for r in results:
        quarantined = "-" if r.quarantined is None else f"{r.quarantined:,}"
        print(f"{r.table:<40} {r.batch_id:<29} {r.passed:>5} {r.warned:>5} {r.failed:>5} {r.rows:>10,} "
              f"{quarantined:>11} {'-' if r.published is None else 'yes' if r.published else 'no':>9}  {r.data_docs or '-'}")
    return 0


def _maintain(args: argparse.Namespace) -> int:
    from lakehouse_core.maintenance import LAYERS, maintain

    layers = tuple(args.layers.split(",")) if args.layers else LAYERS
    unknown = sorted(set(layers) - set(LAYERS))
    if unknown:
        raise ConfigurationError(f"maintain --layers: unknown layer {unknown[0]!r} (layers: {', '.join(LAYERS)})")
    settings = get_settings()
    hold_leases(settings, list(WRITTEN_LAYERS), "maintenance")  # quarantine tables are silver's
    results = maintain(settings, lambda: utility_spark("lakehouse_maintenance"), layers)
    print(f"{'table':<36} {'snapshots':>15} {'data files':>15} {'expired files':>13} {'orphans':>8} {'seconds':>8}")
    for r in results:
        print(f"{r.table:<36} {r.snapshots_before:>6} -> {r.snapshots_after:<6} {r.data_files_before:>6} -> "
              f"{r.data_files_after:<6} {r.expired_files:>13} {r.orphan_files:>8} {r.seconds:>8.2f}")
    print(f"{len(results)} tables: {sum(r.snapshots_before - r.snapshots_after for r in results)} snapshots expired, "
          f"{sum(r.expired_files + r.orphan_files for r in results)} files deleted")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    from lakehouse_core.lineage_graph import LineageGraph, render_svg

    settings = get_settings()
    fine = LineageGraph.read(settings.lineage_dir)
    drawn = fine if args.by_action else LineageGraph.read(settings.lineage_dir, by_application=True)
    output = args.output or settings.lineage_dir / "lineage.svg"
    output.write_text(render_svg(drawn))
    layers = {}
    for dataset in fine.datasets:
        layers[dataset.layer] = layers.get(dataset.layer, 0) + 1
    print(f"{len(fine.jobs)} jobs, datasets: " + ", ".join(f"{n} {layer}" for layer, n in sorted(layers.items())))
    gaps = fine.unconnected_sources()
    print("every source table reaches gold" if not gaps else
          "source tables that reach no gold table: " + ", ".join(d.label for d in gaps))
    print(f"graph: {output}")
    return 0


def _sql(args: argparse.Namespace) -> int:
    utility_spark("lakehouse-sql").sql(args.query).show(args.limit, truncate=False)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description="E-commerce lakehouse platform")
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="manage the embedded PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(func=_db)
    sub.add_parser("clean", help="stop the embedded server and delete the state folder").set_defaults(func=_clean)
    gate = sub.add_parser("gate", help="validate a layer's audit branches and publish all or none")
    gate.add_argument("layer", choices=["bronze", "silver", "gold"])
    add_batch_arguments(gate, with_tables=False)
    gate.add_argument("--tables", dest="gate_tables", default=None,
                      help="comma-separated tables the batch must hold (default: every registered table "
                           "for bronze and silver, every staged or published table for gold)")
    gate.set_defaults(func=_gate)
    sub.add_parser("tables", help="list every Iceberg table with its row count").set_defaults(func=_tables)
    sub.add_parser("quality", help="the latest gate result per table: expectations passed, warned, failed, "
                   "rows, quarantined rows, Data Docs page").set_defaults(func=_quality)
    maintain = sub.add_parser("maintain", help="compact, rewrite manifests, expire snapshots and remove orphan "
                              "files of every table (retention: LAKEHOUSE_MAINTENANCE__*)")
    maintain.add_argument("--layers", default=None, help="comma-separated layers (default: all)")
    maintain.set_defaults(func=_maintain)
    drawing = sub.add_parser("lineage", help="draw the recorded lineage (datasets and jobs) as an SVG picture")
    drawing.add_argument("--output", type=Path, default=None, help="default: <home>/lineage/lineage.svg")
    drawing.add_argument("--by-action", action="store_true",
                         help="a job per Spark action and step (default: one per application)")
    drawing.set_defaults(func=_lineage)
    sql = sub.add_parser("sql", help="run a Spark SQL query against the catalog (e.g. SELECT * FROM gold.x)")
    sql.add_argument("query")
    sql.add_argument("--limit", type=int, default=50)
    sql.set_defaults(func=_sql)
    for ep in sorted(entry_points(group="lakehouse.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # the embedded PostgreSQL a command started or used is stopped at its end unless another live
    # process uses it or `lakehouse db start` keeps it (lakehouse_core.postgres)
    with postgres.released_after():
        try:
            return _run(argv)
        except LakehouseError as exc:
            print(f"lakehouse: error: {exc.one_line()}", file=sys.stderr)
            return exc.exit_code
        finally:
            _leases.close()


def _run(argv: list[str] | None) -> int:
    """Run the command ``argv`` names. A lost database connection (a server restarted or
    unreachable mid-run: a retry may succeed) raises LeaseLostError when it took one of the job's
    leases too (whichever connection met the restart first), InfrastructureError otherwise."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LakehouseError:
        raise
    except Exception as exc:
        reason = postgres.lost_connection(exc)
        if reason is None:
            raise
        check_leases()
        raise InfrastructureError(f"a database connection failed ({reason}); run again") from exc


if __name__ == "__main__":
    sys.exit(main())
