"""Demo data: deterministic per (seed, day); drift and each bad kind visible; hive layout."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.demo import BAD_KINDS, DemoOptions, generate, generate_day, partition_uri

DAY = date(2026, 1, 5)
N = 3000


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate_day(DAY, DemoOptions(rows_per_day=N))


def test_same_seed_and_day_give_identical_rows(clean):
    pd.testing.assert_frame_equal(generate_day(DAY, DemoOptions(rows_per_day=N)), clean)


@pytest.mark.parametrize("day, seed", [(DAY + timedelta(days=1), 42), (DAY, 43)], ids=["other-day", "other-seed"])
def test_other_seed_or_day_give_other_rows(clean, day, seed):
    other = generate_day(day, DemoOptions(rows_per_day=N, seed=seed))
    assert not np.allclose(other["income"].to_numpy(), clean["income"].to_numpy())


def test_shape_types_and_timestamps(clean):
    assert len(clean) == N
    assert clean["application_id"].is_unique
    assert str(clean["event_time"].dt.tz) == "UTC"
    assert clean["event_time"].is_monotonic_increasing
    assert clean["event_time"].dt.date.eq(DAY).all()
    assert set(clean["defaulted"].unique()) == {0, 1}
    assert 0.08 < clean["defaulted"].mean() < 0.25
    assert clean["months_employed"].isna().mean() == pytest.approx(0.03, abs=0.015)
    assert clean["credit_utilization"].isna().mean() == pytest.approx(0.02, abs=0.01)
    assert clean["credit_score"].between(300, 850).all()
    assert set(clean["channel"]) == {"online", "branch", "broker"}


def test_covariate_drift_moves_features(clean):
    drifted = generate_day(DAY, DemoOptions(rows_per_day=N, drift_day=DAY, drift_kind="covariate"))
    assert drifted["income"].median() < 0.85 * clean["income"].median()
    assert drifted["credit_score"].mean() < clean["credit_score"].mean() - 20
    assert (drifted["channel"] == "partner_api").mean() == pytest.approx(0.3, abs=0.04)
    before = generate_day(DAY - timedelta(days=1), DemoOptions(rows_per_day=N, drift_day=DAY))
    assert "partner_api" not in set(before["channel"])


def test_concept_drift_keeps_features_and_changes_labels(clean):
    drifted = generate_day(DAY, DemoOptions(rows_per_day=N, drift_day=DAY, drift_kind="concept"))
    pd.testing.assert_series_equal(drifted["income"], clean["income"])
    pd.testing.assert_series_equal(drifted["credit_score"], clean["credit_score"])
    high_util = clean["credit_utilization"] > 0.7
    assert drifted.loc[high_util, "defaulted"].mean() > clean.loc[high_util, "defaulted"].mean() + 0.05


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_bad_kind_is_visible_on_its_day_only(clean, kind):
    options = DemoOptions(rows_per_day=N, bad_day=DAY, bad_kind=kind)
    bad = generate_day(DAY, options)
    if kind == "nulls":
        assert bad["credit_score"].isna().mean() == pytest.approx(0.3, abs=0.04)
        assert bad["defaulted"].isna().mean() == pytest.approx(0.1, abs=0.03)
    elif kind == "schema":
        assert "credit_score" not in bad.columns and "income" not in bad.columns
        assert "annual_income" in bad.columns
    elif kind == "range":
        assert ((bad["age"] < 0) | (bad["age"] > 150)).mean() == pytest.approx(0.2, abs=0.04)
        assert (bad["credit_score"] == 9999).mean() == pytest.approx(0.2, abs=0.04)
    else:
        assert bad["application_id"].duplicated().mean() > 0.1
    next_day = generate_day(DAY + timedelta(days=1), options)
    assert list(next_day.columns) == list(clean.columns)
    assert next_day["credit_score"].notna().all() and next_day["application_id"].is_unique


def test_unknown_bad_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown bad kind 'typo'; allowed: nulls, schema, range, duplicates"):
        generate_day(DAY, DemoOptions(rows_per_day=10, bad_day=DAY, bad_kind="typo"))  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_generate_writes_hive_partitions(tmp_path, fmt):
    summary = generate(str(tmp_path), DAY, 3, DemoOptions(rows_per_day=40), fmt=fmt)
    assert summary["rows"] == 120 and summary["files"] == 3
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == [f"credit_default/ds=2026-01-0{d}/part-0.{fmt}" for d in (5, 6, 7)]
    assert partition_uri(str(tmp_path), "credit_default", DAY, fmt) == str(tmp_path / files[0])
    path = tmp_path / files[1]
    back = pd.read_parquet(path) if fmt == "parquet" else pd.read_csv(path)
    expected = generate_day(DAY + timedelta(days=1), DemoOptions(rows_per_day=40))
    assert back["application_id"].tolist() == expected["application_id"].tolist()
    np.testing.assert_allclose(back["income"].to_numpy(), expected["income"].to_numpy())
    if fmt == "csv":
        assert (pd.to_datetime(back["event_time"]) == expected["event_time"]).all()


@pytest.mark.parametrize("kwargs, needle", [
    ({"fmt": "json"}, "fmt must be parquet or csv"),
    ({"out": None}, "nothing to write"),
    ({"pg_uri": "postgresql://127.0.0.1:1/x"}, "--to-postgres needs --table"),
])
def test_generate_argument_errors(tmp_path, kwargs, needle):
    args = {"out": str(tmp_path)} | kwargs
    out = args.pop("out")
    with pytest.raises(ValueError, match=needle):
        generate(out, DAY, 1, DemoOptions(rows_per_day=5), **args)
