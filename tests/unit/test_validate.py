"""Validation stage: severities, row quarantine, missing columns, suite loading and suggestion,
and the written artifacts (local and on a real S3 API server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import numpy as np
import pandas as pd
import pytest

from pipeline.config import parse_spec
from pipeline.demo import BAD_KINDS
from pipeline.storage import Store, join
from pipeline.validate import (
    render_data_docs,
    REASON_COLUMN,
    InvalidSuite,
    SuiteNotFound,
    ValidationFailed,
    load_suite,
    suggest_suite,
    validate,
    validate_frame,
)
from tests.conftest import REPO, demo_days

DAY = date(2026, 2, 1)


def _tiny_spec(max_quarantine_fraction: float = 0.5, min_rows: int = 0):
    return parse_spec({
        "name": "tiny", "task": "binary", "source": {"kind": "lake", "uri": "/nowhere"},
        "timestamp_column": "ts", "target_column": "y", "id_column": "id",
        "numeric_features": ["x"], "categorical_features": ["c"],
        "validation": {"max_quarantine_fraction": max_quarantine_fraction, "min_rows": min_rows},
    })


def _tiny_frame() -> pd.DataFrame:
    """Ten clean rows."""
    return pd.DataFrame({
        "id": [f"r{i}" for i in range(10)],
        "ts": pd.date_range("2026-01-01", periods=10, freq="h", tz="UTC"),
        "x": np.arange(10, dtype=float),
        "c": pd.Series(["a", "b"] * 5, dtype="str"),
        "y": [0, 1] * 5,
    })


def _exp(kind: str, severity: str = "critical", row_level: bool = False, **kwargs):
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity, "row_level": row_level}}


def _suite(*expectations):
    return {"name": "tiny", "expectations": list(expectations)}


def _set(df: pd.DataFrame, column: str, rows: list[int], value) -> pd.DataFrame:
    df = df.copy()
    df.loc[rows, column] = value
    return df


def _names(entries) -> list[str]:
    return sorted(f"{e['expectation']}({e['column']})" if e["column"] else e["expectation"] for e in entries)


NOT_NULL = "expect_column_values_to_not_be_null"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_column_values_to_be_unique"
TYPES = "expect_column_values_to_be_in_type_list"
COLUMNS = "expect_table_columns_to_match_set"
ROW_COUNT = "expect_table_row_count_to_be_between"

# (case, mutate the clean frame, suite, success, failures, warnings, quarantined rows)
SEVERITY_CASES = [
    ("clean passes", lambda df: df,
     [_exp(BETWEEN, "critical", True, column="x", min_value=0, max_value=9)], True, [], [], 0),
    ("critical row-level over mostly fails", lambda df: _set(df, "x", [0, 1, 2], 99.0),
     [_exp(BETWEEN, "critical", True, column="x", min_value=0, max_value=9, mostly=0.9)],
     False, [f"{BETWEEN}(x)"], [], 3),
    ("critical row-level within mostly passes and quarantines", lambda df: _set(df, "x", [4], 99.0),
     [_exp(BETWEEN, "critical", True, column="x", min_value=0, max_value=9, mostly=0.8)], True, [], [], 1),
    ("warning-only failure passes with the warning recorded", lambda df: _set(df, "c", [1, 3], "z"),
     [_exp(IN_SET, "warning", False, column="c", value_set=["a", "b"])], True, [], [f"{IN_SET}(c)"], 0),
    ("warning row-level quarantines but does not fail", lambda df: _set(df, "x", [2], np.nan),
     [_exp(NOT_NULL, "warning", True, column="x")], True, [], [f"{NOT_NULL}(x)"], 1),
    ("critical table-level fails without quarantine", lambda df: df,
     [_exp(ROW_COUNT, "critical", False, min_value=100)], False, [ROW_COUNT], [], 0),
    ("critical type check fails on strings in a numeric column",
     lambda df: df.assign(x=df["x"].astype(str)),
     [_exp(TYPES, "critical", False, column="x", type_list=["float64", "int64"])], False, [f"{TYPES}(x)"], [], 0),
    ("string and tz-aware timestamp types are recognised", lambda df: df,
     [_exp(TYPES, column="c", type_list=["str"]), _exp(TYPES, column="ts", type_list=["datetime64[us]", "datetime64[ns]"])],
     True, [], [], 0),
    ("mixed: critical failure and warning both reported",
     lambda df: _set(_set(df, "y", [0], 7), "c", [5], "new"),
     [_exp(IN_SET, "critical", True, column="y", value_set=[0, 1]),
      _exp(IN_SET, "warning", False, column="c", value_set=["a", "b"])],
     False, [f"{IN_SET}(y)"], [f"{IN_SET}(c)"], 1),
]


@pytest.mark.parametrize("case,mutate,expectations,success,failures,warnings,quarantined", SEVERITY_CASES,
                         ids=[c[0] for c in SEVERITY_CASES])
def test_severity_paths(case, mutate, expectations, success, failures, warnings, quarantined):
    df = mutate(_tiny_frame())
    report, clean, quarantine = validate_frame(_tiny_spec(), df, _suite(*expectations))
    assert report["success"] is success
    assert _names(report["failures"]) == failures
    assert _names(report["warnings"]) == warnings
    assert report["quarantined_rows"] == len(quarantine) == quarantined
    assert report["rows"] == len(df) == len(clean) + len(quarantine)
    assert len(report["problems"]) == len(failures)


# (case, mutate, row-level expectation, rows that must be quarantined, GX counts every occurrence)
MASK_CASES = [
    ("not null", lambda df: _set(df, "x", [1, 7], np.nan), _exp(NOT_NULL, column="x"), [1, 7]),
    ("between inclusive", lambda df: df, _exp(BETWEEN, column="x", min_value=2, max_value=7), [0, 1, 8, 9]),
    ("between strict", lambda df: df,
     _exp(BETWEEN, column="x", min_value=2, max_value=7, strict_min=True, strict_max=True), [0, 1, 2, 7, 8, 9]),
    ("between ignores nulls", lambda df: _set(df, "x", [9], np.nan),
     _exp(BETWEEN, column="x", min_value=0, max_value=8), []),
    ("between one-sided", lambda df: df, _exp(BETWEEN, column="x", max_value=3), [4, 5, 6, 7, 8, 9]),
    ("between on tz-aware timestamps", lambda df: df,
     _exp(BETWEEN, column="ts", min_value="2026-01-01T02:00:00", max_value="2026-01-01T05:00:00", strict_max=True),
     [0, 1, 5, 6, 7, 8, 9]),
    ("in set on str dtype", lambda df: _set(df, "c", [2, 4], "zz"), _exp(IN_SET, column="c", value_set=["a", "b"]),
     [2, 4]),
    ("in set on target", lambda df: _set(df, "y", [3], 2), _exp(IN_SET, column="y", value_set=[0, 1]), [3]),
    ("parseable timestamp strings", lambda df: df.assign(ts=["2026-01-01 00:00", "not a date"] * 5),
     _exp("expect_column_values_to_be_dateutil_parseable", column="ts"), [1, 3, 5, 7, 9]),
]


@pytest.mark.parametrize("case,mutate,expectation,bad_rows", MASK_CASES, ids=[c[0] for c in MASK_CASES])
def test_row_level_masks_are_exact_and_agree_with_gx(case, mutate, expectation, bad_rows):
    expectation["meta"]["row_level"] = True
    df = mutate(_tiny_frame())
    report, clean, quarantine = validate_frame(_tiny_spec(max_quarantine_fraction=1.0), df, _suite(expectation))
    (entry,) = [r for r in report["results"] if r.get("check") != "finite"]
    assert sorted(quarantine["id"]) == sorted(f"r{i}" for i in bad_rows)
    assert entry["quarantined_rows"] == len(bad_rows)
    assert entry["unexpected_count"] == len(bad_rows), "the recomputed mask must match GX's own count"
    assert set(clean["id"]).isdisjoint(quarantine["id"])


def test_duplicate_ids_keep_the_first_occurrence():
    df = _tiny_frame()
    df.loc[[3, 8], "id"] = ["r1", "r1"]
    suite = _suite(_exp(UNIQUE, "critical", True, column="id", mostly=0.5))
    report, clean, quarantine = validate_frame(_tiny_spec(), df, suite)
    (entry,) = [r for r in report["results"] if r.get("check") != "finite"]
    assert entry["unexpected_count"] == 3, "GX counts every occurrence of a repeated id"
    assert quarantine["x"].tolist() == [3.0, 8.0] and entry["quarantined_rows"] == 2
    assert clean["id"].is_unique and "r1" in set(clean["id"])


def test_quarantine_reason_lists_every_broken_expectation():
    df = _set(_set(_tiny_frame(), "x", [2], 99.0), "y", [2, 5], 3)
    suite = _suite(_exp(BETWEEN, "critical", True, column="x", min_value=0, max_value=9, mostly=0.5),
                   _exp(IN_SET, "critical", True, column="y", value_set=[0, 1], mostly=0.5))
    report, clean, quarantine = validate_frame(_tiny_spec(), df, suite)
    reasons = dict(zip(quarantine["id"], quarantine[REASON_COLUMN]))
    assert reasons == {"r2": f"{BETWEEN}(x); {IN_SET}(y)", "r5": f"{IN_SET}(y)"}
    assert report["quarantine_reasons"] == {f"{BETWEEN}(x)": 1, f"{IN_SET}(y)": 2}
    assert REASON_COLUMN not in clean.columns
    assert len(clean) + len(quarantine) == len(df) and report["valid_rows"] == len(clean)


@pytest.mark.parametrize("limit,min_rows,success,problem", [
    (0.3, 0, True, None),
    (0.2, 0, False, "over the limit of 20.00%"),
    (1.0, 8, False, "only 7 valid rows remain, fewer than 8"),
])
def test_quarantine_fraction_and_min_rows_limits(limit, min_rows, success, problem):
    df = _set(_tiny_frame(), "x", [0, 1, 2], np.nan)
    suite = _suite(_exp(NOT_NULL, "critical", True, column="x", mostly=0.5))
    report, _, quarantine = validate_frame(_tiny_spec(limit, min_rows), df, suite)
    assert len(quarantine) == 3 and report["quarantine_fraction"] == pytest.approx(0.3)
    assert report["success"] is success
    assert report["failures"] == []
    if problem:
        assert any(problem in p for p in report["problems"]), report["problems"]


def test_missing_column_fails_each_expectation_on_it_with_its_severity():
    df = _tiny_frame().drop(columns=["x"]).rename(columns={"c": "category"})
    suite = _suite(_exp(COLUMNS, column_set=["id", "ts", "x", "c", "y"], exact_match=False),
                   _exp(NOT_NULL, "critical", True, column="x"),
                   _exp(IN_SET, "warning", False, column="c", value_set=["a", "b"]),
                   _exp(IN_SET, "critical", True, column="y", value_set=[0, 1]))
    report, clean, quarantine = validate_frame(_tiny_spec(), df, suite)
    assert not report["success"]
    assert _names(report["failures"]) == [f"{NOT_NULL}(x)", COLUMNS]
    assert _names(report["warnings"]) == [f"{IN_SET}(c)"]
    columns_failure = next(f for f in report["failures"] if f["expectation"] == COLUMNS)
    assert columns_failure["observed"] == {"missing": ["c", "x"], "unexpected": ["category"]}
    assert "missing columns ['c', 'x'], extra columns ['category']" in columns_failure["message"]
    assert f"{NOT_NULL}(x): column 'x' is missing from the data" in report["problems"]
    assert len(clean) == 10 and quarantine.empty


@pytest.mark.parametrize("expectation,match", [
    (_exp(NOT_NULL, "fatal", column="x"), "severity 'fatal'"),
    (_exp(ROW_COUNT, "critical", True, min_value=1), "only these identify rows"),
    ({"type": NOT_NULL, "kwargs": {"column": "x"}, "meta": {"row_level": "yes"}}, "row_level 'yes'"),
    ({"kwargs": {"column": "x"}}, "not an object with a 'type'"),
])
def test_malformed_suites_are_rejected_by_name(expectation, match):
    with pytest.raises(InvalidSuite, match=match):
        validate_frame(_tiny_spec(), _tiny_frame(), _suite(expectation))


def test_meta_defaults_to_critical_and_not_row_level():
    df = _set(_tiny_frame(), "x", [0], np.nan)
    report, _, quarantine = validate_frame(_tiny_spec(), df, _suite({"type": NOT_NULL, "kwargs": {"column": "x"}}))
    assert _names(report["failures"]) == [f"{NOT_NULL}(x)"] and quarantine.empty


def test_load_suite_missing_names_the_path_and_the_command(spec, tmp_path):
    with pytest.raises(SuiteNotFound) as err:
        load_suite(spec, tmp_path)
    assert str(tmp_path / "credit_default.json") in str(err.value)
    assert "suggest-suite credit_default" in str(err.value)
    (tmp_path / "credit_default.json").write_text("{not json")
    with pytest.raises(InvalidSuite, match="not valid JSON"):
        load_suite(spec, tmp_path)


def test_module_imports_without_great_expectations():
    code = "import sys, pipeline.validate; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ----- realistic runs on demo data -----

@pytest.fixture(scope="module")
def shipped_suite():
    from pipeline.config import Settings, load_spec

    spec = load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env({}))
    return load_suite(spec)


def test_shipped_suite_meta_and_categorical_sets_are_warnings(shipped_suite):
    for exp in shipped_suite["expectations"]:
        assert exp["meta"]["severity"] in ("critical", "warning")
        assert isinstance(exp["meta"]["row_level"], bool)
        if exp["type"] == IN_SET and exp["kwargs"]["column"] != "defaulted":
            assert exp["meta"] == {"severity": "warning", "row_level": False}
    criticals = {(e["type"], e["kwargs"].get("column")) for e in shipped_suite["expectations"]
                 if e["meta"]["severity"] == "critical"}
    assert {(BETWEEN, "age"), (BETWEEN, "credit_score"), (IN_SET, "defaulted"), (UNIQUE, "application_id"),
            (COLUMNS, None)} <= criticals


def test_shipped_suite_passes_clean_and_drifted_days(spec, shipped_suite):
    clean_day = demo_days(DAY, 1)
    report, clean, quarantine = validate_frame(spec, clean_day, shipped_suite)
    assert report["success"] and report["failures"] == [] and report["warnings"] == []
    assert len(clean) == len(clean_day) and quarantine.empty

    drifted = demo_days(DAY, 1, drift_day=DAY, drift_kind="covariate")
    report, clean, _ = validate_frame(spec, drifted, shipped_suite)
    assert report["success"], report["problems"]
    assert f"{IN_SET}(channel)" in _names(report["warnings"])
    assert len(clean) == len(drifted), "an unseen category is drift, not bad data"


EXPECTED_BY_BAD_KIND = {
    "nulls": [f"{NOT_NULL}(credit_score)", f"{NOT_NULL}(defaulted)"],
    "schema": [COLUMNS, f"{NOT_NULL}(credit_score)", f"{NOT_NULL}(income)"],
    "range": [f"{BETWEEN}(age)", f"{BETWEEN}(credit_score)"],
    "duplicates": [f"{UNIQUE}(application_id)"],
}


@pytest.mark.parametrize("bad_kind", BAD_KINDS)
def test_shipped_suite_catches_every_bad_kind(spec, shipped_suite, bad_kind):
    day = demo_days(DAY, 1, bad_day=DAY, bad_kind=bad_kind)
    report, clean, quarantine = validate_frame(spec, day, shipped_suite)
    assert not report["success"]
    assert set(EXPECTED_BY_BAD_KIND[bad_kind]) <= set(_names(report["failures"])), report["problems"]
    assert len(clean) + len(quarantine) == len(day) == report["rows"]
    if bad_kind == "schema":
        assert any("missing columns ['credit_score', 'income'], extra columns ['annual_income']" in p
                   for p in report["problems"])
    else:
        assert report["quarantine_fraction"] > spec.validation.max_quarantine_fraction
        assert quarantine[REASON_COLUMN].str.len().gt(0).all()
    if bad_kind == "range":
        bad = (day["age"] < 18) | (day["age"] > 120) | (day["credit_score"] > 850)
        assert sorted(quarantine["application_id"]) == sorted(day.loc[bad, "application_id"])


def test_suggested_suite_passes_clean_days_and_fails_broken_ones(spec, demo_frame):
    suite = suggest_suite(spec, demo_frame)
    assert json.loads(json.dumps(suite)) == suite
    by_key = {(e["type"], e["kwargs"].get("column")): e for e in suite["expectations"]}
    assert by_key[(IN_SET, "channel")]["kwargs"]["value_set"] == ["branch", "broker", "online"]
    assert by_key[(IN_SET, "channel")]["meta"] == {"severity": "warning", "row_level": False}
    assert by_key[(UNIQUE, "application_id")]["meta"] == {"severity": "critical", "row_level": True}
    assert by_key[(NOT_NULL, "months_employed")]["meta"]["severity"] == "warning"
    assert 0.9 < by_key[(NOT_NULL, "months_employed")]["kwargs"]["mostly"] < 0.97
    assert by_key[(BETWEEN, "income")]["kwargs"]["min_value"] == 0.0
    assert by_key[(ROW_COUNT, None)]["kwargs"] == {"min_value": spec.validation.min_rows}

    later = demo_days(DAY, 2)
    report, _, _ = validate_frame(spec, later, suite)
    assert report["success"] and report["failures"] == [], report["problems"]
    for bad_kind in ("nulls", "duplicates"):
        broken = demo_days(DAY, 2, bad_day=DAY, bad_kind=bad_kind)
        report, _, _ = validate_frame(spec, broken, suite)
        assert not report["success"]
        assert set(EXPECTED_BY_BAD_KIND[bad_kind]) <= set(_names(report["failures"]))


def _write_snapshot(store: Store, prefix: str, frame: pd.DataFrame, window=None) -> str:
    uri = store.write_parquet(join(prefix, "snapshot.parquet"), frame)
    if window:
        store.write_json(join(prefix, "snapshot.json"), {"window_start": window[0], "window_end": window[1]})
    return uri


def test_validate_writes_every_artifact_and_keeps_them_on_failure(spec, shipped_suite, tmp_path):
    store = Store.for_uri(str(tmp_path))
    good = _write_snapshot(store, str(tmp_path / "good"), demo_days(DAY, 1))
    report = validate(spec, good, store, str(tmp_path / "good"))
    assert report.success and report.suite_name == "credit_default"
    assert report.rows == report.valid_rows == 2000
    written = store.read_json(report.report_uri)
    assert written["success"] and written["clean_uri"] == report.clean_uri
    assert len(store.read_parquet(report.clean_uri)) == 2000
    assert store.read_parquet(report.quarantine_uri).empty
    html = (tmp_path / "good" / "data_docs" / "index.html").read_text()
    assert report.data_docs_uri == str(tmp_path / "good" / "data_docs" / "index.html")
    assert "credit_default" in html

    bad_prefix = str(tmp_path / "bad")
    bad = _write_snapshot(store, bad_prefix, demo_days(DAY, 1, bad_day=DAY, bad_kind="range"))
    with pytest.raises(ValidationFailed) as err:
        validate(spec, bad, store, bad_prefix, suite=shipped_suite)
    message = str(err.value)
    assert f"{BETWEEN}(age)" in message and "-5.0" in message and "170.0" in message
    assert join(bad_prefix, "validation.json") in message
    failed = err.value.report
    quarantine = store.read_parquet(failed.quarantine_uri)
    assert len(quarantine) == failed.quarantined_rows > 0
    assert len(quarantine) + len(store.read_parquet(failed.clean_uri)) == 2000
    assert not store.read_json(failed.report_uri)["success"]
    assert store.exists(join(bad_prefix, "data_docs", "index.html"))


def test_validate_quarantines_rows_outside_the_snapshot_window(spec, shipped_suite, tmp_path):
    store = Store.for_uri(str(tmp_path))
    frame = demo_days(DAY, 1)
    cut = frame["event_time"].iloc[1950]
    expected_out = int((frame["event_time"] >= cut).sum())
    uri = _write_snapshot(store, str(tmp_path), frame, ("2026-02-01T00:00:00+00:00", cut.isoformat()))
    report = validate(spec, uri, store, str(tmp_path), suite=shipped_suite)
    assert report.quarantined_rows == expected_out
    reasons = set(store.read_parquet(report.quarantine_uri)[REASON_COLUMN])
    assert reasons == {f"{BETWEEN}(event_time)"}


@pytest.mark.integration
def test_validate_on_s3(spec, shipped_suite, s3_client, s3_bucket):
    store = Store.for_uri("s3://x", s3_client)
    prefix = f"s3://{s3_bucket}/credit_default/runs/2026-02-01"
    uri = _write_snapshot(store, prefix, demo_days(DAY, 1, rows_per_day=800))
    report = validate(spec, uri, store, prefix, suite=shipped_suite)
    assert report.success and report.report_uri == f"{prefix}/validation.json"
    keys = store.list(prefix)
    for name in ("validation.json", "clean.parquet", "quarantine.parquet", "data_docs/index.html"):
        assert f"{prefix}/{name}" in keys
    assert len(store.read_parquet(report.clean_uri)) == 800


def test_non_finite_values_are_quarantined_by_a_built_in_check():
    df = _set(_set(_tiny_frame(), "x", [2], np.inf), "x", [4], -np.inf)
    report, clean, quarantine = validate_frame(_tiny_spec(), df, _suite())
    (entry,) = report["results"]
    assert entry["check"] == "finite" and entry["severity"] == "critical" and entry["quarantined_rows"] == 2
    assert sorted(quarantine["id"]) == ["r2", "r4"] and np.isfinite(clean["x"]).all()
    assert report["quarantine_reasons"] == {"non_finite(x)": 2}
    assert entry["message"].startswith("non-finite values in x (inf or -inf): 2 of 10 values unexpected")
    report, _, _ = validate_frame(_tiny_spec(max_quarantine_fraction=0.1), df, _suite())
    assert not report["success"] and "non-finite values in x" in report["problems"][0]


def test_the_shipped_demo_suite_raises_no_warning_on_clean_data_and_stops_impossible_values(spec):
    suite = load_suite(spec)
    clean_days = demo_days(DAY, 7, rows_per_day=2000)
    report, _, quarantine = validate_frame(spec, clean_days, suite)
    assert report["success"] and report["warnings"] == [] and len(quarantine) == 0
    bad = clean_days.copy()
    bad.loc[:100, "income"] = 1e308
    report, clean, quarantine = validate_frame(spec, bad, suite)
    assert len(quarantine) == 101 and clean["income"].max() < 1e8
    assert report["quarantine_reasons"]["expect_column_values_to_be_between(income)"] == 101


def test_an_unknown_expectation_type_names_the_suite_file_and_the_index(spec, tmp_path):
    suite = json.loads((REPO / "expectations" / "credit_default.json").read_text())
    suite["expectations"][3]["type"] = "expect_column_values_to_not_be_nul"
    (tmp_path / "credit_default.json").write_text(json.dumps(suite))
    loaded = load_suite(spec, tmp_path)
    with pytest.raises(InvalidSuite) as err:
        validate_frame(spec, demo_days(DAY, 1, rows_per_day=50), loaded)
    msg = str(err.value)
    assert str(tmp_path / "credit_default.json") in msg and "expectation #3" in msg
    assert "unknown type 'expect_column_values_to_not_be_nul'" in msg and "expect_column_values_to_not_be_null" in msg


def test_shipped_suite_is_quiet_on_a_large_clean_window(spec, shipped_suite):
    """A training window of clean demo data (60 days, 120k rows) raises no warning: warnings
    must mean something. Heavy tails (0.5 % income outliers) put a handful of rows beyond any
    sample's maximum, so typical ranges warn only above 0.1 % of the values."""
    window = demo_days(DAY, 60, rows_per_day=2000)
    report, clean, quarantine = validate_frame(spec, window, shipped_suite)
    assert report["success"] and report["failures"] == [], report["problems"]
    assert report["warnings"] == [], report["warnings"]
    assert len(clean) == len(window) and quarantine.empty
    typical = [e for e in shipped_suite["expectations"] if e["meta"].get("range") == "typical"]
    assert typical and all(e["kwargs"]["mostly"] == 0.999 for e in typical)


def test_suites_are_found_beside_the_specs_folder(tmp_path, settings):
    """A config folder outside the repository (DRIFTLINE_CONFIG_DIR) finds its suites in the
    expectations/ folder beside it, or where the spec's expectations_dir says."""
    from pipeline.config import load_spec

    text = (REPO / "config" / "credit_default.yaml").read_text()
    (tmp_path / "config").mkdir()
    (tmp_path / "expectations").mkdir()
    (tmp_path / "config" / "credit_default.yaml").write_text(text)
    mine = {"name": "credit_default", "expectations": [], "meta": {"mine": True}}
    (tmp_path / "expectations" / "credit_default.json").write_text(json.dumps(mine))
    spec = load_spec(tmp_path / "config" / "credit_default.yaml", settings)
    assert spec.expectations_dir == str(tmp_path / "expectations")
    assert load_suite(spec)["meta"] == {"mine": True}

    (tmp_path / "config" / "suites").mkdir()
    (tmp_path / "config" / "suites" / "credit_default.json").write_text(json.dumps({**mine, "meta": {"here": 1}}))
    (tmp_path / "config" / "credit_default.yaml").write_text(text + "\nexpectations_dir: suites\n")
    spec = load_spec(tmp_path / "config" / "credit_default.yaml", settings)
    assert load_suite(spec)["meta"] == {"here": 1}

    alone = tmp_path / "elsewhere" / "config"
    alone.mkdir(parents=True)
    (alone / "credit_default.yaml").write_text(text)
    spec = load_spec(alone / "credit_default.yaml", settings)
    assert spec.expectations_dir is None and load_suite(spec)["name"] == "credit_default", "the repository's suite"


def test_the_static_list_of_gx_expectation_types_is_gxs_registry():
    """Suites are checked without importing GX; the list must stay GX's own."""
    from great_expectations.expectations.registry import list_registered_expectation_implementations

    from pipeline.validate import GX_EXPECTATION_TYPES, _import_gx

    _import_gx()
    assert GX_EXPECTATION_TYPES == set(list_registered_expectation_implementations())


def test_a_retrain_validation_with_pending_docs_never_imports_gx_and_renders_the_same_docs_later(tmp_path):
    """The critical path of a retrain validates without importing GX (about 2 s); the Data Docs
    rendered later from the stored results show every expectation with GX's result."""
    script = f"""
import json, sys
from pipeline.config import REPO_ROOT, Settings, load_spec
from pipeline.storage import Store
from pipeline.validate import validate
from tests.conftest import demo_days
from datetime import date
spec = load_spec(REPO_ROOT / "config" / "credit_default.yaml", Settings.from_env({{}}))
df = demo_days(date(2026, 2, 1), 2, rows_per_day=300)
df.loc[::40, "income"] = None
store = Store.for_uri({str(tmp_path)!r})
store.write_parquet({str(tmp_path / "snapshot.parquet")!r}, df)
report = validate(spec, {str(tmp_path / "snapshot.parquet")!r}, store, {str(tmp_path / "out")!r},
                  labelled_before="2026-02-02", render_docs=False)
print(json.dumps({{"gx": "great_expectations" in sys.modules, "pending": report.data_docs_pending}}))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"gx": False, "pending": True}
    out_dir = tmp_path / "out"
    assert not (out_dir / "data_docs").exists()
    stored = json.loads((out_dir / "gx_results.json").read_text())
    assert all(r["result"] is not None and "success" in r["result"] for r in stored["results"])

    uri = render_data_docs(Store.for_uri(str(tmp_path)), str(out_dir))
    page = next((out_dir / "data_docs" / "validations").rglob("*.html")).read_text()
    assert uri.endswith("index.html") and json.loads((out_dir / "validation.json").read_text())["data_docs_pending"] is False
    assert "income" in page and "Severity" in page


def test_results_gx_computes_itself_are_stored_as_gx_json_and_rendered_later(tmp_path):
    """An expectation gx_native leaves to GX (here a column mean) is computed by GX, stored in
    gx_results.json as GX's own JSON beside the native ones, and shown by the Data Docs rendered
    later from that file."""
    from pipeline import gx_native

    df = _tiny_frame()
    suite = _suite(_exp(NOT_NULL, "critical", True, column="x"),
                   _exp("expect_column_mean_to_be_between", "warning", column="x", min_value=-1e9, max_value=1e9))
    assert gx_native.evaluate(df, suite["expectations"][1]) is None  # left to GX
    store = Store.for_uri(str(tmp_path))
    store.write_parquet(str(tmp_path / "snapshot.parquet"), df)
    out = str(tmp_path / "out")
    report = validate(_tiny_spec(), str(tmp_path / "snapshot.parquet"), store, out, suite=suite, render_docs=False)
    assert report.data_docs_pending
    stored = json.loads((tmp_path / "out" / "gx_results.json").read_text())
    by_type = {r["expectation"]["type"]: r["result"] for r in stored["results"]}
    assert by_type["expect_column_mean_to_be_between"]["success"] is True
    assert "observed_value" in by_type["expect_column_mean_to_be_between"]["result"]
    assert by_type[NOT_NULL]["result"]["element_count"] == len(df)
    render_data_docs(store, out)
    page = next((tmp_path / "out" / "data_docs" / "validations").rglob("*.html")).read_text()
    assert "mean" in page and "Severity" in page
