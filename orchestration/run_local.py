"""Run the daily DAG locally with Airflow 3 (SQLite metadata DB, no scheduler).

Used by ``make demo`` and by the end-to-end test. Airflow state lives in
``<LAKEHOUSE_HOME>/airflow``; OpenLineage events of the Airflow tasks go to
``<LAKEHOUSE_HOME>/lineage/airflow-events.jsonl`` (the Spark jobs write theirs beside it).

    python orchestration/run_local.py --logical-date 2023-01-08 [--states-json FILE]

Exit status 0 only when every task instance succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DAGS_FOLDER = Path(__file__).resolve().parent / "dags"
DAG_ID = "lakehouse_daily"


def airflow_environment(home: Path) -> dict[str, str]:
    """Environment for a self-contained Airflow 3 under ``home/airflow``."""
    lineage_dir = home / "lineage"
    lineage_dir.mkdir(parents=True, exist_ok=True)
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        # INFO shows every task's output (what the layer commands print)
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "lakehouse",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(lineage_dir / "airflow-events.jsonl"), "append": True}),
        "AIRFLOW__OPENLINEAGE__SPARK_INJECT_PARENT_JOB_INFO": "True",
        "AIRFLOW__OPENLINEAGE__SPARK_INJECT_TRANSPORT_INFO": "True",
        "GX_ANALYTICS_ENABLED": "false",
        "LAKEHOUSE_HOME": str(home),
    }


def task_progress_listener():
    """An Airflow listener printing each task instance as it finishes, with its duration
    (``dag.test()`` runs the tasks in this process, one after another). Imports Airflow: call it
    once Airflow is configured."""
    from airflow.listeners import hookimpl

    started: dict[str, float] = {}

    def report(task_instance, outcome: str) -> None:
        began = started.pop(task_instance.task_id, None)
        took = "" if began is None else f" in {time.monotonic() - began:.0f} s"
        print(f"task {task_instance.task_id}: {outcome}{took}", flush=True)

    class TaskProgress:
        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            started[task_instance.task_id] = time.monotonic()

        @hookimpl
        def on_task_instance_success(self, previous_state, task_instance) -> None:
            report(task_instance, "success")

        @hookimpl
        def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
            report(task_instance, f"failed ({error})" if error else "failed")

    return TaskProgress()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logical-date", required=True, help="e.g. 2023-01-08 (the run covers the day before)")
    parser.add_argument("--states-json", type=Path, help="write {task_id: state} here")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = Path(os.environ.get("LAKEHOUSE_HOME", Path.cwd() / ".lakehouse")).resolve()

    if not args.in_process:  # configure Airflow before it is imported: re-run this script in a child
        env = {**os.environ, **airflow_environment(home)}
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        return subprocess.run([sys.executable, __file__, *sys.argv[1:], "--in-process"], env=env).returncode

    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.listener import get_listener_manager

    get_listener_manager().add_listener(task_progress_listener())

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        print(json.dumps(bag.import_errors, indent=2), file=sys.stderr)
        return 2
    dag = bag.get_dag(DAG_ID)
    zone = os.environ.get("LAKEHOUSE_BUSINESS_ZONE", "Asia/Ho_Chi_Minh")
    run = dag.test(logical_date=pendulum.parse(args.logical_date, tz=zone))
    instances = run.get_task_instances()
    states = {ti.task_id: str(ti.state) for ti in instances}
    tries = {ti.task_id: ti.try_number for ti in instances}
    interval = {"start": run.data_interval_start.isoformat(), "end": run.data_interval_end.isoformat()}
    if args.states_json:
        args.states_json.write_text(json.dumps({"states": states, "tries": tries, "run_state": str(run.state),
                                                "data_interval": interval}, indent=2))
    for task_id, state in states.items():
        print(f"{task_id:<20} {state}")
    return 0 if states and all(s == "success" for s in states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
