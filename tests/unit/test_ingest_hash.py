"""pipeline.ingest's content hash: what it sums is pandas' own hash_pandas_object, whatever the
slicing or the value-by-value hashing of an id column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import ingest


def _frame(n: int, nulls: bool) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    ids = pd.Series([f"app-{i:08d}" for i in rng.permutation(n)], dtype="str")
    x = rng.normal(size=n)
    x[::7] = -0.0
    if nulls:
        x[::11] = np.nan
    y = pd.array(rng.integers(0, 2, size=n), dtype="Int64")
    if nulls:
        y[::5] = pd.NA
        ids[::13] = None
    return pd.DataFrame({
        "event_time": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC").as_unit("us"),
        "defaulted": y, "application_id": ids, "age": x,
        "region": pd.Series(rng.choice(["north", "south", None if nulls else "east"], size=n), dtype="str"),
        "flag": rng.random(n) < 0.5, "count": rng.integers(0, 9, size=n),
        "kind": pd.Categorical(rng.choice(["a", "b"], size=n)),
    })


@pytest.mark.parametrize("n", [1, 1000, 70_000, 140_001])
@pytest.mark.parametrize("nulls", [False, True])
@pytest.mark.parametrize("unique", [(), ("application_id",), ("application_id", "region", "kind", "absent")])
def test_hash_sum_is_the_sum_of_hash_pandas_object(n, nulls, unique):
    frame = _frame(n, nulls)
    want = int(pd.util.hash_pandas_object(frame, index=False).to_numpy().sum(dtype=np.uint64))
    assert ingest._hash_sum(frame, unique=unique) == want
