"""Bulk loading of column-oriented tables with one ``COPY ... FROM STDIN`` per table.

A table is a :data:`Frame`: an ordered mapping of column name to a NumPy array. Columns are
rendered to PostgreSQL's text COPY format by dtype, chunk by chunk, while the server reads:

* ``bool`` → ``t``/``f``; signed/unsigned integers → decimal text (money is whole VND in int64);
* ``datetime64`` → ISO timestamps to the second, or the microsecond for finer units (``NaT`` → NULL);
* strings (``str``/``StringDType``/``object`` with ``None`` → NULL) → escaped text;
* a ``numpy.ma.MaskedArray`` of any of these → NULL where masked.

Floats are refused on purpose: their text form is a rounding decision that belongs to the
generator (scale to integers, or pre-format), not to the loader.
"""

from __future__ import annotations

import io
from typing import Mapping

import numpy as np
import psycopg2.extensions

Frame = Mapping[str, np.ndarray]

STR = np.dtypes.StringDType()
NULL = "\\N"
CHUNK_ROWS = 200_000


def frame_length(frame: Frame) -> int:
    """Number of rows of a frame (all columns must have the same length)."""
    lengths = {len(col) for col in frame.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of unequal length: { {k: len(v) for k, v in frame.items()} }")
    return lengths.pop()


_SPECIALS = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def _escape(text: np.ndarray) -> np.ndarray:
    """Escape backslash, tab, newline and carriage return for the text COPY format."""
    joined = "".join(text.tolist())          # one C-speed scan instead of one ufunc pass per character
    for raw, escaped in _SPECIALS:
        if raw in joined:
            text = np.strings.replace(text, raw, escaped)
    return text


def format_column(col: np.ndarray) -> np.ndarray:
    """Render one column as COPY text values (a StringDType array)."""
    mask = np.ma.getmaskarray(col) if isinstance(col, np.ma.MaskedArray) else None
    data = np.ma.getdata(col)
    kind = data.dtype.kind
    if kind == "b":
        out = np.where(data, "t", "f").astype(STR)
    elif kind in "iu":
        out = data.astype(STR)
    elif kind == "M":
        nat = np.isnat(data)
        mask = nat if mask is None else (mask | nat)
        # whole seconds unless the array carries a finer unit (e.g. a wall-clock now())
        unit = np.datetime_data(data.dtype)[0]
        out = data.astype("datetime64[s]" if unit in ("Y", "M", "W", "D", "h", "m", "s") else "datetime64[us]").astype(STR)
    elif kind in "UT":
        out = _escape(data.astype(STR))
    elif kind == "O":
        none = np.equal(data, None)
        mask = none if mask is None else (mask | none)
        out = _escape(np.where(none, "", data).astype(STR))
    else:
        raise TypeError(f"unsupported column dtype {data.dtype} (format floats in the generator)")
    if mask is not None and mask.any():
        out = np.where(mask, NULL, out).astype(STR)
    return out


def render_rows(frame: Frame, start: int, stop: int) -> bytes:
    """Rows ``start:stop`` of a frame in COPY text format, newline-terminated."""
    cols = [format_column(col[start:stop]) for col in frame.values()]
    rows = cols[0]
    for col in cols[1:]:
        rows = np.strings.add(np.strings.add(rows, "\t"), col)
    return ("\n".join(rows.tolist()) + "\n").encode("utf-8") if len(rows) else b""


class _FrameReader(io.RawIOBase):
    """A file-like view of a frame in COPY text format, rendered lazily chunk by chunk."""

    def __init__(self, frame: Frame, chunk_rows: int = CHUNK_ROWS) -> None:
        self._frame = frame
        self._n = frame_length(frame)
        self._next_row = 0
        self._chunk_rows = chunk_rows
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while not self._buffer and self._next_row < self._n:
            stop = min(self._next_row + self._chunk_rows, self._n)
            self._buffer = memoryview(render_rows(self._frame, self._next_row, stop))
            self._next_row = stop
        if size is None or size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out.tobytes()


def copy_frame(cur: psycopg2.extensions.cursor, table: str, frame: Frame) -> int:
    """Load a frame into ``table`` with a single ``COPY ... FROM STDIN``; return the row count."""
    n = frame_length(frame)
    columns = ", ".join(f'"{name}"' for name in frame)
    cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", _FrameReader(frame), size=1 << 20)
    return n
