#!/usr/bin/env bash
# The embedded demo: start PostgreSQL, simulate the shop, run the daily DAG with Airflow
# (tasks run the built wheels from dist/runtime), print every table and where things are.
set -euo pipefail
scale=$1 seed=$2 start=$3 days=$4
root=$(cd "$(dirname "$0")/.." && pwd)
export LAKEHOUSE_RUNTIME_BIN="$root/dist/runtime/bin"
lakehouse="$root/.venv/bin/lakehouse"
trap '"$lakehouse" db stop >/dev/null' EXIT

"$lakehouse" db start
"$lakehouse" simulate --scale "$scale" --seed "$seed" --start "$start" --days "$days" --reset
# The run's data interval is the last simulated day.
logical_date=$("$root/.venv/bin/python" -c "import datetime as d; print(d.date.fromisoformat('$start') + d.timedelta(days=$days))")
"$root/.venv/bin/python" "$root/orchestration/run_local.py" --logical-date "$logical_date"
"$lakehouse" tables
echo "Airflow:  AIRFLOW_HOME=$LAKEHOUSE_HOME/airflow"
echo "Query:    .venv/bin/lakehouse sql 'SELECT * FROM gold.mart_daily_sales ORDER BY order_day, channel'"
