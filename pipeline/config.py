"""Model specs and runtime settings: the one place that reads YAML and the environment.

Contract:
* ``load_spec(path)`` returns a frozen, validated :class:`ModelSpec`; every threshold a stage
  uses lives in it (promotion, validation and drift policies carry documented defaults).
* ``Settings.from_env()`` is the only reader of ``DRIFTLINE_*``, ``MLFLOW_TRACKING_URI`` and
  ``AIRFLOW_HOME``; stages receive values, never read the environment themselves.
* An invalid spec raises :class:`SpecError` naming the file, the field and what is allowed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from pipeline import metrics
from pipeline.errors import DriftlineError

REPO_ROOT = Path(__file__).resolve().parent.parent

_NAME_RE = r"^[a-z][a-z0-9_]{0,62}$"
#: The longest reason a person may give for a run (a trigger form, ``--reason``); it is recorded
#: in tags and records, so a ticket link belongs there, not a document.
MAX_REASON_CHARS = 2000
_VAR_RE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class SpecError(DriftlineError):
    """A model spec file is missing, unparsable or invalid."""


def _handoff_mb(raw: str | None) -> int:
    if raw is None or raw.strip() == "":
        return 1024
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise SpecError(f"DRIFTLINE_HANDOFF_MB={raw!r}: expected a whole number of MiB >= 0 (0 turns the "
                        "in-memory handoff between steps off)")
    return value


@dataclass(frozen=True)
class Settings:
    """Where driftline keeps things, resolved once from the environment.

    Attributes:
        home: ``DRIFTLINE_HOME`` (default ``<repo>/.driftline``).
        config_dir: ``DRIFTLINE_CONFIG_DIR`` (default ``<repo>/config``).
        artifact_root: ``DRIFTLINE_ARTIFACT_ROOT``: a local path or ``s3://bucket/prefix``
            (default ``<home>/artifacts``).
        lake_root: ``DRIFTLINE_LAKE_ROOT``: where the demo lake lives (default ``<home>/lake``);
            specs refer to it as ``${DRIFTLINE_LAKE_ROOT}``.
        mlflow_tracking_uri: ``MLFLOW_TRACKING_URI`` (default SQLite under ``<home>``).
        airflow_home: ``AIRFLOW_HOME`` (default ``<home>/airflow``).
        mlflow_ui_url: ``DRIFTLINE_MLFLOW_UI_URL``: where people open MLflow (links in the
            Airflow UI and in records; default ``http://127.0.0.1:5000``, what ``make up`` serves).
        handoff_mb: ``DRIFTLINE_HANDOFF_MB``: when all steps of a run share one process (the
            CLI's ``run``), frames up to this many MiB in all are handed from step to step in
            memory instead of being read back from the files just written (default 1024; 0 = off).
        dask_scheduler: ``DRIFTLINE_DASK_SCHEDULER``: the Dask scheduler address (``tcp://host:8786``)
            that a spec with ``training.engine: dask`` trains on outside Airflow (the CLI, tests);
            under Airflow the spec's ``training.conn_id`` connection gives it ("" = none).
    """

    home: Path
    config_dir: Path
    artifact_root: str
    lake_root: str
    mlflow_tracking_uri: str
    airflow_home: Path
    mlflow_ui_url: str = "http://127.0.0.1:5000"
    handoff_mb: int = 1024
    dask_scheduler: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        home = Path(env.get("DRIFTLINE_HOME") or REPO_ROOT / ".driftline").resolve()
        return cls(
            home=home,
            config_dir=Path(env.get("DRIFTLINE_CONFIG_DIR") or REPO_ROOT / "config").resolve(),
            artifact_root=env.get("DRIFTLINE_ARTIFACT_ROOT") or str(home / "artifacts"),
            lake_root=env.get("DRIFTLINE_LAKE_ROOT") or str(home / "lake"),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI") or f"sqlite:///{home / 'mlflow.db'}",
            airflow_home=Path(env.get("AIRFLOW_HOME") or home / "airflow").resolve(),
            mlflow_ui_url=(env.get("DRIFTLINE_MLFLOW_UI_URL") or "http://127.0.0.1:5000").rstrip("/"),
            handoff_mb=_handoff_mb(env.get("DRIFTLINE_HANDOFF_MB")),
            dask_scheduler=(env.get("DRIFTLINE_DASK_SCHEDULER") or "").strip(),
        )

    def mlflow_run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.mlflow_ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def model_version_url(self, name: str, version: str) -> str:
        return f"{self.mlflow_ui_url}/#/models/{name}/versions/{version}"

    def variables(self) -> dict[str, str]:
        """Values a spec may reference as ``${NAME}``."""
        return {
            "DRIFTLINE_HOME": str(self.home),
            "DRIFTLINE_ARTIFACT_ROOT": self.artifact_root,
            "DRIFTLINE_LAKE_ROOT": self.lake_root,
        }


_TOLERANCE_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(%|se)?\s*$")


def _canonical_tolerance(value: Any) -> str:
    """A tolerance as written in a spec -> its canonical text: ``"0.003"``, ``"-0.5%"`` or ``"2se"``."""
    if isinstance(value, bool):
        raise ValueError("a tolerance is a number, a percentage like '0.5%' or standard errors like '2se'")
    if isinstance(value, (int, float)):
        return repr(float(value))
    match = _TOLERANCE_RE.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a tolerance: write a number (metric units, bounded metrics only), "
                         "a percentage of the reference value like '0.5%', or standard errors like '2se'")
    number, unit = match.groups()
    return f"{float(number)!r}{unit or ''}"


#: A tolerance, margin or lift: a plain number (units of the metric: only for bounded metrics such
#: as ROC AUC), ``"x%"`` (a fraction of the reference value of the metric) or ``"xse"`` (bootstrap
#: standard errors of the compared quantity). See :func:`tolerance_value`.
Tolerance = Annotated[str, BeforeValidator(_canonical_tolerance)]


def tolerance_unit(tolerance: str) -> str:
    """``absolute``, ``relative`` or ``se``."""
    return "relative" if tolerance.endswith("%") else "se" if tolerance.endswith("se") else "absolute"


def tolerance_value(tolerance: str, *, reference: float | None, se: float | None = None) -> float:
    """A tolerance in the metric's units.

    Args:
        tolerance: canonical text (see :data:`Tolerance`).
        reference: the value the tolerance is relative to (the champion's or baseline's metric);
            ``x%`` means ``x / 100 * |reference|``.
        se: the bootstrap standard error of the compared quantity (for ``xse``).

    Raises:
        ValueError: a relative tolerance without a reference, or an ``se`` tolerance without one.
    """
    unit = tolerance_unit(tolerance)
    number = float(tolerance.rstrip("%se") if unit != "absolute" else tolerance)
    if unit == "absolute":
        return number
    if unit == "relative":
        if reference is None:
            raise ValueError(f"tolerance {tolerance} is relative but there is no reference value")
        return number / 100.0 * abs(reference)
    if se is None:
        raise ValueError(f"tolerance {tolerance} is in standard errors but no standard error is known")
    return number * se


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSpec(_Frozen):
    """Where the model's rows come from.

    ``lake``: hive partitions ``<uri>/ds=YYYY-MM-DD/*.parquet|csv`` on a local path or ``s3://``.
    ``postgres``: a ``table`` (optionally ``schema.table``) or a ``query`` (a SELECT; the
    timestamp filter is applied around it with bound parameters).
    """

    kind: Literal["lake", "postgres"] = Field(
        description="lake: hive-partitioned files; postgres: a table or query of a PostgreSQL database.")
    uri: str | None = Field(
        default=None, description="lake only (required there): the folder holding the `ds=YYYY-MM-DD/` "
                                  "partitions, a local path or `s3://bucket/prefix`; `${DRIFTLINE_LAKE_ROOT}` "
                                  "and other `${VAR}`s are expanded.")
    format: Literal["parquet", "csv"] = Field(
        default="parquet", description="lake only: the file suffix read in each partition; other files are "
                                       "listed as ignored, never read.")
    table: str | None = Field(
        default=None, description="postgres only: `[schema.]table` to read (exactly one of table or query).")
    query: str | None = Field(
        default=None, description="postgres only: a SELECT to read from; the window filter on the timestamp "
                                  "column is applied around it with bound parameters.")
    conn_id: str | None = Field(
        default=None,
        description="Airflow connection id (aws for s3:// lakes, postgres for postgres).",
    )
    chunk_rows: int = Field(default=250_000, gt=0, description="Rows per streamed chunk.")

    @model_validator(mode="after")
    def _check_kind(self) -> "SourceSpec":
        if self.kind == "lake" and not self.uri:
            raise ValueError("source.kind 'lake' needs source.uri (a local path or s3://bucket/prefix)")
        if self.kind == "postgres" and bool(self.table) == bool(self.query):
            raise ValueError("source.kind 'postgres' needs exactly one of source.table or source.query")
        return self

    def describe(self) -> str:
        if self.kind == "lake":
            return f"lake {self.uri} ({self.format})"
        return f"postgres table {self.table}" if self.table else "postgres query"


class DerivedFeature(_Frozen):
    """A feature computed inside the model pipeline, so serving uses the same code.

    kinds: ``date_part`` (``column``, ``part`` in hour/dayofweek/month/day),
    ``ratio`` (``numerator`` / ``denominator``, NaN when the denominator is 0),
    ``log1p`` (``column``, negatives clipped to 0).
    """

    name: Annotated[str, Field(pattern=_NAME_RE)] = Field(
        description="The new feature's column name (lower case, digits and _).")
    kind: Literal["date_part", "ratio", "log1p"] = Field(
        description="date_part: a part of a timestamp; ratio: numerator / denominator (NaN when the "
                    "denominator is 0); log1p: log(1 + column), negatives clipped to 0.")
    column: str | None = Field(default=None, description="date_part and log1p: the input column (a feature or "
                                                         "the timestamp column).")
    part: Literal["hour", "dayofweek", "month", "day"] | None = Field(
        default=None, description="date_part only: which part of the timestamp.")
    numerator: str | None = Field(default=None, description="ratio only: the numerator column (a feature).")
    denominator: str | None = Field(default=None, description="ratio only: the denominator column (a feature).")

    @model_validator(mode="after")
    def _check_args(self) -> "DerivedFeature":
        needs = {"date_part": ("column", "part"), "ratio": ("numerator", "denominator"), "log1p": ("column",)}
        missing = [a for a in needs[self.kind] if getattr(self, a) is None]
        if missing:
            raise ValueError(f"derived feature {self.name!r} of kind {self.kind!r} needs {', '.join(missing)}")
        return self

    def inputs(self) -> tuple[str, ...]:
        return tuple(c for c in (self.column, self.numerator, self.denominator) if c)


class WindowSpec(_Frozen):
    """Day counts. A retrain run reads ``[end - (train+valid+test) days, end)``; the test window
    is the most recent ``test_days`` (out-of-time), valid before it, train before that."""

    train_days: int = Field(default=28, gt=0, description="Days of the training window (the oldest).")
    valid_days: int = Field(default=7, gt=0, description="Days of the validation window (early stopping, "
                                                         "calibration), between train and test.")
    test_days: int = Field(default=7, gt=0, description="Days of the out-of-time test window (the most recent "
                                                        "labelled days) every promotion gate is judged on.")
    monitor_days: int = Field(default=1, gt=0, description="Days in one monitor window.")

    @property
    def total_days(self) -> int:
        return self.train_days + self.valid_days + self.test_days


class ModelParams(_Frozen):
    """XGBoost candidate hyper-parameters (``hist`` tree method) and the baseline kind."""

    n_estimators: int = Field(default=300, gt=0, description="Maximum boosting rounds (early stopping usually "
                                                             "ends sooner).")
    max_depth: int = Field(default=5, gt=0, description="Maximum depth of each tree.")
    learning_rate: float = Field(default=0.08, gt=0, le=1, description="Shrinkage of each round (XGBoost eta).")
    subsample: float = Field(default=0.9, gt=0, le=1, description="Fraction of rows sampled for each tree.")
    colsample_bytree: float = Field(default=0.9, gt=0, le=1, description="Fraction of features sampled for each "
                                                                         "tree.")
    min_child_weight: float = Field(default=1.0, ge=0, description="Minimum sum of instance weight in a leaf.")
    reg_lambda: float = Field(default=1.0, ge=0, description="L2 regularisation of leaf weights.")
    early_stopping_rounds: int = Field(default=30, gt=0, description="Stop when the validation metric has not "
                                                                     "improved for this many rounds.")
    n_jobs: int = Field(default=2, gt=0, description="Threads XGBoost (and the adaptation's domain classifier) "
                                                     "use.")
    seed: int = Field(default=7, description="Random seed of XGBoost and of the baseline's row sample: the same "
                                             "data and seed give the same model.")
    baseline: Literal["prior", "linear"] = Field(
        default="linear",
        description="prior: majority class / mean; linear: logistic or ridge regression on the same features.",
    )
    decision_threshold: float = Field(default=0.5, gt=0, lt=1, description="Binary F1 threshold.")


class ValidationPolicy(_Frozen):
    """How validation failures are treated."""

    max_quarantine_fraction: float = Field(
        default=0.05, ge=0, le=1, description="Fail the stage when more rows than this are quarantined."
    )
    min_rows: int = Field(default=500, ge=0, description="Fail when fewer valid rows remain in a validated window: "
                                                        "a retrain's whole window, or one monitor window "
                                                        "(windows.monitor_days), so size that to hold this many.")


class PromotionPolicy(_Frozen):
    """Gates a challenger must pass to replace the champion (all on the out-of-time test window).

    Margins and tolerances are :data:`Tolerance` values, oriented so that positive means
    "better": ``champion_margin`` bounds the lower confidence bound of (challenger - champion),
    sign-flipped for lower-is-better metrics (negative = tolerated regression, i.e.
    non-inferiority; positive = required improvement). Relative values (``"-0.5%"``) are
    fractions of the champion's metric, so one default serves binary and regression models.
    """

    primary_metric: str | None = Field(
        default=None, description="The metric the gates, the monitor and the costs are about, one of the task's "
                                  "metrics (`pipeline/metrics.py`). Default: roc_auc (binary), rmse (regression).")
    metric_floors: dict[str, float] = Field(
        default_factory=dict,
        description="Absolute floors (ceilings for lower-is-better metrics) on the challenger's metrics, in "
                    "the metric's own units.",
    )
    min_lift_over_baseline: Tolerance = Field(
        default="0.5%", description="Lift of the XGBoost candidate over the simpler baseline needed to prefer it "
                                    "when both pass the gates (a tolerance; relative to the baseline's metric).")
    champion_margin: Tolerance = Field(
        default="-0.5%", description="Lower confidence bound of (challenger - champion) must reach this (a "
                                     "tolerance; relative to the champion's metric).")
    confidence: float = Field(default=0.95, gt=0.5, lt=1, description="Confidence level of the bootstrap "
                                                                      "bounds the gates compare.")
    n_bootstrap: int = Field(default=500, ge=50, description="Paired bootstrap replicates on the test window.")
    slice_min_rows: int = Field(default=200, gt=0, description="Smaller slices are reported, not gated.")
    slice_tolerance: Tolerance = Field(
        default="3%", description="Max regression of a slice vs the champion on that slice (a tolerance; "
                                  "relative to the champion's metric on the slice).")
    max_model_mb: float = Field(default=50.0, gt=0, description="Budget gate: largest serialized model, in MB.")
    max_latency_ms_per_1k: float = Field(default=250.0, gt=0, description="Budget gate: slowest median time to "
                                                                          "score 1,000 rows, in milliseconds.")
    allow_stale: bool = Field(default=False, description="Let an older-data candidate replace the champion.")
    lock_lease_seconds: float = Field(
        default=120.0, gt=0, description="How long a champion move may hold its lock; after that the next mover "
                                         "repairs it (a move takes well under a second).")


class DriftPolicy(_Frozen):
    """When the monitor asks for a retrain (see ``pipeline/drift.py`` for the rule).

    Feature drift is decided on effect size (PSI for numerics, Jensen-Shannon distance for
    categoricals), guarded by a Benjamini-Hochberg corrected test at ``fdr_alpha``.
    """

    psi_bins: int = Field(default=10, ge=3, description="Quantile bins of the reference profile per numeric "
                                                        "feature (and of the scores) for PSI.")
    psi_threshold: float = Field(default=0.2, gt=0, description="Numeric feature drifted above this PSI.")
    js_threshold: float = Field(default=0.1, gt=0, description="Categorical drifted above this JS distance.")
    null_rate_delta: float = Field(default=0.1, gt=0, description="Absolute null-rate change that counts as drift.")
    fdr_alpha: float = Field(default=0.01, gt=0, lt=1, description="False discovery rate of the "
                                                                   "Benjamini-Hochberg corrected drift tests.")
    weighted_drift_threshold: float = Field(
        default=0.3, gt=0, le=1, description="Importance-weighted share of drifted features."
    )
    prediction_psi_threshold: float = Field(default=0.1, gt=0, description="The champion's scores drifted "
                                                                           "above this PSI.")
    performance_tolerance: Tolerance = Field(
        default="3%", description="A day is reported degraded when the optimistic bound of its realised (or "
                                  "estimated) metric is worse than the champion's test metric by more than this "
                                  "(a tolerance; relative to the champion's test metric).")
    cusum_k: float = Field(default=0.5, ge=0, description="CUSUM slack, in standard errors per day.")
    cusum_h: float = Field(default=5.0, gt=0, description="CUSUM alarm level, in standard errors.")
    consecutive_windows: int = Field(
        default=2, ge=1, description="Label-free triggers: days in a row the estimate must show the loss.")
    cooldown_days: int = Field(default=3, ge=0, description="Days after a retrain request before another.")
    max_retrains_per_period: int = Field(
        default=4, ge=1, description="Retrains that could have promoted, per budget period (a guard, not the rule).")
    budget_period_days: int = Field(default=30, ge=1, description="The period max_retrains_per_period counts "
                                                                  "over, in days.")
    min_window_rows: int = Field(default=300, ge=1, description="Below this a window is not judged.")
    n_bootstrap: int = Field(default=300, ge=50, description="Bootstrap replicates of the monitor's realised and "
                                                             "estimated metric intervals.")
    history_days: int = Field(default=14, ge=2, le=366, description="Days of each feature's drift history the "
                                                                   "monitor's report shows (today included).")


class CostPolicy(_Frozen):
    """The economics of retraining and promotion (the cost-aware rule; see ``pipeline/retraining.py``).

    Costs are in *normalised metric x days*: for bounded metrics (ROC AUC, PR AUC, F1, Brier, R2)
    one unit is one point of the metric lost for one day (0.01 = a 0.01 ROC AUC drop for one day);
    for unbounded ones (RMSE, MAE, log loss) it is the metric's relative change (0.01 = 1 % worse
    RMSE for one day). So one default serves binary and regression specs.
    """

    horizon_days: int = Field(default=30, ge=1, description="Days ahead the monitor forecasts the champion's "
                                                            "loss and a promotion's gain.")
    retrain: float = Field(default=0.5, gt=0, description="alpha: the cost of one retrain (normalised metric x days).")
    promotion: float = Field(default=0.1, ge=0, description="The cost of replacing the champion on a scheduled or "
                                                            "manual run (normalised metric x days).")


class AdaptationPolicy(_Frozen):
    """How a retrain after a recorded change (a change point) builds its windows and weights."""

    min_post_change_rows: int = Field(
        default=1500, ge=3, description="Labelled rows after the change needed for a sound test; until then the "
                                        "monitor waits instead of spending a retrain.")
    pre_change: Literal["auto", "drop", "age", "importance", "keep"] = Field(
        default="auto", description="Rows before the change in the training window: drop them, down-weight "
                                    "them by age, weight them by a domain classifier's density ratio "
                                    "(covariate shift), keep them, or try each and keep the best on the "
                                    "post-change validation window (auto).")
    age_half_life_days: float = Field(default=7.0, gt=0, description="Half-life of pre-change rows' weight (age).")
    max_importance_weight: float = Field(default=20.0, gt=1, description="Clip of importance weights.")
    catch_up_factor: float = Field(
        default=3.0, gt=1, description="After a change, retrain again when the labelled post-change rows have "
                                       "grown this many times over what the champion was trained on.")


class RuntimePolicy(_Frozen):
    """How runs share a date and how long their records are kept."""

    run_lease_minutes: float = Field(
        default=45.0, gt=0, description="A run holds its model and date this long past its last step; then a "
                                        "run that died stops blocking the date.")
    failed_run_retention_days: int | None = Field(
        default=None, ge=1, description="`python -m pipeline prune` deletes failed and abandoned runs older than "
                                        "this (never a run a registered version points at); null keeps everything.")


class TrainingSpec(_Frozen):
    """Where the candidate is fitted: in the training process, or on a Dask cluster."""

    engine: Literal["local", "dask"] = Field(
        default="local", description="local: XGBoost in the train step's own process (the whole train window in "
                                     "its memory); dask: XGBoost's Dask interface on the cluster of `conn_id`, "
                                     "the train and valid windows read by the workers, partition by partition, "
                                     "so the train window never has to fit in one machine. Same params, early "
                                     "stopping and logged model. A retrain with weighted windows (after a "
                                     "change point) trains locally: see the README.")
    conn_id: str = Field(
        default="dask_default", description="Airflow connection of the Dask scheduler (engine dask): host and port, "
                                            "e.g. `generic://dask-scheduler:8786`; outside Airflow the address "
                                            "comes from DRIFTLINE_DASK_SCHEDULER or `run --dask-scheduler`.")


class ModelSpec(_Frozen):
    """One model: its data, columns, windows, parameters and policies."""

    name: Annotated[str, Field(pattern=_NAME_RE)] = Field(
        description="The model's name: DAG ids `retrain__<name>` and `monitor__<name>`, the artifact folder, "
                    "the CLI's model argument; lower case, digits and _.")
    description: str = Field(default="", description="One line for people: the registered model's description "
                                                     "in MLflow.")
    task: Literal["binary", "regression"] = Field(
        description="binary: a 0/1 target, the model predicts its probability; regression: a numeric target.")
    source: SourceSpec = Field(description="Where the rows come from.")
    timestamp_column: str = Field(description="When a row happened (a timestamp or a parseable string): windows and "
                                              "label delay are measured on it.")
    target_column: str = Field(description="The label: 0/1 for binary, a number for regression; null while it "
                                           "has not arrived yet.")
    id_column: str | None = Field(default=None, description="Unique row key (duplicates are quarantined).")
    numeric_features: tuple[str, ...] = Field(default=(), description="Numeric input columns (read as float).")
    categorical_features: tuple[str, ...] = Field(
        default=(), description="Categorical input columns (read as strings; XGBoost splits on them natively). "
                                "At least one numeric or categorical feature is required.")
    dropped_columns: tuple[str, ...] = Field(
        default=(), description="Source columns deliberately left out, for readers of the spec; no stage reads "
                                "this list: a column that is not a feature, the timestamp, target or id is never "
                                "used by the model anyway.")
    slice_columns: tuple[str, ...] = Field(
        default=(), description="Features (or the timestamp column) whose values define the slices the slice "
                                "gate checks one by one.")
    derived_features: tuple[DerivedFeature, ...] = Field(
        default=(), description="Features computed inside the model pipeline from the raw ones.")
    windows: WindowSpec = Field(default=WindowSpec(), description="Window lengths in days.")
    schedule: str | None = Field(
        default="@daily", description="Airflow schedule of `retrain__<name>`: a cron expression or preset; null "
                                      "runs it only when triggered (by hand or by the monitor).")
    monitor_schedule: str | None = Field(
        default="@daily", description="Airflow schedule of `monitor__<name>`; null runs it only when triggered.")
    expectations_suite: str | None = Field(
        default=None, description="The suite file's name without `.json` (default: the model's name); "
                                  "`python -m pipeline suggest-suite <name>` drafts it.")
    expectations_dir: str | None = Field(
        default=None, description="Folder of the suite file; a relative path is taken from the spec file's folder. "
                                  "Default: the expectations/ folder beside the spec's folder (config/../expectations), "
                                  "else the repository's.")
    start_date: date | None = Field(
        default=None, description="First day the DAGs' schedules cover; `airflow dags test` and backfills take any "
                                  "date from it on (default 2000-01-01: any date of your data).")
    registered_model_name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")] | None = Field(
        default=None, description="MLflow registered model name (default: the spec name); letters, digits, . _ -")
    artifacts_conn_id: str = Field(default="aws_default", description="Airflow connection for s3:// artifacts.")
    label_delay_days: int = Field(
        default=0, ge=0, description="A row's label is usable only this many days after its timestamp, by every "
                                     "stage (training, evaluation and monitoring).")
    params: ModelParams = Field(default=ModelParams(), description="Model hyper-parameters.")
    training: TrainingSpec = Field(default=TrainingSpec(), description="Where the candidate is fitted (this "
                                                                       "process or a Dask cluster).")
    validation: ValidationPolicy = Field(default=ValidationPolicy(), description="How validation failures are "
                                                                                 "treated.")
    promotion: PromotionPolicy = Field(default=PromotionPolicy(), description="The promotion gates.")
    drift: DriftPolicy = Field(default=DriftPolicy(), description="When the monitor asks for a retrain.")
    costs: CostPolicy = Field(default=CostPolicy(), description="The economics of retraining and "
                                                                "promotion.")
    adaptation: AdaptationPolicy = Field(default=AdaptationPolicy(), description="Windows and weights of a "
                                                                                 "retrain after a change.")
    runtime: RuntimePolicy = Field(default=RuntimePolicy(), description="Run leases and retention.")

    @model_validator(mode="before")
    @classmethod
    def _migrate(cls, data: Any) -> Any:
        """Earlier specs kept ``label_delay_days`` under ``drift:`` (it applies to every stage
        now) and had ``drift.min_new_rows`` (replaced by ``adaptation.min_post_change_rows``,
        which counts labelled rows after the change rather than any rows)."""
        if isinstance(data, dict) and isinstance(data.get("drift"), dict) and "min_new_rows" in data["drift"]:
            data = {**data, "drift": {k: v for k, v in data["drift"].items() if k != "min_new_rows"}}
        if isinstance(data, dict) and isinstance(data.get("drift"), dict) and "label_delay_days" in data["drift"]:
            data = dict(data)
            drift = dict(data["drift"])
            delay = drift.pop("label_delay_days")
            if "label_delay_days" in data and data["label_delay_days"] != delay:
                raise ValueError(f"label_delay_days is given twice ({data['label_delay_days']} at the top level, "
                                 f"{delay} under drift:); keep the top-level one")
            data["label_delay_days"] = delay
            data["drift"] = drift
        return data

    @model_validator(mode="after")
    def _check_columns(self) -> "ModelSpec":
        if not self.numeric_features and not self.categorical_features:
            raise ValueError("at least one of numeric_features or categorical_features is required")
        features = list(self.numeric_features) + list(self.categorical_features)
        dupes = sorted({c for c in features if features.count(c) > 1})
        if dupes:
            raise ValueError(f"columns listed twice among features: {dupes}")
        reserved = {self.timestamp_column, self.target_column} | ({self.id_column} if self.id_column else set())
        clash = sorted(reserved & set(features))
        if clash:
            raise ValueError(f"timestamp/target/id columns cannot also be features: {clash}")
        known = set(features) | {self.timestamp_column}
        for d in self.derived_features:
            unknown = [c for c in d.inputs() if c not in known]
            if unknown:
                raise ValueError(f"derived feature {d.name!r} uses unknown columns {unknown}")
        for s in self.slice_columns:
            if s not in known:
                raise ValueError(f"slice column {s!r} is not a feature or the timestamp column")
        metric = self.primary_metric
        allowed = BINARY_METRICS if self.task == "binary" else REGRESSION_METRICS
        if metric not in allowed:
            raise ValueError(f"promotion.primary_metric {metric!r} is not a {self.task} metric; allowed: {sorted(allowed)}")
        bad_floors = sorted(set(self.promotion.metric_floors) - set(allowed))
        if bad_floors:
            raise ValueError(f"promotion.metric_floors names unknown metrics {bad_floors}; allowed: {sorted(allowed)}")
        if not metrics.get(metric).bounded:
            for where, value in self.tolerances().items():
                if tolerance_unit(value) == "absolute" and float(value) != 0.0:
                    raise ValueError(
                        f"{where} is {float(value):g}, a plain number, but {metric} is in the target's units, so "
                        f"it would mean {float(value):g} {metric} units whatever the scale of the target. Write it "
                        f"relative to the reference value, e.g. '{float(value) * 100:g}%' if {float(value):g} was "
                        f"meant as a fraction, or in standard errors, e.g. '1se'")
        return self

    def tolerances(self) -> dict[str, str]:
        """Every tolerance of the spec by its dotted field name."""
        p, d = self.promotion, self.drift
        return {"promotion.min_lift_over_baseline": p.min_lift_over_baseline,
                "promotion.champion_margin": p.champion_margin, "promotion.slice_tolerance": p.slice_tolerance,
                "drift.performance_tolerance": d.performance_tolerance}

    @property
    def primary_metric(self) -> str:
        return self.promotion.primary_metric or metrics.default_primary(self.task)

    @property
    def features(self) -> tuple[str, ...]:
        """Raw input columns of the model (derived features are computed from these)."""
        return self.numeric_features + self.categorical_features

    @property
    def model_columns(self) -> tuple[str, ...]:
        """Columns a scoring request must carry: features plus the timestamp when a derived
        feature reads it."""
        needs_ts = any(self.timestamp_column in d.inputs() for d in self.derived_features)
        return self.features + ((self.timestamp_column,) if needs_ts else ())

    @property
    def required_columns(self) -> tuple[str, ...]:
        ids = (self.id_column,) if self.id_column else ()
        return (self.timestamp_column, self.target_column) + ids + self.features

    @property
    def registry_name(self) -> str:
        return self.registered_model_name or self.name

    @property
    def suite_name(self) -> str:
        return self.expectations_suite or self.name


#: Metric names of each task and whether higher is better (from :data:`pipeline.metrics.METRICS`).
BINARY_METRICS: dict[str, bool] = {n: m.higher_is_better for n, m in metrics.for_task("binary").items()}
REGRESSION_METRICS: dict[str, bool] = {n: m.higher_is_better for n, m in metrics.for_task("regression").items()}
higher_is_better = metrics.higher_is_better


def _expand(value: Any, variables: Mapping[str, str], path: Path, where: str) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name in variables:
                return variables[name]
            if name in os.environ:
                return os.environ[name]
            raise SpecError(f"{path}: {where} references ${{{name}}}, which is not set")
        return _VAR_RE.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, variables, path, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, variables, path, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid model spec ({err.error_count()} problem(s)):"]
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "literal_error":
            msg = f"{msg}; got {e.get('input')!r}"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (check spelling)"
        lines.append(f"  - {field}: {msg}")
    return "\n".join(lines)


def parse_spec(data: Mapping[str, Any], *, path: Path | str = "<spec>", settings: Settings | None = None) -> ModelSpec:
    """Validate a spec mapping (``${VAR}`` references expanded from settings, then environment)."""
    path = Path(path)
    settings = settings or Settings.from_env()
    expanded = _expand(dict(data), settings.variables(), path, "")
    try:
        spec = ModelSpec.model_validate(expanded)
    except ValidationError as err:
        raise SpecError(_format_errors(path, err)) from None
    if path.is_file():
        return spec.model_copy(update={"expectations_dir": _suites_beside(path, spec.expectations_dir)})
    return spec


def _suites_beside(spec_file: Path, given: str | None) -> str | None:
    """Where a spec loaded from ``spec_file`` finds its suite: ``given`` (relative to the spec's
    folder), else ``<spec folder>/../expectations`` when it exists, else ``None`` (the
    repository's ``expectations/``)."""
    folder = spec_file.resolve().parent
    if given:
        return str((folder / given).resolve()) if not Path(given).is_absolute() else given
    beside = folder.parent / "expectations"
    return str(beside) if beside.is_dir() else None


def load_spec(path: str | Path, settings: Settings | None = None) -> ModelSpec:
    """Load and validate one model spec YAML.

    Args:
        path: the YAML file.
        settings: runtime settings for ``${VAR}`` expansion (default: from the environment).

    Returns:
        The frozen :class:`ModelSpec`.

    Raises:
        SpecError: the file is missing, not YAML, not a mapping, or fails validation; the message
            names the file, each bad field and the allowed values.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError(f"{path}: cannot read model spec ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a model spec must be a YAML mapping, got {type(data).__name__}")
    return parse_spec(data, path=path, settings=settings)


def spec_paths(config_dir: str | Path) -> list[Path]:
    """The spec files of a config directory, sorted (``*.yaml`` and ``*.yml``)."""
    d = Path(config_dir)
    return sorted([*d.glob("*.yaml"), *d.glob("*.yml")])


def load_specs(config_dir: str | Path, settings: Settings | None = None) -> list[ModelSpec]:
    """Every spec in ``config_dir``; raises :class:`SpecError` on the first invalid one or on a
    duplicated model name."""
    specs = [load_spec(p, settings) for p in spec_paths(config_dir)]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{config_dir}: model names used by more than one spec: {dupes}")
    return specs


def find_spec(name: str, settings: Settings | None = None) -> ModelSpec:
    """The spec whose ``name`` is ``name`` in the configured directory.

    Another model's broken spec does not stop this one from loading. A name that matches no
    spec raises :class:`SpecError` listing the known models (the closest first) and any spec
    file that could not be read, with its error."""
    import difflib

    settings = settings or Settings.from_env()
    known: list[str] = []
    broken: list[str] = []
    found: list[tuple[Path, ModelSpec]] = []
    for path in spec_paths(settings.config_dir):
        try:
            spec = load_spec(path, settings)
        except SpecError as err:
            if path.stem == name:  # the requested model's own spec is broken: say why
                raise
            broken.append(f"{path.name}: {err}")
            continue
        if spec.name == name:
            found.append((path, spec))
        known.append(spec.name)
    if len(found) > 1:
        raise SpecError(f"{settings.config_dir}: model {name!r} is defined by more than one spec: "
                        f"{', '.join(p.name for p, _ in found)}")
    if found:
        return found[0][1]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(sorted(known)) or "none"
    unreadable = f". Unreadable specs: {'; '.join(broken)}" if broken else ""
    raise SpecError(f"no model named {name!r} in {settings.config_dir}{hint}. Known models: {listed}{unreadable}")
