"""docker-compose.yml, checked offline (no container engine runs on these machines): Debian's
docker-compose resolves it with the variables of .env.example, and what the stack would need
from this repository is checked to exist: build contexts, Dockerfiles and what they copy, bind
mounts, the runtime commands the services run, valid lakehouse settings."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
RUNTIME_PREFIX = "/opt/lakehouse/runtime/bin/"
ONE_SHOT = {"minio-init", "source-init", "airflow-init"}
AIRFLOW = {"airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}


def _env_example() -> dict[str, str]:
    return dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                if line and not line.startswith("#"))


def _secrets() -> list[str]:
    """The variables .env.example leaves empty: the secrets a user must set."""
    return [k for k, v in _env_example().items() if not v]


def _config(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is missing: scripts/install-system-deps.sh --test installs Debian's"
    env_file = tmp_path / "test.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    clean = {k: v for k, v in os.environ.items() if k not in env}  # only the env file speaks
    return subprocess.run([tool, "-f", str(COMPOSE), "--env-file", str(env_file), "config"],
                          capture_output=True, text=True, cwd=REPO, env=clean, timeout=60)


def _filled_env() -> dict[str, str]:
    return {**_env_example(), **{k: f"test-{k.lower()}-value" for k in _secrets()}}


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict:
    result = _config(tmp_path_factory.mktemp("compose"), _filled_env())
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_resolves_offline_with_every_value_from_env(resolved):
    services = resolved["services"]
    assert {"postgres", "minio", "minio-init", "source-init", "spark-master", "spark-worker", "airflow-init",
            *AIRFLOW, "marquez", "marquez-web"} == set(services)
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            assert "${" not in str(value), f"{name}: {key} unresolved: {value}"
    secrets = {f"test-{k.lower()}-value" for k in _secrets()}
    assert secrets <= {str(v) for s in services.values() for v in (s.get("environment") or {}).values()}
    assert not any(s in COMPOSE.read_text() for s in secrets)


@pytest.mark.parametrize("secret", _secrets())
def test_a_missing_secret_is_refused_by_name(tmp_path, secret):
    result = _config(tmp_path, {**_filled_env(), secret: ""})
    assert result.returncode != 0 and f"set {secret} in .env" in result.stderr, result.stderr


def test_no_secret_is_written_in_the_compose_file_or_an_image():
    """Every password, secret or key is a required variable (``${NAME:?...}``, no default)."""
    raw = yaml.safe_load(COMPOSE.read_text())
    blocks = [raw.get("x-lakehouse-env", {}), raw.get("x-airflow", {}).get("environment", {}),
              *[s.get("environment") or {} for s in raw["services"].values()]]
    sensitive = re.compile(r"PASSWORD|SECRET|FERNET|JWT")
    for block in blocks:
        for key, value in block.items():
            if key != "<<" and sensitive.search(key) and not key.endswith("_FILE"):  # a path, not a secret
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{key}: {value}"
    for dockerfile in (REPO / "orchestration" / "compose").glob("Dockerfile.*"):
        text = dockerfile.read_text()
        assert not re.search(r"^(ENV|ARG)\s.*(PASSWORD|SECRET|FERNET|JWT)", text, re.M), dockerfile.name


def test_health_checks_one_shots_and_start_order(resolved):
    services = resolved["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
        else:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    for name in AIRFLOW:
        depends = services[name]["depends_on"]
        assert {k: v["condition"] for k, v in depends.items()} == {
            "airflow-init": "service_completed_successfully", "source-init": "service_completed_successfully",
            "minio-init": "service_completed_successfully", "spark-master": "service_healthy",
            "marquez": "service_healthy"}, name
    assert services["source-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert _commands(resolved)["airflow-init"] == ["db", "migrate"]


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY of ``dockerfile``."""
    text = dockerfile.read_text().replace("\\\n", " ")
    copies = []
    for line in text.splitlines():
        if line.startswith("COPY "):
            paths = [w for w in shlex.split(line)[1:] if not w.startswith("--")]
            copies.append((paths[:-1], paths[-1]))
    return copies


def test_every_build_context_and_file_an_image_copies_exists(resolved):
    """What `make compose-up` builds from: the contexts, the Dockerfiles, the files they copy
    (dist/wheels: one wheel per package, built by make wheels) and the bind-mounted files."""
    built = {name: s["build"] for name, s in resolved["services"].items() if "build" in s}
    assert set(built) == {"source-init", "spark-master", "spark-worker", "airflow-init", *AIRFLOW}
    for name, build in built.items():
        context = Path(build["context"])
        dockerfile = context / build["dockerfile"]
        assert context == REPO and dockerfile.is_file(), name
        for sources, _ in _copies(dockerfile):
            for source in sources:
                assert (context / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"
    wheels = {p.name.split("-")[0] for p in (REPO / "dist" / "wheels").glob("*.whl")}
    packages = {p.parent.name for p in (REPO / "packages").glob("*/pyproject.toml")}
    assert wheels == {f"lakehouse_{p}" for p in packages}, "run make wheels"
    for name, service in resolved["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]  # (docker-compose v1 writes "source:target[:mode]")
            if source.startswith("/"):  # a bind mount (a named volume has no path)
                assert Path(source).exists(), f"{name} mounts {source}, which does not exist"
    airflow = REPO / "orchestration" / "compose" / "Dockerfile.airflow"
    dags = resolved["services"]["airflow-scheduler"]["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
    assert (["orchestration/dags"], dags) in _copies(airflow)


def _commands(resolved) -> dict[str, list[str]]:
    return {name: (s["command"] if isinstance(s.get("command"), list) else shlex.split(s.get("command") or ""))
            for name, s in resolved["services"].items()}


def test_runtime_commands_exist_in_the_environment_built_from_the_wheels(resolved):
    """The Spark and source services run programs of /opt/lakehouse/runtime: the environment the
    images build from dist/wheels, as `make runtime` builds dist/runtime here."""
    runtime = Path(os.environ.get("LAKEHOUSE_RUNTIME_BIN") or REPO / "dist" / "runtime" / "bin")
    used = {word for command in _commands(resolved).values() for word in command if word.startswith(RUNTIME_PREFIX)}
    used |= {c for s in resolved["services"].values() for c in (s.get("healthcheck") or {}).get("test", [])
             if c.startswith(RUNTIME_PREFIX)}
    assert {"lakehouse", "spark-class", "python"} <= {u.removeprefix(RUNTIME_PREFIX) for u in used}
    for program in used:
        assert (runtime / program.removeprefix(RUNTIME_PREFIX)).exists(), f"{program} is not in {runtime}"


def test_source_init_fills_the_source_once_with_valid_simulator_options(resolved):
    from lakehouse_simulator.cli import add_commands

    command = _commands(resolved)["source-init"]
    assert command[:2] == [f"{RUNTIME_PREFIX}lakehouse", "simulate"]
    parser = argparse.ArgumentParser(prog="lakehouse")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(command[1:])
    assert args.if_empty and not args.reset
    assert (args.scale, args.seed, str(args.start), args.days) == (0.1, 42, "2023-01-01", 7)


def test_every_lakehouse_service_has_valid_compose_settings(resolved, monkeypatch):
    """The LAKEHOUSE_* variables of each service are settings the platform accepts (an unknown or
    misspelt one is an error), pointing at the stack's services."""
    from lakehouse_core.settings import LakehouseSettings, Profile

    users = {n: s["environment"] for n, s in resolved["services"].items()
             if "LAKEHOUSE_PROFILE" in (s.get("environment") or {})}
    assert set(users) == {"source-init", "airflow-init", *AIRFLOW}
    for name, env in users.items():
        for key in [k for k in os.environ if k.startswith("LAKEHOUSE_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("LAKEHOUSE_"):
                monkeypatch.setenv(key, str(value))
        settings = LakehouseSettings()
        assert settings.profile == Profile.compose, name
        assert settings.warehouse == "s3://lakehouse/warehouse" and settings.s3.endpoint == "http://minio:9000"
        assert settings.spark.master == "spark://spark-master:7077"
        assert settings.source.host == settings.catalog.host == "postgres"
        # the tasks read the source through the read-only role; only the simulator writes it
        reader = (settings.source.user, settings.source.password.get_secret_value())
        assert reader == (("lakehouse", "test-postgres_password-value") if name == "source-init"
                          else ("lakehouse_reader", "test-source_reader_password-value")), name
        assert settings.pii_secret.get_secret_value() == "test-lakehouse_pii_secret-value"
        assert settings.lineage.http_url == "http://marquez:5000"


def test_make_compose_up_builds_the_wheels_first_and_needs_an_env_file():
    makefile = (REPO / "Makefile").read_text()
    target = re.search(r"^compose-up: (.*?)##.*?\n((?:\t.*\n)+)", makefile, re.M)
    assert target and "wheels" in target.group(1).split()
    assert "test -f .env" in target.group(2) and "docker compose up -d --build" in target.group(2)


def test_the_airflow_ui_asks_for_a_login_with_the_password_from_env(resolved, tmp_path):
    """Every Airflow service uses the simple auth manager with authentication on (no "everyone is
    admin"); the api-server writes the `admin` password from .env to the passwords file before it
    starts (its start command run here with `airflow` replaced by `echo`)."""
    services = resolved["services"]
    for name in AIRFLOW:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager"), name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False", name
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin", name
    api = services["airflow-api-server"]
    password = api["environment"]["AIRFLOW_ADMIN_PASSWORD"]
    assert password == _filled_env()["AIRFLOW_ADMIN_PASSWORD"]
    bash, flag, script = _commands(resolved)["airflow-api-server"]
    assert (bash, flag) == ("bash", "-c") and script.endswith("exec airflow api-server")
    passwords = tmp_path / "passwords.json"
    script = script.replace("$$", "$")  # compose's escape: the container's shell sees one $
    run = subprocess.run([bash, flag, script.replace("exec airflow", "exec echo")], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "AIRFLOW_ADMIN_PASSWORD": password,
                              "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords)})
    assert run.returncode == 0 and run.stdout.strip() == "api-server", run.stderr
    assert json.loads(passwords.read_text()) == {"admin": password}
    assert passwords.stat().st_mode & 0o077 == 0
