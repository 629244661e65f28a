"""Out-of-time split, reference profile and the in-model feature preprocessing."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from pipeline.config import parse_spec
from pipeline.features import (
    DerivedFeatures,
    EmptySplitError,
    LeakageError,
    Split,
    _check_no_leakage,
    build_preprocessor,
    output_sources,
    split_and_profile,
    split_frame,
    window_bounds,
)
from pipeline.storage import Store

END = datetime(2026, 1, 20, tzinfo=timezone.utc)


def tiny_spec(train_days: int = 4, valid_days: int = 2, test_days: int = 1, **extra):
    data = {
        "name": "tiny", "task": "binary", "source": {"kind": "lake", "uri": "/tmp/none"},
        "timestamp_column": "ts", "target_column": "y",
        "numeric_features": ["x", "amount", "income"], "categorical_features": ["colour"],
        "derived_features": [
            {"name": "hour", "kind": "date_part", "column": "ts", "part": "hour"},
            {"name": "dow", "kind": "date_part", "column": "ts", "part": "dayofweek"},
            {"name": "amount_to_income", "kind": "ratio", "numerator": "amount", "denominator": "income"},
            {"name": "log_amount", "kind": "log1p", "column": "amount"},
        ],
        "windows": {"train_days": train_days, "valid_days": valid_days, "test_days": test_days},
        **extra,
    }
    return parse_spec(data)


def frame_at(stamps) -> pd.DataFrame:
    n = len(stamps)
    return pd.DataFrame({
        "ts": pd.to_datetime(pd.Series(list(stamps)), utc=True, format="ISO8601"), "x": np.arange(n, dtype=float),
        "amount": np.full(n, 10.0), "income": np.full(n, 100.0),
        "colour": pd.Series(["red", "blue"] * (n // 2) + ["red"] * (n % 2), dtype="str"),
        "y": np.arange(n) % 2,
    })


# E = 2026-01-20: test [01-19, 01-20), valid [01-17, 01-19), train [01-13, 01-17).
EDGE_CASES = [
    ("train start is inclusive", "2026-01-13T00:00:00", "train"),
    ("just before train start is dropped", "2026-01-12T23:59:59.999999", None),
    ("train/valid boundary goes to valid", "2026-01-17T00:00:00", "valid"),
    ("just before valid start stays in train", "2026-01-16T23:59:59.999999", "train"),
    ("valid/test boundary goes to test", "2026-01-19T00:00:00", "test"),
    ("just before test start stays in valid", "2026-01-18T23:59:59.999999", "valid"),
    ("interval end is exclusive (future)", "2026-01-20T00:00:00", None),
    ("last instant before the end is test", "2026-01-19T23:59:59.999999", "test"),
]


@pytest.mark.parametrize("case, stamp, expected", EDGE_CASES, ids=[c[0] for c in EDGE_CASES])
def test_boundary_rows_land_in_the_later_window(case, stamp, expected):
    spec = tiny_spec()
    filler = ["2026-01-14T12:00:00", "2026-01-17T12:00:00", "2026-01-19T12:00:00"]
    df = frame_at(filler + [stamp])
    df.loc[3, "x"] = -1.0
    parts = dict(zip(("train", "valid", "test"), split_frame(spec, df, END)))
    found = [name for name, part in parts.items() if (part["x"] == -1.0).any()]
    assert found == ([expected] if expected else [])
    assert sum(len(p) for p in parts.values()) == 3 + (1 if expected else 0)


@pytest.mark.parametrize("tz_naive_end", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_windows_never_overlap_in_time(tz_naive_end, shuffle):
    spec = tiny_spec()
    stamps = pd.date_range("2026-01-10", "2026-01-21", freq="37min", tz="UTC")
    df = frame_at(stamps)
    if shuffle:
        df = df.sample(frac=1.0, random_state=3)
    end = END.replace(tzinfo=None) if tz_naive_end else END
    train, valid, test = split_frame(spec, df, end)
    assert train["ts"].max() < valid["ts"].min() and valid["ts"].max() < test["ts"].min()
    assert train["ts"].min() >= pd.Timestamp("2026-01-13", tz="UTC")
    assert test["ts"].max() < pd.Timestamp(END)
    assert train["ts"].is_monotonic_increasing and test["ts"].is_monotonic_increasing
    expected = {"train": 4 * 24 * 60, "valid": 2 * 24 * 60, "test": 24 * 60}
    for name, part in zip(expected, (train, valid, test)):
        assert abs(len(part) - expected[name] / 37) <= 1


def test_string_and_naive_timestamps_are_read_as_utc():
    spec = tiny_spec()
    df = frame_at(["2026-01-14T00:00:00", "2026-01-17T06:00:00", "2026-01-19T06:00:00"])
    df["ts"] = df["ts"].dt.tz_localize(None).astype(str)
    train, valid, test = split_frame(spec, df, END)
    assert (len(train), len(valid), len(test)) == (1, 1, 1)


@pytest.mark.parametrize("missing, stamps", [
    ("train", ["2026-01-17T12:00:00", "2026-01-19T12:00:00"]),
    ("valid", ["2026-01-14T12:00:00", "2026-01-19T12:00:00"]),
    ("test", ["2026-01-14T12:00:00", "2026-01-17T12:00:00", "2026-01-20T00:00:00"]),
])
def test_empty_window_names_window_and_bounds(missing, stamps):
    spec = tiny_spec()
    with pytest.raises(EmptySplitError) as err:
        split_frame(spec, frame_at(stamps), END)
    start, end = window_bounds(spec, END)[missing]
    message = str(err.value)
    assert message.startswith(f"{missing} window [{start.isoformat()}, {end.isoformat()})")
    assert "data spans" in message and f"windows.{missing}_days" in message


def test_no_timestamps_at_all_is_an_empty_split():
    df = frame_at(["2026-01-14T12:00:00"])
    df["ts"] = pd.NaT
    with pytest.raises(EmptySplitError, match="none of the 1 rows has a timestamp"):
        split_frame(tiny_spec(), df, END)


def test_overlapping_windows_raise_leakage_error():
    a = frame_at(["2026-01-14T00:00:00", "2026-01-17T00:00:00"])
    b = frame_at(["2026-01-17T00:00:00", "2026-01-18T00:00:00"])
    c = frame_at(["2026-01-19T00:00:00"])
    with pytest.raises(LeakageError, match=r"train window's newest row .* by 0 s"):
        _check_no_leakage([a, b, c], "ts")
    _check_no_leakage([a.iloc[:1], b, c], "ts")


def test_derived_feature_values():
    spec = tiny_spec()
    df = pd.DataFrame({
        "ts": pd.to_datetime(["2026-01-14T05:30:00+00:00", "2026-01-17T23:00:00+02:00", None], utc=True),
        "x": [1.0, 2.0, 3.0], "amount": [10.0, -5.0, np.nan], "income": [100.0, 0.0, 50.0],
        "colour": ["red", "blue", None],
    })
    out = DerivedFeatures(tuple(d.model_dump(exclude_none=True) for d in spec.derived_features)).fit_transform(df)
    assert list(out.columns) == list(df.columns) + ["hour", "dow", "amount_to_income", "log_amount"]
    np.testing.assert_array_equal(out["hour"].to_numpy(), [5.0, 21.0, np.nan])
    np.testing.assert_array_equal(out["dow"].to_numpy(), [2.0, 5.0, np.nan])
    np.testing.assert_array_equal(out["amount_to_income"].to_numpy(), [0.1, np.nan, np.nan])
    np.testing.assert_allclose(out["log_amount"].to_numpy(), [np.log1p(10.0), 0.0, np.nan])
    assert list(df.columns) == ["ts", "x", "amount", "income", "colour"]


def test_derived_features_need_named_columns():
    with pytest.raises(TypeError, match="pandas DataFrame"):
        DerivedFeatures(()).fit(np.zeros((2, 2)))


def test_tree_encoding_keeps_categories_and_missing_apart():
    spec = tiny_spec()
    train = frame_at(pd.date_range("2026-01-13", periods=200, freq="h", tz="UTC"))
    pre = build_preprocessor(spec, "tree").fit(train[list(spec.model_columns)])
    score = train[list(spec.model_columns)].head(4).copy()
    score["colour"] = pd.Series(["green", None, "red", "blue"], dtype=object)
    score.loc[3, "x"] = np.nan
    out = pre.transform(score)
    labels = [label for label, _ in output_sources(spec, pre)]
    assert list(out.columns) == labels
    # An unseen category joins <other>; a missing one stays missing (XGBoost routes it).
    assert list(out["colour"].cat.categories) == ["blue", "red", "<other>"]
    assert out["colour"].tolist()[0] == "<other>" and pd.isna(out["colour"].tolist()[1])
    assert out["colour"].tolist()[2:] == ["red", "blue"]
    assert out["x"].dtype == np.float32 and np.isnan(out["x"].iloc[3])


def test_linear_encoding_is_one_hot_with_other_and_missing():
    spec = tiny_spec()
    train = frame_at(pd.date_range("2026-01-13", periods=200, freq="h", tz="UTC"))
    pre = build_preprocessor(spec, "linear").fit(train[list(spec.model_columns)])
    score = train[list(spec.model_columns)].head(4).copy()
    score["colour"] = pd.Series(["green", None, "red", "blue"], dtype=object)
    score.loc[3, "x"] = np.nan
    out = pre.transform(score)
    labels = [label for label, _ in output_sources(spec, pre)]
    assert out.shape == (4, len(labels))
    colour = [i for i, label in enumerate(labels) if label.startswith("colour=")]
    assert [labels[i] for i in colour] == ["colour=blue", "colour=red", "colour=<other>", "colour=<missing>"]
    np.testing.assert_array_equal(out[:, colour], [[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]])
    assert np.isfinite(out[:, labels.index("x")]).all()


def test_linear_encoding_matches_imputer_and_scaler():
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    spec = tiny_spec()
    train = frame_at(pd.date_range("2026-01-13", periods=300, freq="h", tz="UTC"))
    train.loc[::7, "x"] = np.nan
    pre = build_preprocessor(spec, "linear").fit(train[list(spec.model_columns)])
    labels = [label for label, _ in output_sources(spec, pre)]
    got = pre.transform(train[list(spec.model_columns)])[:, labels.index("x")]
    want = StandardScaler().fit_transform(SimpleImputer(strategy="median").fit_transform(train[["x"]]))[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["tree", "linear"])
def test_categorical_dtype_at_scoring_encodes_like_strings(kind):
    spec = tiny_spec()
    train = frame_at(pd.date_range("2026-01-13", periods=50, freq="h", tz="UTC"))
    pre = build_preprocessor(spec, kind).fit(train[list(spec.model_columns)])
    as_category = train[list(spec.model_columns)].astype({"colour": "category"})
    as_object = train[list(spec.model_columns)].astype({"colour": object})
    want = np.asarray(pre.transform(train[list(spec.model_columns)]).astype(str) if kind == "tree"
                      else pre.transform(train[list(spec.model_columns)]))
    for frame in (as_category, as_object):
        got = pre.transform(frame)
        np.testing.assert_array_equal(np.asarray(got.astype(str) if kind == "tree" else got), want)


def test_rare_categories_join_other():
    spec = tiny_spec()
    train = frame_at(pd.date_range("2026-01-13", periods=2000, freq="min", tz="UTC"))
    train.loc[0, "colour"] = "mauve"
    pre = build_preprocessor(spec, "linear").fit(train[list(spec.model_columns)])
    labels = [label for label, _ in output_sources(spec, pre)]
    assert "colour=<other>" in labels and "colour=mauve" not in labels
    tree = build_preprocessor(spec, "tree").fit(train[list(spec.model_columns)])
    assert tree.transform(train[list(spec.model_columns)].head(1))["colour"].tolist() == ["<other>"]


def test_split_and_profile_writes_windows_and_train_profile(tmp_path, spec):
    from tests.conftest import DEMO_START, demo_days

    df = demo_days(DEMO_START, 44, rows_per_day=60)
    store = Store.for_uri(str(tmp_path))
    clean = store.write_parquet(str(tmp_path / "clean.parquet"), df)
    end = datetime(2026, 2, 19)  # labels arrive 7 days late: labelled rows end on 2026-02-12
    split = split_and_profile(spec, clean, store, str(tmp_path / "run"), end)

    assert split.rows == {"train": 28 * 60, "valid": 7 * 60, "test": 7 * 60, "recent": 2 * 60}
    assert split.windows["train"] == ["2026-01-01T00:00:00+00:00", "2026-01-29T00:00:00+00:00"]
    assert split.windows["test"] == ["2026-02-05T00:00:00+00:00", "2026-02-12T00:00:00+00:00"]
    assert split.data_interval_end == "2026-02-19T00:00:00+00:00"
    assert split.labelled_end == "2026-02-12T00:00:00+00:00"
    assert split.plan["kind"] == "standard"
    recent = store.read_parquet(split.recent_uri)
    assert spec.target_column not in recent.columns and recent["event_time"].min() >= pd.Timestamp("2026-02-12", tz="UTC")
    assert len(split.source_sha256) == 64 and split.source_uri == clean
    train = store.read_parquet(split.train_uri)
    test = store.read_parquet(split.test_uri)
    assert train["event_time"].max() < store.read_parquet(split.valid_uri)["event_time"].min()
    assert list(train.columns) == list(df.columns)
    assert len(test) == 7 * 60

    profile = store.read_json(split.profile_uri)
    assert profile["rows"] == 28 * 60 and profile["window"]["start"].startswith("2026-01-01")
    assert set(profile["features"]) == set(spec.features)
    assert profile["features"]["channel"]["count"] == 28 * 60
    assert Split.from_dict(split.to_dict()) == split

    again = split_and_profile(spec, clean, store, str(tmp_path / "run"), end)
    assert again == split
    # The monitor's score reference is the test window here: its file serves, no copy is written.
    assert split.reference_uri == split.test_uri
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "profile.json", "recent.parquet", "test.parquet", "train.parquet", "valid.parquet"]


def test_split_and_profile_reports_a_short_snapshot(tmp_path, spec):
    from tests.conftest import DEMO_START, demo_days

    store = Store.for_uri(str(tmp_path))
    clean = store.write_parquet(str(tmp_path / "clean.parquet"), demo_days(DEMO_START, 3, rows_per_day=20))
    with pytest.raises(EmptySplitError, match=r"valid window \[2026-01-22"):
        split_and_profile(spec, clean, store, str(tmp_path / "run"), datetime(2026, 2, 12))


def test_unreadable_snapshot_names_the_uri(tmp_path, spec):
    from pipeline.storage import StorageError

    store = Store.for_uri(str(tmp_path))
    bad = store.write_bytes(str(tmp_path / "clean.parquet"), b"not parquet")
    with pytest.raises(StorageError, match=r"clean.parquet: unreadable parquet"):
        split_and_profile(spec, bad, store, str(tmp_path / "run"), END)
