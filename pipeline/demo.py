"""Deterministic synthetic demo data: drift streams, two tasks, late labels and bad data.

Contract:
* ``generate_day(day, options)`` is a pure function of ``(day, options)`` (seed, rows per day,
  task, drift kind and its knobs, bad-data injection): the same arguments give the same rows,
  so a backfill over a date reproduces it exactly.
* ``generate(...)`` writes hive partitions ``<out>/<model>/ds=YYYY-MM-DD/part-0.parquet``
  (local path or ``s3://``) and optionally appends the same rows to a Postgres table; with
  ``as_of`` the rows look as the lake would on that day (recent targets not labelled yet).
* ``generate_stream(kind, ...)`` returns one in-memory frame per day for benchmarks;
  :data:`STREAMS` lists every (task, drift kind) pair with whether its drift harms a model
  trained before it.

The data (one row per loan application, timestamp ``event_time`` in UTC within its day):
12 numeric features with realistic skew (log-normal income, clipped scores), 3 % missing
``months_employed`` and 2 % missing ``credit_utilization``, 0.5 % income outliers; 5 categorical
features. The target depends on the task (:data:`TASKS`):

* ``binary`` (model ``credit_default``): ``defaulted`` (about 15 % positives) drawn from a
  logistic, non-linear risk function, so the XGBoost candidate beats a logistic baseline.
* ``regression`` (model ``claim_cost``): ``claim_cost``, a right-skewed amount (median about
  2,300, mostly 1,000-5,000) from a smooth non-linear function of the same applicants' features
  times log-normal noise (sd about 20 %); a decent model's RMSE is about 500.

Drift (:data:`DRIFT_KINDS`; from ``drift_day`` on, inclusive):

* ``none``: stable.
* ``covariate``: the applicant mix moves -- income down 25 %, credit scores down 45 points,
  utilisation and inquiries up, and a new ``partner_api`` channel takes 30 % of applications
  (a category the reference never saw: riskier and costlier, and for its default risk
  inquiries matter more and the bureau score less). The target given the features is the same
  function before and after, yet a model trained before the change cannot know the new
  channel: harmful.
* ``covariate_harmless``: the mix moves inside the region the reference covered -- applicants
  8 years older, 3 more open accounts on average, a different regional mix (the same
  applicants, moved). Same target function, and a model trained before the change is as good
  as one trained after.
* ``concept``: the features keep their distributions but the target function changes (binary:
  utilisation and late payments matter much more, credit score less; regression: utilisation,
  late payments and region drive the cost, loan size and score less).
* ``concept_gradual``: the target function moves linearly from the old to the new concept:
  on day ``drift_day + k`` the new concept's weight is ``min(1, (k + 1) / transition_days)``
  (binary: the log-odds are mixed; regression: the expected cost).
* ``recurring``: the new concept for ``period_days`` days, the old one for ``period_days``
  days, and so on (a seasonal concept).

Measured on 100 days x 2,000 rows with drift on day 60 (XGBoost trained on days 18-52 vs on
days 60-80, both scored on days 81-99): the harmful kinds cost the old model 0.03-0.07 ROC AUC
or 13-41 % RMSE against the retrained one; ``covariate_harmless`` flags age, num_open_accounts
and region (PSI 0.42 and 1.10, JS distance 0.28) while the old model stays within 0.002 AUC /
0.5 % RMSE of the retrained one.

Late labels: with ``DemoOptions.label_delay_days`` and ``generate(..., as_of=day)``, rows whose
``event_time`` is on or after ``as_of - label_delay_days`` (midnight UTC) have a null target
(:func:`mask_unlabelled`).

Bad data (on ``bad_day`` only): ``nulls`` (30 % of credit_score and 10 % of the target null),
``schema`` (credit_score dropped, income renamed annual_income), ``range`` (20 % of ages
negative or over 150, scores 9999), ``duplicates`` (20 % of rows repeat an application_id).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.errors import DriftlineError
from pipeline.storage import Store, join

Task = Literal["binary", "regression"]
DriftKind = Literal["none", "covariate", "covariate_harmless", "concept", "concept_gradual", "recurring"]
BadKind = Literal["nulls", "schema", "range", "duplicates"]
BAD_KINDS: tuple[str, ...] = ("nulls", "schema", "range", "duplicates")

Mix = tuple[tuple[str, ...], tuple[float, ...]]
HOME_OWNERSHIP: Mix = (("RENT", "MORTGAGE", "OWN", "OTHER"), (0.42, 0.38, 0.17, 0.03))
LOAN_PURPOSE: Mix = (("debt_consolidation", "credit_card", "home_improvement", "car", "medical", "small_business",
                      "other"), (0.38, 0.22, 0.1, 0.1, 0.06, 0.05, 0.09))
EMPLOYMENT: Mix = (("salaried", "self_employed", "contract", "unemployed", "retired"), (0.62, 0.14, 0.12, 0.05, 0.07))
REGION: Mix = (("north", "south", "east", "west", "central"), (0.22, 0.24, 0.18, 0.2, 0.16))
REGION_DRIFTED: Mix = (("north", "south", "east", "west", "central"), (0.1, 0.12, 0.4, 0.12, 0.26))
CHANNEL: Mix = (("online", "branch", "broker"), (0.55, 0.3, 0.15))
CHANNEL_DRIFTED: Mix = (("online", "branch", "broker", "partner_api"), (0.4, 0.18, 0.12, 0.3))
TIMESTAMP_COLUMN = "event_time"


class DemoOptionsError(DriftlineError, ValueError):
    """Demo options or arguments that cannot generate data (unknown kind, bad knob, no output)."""


# --------------------------------------------------------------------------- covariate shifts


@dataclass(frozen=True)
class CovariateShift:
    """How the applicant mix moves while a drift is active; the defaults move nothing.

    Numeric moves are applied to the draws of the stable mix and each categorical mix replaces
    the stable one, drawn from the same uniforms. Extra counts (``extra_open_accounts``) come
    from a separate generator, so every later draw of the day is unchanged: the same applicants
    move. ``extra_inquiries`` predates that rule and draws from the day's generator.
    """

    income_factor: float = 1.0
    score_delta: float = 0.0
    utilization_delta: float = 0.0
    extra_inquiries: float = 0.0
    age_delta: float = 0.0
    extra_open_accounts: float = 0.0
    region: Mix = REGION
    channel: Mix = CHANNEL


STABLE_MIX = CovariateShift()
#: Into a region the reference never covered: the new channel carries its own risk and cost.
HARMFUL_SHIFT = CovariateShift(income_factor=0.75, score_delta=-45.0, utilization_delta=0.08, extra_inquiries=0.7,
                               channel=CHANNEL_DRIFTED)
#: Inside the region the reference covered: older applicants, more accounts, another regional mix.
HARMLESS_SHIFT = CovariateShift(age_delta=8.0, extra_open_accounts=3.0, region=REGION_DRIFTED)


# --------------------------------------------------------------------------- drift kinds


def _old_concept(days_since_drift: int, options: DemoOptions) -> float:
    return 0.0


def _new_concept(days_since_drift: int, options: DemoOptions) -> float:
    return 1.0


def _ramp(days_since_drift: int, options: DemoOptions) -> float:
    return min(1.0, (days_since_drift + 1) / options.transition_days)


def _alternating(days_since_drift: int, options: DemoOptions) -> float:
    return 1.0 if (days_since_drift // options.period_days) % 2 == 0 else 0.0


@dataclass(frozen=True)
class DriftKindSpec:
    """One drift kind: what moves from ``drift_day`` on.

    Attributes:
        description: one line for reports and ``--help``.
        harmful: whether a model trained before ``drift_day`` does clearly worse after it than
            a model retrained on post-change data (measured; see the module docstring).
        shift: the applicant mix while drifted.
        concept: weight of the new target function on day ``drift_day + k`` (``k >= 0``),
            in ``[0, 1]``; 0 is the old concept.
    """

    description: str
    harmful: bool
    shift: CovariateShift = STABLE_MIX
    concept: Callable[[int, DemoOptions], float] = _old_concept


DRIFT_KINDS: Mapping[str, DriftKindSpec] = MappingProxyType({
    "none": DriftKindSpec("stable, nothing moves", harmful=False),
    "covariate": DriftKindSpec("applicant mix moves into a new region (new partner_api channel)", harmful=True,
                               shift=HARMFUL_SHIFT),
    "covariate_harmless": DriftKindSpec("applicant mix moves inside the reference's region", harmful=False,
                                        shift=HARMLESS_SHIFT),
    "concept": DriftKindSpec("target function changes abruptly, features unchanged", harmful=True,
                             concept=_new_concept),
    "concept_gradual": DriftKindSpec("target function moves linearly to the new one over transition_days",
                                     harmful=True, concept=_ramp),
    "recurring": DriftKindSpec("new and old target functions alternate every period_days", harmful=True,
                               concept=_alternating),
})


# --------------------------------------------------------------------------- targets


def _lerp(old: float, new: float, weight: float) -> float:
    """Exact at the ends, so the abrupt kinds reproduce their rows bit for bit."""
    if weight == 0.0:
        return old
    if weight == 1.0:
        return new
    return old + (new - old) * weight


#: (old, new) weight of each term of the default log-odds that the concept change moves.
RISK_CONCEPT: Mapping[str, tuple[float, float]] = MappingProxyType(
    {"score": (1.0, 0.1), "utilization": (1.0, 3.5), "late": (1.0, 2.6)})


def _risk_logit(df: pd.DataFrame, concept_weight: float) -> np.ndarray:
    """Log-odds of default; non-linear in score and utilisation, with interactions.

    The log-odds are linear in the concept coefficients, so mixing the coefficients mixes the
    old and new log-odds with the same weight.
    """
    score = df["credit_score"].to_numpy(float)
    util = df["credit_utilization"].fillna(0.45).to_numpy(float)
    dti = df["debt_to_income"].to_numpy(float)
    late = df["num_late_payments_12m"].to_numpy(float)
    inq = df["num_inquiries_6m"].to_numpy(float)
    lti = df["loan_amount"].to_numpy(float) / np.maximum(df["income"].to_numpy(float), 1.0)
    rate = df["interest_rate"].to_numpy(float)
    employed = df["months_employed"].fillna(0).to_numpy(float)
    z = -3.3 * np.ones(len(df))
    score_w = _lerp(*RISK_CONCEPT["score"], concept_weight)
    z += score_w * (-0.018 * (score - 680) + 0.00004 * np.square(np.minimum(score - 680, 0)))
    util_w = _lerp(*RISK_CONCEPT["utilization"], concept_weight)
    z += util_w * 5.0 * np.maximum(util - 0.7, 0) + 0.4 * util
    z += 1.6 * np.maximum(dti - 0.43, 0) * 4
    late_w = _lerp(*RISK_CONCEPT["late"], concept_weight)
    z += late_w * 0.45 * np.minimum(late, 6)
    z += 0.12 * inq + 1.1 * np.minimum(lti, 2.0) + 0.06 * (rate - 12)
    z += -0.25 * (employed > 24) + 1.1 * (lti > 0.5) * (score < 650)
    age = df["age"].to_numpy(float)
    z += 0.9 * (age < 25) + 0.6 * (age > 70)
    emp = df["employment_type"].to_numpy(object)
    z += np.where(emp == "unemployed", 0.9, 0.0) + np.where(emp == "self_employed", 0.25, 0.0)
    purpose = df["loan_purpose"].to_numpy(object)
    z += np.where(purpose == "small_business", 0.5, 0.0) + np.where(purpose == "medical", 0.2, 0.0)
    channel = df["channel"].to_numpy(object)
    # Aggregator applicants (only under covariate drift): riskier, shopping around (inquiries)
    # matters more and the bureau score less, so a model that never saw the channel misranks them.
    partner = channel == "partner_api"
    z += np.where(channel == "broker", 0.3, 0.0)
    z += np.where(partner, 1.0 + 0.5 * inq + 0.012 * (score - 680), 0.0)
    z += np.where(df["home_ownership"].to_numpy(object) == "OWN", -0.3, 0.0)
    return z


def _default_probability(df: pd.DataFrame, concept_weight: float) -> np.ndarray:
    return 1 / (1 + np.exp(-_risk_logit(df, concept_weight)))


def _sample_default(probability: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(len(probability)) < probability).astype("int64")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


CLAIM_NOISE_SD = 0.2


#: (old, new) coefficient, in cost units, of each claim-cost term that the concept change moves.
CLAIM_CONCEPT: Mapping[str, tuple[float, float]] = MappingProxyType({
    "loan_size": (1000.0, 450.0), "low_score": (1200.0, 350.0), "utilization": (600.0, 2200.0),
    "late": (150.0, 380.0), "east": (0.0, 450.0), "north": (0.0, -250.0)})


def _claim_mean(df: pd.DataFrame, concept_weight: float) -> np.ndarray:
    """Expected claim cost: smooth and non-linear in the features (saturating loan size, a soft
    low-score step, convex utilisation), with categorical offsets; the new concept shifts weight
    from loan size and score to utilisation, late payments and region."""
    coef = {term: _lerp(old, new, concept_weight) for term, (old, new) in CLAIM_CONCEPT.items()}
    score = df["credit_score"].to_numpy(float)
    util = df["credit_utilization"].fillna(0.45).to_numpy(float)
    late = np.minimum(df["num_late_payments_12m"].to_numpy(float), 6)
    loan = df["loan_amount"].to_numpy(float)
    dti = df["debt_to_income"].to_numpy(float)
    term = df["loan_term_months"].to_numpy(float)
    age = df["age"].to_numpy(float)
    m = 1500.0 + coef["loan_size"] * np.tanh(np.log(loan / 14_000))
    m += coef["low_score"] * _sigmoid((640 - score) / 40) + coef["utilization"] * np.square(util)
    m += coef["late"] * late
    m += 500.0 * _sigmoid((dti - 0.45) * 10) + 8.0 * (term - 36) + 300.0 * _sigmoid((28 - age) / 3)
    purpose = df["loan_purpose"].to_numpy(object)
    m += np.where(purpose == "small_business", 450.0, 0.0) + np.where(purpose == "medical", 300.0, 0.0)
    m += np.where(purpose == "car", -150.0, 0.0)
    m += np.where(df["employment_type"].to_numpy(object) == "unemployed", 400.0, 0.0)
    channel = df["channel"].to_numpy(object)
    m += np.where(channel == "broker", 150.0, 0.0) + np.where(channel == "partner_api", 900.0, 0.0)
    m += np.where(df["home_ownership"].to_numpy(object) == "OWN", -150.0, 0.0)
    region = df["region"].to_numpy(object)
    m += coef["east"] * (region == "east") + coef["north"] * (region == "north")
    return m


def _sample_claim_cost(mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Log-normal noise with mean 1, so ``mean`` stays the expected cost."""
    noise = np.exp(CLAIM_NOISE_SD * rng.standard_normal(len(mean)) - CLAIM_NOISE_SD ** 2 / 2)
    return (mean * noise).round(2)


@dataclass(frozen=True)
class TaskSpec:
    """One demo task: its default model name, target column and how the target is drawn.

    ``expected(features, concept_weight)`` is the target's expectation given the features
    (binary: ``P(default)``; regression: the mean cost), a smooth function of the features whose
    old and new concepts are mixed by ``concept_weight``; ``sample(expected, rng)`` draws the
    target around it.
    """

    model: str
    target_column: str
    description: str
    expected: Callable[[pd.DataFrame, float], np.ndarray]
    sample: Callable[[np.ndarray, np.random.Generator], np.ndarray]


TASKS: Mapping[str, TaskSpec] = MappingProxyType({
    "binary": TaskSpec("credit_default", "defaulted", "probability of default", _default_probability,
                       _sample_default),
    "regression": TaskSpec("claim_cost", "claim_cost", "cost of a claim (about 1,000-5,000 units)", _claim_mean,
                           _sample_claim_cost),
})


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class DemoOptions:
    """What to generate and inject. Days are dates; ``None`` = never.

    Attributes:
        rows_per_day, seed: size and randomness of each day.
        task: a key of :data:`TASKS` (decides the target column).
        drift_day, drift_kind: a key of :data:`DRIFT_KINDS`, active from ``drift_day`` on
            (the default kind stays ``covariate`` for earlier callers).
        transition_days: length of the ``concept_gradual`` ramp (>= 1).
        period_days: length of each ``recurring`` phase (>= 1).
        label_delay_days: labels arrive this many days after the event (used with ``as_of``).
        bad_day, bad_kind: bad data injected on ``bad_day`` only.

    Raises:
        DemoOptionsError: an unknown task or drift kind, or a knob out of range.
    """

    rows_per_day: int = 2000
    seed: int = 42
    drift_day: date | None = None
    drift_kind: DriftKind = "covariate"
    bad_day: date | None = None
    bad_kind: BadKind = "nulls"
    task: Task = "binary"
    transition_days: int = 14
    period_days: int = 14
    label_delay_days: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DemoOptionsError(f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}")
        if self.drift_kind not in DRIFT_KINDS:
            raise DemoOptionsError(f"unknown drift kind {self.drift_kind!r}; allowed: {', '.join(DRIFT_KINDS)}")
        for knob, low in (("transition_days", 1), ("period_days", 1), ("label_delay_days", 0)):
            if getattr(self, knob) < low:
                raise DemoOptionsError(f"{knob} must be >= {low}, got {getattr(self, knob)}")


def _days_since_drift(day: date, options: DemoOptions) -> int | None:
    if options.drift_day is None or day < options.drift_day:
        return None
    return (day - options.drift_day).days


def concept_weight(day: date, options: DemoOptions) -> float:
    """Weight of the new target function on ``day``: 0 = old concept, 1 = new, in between a mix."""
    k = _days_since_drift(day, options)
    return 0.0 if k is None else DRIFT_KINDS[options.drift_kind].concept(k, options)


def expected_target(frame: pd.DataFrame, day: date, options: DemoOptions) -> np.ndarray:
    """The target's expectation on ``day`` given the features of ``frame`` (the Bayes-optimal
    prediction: ``P(default)`` or the mean claim cost), for oracle baselines in benchmarks."""
    return TASKS[options.task].expected(frame, concept_weight(day, options))


def covariate_shift(day: date, options: DemoOptions) -> CovariateShift:
    """The applicant mix on ``day`` (:data:`STABLE_MIX` before the drift or without one)."""
    k = _days_since_drift(day, options)
    return STABLE_MIX if k is None else DRIFT_KINDS[options.drift_kind].shift


# --------------------------------------------------------------------------- generation


def _rng(seed: int, day: date, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{day.isoformat()}|{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _choice(rng: np.random.Generator, spec: Mix, n: int) -> np.ndarray:
    cats, probs = spec
    p = np.asarray(probs) / np.sum(probs)
    return rng.choice(np.asarray(cats, dtype=object), size=n, p=p)


def generate_day(day: date, options: DemoOptions = DemoOptions(), model: str | None = None) -> pd.DataFrame:
    """Rows for one day (deterministic in ``(day, options)``).

    Args:
        day: the day; ``event_time`` falls within it.
        options: task, drift, bad data and size.
        model: only prefixes ``application_id`` (default: the task's model name).

    Returns:
        A frame with ``application_id``, ``event_time`` (UTC, sorted), the features and the
        task's target column; drift and bad data injected as ``options`` says.
    """
    task = TASKS[options.task]
    model = model or task.model
    rng = _rng(options.seed, day)
    n = options.rows_per_day
    shift = covariate_shift(day, options)

    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    hour_w = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 4, 3, 2, 1], float)
    hours = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    seconds = np.sort(hours * 3600 + rng.integers(0, 3600, size=n))
    event_time = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")

    age = np.clip(rng.normal(41 + shift.age_delta, 12, n), 18, 85).round()
    income = np.exp(rng.normal(np.log(52_000), 0.55, n))
    outlier = rng.random(n) < 0.005
    income = np.where(outlier, income * rng.uniform(8, 25, n), income)
    score = np.clip(rng.normal(685, 70, n), 300, 850).round()
    util = np.clip(rng.beta(2.2, 3.0, n), 0, 1)
    inquiries = rng.poisson(1.1, n).astype(float)
    income *= shift.income_factor
    score = np.clip(score + shift.score_delta, 300, 850)
    util = np.clip(util + shift.utilization_delta, 0, 1)
    if shift.extra_inquiries:
        inquiries = inquiries + rng.poisson(shift.extra_inquiries, n)
    loan_amount = np.clip(np.exp(rng.normal(np.log(14_000), 0.6, n)), 1_000, 100_000).round(-2)
    term = rng.choice([12, 24, 36, 48, 60], size=n, p=[0.08, 0.17, 0.4, 0.15, 0.2]).astype(float)
    rate = np.clip(8 + (720 - score) * 0.035 + rng.normal(0, 1.8, n), 3.5, 35).round(2)
    dti = np.clip(rng.gamma(4.0, 0.07, n) + loan_amount / income * 0.15, 0, 1.5).round(4)
    months_employed = np.clip(rng.exponential(60, n), 0, 480).round()
    open_accounts = rng.poisson(6, n).astype(float)
    if shift.extra_open_accounts:
        open_accounts += _rng(options.seed, day, "shift").poisson(shift.extra_open_accounts, n)
    late = rng.poisson(np.where(score < 620, 1.2, 0.25)).astype(float)

    df = pd.DataFrame({
        "application_id": [f"{model[:2].upper()}{day:%Y%m%d}{i:06d}" for i in range(n)],
        TIMESTAMP_COLUMN: event_time,
        "age": age, "income": income.round(2), "loan_amount": loan_amount, "loan_term_months": term,
        "interest_rate": rate, "credit_score": score, "debt_to_income": dti,
        "credit_utilization": util.round(4), "months_employed": months_employed,
        "num_open_accounts": open_accounts, "num_late_payments_12m": late,
        "num_inquiries_6m": inquiries.astype(float),
        "home_ownership": _choice(rng, HOME_OWNERSHIP, n),
        "loan_purpose": _choice(rng, LOAN_PURPOSE, n),
        "employment_type": _choice(rng, EMPLOYMENT, n),
        "region": _choice(rng, shift.region, n),
        "channel": _choice(rng, shift.channel, n),
    })
    df.loc[rng.random(n) < 0.03, "months_employed"] = np.nan
    df.loc[rng.random(n) < 0.02, "credit_utilization"] = np.nan
    df[task.target_column] = task.sample(task.expected(df, concept_weight(day, options)), rng)
    for col in ("home_ownership", "loan_purpose", "employment_type", "region", "channel"):
        df[col] = df[col].astype(str)

    if options.bad_day is not None and day == options.bad_day:
        df = _inject_bad(df, options.bad_kind, _rng(options.seed, day, "bad"), task.target_column)
    return df


def _with_null_target(df: pd.DataFrame, target_column: str, rows: np.ndarray) -> pd.DataFrame:
    """``df`` with ``target_column`` null on ``rows``; integer/boolean targets become nullable Int64."""
    target = df[target_column]
    if pd.api.types.is_float_dtype(target):
        target = target.where(~rows, np.nan)
    else:
        target = target.astype("Int64").mask(rows, pd.NA)
    return df.assign(**{target_column: target})


def _inject_bad(df: pd.DataFrame, kind: str, rng: np.random.Generator, target_column: str) -> pd.DataFrame:
    n = len(df)
    df = df.copy()
    if kind == "nulls":
        df.loc[rng.random(n) < 0.3, "credit_score"] = np.nan
        df = _with_null_target(df, target_column, rng.random(n) < 0.1)
    elif kind == "schema":
        df = df.drop(columns=["credit_score"]).rename(columns={"income": "annual_income"})
    elif kind == "range":
        bad = rng.random(n) < 0.2
        df.loc[bad, "age"] = rng.choice([-5.0, 170.0], size=int(bad.sum()))
        df.loc[bad, "credit_score"] = 9999.0
    elif kind == "duplicates":
        dup = rng.random(n) < 0.2
        src = rng.integers(0, n, size=int(dup.sum()))
        df.loc[dup, "application_id"] = df["application_id"].to_numpy()[src]
    else:
        raise DemoOptionsError(f"unknown bad kind {kind!r}; allowed: {', '.join(BAD_KINDS)}")
    return df


def mask_unlabelled(frame: pd.DataFrame, as_of: date | datetime, label_delay_days: int, timestamp_column: str,
                    target_column: str) -> pd.DataFrame:
    """A copy of ``frame`` as it looks on ``as_of`` when labels arrive ``label_delay_days`` late.

    Args:
        frame: rows with a timestamp and a target column.
        as_of: the day the data is looked at (a ``date`` means its midnight UTC; a naive
            ``datetime`` is read as UTC).
        label_delay_days: days between an event and its label (>= 0).
        timestamp_column, target_column: the columns to read and to null.

    Returns:
        A copy whose target is null on every row with ``timestamp >= as_of - label_delay_days``;
        a float target gets NaN, any other target becomes nullable ``Int64`` with ``<NA>``
        (also when no row is masked, so every day of a lake has the same dtype).

    Raises:
        DemoOptionsError: a negative delay, or a column missing from ``frame``.
    """
    if label_delay_days < 0:
        raise DemoOptionsError(f"label_delay_days must be >= 0, got {label_delay_days}")
    missing = [c for c in (timestamp_column, target_column) if c not in frame.columns]
    if missing:
        raise DemoOptionsError(f"cannot mask labels: columns {missing} not in the frame")
    if isinstance(as_of, datetime):
        cutoff = pd.Timestamp(as_of)
        cutoff = cutoff.tz_convert("UTC") if cutoff.tzinfo else cutoff.tz_localize("UTC")
    else:
        cutoff = pd.Timestamp(datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc))
    cutoff -= pd.Timedelta(days=label_delay_days)
    stamps = pd.to_datetime(frame[timestamp_column], utc=True)
    return _with_null_target(frame, target_column, (stamps >= cutoff).to_numpy(dtype=bool, na_value=False))


# --------------------------------------------------------------------------- streams


def generate_stream(kind: str, start: date, days: int, *, rows_per_day: int = 2000,
                    drift_day: date | int | None = None, task: str = "binary", seed: int = 42,
                    as_of: date | None = None, model: str | None = None, **knobs: Any) -> list[pd.DataFrame]:
    """One in-memory frame per day of a drift stream (what :func:`generate` would write).

    Args:
        kind: a key of :data:`DRIFT_KINDS`.
        start, days: the first day and the number of days.
        rows_per_day, seed, task: as in :class:`DemoOptions`.
        drift_day: the first drifted day, as a date or as a day offset from ``start``.
        as_of: mask the targets the lake would not have on that day (``label_delay_days``).
        model: prefixes ``application_id`` (default: the task's model name).
        knobs: other :class:`DemoOptions` fields (``transition_days``, ``period_days``,
            ``label_delay_days``, ``bad_day``, ``bad_kind``).

    Returns:
        ``days`` frames, day ``start + i`` at index ``i``.

    Raises:
        DemoOptionsError: an unknown kind, task or knob.
    """
    if isinstance(drift_day, (int, np.integer)) and not isinstance(drift_day, bool):
        drift_day = start + timedelta(days=int(drift_day))
    try:
        options = DemoOptions(rows_per_day=rows_per_day, seed=seed, drift_day=drift_day,
                              drift_kind=kind, task=task, **knobs)  # type: ignore[arg-type]
    except TypeError as err:
        raise DemoOptionsError(f"generate_stream: {err}") from None
    frames = [generate_day(start + timedelta(days=i), options, model) for i in range(days)]
    if as_of is not None:
        target = TASKS[task].target_column
        frames = [mask_unlabelled(f, as_of, options.label_delay_days, TIMESTAMP_COLUMN, target) for f in frames]
    return frames


@dataclass(frozen=True)
class Stream:
    """One benchmark stream: a task with a drift kind.

    ``name`` is a valid model name (``<task model>_<kind>``, e.g. ``claim_cost_recurring``);
    ``harmful`` says whether a model trained before the drift should be retrained.
    """

    name: str
    task: str
    kind: str
    harmful: bool

    @property
    def target_column(self) -> str:
        return TASKS[self.task].target_column

    def generate(self, start: date, days: int, **kwargs: Any) -> list[pd.DataFrame]:
        """:func:`generate_stream` for this stream (``kwargs`` as there)."""
        return generate_stream(self.kind, start, days, task=self.task, **kwargs)


STREAMS: tuple[Stream, ...] = tuple(
    Stream(f"{task.model}_{kind}", task_name, kind, spec.harmful)
    for task_name, task in TASKS.items() for kind, spec in DRIFT_KINDS.items()
)


# --------------------------------------------------------------------------- lake / Postgres


def partition_uri(out: str, model: str, day: date, fmt: str = "parquet") -> str:
    return join(out, model, f"ds={day:%Y-%m-%d}", f"part-0.{fmt}")


def generate(out: str | None, start: date, days: int, options: DemoOptions = DemoOptions(), *,
             model: str | None = None, fmt: str = "parquet", store: Store | None = None,
             pg_uri: str | None = None, pg_table: str | None = None, progress: bool = False,
             as_of: date | None = None) -> dict[str, Any]:
    """Write ``days`` daily partitions from ``start`` (and/or load them into Postgres).

    Args:
        out: lake root (local path or ``s3://``); partitions go to ``<out>/<model>/ds=.../``.
            ``None`` writes no lake (Postgres only).
        start: first day.
        days: number of days.
        options: task, rows per day, seed, drift, label delay and bad-data injection.
        model: the model name (the lake sub-folder; default: the task's model name).
        fmt: ``parquet`` or ``csv``.
        store: storage for ``out`` (default: from its scheme).
        pg_uri, pg_table: also append the rows to this Postgres table (created if absent).
        progress: show a progress bar.
        as_of: write the data as it looks on this day: targets of rows on or after
            ``as_of - options.label_delay_days`` are null (see :func:`mask_unlabelled`).

    Returns:
        A summary: days, rows, files written, task, the drift/bad days and unlabelled rows.

    Raises:
        DemoOptionsError: an unknown format, no output, or Postgres without a table.
    """
    if fmt not in ("parquet", "csv"):
        raise DemoOptionsError(f"fmt must be parquet or csv, got {fmt!r}")
    if out is None and pg_uri is None:
        raise DemoOptionsError("nothing to write: give an output directory, a Postgres URL, or both")
    if pg_uri and not pg_table:
        raise DemoOptionsError("--to-postgres needs --table")
    task = TASKS[options.task]
    model = model or task.model
    store = store or (Store.for_uri(out) if out else None)
    conn = None
    if pg_uri:
        import adbc_driver_postgresql.dbapi as pgdbapi

        conn = pgdbapi.connect(pg_uri)
    files, rows, unlabelled = [], 0, 0
    day_iter = [start + timedelta(days=i) for i in range(days)]
    if progress:
        from tqdm import tqdm

        day_iter = tqdm(day_iter, desc=f"generating {model}", unit="day")
    try:
        for day in day_iter:
            df = generate_day(day, options, model)
            if as_of is not None:
                df = mask_unlabelled(df, as_of, options.label_delay_days, TIMESTAMP_COLUMN, task.target_column)
                unlabelled += int(df[task.target_column].isna().sum())
            rows += len(df)
            if out is not None:
                uri = partition_uri(out, model, day, fmt)
                if fmt == "parquet":
                    store.write_parquet(uri, df)
                else:
                    store.write_bytes(uri, df.to_csv(index=False).encode())
                files.append(uri)
            if conn is not None:
                _append_postgres(conn, pg_table, df)
        if conn is not None:
            conn.commit()
    finally:
        if conn is not None:
            conn.close()
    drifting = options.drift_day is not None
    return {"model": model, "task": options.task, "start": start.isoformat(), "days": days, "rows": rows,
            "files": len(files), "out": out, "postgres_table": pg_table if pg_uri else None,
            "drift_day": options.drift_day.isoformat() if drifting else None,
            "drift_kind": options.drift_kind if drifting else None,
            "bad_day": options.bad_day.isoformat() if options.bad_day else None,
            "bad_kind": options.bad_kind if options.bad_day else None,
            "as_of": as_of.isoformat() if as_of else None,
            "label_delay_days": options.label_delay_days if as_of else None,
            "unlabelled_rows": unlabelled}


def _append_postgres(conn: Any, table: str, df: pd.DataFrame) -> None:
    import pyarrow as pa

    schema_name, _, table_name = table.rpartition(".")
    with conn.cursor() as cur:
        cur.adbc_ingest(table_name, pa.Table.from_pandas(df, preserve_index=False), mode="create_append",
                        db_schema_name=schema_name or None)
