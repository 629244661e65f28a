"""The monitor run as plain functions, one per DAG task: is the champion still fit for the data?

Contract:
* :func:`champion_step` raises :class:`NoChampion` when the registry has no champion (the DAG
  skips the run with that message: nothing to monitor yet is not a failure).
* :func:`ingest_step` snapshots the monitor window ``[as_of - monitor_days, as_of)`` and the
  window whose labels have arrived (``label_delay_days`` earlier) with the same ingestion as
  training, under ``<artifact_root>/<model>/monitor/<YYYY-MM-DD>/{current,labelled}/``.
* :func:`validate_step` validates the window with the model's suite. Bad data is reported as
  bad data: ``decision.json`` says so (``retrain: false``, ``status: bad_data``) and the run
  fails -- it is never measured as drift.
* :func:`measure_step` measures drift against the champion's reference profile, applies the
  retraining rule over the recorded history, writes ``drift.json``, ``decision.json`` and
  ``report.html``, logs an MLflow run in ``<model>-monitoring``, and returns the conf a
  triggered retrain run carries.
"""

from __future__ import annotations

import json
import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.artifacts import day_key
from pipeline.errors import DriftlineError
from pipeline.runenv import RunEnv, log_text_artifacts
from pipeline.storage import join

log = logging.getLogger(__name__)

CHAMPION_ARTIFACTS = ("profile.json", "feature_importance.json", "reference_scores.json")


class NoChampion(DriftlineError):
    """There is no champion to monitor yet."""


class MonitorError(DriftlineError):
    """The champion's run lacks what the monitor needs (profile, importance, test metric)."""


def champion_step(env: RunEnv) -> dict:
    """The current champion: version, run, model URI and the data end it was trained to."""
    from pipeline import registry

    champion = registry.get_champion(env.mlflow_client(), env.spec)
    if champion is None:
        raise NoChampion(f"no champion for {env.spec.registry_name} yet: nothing to monitor. "
                         f"Run retrain__{env.spec.name} first; it creates the first champion.")
    return {"version": champion.version, "run_id": champion.run_id, "model_uri": champion.uri,
            "data_interval_end": champion.data_interval_end}


def ingest_step(env: RunEnv, champion: dict) -> dict:
    """Snapshot the monitor window and, when it has data, the labelled window."""
    from pipeline.ingest import EmptyWindow, ingest

    spec, store = env.spec, env.store
    store.delete(env.monitor_prefix)
    current = ingest(spec, env.as_of, store, join(env.monitor_prefix, "current"),
                     days=spec.windows.monitor_days, s3_client=env.source_s3_client, pg_uri=env.pg_uri)
    labelled_end = env.as_of - timedelta(days=spec.drift.label_delay_days)
    labelled = None
    if spec.drift.label_delay_days > 0:
        try:
            labelled = ingest(spec, labelled_end, store, join(env.monitor_prefix, "labelled"),
                              days=spec.windows.monitor_days, s3_client=env.source_s3_client,
                              pg_uri=env.pg_uri).to_dict()
        except EmptyWindow as err:
            log.info("no labelled window yet: %s", err)
    return {"current": current.to_dict(), "labelled": labelled}


def _bad_data_record(env: RunEnv, error: DriftlineError, rows: int) -> dict:
    return {
        "day": env.day, "status": "bad_data", "retrain": False, "signal": False, "trigger_reason": "",
        "rows": rows, "blocked_by": ["validation"],
        "reasons": [f"the window failed validation, so drift was not measured: {error}",
                    "bad data is a data-quality incident, not a reason to retrain"],
        "validation": join(env.monitor_prefix, "current", "validation.json"),
    }


def validate_step(env: RunEnv, window: dict) -> dict:
    """Validate both windows with the model's suite.

    Raises:
        ValidationFailed: the current window is bad data (``decision.json`` written first).
    """
    from pipeline.validate import ValidationFailed, validate

    spec, store = env.spec, env.store
    try:
        current = validate(spec, window["current"]["uri"], store, join(env.monitor_prefix, "current")).to_dict()
    except ValidationFailed as err:
        store.write_json(join(env.monitor_prefix, "decision.json"), _bad_data_record(env, err, window["current"]["rows"]))
        raise
    labelled = None
    if window.get("labelled"):
        try:
            labelled = validate(spec, window["labelled"]["uri"], store, join(env.monitor_prefix, "labelled")).to_dict()
        except ValidationFailed as err:
            log.warning("labelled window failed validation; realised performance not measured: %s", err)
    return {"current": current, "labelled": labelled}


def _champion_artifacts(client: Any, run_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CHAMPION_ARTIFACTS:
            try:
                path = client.download_artifacts(run_id, name, tmp)
            except Exception as err:
                raise MonitorError(f"champion run {run_id} has no {name} ({err}); it was not trained by "
                                   f"driftline's train stage -- retrain to create a monitorable champion") from None
            out[name] = json.loads(Path(path).read_text())
    return out


def measure_step(env: RunEnv, champion: dict, validated: dict) -> dict:
    """Measure drift, apply the retraining rule, write the record and report, log to MLflow."""
    from pipeline.drift import decide_retrain, load_history, measure_drift, render_report
    from pipeline.features import score

    spec, store, client = env.spec, env.store, env.mlflow_client()
    refs = _champion_artifacts(client, champion["run_id"])
    run = client.get_run(champion["run_id"])
    test_metric = run.data.metrics.get(f"test_{spec.primary_metric}")
    model = env.load_model(champion["model_uri"])

    current = store.read_parquet(validated["current"]["clean_uri"])
    labelled = labelled_scores = None
    if validated.get("labelled"):
        labelled = store.read_parquet(validated["labelled"]["clean_uri"])
        labelled_scores = score(spec, model, labelled) if len(labelled) else None
        labelled = labelled if labelled_scores is not None else None
    start = env.as_of - timedelta(days=spec.windows.monitor_days)
    report = measure_drift(
        spec, refs["profile.json"], current,
        feature_importance=refs["feature_importance.json"],
        current_scores=score(spec, model, current) if len(current) else None,
        reference_scores=refs["reference_scores.json"],
        labelled=labelled, labelled_scores=labelled_scores, champion_test_metric=test_metric,
        window=(start.isoformat(), env.as_of.isoformat()),
    )
    monitor_root = join(env.settings.artifact_root, spec.name, "monitor")
    history = load_history(store, monitor_root, env.day)
    champion_end = day_key(champion["data_interval_end"]) if champion.get("data_interval_end") else None
    new_rows = report.rows + sum(h.rows for h in history if champion_end is None or h.day > champion_end)
    decision = decide_retrain(report, history, spec.drift, day=env.day, champion_data_end=champion_end,
                              new_rows_since_champion=new_rows)

    decision_uri = join(env.monitor_prefix, "decision.json")
    report_uri = join(env.monitor_prefix, "report.html")
    trigger_conf = {
        "trigger": "drift",
        "reason": decision.trigger_reason or "; ".join(decision.reasons)[:500],
        "report_uri": report_uri,
        "decision_uri": decision_uri,
        "monitor_run_id": env.trigger.get("run_id"),
        "as_of_date": env.day,
    } if decision.retrain else None
    record = {**decision.to_dict(), "status": "retrain" if decision.retrain else "no_retrain",
              "champion_version": champion["version"], "champion_run_id": champion["run_id"],
              "trigger": env.trigger, "trigger_conf": trigger_conf}
    drift_uri = store.write_json(join(env.monitor_prefix, "drift.json"), report.to_dict())
    html = render_report(report, decision, title=f"{spec.name}: drift on {env.day} vs champion v{champion['version']}")
    store.write_text(report_uri, html)
    record["artifacts"] = {"drift": drift_uri, "report": report_uri}
    run_info = _log_monitor_run(env, client, report, record, html)
    record["links"] = {"mlflow_run": run_info["url"]}
    store.write_json(decision_uri, record)
    log.info("monitor %s on %s: %s -- %s", spec.name, env.day, record["status"], "; ".join(decision.reasons))
    return {
        "retrain": decision.retrain,
        "signal": decision.signal,
        "reasons": decision.reasons,
        "decision_uri": decision_uri,
        "report_uri": report_uri,
        "mlflow_run_url": run_info["url"],
        "trigger_conf": trigger_conf,
    }


def _log_monitor_run(env: RunEnv, client: Any, report: Any, record: dict, html: str) -> dict:
    from pipeline.storage import dumps

    name = f"{env.spec.name}-monitoring"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    run = client.create_run(experiment_id, run_name=f"monitor-{env.day}", tags={
        "driftline.model": env.spec.name, "driftline.window_end": env.as_of.isoformat(),
        "driftline.champion_version": str(record["champion_version"]),
        "driftline.decision": record["status"], **env.lineage})
    run_id = run.info.run_id
    metrics = {"weighted_drift": report.weighted_drift, "drifted_features": len(report.drifted_features),
               "rows": report.rows, "retrain": float(record["retrain"]), "signal": float(record["signal"])}
    if report.prediction:
        metrics["prediction_psi"] = report.prediction["psi"]
    if report.performance and report.performance.get("value") is not None:
        metrics[f"realised_{report.performance['metric']}"] = report.performance["value"]
    for feature, entry in report.features.items():
        if entry.get("value") is not None:
            metrics[f"drift_{feature}"] = entry["value"]
    for key, value in metrics.items():
        if value is not None:
            client.log_metric(run_id, key, float(value))
    log_text_artifacts(client, run_id, {"decision.json": dumps(record), "drift.json": dumps(report.to_dict()),
                                        "report.html": html})
    client.set_terminated(run_id)
    return {"run_id": run_id, "url": env.settings.mlflow_run_url(experiment_id, run_id)}
