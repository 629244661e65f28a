"""The retrain run as plain functions, one per DAG task, over URIs and small records.

Contract:
* Each ``*_step(env, ...)`` takes a :class:`pipeline.runenv.RunEnv` and the typed records the
  steps before it returned (or the dicts they crossed XCom as: ``Record.coerce``), calls one
  stage's entrypoint, and returns a typed record (:class:`~pipeline.artifacts.Snapshot`,
  :class:`~pipeline.validate.ValidationReport`, :class:`~pipeline.features.Split`,
  :class:`~pipeline.train.TrainResult`, :class:`EvaluationOutcome`, :class:`PromotionOutcome`,
  :class:`RunReport`). Everything a later step needs travels in these records.
* Every run writes under its own immutable prefix ``runs/<date>/<run id>/``
  (:mod:`pipeline.artifacts`): a re-run of a date adds a run and never touches an earlier one.
  Runs of one model and date go one at a time: the first step takes the date's lease
  (:mod:`pipeline.lease`), every step renews it, the report releases it.
* Every step also records its outcome (result or error) under ``<run_prefix>/steps/<name>.json``
  so :func:`report_step` can explain the run even when a step failed.
* :func:`report_step` writes the run's one decision record, ``<run_prefix>/decision.json``
  (also attached to the candidate's MLflow run), points ``runs/<date>/latest.json`` at it, logs
  its summary, and raises
  :class:`RunFailed` if any step failed -- so a failed validation fails the run, while a
  failing gate is a successful run that ends "not promoted" with its reasons, and a run whose
  data has not landed yet (:class:`pipeline.ingest.NoDataYet`) ends "skipped". Its one-line
  outcome (:func:`run_headline`) is what the Airflow run note shows.
* The champion is only ever moved by :func:`promote_step`, through the registry's
  compare-and-set; a dry run or a failed gate registers the candidate and moves nothing.
  :func:`champion_event_step` describes the move for the champion Asset event and raises
  :class:`ChampionUnchanged` (the task is skipped: no event) when the run moved nothing. The
  model promoted is the challenger the promotion rule chose (:mod:`pipeline.promotion`): the
  XGBoost candidate, or the simpler baseline when it is as good.
* Labels arrive late: the run reads ``[as_of - label_delay - total_days, as_of)``, validates the
  target only on rows older than ``as_of - label_delay`` and trains, validates and tests on those.
* After a recorded change (a drift-triggered run carries the monitor's ``change_point`` and
  ``mode`` in its conf; a scheduled run looks up the latest change the monitor recorded) the
  windows are anchored there and pre-change rows weighted (:mod:`pipeline.features`,
  :mod:`pipeline.adaptation`).
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pipeline.artifacts import Record, Snapshot
from pipeline.errors import DriftlineError, StepSkipped
from pipeline.faults import kill_point
from pipeline.redact import redact, redact_obj
from pipeline.runenv import RunEnv, log_text_artifacts
from pipeline.tracking import as_tracking_error
from pipeline.storage import ObjectNotFound, dumps, join

log = logging.getLogger(__name__)

STEPS = ("ingest", "validate", "split", "train", "evaluate", "promote")


class RunFailed(DriftlineError):
    """A step of the run failed; the decision record says which, why, and where the evidence is."""

    def __init__(self, message: str, headline: str | None = None):
        super().__init__(message)
        self.headline = headline


@dataclass(frozen=True)
class EvaluationOutcome(Record):
    """What the evaluate step found and decided.

    Attributes:
        evaluation_uri: ``evaluation.json``.
        decision: the :class:`pipeline.promotion.Decision` as a dict.
        chosen: the challenger the rule chose, or ``None``.
        champion_before: the champion evaluated against.
        candidate_run_id: the training run.
        candidate_model_uri, registered_role, model_sha256: the model to register (the chosen
            challenger, else the candidate) and its digest.
        test_metric: its primary metric on the test window.
        champion_test_metric: the champion's primary metric on the same test rows (None without
            a champion).
        mlflow_run_url: the training run in the MLflow UI.
        snapshot_hash: lineage of the data.
        plan: how the windows were chosen.
    """

    evaluation_uri: str
    decision: dict[str, Any]
    chosen: str | None
    champion_before: str | None
    candidate_run_id: str
    candidate_model_uri: str
    registered_role: str
    model_sha256: str
    test_metric: float | None
    mlflow_run_url: str = ""
    snapshot_hash: str = ""
    plan: dict[str, Any] = field(default_factory=dict)
    champion_test_metric: float | None = None


@dataclass(frozen=True)
class PromotionOutcome(Record):
    """What the promote step did: the version registered and whether the champion moved.

    Attributes:
        promoted: the champion is now ``candidate_version`` because of this run.
        champion_before, champion_after: the champion version before and after the step.
        message: one sentence for the log.
        candidate_version: the version this run registered.
        model_version_url, mlflow_run_url: the version and the training run in the MLflow UI.
        kind: the champion move's history kind (``promotion``, ``forced_promotion``) or None.
        primary_metric: the spec's primary metric; ``test_metric`` the registered model's value
            and ``champion_test_metric`` the champion's on the same test rows (None: no champion).
        data_interval_end: ISO end of the data the version was trained on.
    """

    promoted: bool
    champion_before: str | None
    champion_after: str | None
    message: str
    candidate_version: str
    model_version_url: str = ""
    mlflow_run_url: str = ""
    kind: str | None = None
    primary_metric: str = ""
    test_metric: float | None = None
    champion_test_metric: float | None = None
    data_interval_end: str = ""


class ChampionUnchanged(StepSkipped):
    """The run did not move the champion, so there is no champion change to announce."""


@dataclass(frozen=True)
class ChampionEvent(Record):
    """The ``extra`` of the champion Asset event a run emits when it moved the champion.

    Attributes:
        model: the spec's name; ``registered_model`` its registry name.
        version, previous_version: the champion after and before (None = there was none).
        kind: ``promotion`` or ``forced_promotion``.
        model_uri: ``models:/<name>/<version>`` (loads exactly this version).
        primary_metric, metric_value: the new champion's primary metric on the test window;
            ``previous_metric_value``: the previous champion's on the same rows (None: none).
        data_interval_end: ISO end of the data the new champion was trained on.
        date, run_id: the run's date and driftline run id; ``airflow_run_id`` its DAG run.
        model_version_url: the version in the MLflow UI.
    """

    model: str
    registered_model: str
    version: str
    previous_version: str | None
    kind: str
    model_uri: str
    primary_metric: str
    metric_value: float | None
    previous_metric_value: float | None
    data_interval_end: str
    date: str
    run_id: str
    airflow_run_id: str | None = None
    model_version_url: str = ""


@dataclass(frozen=True)
class RunReport(Record):
    """The run's outcome as the report step published it."""

    status: str
    summary: str
    decision_uri: str
    mlflow_run_url: str | None = None
    model_version_url: str | None = None
    headline: str = ""


#: How a run's status reads at the start of its one-line headline.
STATUS_WORDS = {"promoted": "promoted", "not_promoted": "not promoted", "dry_run": "dry run", "failed": "failed",
                "skipped": "skipped", "abandoned": "abandoned"}


def run_headline(record: dict) -> str:
    """The run's outcome in one line, from its decision record -- what the Airflow run note
    says: ``promoted: PROMOTE candidate v3 over champion v2 ...``, ``not promoted: REJECT ...``,
    ``dry run: ...``, ``failed at validate: ValidationFailed: ...``, ``skipped: no data for ...``."""
    status = str(record.get("status"))
    summary = str(record.get("summary") or "")
    if status == "failed" and record.get("failed_step"):
        return f"failed at {record['failed_step']}: {summary.split(': ', 1)[-1]}"
    word = STATUS_WORDS.get(status, status)
    return summary if summary.startswith(word + ":") else f"{word}: {summary}"


def gate_lines(decision: dict) -> list[str]:
    """One line per promotion gate of each challenger, for the task log: role, gate name,
    PASS / FAIL / skip, what was observed against what was required, and the gate's sentence."""
    lines = []
    for role, judged in (decision.get("challengers") or {"candidate": {"gates": decision.get("gates", [])}}).items():
        for gate in judged.get("gates", []):
            verdict = {True: "PASS", False: "FAIL", None: "skip"}[gate.get("passed")]
            lines.append(f"{role} {gate['name']}: {verdict} -- observed {_fmt(gate.get('observed'))} vs threshold "
                         f"{_fmt(gate.get('threshold'))}: {gate.get('detail')}")
    return lines


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + "}"
    return "-" if value is None else str(value)


def _step_uri(env: RunEnv, name: str) -> str:
    return join(env.run_prefix, "steps", f"{name}.json")


def recorded(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Record a step's result, or its error, for the report (then re-raise the error)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(env: RunEnv, *args: Any) -> Any:
            from pipeline import lease

            run_id = env.trigger.get("run_id")
            what = f"retrain of {env.spec.name} for {env.day}"
            term = timedelta(minutes=env.spec.runtime.run_lease_minutes)
            if name == STEPS[0]:
                lease.acquire(env.store, env.date_prefix(), env.run_id, what=what, term=term)
            else:
                lease.renew(env.store, env.date_prefix(), env.run_id, term=term)
            clock, cpu = time.perf_counter(), time.process_time()
            try:
                result = fn(env, *args)
            except Exception as err:
                failure = as_tracking_error(err, env.settings.mlflow_tracking_uri)
                try:
                    env.store.write_json(_step_uri(env, name), {
                        "step": name, "run_id": run_id, "ok": False,
                        "skipped": bool(getattr(failure, "skips_run", False)),
                        "error": redact(f"{type(failure).__name__}: {failure}"), "at": _now()})
                except Exception as record_err:  # the store may be what failed: keep the first error
                    log.error("could not record the failure of step %s: %s", name, redact(str(record_err)))
                if failure is not err:
                    raise failure from None
                raise
            as_dict = result.to_dict() if isinstance(result, Record) else result
            env.store.write_json(_step_uri(env, name), {
                "step": name, "run_id": run_id, "ok": True, "result": redact_obj(as_dict), "at": _now(),
                "seconds": round(time.perf_counter() - clock, 3), "cpu_seconds": round(time.process_time() - cpu, 3),
                "peak_rss_mb": _peak_rss_mb()})
            return result

        return run

    return wrap


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far (what the benchmarks read per step)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


@recorded("ingest")
def ingest_step(env: RunEnv) -> Snapshot:
    """Snapshot ``[as_of - label_delay - total_days, as_of)`` into this run's own prefix."""
    from pipeline.ingest import ingest

    return ingest(env.spec, env.as_of, env.store, env.run_prefix,
                  days=env.spec.windows.total_days + env.spec.label_delay_days,
                  s3_client=env.source_s3_client, pg_uri=env.pg_uri)


@recorded("validate")
def validate_step(env: RunEnv, snapshot: Snapshot | dict) -> Any:
    """Validate the snapshot with the model's suite; quarantine bad rows (raises ValidationFailed).
    The target is judged only on rows whose label has arrived."""
    from pipeline.data_docs import DocsTarget
    from pipeline.validate import validate

    snapshot = Snapshot.coerce(snapshot)
    docs = DocsTarget.for_run(env.settings.artifact_root, env.spec.name, env.day, env.run_id, "retrain", "snapshot")
    report = validate(env.spec, snapshot.uri, env.store, env.run_prefix, labelled_before=env.labelled_end, docs=docs,
                      render_docs=False)
    return replace(report, snapshot_hash=snapshot.content_hash)


def data_docs_step(env: RunEnv, validation: Any) -> dict[str, Any]:
    """Render the validation's Data Docs (pending since :func:`validate_step`), off the critical
    path: the DAG runs it as a task of its own beside split and train. Not a recorded step: it
    decides nothing and holds no lease (it may finish after the run's report)."""
    from pipeline.validate import ValidationReport, render_data_docs

    validation = ValidationReport.coerce(validation)
    uri = render_data_docs(env.store, env.run_prefix) if validation.data_docs_pending else validation.data_docs_uri
    log.info("Data Docs: %s (model site %s)", uri, validation.model_data_docs_uri or "none")
    return {"data_docs_uri": uri, "model_data_docs_uri": validation.model_data_docs_uri}


def change_anchor(env: RunEnv) -> tuple[str | None, str | None, str]:
    """``(change_point, mode, where)`` the run's windows anchor at: the monitor's conf of a
    drift-triggered run, else the latest change the monitor recorded before the run's date."""
    from pipeline.retraining import recorded_change

    if env.trigger.get("change_point"):
        return str(env.trigger["change_point"]), env.trigger.get("mode"), "the monitor's retrain request"
    if env.trigger.get("kind") == "backfill":
        return None, None, "backfills recompute history with standard windows"
    change = recorded_change(env.store, join(env.settings.artifact_root, env.spec.name, "monitor"), env.day)
    if change:
        return str(change["day"]), None, f"the change the monitor recorded (detected {change.get('alarm_day')})"
    return None, None, "no change recorded"


@recorded("split")
def split_step(env: RunEnv, validation: Any) -> Any:
    """Out-of-time split of the labelled clean rows (anchored at a recorded change, if any) and
    the reference profile."""
    from pipeline.features import split_and_profile
    from pipeline.validate import ValidationReport

    validation = ValidationReport.coerce(validation)
    change_point, mode, where = change_anchor(env)
    split = split_and_profile(env.spec, validation.clean_uri, env.store, env.run_prefix, env.as_of,
                              change_point=change_point, mode=mode)
    return replace(split, plan={**split.plan, "anchor_source": where}, snapshot_hash=validation.snapshot_hash)


def _lineage(env: RunEnv, snapshot_hash: str) -> dict[str, str]:
    tags = {
        **env.lineage,
        "driftline.model": env.spec.name,
        "driftline.data_interval_end": env.as_of.isoformat(),
        "driftline.trigger": str(env.trigger.get("kind") or "manual"),
        "driftline.artifacts": env.run_prefix,
    }
    if env.trigger.get("reason"):
        tags["driftline.trigger_reason"] = redact(str(env.trigger["reason"]))[:4000]
    if env.trigger.get("report_uri"):
        tags["driftline.drift_report"] = str(env.trigger["report_uri"])
    if snapshot_hash:
        tags["driftline.snapshot_hash"] = snapshot_hash
    return tags


def run_trigger_label(trigger: dict[str, Any]) -> str:
    """What started a run, as its MLflow run name says it: ``scheduled``, ``manual``, ``backfill``,
    ``drift``, ``asset`` or ``cli`` (a plain ``python -m pipeline run``; one carrying a monitor's
    request says ``drift``)."""
    kind = str(trigger.get("kind") or "manual")
    if kind == "manual" and trigger.get("run_type") == "cli":
        return "cli"
    return "scheduled" if kind == "schedule" else kind


@recorded("train")
def train_step(env: RunEnv, split: Any) -> Any:
    """Train candidate and baseline in one MLflow run tagged with the run's lineage."""
    from pipeline.features import Split
    from pipeline.train import train

    split = Split.coerce(split)
    env.bind_mlflow()
    result = train(env.spec, split, env.store, tracking_uri=env.settings.mlflow_tracking_uri,
                   lineage=_lineage(env, split.snapshot_hash), trigger=run_trigger_label(env.trigger),
                   dask_scheduler=env.dask_scheduler)
    kill_point("train")
    return replace(result, mlflow_run_url=env.settings.mlflow_run_url(result.experiment_id, result.run_id))


@recorded("evaluate")
def evaluate_step(env: RunEnv, split: Any, trained: Any) -> EvaluationOutcome:
    """Score candidate, baseline and champion on the test window; apply the promotion rule.

    Also stores on the training run what the monitor later needs of the model it registers (the
    chosen role, else the candidate; no other of its models can become champion):
    ``monitoring_<role>.json`` (test metric, feature importance, score profile, calibration and
    label-free reference; see :func:`monitoring_reference`).
    """
    from pipeline import registry
    from pipeline.evaluate import evaluate
    from pipeline.features import Split
    from pipeline.promotion import decide
    from pipeline.train import TrainResult

    split, trained = Split.coerce(split).to_dict(), TrainResult.coerce(trained)
    snapshot_hash = split.get("snapshot_hash", "")
    trained = trained.to_dict()
    spec, client = env.spec, env.mlflow_client()
    champion = registry.get_champion(client, spec)
    test_df = env.store.read_parquet(split["test_uri"])
    weights = (env.store.read_parquet(trained["test_weights_uri"])["weight"].to_numpy()
               if trained.get("test_weights_uri") else None)
    models = {"candidate": env.load_model(trained["model_uri"], sha256=trained.get("model_sha256")),
              "baseline": env.load_model(trained["baseline_uri"], sha256=trained.get("baseline_sha256"))}
    champion_model = _load_champion(env, champion) if champion else None
    if champion and champion_model is None:
        champion = None
    champion_ref = (champion_reference(client, champion.run_id, champion.tags.get("driftline.role", "candidate"))
                    if champion else {})
    evaluation = evaluate(
        spec, test_df, models["candidate"], models["baseline"], champion_model,
        candidate_info={"data_interval_end": env.as_of.isoformat(), "run_id": trained["run_id"]},
        champion_info={"data_interval_end": champion.data_interval_end or "", "version": champion.version,
                       "run_id": champion.run_id,
                       "test_metric": (champion_ref.get("test_metric") or {}).get("estimate")} if champion else None,
        weights=weights, weights_info={"kind": "importance", "towards": split["plan"].get("change_point")},
        trigger=str(env.trigger.get("kind") or "manual"),
        test_window={"window": split["windows"]["test"], "plan": split["plan"]},
        store=env.store, out_uri=join(env.run_prefix, "evaluation.json"), scores_out=(test_scores := {}),
    )
    decision = decide(evaluation.evidence(), spec.promotion, spec.costs, primary_metric=spec.primary_metric,
                      force=env.force_promote, reason=env.reason)

    run_id = trained["run_id"]
    _log_test_metrics(client, run_id, evaluation.metrics)
    # The reference of the role this run registers (the chosen one, else the candidate): the only
    # one of its models that can become champion (promote_step, rollback).
    registered = decision.chosen or "candidate"
    references = monitoring_reference(env, split, trained, {registered: models[registered]}, evaluation, test_scores)
    log_text_artifacts(client, run_id, {"evaluation.json": dumps(evaluation.to_dict()),
                                        **{f"monitoring_{role}.json": dumps(ref) for role, ref in references.items()}})
    client.set_tag(run_id, "driftline.gates", "pass" if decision.promote else "fail")
    client.set_tag(run_id, "driftline.chosen", decision.chosen or "none")
    for line in gate_lines(decision.to_dict()):
        log.info("gate %s", line)
    log.info("decision: %s", decision.summary)
    chosen = registered
    return EvaluationOutcome(
        evaluation_uri=evaluation.uri or "", decision=decision.to_dict(), chosen=decision.chosen,
        champion_before=champion.version if champion else None, candidate_run_id=run_id,
        candidate_model_uri=trained["model_uri"] if chosen == "candidate" else trained["baseline_uri"],
        registered_role=chosen,
        model_sha256=(trained.get("model_sha256") if chosen == "candidate" else trained.get("baseline_sha256")) or "",
        test_metric=evaluation.metrics[chosen][spec.primary_metric]["estimate"],
        mlflow_run_url=trained.get("mlflow_run_url") or "", snapshot_hash=snapshot_hash, plan=split.get("plan") or {},
        champion_test_metric=(evaluation.metrics.get("champion") or {}).get(spec.primary_metric, {}).get("estimate"),
    )


def _log_test_metrics(client: Any, run_id: str, metrics: dict[str, dict[str, dict]]) -> None:
    """Each role's test metrics on the training run (``test_<metric>`` for the candidate,
    ``<role>_test_<metric>`` for the others), in one batch."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    batch = [Metric(("test_" if role == "candidate" else f"{role}_test_") + metric, float(ci["estimate"]), stamp, 0)
             for role, values in metrics.items() for metric, ci in values.items() if ci.get("estimate") is not None]
    client.log_batch(run_id, metrics=batch)


def _load_champion(env: RunEnv, champion: Any) -> Any:
    """The champion model, verified. One that cannot be verified (stored before driftline's safe
    format, or changed since) stops the run -- unless the run is a forced promotion, which then
    evaluates without it (recorded), so a person can replace an unverifiable champion."""
    from pipeline.models import UnsafeModel

    try:
        return env.load_model(champion.uri, sha256=champion.tags.get("driftline.model_sha256"))
    except UnsafeModel as err:
        if not env.force_promote:
            raise UnsafeModel(f"champion v{champion.version}: {err}") from None
        log.warning("champion v%s cannot be verified (%s); this forced promotion evaluates without it",
                    champion.version, err)
        return None


def monitoring_reference(env: RunEnv, split: dict, trained: dict, models: dict[str, Any],
                         evaluation: Any, test_scores: dict[str, Any] | None = None) -> dict[str, dict]:
    """What the monitor compares a challenger with once it is champion, per role of ``models``.

    ``test_metric``: its primary metric on the test window with the bootstrap standard error
    (the realised reference); ``feature_importance``; ``reference_scores``: its score profile
    on the reference rows; for binary models ``calibration`` (isotonic, fitted on the validation
    window) and ``estimated_reference``: the label-free estimate on the reference rows (the
    estimate's own reference, so its bias cancels in the monitor); ``plan``: how its windows
    were chosen.
    """
    from pipeline.estimate import EstimateError, estimate_performance, fit_calibration
    from pipeline.features import score
    from pipeline.profile import score_profile

    spec = env.spec
    # Calibrate on rows the model did not fit: the validation window, or the test window when the
    # model was refitted on train + valid (anchored windows).
    refit = bool((trained.get("adaptation") or {}).get("refit"))
    test_uri = split["test_uri"]
    calibration_uri = test_uri if refit else split["valid_uri"]
    reference_uri = split.get("reference_uri") or test_uri
    valid = env.store.read_parquet(calibration_uri)
    reference = env.store.read_parquet(reference_uri) if reference_uri != calibration_uri else valid
    known = {test_uri: dict(test_scores or {})}
    if trained.get("valid_scores_uri") and not refit:
        scored = env.store.read_parquet(trained["valid_scores_uri"])
        known[split["valid_uri"]] = {role: scored[role].to_numpy() for role in scored.columns}

    def scores_on(role: str, model: Any, uri: str, frame: Any) -> Any:
        found = known.get(uri, {}).get(role)
        return found if found is not None else score(spec, model, frame)

    importance = {"candidate": trained["feature_importance"],
                  "baseline": trained.get("baseline_importance") or trained["feature_importance"]}

    def reference_of(role: str, model: Any) -> dict:
        ci = evaluation.metrics[role][spec.primary_metric]
        ref_scores = scores_on(role, model, reference_uri, reference)
        entry = {"role": role, "metric": spec.primary_metric,
                 "test_metric": {"estimate": ci["estimate"], "se": ci.get("se"), "lower": ci["lower"],
                                 "upper": ci["upper"], "rows": evaluation.rows, "weighted": evaluation.weights is not None},
                 "feature_importance": importance[role],
                 "reference_scores": score_profile(ref_scores, n_bins=spec.drift.psi_bins),
                 "plan": split.get("plan") or {}, "labelled_end": split.get("labelled_end"),
                 "calibration": None, "estimated_reference": None}
        if spec.task == "binary":
            try:
                y_valid = valid[spec.target_column].to_numpy(dtype=float)
                calibration = fit_calibration(y_valid, scores_on(role, model, calibration_uri, valid))
            except EstimateError as err:
                entry["calibration_note"] = str(err)
            else:
                entry["calibration"] = calibration.to_dict()
                if spec.primary_metric in _estimable():
                    entry["estimated_reference"] = estimate_performance(
                        spec.primary_metric, ref_scores, calibration, threshold=spec.params.decision_threshold,
                        confidence=spec.promotion.confidence, n_bootstrap=spec.drift.n_bootstrap)
        return entry

    return {role: reference_of(role, model) for role, model in models.items()}


def _estimable() -> tuple[str, ...]:
    from pipeline.estimate import ESTIMABLE

    return ESTIMABLE


def champion_reference(client: Any, run_id: str, role: str) -> dict:
    """A model's ``monitoring_<role>.json`` from its training run (``{}`` when it has none: a
    model trained before driftline stored one)."""
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, f"monitoring_{role}.json", tmp)
        except Exception:  # an older champion without the artifact: the caller falls back
            return {}
        return json.loads(Path(path).read_text())


@recorded("promote")
def promote_step(env: RunEnv, evaluation: EvaluationOutcome | dict) -> PromotionOutcome:
    """Register the chosen challenger (always, the candidate when none was chosen) and move
    ``champion`` by compare-and-set when the decision says so and this is not a dry run."""
    from pipeline import registry

    evaluation = EvaluationOutcome.coerce(evaluation)
    spec, client = env.spec, env.mlflow_client()
    decision = evaluation.decision
    plan = evaluation.plan
    tags = {
        "driftline.data_interval_end": env.as_of.isoformat(),
        "driftline.labelled_end": env.labelled_end.isoformat(),
        "driftline.role": evaluation.registered_role or "candidate",
        "driftline.window_plan": plan.get("kind", "standard"),
        "driftline.change_point": plan.get("change_point") or "",
        "driftline.post_change_rows": str(plan.get("post_change_rows") or 0),
        "driftline.model_sha256": evaluation.model_sha256,
        "driftline.snapshot_hash": evaluation.snapshot_hash,
        "driftline.trigger": str(env.trigger.get("kind")),
        "airflow.dag_id": str(env.trigger.get("dag_id") or ""),
        "airflow.run_id": str(env.trigger.get("run_id") or ""),
        "driftline.gates": "pass" if decision["promote"] else "fail",
        "driftline.decision_summary": redact(decision["summary"])[:4000],
        "driftline.artifacts": env.run_prefix,
    }
    pending = (f"Registered by the {env.trigger.get('kind') or 'manual'} run {env.run_id} for {env.day}"
               f"{' (dry run)' if env.dry_run else ''}; its report replaces this with the decision.")
    version = registry.register_candidate(client, spec, model_uri=evaluation.candidate_model_uri,
                                          run_id=evaluation.candidate_run_id, tags=tags, dry_run=env.dry_run,
                                          description=pending)
    kill_point("register")
    actor = env.trigger.get("by") or f"airflow:{env.trigger.get('dag_id') or 'cli'}"
    expected = evaluation.champion_before
    if env.dry_run:
        outcome = {"promoted": False, "champion_before": expected, "champion_after": expected,
                   "message": "dry run: candidate registered and evaluated, champion not moved"}
    elif not decision["promote"]:
        outcome = {"promoted": False, "champion_before": expected, "champion_after": expected,
                   "message": "gates failed: champion not moved"}
    else:
        reason = env.reason or f"gates passed ({env.trigger.get('kind')} run for {env.day})"
        result = registry.promote(client, spec, version=version.version, expected_champion=expected,
                                  decision=decision, actor=str(actor), reason=reason, force=env.force_promote)
        outcome = {**result.to_dict(), "kind": (result.history_entry or {}).get("kind")}
    for line in gate_lines({"challengers": {decision.get("chosen") or "candidate": {"gates": decision.get("gates", [])}}}):
        log.info("gate %s", line)
    log.info("v%s registered; %s: champion %s -> %s", version.version,
             "promoted" if outcome.get("promoted") else outcome["message"],
             outcome.get("champion_before") or "none", outcome.get("champion_after") or "none")
    return PromotionOutcome(
        promoted=bool(outcome.get("promoted")), champion_before=outcome.get("champion_before"),
        champion_after=outcome.get("champion_after"), message=str(outcome.get("message") or ""),
        candidate_version=version.version,
        model_version_url=env.settings.model_version_url(spec.registry_name, version.version),
        mlflow_run_url=evaluation.mlflow_run_url, kind=outcome.get("kind") if outcome.get("promoted") else None,
        primary_metric=spec.primary_metric, test_metric=evaluation.test_metric,
        champion_test_metric=evaluation.champion_test_metric, data_interval_end=env.as_of.isoformat(),
    )


def champion_event_step(env: RunEnv, promotion: PromotionOutcome | dict) -> ChampionEvent:
    """The champion Asset event of a run that moved the champion (pure: no I/O).

    Raises:
        ChampionUnchanged: the run did not move the champion (a dry run, a rejection, a failed
            or lost promotion, a no-op): there is no event to emit.
    """
    promotion = PromotionOutcome.coerce(promotion)
    if not promotion.promoted or not promotion.champion_after or promotion.champion_after == promotion.champion_before:
        raise ChampionUnchanged(f"{env.spec.name} on {env.day}: the champion did not move "
                                f"({promotion.message or 'no promotion'}); no champion event")
    name = env.spec.registry_name
    return ChampionEvent(
        model=env.spec.name, registered_model=name, version=promotion.champion_after,
        previous_version=promotion.champion_before, kind=promotion.kind or "promotion",
        model_uri=f"models:/{name}/{promotion.champion_after}", primary_metric=promotion.primary_metric,
        metric_value=promotion.test_metric, previous_metric_value=promotion.champion_test_metric,
        data_interval_end=promotion.data_interval_end, date=env.day, run_id=env.run_id,
        airflow_run_id=env.trigger.get("run_id"), model_version_url=promotion.model_version_url,
    )


def _read_step(env: RunEnv, name: str) -> dict | None:
    try:
        record = env.store.read_json(_step_uri(env, name))
    except ObjectNotFound:
        return None
    if record.get("run_id") != env.trigger.get("run_id"):
        return None
    return record


def build_record(env: RunEnv, steps: dict[str, dict | None]) -> dict:
    """The decision record of a run from its step records (pure; see :func:`report_step`)."""
    failed = next((n for n in STEPS if steps.get(n) and not steps[n]["ok"]), None)
    missing = next((n for n in STEPS if steps.get(n) is None), None)
    result = {n: (steps[n] or {}).get("result") or {} for n in STEPS}
    evaluation, promotion = result["evaluate"], result["promote"]
    decision = evaluation.get("decision") or {}
    skipped = steps.get(STEPS[0]) if failed == STEPS[0] and steps[STEPS[0]].get("skipped") else None
    if skipped:
        status, summary = "skipped", skipped["error"].split(": ", 1)[-1]
        reasons = [summary, "nothing was trained or registered; the champion was not touched"]
        failed = None
    elif failed or missing:
        stage = failed or missing
        error = steps[stage]["error"] if failed else f"step {stage} did not run (an upstream task failed or was skipped)"
        status, summary = "failed", f"run failed at {stage}: {error}"
        reasons = [summary, "the champion was not touched"]
    elif env.dry_run:
        status, summary = "dry_run", "dry run: " + decision.get("summary", "")
        reasons = ["dry run requested: the champion is never moved", *decision.get("reasons", [])]
    elif promotion.get("promoted"):
        status, summary = "promoted", decision.get("summary", "")
        reasons = decision.get("reasons", [])
    else:
        status, summary = "not_promoted", decision.get("summary", "")
        reasons = decision.get("reasons", [])
    validation = result["validate"]
    split, trained = result["split"], result["train"]
    return {
        "model": env.spec.name,
        "date": env.day,
        "run_id": env.run_id,
        "as_of": env.as_of.isoformat(),
        "status": status,
        "promote": bool(promotion.get("promoted")) and status == "promoted",
        "summary": summary,
        "reasons": reasons,
        "failed_step": None if skipped else failed or missing,
        "chosen": decision.get("chosen"),
        "choice": decision.get("choice"),
        "gates": decision.get("gates", []),
        "challengers": decision.get("challengers", {}),
        "windows": split.get("windows"),
        "plan": split.get("plan"),
        "adaptation": trained.get("adaptation"),
        "forced": decision.get("forced", False),
        "dry_run": env.dry_run,
        "primary_metric": env.spec.primary_metric,
        "metric": {"name": env.spec.primary_metric, "value": evaluation.get("test_metric"),
                   "champion_value": evaluation.get("champion_test_metric")},
        "move": promotion.get("kind"),
        "candidate_version": promotion.get("candidate_version"),
        "champion_before": promotion.get("champion_before", evaluation.get("champion_before")),
        "champion_after": promotion.get("champion_after", evaluation.get("champion_before")),
        "candidate_run_id": evaluation.get("candidate_run_id") or result["train"].get("run_id"),
        "trigger": env.trigger,
        "links": {
            "mlflow_run": result["train"].get("mlflow_run_url"),
            "model_version": promotion.get("model_version_url"),
        },
        "evidence": {
            "snapshot": result["ingest"].get("uri"),
            "rows": result["ingest"].get("rows"),
            "missing_days": result["ingest"].get("missing_days"),
            "validation": validation.get("report_uri") or join(env.run_prefix, "validation.json"),
            "quarantined_rows": validation.get("quarantined_rows"),
            "quarantine_reasons": validation.get("quarantine_reasons"),
            "validation_warnings": [w.get("message") for w in validation.get("warnings") or []],
            "timestamp_issues": result["ingest"].get("timestamp_issues"),
            "ignored_files": result["ingest"].get("ignored_files"),
            "data_docs": validation.get("data_docs_uri"),
            "profile": result["split"].get("profile_uri"),
            "evaluation": evaluation.get("evaluation_uri"),
        },
    }


def report_step(env: RunEnv) -> RunReport:
    """Write ``decision.json``, attach it to the candidate's MLflow run, link it from the
    registered version (tags ``driftline.decision_uri`` / ``driftline.decision``, and the
    version's description: :func:`version_description`), log its summary.

    Raises:
        RunFailed: a step failed; the record is written first and names the step and error.
    """
    from pipeline import lease
    from pipeline.artifacts import publish_latest

    steps = {name: _read_step(env, name) for name in STEPS}
    record = redact_obj(build_record(env, steps))
    kill_point("report")
    uri = env.store.write_json(join(env.run_prefix, "decision.json"), record)
    record["decision_uri"] = uri
    publish_latest(env.store, env.date_prefix(), run_id=env.run_id, decision_uri=uri, status=record["status"])
    lease.release(env.store, env.date_prefix(), env.run_id)
    try:
        _link_record(env, record, uri)
    except Exception as err:
        raise as_tracking_error(err, env.settings.mlflow_tracking_uri) from None
    try:
        repaired = repair_abandoned(env)
    except Exception as err:  # this run's record is complete; a repair can wait for the next run
        log.warning("could not repair abandoned runs: %s", redact(str(err)))
        repaired = []
    if repaired:
        log.warning("repaired the decision records of %d version(s) whose run died after registering them: %s",
                    len(repaired), ", ".join(f"v{v}" for v in repaired))
    headline = run_headline(record)
    log.info("decision for %s on %s: %s (record: %s)", env.spec.name, env.day, headline, uri)
    for reason in record["reasons"]:
        log.info("  - %s", reason)
    if record["status"] == "failed":
        raise RunFailed(redact(f"{record['summary']} (decision record: {uri})"), headline=headline)
    return RunReport(status=record["status"], summary=record["summary"], decision_uri=uri,
                     mlflow_run_url=record["links"]["mlflow_run"], model_version_url=record["links"]["model_version"],
                     headline=headline)


def _link_record(env: RunEnv, record: dict, uri: str) -> None:
    """Attach the record to the candidate's MLflow run and link it from the registered version."""
    if not record["candidate_run_id"]:
        return
    client = env.mlflow_client()
    log_text_artifacts(client, record["candidate_run_id"], {"decision.json": dumps(record)})
    client.set_tag(record["candidate_run_id"], "driftline.decision", record["status"])
    client.set_tag(record["candidate_run_id"], "driftline.decision_uri", uri)
    if record["candidate_version"]:
        name, version = env.spec.registry_name, record["candidate_version"]
        client.set_model_version_tag(name, version, "driftline.decision_uri", uri)
        client.set_model_version_tag(name, version, "driftline.decision", record["status"])
        backfill = (client.get_model_version(name, version).tags or {}).get("driftline.backfill") == "true"
        client.update_model_version(name, version, description=version_description(record, uri, backfill=backfill))


#: How each status reads at the top of a version's description.
_HEADLINES = {
    "promoted": "**Promoted**: champion since this run",
    "not_promoted": "**Not promoted**",
    "dry_run": "**Dry run**: evaluated only; never champion nor challenger",
    "failed": "**Run failed** after registering this version; champion untouched by it",
    "abandoned": "**Abandoned**: the run died after registering this version",
}
_MAX_DESCRIPTION = 4000


def version_description(record: dict[str, Any], decision_uri: str, *, backfill: bool = False) -> str:
    """A registered version's description from its run's decision record (pure).

    Markdown lines: what was decided and the one-line reason; the primary metric on the test
    window against the champion's on the same rows; the data windows; whether it is a backfill
    (never the challenger); which run, and where the full record is. At most 4,000 characters.
    """
    status = str(record.get("status") or "?")
    before, after = record.get("champion_before"), record.get("champion_after")
    head = _HEADLINES.get(status, f"**{status}**")
    if status == "promoted":
        head += f" ({record.get('move') or 'promotion'}; was {'v' + before if before else 'no champion'})"
    elif status in ("not_promoted", "dry_run", "failed"):
        head += f"; champion stays {'v' + after if after else 'none'}"
    why = str(record.get("summary") or "").split("; report ", 1)[0]
    failed = next((r for r in record.get("reasons") or [] if " failed: " in str(r)), None)
    lines = [f"{head}.", f"Why: {why}" + (f" -- {failed}" if failed and status != "failed" else "")]
    metric = record.get("metric") or {}
    windows = record.get("windows") or {}
    if metric.get("value") is not None:
        test = windows.get("test") or ["?", "?"]
        where = f"on the test window {_day(test[0])} to {_day(test[1])}"
        vs = (f"; champion v{record.get('champion_before')} {metric['champion_value']:.4f} on the same rows"
              if metric.get("champion_value") is not None else "; no champion to compare with")
        lines.append(f"{metric.get('name')}: {metric['value']:.4f} {where}{vs}.")
    if windows:
        parts = ", ".join(f"{k} {_day(v[0])} to {_day(v[1])}" for k, v in windows.items() if v)
        lines.append(f"Data: {parts} (half-open); data before {_day(record.get('as_of') or '')}.")
    if backfill:
        lines.append("Backfill: its data ends before that of a version already registered, so it is never the "
                     "challenger.")
    trigger = record.get("trigger") or {}
    lines.append(f"Run: {trigger.get('kind') or 'manual'} run for {record.get('date')} (driftline run "
                 f"{record.get('run_id')}, orchestrator run {trigger.get('run_id') or '-'}); decision record "
                 f"{decision_uri}.")
    return "\n\n".join(lines)[:_MAX_DESCRIPTION]


def _day(value: Any) -> str:
    return str(value or "?")[:10]


def repair_abandoned(env: RunEnv) -> list[str]:
    """Give every registered version a reachable decision record.

    A run killed after registering its candidate but before its report leaves a version without
    ``driftline.decision_uri``. This writes, in that run's own prefix (the version's
    ``driftline.artifacts`` tag), a record with status ``abandoned`` built from the steps that run
    did record, points the version at it, and says which run repaired it. Returns the versions
    repaired.
    """
    from pipeline.artifacts import day_key

    client = env.mlflow_client()
    name = env.spec.registry_name
    repaired = []
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except Exception as err:  # the report is written; a repair can wait for the next run
        log.warning("could not list %s's versions to repair abandoned runs: %s", name, redact(str(err)))
        return []
    from pipeline import lease

    for mv in versions:
        tags = mv.tags or {}
        prefix = tags.get("driftline.artifacts")
        if tags.get("driftline.decision_uri") or not prefix:
            continue
        run_of_version = prefix.rstrip("/").rsplit("/", 1)[-1]
        holder = lease.read(env.store, prefix.rstrip("/").rsplit("/", 1)[0]) or {}
        if holder.get("run_id") == run_of_version and not lease.lapsed(holder):
            continue  # that run is alive: it will write its own record
        existing = join(prefix, "decision.json")
        if env.store.exists(existing):
            # The run wrote its record (e.g. it failed after registering) but could not link it.
            status = str(env.store.read_json(existing).get("status", "?"))
            client.set_model_version_tag(name, mv.version, "driftline.decision_uri", existing)
            client.set_model_version_tag(name, mv.version, "driftline.decision", status)
            repaired.append(str(mv.version))
            continue
        steps = {}
        for step in STEPS:
            try:
                steps[step] = env.store.read_json(join(prefix, "steps", f"{step}.json"))
            except ObjectNotFound:
                steps[step] = None
        record = {
            "model": env.spec.name, "date": day_key(tags.get("driftline.data_interval_end") or env.day),
            "run_id": prefix.rstrip("/").rsplit("/", 1)[-1], "status": "abandoned", "promote": False,
            "summary": (f"abandoned: the run registered v{mv.version} and died before writing its decision record; "
                        f"repaired by run {env.run_id} on {env.day}"),
            "reasons": [f"steps recorded: {', '.join(n for n in STEPS if steps[n]) or 'none'}",
                        "whether it moved the champion is in the registry's alias history "
                        "(python -m pipeline status)"],
            "candidate_version": str(mv.version), "steps": redact_obj(steps),
            "trigger": {"airflow.run_id": tags.get("airflow.run_id"), "kind": tags.get("driftline.trigger")},
        }
        uri = env.store.write_json(join(prefix, "decision.json"), record)
        client.set_model_version_tag(name, mv.version, "driftline.decision_uri", uri)
        client.set_model_version_tag(name, mv.version, "driftline.decision", "abandoned")
        client.update_model_version(name, mv.version, description=version_description(
            record, uri, backfill=tags.get("driftline.backfill") == "true"))
        repaired.append(str(mv.version))
    return repaired


def run_all(env: RunEnv, data_docs: bool = True) -> dict:
    """Run every step in order in this process (the CLI's ``run`` and tests); returns the report
    as a dict. ``data_docs``: render the validation's Data Docs once the decision is made (False
    leaves them pending for ``python -m pipeline data-docs``; a failed validation renders them
    anyway).

    A failing step stops the chain, and the report still records it (then raises RunFailed).
    Every step still writes its files; frames within ``settings.handoff_mb`` are also handed to
    the next step in memory (:class:`pipeline.storage.FrameHandoff`), each dropped once its
    last reader has it.
    """
    from pipeline.storage import FrameHandoff

    if env.handoff is None and env.settings.handoff_mb > 0:
        env = replace(env, handoff=FrameHandoff(env.settings.handoff_mb * 2**20))
    from pipeline import prewarm

    prewarm.start(env.settings.mlflow_tracking_uri)
    validation = None
    try:
        snapshot = ingest_step(env)
        validation = validate_step(env, snapshot)
        _drop(env, snapshot.uri)
        split = split_step(env, validation)
        _drop(env, validation.clean_uri)
        trained = train_step(env, split)
        evaluation = evaluate_step(env, split, trained)
        promote_step(env, evaluation)
    except Exception as err:  # recorded by the failing step; the report below explains and raises
        log.error("%s: %s", type(err).__name__, redact(str(err)))
    finally:
        if env.handoff is not None:
            env.handoff.clear()
    if data_docs and validation is not None:  # whatever later steps did, as the DAG's task does
        try:
            data_docs_step(env, validation)
        except Exception as err:  # the pages are a view of validation.json and gx_results.json, both kept
            log.error("could not render the Data Docs: %s: %s", type(err).__name__, redact(str(err)))
    return report_step(env).to_dict()


def _drop(env: RunEnv, uri: str) -> None:
    if env.handoff is not None:
        env.handoff.drop(uri)
