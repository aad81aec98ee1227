"""The daily lakehouse DAG, generated from the table registry.

extract → gate → silver → gate → gold → gate. Each task runs one layer for all of
its tables in one Spark application, from the environment that holds the built
layer wheels (``LAKEHOUSE_RUNTIME_BIN``), never from the source tree. A batch is
the run's data interval: reruns of a published batch are no-ops, and a gate that
fails leaves ``main`` untouched and fails its task.

Retries are for infrastructure failures only: a command that exits with
``EXIT_DETERMINISTIC`` (a failing expectation, a refused batch, bad settings or data)
fails its task at once, since running it again cannot succeed.
"""

from __future__ import annotations

import shlex
import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

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


class LakehouseCommand(BashOperator):
    """A ``lakehouse`` command whose exit code decides whether a failure is retried."""

    def execute(self, context):
        result = self.subprocess_hook.run_command(command=["bash", "-c", self.bash_command],
                                                  env=self.get_env(context), output_encoding=self.output_encoding,
                                                  cwd=self.cwd)
        raise_for_exit_code(result.exit_code)
        return result.output


STEPS = [
    ("bronze_extract", f"bronze extract --tables {TABLES}"),
    ("bronze_gate", f"gate bronze --tables {TABLES}"),
    ("silver_transform", f"silver transform --tables {TABLES}"),
    ("silver_gate", f"gate silver --tables {TABLES}"),
    ("gold_build", "gold build"),
    ("gold_gate", "gate gold"),
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
) as dag:
    previous = None
    for task_id, command in STEPS:
        task = LakehouseCommand(
            task_id=task_id,
            bash_command=f"{LAKEHOUSE} {command} {INTERVAL}",
            env=LINEAGE_ENV,
            append_env=True,
        )
        if previous is not None:
            previous >> task
        previous = task
