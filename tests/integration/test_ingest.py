"""Ingest against real sources: local hive lakes (parquet, CSV), an S3 API server, PostgreSQL."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from pipeline.config import ModelSpec, Settings, load_spec
from pipeline.demo import DemoOptions, generate
from pipeline.ingest import (EmptyWindow, IngestError, MissingColumns, SchemaMismatch, SourceUnreachable,
                             UnreadableFile, ingest)
from pipeline.storage import Store

REPO = Path(__file__).resolve().parents[2]
START = date(2026, 1, 1)
DAYS = 10
ROWS_PER_DAY = 50
UTC = timezone.utc


def _end(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _with_source(spec: ModelSpec, **source) -> ModelSpec:
    return spec.model_copy(update={"source": spec.source.model_copy(update=source)})


def _content_hash(frame: pd.DataFrame) -> str:
    total = int(pd.util.hash_pandas_object(frame, index=False).to_numpy().sum(dtype=np.uint64))
    return f"{total % (1 << 64):016x}"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """Demo lake root: <root>/credit_default/ds=2026-01-01 .. 2026-01-10, 50 rows a day."""
    root = tmp_path_factory.mktemp("lake")
    generate(str(root), START, DAYS, DemoOptions(rows_per_day=ROWS_PER_DAY))
    return root


@pytest.fixture(scope="module")
def csv_lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("csv_lake")
    generate(str(root), START, DAYS, DemoOptions(rows_per_day=ROWS_PER_DAY), fmt="csv")
    return root


@pytest.fixture(scope="module")
def base_spec(lake) -> ModelSpec:
    return load_spec(REPO / "config" / "credit_default.yaml", Settings.from_env({"DRIFTLINE_LAKE_ROOT": str(lake)}))


@pytest.fixture
def out(tmp_path) -> tuple[Store, str]:
    return Store.for_uri(str(tmp_path)), str(tmp_path / "run")


@pytest.fixture(scope="module")
def reference(base_spec, lake, tmp_path_factory):
    """The local parquet lake ingested over [2026-01-03, 2026-01-08): what other sources must match."""
    out_dir = tmp_path_factory.mktemp("reference")
    return ingest(base_spec, _end(date(2026, 1, 8)), Store.for_uri(str(out_dir)), str(out_dir), days=5)


def _copy_lake(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- window boundaries on a hand-made lake ------------------------------------------------------------

def _tiny_lake(root: Path, spec: ModelSpec, rows: list[tuple[str, str, str]]) -> None:
    """Write one parquet file per partition; rows are (partition day, event_time ISO, id)."""
    demo = pd.concat([pd.DataFrame({c: [1.0] for c in spec.numeric_features}),
                      pd.DataFrame({c: ["a"] for c in spec.categorical_features})], axis=1)
    by_day: dict[str, list[dict]] = {}
    for ds, ts, rid in rows:
        row = demo.iloc[0].to_dict() | {"event_time": pd.Timestamp(ts), "application_id": rid, "defaulted": 0}
        by_day.setdefault(ds, []).append(row)
    for ds, day_rows in by_day.items():
        part = root / f"ds={ds}"
        part.mkdir(parents=True)
        pd.DataFrame(day_rows).to_parquet(part / "part-0.parquet", index=False)


BOUNDARY_ROWS = [
    ("2026-01-01", "2026-01-01T23:59:59.999999Z", "before-start"),
    ("2026-01-02", "2026-01-02T00:00:00Z", "at-start"),
    ("2026-01-02", "2026-01-02T12:00:00Z", "day2"),
    ("2026-01-03", "2026-01-03T23:59:59.999999Z", "last-microsecond"),
    ("2026-01-03", "2026-01-04T00:00:00Z", "mispartitioned-at-end"),
    ("2026-01-04", "2026-01-04T00:00:00Z", "at-end"),
    ("2026-01-04", "2026-01-04T08:00:00Z", "after-end"),
]


# A row filed in a window partition but stamped at or after the window's end (from its midnight
# on) claims to come from the future: it is kept for validation to quarantine, and counted.
@pytest.mark.parametrize("end, days, expected, future", [
    (datetime(2026, 1, 4, tzinfo=UTC), 2, {"at-start", "day2", "last-microsecond"}, {"mispartitioned-at-end"}),
    (datetime(2026, 1, 4), 2, {"at-start", "day2", "last-microsecond"}, {"mispartitioned-at-end"}),  # naive = UTC
    (datetime(2026, 1, 4, 1, 0, tzinfo=timezone(timedelta(hours=1))), 2,  # 2026-01-04T00:00Z
     {"at-start", "day2", "last-microsecond"}, {"mispartitioned-at-end"}),
    (datetime(2026, 1, 2, 12, tzinfo=UTC), 1, {"before-start", "at-start"}, set()),
    (datetime(2026, 1, 5, tzinfo=UTC), 1, {"at-end", "after-end"}, set()),
    (datetime(2026, 1, 5, tzinfo=UTC), 3, {r[2] for r in BOUNDARY_ROWS} - {"before-start"}, set()),
], ids=["aware", "naive", "other-tz", "partial-days", "last-day", "all-but-first"])
def test_window_is_half_open_and_filters_rows(tmp_path, base_spec, end, days, expected, future):
    root = tmp_path / "lake"
    _tiny_lake(root, base_spec, BOUNDARY_ROWS)
    spec = _with_source(base_spec, uri=str(root))
    snap = ingest(spec, end, Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=days)
    frame = pd.read_parquet(snap.uri)
    assert set(frame["application_id"]) == expected | future
    assert snap.rows == len(expected | future) and snap.timestamp_issues["future"] == len(future)
    end_utc = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
    inside = frame[~frame["application_id"].isin(future)]
    assert (inside["event_time"] < end_utc).all()
    assert (inside["event_time"] >= end_utc - timedelta(days=days)).all()


def test_null_and_unparseable_timestamps_are_kept_for_quarantine_and_counted(tmp_path, base_spec, caplog):
    root = tmp_path / "lake"
    _tiny_lake(root, base_spec, [("2026-01-02", "2026-01-02T01:00:00Z", "kept")])
    part = root / "ds=2026-01-02" / "part-0.parquet"
    frame = pd.read_parquet(part)
    frame = pd.concat([frame, frame.assign(event_time=pd.NaT, application_id="no-time")], ignore_index=True)
    frame.to_parquet(part, index=False)
    text = frame.iloc[[0] * 3].assign(application_id=["t1", "t2", "t3"])
    text["event_time"] = ["2026-01-02T03:00:00Z", "31/02/2026 25:00", "not a time"]
    text.to_parquet(root / "ds=2026-01-02" / "part-1.parquet", index=False)
    (root / "ds=2026-01-02" / "stray.csv").write_text("a,b\n1,2\n")
    spec = _with_source(base_spec, uri=str(root))
    with caplog.at_level("WARNING", logger="pipeline.ingest"):
        snap = ingest(spec, _end(date(2026, 1, 3)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=1)
    kept = pd.read_parquet(snap.uri).set_index("application_id")["event_time"]
    assert sorted(kept.index) == ["kept", "no-time", "t1", "t2", "t3"]
    assert kept[["no-time", "t2", "t3"]].isna().all() and kept[["kept", "t1"]].notna().all()
    issues = snap.timestamp_issues
    assert (issues["null"], issues["unparseable"]) == (1, 2)
    assert issues["unparseable_sample"] == ["'31/02/2026 25:00'", "'not a time'"]
    assert snap.ignored_files == [str(root / "ds=2026-01-02" / "stray.csv")]
    assert "not parquet and were not read" in caplog.text and "timestamp issues" in caplog.text


def test_exact_rows_per_day_and_snapshot_record(base_spec, reference, lake):
    frame = pd.read_parquet(reference.uri)
    per_day = frame["event_time"].dt.strftime("%Y-%m-%d").value_counts().sort_index()
    assert per_day.to_dict() == {f"2026-01-0{d}": ROWS_PER_DAY for d in range(3, 8)}
    assert reference.rows == 5 * ROWS_PER_DAY
    assert reference.window_start == "2026-01-03T00:00:00+00:00"
    assert reference.window_end == "2026-01-08T00:00:00+00:00"
    assert reference.missing_days == []
    assert reference.source == f"lake {lake}/credit_default (parquet)"
    assert list(frame.columns[:3]) == ["event_time", "defaulted", "application_id"]
    assert reference.schema["event_time"] == "datetime64[us, UTC]"
    assert reference.schema["defaulted"] == "int64"
    assert reference.schema["region"] == "str"
    assert reference.content_hash == _content_hash(frame)
    stored = Store.for_uri(reference.metadata_uri).read_json(reference.metadata_uri)
    assert stored == reference.to_dict()


def test_default_window_is_spec_total_days(base_spec, out):
    store, prefix = out
    snap = ingest(base_spec, _end(date(2026, 1, 11)), store, prefix)
    # total_days (42) covers the whole 10-day lake; the 32 days before it are reported missing.
    assert snap.rows == DAYS * ROWS_PER_DAY
    assert len(snap.missing_days) == base_spec.windows.total_days - DAYS
    assert snap.missing_days[-1] == "2025-12-31"


def test_rerun_overwrites_with_same_hash(base_spec, out):
    store, prefix = out
    first = ingest(base_spec, _end(date(2026, 1, 8)), store, prefix, days=5)
    second = ingest(base_spec, _end(date(2026, 1, 8)), store, prefix, days=5)
    assert first == second
    assert sorted(Path(p).name for p in store.list(prefix)) == ["snapshot.json", "snapshot.parquet"]


def test_hash_is_independent_of_chunking(base_spec, reference, out):
    store, prefix = out
    spec = _with_source(base_spec, chunk_rows=30)
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5)
    assert snap.content_hash == reference.content_hash
    assert pq.ParquetFile(snap.uri).num_row_groups > 1


@pytest.mark.parametrize("chunk_rows", [7, 10_000])
def test_hash_with_null_integers_is_independent_of_chunking(base_spec, lake, tmp_path, chunk_rows):
    root = _write_bad_day(lake, tmp_path, "nulls")
    spec = _with_source(base_spec, uri=str(root), chunk_rows=chunk_rows)
    snap = ingest(spec, _end(date(2026, 1, 6)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=2)
    frame = pd.read_parquet(snap.uri)
    assert frame["defaulted"].isna().any() and pq.ParquetFile(snap.uri).num_row_groups == -(-snap.rows // chunk_rows)
    assert snap.content_hash == _content_hash(frame.astype({"defaulted": "Int64"}))


def test_hash_changes_with_content(base_spec, lake, tmp_path, reference):
    root = _copy_lake(lake, tmp_path / "lake")
    part = root / "credit_default" / "ds=2026-01-05" / "part-0.parquet"
    frame = pd.read_parquet(part)
    frame.loc[0, "income"] += 1.0
    frame.to_parquet(part, index=False)
    spec = _with_source(base_spec, uri=str(root / "credit_default"))
    snap = ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=5)
    assert snap.rows == reference.rows
    assert snap.content_hash != reference.content_hash


def test_missing_days_reported_not_raised(base_spec, lake, tmp_path, caplog):
    root = _copy_lake(lake, tmp_path / "lake")
    shutil.rmtree(root / "credit_default" / "ds=2026-01-04")
    shutil.rmtree(root / "credit_default" / "ds=2026-01-06")
    spec = _with_source(base_spec, uri=str(root / "credit_default"))
    with caplog.at_level("WARNING", logger="pipeline.ingest"):
        snap = ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=5)
    assert snap.missing_days == ["2026-01-04", "2026-01-06"]
    assert snap.rows == 3 * ROWS_PER_DAY
    assert "2026-01-04, 2026-01-06" in caplog.text


def test_non_data_files_are_ignored(base_spec, lake, tmp_path, reference):
    root = _copy_lake(lake, tmp_path / "lake")
    part = root / "credit_default" / "ds=2026-01-05"
    (part / "_SUCCESS").write_bytes(b"")
    (part / ".part-0.parquet.crc").write_bytes(b"\x00\x01garbage")
    (part / "README").write_text("not data")
    (part / "notes.txt").write_text("not data either")
    spec = _with_source(base_spec, uri=str(root / "credit_default"))
    snap = ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=5)
    assert snap.content_hash == reference.content_hash


def test_csv_lake_matches_parquet_lake(base_spec, csv_lake, reference, out):
    store, prefix = out
    spec = _with_source(base_spec, uri=str(csv_lake / "credit_default"), format="csv")
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5)
    assert snap.rows == reference.rows
    assert snap.schema == reference.schema
    assert snap.content_hash == reference.content_hash


def test_csv_naive_timestamps_are_utc(base_spec, tmp_path):
    part = tmp_path / "lake" / "ds=2026-01-02"
    part.mkdir(parents=True)
    frame = pd.DataFrame({c: [1.0, 2.0] for c in base_spec.numeric_features}
                         | {c: ["x", "y"] for c in base_spec.categorical_features}
                         | {"event_time": ["2026-01-02 00:00:00", "2026-01-02 23:59:59"], "application_id": ["a", "b"],
                            "defaulted": [0, 1]})
    frame.to_csv(part / "part-0.csv", index=False)
    spec = _with_source(base_spec, uri=str(tmp_path / "lake"), format="csv")
    snap = ingest(spec, _end(date(2026, 1, 3)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=1)
    got = pd.read_parquet(snap.uri)["event_time"]
    assert list(got) == [pd.Timestamp("2026-01-02T00:00:00Z"), pd.Timestamp("2026-01-02T23:59:59Z")]


def test_schema_is_unified_across_files(base_spec, tmp_path):
    """ints vs floats, ns vs us timestamps, naive vs aware, and extra columns."""
    cols = {c: [1, 2] for c in base_spec.numeric_features} | {c: ["x", "y"] for c in base_spec.categorical_features}
    first = pd.DataFrame(cols | {"event_time": pd.to_datetime(["2026-01-01 01:00", "2026-01-01 02:00"]),
                                 "application_id": ["a", "b"], "defaulted": [0, 1], "batch": [7, 8]})
    second = pd.DataFrame({k: [float(v[0]) + 0.5, np.nan] if isinstance(v[0], int) else v for k, v in cols.items()}
                          | {"event_time": pd.to_datetime(["2026-01-02 01:00:00.000000001", "2026-01-02 02:00:00"], utc=True, format="ISO8601"),
                             "application_id": ["c", "d"], "defaulted": [1.0, 0.0]})
    for ds, frame in (("2026-01-01", first), ("2026-01-02", second)):
        (tmp_path / "lake" / f"ds={ds}").mkdir(parents=True)
        frame.to_parquet(tmp_path / "lake" / f"ds={ds}" / "part-0.parquet", index=False)
    spec = _with_source(base_spec, uri=str(tmp_path / "lake"))
    snap = ingest(spec, _end(date(2026, 1, 3)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=2)
    schema = pq.read_schema(snap.uri)
    assert str(schema.field("event_time").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("age").type) == "double"
    assert str(schema.field("defaulted").type) == "int64"
    assert str(schema.field("batch").type) == "int64"
    frame = pd.read_parquet(snap.uri)
    assert frame["age"].tolist()[:3] == [1.0, 2.0, 1.5]
    assert frame["batch"].isna().tolist() == [False, False, True, True]
    assert snap.schema["batch"] == "int64"


# --- failures ------------------------------------------------------------------------------------

def _write_bad_day(lake: Path, tmp_path: Path, kind: str) -> Path:
    root = _copy_lake(lake, tmp_path / "lake") / "credit_default"
    generate(str(tmp_path / "lake"), date(2026, 1, 5), 1, DemoOptions(rows_per_day=ROWS_PER_DAY,
             bad_day=date(2026, 1, 5), bad_kind=kind))
    return root


def test_bad_schema_day_raises_missing_columns(base_spec, lake, tmp_path):
    root = _write_bad_day(lake, tmp_path, "schema")
    spec = _with_source(base_spec, uri=str(root))
    with pytest.raises(MissingColumns) as err:
        ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=5)
    msg = str(err.value)
    assert "credit_score" in msg and "'income'" in msg
    assert "ds=2026-01-05/part-0.parquet" in msg
    assert not (tmp_path / "run" / "snapshot.parquet").exists()


def test_bad_schema_day_outside_window_is_not_read(base_spec, lake, tmp_path):
    root = _write_bad_day(lake, tmp_path, "schema")
    spec = _with_source(base_spec, uri=str(root))
    snap = ingest(spec, _end(date(2026, 1, 5)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=3)
    assert snap.rows == 3 * ROWS_PER_DAY


@pytest.mark.parametrize("kind", ["nulls", "range", "duplicates"])
def test_bad_values_pass_through_for_validation(base_spec, lake, tmp_path, kind):
    """Ingest does not judge values: nulls, out-of-range and duplicates reach the validation stage."""
    root = _write_bad_day(lake, tmp_path, kind)
    spec = _with_source(base_spec, uri=str(root))
    snap = ingest(spec, _end(date(2026, 1, 6)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=1)
    frame = pd.read_parquet(snap.uri)
    assert snap.rows == ROWS_PER_DAY
    if kind == "nulls":
        assert frame["credit_score"].isna().any() and frame["defaulted"].isna().any()
        assert snap.schema["defaulted"] == "int64"
        assert pq.read_schema(snap.uri).field("defaulted").type == "int64"
    elif kind == "range":
        assert (frame["credit_score"] == 9999).any()
    else:
        assert frame["application_id"].duplicated().any()


@pytest.mark.parametrize("content, fmt", [
    (b"PAR1 this is not a parquet footer PAR1", "parquet"),
    (b"", "parquet"),
    (b"event_time,age\n2026-01-05T01:00:00Z,1,2,3\n", "csv"),
], ids=["garbage-parquet", "empty-parquet", "ragged-csv"])
def test_corrupt_file_raises_unreadable_file(base_spec, lake, csv_lake, tmp_path, content, fmt):
    root = _copy_lake(lake if fmt == "parquet" else csv_lake, tmp_path / "lake") / "credit_default"
    bad = root / "ds=2026-01-05" / f"part-1.{fmt}"
    bad.write_bytes(content)
    spec = _with_source(base_spec, uri=str(root), format=fmt)
    with pytest.raises(UnreadableFile, match=str(bad)):
        ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=5)


@pytest.mark.parametrize("column, values, needle", [
    ("defaulted", ["yes", "no"], "'defaulted'"),
    ("region", [[1], [2]], "'region'"),
], ids=["text-target", "list-category"])
def test_unconvertible_column_raises_schema_mismatch(base_spec, tmp_path, column, values, needle):
    frame = pd.DataFrame({c: [1.0, 2.0] for c in base_spec.numeric_features}
                         | {c: ["x", "y"] for c in base_spec.categorical_features}
                         | {"event_time": pd.to_datetime(["2026-01-02 01:00", "2026-01-02 02:00"], utc=True),
                            "application_id": ["a", "b"], "defaulted": [0, 1]})
    frame[column] = values
    (tmp_path / "lake" / "ds=2026-01-02").mkdir(parents=True)
    frame.to_parquet(tmp_path / "lake" / "ds=2026-01-02" / "part-0.parquet", index=False)
    spec = _with_source(base_spec, uri=str(tmp_path / "lake"))
    with pytest.raises(SchemaMismatch, match=needle) as err:
        ingest(spec, _end(date(2026, 1, 3)), Store.for_uri(str(tmp_path)), str(tmp_path / "run"), days=1)
    assert "ds=2026-01-02/part-0.parquet" in str(err.value)


def test_empty_window_names_window_and_source(base_spec, lake, out):
    store, prefix = out
    with pytest.raises(EmptyWindow) as err:
        ingest(base_spec, _end(date(2026, 3, 1)), store, prefix, days=3)
    msg = str(err.value)
    assert "[2026-02-26T00:00:00+00:00, 2026-03-01T00:00:00+00:00)" in msg
    assert f"lake {lake}/credit_default" in msg
    assert not store.exists(f"{prefix}/snapshot.json")


def test_missing_lake_root_is_unreachable(base_spec, tmp_path, out):
    store, prefix = out
    spec = _with_source(base_spec, uri=str(tmp_path / "nowhere"))
    with pytest.raises(SourceUnreachable, match="nowhere"):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5)


def test_errors_share_one_base(base_spec, out):
    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, table="t")
    with pytest.raises(IngestError, match="no PostgreSQL URI"):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5)


# --- S3 lake -------------------------------------------------------------------------------------

def _upload(client, bucket: str, root: Path, prefix: str = "lake") -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            client.put_object(Bucket=bucket, Key=f"{prefix}/{p.relative_to(root).as_posix()}", Body=p.read_bytes())


@pytest.mark.integration
def test_s3_lake_matches_local_lake(base_spec, lake, reference, s3_client, s3_bucket):
    _upload(s3_client, s3_bucket, lake)
    s3_client.put_object(Bucket=s3_bucket, Key="lake/credit_default/ds=2026-01-05/_SUCCESS", Body=b"")
    spec = _with_source(base_spec, uri=f"s3://{s3_bucket}/lake/credit_default")
    out_prefix = f"s3://{s3_bucket}/artifacts/credit_default/runs/2026-01-08"
    snap = ingest(spec, _end(date(2026, 1, 8)), Store.for_uri(out_prefix, s3_client), out_prefix, days=5,
                  s3_client=s3_client)
    assert snap.rows == reference.rows
    assert snap.content_hash == reference.content_hash
    assert snap.uri == f"{out_prefix}/snapshot.parquet"
    store = Store.for_uri(out_prefix, s3_client)
    assert store.read_json(snap.metadata_uri) == snap.to_dict()
    assert len(store.read_parquet(snap.uri)) == reference.rows


@pytest.mark.integration
def test_s3_lake_reads_only_window_partitions(base_spec, lake, s3_client, s3_bucket, out):
    """A corrupt object outside the window is never opened."""
    _upload(s3_client, s3_bucket, lake)
    s3_client.put_object(Bucket=s3_bucket, Key="lake/credit_default/ds=2026-01-09/part-9.parquet", Body=b"junk")
    spec = _with_source(base_spec, uri=f"s3://{s3_bucket}/lake/credit_default")
    store, prefix = out
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, s3_client=s3_client)
    assert snap.rows == 5 * ROWS_PER_DAY
    with pytest.raises(UnreadableFile, match=f"s3://{s3_bucket}/lake/credit_default/ds=2026-01-09/part-9.parquet"):
        ingest(spec, _end(date(2026, 1, 10)), store, prefix, days=5, s3_client=s3_client)


@pytest.mark.integration
def test_s3_missing_bucket_and_dead_endpoint_are_unreachable(base_spec, s3_client, out):
    import boto3
    from botocore.config import Config

    from tests.servers import free_port

    store, prefix = out
    spec = _with_source(base_spec, uri="s3://no-such-bucket-here/lake")
    with pytest.raises(SourceUnreachable, match="no-such-bucket-here"):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, s3_client=s3_client)
    dead = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{free_port()}", aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    with pytest.raises(SourceUnreachable, match=r"127\.0\.0\.1"):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, s3_client=dead)
    with pytest.raises(SourceUnreachable, match="needs an S3 client"):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5)


# --- PostgreSQL ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_table(postgres_uri) -> str:
    """The demo lake's rows loaded into ``src."Loan Applications"`` (quoted, schema-qualified)."""
    import psycopg

    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS src")
    generate(None, START, DAYS, DemoOptions(rows_per_day=ROWS_PER_DAY), pg_uri=postgres_uri,
             pg_table="src.Loan Applications")
    return "src.Loan Applications"


@pytest.mark.integration
@pytest.mark.parametrize("chunk_rows", [250_000, 40, 50], ids=["one-fetch", "uneven-fetches", "exact-fetches"])
def test_postgres_table_matches_lake(base_spec, reference, postgres_uri, pg_table, out, chunk_rows):
    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, table=pg_table, chunk_rows=chunk_rows)
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, pg_uri=postgres_uri)
    assert pq.ParquetFile(snap.uri).num_row_groups == -(-snap.rows // chunk_rows)
    assert snap.rows == reference.rows
    assert snap.schema == reference.schema
    assert snap.content_hash == reference.content_hash
    assert snap.source.startswith("postgres table src.Loan Applications at postgresql://")


@pytest.mark.integration
def test_postgres_query_is_wrapped_and_filtered(base_spec, reference, postgres_uri, pg_table, out):
    store, prefix = out
    query = """SELECT * FROM src."Loan Applications" WHERE channel = 'online';"""
    spec = _with_source(base_spec, kind="postgres", uri=None, query=query)
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, pg_uri=postgres_uri)
    expected = pd.read_parquet(reference.uri).query("channel == 'online'")
    assert snap.rows == len(expected) > 0
    assert snap.content_hash == _content_hash(expected)


@pytest.mark.integration
def test_postgres_numeric_is_cast_to_float(base_spec, postgres_uri, out):
    import psycopg

    with psycopg.connect(postgres_uri, autocommit=True) as conn:
        cols = ", ".join(f"{c} numeric(12,4)" for c in base_spec.numeric_features)
        cats = ", ".join(f"{c} text" for c in base_spec.categorical_features)
        conn.execute(f"CREATE TABLE numeric_src (event_time timestamptz, application_id text, defaulted int, {cols}, "
                     f"{cats}, fee numeric(10,2))")
        values = ", ".join(["1.2500"] * len(base_spec.numeric_features))
        conn.execute(f"INSERT INTO numeric_src VALUES ('2026-01-02T03:00:00Z', 'a', 1, {values}, "
                     f"{', '.join(['%s'] * len(base_spec.categorical_features))}, 12.50)",
                     ["x"] * len(base_spec.categorical_features))
    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, table="numeric_src")
    snap = ingest(spec, _end(date(2026, 1, 3)), store, prefix, days=1, pg_uri=postgres_uri)
    frame = pd.read_parquet(snap.uri)
    assert snap.schema["income"] == "float64" and frame["income"].tolist() == [1.25]
    assert frame["defaulted"].tolist() == [1]
    assert snap.schema["fee"] == "float64" and frame["fee"].tolist() == [12.5]


@pytest.mark.integration
@pytest.mark.parametrize("source, error, needle", [
    ({"table": "no_such_table"}, SourceUnreachable, "no_such_table"),
    ({"table": 'x"; DROP TABLE src."Loan Applications"; --'}, SourceUnreachable, "DROP TABLE"),
    ({"query": 'SELECT event_time, defaulted FROM src."Loan Applications"'}, MissingColumns, "application_id"),
], ids=["missing-table", "injection-is-just-a-name", "query-missing-columns"])
def test_postgres_failures(base_spec, postgres_uri, pg_table, out, source, error, needle):
    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, **({"table": None, "query": None} | source))
    with pytest.raises(error, match=needle):
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, pg_uri=postgres_uri)
    import psycopg

    with psycopg.connect(postgres_uri) as conn:
        assert conn.execute('SELECT count(*) FROM src."Loan Applications"').fetchone()[0] == DAYS * ROWS_PER_DAY


@pytest.mark.integration
def test_postgres_unreachable_names_source_without_password(base_spec, out):
    from tests.servers import free_port

    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, table="t")
    uri = f"postgresql://user:s3cret@127.0.0.1:{free_port()}/db"
    with pytest.raises(SourceUnreachable) as err:
        ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=5, pg_uri=uri)
    assert "127.0.0.1" in str(err.value) and "s3cret" not in str(err.value)


@pytest.mark.parametrize("form", ["query", "userinfo", "key-value"])
def test_a_password_in_any_form_never_reaches_the_records(base_spec, postgres_uri, pg_table, out, form):
    """Trust auth ignores the password, so a real run goes through with each form of it."""
    store, prefix = out
    spec = _with_source(base_spec, kind="postgres", uri=None, table=pg_table)
    parts = urlsplit(postgres_uri)
    if form == "query":
        uri = f"{postgres_uri}?password=hunter2"
    elif form == "userinfo":
        uri = postgres_uri.replace(f"{parts.username}@", f"{parts.username}:hunter2@")
    else:
        uri = (f"host={parts.hostname} port={parts.port} user={parts.username} password=hunter2 "
               f"dbname={parts.path.lstrip('/')}")
    snap = ingest(spec, _end(date(2026, 1, 8)), store, prefix, days=2, pg_uri=uri)
    assert snap.rows == 2 * ROWS_PER_DAY
    written = Path(prefix, "snapshot.json").read_text()
    assert "hunter2" not in snap.source and "hunter2" not in written and "***" in snap.source


# --- CLI -----------------------------------------------------------------------------------------

def test_cli_generate_then_ingest(settings, capsys):
    import json

    from pipeline.cli import main

    assert main(["generate", "--out", settings.lake_root, "--start", "2026-01-01", "--days", "4",
                 "--rows-per-day", "30", "--format", "parquet"], settings) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 120 and summary["files"] == 4
    assert main(["ingest", "--model", "credit_default", "--date", "2026-01-04", "--days", "2"], settings) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["rows"] == 60
    from pipeline.artifacts import is_run_id

    prefix = f"{settings.artifact_root}/credit_default/runs/2026-01-04/"
    assert record["uri"].startswith(prefix) and record["uri"].endswith("/snapshot.parquet")
    assert is_run_id(record["uri"][len(prefix):].split("/")[0])
    assert Path(record["uri"]).is_file()


def test_cli_driftline_error_exits_2_without_traceback(settings, capsys):
    from pipeline.cli import main

    assert main(["ingest", "--model", "credit_default", "--date", "2026-01-04"], settings) == 2
    err = capsys.readouterr().err
    assert "driftline ingest failed (SourceUnreachable)" in err
    assert "Traceback" not in err
    assert main(["ingest", "--model", "no_such_model", "--date", "2026-01-04"], settings) == 2
    assert "no model named 'no_such_model'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", [
    (["generate", "--start", "2026-01-01", "--days", "2"], "give --out"),
    (["generate", "--start", "2026-01-01", "--days", "2", "--to-postgres", "postgresql://x"], "needs --table"),
    (["generate", "--out", "x", "--start", "2026-13-01", "--days", "2"], "not a YYYY-MM-DD"),
    (["generate", "--out", "x", "--start", "2026-01-01", "--days", "0"], "must be positive"),
    (["generate", "--out", "x", "--start", "2026-01-01", "--days", "1", "--bad-kind", "typo"], "invalid choice"),
    (["ingest", "--date", "2026-01-01"], "--model"),
], ids=["no-output", "pg-without-table", "bad-date", "zero-days", "bad-kind", "missing-model"])
def test_cli_usage_errors(settings, capsys, argv, needle):
    from pipeline.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv, settings)
    assert exit_info.value.code == 2
    assert needle in capsys.readouterr().err


@pytest.mark.integration
def test_cli_generate_to_postgres_only(settings, postgres_uri, capsys):
    import json

    import psycopg

    from pipeline.cli import main

    assert main(["generate", "--start", "2026-02-01", "--days", "2", "--rows-per-day", "20", "--drift-day",
                 "2026-02-02", "--to-postgres", postgres_uri, "--table", "cli_generated"], settings) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] is None and summary["postgres_table"] == "cli_generated" and summary["drift_day"] == "2026-02-02"
    with psycopg.connect(postgres_uri) as conn:
        assert conn.execute("SELECT count(*) FROM cli_generated").fetchone()[0] == 40
