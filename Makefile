# The two commands of the quickstart, each setting itself up first:
#   make local   the whole lifecycle on this machine, with a summary
#   make test    lint, dependency check and the full test suite (installs Debian's chromium for the
#                browser test when missing and allowed, else stops first with the command to run)
# Both create and reuse .venv (the virtualenv Pulumi.yaml names), installed from the lock file.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node tools the tests use (gitlab-ci-local), installed from package-lock.json.
NODE_STAMP := node_modules/.installed

.PHONY: setup local test lint lock clean ci-rehearsal debian-packages mutation

setup: $(STAMP)

# Reinstall only when the lock or the project metadata changes.
$(STAMP): requirements-dev.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.lock -e '.[dev]'
	@touch $(STAMP)

# Reinstall only when the Node lock changes.
$(NODE_STAMP): package-lock.json
	npm ci --no-audit --no-fund --silent
	@touch $(NODE_STAMP)

local: setup
	$(BIN)/mlops local --dashboard .state/dashboard

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pip check

# First, before anything runs: what the tests need that pip and npm do not install.
test: debian-packages lint $(NODE_STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

# The GitLab pipelines rehearsed in gitlab-ci-local's shell executor, printing each pipeline's
# jobs with their outcome: against the local cloud (tests/ci/test_rehearsal_local_cloud.py: the
# bootstrap, the ID tokens exchanged at the emulator's STS, the local engine's pulumi; ~4 min),
# and the jobs' wiring with stand-in tools (tests/ci/test_pipeline_rehearsal.py). `make test`
# runs both too.
ci-rehearsal: setup $(NODE_STAMP)
	$(BIN)/pytest -p no:cacheprovider -q -s -rxX tests/ci/test_rehearsal_local_cloud.py tests/ci/test_pipeline_rehearsal.py

debian-packages:
	@sh .ci/need-debian

# Mutation testing (mutmut) of the parts users depend on most, per group of
# [tool.mlops-mutation] in pyproject.toml; long, so not part of `make test` (CI runs it on a schedule).
# MODULE=<group or file> runs one part, e.g. make mutation MODULE=contract.
mutation: setup
	$(BIN)/python .ci/mutation.py $(MODULE)

# Regenerate the lock files from pyproject.toml (needs the registry); commit the result.
lock: setup
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --no-header --quiet -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev -c requirements.lock --python-version 3.11 --no-header --quiet -o requirements-dev.lock

clean:
	rm -rf $(VENV) node_modules .state .pytest_cache .ruff_cache
