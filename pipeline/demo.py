"""Deterministic synthetic credit-default data with injectable drift and bad data.

Contract:
* ``generate_day(day, ...)`` is a pure function of ``(seed, day, rows_per_day, drift, bad)``:
  the same arguments give the same rows, so a backfill over a date reproduces it exactly.
* ``generate(...)`` writes hive partitions ``<out>/<model>/ds=YYYY-MM-DD/part-0.parquet``
  (local path or ``s3://``) and optionally appends the same rows to a Postgres table.

The data (one row per loan application, timestamp ``event_time`` in UTC within its day):
12 numeric features with realistic skew (log-normal income, clipped scores), 3 % missing
``months_employed`` and 2 % missing ``credit_utilization``, 0.5 % income outliers; 5 categorical
features; target ``defaulted`` (about 15 % positives) from a non-linear risk function, so the
XGBoost candidate beats a logistic baseline.

Drift (from ``drift_day`` on, inclusive):
* ``covariate``: the applicant mix moves -- income down 25 %, credit scores down 45 points,
  utilisation and inquiries up, and a new ``partner_api`` channel takes 30 % of applications
  (a category the reference never saw, with its own risk). ``P(default | features)`` is the
  same function before and after, so a retrained model learns the new region.
* ``concept``: the features keep their distributions but the risk function changes (utilisation
  and late payments matter much more, credit score less): only realised performance shows it.

Bad data (on ``bad_day`` only): ``nulls`` (30 % of credit_score and 10 % of the target null),
``schema`` (credit_score dropped, income renamed annual_income), ``range`` (20 % of ages
negative or over 150, scores 9999), ``duplicates`` (20 % of rows repeat an application_id).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.storage import Store, join

DriftKind = Literal["covariate", "concept"]
BadKind = Literal["nulls", "schema", "range", "duplicates"]
DRIFT_KINDS: tuple[str, ...] = ("covariate", "concept")
BAD_KINDS: tuple[str, ...] = ("nulls", "schema", "range", "duplicates")

HOME_OWNERSHIP = (["RENT", "MORTGAGE", "OWN", "OTHER"], [0.42, 0.38, 0.17, 0.03])
LOAN_PURPOSE = (["debt_consolidation", "credit_card", "home_improvement", "car", "medical", "small_business", "other"],
                [0.38, 0.22, 0.1, 0.1, 0.06, 0.05, 0.09])
EMPLOYMENT = (["salaried", "self_employed", "contract", "unemployed", "retired"], [0.62, 0.14, 0.12, 0.05, 0.07])
REGION = (["north", "south", "east", "west", "central"], [0.22, 0.24, 0.18, 0.2, 0.16])
CHANNEL = (["online", "branch", "broker"], [0.55, 0.3, 0.15])
CHANNEL_DRIFTED = (["online", "branch", "broker", "partner_api"], [0.4, 0.18, 0.12, 0.3])


@dataclass(frozen=True)
class DemoOptions:
    """What to inject. Days are dates; ``None`` = never."""

    rows_per_day: int = 2000
    seed: int = 42
    drift_day: date | None = None
    drift_kind: DriftKind = "covariate"
    bad_day: date | None = None
    bad_kind: BadKind = "nulls"


def _rng(seed: int, day: date, salt: str = "") -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}|{day.isoformat()}|{salt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _choice(rng: np.random.Generator, spec: tuple[list[str], list[float]], n: int) -> np.ndarray:
    cats, probs = spec
    p = np.asarray(probs) / np.sum(probs)
    return rng.choice(np.asarray(cats, dtype=object), size=n, p=p)


def _risk_logit(df: pd.DataFrame, concept: bool) -> np.ndarray:
    """Log-odds of default; non-linear in score and utilisation, with interactions."""
    score = df["credit_score"].to_numpy(float)
    util = df["credit_utilization"].fillna(0.45).to_numpy(float)
    dti = df["debt_to_income"].to_numpy(float)
    late = df["num_late_payments_12m"].to_numpy(float)
    inq = df["num_inquiries_6m"].to_numpy(float)
    lti = df["loan_amount"].to_numpy(float) / np.maximum(df["income"].to_numpy(float), 1.0)
    rate = df["interest_rate"].to_numpy(float)
    employed = df["months_employed"].fillna(0).to_numpy(float)
    z = -3.3 * np.ones(len(df))
    score_w = 0.4 if concept else 1.0
    z += score_w * (-0.018 * (score - 680) + 0.00004 * np.square(np.minimum(score - 680, 0)))
    util_w = 3.0 if concept else 1.0
    z += util_w * 5.0 * np.maximum(util - 0.7, 0) + 0.4 * util
    z += 1.6 * np.maximum(dti - 0.43, 0) * 4
    late_w = 2.2 if concept else 1.0
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
    z += np.where(channel == "broker", 0.3, 0.0) + np.where(channel == "partner_api", 0.9, 0.0)
    z += np.where(df["home_ownership"].to_numpy(object) == "OWN", -0.3, 0.0)
    return z


def generate_day(day: date, options: DemoOptions = DemoOptions(), model: str = "credit_default") -> pd.DataFrame:
    """Rows for one day (deterministic in ``(options.seed, day)``).

    Returns:
        A frame with ``application_id``, ``event_time`` (UTC, sorted), the features and
        ``defaulted``; drift and bad data injected as ``options`` says.
    """
    rng = _rng(options.seed, day)
    n = options.rows_per_day
    drifted = options.drift_day is not None and day >= options.drift_day
    covariate = drifted and options.drift_kind == "covariate"
    concept = drifted and options.drift_kind == "concept"

    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    hour_w = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 7, 7, 6, 5, 4, 3, 2, 1], float)
    hours = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    seconds = np.sort(hours * 3600 + rng.integers(0, 3600, size=n))
    event_time = pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s")

    age = np.clip(rng.normal(41, 12, n), 18, 85).round()
    income = np.exp(rng.normal(np.log(52_000), 0.55, n))
    outlier = rng.random(n) < 0.005
    income = np.where(outlier, income * rng.uniform(8, 25, n), income)
    score = np.clip(rng.normal(685, 70, n), 300, 850).round()
    util = np.clip(rng.beta(2.2, 3.0, n), 0, 1)
    inquiries = rng.poisson(1.1, n).astype(float)
    if covariate:
        income *= 0.75
        score = np.clip(score - 45, 300, 850)
        util = np.clip(util + 0.08, 0, 1)
        inquiries = inquiries + rng.poisson(0.7, n)
    loan_amount = np.clip(np.exp(rng.normal(np.log(14_000), 0.6, n)), 1_000, 100_000).round(-2)
    term = rng.choice([12, 24, 36, 48, 60], size=n, p=[0.08, 0.17, 0.4, 0.15, 0.2]).astype(float)
    rate = np.clip(8 + (720 - score) * 0.035 + rng.normal(0, 1.8, n), 3.5, 35).round(2)
    dti = np.clip(rng.gamma(4.0, 0.07, n) + loan_amount / income * 0.15, 0, 1.5).round(4)
    months_employed = np.clip(rng.exponential(60, n), 0, 480).round()
    open_accounts = rng.poisson(6, n).astype(float)
    late = rng.poisson(np.where(score < 620, 1.2, 0.25)).astype(float)

    df = pd.DataFrame({
        "application_id": [f"{model[:2].upper()}{day:%Y%m%d}{i:06d}" for i in range(n)],
        "event_time": event_time,
        "age": age, "income": income.round(2), "loan_amount": loan_amount, "loan_term_months": term,
        "interest_rate": rate, "credit_score": score, "debt_to_income": dti,
        "credit_utilization": util.round(4), "months_employed": months_employed,
        "num_open_accounts": open_accounts, "num_late_payments_12m": late,
        "num_inquiries_6m": inquiries.astype(float),
        "home_ownership": _choice(rng, HOME_OWNERSHIP, n),
        "loan_purpose": _choice(rng, LOAN_PURPOSE, n),
        "employment_type": _choice(rng, EMPLOYMENT, n),
        "region": _choice(rng, REGION, n),
        "channel": _choice(rng, CHANNEL_DRIFTED if covariate else CHANNEL, n),
    })
    df.loc[rng.random(n) < 0.03, "months_employed"] = np.nan
    df.loc[rng.random(n) < 0.02, "credit_utilization"] = np.nan
    p = 1 / (1 + np.exp(-_risk_logit(df, concept)))
    df["defaulted"] = (rng.random(n) < p).astype("int64")
    for col in ("home_ownership", "loan_purpose", "employment_type", "region", "channel"):
        df[col] = df[col].astype(str)

    if options.bad_day is not None and day == options.bad_day:
        df = _inject_bad(df, options.bad_kind, _rng(options.seed, day, "bad"))
    return df


def _inject_bad(df: pd.DataFrame, kind: str, rng: np.random.Generator) -> pd.DataFrame:
    n = len(df)
    df = df.copy()
    if kind == "nulls":
        df.loc[rng.random(n) < 0.3, "credit_score"] = np.nan
        df["defaulted"] = df["defaulted"].astype("Int64")
        df.loc[rng.random(n) < 0.1, "defaulted"] = pd.NA
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
        raise ValueError(f"unknown bad kind {kind!r}; allowed: {', '.join(BAD_KINDS)}")
    return df


def partition_uri(out: str, model: str, day: date, fmt: str = "parquet") -> str:
    return join(out, model, f"ds={day:%Y-%m-%d}", f"part-0.{fmt}")


def generate(out: str | None, start: date, days: int, options: DemoOptions = DemoOptions(), *,
             model: str = "credit_default", fmt: str = "parquet", store: Store | None = None,
             pg_uri: str | None = None, pg_table: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Write ``days`` daily partitions from ``start`` (and/or load them into Postgres).

    Args:
        out: lake root (local path or ``s3://``); partitions go to ``<out>/<model>/ds=.../``.
            ``None`` writes no lake (Postgres only).
        start: first day.
        days: number of days.
        options: rows per day, seed, drift and bad-data injection.
        model: the model name (the lake sub-folder).
        fmt: ``parquet`` or ``csv``.
        store: storage for ``out`` (default: from its scheme).
        pg_uri, pg_table: also append the rows to this Postgres table (created if absent).
        progress: show a progress bar.

    Returns:
        A summary: days, rows, files written and the drift/bad days.
    """
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"fmt must be parquet or csv, got {fmt!r}")
    if out is None and pg_uri is None:
        raise ValueError("nothing to write: give an output directory, a Postgres URL, or both")
    store = store or (Store.for_uri(out) if out else None)
    conn = None
    if pg_uri:
        if not pg_table:
            raise ValueError("--to-postgres needs --table")
        import adbc_driver_postgresql.dbapi as pgdbapi

        conn = pgdbapi.connect(pg_uri)
    files, rows = [], 0
    day_iter = [start + timedelta(days=i) for i in range(days)]
    if progress:
        from tqdm import tqdm

        day_iter = tqdm(day_iter, desc=f"generating {model}", unit="day")
    try:
        for day in day_iter:
            df = generate_day(day, options, model)
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
    return {"model": model, "start": start.isoformat(), "days": days, "rows": rows, "files": len(files),
            "out": out, "postgres_table": pg_table if pg_uri else None,
            "drift_day": options.drift_day.isoformat() if options.drift_day else None,
            "drift_kind": options.drift_kind if options.drift_day else None,
            "bad_day": options.bad_day.isoformat() if options.bad_day else None,
            "bad_kind": options.bad_kind if options.bad_day else None}


def _append_postgres(conn: Any, table: str, df: pd.DataFrame) -> None:
    import pyarrow as pa

    schema_name, _, table_name = table.rpartition(".")
    with conn.cursor() as cur:
        cur.adbc_ingest(table_name, pa.Table.from_pandas(df, preserve_index=False), mode="create_append",
                        db_schema_name=schema_name or None)
