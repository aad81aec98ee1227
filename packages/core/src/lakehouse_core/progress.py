"""Progress of a long command, table by table: a line as each table finishes, then a summary table.

    progress = Progress("silver transform", total=len(tables))
    # as each table is done (from any thread):
    progress.done(f"silver.{name}", f"{merged} keys merged", seconds, merged=merged, quarantined=quarantined)
    progress.summary()

Lines go to standard output as they happen (flushed: Airflow's task log and a terminal show them
at once); the summary has one row per table with its rows, seconds and any other counts given,
and a total row.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Progress:
    """The progress of one command over ``total`` tables."""

    title: str
    total: int
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    rows: list[dict[str, object]] = field(default_factory=list)
    began: float = field(default_factory=time.perf_counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def done(self, table: str, outcome: str, seconds: float | None, **counts: int | str | None) -> None:
        """Report ``table`` finished: ``outcome`` is the line's text; its ``seconds`` (None: not its
        own, e.g. tables loaded together) and ``counts`` (rows, quarantined, ...) go into the summary."""
        with self._lock:
            self.rows.append({"table": table, **counts, "seconds": None if seconds is None else round(seconds, 2)})
            print(f"[{len(self.rows):>{len(str(self.total))}}/{self.total}] {table}: {outcome}", file=self.stream,
                  flush=True)

    def summary(self) -> None:
        """Print the summary table: a row per table reported, a total row."""
        columns = [c for row in self.rows for c in row if c != "table"]
        columns = list(dict.fromkeys(c for c in columns if c != "seconds")) + ["seconds"]
        width = max([len("table"), len("total"), *(len(str(r["table"])) for r in self.rows)])
        print(f"\n{self.title}: {len(self.rows)} of {self.total} tables in "
              f"{time.perf_counter() - self.began:.1f} s", file=self.stream)
        print(f"{'table':<{width}} " + " ".join(f"{c:>12}" for c in columns), file=self.stream)
        for row in self.rows:
            print(f"{row['table']:<{width}} " + " ".join(f"{_cell(row.get(c)):>12}" for c in columns), file=self.stream)
        totals = {c: sum(v for r in self.rows if isinstance(v := r.get(c), (int, float)) and not isinstance(v, bool))
                  for c in columns}
        print(f"{'total':<{width}} " + " ".join(f"{_cell(totals[c]):>12}" for c in columns), file=self.stream,
              flush=True)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
