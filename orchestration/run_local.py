"""Run the daily DAG locally with Airflow 3 (SQLite metadata DB, no scheduler).

Used by ``make demo`` and by the end-to-end test. Airflow state lives in
``<LAKEHOUSE_HOME>/airflow``; OpenLineage events of the Airflow tasks go to
``<LAKEHOUSE_HOME>/lineage/airflow-events.jsonl`` (the Spark jobs write theirs beside it).

    python orchestration/run_local.py --logical-date 2023-01-08 [--states-json FILE]

A backfill runs each logical date of a range in order, one daily run after another (as
``airflow backfill create`` does with a scheduler), and stops at the first run that fails:

    python orchestration/run_local.py --logical-date 2023-01-03 --to-date 2023-01-08

Exit status 0 only when every task instance of every run succeeded.
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
        # A gate announces the tables it published through its asset alias; Airflow creates an
        # asset the first time an alias names it, after warning "AssetModel ... not found; cannot
        # create asset event", and warns "Emitting event for inactive AssetModel" until a scheduler
        # (none runs here) activates it: two warnings per table and run, half of the demo's output,
        # for events that are recorded (tests/e2e/test_airflow_dag.py reads them back).
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.assets.manager.AssetManager=ERROR",
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
    parser.add_argument("--to-date", help="backfill: run every logical date from --logical-date to this one")
    parser.add_argument("--states-json", type=Path, help="write the (last) run's {task_id: state} here")
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
    first = pendulum.parse(args.logical_date, tz=zone)
    last = pendulum.parse(args.to_date, tz=zone) if args.to_date else first
    if last < first:
        print(f"--to-date {args.to_date} is before --logical-date {args.logical_date}", file=sys.stderr)
        return 2
    runs: dict[str, str] = {}
    for logical_date in pendulum.interval(first, last).range("days"):
        run = dag.test(logical_date=logical_date)
        instances = run.get_task_instances()
        states = {ti.task_id: str(ti.state) for ti in instances}
        runs[logical_date.to_date_string()] = str(run.state)
        if args.states_json:
            interval = {"start": run.data_interval_start.isoformat(), "end": run.data_interval_end.isoformat()}
            args.states_json.write_text(json.dumps({
                "states": states, "tries": {ti.task_id: ti.try_number for ti in instances},
                "run_state": str(run.state), "data_interval": interval, "runs": runs}, indent=2))
        for task_id, state in states.items():
            print(f"{task_id:<20} {state}")
        if not states or any(s != "success" for s in states.values()):
            if logical_date < last:
                print(f"run {logical_date.to_date_string()} failed: the backfill stops before "
                      f"{logical_date.add(days=1).to_date_string()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
