"""Great Expectations results computed without Great Expectations.

``evaluate(view, expectation)`` returns what GX 1.x gives for one expectation at
``result_format="SUMMARY"``: its ``ExpectationValidationResult.to_json_dict()`` without the
``expectation_config`` key (``success``, ``result``, ``meta``, ``exception_info``), equal value
for value, JSON-ready the way GX's ``convert_to_json_serializable`` makes it. Or ``None`` when
it cannot be exactly GX's (a type or kwarg it does not handle, a case where GX would raise or
report an error): the caller then runs GX for that expectation. It never imports
``great_expectations`` (importing GX alone costs ~2 s), and it never raises.

``view`` is :func:`pipeline.validate._gx_view`'s frame: pandas ``str`` columns are what GX sees
as ``object`` columns of Python strings (as :mod:`pipeline.gx_fast` types them), timestamps are
naive UTC.

GX's rules replicated here (GX 1.24, pandas engine; see ``expectations/expectation.py``
``ColumnMapExpectation._validate``, ``_format_map_output`` and ``_mostly_success``, the
``column_values.*`` pandas metrics and ``map_metric_provider``):

* the *domain* is the frame, or ``df.query(row_condition, parser="pandas")`` (``row_count`` and
  every count are of the domain); kwargs are first coerced as GX's pydantic models do:
  ``between`` bounds to ``float``/``datetime`` (``"2026-01-02T00:00:00"`` becomes a datetime
  before any metric sees it), ``row_count`` bounds to ``int`` (``10.5`` becomes ``10``);
* map conditions (except not-null) judge the non-null values only; ``between`` compares
  ``int64``/``float64`` and ``datetime64[ns]`` column-wise and every other dtype value by
  value in Python (done column-wise here only where that is the same comparison); ``in_set`` is
  ``isin``; ``unique`` is ``~duplicated(keep=False)`` (every occurrence); ``in_type_list`` is the
  dtype's ``observed_value`` unless the column is ``object``, then ``isinstance`` per value;
* success is ``(nonnull - unexpected) / nonnull >= mostly`` (vacuously true without rows or
  non-null values; not-null divides by all rows); the result carries the first 20 unexpected
  values and their index labels, and ``partial_unexpected_counts`` built with
  ``Counter(values).most_common(20)`` sorted by ``(-count, value)``: distinct float NaN objects do
  not merge, ``None`` does, and values that cannot be ordered leave the key out.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import pathlib
import re
import sys
import uuid
import weakref
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

SUPPORTED_TYPES: frozenset[str] = frozenset({
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_in_type_list",
    "expect_table_row_count_to_be_between",
    "expect_table_columns_to_match_set",
})

# result_format="SUMMARY": GX keeps this many unexpected values, indices and counts.
_PARTIAL = 20
_NO_EXCEPTION = {"raised_exception": False, "exception_traceback": None, "exception_message": None}
_CONDITION_KWARGS = frozenset({"row_condition", "condition_parser"})
_MAP_KWARGS = frozenset({"column", "mostly"}) | _CONDITION_KWARGS
_KWARGS = {
    "expect_column_values_to_not_be_null": _MAP_KWARGS,
    "expect_column_values_to_be_between": _MAP_KWARGS | {"min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_values_to_be_in_set": _MAP_KWARGS | {"value_set"},
    "expect_column_values_to_be_unique": _MAP_KWARGS,
    "expect_column_values_to_be_in_type_list": _MAP_KWARGS | {"type_list"},
    "expect_table_row_count_to_be_between": _CONDITION_KWARGS | {"min_value", "max_value", "strict_min",
                                                                  "strict_max"},
    "expect_table_columns_to_match_set": frozenset({"column_set", "exact_match"}),
}
# pydantic v1's datetime pattern (what GX's models accept for a datetime bound), restricted to
# naive values with at most microseconds: the forms this module can compare exactly.
_DATETIME = re.compile(r"\d{4}-\d{1,2}-\d{1,2}[T ]\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,6})?)?")
_EXACT_INT = 2 ** 53


class _Unsupported(Exception):
    """Not exactly GX's result: the caller runs GX."""


def evaluate(view: pd.DataFrame, expectation: dict) -> dict | None:
    """GX's SUMMARY result of ``expectation`` on ``view`` as a JSON-ready dict (module
    docstring), or ``None`` when GX must compute it."""
    try:
        kind = expectation["type"]
        kwargs = expectation.get("kwargs") or {}
        if kind not in SUPPORTED_TYPES or not isinstance(kwargs, dict) or not set(kwargs) <= _KWARGS[kind]:
            return None
        # GX stores the suite as JSON and validates what it reads back (datetimes become ISO
        # strings, tuples lists, NaN None) before its models coerce the kwargs.
        kwargs = _json(kwargs)
        body = _EVALUATORS[kind](view, kwargs)
        return {"success": body["success"], "result": _json(body["result"]), "meta": {},
                "exception_info": dict(_NO_EXCEPTION)}
    except Exception:  # noqa: BLE001  (_Unsupported, or anything GX would report as an error)
        return None


# ---------------------------------------------------------------------------------------------
# kwargs as GX's pydantic models coerce them


def _need(condition: bool) -> None:
    if not condition:
        raise _Unsupported


def _flag(kwargs: dict, key: str) -> bool:
    value = kwargs.get(key, False)
    _need(isinstance(value, bool))
    return value


def _mostly(kwargs: dict) -> float:
    value = kwargs.get("mostly", 1)
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1)
    return float(value)


def _between_bound(value: Any) -> Any:
    """``Union[float, SuiteParameterDict, date, datetime]`` under pydantic v1: a number (or a
    numeric string) becomes a float, an ISO datetime string a naive datetime."""
    if value is None:
        return None
    _need(not isinstance(value, bool))
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime.datetime):
        _need(value.tzinfo is None)
        return value
    _need(isinstance(value, str))
    try:
        return float(value)
    except ValueError:
        pass
    _need(_DATETIME.fullmatch(value) is not None)
    return datetime.datetime.fromisoformat(value.replace(" ", "T"))


def _count_bound(value: Any) -> int | None:
    """``Union[int, SuiteParameterDict, datetime, None]`` under pydantic v1: ``int(value)``."""
    if value is None:
        return None
    _need(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
    return int(value)


def _domain(view: pd.DataFrame, kwargs: dict) -> np.ndarray | None:
    """Positions of the rows ``df.query(row_condition, parser="pandas")`` keeps, or ``None``
    for every row."""
    condition = kwargs.get("row_condition")
    if not condition:
        return None
    # '@name' would resolve against this module's locals, not GX's.
    _need(isinstance(condition, str) and kwargs.get("condition_parser") == "pandas" and "@" not in condition)
    selected = view.eval(condition, parser="pandas")  # DataFrame.query's own first step
    _need(isinstance(selected, pd.Series) and selected.index.equals(view.index))
    if selected.dtype == np.dtype(bool):
        return np.flatnonzero(selected.to_numpy())
    _need(isinstance(selected.dtype, pd.BooleanDtype))
    return np.flatnonzero(selected.to_numpy(dtype=bool, na_value=False))  # .loc drops NA rows


def _resolve(view: pd.DataFrame, name: Any) -> Any:
    """The frame column GX's metrics read for ``name``: the first whose name matches it
    case-insensitively (``get_dbms_compatible_column_names``), so ``"I"`` reads ``"i"`` when
    that comes first. GX's quoted-identifier forms are left to GX."""
    _need(isinstance(name, str) and name != "" and view.columns.is_unique)
    for column in view.columns:
        if (type(column) is str and name.casefold() == column.casefold()) or name == str(column):
            return column
        if isinstance(column, str) and (
                column.startswith("`") or
                column.casefold() in (name.casefold().strip('"'), name.casefold().strip("[]"),
                                      name.casefold().strip("`"))):
            raise _Unsupported  # GX's identifier forms
    raise _Unsupported  # GX: the column does not exist


def _column(view: pd.DataFrame, kwargs: dict) -> pd.Series:
    # Unexpected indices are the index labels; named indices give GX dicts instead of labels.
    _need(not isinstance(view.index, pd.MultiIndex) and view.index.name is None)
    column = view[_resolve(view, kwargs.get("column"))]
    rows = _domain(view, kwargs)
    return column if rows is None else column.iloc[rows]


# ---------------------------------------------------------------------------------------------
# table expectations


def _row_count(view: pd.DataFrame, kwargs: dict) -> dict:
    low, high = _count_bound(kwargs.get("min_value")), _count_bound(kwargs.get("max_value"))
    _need(low is None or high is None or low <= high)  # GX's model rejects min > max
    strict_min, strict_max = _flag(kwargs, "strict_min"), _flag(kwargs, "strict_max")
    rows = _domain(view, kwargs)
    count = len(view) if rows is None else len(rows)
    above = True if low is None else (count > low if strict_min else count >= low)
    below = True if high is None else (count < high if strict_max else count <= high)
    return {"success": bool(above and below), "result": {"observed_value": count}}


def _columns_match_set(view: pd.DataFrame, kwargs: dict) -> dict:
    expected_list = kwargs.get("column_set")
    exact_match = kwargs.get("exact_match", True)
    _need(isinstance(expected_list, list) and isinstance(exact_match, bool))
    expected = set(expected_list)
    actual = set(view.columns)
    unmatched_actual, unmatched_expected = actual - expected, expected - actual
    observed = sorted(str(c) for c in actual)
    if not unmatched_expected and not unmatched_actual:
        return {"success": True, "result": {"observed_value": observed}}
    unexpected = sorted(str(c) for c in unmatched_actual)
    missing = sorted(str(c) for c in unmatched_expected)
    mismatched = {}
    if unexpected:
        mismatched["unexpected"] = unexpected
    if missing:
        mismatched["missing"] = missing
    success = False if exact_match else not missing
    return {"success": success, "result": {"observed_value": observed, "details": {"mismatched": mismatched}}}


# ---------------------------------------------------------------------------------------------
# column map expectations


def _not_null(view: pd.DataFrame, kwargs: dict) -> dict:
    mostly = _mostly(kwargs)
    column = _column(view, kwargs)
    unexpected = column.isnull().to_numpy(dtype=bool)
    total, count = len(column), int(np.count_nonzero(unexpected))
    success = True if total == 0 else (total - count) / total >= mostly
    return _map_output(success, total, None, count, column, unexpected)


def _column_map(meets: Any, masked: bool = False) -> Any:
    """A map expectation whose condition ``meets(non_null_values, kwargs)`` judges the
    non-null values of the domain (GX's ``filter_column_isnull``).

    ``masked``: ``meets`` may also be given the whole column, nulls included, on the dtypes of
    :func:`_maskable` (its answer for a null is then ignored): the same unexpected values and
    index labels without copying the non-null rows out of a large column first."""

    def run(view: pd.DataFrame, kwargs: dict) -> dict:
        mostly = _mostly(kwargs)
        column = _column(view, kwargs)
        present = column.notnull().to_numpy(dtype=bool)
        nonnull = int(np.count_nonzero(present))
        if nonnull == len(column):
            values = column
            unexpected = ~np.asarray(meets(values, kwargs), dtype=bool)
        elif masked and _maskable(column.dtype):
            values = column  # unexpected is a mask over every row; the nulls are never in it
            meets_all = meets(column, kwargs)
            meets_all = (meets_all.to_numpy(dtype=bool, na_value=False) if isinstance(meets_all, pd.Series)
                         else np.asarray(meets_all, dtype=bool))
            unexpected = present & ~meets_all
        else:
            values = column[present]
            unexpected = ~np.asarray(meets(values, kwargs), dtype=bool)
        _need(len(unexpected) == len(values))
        total, count = len(column), int(np.count_nonzero(unexpected))
        if total == 0 or nonnull == 0:
            success = True
        else:
            success = (float(nonnull) - float(count)) / float(nonnull) >= mostly
        return _map_output(success, total, nonnull, count, values, unexpected)

    return run


def _maskable(dtype: Any) -> bool:
    """Dtypes whose nulls compare, match and count as no value at all (NaN, NaT, pd.NA), so a
    condition on the whole column agrees with it on the non-null values wherever a value is."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in "fM"
    return isinstance(dtype, (pd.StringDtype, pd.core.arrays.integer.IntegerDtype,
                              pd.core.arrays.floating.FloatingDtype))


def _between(values: pd.Series, kwargs: dict) -> np.ndarray:
    low, high = _between_bound(kwargs.get("min_value")), _between_bound(kwargs.get("max_value"))
    strict_min, strict_max = _flag(kwargs, "strict_min"), _flag(kwargs, "strict_max")
    _need(low is not None or high is not None)
    _need(low is None or high is None or type(low) is type(high))
    if low is not None and high is not None:
        _need(not low > high)  # GX: "min_value cannot be greater than max_value"
    bound = low if low is not None else high
    dtype = values.dtype
    if dtype in (np.dtype("int64"), np.dtype("float64")):
        # GX's own column-wise comparison (a datetime bound against numbers raises there).
        _need(isinstance(bound, float))
        column = values
    elif isinstance(dtype, np.dtype) and dtype.kind == "M":
        # datetime64[ns] is compared column-wise by GX, other units value by value (Timestamp
        # against datetime: the same comparison).
        _need(isinstance(bound, datetime.datetime))
        column = values
    elif isinstance(bound, float) and _numeric_by_value(values):
        column = values  # GX compares each Python number with the float bound: exact here too
    else:
        raise _Unsupported
    return _vectorized(column, low, high, strict_min, strict_max).to_numpy(dtype=bool, na_value=False)


def _numeric_by_value(values: pd.Series) -> bool:
    """True when comparing the column with a float is exactly GX's per-value comparison."""
    dtype = values.dtype
    if dtype == np.dtype(bool) or (isinstance(dtype, np.dtype) and dtype.kind == "f"):
        return True
    if isinstance(dtype, np.dtype) and dtype.kind in "iu" or isinstance(dtype, pd.core.arrays.integer.IntegerDtype):
        if np.dtype(dtype.numpy_dtype if hasattr(dtype, "numpy_dtype") else dtype).itemsize < 8:
            return True  # every value is exact as a float64
        # Python compares an int with a float exactly; numpy casts the int to float64 first.
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        return len(numbers) == 0 or not (np.abs(numbers) > _EXACT_INT).any()
    return False


def _vectorized(column: pd.Series, low: Any, high: Any, strict_min: bool, strict_max: bool) -> pd.Series:
    """GX's ``ColumnValuesBetween._pandas_vectorized``."""
    if low is None:
        return column < high if strict_max else column <= high
    if high is None:
        return low < column if strict_min else low <= column
    if strict_min and strict_max:
        return (low < column) & (column < high)
    if strict_min:
        return (low < column) & (column <= high)
    if strict_max:
        return (low <= column) & (column < high)
    return (low <= column) & (column <= high)


def _in_set(values: pd.Series, kwargs: dict) -> np.ndarray:
    value_set = kwargs.get("value_set")
    _need(isinstance(value_set, list) and all(v is None or isinstance(v, (str, int, float)) for v in value_set))
    if isinstance(values.dtype, pd.StringDtype):
        # GX sees Python strings in an object column; only strings can equal them.
        value_set = [v for v in value_set if isinstance(v, str)]
    return values.isin(value_set).to_numpy(dtype=bool, na_value=False)


def _unique(values: pd.Series, kwargs: dict) -> np.ndarray:
    return ~duplicate_masks(values)[0]


# id(array) -> (weak reference to the array, masks); arrays compare element-wise, so not a dict key.
_DUPLICATES: dict[int, tuple[Any, tuple[np.ndarray, np.ndarray]]] = {}


def duplicate_masks(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(repeated, after_first)`` over the rows of ``column``: the non-null values that occur more
    than once, every occurrence (GX's ``unique`` rule, ``duplicated(keep=False)``), and the
    occurrences after the first (the rows :mod:`pipeline.validate` quarantines,
    ``duplicated(keep="first")``). Nulls are in neither.

    One factorisation gives both (hashing a million Arrow strings is ~0.35 s; the expectation and
    the quarantine mask used to hash them twice). They are kept for the column's array while it
    lives, so the second caller of a validation gets them free."""
    array = column.array
    kept = _DUPLICATES.get(id(array))
    if kept is not None and kept[0]() is array:
        return kept[1]
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    codes = np.asarray(codes)
    present = codes >= 0
    safe = np.where(present, codes, 0)
    repeated = present & (np.bincount(codes[present], minlength=max(len(uniques), 1))[safe] > 1)
    # factorize numbers values in order of first appearance: a row is the first of its value
    # exactly when its code exceeds every code before it.
    seen = np.maximum.accumulate(np.concatenate([[-1], codes]))[:-1]
    after_first = present & (codes <= seen)
    result = (repeated, after_first)
    for key in [k for k, (ref, _) in _DUPLICATES.items() if ref() is None]:
        del _DUPLICATES[key]
    try:
        _DUPLICATES[id(array)] = (weakref.ref(array), result)
    except TypeError:  # an array type that takes no weak reference: not kept
        pass
    return result


def _in_type_list_types(type_list: list[str]) -> tuple:
    comp_types: list = []
    for type_ in type_list:
        try:
            comp_types.append(np.dtype(type_).type)
        except TypeError:
            try:
                pd_type = getattr(pd, type_)
                if isinstance(pd_type, type):
                    comp_types.append(pd_type)
            except AttributeError:
                pass
            comp_types.extend(_dtypes_module_type(type_))
        comp_types.extend(_native_type(type_) or ())
    _need(len(comp_types) > 0)  # GX: "No recognized numpy/python type in list"
    return tuple(comp_types)


def _native_type(type_: str) -> tuple[type, ...] | None:
    """GX's ``type_comparison.native_type_type_map``."""
    name = type_.lower()
    return {"none": (type(None),), "bool": (bool,), "int": (int,), "long": (int,), "float": (float,),
            "bytes": (bytes,), "complex": (complex,), "str": (str,), "string_types": (str,), "list": (list,),
            "dict": (dict,)}.get(name)


def _in_type_list_values(values: pd.Series, kwargs: dict) -> np.ndarray:
    comp_types = _in_type_list_types(kwargs["type_list"])
    if isinstance(values.dtype, pd.StringDtype):  # every value is a Python str
        return np.full(len(values), issubclass(str, comp_types), dtype=bool)
    array = values.to_numpy(dtype=object)
    # All str instances (np.str_ included): one answer for all unless np.str_ alone matches.
    if len(array) and pd.api.types.infer_dtype(array, skipna=False) == "string" and (
            issubclass(str, comp_types) or not issubclass(np.str_, comp_types)):
        return np.full(len(values), issubclass(str, comp_types), dtype=bool)
    # Otherwise one isinstance answer per distinct type (the type of each value, in C).
    types = np.frompyfunc(type, 1, 1)(array) if len(array) else array
    meets = np.zeros(len(array), dtype=bool)
    for kind in pd.unique(types):
        if issubclass(kind, comp_types):
            meets |= types == kind
    return meets


_in_type_list_map = _column_map(_in_type_list_values)


def _in_type_list(view: pd.DataFrame, kwargs: dict) -> dict:
    type_list = kwargs.get("type_list")
    _need(isinstance(type_list, list) and all(isinstance(t, str) for t in type_list))
    name = kwargs.get("column")
    _need(isinstance(name, str) and view.columns.is_unique and name in view.columns)
    _column(view, kwargs)  # GX raises where it cannot form the domain
    dtype = view[name].dtype  # GX looks the type up by the exact name
    if isinstance(dtype, pd.StringDtype):
        dtype = np.dtype(object)  # GX's view: Python strings in an object column
    if dtype.type.__name__ == "object_":
        return _in_type_list_map(view, kwargs)
    _mostly(kwargs)
    return {"success": _dtype_in_list(dtype, type_list), "result": {"observed_value": dtype.type.__name__}}


def _dtype_in_list(actual: Any, type_list: list[str]) -> bool:
    """GX's ``ExpectColumnValuesToBeInTypeList._validate_pandas`` membership test."""
    comp_types: list = []
    for type_ in type_list:
        try:
            comp_types.append(np.dtype(type_).type)
            comp_types.append(np.dtype(type_))
        except TypeError:
            try:
                pd_type = getattr(pd, type_)
            except AttributeError:
                pass
            else:
                if isinstance(pd_type, type):
                    comp_types.append(pd_type)
                    try:
                        if isinstance(pd_type(), pd.core.dtypes.base.ExtensionDtype):
                            comp_types.append(pd_type())
                    except TypeError:
                        pass
            comp_types.extend(_dtypes_module_type(type_))
        comp_types.extend(_native_type(type_) or ())
    return bool(actual in comp_types)


def _dtypes_module_type(type_: str) -> list[type]:
    """The class ``pandas.core.dtypes.dtypes`` names ``type_``, as both of GX's type-list checks
    look it up after numpy does not know the name."""
    pd_type = getattr(pd.core.dtypes.dtypes, type_, None)
    return [pd_type] if isinstance(pd_type, type) else []


# ---------------------------------------------------------------------------------------------
# GX's result shape


def _map_output(success: bool, total: int, nonnull: int | None, count: int, values: pd.Series,
                unexpected: np.ndarray) -> dict:
    """``_format_map_output`` at SUMMARY, from the domain values the mask ``unexpected`` is of."""
    rows = np.flatnonzero(unexpected)[:_PARTIAL]
    first = values.iloc[rows]
    if isinstance(first.dtype, pd.StringDtype):
        first = first.astype(object)  # the Python objects GX's object view holds
    partial = list(first)
    index = list(first.index)
    result: dict[str, Any] = {"element_count": total, "unexpected_count": count}
    missing_count = None if nonnull is None else total - nonnull
    missing_percent = percent_total = percent_nonmissing = None
    if total > 0:
        percent_total = count / total * 100
        if nonnull is not None:
            missing_percent = missing_count / total * 100
            percent_nonmissing = count / nonnull * 100 if nonnull > 0 else None
        else:
            percent_nonmissing = percent_total
    result["unexpected_percent"] = percent_nonmissing
    result["partial_unexpected_list"] = partial[:_PARTIAL]
    if nonnull is not None:
        result.update(missing_count=missing_count, missing_percent=missing_percent,
                      unexpected_percent_total=percent_total, unexpected_percent_nonmissing=percent_nonmissing)
    try:
        result["partial_unexpected_counts"] = [
            {"value": key, "count": value}
            for key, value in sorted(Counter(partial).most_common(_PARTIAL), key=lambda x: (-x[1], x[0]))]
    except TypeError:  # GX leaves the counts out when the values cannot be hashed or ordered
        pass
    result["partial_unexpected_index_list"] = index[:_PARTIAL]
    return {"success": success, "result": result}


def _json(data: Any) -> Any:
    """GX's ``convert_to_json_serializable`` for the values results hold here."""
    if isinstance(data, float) and np.isnan(data):
        return None
    if isinstance(data, (str, int, float, bool)):
        return data
    if isinstance(data, enum.Enum):
        return data.value
    if isinstance(data, range):
        return list(data)
    if isinstance(data, dict):
        return {str(key): _json(value) for key, value in data.items()}
    if isinstance(data, (list, tuple, set)):
        return [_json(value) for value in data]
    if isinstance(data, (np.ndarray, pd.Index)):
        return [_json(value) for value in data.tolist()]
    if isinstance(data, (datetime.datetime, datetime.date, datetime.time)):
        return data.isoformat()
    if isinstance(data, np.datetime64):
        return np.datetime_as_string(data)
    if isinstance(data, (uuid.UUID, bytes, slice, pathlib.PurePath)):
        return str(data)
    if isinstance(data, np.bool_):
        return bool(data)
    if isinstance(data, np.integer):
        return int(data)
    if isinstance(data, np.floating):
        return float(round(data, sys.float_info.dig))
    if data is None:
        return None
    if isinstance(data, decimal.Decimal):
        raise _Unsupported
    try:
        if pd.isna(data):
            return None
    except (TypeError, ValueError):
        pass
    raise _Unsupported  # something GX would serialise some other way (or fail to)


_EVALUATORS = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _column_map(_between, masked=True),
    "expect_column_values_to_be_in_set": _column_map(_in_set, masked=True),
    "expect_column_values_to_be_unique": _column_map(_unique, masked=True),
    "expect_column_values_to_be_in_type_list": _in_type_list,
    "expect_table_row_count_to_be_between": _row_count,
    "expect_table_columns_to_match_set": _columns_match_set,
}
