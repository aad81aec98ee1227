"""Suites are found, and checked, before any gate trusts them: nothing weakens a gate silently."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lakehouse_core.errors import ConfigurationError
from lakehouse_core.quality import SuiteNotFoundError, load_suite
from lakehouse_core.settings import LakehouseSettings

REPO = Path(__file__).resolve().parents[2]


def settings_with(tmp_path: Path, expectations: Path | None) -> LakehouseSettings:
    return LakehouseSettings(home=tmp_path / "home", expectations_dir=expectations)


def write_suite(folder: Path, layer: str, table: str, expectations: list[dict]) -> Path:
    path = folder / layer / f"{table}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": f"{layer}.{table}", "meta": {"primary_key": ["id"]},
                                "expectations": expectations}))
    return path


def test_unknown_severity_is_an_error_naming_file_and_value(tmp_path):
    path = write_suite(tmp_path, "silver", "orders", [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}, "meta": {"severity": "fail"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}, "meta": {"severity": "warning"}},
    ])
    with pytest.raises(ConfigurationError, match=rf"{path}: expectation 2 \(expect_column_values_to_be_unique\): "
                                                 r"unknown meta.severity 'warning'; expected one of fail, warn, quarantine"):
        load_suite(settings_with(tmp_path, tmp_path), "silver", "orders")


def test_missing_expectations_folder_is_an_error(tmp_path):
    with pytest.raises(ConfigurationError, match=f"LAKEHOUSE_EXPECTATIONS_DIR={tmp_path / 'nowhere'}: no such folder"):
        load_suite(settings_with(tmp_path, tmp_path / "nowhere"), "bronze", "orders")
    (tmp_path / "suites").mkdir()  # the folder exists, the layer's does not: no silent key-only suites
    with pytest.raises(ConfigurationError, match="expectation suites of layer bronze: folder .*suites/bronze does not exist"):
        load_suite(settings_with(tmp_path, tmp_path / "suites"), "bronze", "orders")


def test_registered_table_without_a_file_gets_its_key_suite_and_a_mart_needs_one(tmp_path):
    (tmp_path / "silver").mkdir()
    (tmp_path / "gold").mkdir()
    suite = load_suite(settings_with(tmp_path, tmp_path), "silver", "orders")
    assert [e["type"] for e in suite["expectations"]] == ["expect_column_values_to_not_be_null",
                                                           "expect_column_values_to_be_unique"]
    with pytest.raises(SuiteNotFoundError, match="no expectation suite for gold.mart_x"):
        load_suite(settings_with(tmp_path, tmp_path), "gold", "mart_x")


def test_bronze_suite_on_a_personal_data_column_is_refused(tmp_path):
    """Failing values are copied into results and Data Docs: in bronze they would be clear PII."""
    write_suite(tmp_path, "bronze", "customers", [
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "email", "regex": "@"},
         "meta": {"severity": "warn"}}])
    with pytest.raises(ConfigurationError, match="column email holds personal data in this layer"):
        load_suite(settings_with(tmp_path, tmp_path), "bronze", "customers")


def test_unknown_expectation_type_is_an_error_not_a_skipped_check(tmp_path):
    """Great Expectations logs an unknown type and validates the rest: the gate would be weaker."""
    path = write_suite(tmp_path, "gold", "mart_x", [
        {"type": "expect_column_pair_values_A_to_be_greater_than_B", "kwargs": {"column_A": "a", "column_B": "b"},
         "meta": {"severity": "fail"}},
    ])
    with pytest.raises(ConfigurationError, match=rf"{path}: expectation 1 .*unknown expectation type "
                                                 r"'expect_column_pair_values_A_to_be_greater_than_B'"):
        load_suite(settings_with(tmp_path, tmp_path), "gold", "mart_x")


def test_every_suite_in_the_repository_is_valid():
    settings = LakehouseSettings(expectations_dir=REPO / "expectations")
    for path in sorted((REPO / "expectations").glob("*/*.json")):
        assert load_suite(settings, path.parent.name, path.stem)["expectations"], path


def test_suites_are_found_in_the_installed_wheels(tmp_path):
    """Airflow tasks run the built wheels outside the source tree, without LAKEHOUSE_EXPECTATIONS_DIR."""
    runtime = Path(os.environ.get("LAKEHOUSE_RUNTIME_BIN", REPO / "dist" / "runtime" / "bin"))
    if not (runtime / "python").exists():
        pytest.fail(f"no built runtime at {runtime}: run `make runtime` (make test does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    probe = ("import json; from lakehouse_core.quality import suite_folder, load_suite; "
             "from lakehouse_core.settings import LakehouseSettings as S; s = S(); "
             "print(json.dumps({l: [str(suite_folder(s, l)), sorted(p.name for p in suite_folder(s, l).iterdir()), "
             "load_suite(s, l, 'mart_daily_sales' if l == 'gold' else 'orders')['name']] "
             "for l in ('bronze', 'silver', 'gold')}))")
    out = subprocess.run([str(runtime / "python"), "-c", probe], cwd=tmp_path, env=env, capture_output=True,
                         text=True, check=True)
    found = json.loads(out.stdout)
    for layer, (folder, files, name) in found.items():
        assert "site-packages" in folder and str(REPO / "expectations") not in folder
        assert sorted(p.name for p in (REPO / "expectations" / layer).glob("*.json")) == files
        assert name.startswith(layer + ".")


@pytest.mark.parametrize(("layer", "expectation", "error"), [
    ("bronze", {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
     r"meta.severity 'quarantine' is for silver suites \(silver sets rows aside before its merge\), not bronze"),
    ("silver", {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
     "meta.severity 'quarantine' needs a column row rule, one of expect_column_values_to_not_be_null, "),
    ("silver", {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0,
                                                                         "mostly": 0.9}},
     "meta.severity 'quarantine' sets aside every row that breaks the rule; 'mostly' does not apply"),
])
def test_a_quarantine_rule_silver_cannot_apply_is_refused(tmp_path, layer, expectation, error):
    """Severity ``quarantine`` sets rows aside in silver before its merge: a bronze or gold rule, a
    table-level check or a ``mostly`` rule cannot, and saying so beats a rule that is never applied."""
    from lakehouse_core.quality import quarantine_rules

    path = write_suite(tmp_path, layer, "order_items", [{**expectation, "meta": {"severity": "quarantine"}}])
    with pytest.raises(ConfigurationError, match=rf"{path}: expectation 1 \({expectation['type']}\): {error}"):
        load_suite(settings_with(tmp_path, tmp_path), layer, "order_items")
    if layer == "silver":  # silver reads its rules without Great Expectations: the same refusal
        with pytest.raises(ConfigurationError, match=rf"{path}: quarantine rule 1 \({expectation['type']}\): {error}"):
            quarantine_rules(settings_with(tmp_path, tmp_path), "order_items")


@pytest.mark.parametrize(("query", "error"), [
    ("SELECT * FROM {batch} b LEFT ANTI JOIN {silver.orders} p ON b.order_id = p.id", None),
    ("SELECT * FROM {batch} b LEFT ANTI JOIN {silver.order} p ON b.order_id = p.id", None),  # checked at the gate
    ("SELECT * FROM {batch} b LEFT ANTI JOIN {lakehouse.orders} p ON b.order_id = p.id",
     r"unexpected_rows_query placeholder \{lakehouse\.orders\} is neither \{batch\} nor a table"),
    ("SELECT * FROM lakehouse.silver.order_items", r"unexpected_rows_query does not read \{batch\}, the rows validated"),
    ("SELECT * FROM {batch} WHERE raw LIKE '{%'", r"unexpected_rows_query: .* \(a literal brace is written twice\)"),
], ids=["table", "unknown-table", "not-a-layer", "no-batch", "lone-brace"])
def test_a_query_expectation_reads_the_batch_and_tables_by_layer(tmp_path, query, error):
    """A referential-integrity query names other tables as {<layer>.<table>} (the gate reads them as the
    batch sees them); any other placeholder, or a query ignoring the validated rows, is refused."""
    write_suite(tmp_path, "silver", "order_items", [
        {"type": "unexpected_rows_expectation", "kwargs": {"unexpected_rows_query": query},
         "meta": {"severity": "fail", "column": "order_id"}}])
    settings = settings_with(tmp_path, tmp_path)
    if error is None:
        assert load_suite(settings, "silver", "order_items")["expectations"][0]["kwargs"]["unexpected_rows_query"] == query
    else:
        with pytest.raises(ConfigurationError, match=r"order_items\.json: expectation 1 \(unexpected_rows_expectation\): "
                                                     + error):
            load_suite(settings, "silver", "order_items")
