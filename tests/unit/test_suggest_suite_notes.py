"""suggest-suite warns a new user when one monitor window of their data is too small to judge."""

from __future__ import annotations

import pytest

from pipeline.cli import _monitor_window_note


@pytest.mark.parametrize("rows_per_day, monitor_days, fits_in", [(300, 1, 2), (120, 1, 5), (300, 2, None),
                                                                 (600, 1, None)])
def test_monitor_window_note(spec, rows_per_day, monitor_days, fits_in):
    spec = spec.model_copy(update={"windows": spec.windows.model_copy(update={"monitor_days": monitor_days})})
    note = _monitor_window_note(spec, rows=rows_per_day * 14, days_with_rows=14)
    if fits_in is None:
        assert note is None
    else:
        assert f"set windows.monitor_days to {fits_in}" in note and "validation.min_rows (500)" in note
