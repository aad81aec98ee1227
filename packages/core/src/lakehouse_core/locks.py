"""One writer per layer at a time: a PostgreSQL advisory lock on the catalog database.

Two runs writing the same layer at once would stage on the same audit branch (each restarting
it at ``main``), and a gate could publish what another run staged after it validated. So every
``lakehouse`` command that writes a layer (its extract, transform or build, its gate, a
quarantine replay) and maintenance (every layer) holds the layer's lease for its whole run
(library callers take ``layer_leases`` themselves); a second job finds the
lease taken and stops at once with ``ConcurrentRunError`` (retryable: exit 75, Airflow retries
it with backoff). Jobs of different layers run side by side (silver reads bronze as the batch
it transforms published it, ``iceberg.published_head``).

The lease is a session-level advisory lock: it goes with the job's database connection, so a
job killed with SIGKILL releases it as the server sees the connection close. It goes too when the
catalog database restarts or drops the connection under a running job, while the job goes on: so
the write protocol checks the leases the process holds (``check_leases``) before each of its
commits (``iceberg.stage``'s state, ``iceberg.publish``), and a job that lost one stops with
``LeaseLostError`` (retryable: its rerun stages the batch again) instead of committing what
another job may be writing by then. A job that another of its connections stopped first (Spark's
catalog, a source read) is told so too when its lease went with the restart (``cli.main``).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterable, Iterator

from lakehouse_core import postgres
from lakehouse_core.errors import LakehouseError
from lakehouse_core.settings import LakehouseSettings

WRITTEN_LAYERS = ("bronze", "silver", "gold")


class ConcurrentRunError(LakehouseError):
    """Another job holds the lease of a layer this job writes; a retry after it finishes succeeds."""

    retryable = True


class LeaseLostError(LakehouseError):
    """The connection holding a lease of this job dropped (the catalog database restarted): the
    lease may be another job's by now, so nothing more is committed; a rerun succeeds."""

    retryable = True


#: the leases this process holds: (the job that took them, the connection holding them) by id
_held: dict[int, tuple[str, Any]] = {}
_held_lock = threading.Lock()  # (a layer job commits from a few threads)


def check_leases() -> None:
    """Raise LeaseLostError naming the job when a lease this process holds was lost (its
    connection dropped); nothing when it holds none (a library caller without leases)."""
    with _held_lock:
        for job, conn in _held.values():
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT 1")
            except Exception as exc:  # (psycopg2's OperationalError, InterfaceError: the connection is gone)
                reason = postgres.lost_connection(exc) or f"{type(exc).__name__}: {exc}".strip()
                raise LeaseLostError(
                    f"{job}: lost its lease on the catalog database ({reason}); nothing more was committed, "
                    "run again") from None


@contextlib.contextmanager
def layer_leases(settings: LakehouseSettings, layers: Iterable[str], job: str) -> Iterator[None]:
    """Hold the leases of ``layers`` (see the module) while the block runs.

    Raises ConcurrentRunError naming the layer when another job holds one (none is kept then),
    ValueError for a layer that is not one of ``WRITTEN_LAYERS``.
    """
    layers = sorted(set(layers))  # one order for every job: two jobs never wait on each other
    unknown = set(layers) - set(WRITTEN_LAYERS)
    if unknown:
        raise ValueError(f"no lease for layer(s) {', '.join(sorted(unknown))}; known: {', '.join(WRITTEN_LAYERS)}")
    conn = postgres.connect(settings.catalog, settings)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for layer in layers:
                cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (f"lakehouse.{layer}",))
                if not cur.fetchone()[0]:
                    raise ConcurrentRunError(
                        f"{job}: another job is writing the {layer} layer (its lease on the catalog database "
                        f"is held); nothing was written; run again once it has finished")
        with _held_lock:
            _held[id(conn)] = (job, conn)
        yield
    finally:
        with _held_lock:
            _held.pop(id(conn), None)
        conn.close()  # releases every lease the session holds
