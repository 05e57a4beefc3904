# Every target sets up what it needs: a fresh clone needs only Python 3.11 and make.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
# the exact torch pin resolves to the local CPU wheel through pip's find-links
export PIP_FIND_LINKS ?= /opt/wheels

.PHONY: run test env lint clean-runs

$(PY): Pipfile Pipfile.lock
	@command -v pipenv >/dev/null || $(PYTHON) -m pip install --quiet pipenv
	pipenv sync --dev
	@touch $(PY)

env: $(PY)

run: $(PY)
	$(PY) src/pipeline.py

lint: $(PY)
	$(VENV)/bin/pre-commit run --all-files

test: $(PY) lint
	$(PY) -m pytest

clean-runs:
	rm -rf training_runs clustering_runs shuffle_clust_runs
