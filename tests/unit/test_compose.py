"""docker-compose.yml: the compose profile's stack, configured by LAKEHOUSE_* settings only."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_stack_is_complete_and_pinned():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "minio", "spark-master", "spark-worker", "airflow", "marquez", "marquez-web"} <= set(services)
    for name, service in services.items():
        image = service.get("image")
        if image:
            assert ":" in image and not image.endswith(":latest"), f"{name}: unpinned image {image}"
    env = services["airflow"]["environment"]
    assert env["LAKEHOUSE_PROFILE"] == "compose"
    assert env["LAKEHOUSE_WAREHOUSE"].startswith("s3://")
    assert env["LAKEHOUSE_SPARK__MASTER"].startswith("spark://")
    # secrets only from the environment
    for key, value in env.items():
        if "PASSWORD" in key or "SECRET" in key:
            assert str(value).startswith("${"), key
    assert (REPO / services["airflow"]["build"]["dockerfile"]).exists()
