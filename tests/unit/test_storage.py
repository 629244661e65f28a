"""Store over a local directory and over S3 (moto's server on loopback): same behaviour for both."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.storage import (
    LocalStore,
    S3Store,
    StorageError,
    Store,
    dumps,
    join,
    split_s3,
)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.integration)])
def root(request, tmp_path) -> tuple[Store, str]:
    """(store, root URI) for each backend; the S3 root is a fresh bucket."""
    if request.param == "local":
        return Store.for_uri(str(tmp_path)), str(tmp_path / "root")
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    return Store.for_uri(f"s3://{bucket}", client), f"s3://{bucket}/root"


def test_for_uri_picks_backend():
    assert isinstance(Store.for_uri("/tmp/x"), LocalStore)
    assert isinstance(Store.for_uri("file:///tmp/x"), LocalStore)
    assert isinstance(Store.for_uri("s3://b/k", object()), S3Store)


@pytest.mark.parametrize("base, parts, expected", [
    ("/a/b", ("c", "d.json"), "/a/b/c/d.json"),
    ("/a/b/", ("/c/", "d"), "/a/b/c/d"),
    ("s3://bucket", ("x", "", "y"), "s3://bucket/x/y"),
    ("s3://bucket/p/", ("runs/2026-01-01",), "s3://bucket/p/runs/2026-01-01"),
])
def test_join(base, parts, expected):
    assert join(base, *parts) == expected


@pytest.mark.parametrize("uri, expected", [
    ("s3://bucket/a/b.json", ("bucket", "a/b.json")),
    ("s3://bucket", ("bucket", "")),
])
def test_split_s3(uri, expected):
    assert split_s3(uri) == expected


def test_split_s3_rejects_missing_bucket():
    with pytest.raises(StorageError, match="not an s3://bucket/key URI"):
        split_s3("s3:///key")


def test_bytes_round_trip_and_overwrite(root):
    store, base = root
    uri = join(base, "a", "blob.bin")
    assert store.write_bytes(uri, b"one") == uri
    assert store.read_bytes(uri) == b"one"
    store.write_bytes(uri, b"two, longer")
    assert store.read_bytes(uri) == b"two, longer"
    assert store.list(base) == [uri]


def test_list_is_recursive_sorted_and_missing_prefix_is_empty(root):
    store, base = root
    for name in ("b/2.txt", "a/1.txt", "b/c/3.txt", "0.txt"):
        store.write_text(join(base, name), name)
    assert store.list(base) == [join(base, n) for n in ("0.txt", "a/1.txt", "b/2.txt", "b/c/3.txt")]
    assert store.list(join(base, "b")) == [join(base, "b/2.txt"), join(base, "b/c/3.txt")]
    assert store.list(join(base, "nothing-here")) == []


def test_exists_for_objects_and_prefixes(root):
    store, base = root
    store.write_text(join(base, "dir", "f.txt"), "x")
    assert store.exists(join(base, "dir", "f.txt"))
    assert store.exists(join(base, "dir"))
    assert not store.exists(join(base, "dir", "g.txt"))
    assert not store.exists(join(base, "di"))


def test_json_round_trip_converts_numpy_and_datetimes(root):
    store, base = root
    uri = join(base, "record.json")
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    store.write_json(uri, {"n": np.int64(3), "x": np.float32(0.5), "when": when, "days": ("a", "b"),
                           "path": Path("/p"), "nan": float("nan")})
    back = store.read_json(uri)
    assert back["n"] == 3 and back["x"] == 0.5 and back["when"] == "2026-01-02T03:04:05+00:00"
    assert back["days"] == ["a", "b"] and back["path"] == "/p" and np.isnan(back["nan"])


def test_json_rejects_unknown_types():
    with pytest.raises(TypeError, match="not JSON serialisable: object"):
        dumps({"x": object()})


def test_parquet_round_trip(root, demo_frame):
    store, base = root
    uri = join(base, "frame.parquet")
    frame = demo_frame.head(200)
    store.write_parquet(uri, frame)
    back = store.read_parquet(uri)
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True))
    assert list(store.read_parquet(uri, columns=["age", "region"]).columns) == ["age", "region"]


def test_write_file_and_upload_dir(root, tmp_path):
    store, base = root
    src = tmp_path / "src"
    (src / "docs" / "deep").mkdir(parents=True)
    (src / "index.html").write_text("<html/>")
    (src / "docs" / "deep" / "page.html").write_text("page")
    store.upload_dir(src, join(base, "site"))
    assert store.list(join(base, "site")) == [join(base, "site/docs/deep/page.html"), join(base, "site/index.html")]
    store.write_file(join(base, "copy.html"), src / "index.html")
    assert store.read_text(join(base, "copy.html")) == "<html/>"


def test_delete_object_and_prefix(root):
    store, base = root
    for name in ("keep.txt", "gone/a.txt", "gone/b/c.txt"):
        store.write_text(join(base, name), "x")
    store.delete(join(base, "gone"))
    assert store.list(base) == [join(base, "keep.txt")]
    store.delete(join(base, "keep.txt"))
    assert store.list(base) == []


@pytest.mark.parametrize("reader", ["read_bytes", "read_text", "read_json", "read_parquet"])
def test_missing_object_raises_storage_error_naming_uri(root, reader):
    store, base = root
    uri = join(base, "absent.bin")
    with pytest.raises(StorageError, match="absent.bin"):
        getattr(store, reader)(uri)


def test_corrupt_content_raises_storage_error(root):
    store, base = root
    store.write_bytes(join(base, "bad.json"), b"{not json")
    with pytest.raises(StorageError, match=r"bad\.json: not valid JSON"):
        store.read_json(join(base, "bad.json"))
    store.write_bytes(join(base, "bad.parquet"), b"PAR1 nope")
    with pytest.raises(StorageError, match=r"bad\.parquet: unreadable parquet"):
        store.read_parquet(join(base, "bad.parquet"))


class _Unwritable(pd.DataFrame):
    def to_parquet(self, *args, **kwargs):  # a serialiser failing half-way through a write
        path = args[0]
        if isinstance(path, (str, os.PathLike)):
            Path(path).write_bytes(b"partial")
        raise RuntimeError("disk full")


def test_local_write_is_atomic(tmp_path):
    """A failed write leaves the previous content and no temp file behind."""
    store = LocalStore()
    uri = str(tmp_path / "out" / "frame.parquet")
    store.write_parquet(uri, pd.DataFrame({"a": [1, 2]}))
    with pytest.raises(RuntimeError, match="disk full"):
        store.write_parquet(uri, _Unwritable({"a": [3]}))
    assert store.read_parquet(uri)["a"].tolist() == [1, 2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["frame.parquet"]


def test_local_listing_hides_in_flight_temp_files(tmp_path):
    store = LocalStore()
    store.write_text(str(tmp_path / "a.txt"), "x")
    (tmp_path / ".b.txt.abc.tmp").write_text("in flight")
    assert store.list(str(tmp_path)) == [str(tmp_path / "a.txt")]


@pytest.mark.integration
def test_s3_missing_bucket_is_a_storage_error(s3_client):
    store = Store.for_uri("s3://x", s3_client)
    with pytest.raises(StorageError, match="s3://no-such-bucket-xyz/k"):
        store.write_bytes("s3://no-such-bucket-xyz/k", b"x")
    with pytest.raises(StorageError, match="no such bucket 'no-such-bucket-xyz'"):
        store.list("s3://no-such-bucket-xyz/prefix")


def test_local_artifacts_are_readable_by_others(tmp_path):
    """Atomic writes go through mkstemp (0600); published artifacts must be 0644."""
    from pipeline.storage import LocalStore

    store = LocalStore()
    paths = [store.write_bytes(str(tmp_path / "a.bin"), b"x"),
             store.write_json(str(tmp_path / "b.json"), {"k": 1}),
             store.write_file(str(tmp_path / "c.bin"), tmp_path / "a.bin"),
             store.write_parquet(str(tmp_path / "d.parquet"), pd.DataFrame({"a": [1]}))]
    for p in paths:
        assert (Path(p).stat().st_mode & 0o777) == 0o644, p


def test_error_kinds_say_whether_a_retry_can_help(root):
    from pipeline.errors import is_retryable
    from pipeline.storage import CorruptObject, ObjectNotFound

    store, base = root
    with pytest.raises(ObjectNotFound) as missing:
        store.read_bytes(join(base, "absent.bin"))
    store.write_bytes(join(base, "bad.json"), b"{not json")
    with pytest.raises(CorruptObject) as corrupt:
        store.read_json(join(base, "bad.json"))
    assert not is_retryable(missing.value) and not is_retryable(corrupt.value)
    assert is_retryable(StorageError("a network blip"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_artifact_root_names_the_root_and_the_fix(tmp_path):
    from pipeline.storage import StorageUnwritable

    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        with pytest.raises(StorageUnwritable, match="artifact root is not writable") as err:
            LocalStore().write_bytes(str(root / "x" / "a.bin"), b"x")
        assert str(root) in str(err.value) and not err.value.retryable
    finally:
        root.chmod(0o755)


def test_a_full_disk_is_unwritable_not_a_traceback(tmp_path, monkeypatch):
    import errno

    from pipeline.storage import StorageUnwritable

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(StorageUnwritable, match="no space left"):
        LocalStore().write_bytes(str(tmp_path / "a.bin"), b"x")
    assert [p.name for p in tmp_path.iterdir()] == []


@pytest.mark.integration
def test_s3_exists_is_false_only_for_absent_objects(s3_client, s3_bucket):
    import boto3
    from botocore.config import Config

    store = Store.for_uri(f"s3://{s3_bucket}", s3_client)
    assert store.exists(f"s3://{s3_bucket}/absent") is False
    store.write_bytes(f"s3://{s3_bucket}/here", b"x")
    assert store.exists(f"s3://{s3_bucket}/here") is True
    # An endpoint that does not answer is an I/O failure, never "not there".
    dead = boto3.client("s3", endpoint_url="http://127.0.0.1:9", aws_access_key_id="t", aws_secret_access_key="t",
                        region_name="us-east-1", config=Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(StorageError) as err:
        Store.for_uri("s3://x", dead).exists(f"s3://{s3_bucket}/here")
    assert err.value.retryable


def test_write_parquet_rows_writes_the_selection_slice_by_slice(tmp_path, monkeypatch):
    """A selection is written a slice at a time (no copy of the whole frame) and reads back as
    the same rows with the same dtypes; an empty selection writes an empty file of that schema."""
    import numpy as np
    import pandas as pd

    from pipeline import storage

    monkeypatch.setattr(storage, "PARQUET_CHUNK_ROWS", 7)
    df = pd.DataFrame({"x": np.arange(30, dtype=float), "s": pd.Series([f"v{i % 4}" for i in range(30)], dtype="str"),
                       "t": pd.date_range("2026-01-01", periods=30, freq="h", tz="UTC"),
                       "y": pd.array([1, None] * 15, dtype="Int64")})
    keep = (np.arange(30) % 3 != 0) & (np.arange(30) < 20)
    store = storage.Store.for_uri(str(tmp_path))
    back = store.read_parquet(store.write_parquet(str(tmp_path / "sel.parquet"), df, rows=keep))
    pd.testing.assert_frame_equal(back, df.loc[keep].reset_index(drop=True))
    empty = store.read_parquet(store.write_parquet(str(tmp_path / "none.parquet"), df, rows=np.zeros(30, bool)))
    assert len(empty) == 0 and list(empty.dtypes) == list(df.dtypes)


def test_write_parquet_rows_of_one_run_writes_the_bytes_of_a_copy(tmp_path, monkeypatch):
    """A selection that is one run of rows (a time window) is written from a slice of the frame:
    the file is byte for byte the one a copied selection gives, across slice boundaries, and
    with string columns in several Arrow chunks (where chunks end decides where the writer
    gives up dictionary-encoding 60k unique ids)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline import storage

    n = 60_000

    def chunked(values: list[str], step: int) -> pd.Series:
        parts = [pa.array(values[i:i + step], type=pa.large_string()) for i in range(0, len(values), step)]
        return pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(parts))).astype("str")

    df = pd.DataFrame({"x": np.r_[np.arange(n - 1, dtype=float), np.nan],
                       "id": chunked([f"application-{i:012d}-{i * 7919 % 1000003:08d}" for i in range(n)], 7_000),
                       "s": chunked([f"v{i % 4}" for i in range(n)], 9_000),
                       "t": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
                       "y": pd.array([1, None] * (n // 2), dtype="Int64")})
    store = storage.Store.for_uri(str(tmp_path))
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    for chunk_rows in (1_000_000, 25_000):
        monkeypatch.setattr(storage, "PARQUET_CHUNK_ROWS", chunk_rows)
        for lo, hi in ((3_000, 58_000), (0, n), (25_000, 50_000), (n - 1, n), (2, 5)):
            keep = (np.arange(n) >= lo) & (np.arange(n) < hi)
            got = store.write_parquet(str(tmp_path / f"run{lo}.parquet"), df, rows=keep)
            want = tmp_path / f"copy{lo}.parquet"
            with pq.ParquetWriter(str(want), schema) as writer:
                for start in range(0, n, chunk_rows):
                    part = keep[start:start + chunk_rows]
                    if part.any():
                        chunk = df.iloc[start:start + chunk_rows]
                        chunk = chunk if part.all() else chunk.loc[part]
                        writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
            assert open(got, "rb").read() == want.read_bytes(), (chunk_rows, lo, hi)
