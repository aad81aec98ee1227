"""Same (scale, seed, start, days) → identical tables, across processes; another seed → different
data; volumes scale linearly. The generator runs as separate ``python -m lakehouse_simulator``
processes against separate databases of the session's embedded server."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import argparse
import pytest

from lakehouse_simulator.schema import NATURAL_KEYS, SOURCE_TABLES

RUNS = {"a": ("0.02", "7"), "b": ("0.02", "7"), "c": ("0.02", "8"), "d": ("0.04", "7")}
REFERENCE = {"category", "sub_category", "brand", "order_channel", "shipping_method", "logistics_partner",
             "geo_location", "warehouse", "product"}


def _env(settings, run: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_SOURCE__")}
    return {**env, "LAKEHOUSE_HOME": str(settings.home), "LAKEHOUSE_SOURCE__DBNAME": f"sim_det_{run}"}


def _simulate(settings, run: str, *extra: str, database: str | None = None) -> subprocess.Popen:
    """``lakehouse simulate`` with the scale and seed of ``run`` into ``sim_det_<database or run>``."""
    scale, seed = RUNS[run]
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse_simulator", "simulate", "--scale", scale, "--seed", seed, *extra],
        env=_env(settings, database or run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _fingerprint(conn) -> dict[str, tuple[int, str]]:
    """Row count and content hash of every source table (rows in primary-key order) and of the clock."""
    out = {}
    with conn.cursor() as cur:
        for table in SOURCE_TABLES:
            pk = NATURAL_KEYS.get(table, "id")
            cur.execute(f'SELECT count(*), md5(string_agg(t::text, \'|\' ORDER BY t."{pk}")) FROM public."{table}" t')
            out[table] = cur.fetchone()
        cur.execute("SELECT 1, sim_now::text FROM lakehouse_sim.clock")
        out["clock"] = cur.fetchone()
    conn.rollback()
    return out


def _fingerprint_of(connect_db, database: str) -> dict[str, tuple[int, str]]:
    conn = connect_db(f"sim_det_{database}")
    try:
        return _fingerprint(conn)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def fingerprints(settings, connect_db) -> dict[str, dict[str, tuple[int, str]]]:
    for run in RUNS:                       # create the databases up front, one at a time
        connect_db(f"sim_det_{run}").close()
    procs = {run: _simulate(settings, run, "--reset") for run in RUNS}
    for run, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"run {run} failed:\n{out}\n{err}"
        assert "orders" in out and "generated sim_det_" in out
    return {run: _fingerprint_of(connect_db, run) for run in RUNS}


def test_same_seed_gives_identical_tables_in_two_processes(fingerprints):
    a, b = fingerprints["a"], fingerprints["b"]
    assert all(a[t][0] > 0 for t in SOURCE_TABLES)
    assert a == b


def test_another_seed_gives_different_data(fingerprints):
    a, c = fingerprints["a"], fingerprints["c"]
    differing = {t for t in SOURCE_TABLES if a[t] != c[t]}
    # Reference data is fixed like the real bootstrap files; everything simulated depends on the seed.
    assert differing == set(SOURCE_TABLES) - REFERENCE
    assert all(a[t] == c[t] for t in REFERENCE)
    assert a["clock"] == c["clock"]


def test_volumes_scale_linearly(fingerprints):
    small, large = fingerprints["a"], fingerprints["d"]
    assert large["orders"][0] == 2 * small["orders"][0] == 4_000
    assert large["customers"][0] == 2 * small["customers"][0] == 400
    for table in ("order_items", "payment", "shipment", "order_status_history", "customer_activity_log",
                  "cart", "cart_items", "wishlist", "product_review", "inventory_log"):
        ratio = large[table][0] / small[table][0]
        assert 1.7 <= ratio <= 2.3, f"{table}: {small[table][0]} -> {large[table][0]}"
    for table in REFERENCE | {"inventory"}:
        assert large[table][0] == small[table][0], table


def test_rerun_without_reset_refuses_and_keeps_the_data(settings, connect_db, fingerprints):
    proc = _simulate(settings, "a")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "not empty" in out
    assert _fingerprint_of(connect_db, "a") == fingerprints["a"]


def test_if_empty_leaves_a_filled_source_as_it_is_and_fills_an_empty_one(settings, connect_db, fingerprints):
    """--if-empty (compose's one-shot source set-up, which may run again): a filled source is left
    as it is (exit 0); an empty one is filled like a plain run."""
    proc = _simulate(settings, "a", "--if-empty")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "already holds data; nothing generated" in out
    assert _fingerprint_of(connect_db, "a") == fingerprints["a"]
    connect_db("sim_det_empty").close()
    proc = _simulate(settings, "a", "--if-empty", database="empty")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0 and "generated sim_det_empty" in out, out + err
    assert _fingerprint_of(connect_db, "empty") == fingerprints["a"]


def test_simulate_is_registered_with_the_lakehouse_cli():
    (ep,) = [e for e in entry_points(group="lakehouse.commands") if e.name == "simulator"]
    parser = argparse.ArgumentParser(prog="lakehouse")
    ep.load()(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--scale", "0.5", "--seed", "3", "--start", "2024-02-01",
                              "--days", "7", "--reset"])
    assert (args.scale, args.seed, str(args.start), args.days, args.reset) == (0.5, 3, "2024-02-01", 7, True)
    assert callable(args.func)
    defaults = parser.parse_args(["simulate", "--scale", "1", "--seed", "1"])
    assert (str(defaults.start), defaults.days, defaults.reset) == ("2023-01-01", 30, False)
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--scale", "0", "--seed", "1"])
    with pytest.raises(SystemExit):  # --reset and --if-empty contradict each other
        parser.parse_args(["simulate", "--scale", "1", "--seed", "1", "--reset", "--if-empty"])
