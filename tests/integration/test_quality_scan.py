"""The single-scan decision (``lakehouse_core.quality_scan``) says what Great Expectations says.

Each compiled expectation type runs both ways on one frame made of the edge cases GE's Spark
engine treats specially (NULLs, both or one of a pair missing, repeated keys with NULL parts, a
row condition): the scan's pass/fail must equal the checkpoint's, for every expectation, and
every type must both pass and fail somewhere in the table below, so that a wrong condition shows.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import pytest

from lakehouse_core import quality_scan
from lakehouse_core.quality import GreatExpectationsRunner

pytestmark = pytest.mark.spark

ROWS = [  # id, n, price, s, day, a, b, k1, k2, current
    (1, 5, Decimal("1.50"), "x1", dt.date(2024, 1, 1), 2, 1, 1, "a", True),
    (2, None, Decimal("0.00"), "y2", dt.date(2024, 6, 1), None, None, 1, None, True),
    (3, 10, None, None, None, 3, 3, None, None, False),
    (4, 0, Decimal("-2.00"), "x4", dt.date(2025, 1, 1), None, 4, None, None, False),
    (4, 7, Decimal("9.99"), "X5", dt.date(2023, 12, 31), 5, None, 1, "a", True),
]
SCHEMA = ("id long, n int, price decimal(10,2), s string, day date, a int, b int, k1 int, k2 string, "
          "current boolean")


def _e(kind: str, **kwargs) -> dict:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "fail"}}


CASES = [
    _e("expect_column_values_to_not_be_null", column="id"),
    _e("expect_column_values_to_not_be_null", column="n"),
    _e("expect_column_values_to_not_be_null", column="n", row_condition="current = false", condition_parser="spark"),
    _e("expect_column_values_to_not_be_null", column="day", row_condition="current = true", condition_parser="spark"),
    _e("expect_column_values_to_be_in_set", column="s", value_set=["x1", "y2", "x4", "X5"]),
    _e("expect_column_values_to_be_in_set", column="s", value_set=["x1", "y2"]),
    _e("expect_column_values_to_be_in_set", column="n", value_set=[0, 5, 7, 10]),
    _e("expect_column_values_to_not_be_in_set", column="s", value_set=["zz"]),
    _e("expect_column_values_to_not_be_in_set", column="s", value_set=["X5"]),
    _e("expect_column_values_to_be_between", column="n", min_value=0, max_value=10),
    _e("expect_column_values_to_be_between", column="n", min_value=0, strict_min=True),
    _e("expect_column_values_to_be_between", column="n", max_value=10, strict_max=True),
    _e("expect_column_values_to_be_between", column="price", min_value=0),
    _e("expect_column_values_to_be_between", column="price", min_value=-2, max_value=9.99),
    _e("expect_column_values_to_be_between", column="day", min_value="2023-12-31", max_value="2025-01-01"),
    _e("expect_column_values_to_be_between", column="day", min_value="2024-01-01"),
    _e("expect_column_values_to_match_regex", column="s", regex="^[xy][0-9]$"),
    _e("expect_column_values_to_match_regex", column="s", regex="^[xyX][0-9]$"),
    _e("expect_column_values_to_not_match_regex", column="s", regex="^X"),
    _e("expect_column_values_to_not_match_regex", column="s", regex="^z"),
    _e("expect_column_value_lengths_to_be_between", column="s", min_value=2, max_value=2),
    _e("expect_column_value_lengths_to_be_between", column="s", min_value=3),
    _e("expect_column_values_to_be_unique", column="id"),
    _e("expect_column_values_to_be_unique", column="n"),
    _e("expect_column_values_to_be_unique", column="k1"),
    _e("expect_column_values_to_be_unique", column="id", row_condition="current = true", condition_parser="spark"),
    _e("expect_compound_columns_to_be_unique", column_list=["id", "n"]),
    _e("expect_compound_columns_to_be_unique", column_list=["k1", "k2"]),
    _e("expect_compound_columns_to_be_unique", column_list=["k1", "k2"], ignore_row_if="any_value_is_missing"),
    _e("expect_compound_columns_to_be_unique", column_list=["k2", "b"], ignore_row_if="never"),
    _e("expect_compound_columns_to_be_unique", column_list=["k2", "a"], ignore_row_if="never"),
    _e("expect_column_pair_values_to_be_equal", column_A="a", column_B="b"),
    _e("expect_column_pair_values_to_be_equal", column_A="a", column_B="b", ignore_row_if="either_value_is_missing"),
    _e("expect_column_pair_values_to_be_equal", column_A="k1", column_B="k1", ignore_row_if="neither"),
    _e("expect_column_pair_values_to_be_equal", column_A="a", column_B="b", row_condition="id = 3",
       condition_parser="spark"),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b"),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", or_equal=True),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", or_equal=True,
       ignore_row_if="either_value_is_missing"),
    _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", ignore_row_if="neither"),
    _e("expect_column_values_to_be_in_type_list", column="id", type_list=["IntegerType", "LongType"]),
    _e("expect_column_values_to_be_in_type_list", column="price", type_list=["DoubleType", "NoSuchType"]),
    _e("expect_column_values_to_be_in_type_list", column="price", type_list=["DecimalType"]),
    _e("unexpected_rows_expectation", unexpected_rows_query="SELECT * FROM {batch} WHERE n > 100"),
    _e("unexpected_rows_expectation", unexpected_rows_query="SELECT * FROM {batch} WHERE price < 0"),
]


def test_the_scan_decides_every_compiled_expectation_as_great_expectations_does(spark, settings):
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "scan", "meta": {"primary_key": ["id"]}, "expectations": CASES}
    decision = quality_scan.decide(df, suite)
    assert decision is not None and decision.rows == len(ROWS)
    runner = GreatExpectationsRunner(settings)
    result = runner._run("test.scan", {**suite, "name": "test.scan"}, runner.DECISION, df, "scan")
    (validation,) = result.run_results.values()
    theirs = {r.expectation_config.id: r.success for r in validation.results}
    ids = [e.id for e in runner._suite({**suite, "name": "test.scan"}).expectations]  # (in the suite's order)
    assert len(theirs) == len(ids) == len(CASES)
    disagreements = [json.dumps(case) for case, ours, id_ in zip(CASES, decision.passed, ids) if ours != theirs[id_]]
    assert not disagreements, "\n".join(disagreements)
    seen = defaultdict(set)
    for case, passed in zip(CASES, decision.passed):
        seen[case["type"]].add(passed)
    assert all(outcomes == {True, False} for outcomes in seen.values()), dict(seen)


@pytest.mark.parametrize("expectation", [
    _e("expect_column_values_to_not_be_null", column="n", mostly=0.5),
    _e("expect_column_values_to_be_between", column="s", min_value=0),
    _e("expect_column_values_to_be_between", column="n", min_value=5, max_value=1),
    _e("expect_column_values_to_not_be_null", column="missing"),
    _e("expect_column_values_to_not_be_null", column="n", row_condition='col("n")>1',
       condition_parser="great_expectations"),
    _e("expect_table_row_count_to_be_between", min_value=1),
])
def test_what_the_scan_does_not_compile_is_left_to_great_expectations(spark, expectation):
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "scan", "expectations": [_e("expect_column_values_to_not_be_null", column="id"), expectation]}
    assert quality_scan.decide(df, suite) is None


def test_a_suite_the_scan_passes_is_stored_and_rendered_as_a_checkpoint_result(spark, settings):
    """Its stored result reads like the decision checkpoint's (every expectation, BOOLEAN_ONLY),
    names the scan, and Data Docs render a page for it."""
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "scan", "meta": {"primary_key": ["id"]}, "expectations": [
        _e("expect_column_values_to_not_be_null", column="id"),
        _e("expect_column_values_to_be_in_set", column="s", value_set=["x1", "y2", "x4", "X5"]),
        _e("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", or_equal=True)]}
    decision = quality_scan.decide(df, suite)
    assert decision.success
    runner = GreatExpectationsRunner(settings)
    outcomes = runner.validate("test.scanned", df, suite, ["id"], run_name="scanned", decision=decision)
    assert [(o.expectation, o.success) for o in outcomes] == [(c["type"], True) for c in suite["expectations"]]
    stored = sorted((settings.home / "gx").rglob("validations/test/scanned/scanned/*/*.json"))
    assert len(stored) == 1
    result = json.loads(stored[0].read_text())
    assert result["success"] and result["meta"]["lakehouse_decided_by"] == "lakehouse_core.quality_scan"
    assert [r["expectation_config"]["type"] for r in result["results"]] == [c["type"] for c in suite["expectations"]]
    assert result["statistics"]["successful_expectations"] == 3
    runner.build_data_docs()
    pages = list((settings.data_docs_dir / "validations" / "test" / "scanned" / "scanned").glob("*/*.html"))
    assert len(pages) == 1 and "test.scanned" in pages[0].read_text()


def test_the_data_docs_index_lists_the_newest_results_only(spark, settings, tmp_path):
    """GE's index reads every result it lists each time a gate renders it: bounded by
    ``quality.data_docs_index_results`` (a changed bound updates an existing site), so a gate's cost
    does not grow with the number of days validated. Every result keeps its page."""
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "scan", "meta": {"primary_key": ["id"]},
             "expectations": [_e("expect_column_values_to_not_be_null", column="id")]}
    decision = quality_scan.decide(df, suite)

    def index_lists(bound: int, runs: list[str]) -> tuple[list[str], list[str]]:
        limited = settings.model_copy(update={"home": tmp_path, "quality": settings.quality.model_copy(
            update={"data_docs_index_results": bound})})
        runner = GreatExpectationsRunner(limited)
        for run in runs:  # (a gate a day, each rendering its results)
            runner.validate("test.bounded", df, suite, ["id"], run_name=run, decision=decision)
            index = runner.build_data_docs().read_text()
        validated = sorted(p.name for p in (limited.data_docs_dir / "validations" / "test" / "bounded").iterdir())
        return [run for run in validated if f"validations/test/bounded/{run}/" in index], validated

    assert index_lists(2, ["day-1", "day-2", "day-3", "day-4"]) == (["day-3", "day-4"],
                                                                    ["day-1", "day-2", "day-3", "day-4"])
    assert index_lists(3, ["day-5"]) == (["day-3", "day-4", "day-5"], ["day-1", "day-2", "day-3", "day-4", "day-5"])


def test_a_new_process_reuses_what_earlier_gates_saved_to_great_expectations(spark, settings, tmp_path):
    """Each gate is a new process: it finds the data source, suites, validation definitions and
    checkpoints that earlier ones saved and rewrites none of them (GE rewrites its whole project
    file for each asset added); a suite that changed is saved again, and validated as changed."""
    home = settings.model_copy(update={"home": tmp_path})
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "reused", "meta": {"primary_key": ["id"]},
             "expectations": [_e("expect_column_values_to_not_be_null", column="id")]}

    def gate(checked: dict) -> tuple[list, set[str]]:  # (a runner of its own: a new process's)
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "gx").rglob("*") if p.is_file()}
        outcomes = GreatExpectationsRunner(home).validate("test.reused", df, checked, ["id"], run_name="run")
        saved = {str(p.relative_to(tmp_path / "gx")) for p in (tmp_path / "gx").rglob("*")
                 if p.is_file() and before.get(p) != p.stat().st_mtime_ns and "uncommitted" not in p.parts}
        return [(o.expectation, o.success) for o in outcomes], saved

    first, saved_first = gate(suite)
    assert first == [("expect_column_values_to_not_be_null", True)]
    # (GE would parse the config variables file again on every store lookup: none is named)
    assert "config_variables_file_path:\n" in (tmp_path / "gx" / "gx" / "great_expectations.yml").read_text()
    assert any(p.endswith("great_expectations.yml") for p in saved_first)
    assert any("checkpoints" in p for p in saved_first)
    assert gate(suite) == (first, set())
    changed = {**suite, "expectations": [_e("expect_column_values_to_be_between", column="n", min_value=0,
                                            max_value=1)]}
    outcomes, saved_changed = gate(changed)  # (failing: its diagnosis checkpoint saved as well)
    assert outcomes == [("expect_column_values_to_be_between", False)]
    assert "gx/expectations/test/reused.json" in saved_changed, saved_changed
    assert not any(p.endswith("great_expectations.yml") for p in saved_changed), saved_changed
    assert gate(changed) == (outcomes, set())


def test_a_gate_adds_the_assets_of_its_tables_in_one_save_of_the_project_file(spark, settings, tmp_path, monkeypatch):
    """GE rewrites its whole project file for each asset and batch definition added one at a time;
    a gate adds those of all its tables at once, keeping the ids earlier validations refer to."""
    home = settings.model_copy(update={"home": tmp_path})
    df = spark.createDataFrame(ROWS, SCHEMA)
    suite = {"name": "first", "meta": {"primary_key": ["id"]},
             "expectations": [_e("expect_column_values_to_not_be_null", column="id")]}
    GreatExpectationsRunner(home).validate("test.first", df, suite, ["id"], run_name="run")
    runner = GreatExpectationsRunner(home)  # (a new process's)
    first = runner.datasource.get_asset("test.first").get_batch_definition("whole").id
    saves = []
    monkeypatch.setattr(type(runner.context), "_save_project_config",
                        lambda context, _save=type(runner.context)._save_project_config: saves.append(1) or _save(context))
    names = [f"test.t{number}" for number in range(12)]
    runner.add_assets(["test.first", *names, names[0]])
    assert len(saves) == 1
    runner.add_assets(names)
    assert len(saves) == 1  # (nothing missing: nothing saved)
    reloaded = GreatExpectationsRunner(home).datasource  # what a later process finds
    assert sorted(asset.name for asset in reloaded.assets) == sorted(["test.first", *names])
    assert reloaded.get_asset("test.first").get_batch_definition("whole").id == first
    assert all(reloaded.get_asset(name).get_batch_definition("whole").id for name in names)
    for name in names[:2]:  # validated through the added assets, no further save
        assert [o.success for o in runner.validate(name, df, suite, ["id"], run_name="run")] == [True]
    assert len(saves) == 1
