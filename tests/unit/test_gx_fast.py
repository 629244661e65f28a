"""pipeline.gx_fast: the column-wise engine gives GX's own results, expectation by expectation.

Each case validates one frame twice, with GX's pandas engine and with FastPandasEngine, and
compares the whole result of every expectation (success, counts, percentages, the partial
unexpected values, their counts and indices, exception info)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import validate as v


def _e(kind: str, **kwargs):
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "critical", "row_level": False}}


def _frame(n: int = 400, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n) * 10
    x[::17] = np.nan
    x[5] = np.inf
    x[6] = -np.inf
    ints = rng.integers(-5, 50, size=n)
    colour = rng.choice(["red", "green", "blue", "mauve"], size=n).astype(object)
    colour[::13] = None
    mixed = colour.copy()
    mixed[7] = 42  # a number among strings: GX checks such a column value by value
    ids = np.arange(n).astype(str).astype(object)
    ids[10] = ids[11] = ids[12] = "dup"
    ids[20] = None
    ts = pd.Series(pd.date_range("2026-01-01", periods=n, freq="h")).astype("datetime64[us]")
    ts[3] = pd.NaT
    label = pd.Series(rng.integers(0, 2, size=n).astype(float))
    label[::9] = 2.0
    label[::31] = np.nan
    return pd.DataFrame({"x": x, "ints": ints, "colour": pd.Series(colour, dtype="str"),
                         "colour_object": pd.Series(colour, dtype=object), "mixed": pd.Series(mixed, dtype=object),
                         "id": pd.Series(ids, dtype="str"), "ts": ts, "ts_ns": ts.astype("datetime64[ns]"),
                         "label": label})


CASES = [
    _e("expect_table_row_count_to_be_between", min_value=10),
    _e("expect_table_columns_to_match_set", column_set=["x", "ints", "nope"], exact_match=False),
    _e("expect_column_values_to_not_be_null", column="x"),
    _e("expect_column_values_to_not_be_null", column="colour", mostly=0.9),
    _e("expect_column_values_to_not_be_null", column="ts"),
    _e("expect_column_values_to_be_between", column="x", min_value=-15, max_value=15, mostly=0.8),
    _e("expect_column_values_to_be_between", column="x", min_value=-15, max_value=15, strict_min=True,
       strict_max=True),
    _e("expect_column_values_to_be_between", column="x", min_value=-1.7976931348623157e308,
       max_value=1.7976931348623157e308),
    _e("expect_column_values_to_be_between", column="x", max_value=3.5),
    _e("expect_column_values_to_be_between", column="ints", min_value=0, strict_min=True),
    _e("expect_column_values_to_be_between", column="ints", min_value=10, max_value=0),
    _e("expect_column_values_to_be_between", column="mixed", min_value=0, max_value=100),
    _e("expect_column_values_to_be_between", column="ts", min_value="2026-01-02T00:00:00",
       max_value="2026-01-10T00:00:00", strict_max=True),
    _e("expect_column_values_to_be_between", column="ts_ns", min_value="2026-01-02T00:00:00",
       max_value="2026-01-10T00:00:00", strict_max=True),
    _e("expect_column_values_to_be_in_set", column="colour", value_set=["red", "green", "blue"]),
    _e("expect_column_values_to_be_in_set", column="label", value_set=[0, 1], mostly=0.5),
    _e("expect_column_values_to_be_in_set", column="label", value_set=[0, 1],
       row_condition="ints > 10", condition_parser="pandas"),
    _e("expect_column_values_to_not_be_null", column="label", row_condition="ints > 10",
       condition_parser="pandas"),
    _e("expect_column_values_to_be_unique", column="id"),
    _e("expect_column_values_to_be_unique", column="id", mostly=0.99),
    _e("expect_column_values_to_be_in_type_list", column="colour", type_list=["str"]),
    _e("expect_column_values_to_be_in_type_list", column="colour_object", type_list=["str"]),
    _e("expect_column_values_to_be_in_type_list", column="colour", type_list=["int64"]),
    _e("expect_column_values_to_be_in_set", column="colour_object", value_set=["red", "blue"]),
    _e("expect_column_value_lengths_to_be_between", column="colour", min_value=3, max_value=4),
    _e("expect_column_values_to_be_in_type_list", column="mixed", type_list=["str"]),
    _e("expect_column_values_to_be_in_type_list", column="x", type_list=["float64", "int64"]),
    _e("expect_column_values_to_be_in_type_list", column="ts", type_list=["datetime64[ns]"]),
    _e("expect_column_values_to_be_in_type_list", column="missing_column", type_list=["str"]),
    _e("expect_column_mean_to_be_between", column="ints", min_value=0, max_value=100),
]


def _comparable(result) -> dict:
    out = result.to_json_dict()
    out.pop("expectation_config", None)
    info = out.pop("exception_info", None) or {}
    # Keyed by metric ids that embed each run's batch id; tracebacks differ by stack frames.
    entries = [info] if "raised_exception" in info else list(info.values())
    out["errors"] = sorted((str(e.get("exception_message")), bool(e.get("raised_exception"))) for e in entries)
    return out


@pytest.mark.parametrize("frame", [_frame(), _frame(60, seed=4).iloc[:0]], ids=["adversarial", "empty"])
def test_fast_engine_gives_gx_results_expectation_by_expectation(frame, monkeypatch):
    from pipeline import gx_fast

    computed: set[str] = set()
    original = gx_fast.FastPandasEngine._fast

    def recording(self, config, metrics):
        value = original(self, config, metrics)
        if value is not gx_fast._NOT_FAST:
            computed.add(config.metric_name)
        return value

    monkeypatch.setattr(gx_fast.FastPandasEngine, "_fast", recording)
    # GX's own engine on the object view it needs; the fast one on the compact frame the pipeline keeps.
    slow = v._run_gx(v._gx_view(frame, strings_as_object=True), "conformance", CASES, fast=False)
    fast = v._run_gx(v._gx_view(frame), "conformance", CASES, fast=True)
    # The column-wise path really ran (it is not everything falling back to GX).
    for kind in ("nonnull", "between", "in_set", "unique", "in_type_list"):
        assert f"column_values.{kind}.condition" in computed, kind
    assert {"column_values.between.unexpected_values", "column_values.unique.unexpected_index_list"} <= computed
    assert len(slow) == len(fast) == len(CASES)
    for exp, a, b in zip(CASES, slow, fast):
        assert _comparable(b) == _comparable(a), (exp["type"], exp["kwargs"])
    if len(frame):
        # The cases do exercise failures, partial lists and errors, not only clean passes.
        assert sum(not r.success for r in slow) >= 10
        assert any((r.result or {}).get("partial_unexpected_list") for r in slow)


def test_fast_engine_matches_gx_on_a_window_of_demo_rows():
    from tests.conftest import DEMO_START, demo_days

    df = demo_days(DEMO_START, 3, rows_per_day=300)
    df.loc[::50, "income"] = 1e308
    df.loc[::70, "credit_utilization"] = np.nan
    spec_suite = v.load_suite(_spec())
    expectations = v._checked_expectations(v._with_finite(v._with_window(spec_suite, _spec(), str(DEMO_START),
                                                                         "2026-01-03"), _spec(), df))
    slow = v._run_gx(v._gx_view(df, strings_as_object=True), "demo", expectations, fast=False)
    fast = v._run_gx(v._gx_view(df), "demo", expectations, fast=True)
    for exp, a, b in zip(expectations, slow, fast):
        assert _comparable(b) == _comparable(a), (exp["type"], exp["kwargs"])


def _spec():
    from pipeline.config import REPO_ROOT, Settings, load_spec

    return load_spec(REPO_ROOT / "config" / "credit_default.yaml", Settings.from_env({}))
