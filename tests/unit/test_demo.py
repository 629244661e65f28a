"""Demo data: deterministic per (seed, day, options); each drift kind visible where it should be (features or
target function), both tasks, late labels, each bad kind; hive layout; the generate CLI."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline.demo import (
    BAD_KINDS,
    DRIFT_KINDS,
    STREAMS,
    TASKS,
    DemoOptions,
    DemoOptionsError,
    concept_weight,
    expected_target,
    generate,
    generate_day,
    generate_stream,
    mask_unlabelled,
    partition_uri,
)

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


# ---------------------------------------------------------------- drift streams, tasks, late labels

DRIFT = date(2026, 3, 1)
SMALL = 60


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI on 10 reference-quantile bins (the monitor's definition)."""
    from pipeline.profile import bin_counts, bin_edges

    edges = bin_edges(reference, 10)
    r = np.asarray(bin_counts(reference, edges), float) + 0.5
    c = np.asarray(bin_counts(current, edges), float) + 0.5
    r, c = r / r.sum(), c / c.sum()
    return float(np.sum((c - r) * np.log(c / r)))


def _js(reference: pd.Series, current: pd.Series) -> float:
    """Jensen-Shannon distance (base 2) between two categorical samples."""
    shares = pd.concat([reference.value_counts(normalize=True), current.value_counts(normalize=True)], axis=1)
    p, q = (shares.fillna(0.0).to_numpy().T)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        return float(np.sum(a[a > 0] * np.log2(a[a > 0] / m[a > 0])))

    return float(np.sqrt((kl(p) + kl(q)) / 2))


def _moved_features(reference: pd.DataFrame, current: pd.DataFrame) -> set[str]:
    """Features the monitor would flag: PSI > 0.2 (numerics) or JS distance > 0.1 (categoricals)."""
    moved = set()
    for column in reference.columns.drop(["application_id", "event_time", "defaulted", "claim_cost"], errors="ignore"):
        if pd.api.types.is_numeric_dtype(reference[column]):
            ref, cur = reference[column].to_numpy(float), current[column].to_numpy(float)
            moved |= {column} if _psi(ref[np.isfinite(ref)], cur[np.isfinite(cur)]) > 0.2 else set()
        else:
            moved |= {column} if _js(reference[column], current[column]) > 0.1 else set()
    return moved


def test_streams_table_covers_every_task_and_kind():
    assert {(s.task, s.kind) for s in STREAMS} == {(t, k) for t in TASKS for k in DRIFT_KINDS}
    assert len({s.name for s in STREAMS}) == len(STREAMS) == len(TASKS) * len(DRIFT_KINDS)
    for stream in STREAMS:
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", stream.name), stream.name
        assert stream.harmful == DRIFT_KINDS[stream.kind].harmful
        assert stream.target_column == TASKS[stream.task].target_column
    assert {k for k, spec in DRIFT_KINDS.items() if not spec.harmful} == {"none", "covariate_harmless"}


@pytest.mark.parametrize("stream", STREAMS, ids=lambda s: s.name)
def test_every_stream_is_deterministic_in_seed_day_and_options(stream):
    kwargs = {"rows_per_day": SMALL, "drift_day": 2, "transition_days": 3, "period_days": 2}
    first = stream.generate(DRIFT - timedelta(days=2), 6, **kwargs)
    again = stream.generate(DRIFT - timedelta(days=2), 6, **kwargs)
    assert len(first) == 6 and all(len(f) == SMALL for f in first)
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a, b)
    other_seed = stream.generate(DRIFT - timedelta(days=2), 6, seed=7, **kwargs)
    assert not np.allclose(other_seed[3]["income"], first[3]["income"])
    assert [f["event_time"].dt.date.iloc[0] for f in first] == [DRIFT + timedelta(days=i) for i in range(-2, 4)]
    assert stream.target_column in first[0].columns
    single = generate_day(DRIFT + timedelta(days=1), DemoOptions(rows_per_day=SMALL, drift_day=DRIFT, task=stream.task,
                                                                 drift_kind=stream.kind, transition_days=3,
                                                                 period_days=2))
    pd.testing.assert_frame_equal(single, first[3])


# kind -> exactly the features the monitor flags one day after the drift (PSI > 0.2 / JS > 0.1
# against the stable stream's same day); None: the feature columns are bit-identical to it.
FEATURE_DRIFT: dict[str, set[str] | None] = {
    "none": None,
    "covariate": {"income", "interest_rate", "credit_score", "num_inquiries_6m", "channel"},
    "covariate_harmless": {"age", "num_open_accounts", "region"},
    "concept": None,
    "concept_gradual": None,
    "recurring": None,
}


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("kind", list(DRIFT_KINDS))
def test_each_kind_moves_features_only_where_expected(kind, task):
    day, before = DRIFT + timedelta(days=1), DRIFT - timedelta(days=1)
    stable = generate_day(day, DemoOptions(rows_per_day=N, task=task))
    drifted = generate_day(day, DemoOptions(rows_per_day=N, task=task, drift_day=DRIFT, drift_kind=kind))
    features = [c for c in stable.columns if c != TASKS[task].target_column]
    if FEATURE_DRIFT[kind] is None:
        pd.testing.assert_frame_equal(drifted[features], stable[features])
    else:
        assert _moved_features(stable, drifted) == FEATURE_DRIFT[kind]
    drifting = DemoOptions(rows_per_day=N, task=task, drift_day=DRIFT, drift_kind=kind)
    pd.testing.assert_frame_equal(generate_day(before, drifting), generate_day(before, DemoOptions(rows_per_day=N,
                                                                                                   task=task)))


# kind -> new-concept weight on drift_day + k for k in (-1, 0, 6, 13, 14, 27, 28, 40), with
# transition_days=14 and period_days=14.
OFFSETS = (-1, 0, 6, 13, 14, 27, 28, 40)
CONCEPT_WEIGHTS = {
    "none": (0, 0, 0, 0, 0, 0, 0, 0),
    "covariate": (0, 0, 0, 0, 0, 0, 0, 0),
    "covariate_harmless": (0, 0, 0, 0, 0, 0, 0, 0),
    "concept": (0, 1, 1, 1, 1, 1, 1, 1),
    "concept_gradual": (0, 1 / 14, 0.5, 1, 1, 1, 1, 1),
    "recurring": (0, 1, 1, 1, 0, 0, 1, 1),
}


@pytest.mark.parametrize("kind", list(DRIFT_KINDS))
def test_concept_weight_by_day(kind):
    options = DemoOptions(drift_day=DRIFT, drift_kind=kind)
    weights = [concept_weight(DRIFT + timedelta(days=k), options) for k in OFFSETS]
    assert weights == pytest.approx(CONCEPT_WEIGHTS[kind])


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("kind", ["covariate", "covariate_harmless", "concept", "concept_gradual", "recurring"])
def test_target_function_moves_only_for_concept_kinds(kind, task):
    """Same features, both target functions: the expectation changes iff the kind is a concept kind."""
    day = DRIFT + timedelta(days=3)
    drifted = DemoOptions(rows_per_day=N, task=task, drift_day=DRIFT, drift_kind=kind)
    frame = generate_day(day, drifted)
    now, before = expected_target(frame, day, drifted), expected_target(frame, day, DemoOptions(task=task))
    if concept_weight(day, drifted) == 0:
        np.testing.assert_array_equal(now, before)
    else:
        scale = 0.02 if task == "binary" else 100.0
        assert np.mean(np.abs(now - before)) > scale


def test_concept_drift_in_regression_moves_cost_to_utilisation_and_region():
    day = DRIFT + timedelta(days=1)
    old = generate_day(day, DemoOptions(rows_per_day=N, task="regression"))
    new = generate_day(day, DemoOptions(rows_per_day=N, task="regression", drift_day=DRIFT, drift_kind="concept"))
    high_util, east = old["credit_utilization"] > 0.7, old["region"] == "east"
    assert new.loc[high_util, "claim_cost"].mean() > old.loc[high_util, "claim_cost"].mean() + 300
    assert new.loc[east, "claim_cost"].mean() > old.loc[east, "claim_cost"].mean() + 300
    low_score = old["credit_score"] < 600
    assert new.loc[low_score, "claim_cost"].mean() < old.loc[low_score, "claim_cost"].mean()


def test_gradual_drift_at_mid_ramp_is_half_old_half_new():
    mid = DRIFT + timedelta(days=6)  # weight (6 + 1) / 14
    def cost(kind: str) -> pd.Series:
        return generate_day(mid, DemoOptions(rows_per_day=N, task="regression", drift_day=DRIFT,
                                             drift_kind=kind))["claim_cost"]
    # The noise draws are shared, so the mid-ramp cost is the mix of the two costs row by row.
    np.testing.assert_allclose(cost("concept_gradual"), 0.5 * cost("none") + 0.5 * cost("concept"), atol=0.011)

    def label(kind: str) -> np.ndarray:
        return generate_day(mid, DemoOptions(rows_per_day=N, drift_day=DRIFT, drift_kind=kind))["defaulted"].to_numpy()
    old, new, mixed = label("none"), label("concept"), label("concept_gradual")
    # Shared uniforms: a label only differs where the two concepts disagree, and there about
    # half of the mixed labels side with the new concept.
    assert ((mixed >= np.minimum(old, new)) & (mixed <= np.maximum(old, new))).all()
    disagree = old != new
    assert disagree.sum() > 100
    assert (mixed[disagree] == new[disagree]).mean() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("offset, phase", [(0, "concept"), (2, "concept"), (3, "none"), (5, "none"), (6, "concept"),
                                           (9, "none")])
def test_recurring_switches_phase_every_period(offset, phase):
    day = DRIFT + timedelta(days=offset)
    def frame(kind: str) -> pd.DataFrame:
        return generate_day(day, DemoOptions(rows_per_day=200, task="regression", drift_day=DRIFT, drift_kind=kind,
                                             period_days=3))
    pd.testing.assert_frame_equal(frame("recurring"), frame(phase))


def test_regression_target_scale():
    frame = pd.concat(generate_stream("none", DAY, 3, rows_per_day=N, task="regression"), ignore_index=True)
    cost = frame["claim_cost"]
    assert cost.dtype == np.float64 and cost.notna().all() and (cost > 0).all()
    assert 1_800 < cost.median() < 3_000
    assert cost.quantile(0.05) > 900 and cost.quantile(0.95) < 5_000
    assert cost.skew() > 0.3
    oracle_rmse = float(np.sqrt(np.mean((cost - expected_target(frame, DAY, DemoOptions(task="regression"))) ** 2)))
    assert 300 < oracle_rmse < 800
    assert "defaulted" not in frame.columns
    assert frame["application_id"].str.startswith("CL").all()


TS = pd.to_datetime(["2026-03-01 00:00", "2026-03-01 23:59", "2026-03-02 00:00", "2026-03-04 12:00"], utc=True)


@pytest.mark.parametrize("as_of, delay, unlabelled", [
    (date(2026, 3, 5), 0, [False, False, False, False]),
    (date(2026, 3, 5), 1, [False, False, False, True]),
    (date(2026, 3, 5), 3, [False, False, True, True]),
    (date(2026, 3, 4), 3, [True, True, True, True]),
    (date(2026, 3, 2), 0, [False, False, True, True]),
    (datetime(2026, 3, 4, 12, 0), 0, [False, False, False, True]),
], ids=["no-delay", "one-day", "on-the-cutoff", "all", "as-of-itself", "naive-datetime"])
@pytest.mark.parametrize("target, null_dtype", [([1, 0, 1, 0], "Int64"), ([1.5, 2.5, 3.5, 4.5], "float64")],
                         ids=["binary", "regression"])
def test_mask_unlabelled(as_of, delay, unlabelled, target, null_dtype):
    frame = pd.DataFrame({"ts": TS, "y": target, "x": [1, 2, 3, 4]})
    masked = mask_unlabelled(frame, as_of, delay, "ts", "y")
    assert masked["y"].isna().tolist() == unlabelled
    assert str(masked["y"].dtype) == null_dtype
    assert masked.loc[~np.array(unlabelled), "y"].tolist() == [t for t, u in zip(target, unlabelled) if not u]
    assert frame["y"].notna().all() and masked["x"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("args, needle", [
    ((date(2026, 3, 5), -1, "ts", "y"), "label_delay_days must be >= 0, got -1"),
    ((date(2026, 3, 5), 1, "when", "y"), r"columns \['when'\] not in the frame"),
])
def test_mask_unlabelled_errors(args, needle):
    with pytest.raises(DemoOptionsError, match=needle):
        mask_unlabelled(pd.DataFrame({"ts": TS, "y": [0, 1, 0, 1]}), *args)


@pytest.mark.parametrize("task", list(TASKS))
def test_late_labels_null_exactly_the_rows_after_as_of_minus_delay(task, tmp_path):
    as_of, delay = DAY + timedelta(days=5), 3
    options = DemoOptions(rows_per_day=SMALL, task=task, label_delay_days=delay)
    summary = generate(str(tmp_path), DAY, 5, options, as_of=as_of)
    target = TASKS[task].target_column
    frames = [pd.read_parquet(p) for p in sorted(tmp_path.rglob("*.parquet"))]
    cutoff = pd.Timestamp(as_of - timedelta(days=delay), tz="UTC")
    nulls = [int(f[target].isna().sum()) for f in frames]
    assert nulls == [int((f["event_time"] >= cutoff).sum()) for f in frames] == [0, 0, SMALL, SMALL, SMALL]
    assert summary["unlabelled_rows"] == 3 * SMALL and summary["as_of"] == as_of.isoformat()
    labelled = generate_day(DAY + timedelta(days=1), options)
    assert frames[1][target].astype(float).tolist() == labelled[target].astype(float).tolist()
    in_memory = generate_stream("none", DAY, 5, rows_per_day=SMALL, task=task, label_delay_days=delay, as_of=as_of)
    assert [int(f[target].isna().sum()) for f in in_memory] == nulls
    expected_dtype = "Int64" if task == "binary" else "float64"
    assert {str(f[target].dtype) for f in in_memory} == {expected_dtype}


def test_no_as_of_leaves_every_label():
    frames = generate_stream("none", DAY, 2, rows_per_day=SMALL, label_delay_days=7)
    assert all(f["defaulted"].notna().all() and f["defaulted"].dtype == np.int64 for f in frames)


@pytest.mark.parametrize("kwargs, needle", [
    ({"task": "ranking"}, "unknown task 'ranking'; allowed: binary, regression"),
    ({"drift_kind": "sudden"}, "unknown drift kind 'sudden'; allowed: none, covariate, covariate_harmless"),
    ({"transition_days": 0}, "transition_days must be >= 1, got 0"),
    ({"period_days": 0}, "period_days must be >= 1, got 0"),
    ({"label_delay_days": -2}, "label_delay_days must be >= 0, got -2"),
])
def test_bad_options_are_rejected(kwargs, needle):
    with pytest.raises(DemoOptionsError, match=needle):
        DemoOptions(**kwargs)


def test_generate_stream_rejects_unknown_knobs():
    with pytest.raises(DemoOptionsError, match="unexpected keyword argument 'drift_speed'"):
        generate_stream("concept", DAY, 1, rows_per_day=5, drift_speed=3)


def test_bad_nulls_null_the_regression_target():
    bad = generate_day(DAY, DemoOptions(rows_per_day=N, task="regression", bad_day=DAY, bad_kind="nulls"))
    assert bad["claim_cost"].dtype == np.float64
    assert bad["claim_cost"].isna().mean() == pytest.approx(0.1, abs=0.03)


def test_cli_generates_a_regression_stream_with_late_labels(settings, capsys):
    import json

    from pipeline.cli import main

    argv = ["generate", "--task", "regression", "--out", settings.lake_root, "--start", "2026-01-01", "--days", "4",
            "--rows-per-day", "20", "--drift-day", "2026-01-02", "--drift-kind", "concept_gradual",
            "--transition-days", "2", "--as-of", "2026-01-05", "--label-delay-days", "2"]
    assert main(argv, settings) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "claim_cost" and summary["task"] == "regression"
    assert summary["drift_kind"] == "concept_gradual" and summary["unlabelled_rows"] == 40
    day = pd.read_parquet(partition_uri(settings.lake_root, "claim_cost", date(2026, 1, 3)))
    options = DemoOptions(rows_per_day=20, task="regression", drift_day=date(2026, 1, 2),
                          drift_kind="concept_gradual", transition_days=2)
    assert day["claim_cost"].isna().all()
    np.testing.assert_allclose(day["income"], generate_day(date(2026, 1, 3), options)["income"])


@pytest.mark.parametrize("extra, needle", [
    (["--label-delay-days", "3"], "--label-delay-days needs --as-of"),
    (["--as-of", "2026-01-05", "--label-delay-days", "-1"], "--label-delay-days must be >= 0"),
    (["--drift-kind", "sudden"], "invalid choice: 'sudden'"),
    (["--task", "ranking"], "invalid choice: 'ranking'"),
    (["--period-days", "0"], "must be positive"),
], ids=["delay-without-as-of", "negative-delay", "unknown-kind", "unknown-task", "zero-period"])
def test_cli_generate_usage_errors(settings, capsys, extra, needle):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--out", settings.lake_root, "--start", "2026-01-01", "--days", "1", *extra], settings)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err
