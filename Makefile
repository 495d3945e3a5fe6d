# localbox: `make run` serves the API, `make test` runs the whole suite. Both set up
# everything they need (virtualenv, Docker engine, sandbox image) and are idempotent.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEPS_HASH := $(shell cat pyproject.toml | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(DEPS_HASH)

.PHONY: help setup venv dev-venv node-deps litellm-deps browser screenshots compose-tool server-image docker-engine sandbox-image egress-image gvisor postgres run test lint typecheck pytest pytest-gvisor pytest-postgres pytest-replicas haproxy bench clean

help:
	@echo "make run           - set everything up and serve the API on 127.0.0.1:8000"
	@echo "make test          - set everything up, lint, type-check and run the test suite"
	@echo "make bench         - print benchmark figures against raw Docker (runc and gVisor), and replicas"
	@echo "make gvisor        - install gVisor (runsc) and register it with the Docker engine"
	@echo "make screenshots   - drive the web console in chromium and write docs/console/*.png"
	@echo "make sandbox-image - build the image every sandbox runs (about 2.5 GB, minutes the first time)"
	@echo "make egress-image  - build the egress proxy image allowlisted sandboxes reach the outside through"
	@echo "make server-image  - build localbox's own image (localbox:latest) for docker-compose"
	@echo "make lint          - ruff lint and format check"
	@echo "make typecheck     - mypy --strict on server/"
	@echo "make pytest        - only the test suite"
	@echo "make pytest-postgres - the store's API tests again, on a throwaway PostgreSQL"
	@echo "make pytest-replicas - three servers on one PostgreSQL and one data dir, behind HAProxy"
	@echo "make postgres      - start the tests' throwaway PostgreSQL (installs Debian's when missing)"
	@echo "make haproxy       - install Debian's haproxy for the replica tests when missing (no service)"
	@echo "make clean         - remove the virtualenvs and local data"

# What `make run` needs: localbox and its runtime dependencies only.
$(STAMP): pyproject.toml
	@echo "==> installing localbox and its dependencies into $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# What the tests, linters and benchmarks need on top.
$(DEV_STAMP): $(STAMP)
	@echo "==> installing the development tools (pytest, ruff, mypy, the openai SDK) into $(VENV)"
	@$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

venv: $(STAMP)

dev-venv: $(DEV_STAMP)

NODE_STAMP := tests/node/node_modules/.installed

$(NODE_STAMP): tests/node/package.json
	@echo "==> installing the Node client test dependencies (pinned openai)"
	@command -v npm >/dev/null || { echo "npm is needed for the Node client tests; install Node.js 18+"; exit 1; }
	@cd tests/node && npm install --no-package-lock --no-audit --no-fund --silent
	@touch $@

node-deps: $(NODE_STAMP)

LITELLM_STAMP := .venv-litellm/.installed

$(LITELLM_STAMP): tests/litellm/requirements.txt
	@echo "==> installing LiteLLM (SDK and proxy) into .venv-litellm for the client tests"
	@test -x .venv-litellm/bin/python || $(PYTHON) -m venv .venv-litellm
	@.venv-litellm/bin/python -m pip install -q --disable-pip-version-check -r tests/litellm/requirements.txt
	@touch $@

litellm-deps: $(LITELLM_STAMP)

# The console's browser tests and screenshots drive Debian's chromium through Playwright
# (never a browser Playwright downloads). Installed once, without prompts; needs root or sudo.
CHROMIUM_STAMP := $(VENV)/.chromium-installed

$(CHROMIUM_STAMP): $(STAMP)
	@if ! command -v chromium >/dev/null; then \
	  echo "==> installing Debian's chromium for the console's browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi
	@touch $@

browser: $(CHROMIUM_STAMP)

compose-tool:
	@bash scripts/ensure-compose.sh

server-image: sandbox-image egress-image venv
	@bash scripts/ensure-server-image.sh

docker-engine:
	@bash scripts/ensure-docker.sh

sandbox-image: docker-engine venv
	@bash scripts/ensure-sandbox-image.sh

egress-image: docker-engine sandbox-image
	@bash scripts/ensure-egress-image.sh

# gVisor's runsc, installed and registered with the engine (live, by SIGHUP) where missing.
gvisor: docker-engine sandbox-image
	@bash scripts/ensure-runsc.sh

setup: venv docker-engine sandbox-image egress-image

# LOCALBOX_SANDBOX_RUNTIME=runsc make run: sandboxes under gVisor, set up first.
run: setup $(if $(filter runsc,$(LOCALBOX_SANDBOX_RUNTIME)),gvisor)
	@$(BIN)/localbox

lint: dev-venv
	$(BIN)/ruff check server tests scripts sandbox-image egress-image
	$(BIN)/ruff format --check server tests scripts sandbox-image egress-image

typecheck: dev-venv
	$(BIN)/mypy server

pytest: setup dev-venv browser node-deps litellm-deps compose-tool server-image gvisor postgres
	$(BIN)/pytest

# The sandbox-facing suites once more, every sandbox under gVisor (runsc).
GVISOR_SUITES := tests/api/test_sandbox_runtime.py tests/api/test_sandbox_integrity.py \
  tests/api/test_exec.py tests/api/test_exec_abuse.py tests/api/test_container_files.py \
  tests/api/test_network.py tests/api/test_warm_pool.py tests/api/test_lifecycle.py \
  tests/api/test_container_skills.py tests/api/test_docker_restart.py \
  tests/api/test_cpu_step_aside.py tests/runtime/test_docker_sandbox.py

# The tests' PostgreSQL: a cluster of their own in /var/tmp on 127.0.0.1:55432, made and
# started once (Debian's postgresql installed first when missing; root or sudo).
postgres:
	@bash scripts/ensure-postgres.sh >/dev/null

# The replica tests' load balancer: Debian's haproxy, installed when missing (root or sudo); no
# service is started, the tests run haproxy themselves with a config of their own.
haproxy:
	@bash scripts/ensure-haproxy.sh >/dev/null

# The API tests that exercise the store, run again with every server on a PostgreSQL database
# of its own: containers, container files, files, paging, lifecycle (expiry, restarts), skills,
# instances, limits, validation and health. The egress, exec-abuse, flood and client-library
# tests touch no more of the store, and the whole API suite twice would take too long (this
# selection: 153 tests, about 7 minutes on two cores).
# tests/store and tests/api/test_postgres.py run on PostgreSQL in `make pytest` already.
PG_API_TESTS := tests/api/test_containers.py tests/api/test_container_files.py \
  tests/api/test_files.py tests/api/test_paging.py tests/api/test_lifecycle.py \
  tests/api/test_skills.py tests/api/test_container_skills.py tests/api/test_instances.py \
  tests/api/test_limits.py tests/api/test_validation.py tests/api/test_health.py

pytest-postgres: setup dev-venv
	@url=$$(bash scripts/ensure-postgres.sh) && \
	  echo "LOCALBOX_TEST_POSTGRES_URL=<the tests' PostgreSQL> $(BIN)/pytest $(PG_API_TESTS)" && \
	  LOCALBOX_TEST_POSTGRES_URL="$$url" $(BIN)/pytest $(PG_API_TESTS)

# Replicas: three servers on one PostgreSQL database and one data dir, each on its own port,
# behind HAProxy (round-robin): calls, uploads, expiry, kill -9 of one and the warm pools, through
# the balancer and through each replica. Collected only when named, so `make pytest` leaves them.
pytest-replicas: setup dev-venv postgres haproxy
	$(BIN)/pytest tests/replicas

pytest-gvisor: setup dev-venv gvisor
	LOCALBOX_SANDBOX_RUNTIME=runsc $(BIN)/pytest $(GVISOR_SUITES)

test: lint typecheck pytest pytest-gvisor pytest-postgres pytest-replicas

bench: setup dev-venv gvisor postgres haproxy
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_replicas.py

screenshots: setup dev-venv browser
	$(BIN)/python scripts/console_screenshots.py

clean:
	rm -rf $(VENV) .venv-litellm build tests/node/node_modules data .pytest_cache .mypy_cache .ruff_cache
