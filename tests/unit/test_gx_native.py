"""pipeline.gx_native: GX's own SUMMARY results, computed without Great Expectations.

Every frame is validated by GX's pandas engine (on the object view it needs) and by
``gx_native.evaluate`` (on the view the pipeline keeps); wherever ``evaluate`` answers, its dict
must equal GX's ``to_json_dict()`` without ``expectation_config``, key for key. Where it answers
``None`` the caller runs GX; the coverage test pins which cases those are, so a fallback cannot
hide a gap."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline import gx_native
from pipeline import validate as v
from tests.unit.test_gx_fast import CASES, _e, _frame, _spec

# CASES that GX reports as errors or that are types gx_native leaves to GX.
_CASES_TO_GX = {
    ("expect_column_values_to_be_between", "mixed"),  # numbers against strings: GX raises
    ("expect_column_value_lengths_to_be_between", "colour"),  # not a supported type
    ("expect_column_values_to_be_in_type_list", "missing_column"),  # GX raises
    ("expect_column_mean_to_be_between", "ints"),  # not a supported type
}


def _to_gx(exp: dict) -> bool:
    kwargs = exp["kwargs"]
    if "min_value" in kwargs and "max_value" in kwargs and kwargs["min_value"] > kwargs["max_value"]:
        return True  # GX raises "min_value cannot be greater than max_value"
    return (exp["type"], kwargs.get("column")) in _CASES_TO_GX


def _gx(frame: pd.DataFrame, expectations: list[dict]) -> list[dict]:
    """GX's own engine, each result as to_json_dict() without expectation_config."""
    results = v._run_gx(v._gx_view(frame, strings_as_object=True), "native", expectations, fast=False)
    out = []
    for result in results:
        d = result.to_json_dict()
        d.pop("expectation_config", None)
        out.append(d)
    return out


def _conform(frame: pd.DataFrame, expectations: list[dict]) -> list[dict | None]:
    """``evaluate`` on every expectation, asserting it equals GX wherever it answers."""
    reference = _gx(frame, expectations)
    view = v._gx_view(frame)
    mine = [gx_native.evaluate(view, exp) for exp in expectations]
    for exp, ours, theirs in zip(expectations, mine, reference):
        if ours is not None:
            assert ours == theirs, (exp["type"], exp["kwargs"], ours, theirs)
            json.dumps(ours)  # JSON-ready (inf stays a float, as in GX's own dict)
    return mine


@pytest.mark.parametrize("frame", [_frame(), _frame(60, seed=4).iloc[:0]], ids=["adversarial", "empty"])
def test_evaluate_gives_gx_results_on_the_cases(frame):
    mine = _conform(frame, CASES)
    for exp, ours in zip(CASES, mine):
        assert (ours is None) == _to_gx(exp), (exp["type"], exp["kwargs"])
    if len(frame):  # the cases exercise failures, partial lists and lost counts, not only passes
        assert sum(1 for r in mine if r is not None and not r["success"]) >= 10
        assert any(r and len(r["result"].get("partial_unexpected_list", [])) == 20 for r in mine)


def _demo_expectations(df: pd.DataFrame, before: str) -> list[dict]:
    """The shipped suite with every check the pipeline adds: window, finite, labels-before."""
    from tests.conftest import DEMO_START

    spec = _spec()
    suite = v._with_finite(v._with_window(v.load_suite(spec), spec, str(DEMO_START), "2026-01-03"), spec, df)
    return v._checked_expectations(v._labels_before(suite, spec, before))


def _demo_frame() -> pd.DataFrame:
    from tests.conftest import DEMO_START, demo_days

    df = demo_days(DEMO_START, 3, rows_per_day=100)
    df.loc[::50, "income"] = 1e308
    df.loc[::45, "income"] = np.inf
    df.loc[::70, "credit_utilization"] = np.nan
    df.loc[::33, "home_ownership"] = None
    df.loc[5, "application_id"] = df.loc[6, "application_id"]
    df.loc[::90, "event_time"] = pd.NaT
    df.loc[7, "age"] = 12.0
    return df


def test_evaluate_matches_gx_on_demo_rows_with_the_pipelines_checks():
    """The shipped suite plus _with_window / _with_finite / _labels_before (datetime bounds as
    ISO strings, a row_condition on the timestamp) on demo rows, then again after the late
    labels are masked (the target becomes a nullable Int64 with missing values)."""
    df = _demo_frame()
    before = "2026-01-02T12:00:00"
    expectations = _demo_expectations(df, before)
    assert any(e["kwargs"].get("row_condition") for e in expectations)
    assert any(isinstance(e["kwargs"].get("min_value"), str) for e in expectations)
    mine = _conform(df, expectations)
    assert all(r is not None for r in mine), [e for e, r in zip(expectations, mine) if r is None]
    assert any(not r["success"] for r in mine)
    masked = v.mask_unlabelled(_spec(), df, before)
    assert str(masked["defaulted"].dtype) == "Int64"
    mine = _conform(masked, expectations)
    assert all(r is not None for r in mine), [e for e, r in zip(expectations, mine) if r is None]


# --------------------------------------------------------------------------------------------
# seeded fuzz over dtypes and kwargs

_TYPE_LISTS = [["str"], ["int64"], ["float64", "int64"], ["datetime64[ns]"], ["datetime64[us]"], ["bool"],
               ["Int64Dtype"], ["int", "float"], ["object"], ["str", "int"], list(v._NUMERIC_TYPES),
               list(v._DATETIME_TYPES), ["float"], ["NoneType", "str"]]
_CONDITIONS = ["`i` > 3", "`f` < 0.5", '`ts` < "2026-01-01T12:00:00"', "`b`", "`s` == 'a'", "`I` >= 2"]


def _fuzz_frame(rng: np.random.Generator, n: int, index: str) -> pd.DataFrame:
    def holes(values, fill, p=0.15):
        values = np.array(values, dtype=object)
        values[rng.random(n) < p] = fill
        return values

    f = rng.normal(size=n) * 3
    f[rng.random(n) < 0.15] = np.nan
    f[rng.random(n) < 0.05] = np.inf
    f[rng.random(n) < 0.05] = -np.inf
    letters = rng.choice(["a", "b", "c", "dd"], size=n)
    mixed = holes(letters, None)
    mixed[rng.random(n) < 0.1] = np.nan
    mixed[rng.random(n) < 0.1] = 7
    mixed[rng.random(n) < 0.05] = 2.5
    ts = pd.Series(pd.date_range("2026-01-01", periods=n, freq="37min")).astype("datetime64[us]")
    ts[rng.random(n) < 0.1] = pd.NaT
    frame = pd.DataFrame({
        "f": f,
        "i": rng.integers(-3, 9, size=n),
        "I": pd.array(holes(rng.integers(0, 5, size=n), None), dtype="Int64"),
        "i32": rng.integers(-100, 100, size=n).astype("int32"),
        "f32": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)).astype("float32"),
        "u8": rng.integers(0, 20, size=n).astype("uint8"),
        "b": rng.random(n) < 0.5,
        "s": pd.Series(holes(letters, None), dtype="str"),
        "o": pd.Series(mixed, dtype=object),
        "os": pd.Series(holes(letters, None), dtype=object),
        "ts": ts,
        "tsn": ts.astype("datetime64[ns]"),
        "big": rng.integers(2**60, 2**60 + 5, size=n),
    })
    if index == "shuffled":
        frame.index = rng.permutation(n) * 3
    elif index == "labels":
        frame.index = [f"r{k}" for k in range(n)]
    return frame


def _fuzz_expectations(rng: np.random.Generator, frame: pd.DataFrame, count: int) -> list[dict]:
    columns = list(frame.columns)
    out: dict[str, dict] = {}

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    def mostly(kwargs):
        if rng.random() < 0.4:
            kwargs["mostly"] = pick([0.5, 0.8, 0.9, 0.95, 1, 0.0])

    def condition(kwargs, p=0.3):
        if rng.random() < p:
            kwargs.update(row_condition=pick(_CONDITIONS), condition_parser="pandas")

    def bound(column):
        series = frame[column].dropna()
        if column in ("ts", "tsn"):
            stamp = pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=int(rng.integers(0, 37 * len(frame))))
            return pick([stamp.isoformat(), stamp.isoformat(sep=" "), stamp.to_pydatetime()])
        numbers = pd.to_numeric(series, errors="coerce").dropna()
        if series.dtype == object or isinstance(series.dtype, pd.StringDtype):
            return pick([1.0, 3])  # numbers against strings: GX raises, left to GX
        value = float(numbers.iloc[int(rng.integers(len(numbers)))]) if len(numbers) else 0.0
        if not np.isfinite(value):
            return pick([value, "1.5", 2])
        return pick([value, round(value), str(round(value, 1))])

    while len(out) < count:
        kind = pick(sorted(gx_native.SUPPORTED_TYPES))
        column = pick(columns)
        kwargs: dict = {}
        if kind == "expect_table_row_count_to_be_between":
            low = pick([None, 0, 5, 10.7, len(frame), len(frame) + 1])
            high = pick([None, len(frame), 20, 1000])
            if low is None and high is None or (low is not None and high is not None and low > high):
                continue
            kwargs = {k: x for k, x in (("min_value", low), ("max_value", high)) if x is not None}
            kwargs.update({k: True for k in ("strict_min", "strict_max") if rng.random() < 0.3})
            condition(kwargs)
        elif kind == "expect_table_columns_to_match_set":
            chosen = [c for c in columns if rng.random() < 0.7] + (["nope"] if rng.random() < 0.3 else [])
            kwargs = {"column_set": chosen}
            if rng.random() < 0.7:
                kwargs["exact_match"] = bool(rng.random() < 0.5)
        else:
            kwargs = {"column": column}
            mostly(kwargs)
            condition(kwargs)
            if kind == "expect_column_values_to_be_between":
                low, high = bound(column), bound(column)
                key = pd.Timestamp if column in ("ts", "tsn") else float
                if key(low) > key(high) and rng.random() < 0.8:  # some min > max, which GX reports as errors
                    low, high = high, low
                which = rng.random()
                if which < 0.25:
                    kwargs["min_value"] = low
                elif which < 0.5:
                    kwargs["max_value"] = high
                else:
                    kwargs.update(min_value=low, max_value=high)
                kwargs.update({k: True for k in ("strict_min", "strict_max") if rng.random() < 0.3})
            elif kind == "expect_column_values_to_be_in_set":
                present = list(pd.unique(frame[column].dropna()))
                chosen = [x.item() if isinstance(x, np.generic) else x for x in present if rng.random() < 0.5]
                kwargs["value_set"] = chosen + [x for x in (0, 1, "a", 2.5) if rng.random() < 0.3]
            elif kind == "expect_column_values_to_be_in_type_list":
                kwargs["type_list"] = pick(_TYPE_LISTS)
        exp = _e(kind, **kwargs)
        out.setdefault(json.dumps(exp, sort_keys=True, default=str), exp)
    return list(out.values())


@pytest.mark.parametrize("seed,index", [(1, "range"), (2, "range"), (3, "shuffled"), (4, "labels"), (5, "range")])
def test_evaluate_matches_gx_on_random_frames_and_kwargs(seed, index):
    rng = np.random.default_rng(seed)
    frame = _fuzz_frame(rng, int(rng.integers(25, 45)), index)
    expectations = _fuzz_expectations(rng, frame, 45)
    mine = _conform(frame, expectations)
    native = [e for e, r in zip(expectations, mine) if r is not None]
    # Fallbacks are the exception (strings compared with numbers, min > max, ...), not the rule.
    assert len(native) >= 0.7 * len(expectations), [(e["type"], e["kwargs"]) for e, r in zip(expectations, mine)
                                                     if r is None]


# --------------------------------------------------------------------------------------------
# coverage: what is native and what is left to GX


def test_evaluate_answers_every_supported_case_and_leaves_the_rest_to_gx():
    df = _demo_frame()
    view = v._gx_view(df)
    shipped = _demo_expectations(df, "2026-01-02T12:00:00")
    assert {e["type"] for e in shipped} == gx_native.SUPPORTED_TYPES
    for exp in shipped:
        assert gx_native.evaluate(view, exp) is not None, (exp["type"], exp["kwargs"])
    cases = v._gx_view(_frame())
    for exp in CASES:
        assert (gx_native.evaluate(cases, exp) is None) == _to_gx(exp), (exp["type"], exp["kwargs"])

    base = {"column": "x", "min_value": 0, "max_value": 1}
    to_gx = [
        _e("expect_column_values_to_be_between", **base, result_format="COMPLETE"),
        _e("expect_column_values_to_be_between", **base, catch_exceptions=False),
        _e("expect_column_values_to_be_between", **base, parse_strings_as_datetimes=True),
        _e("expect_column_values_to_not_be_null", column="x", unexpected_index_column_names=["id"]),
        _e("expect_column_values_to_not_be_null", column="x", row_condition="ints > 3",
           condition_parser="great_expectations"),
        _e("expect_column_values_to_not_be_null", column="x", row_condition="ints > 3"),
        _e("expect_column_values_to_not_be_null", column="x", row_condition="ints > @limit", condition_parser="pandas"),
        _e("expect_column_values_to_not_be_null", column="x", row_condition="nope > 3", condition_parser="pandas"),
        _e("expect_column_values_to_be_between", column="x", min_value=2, max_value=1),
        _e("expect_column_values_to_be_between", column="x"),
        _e("expect_column_values_to_be_between", column="x", min_value="2026-01-01T00:00:00"),
        _e("expect_column_values_to_be_between", column="ts", min_value=3),
        _e("expect_column_values_to_be_between", column="ts", min_value="2026-01-02"),  # a date, not a datetime
        _e("expect_column_values_to_be_between", column="ts", min_value="2026-01-02T00:00:00+00:00"),
        _e("expect_column_values_to_be_between", column="colour", min_value="a", max_value="m"),
        _e("expect_column_values_to_be_between", column="colour_object", min_value=0),
        _e("expect_column_values_to_be_between", column="x", min_value=0, mostly=1.5),
        _e("expect_column_values_to_be_in_set", column="colour"),
        _e("expect_column_values_to_be_in_type_list", column="colour", type_list=["no_such_type"]),
        _e("expect_column_values_to_not_be_null", column="nope"),
        _e("expect_table_row_count_to_be_between", min_value=5, max_value=1),
        _e("expect_column_values_to_match_regex", column="colour", regex="^r"),
    ]
    for exp in to_gx:
        assert gx_native.evaluate(cases, exp) is None, exp["kwargs"]
    named = cases.rename_axis("row")  # GX reports a named index as dicts, not labels
    assert gx_native.evaluate(named, _e("expect_column_values_to_not_be_null", column="x")) is None
    assert gx_native.evaluate(cases, {"type": "expect_column_values_to_be_unique"}) is None  # no kwargs


def test_importing_and_evaluating_the_demo_suite_leaves_gx_unimported():
    code = """
import sys
from pipeline import gx_native, validate as v
from pipeline.config import REPO_ROOT, Settings, load_spec
from tests.conftest import DEMO_START, demo_days
spec = load_spec(REPO_ROOT / "config" / "credit_default.yaml", Settings.from_env({}))
df = demo_days(DEMO_START, 2, rows_per_day=100)
suite = v._labels_before(v._with_finite(v._with_window(v.load_suite(spec), spec, "2026-01-01", "2026-01-03"), spec, df),
                         spec, "2026-01-02")
view = v._gx_view(df)
results = [gx_native.evaluate(view, {"type": e["type"], "kwargs": e.get("kwargs") or {}, "meta": e.get("meta") or {}})
           for e in suite["expectations"]]
assert all(r is not None for r in results), results
print("great_expectations" in sys.modules, len(results))
"""
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         cwd=str(v.REPO_ROOT))
    assert out.returncode == 0, out.stderr
    loaded, count = out.stdout.split()
    assert loaded == "False" and int(count) > 60


def test_json_conversion_follows_gx():
    j = gx_native._json
    assert j([float("nan"), np.float64("nan"), float("inf"), np.int64(3), np.bool_(True), pd.NaT, None, pd.NA]) == \
        [None, None, float("inf"), 3, True, "NaT", None, None]
    assert j(pd.Timestamp("2026-01-01 01:02:03")) == "2026-01-01T01:02:03"
    assert j(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert j(np.float32(0.5)) == 0.5 and j(pd.Timestamp("2026-01-01").to_datetime64()) == "2026-01-01T00:00:00.000000"


@pytest.mark.parametrize("dtype", ["str", "float64", "Int64", "object"])
def test_duplicate_masks_are_pandas_duplicated_over_the_non_null_values(dtype):
    """One factorisation gives GX's every-occurrence rule and the quarantine's after-the-first
    rule, as pandas' duplicated gives them, on random columns with nulls and empty ones."""
    from pipeline.gx_native import duplicate_masks

    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(0, 40))
        values = rng.integers(0, 8, size=n).astype(float)
        values[rng.random(n) < 0.2] = np.nan
        if dtype in ("str", "object"):
            column = pd.Series([None if np.isnan(v) else str(int(v)) for v in values], dtype=dtype)
        else:
            column = pd.Series(values).astype(dtype)
        present = column.notna().to_numpy()
        repeated, after_first = duplicate_masks(column)
        assert (repeated == (present & column.duplicated(keep=False).to_numpy())).all()
        assert (after_first == (present & column.duplicated(keep="first").to_numpy())).all()
        if dtype == "str":  # an Arrow-backed column's array is one object: its masks are kept
            assert duplicate_masks(column)[0] is repeated
