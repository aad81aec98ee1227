"""The daily lakehouse DAG, generated from the table registry.

extract → gate → silver → gate → gold → gate → maintenance. Each task runs one layer
for all of its tables (or maintains every table) in one Spark application (a layer's gate runs in
its layer's; the gate task reports it), from the
environment that holds the built layer wheels (``LAKEHOUSE_RUNTIME_BIN``), never from the source tree. A batch is
the run's data interval: reruns of a published batch are no-ops, and a gate that
fails leaves ``main`` untouched and fails its task.

Retries are for infrastructure failures only: a command that exits with
``EXIT_DETERMINISTIC`` (a failing expectation, a refused batch, bad settings or data)
fails its task at once, since running it again cannot succeed.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Asset, AssetAlias, Connection, Param
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowNotFoundException
from airflow.timetables.interval import CronDataIntervalTimetable

from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import EXIT_DETERMINISTIC
from lakehouse_core.registry import Registry
from lakehouse_core.settings import get_settings

settings = get_settings()
registry = Registry.load(settings)
TABLES = ",".join(t.name for t in registry.in_dependency_order())
LAKEHOUSE = shlex.quote(str((settings.runtime_bin or Path(sys.executable).parent) / "lakehouse"))
INTERVAL = "--interval-start '{{ data_interval_start.isoformat() }}' --interval-end '{{ data_interval_end.isoformat() }}'"

# The Spark listener links its events to the Airflow task through these (OpenLineage provider macros).
OL = "macros.OpenLineageProviderPlugin"
LINEAGE_ENV = {
    "OPENLINEAGE_PARENT_NAMESPACE": "{{ %s.lineage_job_namespace() }}" % OL,
    "OPENLINEAGE_PARENT_JOB_NAME": "{{ %s.lineage_job_name(task_instance) }}" % OL,
    "OPENLINEAGE_PARENT_RUN_ID": "{{ %s.lineage_run_id(task_instance) }}" % OL,
    "OPENLINEAGE_ROOT_PARENT_NAMESPACE": "{{ %s.lineage_root_job_namespace(task_instance) }}" % OL,
    "OPENLINEAGE_ROOT_PARENT_JOB_NAME": "{{ %s.lineage_root_job_name(task_instance) }}" % OL,
    "OPENLINEAGE_ROOT_PARENT_RUN_ID": "{{ %s.lineage_root_run_id(task_instance) }}" % OL,
}

def raise_for_exit_code(exit_code: int) -> None:
    """Fail a task without retry on ``EXIT_DETERMINISTIC``; any other non-zero code may be retried."""
    if exit_code == EXIT_DETERMINISTIC:
        raise AirflowFailException(f"lakehouse command failed deterministically (exit {exit_code}): not retried")
    if exit_code != 0:
        raise AirflowException(f"lakehouse command failed (exit {exit_code}); it may be retried")


#: Airflow connections that, where defined, give the tasks their databases (else the settings:
#: LAKEHOUSE_SOURCE__*, LAKEHOUSE_CATALOG__*)
CONNECTIONS = {"lakehouse_source": "LAKEHOUSE_SOURCE__", "lakehouse_catalog": "LAKEHOUSE_CATALOG__"}
log = logging.getLogger(__name__)


def connection_env(conn_id: str, prefix: str) -> dict[str, str]:
    """The settings variables of Airflow connection ``conn_id`` (host, port, login, password,
    schema as the database), or {} when no such connection is defined."""
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        log.info("no Airflow connection %s: the tasks use the %s* settings", conn_id, prefix)
        return {}
    fields = {"HOST": conn.host, "PORT": conn.port, "USER": conn.login, "PASSWORD": conn.password,
              "DBNAME": conn.schema}
    log.info("Airflow connection %s gives the tasks %s", conn_id, ", ".join(f"{prefix}{k}" for k, v in fields.items()
                                                                          if v not in (None, "")))
    return {f"{prefix}{key}": str(value) for key, value in fields.items() if value not in (None, "")}


def asset(table: str) -> Asset:
    """The Airflow asset of a published table ``<layer>.<table>``: named by it, its URI the table's
    folder in the warehouse (as OpenLineage names the dataset)."""
    layer, name = table.split(".")
    return Asset(name=f"lakehouse.{table}", uri=f"{settings.warehouse_uri.rstrip('/')}/{layer}/{name}")


class LakehouseCommand(BashOperator):
    """A ``lakehouse`` command whose exit code decides whether a failure is retried. A gate
    (``publishes``: its layer) adds an asset event for each table it published to the alias
    ``lakehouse_<layer>`` (its outlet), so that other DAGs can be scheduled on a table."""

    def __init__(self, *, publishes: str | None = None, **kwargs):
        if publishes is not None:
            kwargs["outlets"] = [AssetAlias(f"lakehouse_{publishes}")]
        super().__init__(**kwargs)
        self.publishes = publishes

    def execute(self, context):
        env = self.get_env(context)
        for conn_id, prefix in CONNECTIONS.items():
            env |= connection_env(conn_id, prefix)
        result = self.subprocess_hook.run_command(command=["bash", "-c", self.bash_command], env=env,
                                                  output_encoding=self.output_encoding, cwd=self.cwd)
        raise_for_exit_code(result.exit_code)
        if self.publishes is not None:
            # the gate's report names what it published (none when the batch was published before:
            # a gate that found nothing staged writes no report; a retry after a crash that
            # published may announce the tables again, as at-least-once events)
            batch = DataInterval(context["data_interval_start"], context["data_interval_end"]).batch_id
            report = settings.quality_dir / f"{self.publishes}-{batch}.json"
            published = json.loads(report.read_text())["published"] if report.exists() else []
            for table in published:
                context["outlet_events"][AssetAlias(f"lakehouse_{self.publishes}")].add(asset(table))
        return result.output


# Each layer job gates its batch in its own Spark application (--gate: one JVM start less per
# layer, DESIGN §6); its gate task reports that outcome as its own step, from the gate's report,
# without starting Spark, or validates again when an expectation failed (and fails).
STEPS = [
    ("bronze_extract", f"bronze extract --tables {TABLES} {INTERVAL} --gate "
                       "--confirm-mass-deletes '{{ params.confirm_mass_deletes | join(\",\") }}'"),
    ("bronze_gate", f"gate bronze --tables {TABLES} {INTERVAL}"),
    ("silver_transform", f"silver transform --tables {TABLES} {INTERVAL} --gate"),
    ("silver_gate", f"gate silver --tables {TABLES} {INTERVAL}"),
    ("gold_build", f"gold build {INTERVAL} --gate"),
    ("gold_gate", f"gate gold {INTERVAL}"),
    # compaction, manifest rewrite, snapshot expiry, orphan-file removal (LAKEHOUSE_MAINTENANCE__*)
    ("maintenance", "maintain"),
]

with DAG(
    dag_id="lakehouse_daily",
    description="Daily lakehouse run: bronze → silver → gold, each gated by Great Expectations",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=pendulum.timezone(settings.business_zone)),
    start_date=pendulum.datetime(2023, 1, 1, tz=settings.business_zone),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    tags=["lakehouse"],
    # a run triggered with {"confirm_mass_deletes": ["cart"]} lets the deletes of a table through
    # that bronze held back (more than LAKEHOUSE_EXTRACT__MAX_DELETE_SHARE of its keys)
    params={"confirm_mass_deletes": Param([], type="array", items={"type": "string"},
                                          description="tables whose held mass delete goes ahead")},
) as dag:
    previous = None
    for task_id, command in STEPS:
        task = LakehouseCommand(
            task_id=task_id,
            bash_command=f"{LAKEHOUSE} {command}",
            env=LINEAGE_ENV,
            append_env=True,
            publishes=task_id.removesuffix("_gate") if task_id.endswith("_gate") else None,
        )
        if previous is not None:
            previous >> task
        previous = task
