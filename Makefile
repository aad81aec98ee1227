# Two commands for a new machine:  make demo  |  make test
SHELL := /bin/bash
# .tools/bin: uv when scripts/install-system-deps.sh installed it (project-local, only the uv binary)
export PATH := $(CURDIR)/.tools/bin:$(HOME)/.local/bin:$(PATH)
export GX_ANALYTICS_ENABLED := false
# installed packages compiled once (Great Expectations, Airflow and pyspark import in seconds less
# per process, also where PYTHONDONTWRITEBYTECODE keeps Python from caching what it compiles)
export UV_COMPILE_BYTECODE := 1

UV ?= uv
RUNTIME := dist/runtime
WHEELS := dist/wheels
PY := .venv/bin/python
# one pytest worker per core, each test module whole on one worker, the longest ones first
# (tests/conftest.py; --no-loadscope-reorder keeps that order)
PYTEST_WORKERS ?= -n auto --no-loadscope-reorder
LAKEHOUSE_HOME ?= $(CURDIR)/.lakehouse
export LAKEHOUSE_HOME
SCALE ?= 0.1
SEED ?= 42
DAYS ?= 7
START ?= 2023-01-01

.PHONY: setup wheels runtime jars demo test compose-up clean

setup:  ## system packages, the workspace venv (uv.lock), the pinned jars
	bash scripts/install-system-deps.sh
	$(UV) sync --frozen
	$(PY) -c "from lakehouse_core import jvm; from lakehouse_core.settings import get_settings as s; \
	  print(*jvm.resolve([jvm.ICEBERG_SPARK_RUNTIME, jvm.POSTGRES_JDBC, jvm.OPENLINEAGE_SPARK, jvm.HADOOP_LOCAL_FS], s().jar_cache), sep='\n')"

wheels: setup  ## one wheel per package
	rm -rf $(WHEELS)
	$(UV) build --all-packages --wheel -o $(WHEELS) -q

runtime: wheels  ## the environment Airflow tasks run the layers from: built wheels only
	rm -rf $(RUNTIME)
	$(UV) venv -q -p 3.11 $(RUNTIME)
	$(UV) pip install -q --python $(RUNTIME)/bin/python $(WHEELS)/*.whl

demo: runtime  ## simulate a shop, run the daily DAG under Airflow, list the tables
	bash scripts/demo.sh $(SCALE) $(SEED) $(START) $(DAYS)

test: runtime  ## every test (unit, integration, end-to-end); also installs Chromium (Data Docs test) and docker-compose (offline compose check)
	bash scripts/install-system-deps.sh --test
	LAKEHOUSE_RUNTIME_BIN=$(CURDIR)/$(RUNTIME)/bin $(PY) -m pytest $(PYTEST_WORKERS) $(PYTEST_ARGS)

compose-up: wheels  ## build the compose images (they install dist/wheels) and start the stack (needs .env)
	@test -f .env || { echo "compose-up: no .env: copy .env.example to .env and set every empty value" >&2; exit 1; }
	docker compose up -d --build

clean:  ## stop the embedded PostgreSQL and delete the state folder
	-$(PY) -m lakehouse_core.cli clean
