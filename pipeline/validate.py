"""Validate a snapshot against its Great Expectations suite: severities, row quarantine, Data Docs.

Contract:
* ``validate(spec, snapshot_uri, store, out_prefix)`` runs the model's suite (``expectations/
  <suite_name>.json``) on the snapshot with Great Expectations 1.x and always writes, before it
  decides anything, ``<out_prefix>/validation.json`` (the report), ``quarantine.parquet`` (rows
  that broke a row-level expectation, with a ``_quarantine_reason`` column naming every
  expectation each row broke), ``clean.parquet`` (every other row; ``rows == clean +
  quarantine``), ``gx_results.json`` (every expectation's GX result, in GX's JSON) and
  ``data_docs/`` (GX Data Docs that work offline and show the verdict below with each
  expectation's severity; see :mod:`pipeline.data_docs`, which also adds the page to the model's
  own site when the caller names one). With ``render_docs=False`` a validation that passes leaves
  its Data Docs pending (``data_docs_pending`` in the report) for :func:`render_data_docs`, which
  renders them from the stored results later -- the retrain DAG's ``data_docs`` task, beside
  split and train. Then it raises
  :class:`ValidationFailed` when a critical expectation failed, more than
  ``spec.validation.max_quarantine_fraction`` of rows were quarantined, or fewer than
  ``spec.validation.min_rows`` valid rows remain.
* Every expectation carries ``meta = {"severity": "critical" | "warning", "row_level": bool}``
  (missing keys mean critical, not row-level). Whether an expectation failed is GX's verdict
  (its ``mostly``); a failed critical expectation fails the run, a failed warning is recorded
  and the run goes on. ``row_level`` expectations additionally send the rows that break them
  to quarantine, whatever their verdict. An expectation on a column that is missing from the
  data fails with its own severity and says the column is missing.
* A snapshot whose ``snapshot.json`` (the ingest record beside it) names a window gets one
  more critical, row-level check: timestamps inside ``[window_start, window_end)`` (rows stamped
  in the future of the run, or with no parseable timestamp, are quarantined and counted).
* Every numeric feature (and a regression target) gets a built-in critical, row-level
  *finite* check: ``inf`` and ``-inf`` are impossible values, quarantined like any other (GX's
  ``expect_column_values_to_be_between`` at the float64 limits, so it is in the report and Data
  Docs). Physical ranges (an income cannot be 1e308) are the suite's own critical, row-level
  ``between`` checks; ``suggest-suite`` drafts them.
* Labels arrive late: with ``labelled_before``, expectations on the target column judge only the
  rows stamped before it (a GX ``row_condition``), and the clean rows after it carry no label
  (the target is nulled), so no later stage can use a label it could not have had.

Each expectation's result is GX's result: :mod:`pipeline.gx_native` computes it without
importing GX where it can give exactly GX's JSON (the shipped suites' types; conformance-tested
against GX's own engine), and GX computes the rest (imported only then). A suite's types are
checked against :data:`GX_EXPECTATION_TYPES`, GX's registry as a list, so a validation whose
expectations are all native never imports GX (~2 s).

GX 1.24 predates pandas 3: its type expectations recognise neither the ``str`` dtype nor
tz-aware datetimes, so GX sees a view of the frame with strings as ``object`` and timestamps as
naive UTC. GX validates with :mod:`pipeline.gx_fast`'s engine, which computes the common column
metrics (null, range, set, uniqueness and type conditions and their unexpected counts, values and
indices) column-wise where GX's pandas engine goes value by value or copies the frame per
expectation: the same results, measured 8.7 s -> see benchmarks/pipeline.py. Quarantine masks are recomputed from each expectation's kwargs on that same view (the
rules are GX's own pandas rules; the tests check the counts agree with GX): 0.3 s of CPU for 22
row-level expectations on 1M rows, and the GX result (and Data Docs) stays at ``SUMMARY`` size
instead of carrying every unexpected value and index as ``COMPLETE`` would. The one deliberate
difference: of rows sharing an id, the first stays clean (GX counts every occurrence).
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.artifacts import Record
from pipeline.config import REPO_ROOT, ModelSpec
from pipeline.data_docs import DocsTarget
from pipeline.errors import DriftlineError
from pipeline.storage import Store, join

REASON_COLUMN = "_quarantine_reason"
#: Every expectation's GX result (GX's JSON), beside validation.json: what Data Docs render from.
GX_RESULTS = "gx_results.json"
SEVERITIES = ("critical", "warning")

#: Expectations whose offending rows can be identified (and so quarantined).
ROW_LEVEL_TYPES = (
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_dateutil_parseable",
)

#: Every expectation type Great Expectations 1.x registers (checked against GX's registry by
#: tests/unit/test_validate.py, so a GX upgrade that adds or drops one fails a test): a suite is
#: checked without importing GX.
GX_EXPECTATION_TYPES = frozenset({
    "expect_column_distinct_values_to_be_in_set",
    "expect_column_distinct_values_to_contain_set",
    "expect_column_distinct_values_to_equal_set",
    "expect_column_kl_divergence_to_be_less_than",
    "expect_column_max_to_be_between",
    "expect_column_mean_to_be_between",
    "expect_column_median_to_be_between",
    "expect_column_min_to_be_between",
    "expect_column_most_common_value_to_be_in_set",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_to_be_in_set",
    "expect_column_proportion_of_non_null_values_to_be_between",
    "expect_column_proportion_of_unique_values_to_be_between",
    "expect_column_quantile_values_to_be_between",
    "expect_column_stdev_to_be_between",
    "expect_column_sum_to_be_between",
    "expect_column_to_exist",
    "expect_column_type_to_be",
    "expect_column_unique_value_count_to_be_between",
    "expect_column_value_lengths_to_be_between",
    "expect_column_value_lengths_to_equal",
    "expect_column_value_z_scores_to_be_less_than",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_dateutil_parseable",
    "expect_column_values_to_be_decreasing",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_increasing",
    "expect_column_values_to_be_json_parseable",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_match_json_schema",
    "expect_column_values_to_match_like_pattern",
    "expect_column_values_to_match_like_pattern_list",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_match_regex_list",
    "expect_column_values_to_match_strftime_format",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_not_be_outliers",
    "expect_column_values_to_not_match_like_pattern",
    "expect_column_values_to_not_match_like_pattern_list",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_not_match_regex_list",
    "expect_compound_columns_to_be_unique",
    "expect_multicolumn_sum_to_equal",
    "expect_multicolumn_values_to_be_equal",
    "expect_query_results_to_match_comparison",
    "expect_select_column_values_to_be_unique_within_record",
    "expect_table_column_count_to_be_between",
    "expect_table_column_count_to_equal",
    "expect_table_columns_to_match_ordered_list",
    "expect_table_columns_to_match_set",
    "expect_table_row_count_to_be_between",
    "expect_table_row_count_to_equal",
    "expect_table_row_count_to_equal_other_table",
    "unexpected_rows_expectation",
})

_NUMERIC_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32",
                  "float64", "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype",
                  "UInt16Dtype", "UInt32Dtype", "UInt64Dtype", "Float32Dtype", "Float64Dtype")
_DATETIME_TYPES = ("datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]")
_BOOL_TYPES = ("bool", "BooleanDtype")
_STRING_TYPES = ("str",)
_SAMPLE_SIZE = 5


class ValidationStageError(DriftlineError):
    """Base of the validation stage's errors."""


class SuiteNotFound(ValidationStageError):
    """The model's expectation suite file does not exist."""


class InvalidSuite(ValidationStageError):
    """The suite file is not valid JSON or an expectation's meta is malformed."""


class ValidationFailed(ValidationStageError):
    """Critical expectations failed, or too many rows were quarantined, or too few remain.

    Attributes:
        report: the :class:`ValidationReport` (already written to ``report.report_uri``).
    """

    def __init__(self, message: str, report: "ValidationReport"):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ValidationReport(Record):
    """Outcome of one validation (the small part of ``validation.json`` that crosses XCom).

    Attributes:
        success: no critical failure, quarantine within limit, enough valid rows.
        rows, valid_rows, quarantined_rows: counts (``rows == valid_rows + quarantined_rows``).
        quarantine_fraction: ``quarantined_rows / rows`` (0 for an empty snapshot).
        failures: failed critical expectations, each ``{expectation, column, severity,
            row_level, observed, expected, unexpected_count, unexpected_percent,
            quarantined_rows, message}``.
        warnings: failed warning expectations, same shape.
        report_uri, quarantine_uri, clean_uri: the written artifacts.
        data_docs_uri: the run's Data Docs ``index.html``.
        model_data_docs_uri: the model's Data Docs ``index.html`` (every validation of the model),
            or "" when the caller named no model site.
        gx_results_uri: every expectation's GX result (GX's JSON) and the Data Docs' names.
        data_docs_pending: the Data Docs are not rendered yet (:func:`render_data_docs` renders them).
        suite_name: the suite that was run.
        quarantine_reasons: reason -> quarantined rows (a row may count under several).
        snapshot_hash: the validated snapshot's content hash (lineage), when the caller knows it.
    """

    success: bool
    rows: int
    valid_rows: int
    quarantined_rows: int
    quarantine_fraction: float
    failures: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    report_uri: str
    quarantine_uri: str
    clean_uri: str
    data_docs_uri: str
    suite_name: str
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    snapshot_hash: str = ""
    model_data_docs_uri: str = ""
    gx_results_uri: str = ""
    data_docs_pending: bool = False


def validate(spec: ModelSpec, snapshot_uri: str, store: Store, out_prefix: str, *,
             suite: dict | None = None, expectations_dir: Path | None = None,
             labelled_before: Any = None, docs: DocsTarget | None = None,
             render_docs: bool = True) -> ValidationReport:
    """Validate one snapshot, write the report, quarantine, clean rows and Data Docs.

    Args:
        spec: the model spec (suite name, columns, ``validation`` policy).
        snapshot_uri: the snapshot parquet (local path or ``s3://``).
        store: storage for the snapshot and ``out_prefix``.
        out_prefix: where ``validation.json``, ``quarantine.parquet``, ``clean.parquet`` and
            ``data_docs/`` go (overwritten on re-run).
        suite: a GX suite dict to use instead of the model's suite file.
        expectations_dir: where suite files live (default: the spec's ``expectations_dir``, found
            beside the spec's folder, else ``<repo>/expectations``).
        labelled_before: rows stamped at or after this instant have no label yet (see the
            module docstring); ``None`` = every row is labelled.
        docs: the Data Docs' names and the model site to add the page to
            (:meth:`DocsTarget.for_run` for a pipeline run); None = asset ``<model> snapshot``,
            run name the last folder of ``out_prefix``, no model site.
        render_docs: render the Data Docs now; False leaves them to :func:`render_data_docs`
            (a task of their own, off the run's critical path: GX's import and page rendering
            cost about 3 s) unless the validation fails, which renders them at once.

    Returns:
        The :class:`ValidationReport` (``success`` is True: failures raise).

    Raises:
        SuiteNotFound: no suite file for the model (and no ``suite`` given).
        InvalidSuite: the suite is malformed.
        ValidationFailed: a critical expectation failed, the quarantined share exceeds
            ``spec.validation.max_quarantine_fraction``, or fewer than ``spec.validation.min_rows``
            valid rows remain; every artifact has been written by then and the message names
            each failed expectation and the report URI.
    """
    suite = suite if suite is not None else load_suite(spec, expectations_dir)
    frame = store.read_parquet(snapshot_uri)
    window = _snapshot_window(store, snapshot_uri)
    if window is not None:
        suite = _with_window(suite, spec, *window)
    if labelled_before is not None:
        suite = _labels_before(suite, spec, labelled_before)
    uris = {
        "report_uri": join(out_prefix, "validation.json"),
        "quarantine_uri": join(out_prefix, "quarantine.parquet"),
        "clean_uri": join(out_prefix, "clean.parquet"),
        "data_docs_uri": join(out_prefix, "data_docs", "index.html"),
        "gx_results_uri": join(out_prefix, GX_RESULTS),
    }
    report, keep, quarantine, evidence = _validate(spec, frame, suite)
    if labelled_before is not None:
        frame = mask_unlabelled(spec, frame, labelled_before)
    # The clean rows are written by a second thread (parquet encoding runs outside the GIL)
    # while this one writes the rest; validation.json, the step's last file, waits for both.
    clean_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftline-clean-write")
    clean_written = clean_pool.submit(store.write_parquet, uris["clean_uri"], frame, keep)
    clean_pool.shutdown(wait=False)
    try:
        store.write_parquet(uris["quarantine_uri"], quarantine)
        docs = docs or DocsTarget(model=spec.name, asset_name=f"{spec.name} snapshot",
                                  run_name=out_prefix.rstrip("/").rsplit("/", 1)[-1], batch="snapshot")
        if docs.model_site:
            uris["model_data_docs_uri"] = join(docs.model_site, "index.html")
        # A failed validation renders its Data Docs now: that is when someone needs to read them.
        render_now = render_docs or not report["success"]
        report = {**report, "snapshot_uri": snapshot_uri, **uris, "data_docs_pending": not render_now}
        store.write_json(uris["gx_results_uri"], {
            "suite_name": report["suite_name"], "docs": docs.to_dict(),
            "results": [{"expectation": exp, "result": result} for exp, result in evidence]})
        if render_now:
            from pipeline.data_docs import write_data_docs

            write_data_docs(store, join(out_prefix, "data_docs"), report, evidence, docs)
    except BaseException:
        wait([clean_written])  # the first error is the one to report; the write is not left running
        raise
    clean_written.result()
    store.write_json(uris["report_uri"], report)
    result = ValidationReport.from_dict(report)
    if not result.success:
        raise ValidationFailed(_failure_message(report, snapshot_uri), result)
    return result


def render_data_docs(store: Store, out_prefix: str) -> str:
    """Render the Data Docs of the validation stored under ``out_prefix`` (its ``validation.json``
    and ``gx_results.json``): the run's site and its page in the model's site. Rendering again
    rewrites the same pages. Returns the run site's ``index.html``."""
    from pipeline.data_docs import DocsTarget, write_data_docs

    report = store.read_json(join(out_prefix, "validation.json"))
    stored = store.read_json(join(out_prefix, GX_RESULTS))
    evidence = [(r["expectation"], r["result"]) for r in stored["results"]]
    uri = write_data_docs(store, join(out_prefix, "data_docs"), report, evidence,
                          DocsTarget.from_dict(stored["docs"]))
    if report.get("data_docs_pending"):
        store.write_json(join(out_prefix, "validation.json"), {**report, "data_docs_pending": False})
    return uri


def validate_frame(spec: ModelSpec, df: pd.DataFrame, suite: dict) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Run ``suite`` on an in-memory frame (no files, no Data Docs, never raises on bad data).

    Args:
        spec: the model spec (its ``validation`` policy decides ``success``).
        df: the rows to validate.
        suite: a GX suite dict whose expectations carry ``meta.severity`` / ``meta.row_level``.

    Returns:
        ``(report, clean, quarantine)``: the report dict (``success``, counts, ``failures``,
        ``warnings``, ``problems``, every expectation's result under ``results``), the rows
        that broke no row-level expectation, and the rows that did with ``_quarantine_reason``.
        Both frames have a fresh 0..n-1 index.

    Raises:
        InvalidSuite: an expectation's meta is malformed or ``row_level`` on a type whose
            rows cannot be identified.
    """
    report, keep, quarantine, _ = _validate(spec, df, suite)
    return report, df.loc[keep].reset_index(drop=True), quarantine


def load_suite(spec: ModelSpec, expectations_dir: Path | None = None) -> dict:
    """The model's suite: ``<expectations_dir>/<spec.suite_name>.json``.

    Raises:
        SuiteNotFound: the file is missing (the message names the path and how to create it).
        InvalidSuite: the file is not a JSON object with an ``expectations`` list.
    """
    path = Path(expectations_dir or spec.expectations_dir or REPO_ROOT / "expectations") / f"{spec.suite_name}.json"
    if not path.is_file():
        raise SuiteNotFound(
            f"{path}: no expectation suite {spec.suite_name!r} for model {spec.name!r}; create one from a "
            f"clean reference window with `python -m pipeline suggest-suite {spec.name}`, review the "
            f"severities, and save it there")
    try:
        suite = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise InvalidSuite(f"{path}: not valid JSON ({err})") from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise InvalidSuite(f"{path}: a suite is a JSON object with an 'expectations' list")
    suite.setdefault("name", spec.suite_name)
    suite["_source"] = str(path)
    return suite


#: ``suggest-suite``'s physical range: this many reference spans beyond the observed values
#: (review it: the real physical limits of a column are domain knowledge).
_PHYSICAL_SPANS = 10.0
#: A typical range warns only when more than 0.1 % of a window's values leave it.
TYPICAL_MOSTLY = 0.999


def suggest_suite(spec: ModelSpec, df: pd.DataFrame, *, margin: float = 0.25) -> dict:
    """Profile a clean reference frame into a GX suite to review and save.

    Emits: the required columns present (critical); one type family per column (critical);
    not-null for the id, timestamp, target and every feature without reference nulls
    (critical, row-level, ``mostly = 1 - max_quarantine_fraction``); a null-rate ceiling for
    features that have nulls (warning: reference rate widened by ``margin`` plus three standard
    errors of a ``min_rows`` window); for numeric columns a *physical* range (critical,
    row-level: 0 or ten spans below the observed minimum to ten spans above the maximum -- review
    it against the column's real limits) and a *typical* range widened by ``margin`` of the span
    (warning when more than ``1 - TYPICAL_MOSTLY`` of the values leave it: a heavy tail puts a
    few rows of every large clean window beyond any sample's maximum), and categorical value
    sets (warnings: an unseen value is drift, not bad data); unique id (critical, row-level); parseable timestamps when they arrive as strings (critical,
    row-level); ``target in {0, 1}`` for binary models (critical, row-level); at least
    ``min_rows`` rows (critical). Ranges of columns never negative in the reference stop at 0.

    Args:
        spec: the model spec.
        df: a clean reference window.
        margin: relative widening of ranges and null rates.

    Returns:
        A suite dict (``name``, ``expectations``, ``meta``) ready for ``json.dump``.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    policy = spec.validation
    quarantine_mostly = round(1.0 - policy.max_quarantine_fraction, 6)
    missing = [c for c in spec.required_columns if c not in df.columns]
    if missing:
        raise ValueError(f"the reference frame lacks required columns {missing}")
    expectations: list[dict[str, Any]] = [
        _expectation("expect_table_columns_to_match_set", "critical", False,
                     column_set=list(spec.required_columns), exact_match=False),
        _expectation("expect_table_row_count_to_be_between", "critical", False, min_value=policy.min_rows),
    ]
    for column in spec.required_columns:
        series = df[column]
        family = _family(series)
        expectations.append(_expectation("expect_column_values_to_be_in_type_list", "critical", False,
                                         column=column, type_list=list(_type_list(family))))
        null_rate = float(series.isna().mean()) if len(series) else 0.0
        key_column = column in (spec.timestamp_column, spec.target_column, spec.id_column)
        if key_column or null_rate == 0.0:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "critical", True,
                                             column=column, mostly=quarantine_mostly))
        else:
            slack = 3.0 * math.sqrt(null_rate * (1.0 - null_rate) / max(policy.min_rows, 1))
            ceiling = min(1.0, null_rate * (1.0 + margin) + slack)
            expectations.append(_expectation("expect_column_values_to_not_be_null", "warning", False,
                                             column=column, mostly=round(1.0 - ceiling, 4)))
        if column == spec.id_column:
            expectations.append(_expectation("expect_column_values_to_be_unique", "critical", True,
                                             column=column, mostly=quarantine_mostly))
        elif column == spec.timestamp_column:
            if family == "string":
                expectations.append(_expectation("expect_column_values_to_be_dateutil_parseable", "critical",
                                                 True, column=column, mostly=quarantine_mostly))
        elif column == spec.target_column and spec.task == "binary":
            expectations.append(_expectation("expect_column_values_to_be_in_set", "critical", True,
                                             column=column, value_set=[0, 1], mostly=quarantine_mostly))
        elif family == "numeric" and series.notna().any():
            finite = pd.to_numeric(series, errors="coerce")
            finite = finite[np.isfinite(finite)]
            low, high = float(finite.min()), float(finite.max())
            span = high - low if high > low else max(abs(high), 1.0)
            pad = margin * span
            # A quantity never negative in the reference (amounts, counts, rates) stays non-negative.
            floor = max(low - pad, 0.0) if low >= 0 else low - pad
            physical_floor = 0.0 if low >= 0 else low - _PHYSICAL_SPANS * span
            physical = _expectation("expect_column_values_to_be_between", "critical", True, column=column,
                                    min_value=_round(physical_floor), max_value=_round(high + _PHYSICAL_SPANS * span),
                                    mostly=quarantine_mostly)
            physical["meta"]["range"] = "physical"
            typical = _expectation("expect_column_values_to_be_between", "warning", False, column=column,
                                   min_value=_round(floor), max_value=_round(high + pad), mostly=TYPICAL_MOSTLY)
            typical["meta"]["range"] = "typical"
            expectations += [physical, typical]
        elif family == "string" and column != spec.id_column:
            values = sorted(str(v) for v in series.dropna().unique())
            expectations.append(_expectation("expect_column_values_to_be_in_set", "warning", False,
                                             column=column, value_set=values))
    return {
        "name": spec.suite_name,
        "expectations": expectations,
        "meta": {
            "generated_by": "driftline suggest-suite",
            "model": spec.name,
            "reference_rows": int(len(df)),
            "margin": margin,
        },
    }


def _expectation(kind: str, severity: str, row_level: bool, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": severity, "row_level": row_level}}


def _round(value: float) -> float:
    """Bounds rounded to 6 significant digits so the suite file stays readable."""
    return float(f"{value:.6g}")


def _family(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "string"


def _type_list(family: str) -> tuple[str, ...]:
    return {"numeric": _NUMERIC_TYPES, "datetime": _DATETIME_TYPES, "bool": _BOOL_TYPES,
            "string": _STRING_TYPES}[family]


def _snapshot_window(store: Store, snapshot_uri: str) -> tuple[str, str] | None:
    """``(window_start, window_end)`` from the ingest record beside the snapshot, if there is one."""
    if not snapshot_uri.endswith(".parquet"):
        return None
    metadata_uri = snapshot_uri[: -len(".parquet")] + ".json"
    if not store.exists(metadata_uri):
        return None
    record = store.read_json(metadata_uri)
    start, end = record.get("window_start"), record.get("window_end")
    return (start, end) if start and end else None


def _with_window(suite: dict, spec: ModelSpec, start: str, end: str) -> dict:
    """The suite plus a critical row-level check that timestamps fall in ``[start, end)``."""
    check = _expectation("expect_column_values_to_be_between", "critical", True,
                         column=spec.timestamp_column, min_value=_naive_utc(start).isoformat(),
                         max_value=_naive_utc(end).isoformat(), strict_max=True,
                         mostly=round(1.0 - spec.validation.max_quarantine_fraction, 6))
    return {**suite, "expectations": [*suite["expectations"], check]}


_FLOAT_MAX = float(np.finfo(np.float64).max)


def _with_finite(suite: dict, spec: ModelSpec, df: pd.DataFrame) -> dict:
    """The suite plus a critical row-level check that numeric features (and a regression target)
    are finite: between the float64 limits, which ``inf`` and ``-inf`` are not. Columns that are
    missing or not numeric are left to the suite's own column and type checks."""
    wanted = list(spec.numeric_features) + ([spec.target_column] if spec.task == "regression" else [])
    columns = [c for c in wanted if c in df.columns and pd.api.types.is_float_dtype(df[c].dtype)]
    checks = [{**_expectation("expect_column_values_to_be_between", "critical", True, column=column,
                              min_value=-_FLOAT_MAX, max_value=_FLOAT_MAX,
                              mostly=round(1.0 - spec.validation.max_quarantine_fraction, 6)),
               "meta": {"severity": "critical", "row_level": True, "check": "finite"}} for column in columns]
    return {**suite, "expectations": [*suite["expectations"], *checks]}


def _labels_before(suite: dict, spec: ModelSpec, before: Any) -> dict:
    """The suite with every target-column expectation restricted to rows stamped before ``before``."""
    condition = f'`{spec.timestamp_column}` < "{_naive_utc(before).isoformat()}"'
    expectations = []
    for exp in suite["expectations"]:
        kwargs = dict(exp.get("kwargs") or {})
        if kwargs.get("column") == spec.target_column and "row_condition" not in kwargs:
            kwargs.update(row_condition=condition, condition_parser="pandas")
            exp = {**exp, "kwargs": kwargs}
        expectations.append(exp)
    return {**suite, "expectations": expectations}


def mask_unlabelled(spec: ModelSpec, frame: pd.DataFrame, before: Any) -> pd.DataFrame:
    """``frame`` with the target nulled on rows stamped at or after ``before`` (their label has
    not arrived yet); an integer target becomes a nullable ``Int64``."""
    if spec.target_column not in frame.columns or spec.timestamp_column not in frame.columns:
        return frame
    cut = pd.Timestamp(before)
    cut = cut.tz_convert("UTC") if cut.tzinfo else cut.tz_localize("UTC")
    late = (pd.to_datetime(frame[spec.timestamp_column], utc=True) >= cut).to_numpy(dtype=bool, na_value=False)
    if not late.any():
        return frame
    out = frame.copy(deep=False)  # copy-on-write: only the target column is copied
    target = out[spec.target_column]
    if pd.api.types.is_integer_dtype(target.dtype):
        out[spec.target_column] = target.astype("Int64")
    out.loc[late, spec.target_column] = pd.NA
    return out


def _naive_utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _checked_expectations(suite: dict) -> list[dict[str, Any]]:
    """Expectations with normalised meta; raises :class:`InvalidSuite` naming the suite (its file
    when known), the expectation's index and what is wrong with it."""
    name = suite.get("_source") or f"suite {suite.get('name', '<suite>')!r}"
    known = GX_EXPECTATION_TYPES
    out = []
    for i, exp in enumerate(suite.get("expectations", [])):
        if not isinstance(exp, dict) or "type" not in exp:
            raise InvalidSuite(f"{name}: expectation #{i} is not an object with a 'type'")
        if exp["type"] not in known:
            close = difflib.get_close_matches(str(exp["type"]), sorted(known), n=3, cutoff=0.8)
            raise InvalidSuite(f"{name}: expectation #{i} has unknown type {exp['type']!r}"
                               + (f"; did you mean {', '.join(close)}?" if close else
                                  " (not a Great Expectations 1.x expectation)"))
        meta = dict(exp.get("meta") or {})
        severity = meta.get("severity", "critical")
        row_level = meta.get("row_level", False)
        if severity not in SEVERITIES:
            raise InvalidSuite(f"{name}: expectation #{i} ({exp['type']}) has severity {severity!r}; "
                               f"allowed: {', '.join(SEVERITIES)}")
        if not isinstance(row_level, bool):
            raise InvalidSuite(f"{name}: expectation #{i} ({exp['type']}) has row_level {row_level!r}; "
                               "use true or false")
        if row_level and exp["type"] not in ROW_LEVEL_TYPES:
            raise InvalidSuite(f"{name}: expectation #{i} ({exp['type']}) is marked row_level, but only "
                               f"these identify rows: {', '.join(ROW_LEVEL_TYPES)}")
        out.append({"type": exp["type"], "kwargs": dict(exp.get("kwargs") or {}),
                    "meta": {**meta, "severity": severity, "row_level": row_level}})
    return out


def _gx_view(df: pd.DataFrame, strings_as_object: bool = False) -> pd.DataFrame:
    """The frame as GX 1.24 understands it: timestamps as naive UTC; strings stay pandas ``str``
    (:mod:`pipeline.gx_fast` types them ``object`` for GX) unless ``strings_as_object`` (for
    GX's own engine, which needs the Python objects)."""
    view = df.copy(deep=False)
    for column in view.columns:
        dtype = view[column].dtype
        if strings_as_object and isinstance(dtype, pd.StringDtype):
            view[column] = view[column].astype(object)
        elif isinstance(dtype, pd.DatetimeTZDtype):
            view[column] = view[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return view


def _import_gx() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def _run_gx(view: pd.DataFrame, name: str, expectations: list[dict[str, Any]], fast: bool = True) -> list[Any]:
    """GX results in the order of ``expectations`` (Data Docs are rendered afterwards, from the
    verdict: :mod:`pipeline.data_docs`).

    ``fast``: validate with :mod:`pipeline.gx_fast`'s engine (common column metrics computed
    column-wise; same results); ``False`` runs GX's own pandas engine throughout."""
    gx = _import_gx()
    context = gx.get_context(mode="ephemeral")
    # GX draws a tqdm bar per validation; in task logs that is noise, not progress.
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    token = uuid.uuid4().hex[:8]
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[dict(e) for e in expectations]))
    from pipeline import gx_fast  # noqa: F401  (registers the driftline_pandas datasource type)

    sources = context.data_sources
    add = sources.add_driftline_pandas if fast else sources.add_pandas
    batch = (add(f"driftline_{token}")
             .add_dataframe_asset("snapshot")
             .add_batch_definition_whole_dataframe("whole"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"validate_{token}", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": view}, result_format="SUMMARY")
    by_id = {r.expectation_config.id: r for r in result.results}
    return [by_id[e.id] for e in suite.expectations]


def _results(view: pd.DataFrame, name: str, expectations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each expectation's GX result as GX's JSON (``ExpectationValidationResult.to_json_dict()``
    without its configuration), in order: computed by :mod:`pipeline.gx_native` where it gives
    exactly GX's result, by GX itself (imported only then) for the rest."""
    from pipeline import gx_native

    results: list[dict[str, Any] | None] = [gx_native.evaluate(view, e) for e in expectations]
    rest = [e for e, r in zip(expectations, results) if r is None]
    if rest:
        from_gx = iter(_run_gx(view, name, rest))
        results = [r if r is not None else _gx_json(next(from_gx)) for r in results]
    return results  # type: ignore[return-value]


def _gx_json(result: Any) -> dict[str, Any]:
    out = result.to_json_dict()
    out.pop("expectation_config", None)
    return out


def _validate(spec: ModelSpec, df: pd.DataFrame, suite: dict
              ) -> tuple[dict, np.ndarray, pd.DataFrame, list[tuple[dict[str, Any], Any]]]:
    """``(report, clean-row mask, quarantined rows, evidence)``: the clean rows are left in
    ``df`` (a caller writes them with the mask rather than copying the whole frame); evidence is
    ``(expectation, GX result JSON or None for a missing column)`` per expectation, for Data Docs."""
    expectations = _checked_expectations(_with_finite(suite, spec, df))
    name = suite.get("name") or spec.suite_name
    view = _gx_view(df)
    present = [e for e in expectations if e["kwargs"].get("column", None) in (None, *view.columns)]
    gx_results = iter(_results(view, name, present))
    n = len(df)
    entries: list[dict[str, Any]] = []
    evidence: list[tuple[dict[str, Any], Any]] = []
    reasons = np.full(n, "", dtype=object)
    for exp in expectations:
        column = exp["kwargs"].get("column")
        if column is not None and column not in view.columns:
            entries.append(_missing_column_entry(exp, column))
            evidence.append((exp, None))
            continue
        gx_result = next(gx_results)
        evidence.append((exp, gx_result))
        entry = _entry(exp, gx_result)
        if exp["meta"]["row_level"]:
            mask = _row_mask(exp, view[column])
            if exp["kwargs"].get("row_condition"):
                mask &= _condition(view, exp["kwargs"])
            entry["quarantined_rows"] = int(mask.sum())
            reason = (f"non_finite({column})" if exp["meta"].get("check") == "finite"
                      else f"{exp['type']}({column})")
            _add_reason(reasons, mask, reason)
        entries.append(entry)
    bad = reasons != ""
    quarantine = df.loc[bad].reset_index(drop=True)
    quarantine[REASON_COLUMN] = pd.Series(reasons[bad], dtype="str")
    clean_rows = int(n - bad.sum())
    failures = [e for e in entries if not e["success"] and e["severity"] == "critical"]
    warnings = [e for e in entries if not e["success"] and e["severity"] == "warning"]
    policy = spec.validation
    fraction = float(bad.sum()) / n if n else 0.0
    problems = [e["message"] for e in failures]
    if fraction > policy.max_quarantine_fraction:
        problems.append(f"{int(bad.sum())} of {n} rows quarantined ({fraction:.2%}), over the limit of "
                        f"{policy.max_quarantine_fraction:.2%} (validation.max_quarantine_fraction)")
    if clean_rows < policy.min_rows:
        problems.append(f"only {clean_rows} valid rows remain, fewer than {policy.min_rows} "
                        "(validation.min_rows)")
    reason_counts = pd.Series(reasons[bad]).str.split("; ").explode().value_counts() if bad.any() else None
    report = {
        "suite_name": name,
        "success": not problems,
        "rows": n,
        "valid_rows": clean_rows,
        "quarantined_rows": int(bad.sum()),
        "quarantine_fraction": fraction,
        "max_quarantine_fraction": policy.max_quarantine_fraction,
        "min_rows": policy.min_rows,
        "problems": problems,
        "failures": failures,
        "warnings": warnings,
        "quarantine_reasons": {str(k): int(v) for k, v in reason_counts.items()} if reason_counts is not None else {},
        "results": entries,
    }
    return report, ~bad, quarantine, evidence


def _condition(view: pd.DataFrame, kwargs: dict[str, Any]) -> np.ndarray:
    """Rows an expectation's pandas ``row_condition`` selects (as GX applies it)."""
    if kwargs.get("condition_parser", "pandas") != "pandas":
        raise InvalidSuite(f"row_condition with condition_parser {kwargs.get('condition_parser')!r}: only "
                           "'pandas' conditions can be applied to quarantine rows")
    # DataFrame.query's own first step, without copying the selected rows of every column.
    selected = view.eval(kwargs["row_condition"], parser="pandas")
    if isinstance(selected, pd.Series) and (selected.dtype == np.dtype(bool)
                                            or isinstance(selected.dtype, pd.BooleanDtype)):
        return selected.to_numpy(dtype=bool, na_value=False)  # query's .loc drops NA rows
    mask = np.zeros(len(view), dtype=bool)
    mask[view.reset_index(drop=True).query(kwargs["row_condition"], parser="pandas").index.to_numpy()] = True
    return mask


def _add_reason(reasons: np.ndarray, mask: np.ndarray, label: str) -> None:
    idx = np.flatnonzero(mask)
    if idx.size:
        current = reasons[idx]
        reasons[idx] = np.where(current == "", label, current + "; " + label)


def _row_mask(exp: dict[str, Any], column: pd.Series) -> np.ndarray:
    """Rows breaking a row-level expectation, by GX's pandas rules (nulls only break not-null)."""
    kind, kwargs = exp["type"], exp["kwargs"]
    present = column.notna().to_numpy()
    if kind == "expect_column_values_to_not_be_null":
        return ~present
    if kind == "expect_column_values_to_be_unique":
        # The first occurrence of an id stays clean: a re-delivered row must not take the original
        # with it into quarantine (GX's own count marks every occurrence).
        from pipeline.gx_native import duplicate_masks

        return duplicate_masks(column)[1]
    if kind == "expect_column_values_to_be_in_set":
        return present & ~column.isin(list(kwargs.get("value_set") or [])).to_numpy()
    if kind == "expect_column_values_to_be_dateutil_parseable":
        from dateutil.parser import parse

        def parseable(value: Any) -> bool:
            if not isinstance(value, str):
                return False
            try:
                parse(value)
            except (ValueError, OverflowError):
                return False
            return True

        return present & ~column.map(parseable, na_action="ignore").fillna(True).to_numpy(dtype=bool)
    values = column
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        low = None if low is None else _naive_utc(low)
        high = None if high is None else _naive_utc(high)
    elif not pd.api.types.is_numeric_dtype(column.dtype):
        values = pd.to_numeric(column, errors="coerce")
        present = present & values.notna().to_numpy()
    broken = np.zeros(len(column), dtype=bool)
    if low is not None:
        below = values <= low if kwargs.get("strict_min") else values < low
        broken |= below.fillna(False).to_numpy(dtype=bool)
    if high is not None:
        above = values >= high if kwargs.get("strict_max") else values > high
        broken |= above.fillna(False).to_numpy(dtype=bool)
    return present & broken


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _expected(exp: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in exp["kwargs"].items() if k not in ("column", "batch_id")}


def _entry(exp: dict[str, Any], result: Any) -> dict[str, Any]:
    """One expectation's outcome in the report's shape (``result``: GX's result JSON)."""
    column = exp["kwargs"].get("column")
    body = result.get("result") or {}
    info = result.get("exception_info") or {}
    raised = bool(info.get("raised_exception")) if "raised_exception" in info else any(
        isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    if raised:
        message = info.get("exception_message") or next(
            (v.get("exception_message") for v in info.values() if isinstance(v, dict)), "unknown error")
        observed: Any = f"error: {message}"
    elif "observed_value" in body:
        observed = _jsonable(body["observed_value"])
    else:
        sample = list(dict.fromkeys(repr(v) for v in (body.get("partial_unexpected_list") or [])))
        observed = {"unexpected_sample": sample[:_SAMPLE_SIZE]}
    mismatched = (body.get("details") or {}).get("mismatched")
    if mismatched:
        observed = {"missing": sorted(mismatched.get("missing", [])),
                    "unexpected": sorted(mismatched.get("unexpected", []))}
    entry = {
        "expectation": exp["type"],
        "column": column,
        "severity": exp["meta"]["severity"],
        "row_level": exp["meta"]["row_level"],
        "success": bool(result.get("success")) and not raised,
        "observed": observed,
        "expected": _expected(exp),
        "unexpected_count": _jsonable(body.get("unexpected_count")),
        "unexpected_percent": _jsonable(body.get("unexpected_percent")),
        "quarantined_rows": 0,
    }
    if exp["meta"].get("check") == "finite":
        entry["check"] = "finite"
    entry["message"] = _describe(entry, body.get("element_count"))
    return entry


def _missing_column_entry(exp: dict[str, Any], column: str) -> dict[str, Any]:
    entry = {
        "expectation": exp["type"], "column": column, "severity": exp["meta"]["severity"],
        "row_level": exp["meta"]["row_level"], "success": False, "observed": "column missing",
        "expected": _expected(exp), "unexpected_count": None, "unexpected_percent": None,
        "quarantined_rows": 0,
    }
    entry["message"] = f"{exp['type']}({column}): column {column!r} is missing from the data"
    return entry


def _describe(entry: dict[str, Any], element_count: Any) -> str:
    """``type(column): observed ...; expected ...`` for messages and logs."""
    label = f"{entry['expectation']}({entry['column']})" if entry["column"] else entry["expectation"]
    if entry.get("check") == "finite":
        label = f"non-finite values in {entry['column']} (inf or -inf)"
    observed = entry["observed"]
    if entry["unexpected_count"] is not None:
        pct = entry["unexpected_percent"] or 0.0
        total = f" of {element_count}" if element_count is not None else ""
        observed_text = f"{entry['unexpected_count']}{total} values unexpected ({pct:.2f}%)"
        sample = observed.get("unexpected_sample") if isinstance(observed, dict) else None
        if sample:
            observed_text += f", e.g. {', '.join(sample)}"
    elif isinstance(observed, dict) and "missing" in observed:
        observed_text = f"missing columns {observed['missing']}"
        if observed["unexpected"]:
            observed_text += f", extra columns {observed['unexpected']}"
    else:
        observed_text = f"observed {observed!r}"
    expected = ", ".join(f"{k}={v!r}" for k, v in entry["expected"].items())
    return f"{label}: {observed_text}; expected {expected}"


def _failure_message(report: dict[str, Any], snapshot_uri: str) -> str:
    lines = [f"validation of {snapshot_uri} against suite {report['suite_name']!r} failed "
             f"({len(report['problems'])} problem(s)):"]
    lines += [f"  - {p}" for p in report["problems"]]
    lines.append(f"full report: {report['report_uri']}; quarantined rows: {report['quarantine_uri']}; "
                 f"Data Docs: {report['data_docs_uri']}")
    return "\n".join(lines)
