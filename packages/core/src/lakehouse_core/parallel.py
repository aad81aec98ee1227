"""Per-table work of a layer job, a few tables at a time, each after the tables it reads.

A table's step mostly waits: on the source, on the catalog's commits, on Spark jobs too small
to use every core. Running ``spark.parallel_tables`` of them at once in the one application
(``run_tables``) overlaps those waits; a table starts only once the tables it depends on (among
those of the job) are done, so it reads them as this batch staged them. Each worker thread's
Spark jobs go to a fair-scheduler pool of its own, so a table's small jobs do not queue behind
another table's large one.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Callable, Iterable, Sequence, TypeVar

from lakehouse_core.errors import ConfigurationError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse_core.settings import LakehouseSettings

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_in_dependency_order(items: Sequence[Item], work: Callable[[Item], Result], workers: int,
                            depends_on: Callable[[Item], Iterable[Item]] = lambda item: (),
                            on_done: Callable[[Item, Result], None] | None = None,
                            in_each_thread: Callable[[], None] | None = None) -> list[Result]:
    """``work(item)`` for every item, at most ``workers`` at once, each started once the items it
    ``depends_on`` (those among ``items``) are done; the results in ``items`` order. ``on_done(item,
    result)`` runs in the calling thread as each item's work ends, while the others' goes on (a
    failure there is raised like one of the work's). ``in_each_thread()`` runs once in each worker
    thread before its first item (``own_scheduler_pool``).

    The first failure is raised once the work under way has finished; nothing starts after it.
    Raises ConfigurationError when the dependencies form a cycle.
    """
    waiting = {i: {items.index(d) for d in depends_on(item) if d in items} for i, item in enumerate(items)}
    results: dict[int, Result] = {}
    failure: BaseException | None = None
    workers = max(1, workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="lakehouse-table", initializer=in_each_thread) as pool:
        running: dict[Future, int] = {}
        while waiting or running:
            if failure is None:
                ready = [i for i, needs in waiting.items() if needs <= results.keys()]
                for i in ready[:workers - len(running)]:
                    running[pool.submit(work, items[i])] = i
                    del waiting[i]
            if not running:
                if failure is None:
                    raise ConfigurationError(f"the dependencies of {sorted(map(str, (items[i] for i in waiting)))} "
                                             "form a cycle")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                try:
                    results[index] = future.result()
                    if on_done is not None and failure is None:
                        on_done(items[index], results[index])
                except BaseException as exc:  # noqa: BLE001 - raised below, once the others are done
                    failure = failure or exc
    if failure is not None:
        raise failure
    return [results[i] for i in range(len(items))]


def own_scheduler_pool(spark: SparkSession) -> Callable[[], None]:
    """A thread's initializer (``run_in_dependency_order``'s ``in_each_thread``): the Spark jobs the
    thread submits go to a fair-scheduler pool of its own, named after the thread. The pools share
    the cores equally (``spark.scheduler.mode`` FAIR, set by ``lakehouse_core.spark``); jobs within
    one run in order."""
    def initialize() -> None:
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", threading.current_thread().name)

    return initialize


def run_tables(spark: SparkSession, settings: LakehouseSettings, items: Sequence[Item],
               work: Callable[[Item], Result], depends_on: Callable[[Item], Iterable[Item]] = lambda item: (),
               on_done: Callable[[Item, Result], None] | None = None) -> list[Result]:
    """A layer job's per-table ``work`` in ``spark``'s application: ``run_in_dependency_order``
    with ``settings.spark.parallel_tables`` workers, each in a scheduler pool of its own. Raises
    what the work raises (the first failure, once the work under way has finished) and
    ConfigurationError when the dependencies form a cycle."""
    return run_in_dependency_order(items, work, settings.spark.parallel_tables, depends_on=depends_on,
                                   on_done=on_done, in_each_thread=own_scheduler_pool(spark))
