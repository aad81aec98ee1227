"""Named fault points, for the tests that prove a crash, or a database restart, at any moment loses
and duplicates nothing.

A layer job started with ``LAKEHOUSE_CRASH_AT=<point>`` (``settings.crash_at``) kills itself with
SIGKILL, as an OOM killer or a lost node would, the first time one of its threads reaches that
point: nothing runs after it (no ``finally``, no JVM shutdown hook). Started as a process group
leader (``start_new_session``), it kills its group: the Spark JVM dies in the same instant rather
than finishing a commit a Python thread had asked for. Points sit where a write protocol has done
part of its work:

* ``landing.files_written``: a first load's files are in the table's folder, no table refers to them;
* ``stage.branch_started``: a table's audit branch (re)started at ``main``, nothing written yet;
* ``stage.written``: the batch's rows committed to the audit branch, its state not yet;
* ``stage.committed``: the batch staged with its state, not published;
* ``gate.validated``: every staged table validated, none published;
* ``gate.published_some``: the first table of the batch published, the others still staged.

A job started with ``LAKEHOUSE_PAUSE_AT=<point>`` (``settings.pause_at``) stops itself with SIGSTOP
the first time it reaches that point, after a line on stderr naming it: a test then restarts the
catalog database under it (every connection of the catalog's pool dropped) and resumes it with
SIGCONT, so the commit that follows the point meets the restart deterministically.

Only the CLI arms a point (``arm``, from the settings a job starts with): library calls never crash
or stop.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Literal, get_args

CrashPoint = Literal["landing.files_written", "stage.branch_started", "stage.written", "stage.committed",
                     "gate.validated", "gate.published_some"]
CRASH_POINTS: tuple[str, ...] = get_args(CrashPoint)

_armed: str | None = None
_pause: str | None = None


def arm(point: CrashPoint | None, pause: CrashPoint | None = None) -> None:
    """Make the process crash at ``point`` and stop once at ``pause`` (None: at no point)."""
    global _armed, _pause
    _armed, _pause = point, pause


def crash_point(point: CrashPoint) -> None:
    """Kill the process with SIGKILL when ``point`` is the armed one; stop it with SIGSTOP (once)
    when it is the one to pause at."""
    global _pause
    if point not in CRASH_POINTS:  # a typo in a call site must not disarm a test silently
        raise ValueError(f"unknown crash point {point!r}; known: {', '.join(CRASH_POINTS)}")
    if _pause == point:
        _pause = None
        print(f"LAKEHOUSE_PAUSE_AT={point}: stopped (fault injection), pid {os.getpid()}; SIGCONT resumes it",
              file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGSTOP)
    if _armed == point:
        print(f"LAKEHOUSE_CRASH_AT={point}: killing the process (fault injection)", file=sys.stderr, flush=True)
        os.killpg(os.getpgrp(), signal.SIGKILL) if os.getpgrp() == os.getpid() else os.kill(os.getpid(), signal.SIGKILL)
