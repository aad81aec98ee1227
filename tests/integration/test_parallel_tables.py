"""Tables run a few at a time in one Spark application share its cores fairly."""

from __future__ import annotations

import time

import pytest

from lakehouse_core.parallel import run_tables

pytestmark = pytest.mark.spark


def test_a_tables_small_job_runs_beside_another_tables_large_one(spark, settings):
    """A small job one table submits while another table's large job holds every core ends long
    before the large one: ``run_tables`` (what every layer job runs its tables with) puts each
    worker thread's jobs in a fair-scheduler pool of their own. (With
    first-in-first-out scheduling it waits for every task of the large job to start, and ends with it.)"""
    context = spark.sparkContext
    ended: dict[str, float] = {}

    def work(item: str) -> None:
        if item == "large":
            tasks = 24 * context.defaultParallelism  # 6 s whatever the cores
            context.parallelize(range(tasks), tasks).foreach(lambda _: time.sleep(0.25))
        else:
            time.sleep(1.5)  # the large job is under way
            context.parallelize([1], 1).count()
        ended[item] = time.monotonic()

    assert settings.spark.parallel_tables >= 2
    run_tables(spark, settings, ["large", "small"], work)
    assert ended["large"] - ended["small"] > 2.0, ended
