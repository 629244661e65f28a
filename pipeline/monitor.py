"""The monitor run as plain functions, one per DAG task: is the champion still worth keeping?

Contract:
* :func:`champion_step` raises :class:`NoChampion` when the registry has no champion (the DAG
  skips the run with that message: nothing to monitor yet is not a failure).
* :func:`ingest_step` snapshots the monitor window ``[as_of - monitor_days, as_of)`` and the
  window whose labels have arrived (``label_delay_days`` earlier) with the same ingestion as
  training, under ``<artifact_root>/<model>/monitor/<YYYY-MM-DD>/{current,labelled}/``. The
  labelled window is only used once it lies after the champion's own labelled data (earlier
  rows were its training or test rows: judging it there would flatter it).
* :func:`validate_step` validates the windows with the model's suite (the target only where its
  label has arrived). Bad data is reported as bad data: ``decision.json`` says so
  (``retrain: false``, ``status: bad_data``) and the run fails -- it is never measured as drift.
* :func:`measure_step` measures feature and prediction drift against the champion's reference
  profile (:mod:`pipeline.drift`), observes the champion's primary metric -- realised on the
  labelled window, and estimated without labels on the current window for binary models
  (:mod:`pipeline.estimate`) -- and applies the retraining rule over the recorded history
  (:mod:`pipeline.retraining`). It writes ``drift.json``, ``decision.json`` and ``report.html``
  (with each feature's drift over the last ``drift.history_days`` days, :mod:`pipeline.trend`),
  logs an MLflow run of the day in ``<model>-monitoring`` and the day's values into the model's
  trend run there (one point per day, so MLflow charts show the trend), and returns the conf a
  triggered retrain carries (``change_point`` and ``mode`` tell it how to anchor its windows).
  Once the day's record is complete it writes the model-health dashboard
  (:mod:`pipeline.dashboard`) as ``dashboard.html`` beside it and on the day's MLflow run
  (``dashboard_url`` links it).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from pipeline.artifacts import Record, day_key
from pipeline.errors import DriftlineError
from pipeline.redact import redact_obj
from pipeline.runenv import RunEnv, log_text_artifacts
from pipeline.storage import ObjectNotFound, join

log = logging.getLogger(__name__)

#: Artifacts of a champion trained before per-role monitoring references existed.
LEGACY_ARTIFACTS = ("feature_importance.json", "reference_scores.json")


@dataclass(frozen=True)
class ChampionRef(Record):
    """The champion being monitored: its version, run, model, role, data ends and digest."""

    version: str
    run_id: str
    model_uri: str
    data_interval_end: str | None
    labelled_end: str | None
    role: str = "candidate"
    change_point: str | None = None
    post_change_rows: int = 0
    sha256: str | None = None


@dataclass(frozen=True)
class MonitorWindows(Record):
    """The snapshots of one monitor run: today's window and the newly labelled one (if any)."""

    current: dict[str, Any]
    labelled: dict[str, Any] | None = None


@dataclass(frozen=True)
class ValidatedWindows(Record):
    """The validation reports of both windows (``labelled`` is None when it was not usable)."""

    current: dict[str, Any]
    labelled: dict[str, Any] | None = None


@dataclass(frozen=True)
class MonitorOutcome(Record):
    """What the monitor decided; ``trigger_conf`` is the conf of the retrain it requests."""

    retrain: bool
    status: str
    signal: bool
    reasons: list[str]
    decision_uri: str
    report_uri: str
    mlflow_run_url: str
    trigger_conf: dict[str, Any] | None = None
    dashboard_url: str = ""
    headline: str = ""


def monitor_headline(decision: Any) -> str:
    """The monitor run's outcome in one line (the Airflow run note), from its
    :class:`pipeline.retraining.RetrainDecision`: ``drift, retrain requested: <why>``,
    ``drift, retrain held by <guards>: ...`` (cooldown, budget), ``drift, waiting for labels: ...``,
    ``drift, no retrain yet: ...``, ``not judged: ...`` or ``no retrain needed: ...``."""
    reasons = list(decision.reasons)
    last = reasons[-1] if reasons else ""
    if decision.status == "retrain":
        return f"drift, retrain requested: {decision.trigger_reason}"
    if decision.status == "held":
        return f"drift, retrain held by {', '.join(decision.blocked_by)}: {last.removeprefix('Retrain warranted but ')}"
    if decision.status == "waiting":
        return f"drift, retrain waiting for labels: {decision.waiting}"
    if "insufficient_data" in decision.blocked_by:
        return f"not judged: {last}"
    if decision.checks.get("shift") and not last.startswith("No retrain: "):
        return f"drift, no retrain yet: {last}"
    verdict = next((r for r in reversed(reasons) if r.startswith("No retrain: ")), last)
    return f"no retrain needed: {verdict.removeprefix('No retrain: ')}"


class NoChampion(DriftlineError):
    """There is no champion to monitor yet (the run is skipped, not failed)."""

    skips_run = True


class MonitorError(DriftlineError):
    """The champion's run lacks what the monitor needs (profile, importance, test metric)."""


def champion_step(env: RunEnv) -> ChampionRef:
    """The current champion: version, run, model URI, role, the data it could read and the
    change its windows were anchored at."""
    from pipeline import registry

    champion = registry.get_champion(env.mlflow_client(), env.spec)
    if champion is None:
        raise NoChampion(f"no champion for {env.spec.registry_name} yet: nothing to monitor. "
                         f"Run retrain__{env.spec.name} first; it creates the first champion.")
    tags = champion.tags
    data_end = champion.data_interval_end
    return ChampionRef(version=champion.version, run_id=champion.run_id, model_uri=champion.uri,
                       data_interval_end=data_end, labelled_end=tags.get("driftline.labelled_end") or data_end,
                       role=tags.get("driftline.role", "candidate"),
                       change_point=tags.get("driftline.change_point") or None,
                       post_change_rows=int(tags.get("driftline.post_change_rows") or 0),
                       sha256=tags.get("driftline.model_sha256") or None)


def ingest_step(env: RunEnv, champion: ChampionRef | dict) -> MonitorWindows:
    """Snapshot the monitor window and, when it has data, the labelled window."""
    from pipeline.ingest import EmptyWindow, NoDataYet, ingest

    champion = ChampionRef.coerce(champion).to_dict()
    from pipeline import lease

    spec, store = env.spec, env.store
    lease.acquire(store, env.date_prefix("monitor"), env.run_id, what=f"monitor of {spec.name} for {env.day}",
                  term=timedelta(minutes=spec.runtime.run_lease_minutes))
    try:
        current = ingest(spec, env.as_of, store, join(env.monitor_prefix, "current"),
                         days=spec.windows.monitor_days, s3_client=env.source_s3_client, pg_uri=env.pg_uri)
    except NoDataYet:
        lease.release(store, env.date_prefix("monitor"), env.run_id)  # skipped: the date is free again
        raise
    labelled = None
    labelled_end = env.labelled_end
    start = labelled_end - timedelta(days=spec.windows.monitor_days)
    champion_labels = champion.get("labelled_end")
    if spec.label_delay_days > 0 and champion_labels and start.isoformat() < _iso(champion_labels):
        log.info("labelled window [%s, %s) overlaps the champion's own labelled data (up to %s): realised "
                 "performance waits for later windows", start.date(), labelled_end.date(), champion_labels)
    elif spec.label_delay_days > 0:
        try:
            labelled = ingest(spec, labelled_end, store, join(env.monitor_prefix, "labelled"),
                              days=spec.windows.monitor_days, s3_client=env.source_s3_client,
                              pg_uri=env.pg_uri).to_dict()
        except EmptyWindow as err:
            log.info("no labelled window yet: %s", err)
    return MonitorWindows(current=current.to_dict(), labelled=labelled)


def _iso(value: str) -> str:
    from pipeline.runenv import to_as_of

    return to_as_of(value).isoformat()


def _finish(env: RunEnv, record: dict) -> str:
    """Write the run's decision record, point the date's ``latest.json`` at it, release the date."""
    from pipeline import lease
    from pipeline.artifacts import publish_latest

    uri = env.store.write_json(join(env.monitor_prefix, "decision.json"), record)
    publish_latest(env.store, env.date_prefix("monitor"), run_id=env.run_id, decision_uri=uri,
                   status=str(record.get("status")))
    lease.release(env.store, env.date_prefix("monitor"), env.run_id)
    return uri


def _bad_data_record(env: RunEnv, error: DriftlineError, rows: int) -> dict:
    return {
        "day": env.day, "status": "bad_data", "retrain": False, "signal": False, "trigger_reason": "",
        "rows": rows, "blocked_by": ["validation"],
        "reasons": [f"the window failed validation, so drift was not measured: {error}",
                    "bad data is a data-quality incident, not a reason to retrain"],
        "validation": join(env.monitor_prefix, "current", "validation.json"),
    }


def validate_step(env: RunEnv, window: MonitorWindows | dict) -> ValidatedWindows:
    """Validate both windows with the model's suite.

    Raises:
        ValidationFailed: the current window is bad data (``decision.json`` written first).
    """
    from pipeline.data_docs import DocsTarget
    from pipeline.validate import ValidationFailed, validate

    window = MonitorWindows.coerce(window).to_dict()
    spec, store = env.spec, env.store

    def docs(which: str) -> DocsTarget:
        return DocsTarget.for_run(env.settings.artifact_root, spec.name, env.day, env.run_id, "monitor", which)

    try:
        current = validate(spec, window["current"]["uri"], store, join(env.monitor_prefix, "current"),
                           labelled_before=env.labelled_end, docs=docs("current window")).to_dict()
    except ValidationFailed as err:
        _finish(env, redact_obj(_bad_data_record(env, err, window["current"]["rows"])))
        raise
    labelled = None
    if window.get("labelled"):
        try:
            labelled = validate(spec, window["labelled"]["uri"], store, join(env.monitor_prefix, "labelled"),
                                labelled_before=env.labelled_end, docs=docs("labelled window")).to_dict()
        except ValidationFailed as err:
            log.warning("labelled window failed validation; realised performance not measured: %s", err)
    return ValidatedWindows(current=current, labelled=labelled)


def champion_references(client: Any, spec: Any, champion: dict) -> dict[str, Any]:
    """What the monitor compares with: the champion run's ``profile.json`` and its role's
    ``monitoring_<role>.json`` (or, for an older champion, the legacy artifacts and test metric)."""
    from pipeline.retrain import champion_reference

    run_id = champion["run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            profile = json.loads(Path(client.download_artifacts(run_id, "profile.json", tmp)).read_text())
        except Exception as err:
            raise MonitorError(f"champion run {run_id} has no profile.json ({err}); it was not trained by "
                               "driftline's train stage -- retrain to create a monitorable champion") from None
    ref = champion_reference(client, run_id, champion.get("role", "candidate"))
    if ref:
        return {"profile": profile, **ref}
    legacy: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in LEGACY_ARTIFACTS:
            try:
                legacy[name] = json.loads(Path(client.download_artifacts(run_id, name, tmp)).read_text())
            except Exception as err:
                raise MonitorError(f"champion run {run_id} has neither monitoring_{champion['role']}.json nor "
                                   f"{name} ({err}): retrain to create a monitorable champion") from None
    metrics = client.get_run(run_id).data.metrics
    return {"profile": profile, "feature_importance": legacy["feature_importance.json"],
            "reference_scores": legacy["reference_scores.json"], "calibration": None, "estimated_reference": None,
            "test_metric": {"estimate": metrics.get(f"test_{spec.primary_metric}"), "se": None}}


def observe(env: RunEnv, champion: dict, refs: dict[str, Any], model: Any, current: Any, current_scores: Any,
            labelled: Any) -> list[Any]:
    """Today's observations of the champion's primary metric: realised on the labelled window,
    estimated (binary, label-free) on the current window."""
    from pipeline import metrics
    from pipeline.estimate import ESTIMABLE, Calibration, estimate_performance
    from pipeline.features import score
    from pipeline.retraining import observation

    spec = env.spec
    metric = spec.primary_metric
    test = refs.get("test_metric") or {}
    out = []
    window_days = spec.windows.monitor_days
    if labelled is not None and len(labelled) >= spec.drift.min_window_rows:
        y = labelled[spec.target_column].to_numpy(dtype=float)
        r = metrics.realised(spec.task, metric, y, score(spec, model, labelled), threshold=spec.params.decision_threshold,
                             confidence=spec.promotion.confidence, n_boot=spec.drift.n_bootstrap,
                             seed=int(env.as_of.timestamp()) % 2**31)
        day = day_key(env.labelled_end - timedelta(days=window_days))
        out.append(observation(spec, day=day, source="realised", value=r["estimate"], se=r["se"], lower=r["lower"],
                               upper=r["upper"], reference=test.get("estimate"), reference_se=test.get("se"),
                               rows=len(labelled), champion_version=champion["version"]))
    est_ref = refs.get("estimated_reference") or {}
    if (spec.task == "binary" and refs.get("calibration") and metric in ESTIMABLE and current_scores is not None
            and len(current) >= spec.drift.min_window_rows):
        e = estimate_performance(metric, current_scores, Calibration.from_dict(refs["calibration"]),
                                 threshold=spec.params.decision_threshold, confidence=spec.promotion.confidence,
                                 n_bootstrap=spec.drift.n_bootstrap, seed=int(env.as_of.timestamp()) % 2**31)
        day = day_key(env.as_of - timedelta(days=window_days))
        out.append(observation(spec, day=day, source="estimated", value=e["estimate"], se=e["se"], lower=e["lower"],
                               upper=e["upper"], reference=est_ref.get("estimate"), reference_se=est_ref.get("se"),
                               rows=len(current), champion_version=champion["version"]))
    return [o for o in out if o is not None]


def retrain_outcomes(env: RunEnv, request_days: list[str]) -> dict[str, str]:
    """Status of the retrain run each earlier request started (missing: not run yet)."""
    from pipeline.artifacts import date_prefix, latest_decision_uri

    out = {}
    for day in request_days:
        uri = latest_decision_uri(env.store, date_prefix(env.settings.artifact_root, env.spec.name, day, "runs"))
        if uri is None:
            continue
        try:
            record = env.store.read_json(uri)
        except ObjectNotFound:
            continue
        if (record.get("trigger") or {}).get("kind") == "drift":
            out[day] = str(record.get("status"))
    return out


def signal_lines(report: Any, decision: Any) -> list[str]:
    """One line per drift signal the monitor weighed, for the task log: each feature (drifted or
    not, with its statistic against its threshold), the champion's score drift, the
    importance-weighted drift, each observation of the primary metric and each guard checked."""
    lines = []
    for name, entry in report.features.items():
        importance = entry.get("importance")
        weight = f" (importance {importance:.3f})" if isinstance(importance, (int, float)) else ""
        lines.append(f"feature {name}: {'DRIFT' if entry.get('drifted') else 'ok'} -- {entry.get('reason')}{weight}")
    if report.prediction:
        p = report.prediction
        lines.append(f"prediction: {'DRIFT' if p['drifted'] else 'ok'} -- score PSI {p['psi']:.3f} "
                     f"{'>=' if p['drifted'] else '<'} {p['threshold']}, KS {p['ks']:.3f} (p {p['p']:.3g})")
    change = decision.feature_change or {}
    threshold = (decision.policy.get("drift") or {}).get("weighted_drift_threshold")
    lines.append(f"weighted drift: {report.weighted_drift:.3f} vs threshold {threshold} over "
                 f"{len(report.drifted_features)} drifted feature(s)"
                 f"{'; feature change since ' + str(change['day']) if change.get('day') else ''}")
    for obs in decision.observations:
        lines.append(f"performance {obs['source']} {obs['metric']}: {obs['value']:.4g} vs reference "
                     f"{obs['reference']:.4g} (deficit {obs['deficit']:+.4g}, z {obs['z']:.2f}, {obs['rows']} rows)"
                     f"{' DEGRADED' if obs.get('degraded') else ''}")
    for guard, check in decision.checks.items():
        if isinstance(check, dict) and "passed" in check:
            lines.append(f"guard {guard}: {'pass' if check['passed'] else 'HOLD'} -- value {check.get('value')} "
                         f"vs threshold {check.get('threshold')}")
    return lines


def measure_step(env: RunEnv, champion: ChampionRef | dict, validated: ValidatedWindows | dict) -> MonitorOutcome:
    """Measure drift, observe performance, apply the retraining rule, write the record and
    report, log to MLflow."""
    from pipeline import registry
    from pipeline.dashboard import DASHBOARD_FILE, publish_dashboard
    from pipeline.drift import measure_drift
    from pipeline.drift_report import render_report
    from pipeline.features import score
    from pipeline.retraining import ChampionState, decide_retrain, load_history
    from pipeline.trend import drift_history

    champion = ChampionRef.coerce(champion).to_dict()
    validated = ValidatedWindows.coerce(validated).to_dict()
    spec, store, client = env.spec, env.store, env.mlflow_client()
    refs = champion_references(client, spec, champion)
    model = env.load_model(champion["model_uri"], sha256=champion.get("sha256"))
    current = store.read_parquet(validated["current"]["clean_uri"])
    labelled = None
    if validated.get("labelled"):
        labelled = store.read_parquet(validated["labelled"]["clean_uri"])
        labelled = labelled[labelled[spec.target_column].notna()] if len(labelled) else None
    current_scores = score(spec, model, current) if len(current) else None
    start = env.as_of - timedelta(days=spec.windows.monitor_days)
    report = measure_drift(
        spec, refs["profile"], current, feature_importance=refs.get("feature_importance"),
        current_scores=current_scores, reference_scores=refs.get("reference_scores"),
        window=(start.isoformat(), env.as_of.isoformat()),
    )
    observations = [] if report.insufficient else observe(env, champion, refs, model, current, current_scores,
                                                          labelled)
    monitor_root = join(env.settings.artifact_root, spec.name, "monitor")
    history = load_history(store, monitor_root, env.day)
    outcomes = retrain_outcomes(env, [r.day for r in history if r.retrain])
    state = ChampionState(
        version=str(champion["version"]), data_end=day_key(champion.get("data_interval_end") or env.day),
        labelled_end=day_key(champion.get("labelled_end") or champion.get("data_interval_end") or env.day),
        change_point=champion.get("change_point"), post_change_rows=int(champion.get("post_change_rows") or 0))
    decision = decide_retrain(spec, day=env.day, champion=state, observations=observations,
                              feature_drift=report.summary(spec.drift), rows=report.rows, history=history,
                              retrain_outcomes=outcomes, insufficient=report.insufficient)

    decision_uri = join(env.monitor_prefix, "decision.json")
    report_uri = join(env.monitor_prefix, "report.html")
    trigger_conf = None
    if decision.retrain:
        trigger_conf = {
            "trigger": "drift", "kind": decision.kind, "mode": decision.mode, "change_point": decision.anchor,
            "reason": decision.trigger_reason[:500], "report_uri": report_uri, "decision_uri": decision_uri,
            "monitor_run_id": env.trigger.get("run_id"), "as_of_date": env.day,
            "expected_loss": (decision.forecast or {}).get("expected_loss"),
        }
    record = {**decision.to_dict(), "run_id": env.run_id, "retrain_kind": decision.kind,
              "champion_version": champion["version"],
              "champion_run_id": champion["run_id"], "champion_role": champion.get("role"),
              "feature_drift": report.summary(spec.drift), "trigger": env.trigger, "trigger_conf": trigger_conf}
    drift_uri = store.write_json(join(env.monitor_prefix, "drift.json"), report.to_dict())
    html = render_report(report, decision, title=f"{spec.name}: monitor {env.day}, champion v{champion['version']}",
                         history=drift_history(store, monitor_root, env.day, spec.drift.history_days, report))
    store.write_text(report_uri, html)
    record["artifacts"] = {"drift": drift_uri, "report": report_uri}
    run_info = _log_monitor_run(env, client, report, decision, record, html)
    record["links"] = {"mlflow_run": run_info["url"], "mlflow_trend_run": run_info["trend_url"]}
    record["artifacts"]["dashboard"] = join(env.monitor_prefix, DASHBOARD_FILE)
    _finish(env, redact_obj(record))
    publish_dashboard(store, env.settings.artifact_root, spec.name, run_prefix=env.monitor_prefix, day=env.day,
                      alias_history=registry.history(client, spec), client=client, mlflow_run_id=run_info["run_id"])
    for line in signal_lines(report, decision):
        log.info("signal %s", line)
    headline = monitor_headline(decision)
    log.info("monitor %s on %s: %s", spec.name, env.day, headline)
    for reason in decision.reasons:
        log.info("  - %s", reason)
    return MonitorOutcome(retrain=decision.retrain, status=decision.status, signal=decision.signal,
                          reasons=decision.reasons, decision_uri=decision_uri, report_uri=report_uri,
                          mlflow_run_url=run_info["url"], trigger_conf=trigger_conf,
                          dashboard_url=f"{run_info['url']}/artifacts/{DASHBOARD_FILE}", headline=headline)


def _log_monitor_run(env: RunEnv, client: Any, report: Any, decision: Any, record: dict, html: str) -> dict:
    from pipeline.storage import dumps
    from pipeline.trend import daily_metrics, log_trend

    name = f"{env.spec.name}-monitoring"
    from pipeline.tracking import EXPERIMENT_KIND, mark_model_development

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        mark_model_development(client, experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name, tags=EXPERIMENT_KIND)
    run = client.create_run(experiment_id, run_name=f"monitor-{env.day}", tags={
        "driftline.model": env.spec.name, "driftline.window_end": env.as_of.isoformat(),
        "driftline.champion_version": str(record["champion_version"]),
        "driftline.decision": decision.status, **env.lineage})
    run_id = run.info.run_id
    points = daily_metrics(report, decision, env.day, str(record["champion_version"]))
    for point in points:
        client.log_metric(run_id, point.key, point.value)
    trend_id = log_trend(client, experiment_id, env.spec, points, store=env.store,
                         monitor_root=join(env.settings.artifact_root, env.spec.name, "monitor"), holder=env.run_id)
    client.set_tag(run_id, "driftline.trend_run_id", trend_id)
    log_text_artifacts(client, run_id, {"decision.json": dumps(record), "drift.json": dumps(report.to_dict()),
                                        "report.html": html})
    client.set_terminated(run_id)
    return {"run_id": run_id, "url": env.settings.mlflow_run_url(experiment_id, run_id),
            "trend_url": env.settings.mlflow_run_url(experiment_id, trend_id)}
