"""The training run's SVG charts: well-formed documents that draw what the data says."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from pipeline import svgplot

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}text")]


def _points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in polyline.get("points").split()]


def test_line_chart_maps_data_onto_the_box_with_legend_ticks_and_reference():
    svg = svgplot.line_chart([("model <a&b> (AUC 0.812)", [0.0, 0.5, 1.0], [0.0, 0.8, 1.0]),
                              ("baseline", [0.0, 1.0], [0.0, 1.0])],
                             title="ROC", xlabel="false positive rate", ylabel="true positive rate",
                             references=[(0, 0, 1, 1)])
    root = _parse(svg)
    texts = _texts(root)
    assert {"ROC", "false positive rate", "true positive rate", "model <a&b> (AUC 0.812)", "baseline"} <= set(texts)
    assert {"0", "0.2", "0.4", "0.6", "0.8", "1"} <= set(texts)  # ticks on both axes
    box = next(r for r in root.iter(f"{NS}rect") if r.get("fill") == "none")
    x0, y1 = float(box.get("x")), float(box.get("y"))
    x1, y0 = x0 + float(box.get("width")), y1 + float(box.get("height"))
    first, second = root.iter(f"{NS}polyline")
    pts = _points(first)
    assert pts[0] == pytest.approx((x0, y0), abs=0.1) and pts[-1] == pytest.approx((x1, y1), abs=0.1)
    # (0.5, 0.8): half way across, 80 % of the way up.
    assert pts[1] == pytest.approx((x0 + 0.5 * (x1 - x0), y0 - 0.8 * (y0 - y1)), abs=0.1)
    assert first.get("stroke") != second.get("stroke")
    dotted = [line for line in root.iter(f"{NS}line") if line.get("stroke-dasharray")]
    assert len(dotted) == 1


def test_non_finite_points_are_dropped_and_empty_series_still_render():
    svg = svgplot.line_chart([("a", [0.0, math.nan, 1.0], [0.0, 0.5, math.inf]), ("empty", [], [])],
                             title="t", xlabel="x", ylabel="y", markers=True)
    root = _parse(svg)
    (line,) = root.iter(f"{NS}polyline")
    assert len(_points(line)) == 1
    assert len(list(root.iter(f"{NS}circle"))) == 1
    assert "empty" in _texts(root)


def test_bar_chart_orders_bars_top_down_with_lengths_in_proportion():
    svg = svgplot.bar_chart(["income", "age", "region_north"], [10.0, 5.0, 0.0], title="importance",
                            xlabel="total gain")
    root = _parse(svg)
    bars = [r for r in root.iter(f"{NS}rect") if r.get("fill") == svgplot.COLOURS[0]]
    assert [float(b.get("width")) for b in bars][2] == 0.0
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] == pytest.approx(2 * widths[1], rel=1e-3)
    ys = [float(b.get("y")) for b in bars]
    assert ys == sorted(ys)  # the first label is drawn at the top
    assert {"income", "age", "region_north", "importance", "total gain"} <= set(_texts(root))


def test_matrix_chart_labels_every_cell_and_shades_by_count():
    root = _parse(svgplot.matrix_chart([[90, 10], [5, 45]], title="Confusion", xlabel="predicted", ylabel="actual",
                                       x_ticks=["0", "1"], y_ticks=["0", "1"]))
    assert {"90", "10", "5", "45", "predicted", "actual"} <= set(_texts(root))
    cells = [r for r in root.iter(f"{NS}rect") if r.get("fill", "").startswith("#")]
    assert cells[0].get("fill") == "#08306b"  # the largest count is darkest
    assert cells[2].get("fill") != cells[0].get("fill")


def test_scatter_chart_fits_axes_to_the_points():
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=200), rng.normal(size=200)
    root = _parse(svgplot.scatter_chart(xs.tolist(), ys.tolist(), title="Residuals", xlabel="predicted",
                                        ylabel="actual - predicted", hline=0.0))
    circles = list(root.iter(f"{NS}circle"))
    assert len(circles) == 200
    box = next(r for r in root.iter(f"{NS}rect") if r.get("fill") == "none")
    left, top = float(box.get("x")), float(box.get("y"))
    right, bottom = left + float(box.get("width")), top + float(box.get("height"))
    assert all(left <= float(c.get("cx")) <= right and top <= float(c.get("cy")) <= bottom for c in circles)


@pytest.mark.parametrize("lo,hi", [(0, 1), (0, 37.2), (-3.1, 2.7), (1e-6, 3e-6), (5, 5), (0, 12345)])
def test_ticks_are_round_and_cover_the_range(lo, hi):
    values = svgplot.ticks(lo, hi)
    assert 2 <= len(values) <= 6
    step = values[1] - values[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert round(mantissa, 6) in (1, 2, 5, 10)
    low, high = (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)
    assert values[0] >= low - 1e-9 and values[-1] <= high + 1e-9
    assert values[0] - step < low + 1e-9 and values[-1] + step > high - 1e-9


def test_write_saves_utf8(tmp_path):
    path = svgplot.write(tmp_path / "c.svg", svgplot.bar_chart(["é"], [1.0], title="t", xlabel="x"))
    assert "é" in path.read_text(encoding="utf-8")
    _parse(path.read_text(encoding="utf-8"))
