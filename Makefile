# driftline -- two commands on a fresh machine:
#   make run    venv + install, demo data, the retrain and monitor DAGs end to end (embedded default)
#   make test   the test suite (real PostgreSQL, S3 API server and MLflow stores; see .ci/run)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
MODEL ?= credit_default

export DRIFTLINE_HOME ?= $(CURDIR)/.driftline
export DRIFTLINE_CONFIG_DIR ?= $(CURDIR)/config
export MLFLOW_TRACKING_URI ?= sqlite:///$(DRIFTLINE_HOME)/mlflow.db
export AIRFLOW_HOME ?= $(DRIFTLINE_HOME)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__PARALLELISM := 4
export GX_ANALYTICS_ENABLED := false
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
# XGBoost's OpenMP threads spin-wait by default: on 2 shared cores that measured 7x slower.
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH),)
export PATH := $(BIN):$(PATH)

# Demo calendar: 90 days of data from DEMO_START, covariate drift from DRIFT_DAY (day 60).
DEMO_START := 2026-01-01
DEMO_DAYS := 90
DRIFT_DAY := 2026-03-02
FIRST_RUN := 2026-02-12
SECOND_RUN := 2026-02-19
STABLE_DAYS := 2026-02-26 2026-02-27
DRIFT_DAYS := 2026-03-03 2026-03-04

.PHONY: help venv run demo-data airflow-db up down test test-fast bench clean

help:
	@echo "make run    venv, install, demo data, retrain + monitor DAGs end to end, then where to look"
	@echo "make test   the test suite"
	@echo "make up     Airflow (standalone, SQLite) on :8080 and the MLflow UI on :5000; make down stops them"
	@echo "make bench  benchmarks (JSON in benchmarks/results/)"

venv: $(BIN)/.installed
$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v uv >/dev/null 2>&1; then uv pip install --python $(BIN)/python -r requirements.txt; \
	 else $(BIN)/pip install --disable-pip-version-check -q -r requirements.txt; fi
	@touch $@

demo-data: venv
	$(BIN)/python -m pipeline generate --model $(MODEL) --out $(DRIFTLINE_HOME)/lake \
	  --start $(DEMO_START) --days $(DEMO_DAYS) --drift-day $(DRIFT_DAY) --drift-kind covariate

airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME) $(AIRFLOW__CORE__PLUGINS_FOLDER)
	$(BIN)/airflow db migrate > $(DRIFTLINE_HOME)/airflow-db-migrate.log
	@echo "airflow metadata DB ready ($(AIRFLOW_HOME))"

run: demo-data airflow-db
	@for day in $(FIRST_RUN) $(SECOND_RUN); do \
	  echo "== retrain__$(MODEL) for $$day"; \
	  $(BIN)/airflow dags test retrain__$(MODEL) $$day > $(DRIFTLINE_HOME)/retrain-$$day.log 2>&1 \
	    || { tail -40 $(DRIFTLINE_HOME)/retrain-$$day.log; exit 1; }; \
	  $(BIN)/python -m pipeline show $(MODEL) --date $$day; done
	@for day in $(STABLE_DAYS) $(DRIFT_DAYS); do \
	  echo "== monitor__$(MODEL) for $$day"; \
	  $(BIN)/airflow dags test monitor__$(MODEL) $$day > $(DRIFTLINE_HOME)/monitor-$$day.log 2>&1 \
	    || { tail -40 $(DRIFTLINE_HOME)/monitor-$$day.log; exit 1; }; \
	  $(BIN)/python -m pipeline show $(MODEL) --monitor --date $$day; done
	@conf=$$($(BIN)/python -m pipeline show $(MODEL) --monitor --date $(lastword $(DRIFT_DAYS)) --trigger-conf); \
	 if [ -n "$$conf" ]; then \
	  echo "== the monitor requested a retrain; running retrain__$(MODEL) with its conf (a scheduler would run the queued run)"; \
	  $(BIN)/airflow dags test retrain__$(MODEL) $(lastword $(DRIFT_DAYS)) -c "$$conf" > $(DRIFTLINE_HOME)/retrain-drift.log 2>&1 \
	    || { tail -40 $(DRIFTLINE_HOME)/retrain-drift.log; exit 1; }; \
	  $(BIN)/python -m pipeline show $(MODEL) --date $(lastword $(DRIFT_DAYS)); fi
	@$(BIN)/python -m pipeline status $(MODEL)
	@echo
	@echo "Where to look:"
	@echo "  decision records  $(DRIFTLINE_HOME)/artifacts/$(MODEL)/runs/<date>/decision.json"
	@echo "  drift reports     $(DRIFTLINE_HOME)/artifacts/$(MODEL)/monitor/<date>/report.html"
	@echo "  task logs         $(DRIFTLINE_HOME)/*.log"
	@echo "  UIs               make up  ->  Airflow http://127.0.0.1:8080, MLflow http://127.0.0.1:5000"

up: venv airflow-db
	@mkdir -p $(DRIFTLINE_HOME)/pids
	@setsid $(BIN)/airflow standalone > $(DRIFTLINE_HOME)/standalone.log 2>&1 & echo $$! > $(DRIFTLINE_HOME)/pids/airflow
	@setsid $(BIN)/mlflow server --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000 \
	  > $(DRIFTLINE_HOME)/mlflow-ui.log 2>&1 & echo $$! > $(DRIFTLINE_HOME)/pids/mlflow
	@echo "waiting for Airflow (about 30 s) and MLflow (about 20 s)..."
	@for i in $$(seq 1 90); do curl -sf http://127.0.0.1:8080/api/v2/monitor/health >/dev/null && break; sleep 2; done
	@for i in $$(seq 1 60); do curl -sf http://127.0.0.1:5000/health >/dev/null && break; sleep 2; done
	@echo "Airflow  http://127.0.0.1:8080   user admin, password: $$(cat $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated 2>/dev/null || echo 'see $(DRIFTLINE_HOME)/standalone.log')"
	@echo "MLflow   http://127.0.0.1:5000"
	@echo "stop with: make down"

down:
	@for name in airflow mlflow; do f=$(DRIFTLINE_HOME)/pids/$$name; \
	  if [ -f $$f ]; then pid=$$(cat $$f); kill -TERM -- -$$pid 2>/dev/null || true; \
	    for i in $$(seq 1 30); do kill -0 -- -$$pid 2>/dev/null || break; sleep 1; done; \
	    kill -KILL -- -$$pid 2>/dev/null || true; rm -f $$f; echo "stopped $$name"; fi; done

test: venv
	$(BIN)/python -m pytest -q --timeout 1200

test-fast: venv
	$(BIN)/python -m pytest -q -m "not integration and not slow"

bench: venv
	@mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.ingest --rows 1000000 --out benchmarks/results/ingest.json
	$(BIN)/python -m benchmarks.train --rows 1000000 --out benchmarks/results/train.json
	$(BIN)/python -m benchmarks.evaluate --out benchmarks/results/evaluate.json

clean: down
	rm -rf $(DRIFTLINE_HOME)
