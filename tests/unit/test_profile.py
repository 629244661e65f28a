"""pipeline.profile: the numbers of a numeric profile are those of the plain numpy definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import profile


@pytest.mark.parametrize("kind", ["normal", "rounded", "signed_zeros", "few"])
def test_numeric_profile_quantiles_edges_and_counts_are_the_plain_definitions(kind):
    rng = np.random.default_rng(4)
    values = {"normal": rng.normal(size=20_001), "rounded": np.round(rng.normal(size=20_000), 1),
              "signed_zeros": np.r_[np.zeros(300), -np.zeros(300), rng.normal(size=501)],
              "few": np.array([3.0, np.nan, np.inf, 1.0])}[kind]
    got = profile.numeric_profile(pd.Series(values), n_bins=10)
    finite = values[np.isfinite(values)]
    edges = [float(x) for x in np.unique(np.quantile(finite, np.linspace(0, 1, 11)[1:-1]))]
    quantiles = {str(q): float(v) for q, v in zip(profile.QUANTILES, np.quantile(finite, profile.QUANTILES))}
    counts = np.bincount(np.searchsorted(np.asarray(edges), finite, side="left"), minlength=len(edges) + 1)
    # Compared as text so that -0.0 and 0.0 count as different.
    assert repr(got["bin_edges"]) == repr(edges)
    assert repr(got["quantiles"]) == repr(quantiles)
    assert got["bin_counts"] == [int(c) for c in counts]
