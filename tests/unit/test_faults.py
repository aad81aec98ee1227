"""Fault points (``lakehouse_core.faults``): a typo is an error, a pause point stops the process once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lakehouse_core import faults
from lakehouse_core.errors import ConfigurationError
from lakehouse_core.settings import LakehouseSettings

#: a job that reaches ``stage.written`` twice, armed to pause there
PAUSING = """
from lakehouse_core import faults
from lakehouse_core.errors import ConfigurationError
faults.arm(None, "stage.written")
faults.crash_point("stage.branch_started")
faults.crash_point("stage.written")
print("resumed", flush=True)
faults.crash_point("stage.written")
print("done", flush=True)
"""


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_an_unknown_point_is_an_error_in_a_call_site_and_in_the_settings(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="unknown crash point 'stage.writen'"):
        faults.crash_point("stage.writen")
    monkeypatch.setenv("LAKEHOUSE_PAUSE_AT", "gate.publish")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_PAUSE_AT: Input should be"):
        LakehouseSettings(home=tmp_path)


def test_a_pause_point_stops_the_process_once_until_it_is_continued():
    proc = subprocess.Popen([sys.executable, "-c", PAUSING], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        marker = proc.stderr.readline()
        assert marker.startswith(f"LAKEHOUSE_PAUSE_AT=stage.written: stopped (fault injection), pid {proc.pid}")
        deadline = time.monotonic() + 30
        while _state(proc.pid) != "T":  # stopped
            assert time.monotonic() < deadline, "the process did not stop at its pause point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGCONT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out.split() == ["resumed", "done"]  # the second pass through the point did not stop
