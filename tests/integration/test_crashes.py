"""Crashes lose and duplicate nothing.

Every layer job (bronze first load, bronze incremental, silver, gold, each gate's publish) is
killed with SIGKILL, its Spark JVM with it, at the named points of its write protocol
(``lakehouse_core.faults``) and once at a random moment, then rerun. Checked: the job died where
named; ``main`` never showed a partial batch in between (every table's ``main`` unchanged, or,
when a gate died between publishes, each table either untouched or holding the whole batch, and
the next layer refuses the half-published batch); after the reruns every table of every layer
equals, row by row, an uninterrupted run of the same day from the same source; maintenance
leaves no file that no snapshot references (a killed first load leaves some).

Day 1 is a first load through every layer; day 2 an incremental bronze batch. Each day's
uninterrupted run goes first; the lakehouse is then put back where the day started (day 1:
empty; day 2: every table's ``main`` and ``last_publish`` tag back at day 1) and the day runs
again with the crashes. The crashing jobs are ``lakehouse`` CLI processes; the reruns and the
uninterrupted runs call the same library functions in the test's Spark session.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

import pytest

from lakehouse_core import iceberg, postgres
from lakehouse_core.batch import DataInterval
from lakehouse_core.errors import UpstreamNotPublishedError
from lakehouse_core.quality import run_gate
from lakehouse_core.registry import Registry, identifier

pytestmark = pytest.mark.spark

DAY1 = DataInterval.parse("2023-01-04T00:00:00+07:00", "2023-01-05T00:00:00+07:00")
DAY2 = DataInterval.parse("2023-01-05T00:00:00+07:00", "2023-01-06T00:00:00+07:00")
SOURCE_DB, SEED, SCALE = "crash_cases", 7, 0.01
LAYERS = ("bronze", "silver", "gold", "quarantine")
#: wall-clock columns: a rerun stamps them anew
VOLATILE = {"_ingested_at", "_silver_updated_at", "quarantined_at", "closed_at"}
RANDOM_KILL = "random"

#: (step, where its CLI process is killed: a crash point, RANDOM_KILL or None for no crash)
DAY1_STEPS = [("bronze", "landing.files_written"), ("bronze_gate", "gate.published_some"),
              ("silver", RANDOM_KILL), ("silver_gate", "gate.validated"),
              ("gold", "stage.committed"), ("gold_gate", None)]
DAY2_STEPS = [("bronze", "stage.branch_started"), ("bronze", "stage.written"), ("bronze_gate", None)]
COMMANDS = {"bronze": ["bronze", "extract"], "silver": ["silver", "transform"], "gold": ["gold", "build"],
            "bronze_gate": ["gate", "bronze"], "silver_gate": ["gate", "silver"], "gold_gate": ["gate", "gold"]}


def _run(spark, settings, step: str, interval: DataInterval) -> None:
    """One step, uninterrupted, in the test's Spark session (what the CLI command calls)."""
    from lakehouse_bronze.extract import extract_tables
    from lakehouse_bronze.source import source_state
    from lakehouse_gold.tables import build_tables
    from lakehouse_silver.transform import transform_tables

    specs = Registry.load(settings).in_dependency_order()
    if step == "bronze":
        extract_tables(spark, settings, specs, interval, source_state(settings))
    elif step == "silver":
        transform_tables(spark, settings, specs, interval)
    elif step == "gold":
        build_tables(spark, settings, interval)
    else:
        run_gate(spark, settings, step.removesuffix("_gate"), interval.batch_id)


def _uninterrupted(steps) -> list[str]:
    """The steps of a day once each, in order (a step killed twice runs once uninterrupted)."""
    return list(dict.fromkeys(step for step, _ in steps))


def _kill(step: str, where: str, interval: DataInterval, seconds: float) -> tuple[int, str]:
    """Run ``step``'s CLI command in a process group of its own and kill it: at crash point
    ``where``, or (RANDOM_KILL) with SIGKILL to the group after ``seconds``. Returns (exit code, stderr)."""
    env = {**os.environ, "LAKEHOUSE_SOURCE__DBNAME": SOURCE_DB}
    if where != RANDOM_KILL:
        env["LAKEHOUSE_CRASH_AT"] = where
    proc = subprocess.Popen([sys.executable, "-m", "lakehouse_core.cli", *COMMANDS[step],
                             "--interval-start", interval.start.isoformat(), "--interval-end", interval.end.isoformat()],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=seconds if where == RANDOM_KILL else 900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
    return proc.returncode, stderr


def _tables(spark) -> list[str]:
    return [identifier(layer, name) for layer in LAYERS for name in iceberg.table_names(spark, layer)]


Heads = dict[str, tuple[int | None, int | None, str | None]]


def _heads(spark) -> Heads:
    """Per table: ``main``'s snapshot, the ``last_publish`` tag's and the batch the tag holds."""
    return {ident: (iceberg.snapshot_id(spark, ident), iceberg.snapshot_id(spark, ident, iceberg.PUBLISH_TAG),
                    iceberg.summary(spark, ident).get("lakehouse.batch_id"))
            for ident in _tables(spark)}


def _rows(spark) -> dict[str, list[tuple]]:
    """Every table's rows on ``main`` (without ``VOLATILE`` columns), sorted."""
    rows = {}
    for ident in _tables(spark):
        table = spark.table(ident)
        kept = sorted(set(table.columns) - VOLATILE)
        rows[ident] = sorted((tuple(r) for r in table.select(*kept).collect()), key=repr)
    return rows


def _restore(spark, heads: Heads) -> None:
    """Put every table's ``main`` and ``last_publish`` tag back where ``heads`` was taken and drop
    the tables created since."""
    now = _heads(spark)
    for ident in now:
        if ident not in heads:
            spark.sql(f"DROP TABLE {ident} PURGE")
        elif now[ident] != heads[ident]:
            main, tag, _ = heads[ident]
            iceberg.java_table(spark, ident).manageSnapshots().setCurrentSnapshot(main) \
                .replaceTag(iceberg.PUBLISH_TAG, tag).commit()


def _unreferenced_files(spark) -> dict[str, int]:
    """Per table: Parquet files in its folder that no snapshot of it references."""
    found = {}
    for ident in _tables(spark):
        location = Path(urlparse(iceberg.java_table(spark, ident).location()).path)
        on_disk = {str(p) for p in location.rglob("*.parquet")}
        referenced = {urlparse(r.file_path).path for r in spark.sql(f"SELECT file_path FROM {ident}.all_files").collect()}
        if on_disk - referenced:
            found[ident] = len(on_disk - referenced)
    return found


def _crash_day(spark, settings, interval: DataInterval, steps, rng: random.Random) -> list[dict]:
    """Run ``steps`` with their crashes, each killed job rerun in-process; what each crash left."""
    seen = []
    for step, where in steps:
        if where is None:
            _run(spark, settings, step, interval)
            continue
        before = _heads(spark)
        code, stderr = _kill(step, where, interval, rng.uniform(8, 20))
        after = _heads(spark)
        refused = None
        if where == "gate.published_some":
            try:
                _run(spark, settings, {"bronze_gate": "silver", "silver_gate": "gold"}[step], interval)
            except UpstreamNotPublishedError as exc:
                refused = str(exc)
        seen.append({"step": step, "where": where, "code": code, "stderr": stderr, "before": before,
                     "after": after, "refused": refused, "batch": interval.batch_id})
        _run(spark, settings, step, interval)
    return seen


@pytest.fixture(scope="module")
def crashed(spark, settings, empty_lakehouse):
    """Both days, each run uninterrupted and again with its crashes; yields what was observed."""
    from lakehouse_core.maintenance import maintain
    from lakehouse_simulator.advance import advance
    from lakehouse_simulator.generate import generate
    from lakehouse_simulator.schema import create_source_schema

    own = settings.model_copy(update={"source": settings.source.model_copy(update={"dbname": SOURCE_DB})})
    with postgres.connect(own.source, own) as conn:
        create_source_schema(conn)
        generate(conn, scale=SCALE, seed=SEED, days=4)
        conn.commit()
    rng = random.Random(14)
    observed = {"crashes": []}

    for step in _uninterrupted(DAY1_STEPS):
        _run(spark, own, step, DAY1)
    observed["day1_reference"] = _rows(spark)
    empty_lakehouse()
    observed["crashes"] += _crash_day(spark, own, DAY1, DAY1_STEPS, rng)
    observed["day1"] = _rows(spark)

    day1_heads = _heads(spark)
    with postgres.connect(own.source, own) as conn:
        advance(conn, days=1, seed=SEED, scale=SCALE)
        conn.commit()
    for step in _uninterrupted(DAY2_STEPS):
        _run(spark, own, step, DAY2)
    observed["day2_reference"] = _rows(spark)
    _restore(spark, day1_heads)
    observed["crashes"] += _crash_day(spark, own, DAY2, DAY2_STEPS, rng)
    observed["day2"] = _rows(spark)

    observed["unreferenced_before_maintenance"] = _unreferenced_files(spark)
    # four days pass (Iceberg refuses to sweep files younger than a day): every file is old enough
    # to go, and every table is swept
    four_days_ago = (datetime.now(timezone.utc) - timedelta(days=4)).timestamp()
    for path in Path(urlparse(own.warehouse_uri).path).rglob("*"):
        os.utime(path, (four_days_ago, four_days_ago))
    maintain(own.model_copy(update={"maintenance": own.maintenance.model_copy(update={"orphan_sweep_days": 0})}),
             lambda: spark)
    observed["unreferenced_after_maintenance"] = _unreferenced_files(spark)
    observed["after_maintenance"] = _rows(spark)
    yield observed


def test_each_job_died_where_it_was_killed(crashed):
    named = [c for c in crashed["crashes"] if c["where"] != RANDOM_KILL]
    assert {c["where"] for c in named} == {"landing.files_written", "stage.branch_started", "stage.written",
                                           "stage.committed", "gate.validated", "gate.published_some"}
    for crash in named:
        assert crash["code"] == -signal.SIGKILL, (crash["step"], crash["where"], crash["stderr"][-2000:])
        assert f"LAKEHOUSE_CRASH_AT={crash['where']}: killing the process" in crash["stderr"]
    # the random kill may come after the job finished (then it is a plain rerun); it must not fail otherwise
    [random_kill] = [c for c in crashed["crashes"] if c["where"] == RANDOM_KILL]
    assert random_kill["code"] in (0, -signal.SIGKILL), random_kill["stderr"][-2000:]


def test_main_never_shows_a_partial_batch(crashed):
    for crash in crashed["crashes"]:
        before, after = crash["before"], crash["after"]
        # a table the killed job created holds nothing published (its first batch was staged at most)
        assert all(after[t][1:] == (None, None) for t in set(after) - set(before)), (crash["step"], crash["where"])
        after = {t: after[t] for t in before}
        if crash["where"] != "gate.published_some":
            # staging only ever moves audit branches: every table's main and tag are where they were
            assert after == before, (crash["step"], crash["where"])
            continue
        layer = crash["step"].removesuffix("_gate")
        changed = [t for t in after if after[t] != before.get(t)]
        # the gate died after its first publish: that table holds the whole batch, the others none of it
        assert len(changed) == 1 and changed[0].split(".")[-2] == layer, changed
        assert after[changed[0]][2] == crash["batch"]
        assert all(after[t][2] != crash["batch"] for t in after if t not in changed)


def test_the_next_layer_refuses_a_half_published_batch(crashed):
    [half] = [c for c in crashed["crashes"] if c["where"] == "gate.published_some"]
    assert half["refused"] is not None and half["batch"] in half["refused"], half["refused"]


def test_after_the_reruns_every_table_equals_an_uninterrupted_run(crashed):
    for day in ("day1", "day2"):
        reference, rerun = crashed[f"{day}_reference"], crashed[day]
        assert sorted(rerun) == sorted(reference), day
        assert sum(len(rows) for rows in reference.values()) > 5000
        for table in reference:
            assert rerun[table] == reference[table], (day, table)
    assert any(name.split(".")[-2] == "gold" for name in crashed["day1"])


def test_maintenance_removes_what_the_crashes_left(crashed):
    # the killed first load wrote files no table refers to, under the tables' folders
    assert crashed["unreferenced_before_maintenance"], "the crashes left nothing to clean up: the check proves nothing"
    assert crashed["unreferenced_after_maintenance"] == {}
    assert crashed["after_maintenance"] == crashed["day2"]
