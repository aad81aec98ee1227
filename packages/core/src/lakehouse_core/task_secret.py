"""A secret Spark tasks need (a password, object-store keys), kept out of pickled tasks and reprs.

    password = TaskSecret(settings.source.password.get_secret_value())
    rdd.mapPartitions(lambda rows: connect(password=password.get()))

On the driver it holds the value. Pickled into a task, it becomes a Spark broadcast variable:
the task carries the broadcast's id, and the executor fetches the value from the driver through
its block manager. So the secret is not in a task's closure, a Spark plan, a repr or a log line.
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class TaskSecret(Generic[T]):
    """``get()`` gives the value, on the driver or in a task. Pickling it without an active
    SparkContext raises RuntimeError: a secret goes only to Spark tasks."""

    def __init__(self, value: T | None = None, broadcast=None):
        self._value, self._broadcast = value, broadcast

    def __repr__(self) -> str:
        return "TaskSecret('***')"

    def get(self) -> T:
        return self._broadcast.value if self._broadcast is not None else self._value

    def __reduce__(self):
        if self._broadcast is None:
            from pyspark import SparkContext

            context = SparkContext._active_spark_context
            if context is None:
                raise RuntimeError("a TaskSecret is shipped only to Spark tasks (no SparkContext is active)")
            self._broadcast = context.broadcast(self._value)
        return TaskSecret, (None, self._broadcast)
