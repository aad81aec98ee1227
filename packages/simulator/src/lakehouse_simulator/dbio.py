"""Set-based reads and writes for the day-by-day simulator.

* :func:`fetch` runs one query and returns its columns as NumPy arrays (the query casts money to
  whole-VND ``bigint`` and timestamps to second offsets with :func:`off`).
* :func:`reserve_ids` takes a block of ids from a table's serial sequence in one statement, so
  rows can be COPYed with their ids (and foreign keys) already known.
* :func:`insert` COPYs a frame straight into a table; :func:`update` COPYs it into a temporary
  table and applies one ``UPDATE ... FROM``; :func:`delete` does the same with ``DELETE ... USING``.
"""

from __future__ import annotations

import numpy as np
import psycopg2.extensions

from lakehouse_simulator.copyio import Frame, copy_frame, frame_length

S = np.dtypes.StringDType()
#: Offset standing for NULL timestamps in fetched columns.
NULL_OFFSET = -(1 << 62)
_INT_OIDS = (20, 21, 23)     # int8, int2, int4
_BOOL_OID = 16


def off(column: str) -> str:
    """SQL: seconds from the day start (parameter ``%(t0)s``) to a timestamp column (NULL → NULL_OFFSET)."""
    return f"coalesce(extract(epoch from ({column} - %(t0)s::timestamp))::bigint, {NULL_OFFSET})"


def fetch(cur: psycopg2.extensions.cursor, sql: str, params: dict | tuple = ()) -> dict[str, np.ndarray]:
    """Run a query; return its columns as arrays (int → int64, bool → bool, text → StringDType)."""
    cur.execute(sql, params)
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    out: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        col = [r[i] for r in rows]
        code = cur.description[i].type_code
        if code in _INT_OIDS:
            out[name] = np.array(col, dtype=np.int64)       # NULLs must be coalesced in the query
        elif code == _BOOL_OID:
            out[name] = np.array(col, dtype=bool)
        else:
            out[name] = np.array(["" if v is None else str(v) for v in col], dtype=S)
    return out


def reserve_ids(cur: psycopg2.extensions.cursor, table: str, n: int,
                rng: np.random.Generator | None = None, gap_rate: float = 0.0) -> np.ndarray:
    """``n`` new ids for ``table`` from its sequence, ascending, with the occasional burnt value."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    holes = rng.random(n) < gap_rate if rng is not None and gap_rate > 0 else np.zeros(n, dtype=bool)
    offsets = np.arange(n, dtype=np.int64) + np.cumsum(holes)
    span = int(offsets[-1]) + 1
    cur.execute("SELECT setval(s, nextval(s) + %s - 1) FROM pg_get_serial_sequence(%s, 'id') AS s",
                (span, f"public.{table}"))
    last = cur.fetchone()[0]
    return last - span + 1 + offsets


def insert(cur: psycopg2.extensions.cursor, table: str, frame: Frame) -> int:
    """COPY the rows of a frame into ``public.<table>``."""
    if frame_length(frame) == 0:
        return 0
    return copy_frame(cur, f'public."{table}"', frame)


def _temp(cur: psycopg2.extensions.cursor, table: str, frame: Frame) -> str:
    """A temporary table with the frame's columns typed like ``table``'s, filled with the frame."""
    tmp = f"_sim_{table}"
    cols = ", ".join(f'"{c}"' for c in frame)
    cur.execute(f"DROP TABLE IF EXISTS pg_temp.{tmp}")
    cur.execute(f'CREATE TEMP TABLE {tmp} AS SELECT {cols} FROM public."{table}" WITH NO DATA')
    copy_frame(cur, tmp, frame)
    return tmp


def update(cur: psycopg2.extensions.cursor, table: str, frame: Frame, *, key: str = "id",
           greatest: tuple[str, ...] = ()) -> int:
    """``UPDATE table SET col = coalesce(new, old)`` for the frame's rows (matched on ``key``).

    A NULL (masked / NaT) value means "leave the column as it is"; columns in ``greatest`` keep
    the later of the old and the new value. Returns the number of rows updated.
    """
    if frame_length(frame) == 0:
        return 0
    tmp = _temp(cur, table, frame)
    sets = ", ".join(
        f'"{c}" = greatest(s."{c}", t."{c}")' if c in greatest else f'"{c}" = coalesce(t."{c}", s."{c}")'
        for c in frame if c != key)
    cur.execute(f'UPDATE public."{table}" AS s SET {sets} FROM pg_temp.{tmp} AS t WHERE s."{key}" = t."{key}"')
    n = cur.rowcount
    cur.execute(f"DROP TABLE pg_temp.{tmp}")
    return n


def delete(cur: psycopg2.extensions.cursor, table: str, ids: np.ndarray, *, key: str = "id") -> int:
    """``DELETE FROM table`` the rows whose ``key`` is in ``ids``; returns the number deleted."""
    if len(ids) == 0:
        return 0
    tmp = _temp(cur, table, {key: np.asarray(ids, dtype=np.int64)})
    cur.execute(f'DELETE FROM public."{table}" AS s USING pg_temp.{tmp} AS t WHERE s."{key}" = t."{key}"')
    n = cur.rowcount
    cur.execute(f"DROP TABLE pg_temp.{tmp}")
    return n
