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
export MLFLOW_DISABLE_TELEMETRY := true
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
# XGBoost's OpenMP threads spin-wait by default: on 2 shared cores that measured 7x slower.
export OMP_WAIT_POLICY ?= PASSIVE
# plugins/ too: `python -m driftline_airflow.queued` (Airflow itself adds it for its components).
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins$(if $(PYTHONPATH),:$(PYTHONPATH),)
export PATH := $(BIN):$(PATH)

# Demo calendar: 90 days of data from DEMO_START, covariate drift from DRIFT_DAY (day 60); labels
# arrive LABEL_DELAY days late (the lake's last LABEL_DELAY days carry no label yet).
DEMO_START := 2026-01-01
DEMO_DAYS := 90
DEMO_END := 2026-04-01
DRIFT_DAY := 2026-03-02
LABEL_DELAY := 7
FIRST_RUN := 2026-02-19
NIGHTLY_RUN := 2026-02-26
MONITOR_DAYS := 2026-03-01 2026-03-02 2026-03-03 2026-03-04 2026-03-05 2026-03-06 2026-03-07 2026-03-08 \
  2026-03-09 2026-03-10 2026-03-11

.PHONY: help venv run demo-fresh demo-data airflow-db up down stack-up stack-down stack-status test test-fast bench bench-monitor clean

help:
	@echo "make run    venv, install, demo data, retrain + monitor DAGs end to end, then where to look"
	@echo "make test   the test suite"
	@echo "make up     Airflow (standalone, SQLite) on :8080 and the MLflow UI on :5000; make down stops them"
	@echo "make stack-up  the compose topology natively: PostgreSQL, Redis, S3 API, MLflow server, Airflow + 2 Celery workers"
	@echo "make stack-down  stops it (logs stay in .driftline/stack/logs)"
	@echo "make bench  benchmarks (JSON in benchmarks/results/); make bench-monitor: the monitor vs Evidently"

venv: $(BIN)/.installed
$(BIN)/.installed: requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if command -v uv >/dev/null 2>&1; then uv pip install --python $(BIN)/python -r requirements.txt; \
	 else $(BIN)/pip install --disable-pip-version-check -q -r requirements.txt; fi
	@touch $@

demo-data: venv
	@mkdir -p $(DRIFTLINE_HOME)
	$(BIN)/python -m pipeline generate --model $(MODEL) --out $(DRIFTLINE_HOME)/lake \
	  --start $(DEMO_START) --days $(DEMO_DAYS) --drift-day $(DRIFT_DAY) --drift-kind covariate \
	  --label-delay-days $(LABEL_DELAY) --as-of $(DEMO_END) > $(DRIFTLINE_HOME)/demo-data.json

airflow-db: venv
	@mkdir -p $(AIRFLOW_HOME) $(AIRFLOW__CORE__PLUGINS_FOLDER)
	$(BIN)/airflow db migrate > $(DRIFTLINE_HOME)/airflow-db-migrate.log
	@# Parse the DAG files into the DB now: `airflow dags list` and the UI show them at once,
	@# not only after the dag-processor's first pass.
	$(BIN)/airflow dags reserialize >> $(DRIFTLINE_HOME)/airflow-db-migrate.log 2>&1
	@echo "airflow metadata DB ready ($(AIRFLOW_HOME))"

# The demo tells one story from an empty registry: an earlier demo's registry, MLflow runs,
# artifacts, Airflow run history (its metadata DB) and logs are moved aside (kept, never
# deleted) before it starts again.
demo-fresh:
	@if [ -e $(DRIFTLINE_HOME)/mlflow.db ] || [ -d $(DRIFTLINE_HOME)/artifacts ]; then \
	  keep=$(DRIFTLINE_HOME)/previous/$$(date -u +%Y%m%dT%H%M%SZ); mkdir -p $$keep; \
	  for f in mlflow.db mlartifacts artifacts demo-data.json airflow/airflow.db; do \
	    [ -e $(DRIFTLINE_HOME)/$$f ] && mv $(DRIFTLINE_HOME)/$$f $$keep/; done; \
	  mv $(DRIFTLINE_HOME)/*.log $$keep/ 2>/dev/null; \
	  echo "an earlier demo's registry, runs and artifacts are kept in $$keep"; fi; true

run: demo-fresh demo-data airflow-db
	@echo "== retrain__$(MODEL) for $(FIRST_RUN): the first champion"
	@$(BIN)/airflow dags test retrain__$(MODEL) $(FIRST_RUN) > $(DRIFTLINE_HOME)/retrain-$(FIRST_RUN).log 2>&1 \
	  || { tail -40 $(DRIFTLINE_HOME)/retrain-$(FIRST_RUN).log; exit 1; }
	@$(BIN)/python -m pipeline show $(MODEL) --date $(FIRST_RUN) --brief
	@echo "== retrain__$(MODEL) for $(NIGHTLY_RUN): a nightly run on the same, stable data"
	@$(BIN)/airflow dags test retrain__$(MODEL) $(NIGHTLY_RUN) > $(DRIFTLINE_HOME)/retrain-$(NIGHTLY_RUN).log 2>&1 \
	  || { tail -40 $(DRIFTLINE_HOME)/retrain-$(NIGHTLY_RUN).log; exit 1; }
	@$(BIN)/python -m pipeline show $(MODEL) --date $(NIGHTLY_RUN) --brief
	@echo "== monitor__$(MODEL) day by day; covariate drift starts on $(DRIFT_DAY), labels arrive $(LABEL_DELAY) days late"
	@for day in $(MONITOR_DAYS); do \
	  $(BIN)/airflow dags test monitor__$(MODEL) $$day > $(DRIFTLINE_HOME)/monitor-$$day.log 2>&1 \
	    || { tail -40 $(DRIFTLINE_HOME)/monitor-$$day.log; exit 1; }; \
	  $(BIN)/python -m pipeline show $(MODEL) --monitor --date $$day --brief; \
	  conf=$$($(BIN)/python -m pipeline show $(MODEL) --monitor --date $$day --trigger-conf); \
	  if [ -n "$$conf" ]; then \
	    echo "   -> running the retrain run it queued (what a scheduler would do; nothing stays queued)"; \
	    $(BIN)/python -m driftline_airflow.queued retrain__$(MODEL) --conf "$$conf" --expect > $(DRIFTLINE_HOME)/retrain-$$day.log 2>&1 \
	      || { tail -40 $(DRIFTLINE_HOME)/retrain-$$day.log; exit 1; }; \
	    $(BIN)/python -m pipeline show $(MODEL) --date $$day --brief | sed 's/^/   /'; \
	  fi; done
	@$(BIN)/python -m pipeline status $(MODEL)
	@echo
	@echo "Where to look:"
	@echo "  decision records  $(DRIFTLINE_HOME)/artifacts/$(MODEL)/runs/<date>/decision.json  (python -m pipeline show $(MODEL) --date D)"
	@echo "  monitor records   $(DRIFTLINE_HOME)/artifacts/$(MODEL)/monitor/<date>/decision.json, report.html"
	@echo "  model health      $(DRIFTLINE_HOME)/artifacts/$(MODEL)/monitor/<date>/<run id>/dashboard.html  (python -m pipeline dashboard $(MODEL))"
	@echo "  Data Docs         $(DRIFTLINE_HOME)/artifacts/$(MODEL)/data_docs/index.html  (every validation, newest first)"
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
	@echo "Airflow  http://127.0.0.1:8080   $$($(BIN)/python -c 'import json, sys; print(", ".join("user %s, password %s" % kv for kv in json.load(open(sys.argv[1])).items()))' $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated 2>/dev/null || echo "user and password: see $(DRIFTLINE_HOME)/standalone.log")"
	@echo "MLflow   http://127.0.0.1:5000"
	@echo "stop with: make down"

down:
	@for name in airflow mlflow; do f=$(DRIFTLINE_HOME)/pids/$$name; \
	  if [ -f $$f ]; then pid=$$(cat $$f); kill -TERM -- -$$pid 2>/dev/null || true; \
	    for i in $$(seq 1 30); do kill -0 -- -$$pid 2>/dev/null || break; sleep 1; done; \
	    kill -KILL -- -$$pid 2>/dev/null || true; rm -f $$f; echo "stopped $$name"; fi; done

# The compose topology from Debian and Python packages on 127.0.0.1 (stack/native.py); the compose
# file's variable names (POSTGRES_PORT, AIRFLOW_PORT, ...) from the environment or .env.
stack-up: venv
	$(BIN)/python -m stack up

stack-down:
	@test -x $(BIN)/python || { echo "no $(BIN)/python: nothing was started by make stack-up"; exit 0; }
	$(BIN)/python -m stack down

stack-status:
	$(BIN)/python -m stack status

test: venv
	$(BIN)/python -m pytest -q --timeout 1200

test-fast: venv
	$(BIN)/python -m pytest -q -m "not integration and not slow"

bench: venv
	@mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.ingest --rows 1000000 --out benchmarks/results/ingest.json
	$(BIN)/python -m benchmarks.train --rows 1000000 --out benchmarks/results/train.json
	$(BIN)/python -m benchmarks.evaluate --out benchmarks/results/evaluate.json
	$(BIN)/python -m benchmarks.pipeline --rows 1000000 --out benchmarks/results/pipeline_1M.json

bench-monitor: venv
	@test -x .venv-evidently/bin/python || ($(PYTHON) -m venv .venv-evidently && .venv-evidently/bin/pip install -q "evidently==0.7.23" "pandas<3")
	@mkdir -p benchmarks/results
	$(BIN)/python -m benchmarks.monitor --out benchmarks/results/monitor.json

clean: down
	rm -rf $(DRIFTLINE_HOME)
