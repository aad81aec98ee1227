from datetime import timedelta

import pytest

from lakehouse_core.batch import BatchOrderError, DataInterval, check_not_older
from lakehouse_core.settings import LakehouseSettings, Profile


def test_batch_id_derives_from_the_data_interval():
    interval = DataInterval.parse("2023-01-07T00:00:00+07:00", "2023-01-08T00:00:00+07:00")
    assert interval.batch_id == "20230106T1700_20230107T1700"
    assert interval.end_in_zone("Asia/Ho_Chi_Minh").isoformat() == "2023-01-08T00:00:00"


def test_a_batch_id_gives_its_interval_back_and_its_logical_date():
    interval = DataInterval.parse("2023-01-06T00:00:00+07:00", "2023-01-07T00:00:00+07:00")
    assert DataInterval.from_batch_id(interval.batch_id) == interval
    assert interval.last_day("Asia/Ho_Chi_Minh").isoformat() == "2023-01-06"  # the day the run covers
    assert interval.last_day("UTC").isoformat() == "2023-01-06"  # ends 2023-01-06T17:00Z
    with pytest.raises(ValueError, match=r"malformed batch id '2023-01-06'"):
        DataInterval.from_batch_id("2023-01-06")


def test_naive_or_empty_interval_is_rejected():
    with pytest.raises(ValueError, match="time zone"):
        DataInterval.parse("2023-01-07T00:00:00", "2023-01-08T00:00:00+07:00")
    with pytest.raises(ValueError, match="empty"):
        DataInterval.parse("2023-01-08T00:00:00+07:00", "2023-01-08T00:00:00+07:00")


def test_older_batch_is_refused():
    check_not_older("20230102T0000_20230103T0000", {"20230101T0000_20230102T0000"}, "bronze.orders")
    with pytest.raises(BatchOrderError, match="bronze.orders"):
        check_not_older("20230101T0000_20230102T0000", {"20230102T0000_20230103T0000"}, "bronze.orders")


def test_settings_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LAKEHOUSE_PROFILE", "compose")
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_SOURCE__HOST", "postgres")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://lakehouse/warehouse")
    monkeypatch.setenv("LAKEHOUSE_S3__ENDPOINT", "http://minio:9000")
    s = LakehouseSettings()
    assert s.profile is Profile.compose
    assert s.source.host == "postgres" and s.source.dbname == "shop"
    assert s.warehouse_uri == "s3://lakehouse/warehouse"
    assert s.s3.endpoint == "http://minio:9000"
    assert s.data_docs_dir == tmp_path / "data_docs"


def test_s3_warehouse_by_settings_alone(monkeypatch, tmp_path):
    """The compose/cluster profile: S3FileIO with path-style access, credentials from settings."""
    from lakehouse_core.spark import _catalog_conf

    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_CATALOG__HOST", "postgres")
    monkeypatch.setenv("LAKEHOUSE_CATALOG__PASSWORD", "from-the-environment")
    monkeypatch.setenv("LAKEHOUSE_WAREHOUSE", "s3://lakehouse/warehouse")
    monkeypatch.setenv("LAKEHOUSE_S3__ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("LAKEHOUSE_S3__ACCESS_KEY_ID", "key")
    monkeypatch.setenv("LAKEHOUSE_S3__SECRET_ACCESS_KEY", "secret-from-env")
    conf = _catalog_conf(LakehouseSettings())
    prefix = "spark.sql.catalog.lakehouse"
    assert conf[f"{prefix}.uri"] == "jdbc:postgresql://postgres:5432/iceberg_catalog?prepareThreshold=-1"
    assert conf[f"{prefix}.jdbc.password"] == "from-the-environment"  # pragma: allowlist secret
    assert conf[f"{prefix}.io-impl"] == "org.apache.iceberg.aws.s3.S3FileIO"
    assert conf[f"{prefix}.s3.path-style-access"] == "true"
    assert conf[f"{prefix}.s3.endpoint"] == "http://minio:9000"
    assert conf[f"{prefix}.warehouse"] == "s3://lakehouse/warehouse"


def test_misspelled_setting_is_an_error_naming_the_closest_valid_name(monkeypatch):
    from lakehouse_core.errors import ConfigurationError

    monkeypatch.setenv("LAKEHOUSE_SOURCE__DATABASE", "shop")
    with pytest.raises(ConfigurationError, match=r"LAKEHOUSE_SOURCE__DATABASE \(did you mean LAKEHOUSE_SOURCE__DBNAME\?\)"):
        LakehouseSettings()


def test_unparsable_setting_names_its_variable(monkeypatch):
    from lakehouse_core.errors import ConfigurationError

    monkeypatch.setenv("LAKEHOUSE_EXTRACT__READER", "odbc")
    with pytest.raises(ConfigurationError, match="LAKEHOUSE_EXTRACT__READER: Input should be 'jdbc' or 'copy'"):
        LakehouseSettings()


def test_mapping_settings_take_json_and_keep_the_case_of_their_keys(monkeypatch):
    from lakehouse_core.errors import ConfigurationError

    monkeypatch.setenv("LAKEHOUSE_SPARK__EXTRA_CONF", '{"spark.driver.extraJavaOptions": "-Dx=1"}')
    assert LakehouseSettings().spark.extra_conf == {"spark.driver.extraJavaOptions": "-Dx=1"}
    # a per-key variable would arrive lower-cased (spark.driver.extrajavaoptions): refused, not mangled
    monkeypatch.setenv("LAKEHOUSE_SPARK__EXTRA_CONF__spark.driver.extraJavaOptions", "-Dx=1")
    with pytest.raises(ConfigurationError, match="did you mean LAKEHOUSE_SPARK__EXTRA_CONF"):
        LakehouseSettings()


def test_cli_prints_a_settings_error_as_one_line(monkeypatch, capsys):
    from lakehouse_core import cli, settings
    from lakehouse_core.errors import EXIT_DETERMINISTIC

    monkeypatch.setenv("LAKEHOUSE_SOURCE__DATABASE", "shop")
    settings.get_settings.cache_clear()
    try:
        assert cli.main(["db", "status"]) == EXIT_DETERMINISTIC
    finally:
        settings.get_settings.cache_clear()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("lakehouse: error: unknown setting(s): LAKEHOUSE_SOURCE__DATABASE")


@pytest.mark.parametrize(("every", "days_reconciled"), [(1, 14), (7, 2), (0, 0)])
def test_silver_reconciliation_runs_on_the_scheduled_batches(every, days_reconciled):
    """Daily batches over two weeks: every batch, one a week (the same weekday each week), never."""
    from lakehouse_core.settings import QualitySettings

    quality = QualitySettings(reconcile_every_days=every)
    days = [DataInterval.parse(f"2023-01-{d:02d}T00:00:00+07:00", f"2023-01-{d + 1:02d}T00:00:00+07:00")
            for d in range(1, 15)]
    due = [d for d in days if quality.reconciles(d, "Asia/Ho_Chi_Minh")]
    assert len(due) == days_reconciled
    if every == 7:
        assert due[1].start - due[0].start == timedelta(days=7)
