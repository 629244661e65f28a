"""The model spec's field reference, generated from the schema in :mod:`pipeline.config`.

Contract:
* :func:`render` returns ``docs/spec-reference.md`` as markdown: one table per section of
  :class:`~pipeline.config.ModelSpec` (the top level, then each nested policy in field order),
  each row a field's YAML key, type, default, allowed values and description, all read from the
  pydantic fields (annotations, ``Field`` constraints and ``description``) and the section
  classes' docstrings; then the metrics table (:data:`pipeline.metrics.METRICS`) and the
  migrations of earlier specs. The output depends only on the code, so a test compares it with
  the committed file.
* :func:`undocumented_fields` lists the dotted names of fields without a description (a test
  requires none).

Regenerate the file with ``python -m pipeline spec-reference --out docs/spec-reference.md``.
"""

from __future__ import annotations

import inspect
import re
import types
from datetime import date
from typing import Annotated, Any, Iterator, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from pipeline import config, metrics

#: Where the generated reference lives in the repository, and the command that rewrites it.
REFERENCE_PATH = "docs/spec-reference.md"
REGENERATE_COMMAND = f"python -m pipeline spec-reference --out {REFERENCE_PATH}"

_SCALARS = {str: "text", int: "integer", float: "number", bool: "true/false", date: "date (YYYY-MM-DD)"}
_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", "≥"),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "≤"))


def _sections(model: type[BaseModel] = config.ModelSpec, prefix: str = "") -> Iterator[tuple[str, type[BaseModel]]]:
    """``(dotted key, model)`` of the top level and every nested section, depth first in field order."""
    yield prefix, model
    for name, field in model.model_fields.items():
        nested = _nested_model(field.annotation)
        if nested is not None:
            yield from _sections(nested, f"{prefix}{name}{'[]' if _is_sequence(field.annotation) else ''}.")


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (itself or a tuple of it), else ``None``."""
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if _is_sequence(annotation):
        return _nested_model(get_args(annotation)[0])
    return None


def _is_sequence(annotation: Any) -> bool:
    return get_origin(annotation) is tuple and len(get_args(annotation)) == 2 and get_args(annotation)[1] is Ellipsis


def _is_tolerance(field: FieldInfo) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is config._canonical_tolerance for m in field.metadata)


def _unwrap(annotation: Any) -> tuple[Any, bool, list[Any]]:
    """``(bare annotation, nullable, constraint metadata)`` of an annotation."""
    nullable, extra = False, []
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            inner, *meta = get_args(annotation)
            for m in meta:
                extra += getattr(m, "metadata", [m])
            annotation = inner
        elif origin in (Union, types.UnionType) and type(None) in get_args(annotation):
            rest = [a for a in get_args(annotation) if a is not type(None)]
            nullable = True
            annotation = rest[0] if len(rest) == 1 else Union[tuple(rest)]
        else:
            return annotation, nullable, extra


def _type_text(annotation: Any) -> str:
    nested = _nested_model(annotation)
    if nested is not None:
        return "list of mappings" if _is_sequence(annotation) else "mapping"
    if get_origin(annotation) is Literal:
        return "text"
    if _is_sequence(annotation):
        return f"list of {_type_text(get_args(annotation)[0])}"
    if get_origin(annotation) is dict:
        key, value = get_args(annotation)
        return f"map of {_type_text(key)} to {_type_text(value)}"
    return _SCALARS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _allowed(field: FieldInfo, annotation: Any, constraints: list[Any]) -> str:
    parts: list[str] = []
    if get_origin(annotation) is Literal:
        parts.append(" | ".join(f"`{v}`" for v in get_args(annotation)))
    if _is_tolerance(field):
        parts.append("a number, `\"x%\"` or `\"xse\"` ([tolerances](#tolerances))")
    for meta in [*field.metadata, *constraints]:
        for kind, attr, sign in _BOUNDS:
            if isinstance(meta, kind):
                parts.append(f"{sign} {getattr(meta, attr)}")
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def _yaml_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def _default(field: FieldInfo, annotation: Any) -> str:
    if field.is_required():
        return "**required**"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(all defaults)"
    return f"`{_yaml_value(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _prose(doc: str | None) -> str:
    """A docstring as markdown: reST roles and double backticks become plain code spans."""
    text = inspect.cleandoc(doc or "")
    text = re.sub(r":\w+:`~?([^`]+)`", lambda m: f"`{m.group(1).split('.')[-1]}`", text)
    return text.replace("``", "`")


def _anchor(key: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", key.lower()) if key else "top-level"


def _section_table(key: str, model: type[BaseModel]) -> list[str]:
    rows = ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        annotation, nullable, constraints = _unwrap(field.annotation)
        type_text = ("tolerance" if _is_tolerance(field) else _type_text(annotation)) + (" or null" if nullable else "")
        description = field.description or ""
        nested = _nested_model(annotation)
        if nested is not None:
            sub = f"{key}{name}{'[]' if _is_sequence(annotation) else ''}"
            description += f" See [{sub}](#{_anchor(sub)})."
        rows.append(f"| `{name}` | {type_text} | {_default(field, annotation)} | "
                    f"{_cell(_allowed(field, annotation, constraints))} | {_cell(description)} |")
    return rows


def undocumented_fields(model: type[BaseModel] = config.ModelSpec) -> list[str]:
    """Dotted names of the fields of ``model`` and its sections that have no ``description``
    (the reference needs one for each)."""
    return [f"{key}{name}" for key, section in _sections(model) for name, field in section.model_fields.items()
            if not (field.description or "").strip()]


def _metrics_table() -> list[str]:
    rows = ["| metric | task | better | plain-number tolerances | what it is |", "|---|---|---|---|---|"]
    for m in metrics.METRICS.values():
        default = " (default primary)" if metrics.default_primary(m.task) == m.name else ""
        rows.append(f"| `{m.name}` | {m.task}{default} | {'higher' if m.higher_is_better else 'lower'} | "
                    f"{'allowed (bounded metric)' if m.bounded else 'refused: use x% or xse'} | {_cell(m.description)} |")
    return rows


def render() -> str:
    """The spec reference as markdown (the content of :data:`REFERENCE_PATH`)."""
    sections = list(_sections())
    out = [
        "# Model spec reference",
        "",
        f"<!-- Generated from pipeline/config.py by `{REGENERATE_COMMAND}`. Edit the field",
        "     descriptions there; tests/unit/test_spec_reference.py fails when this file is stale. -->",
        "",
        "A model spec is one YAML file in `config/` (or `$DRIFTLINE_CONFIG_DIR`); each spec gives two",
        "Airflow DAGs, `retrain__<name>` and `monitor__<name>`. Only the fields marked **required** must",
        "be written; every other field has the default shown. Unknown fields are refused (a misspelled",
        "key is an error, not a silent default), and text may reference `${DRIFTLINE_LAKE_ROOT}`,",
        "`${DRIFTLINE_HOME}`, `${DRIFTLINE_ARTIFACT_ROOT}` or any environment variable as `${NAME}`.",
        "Check a spec with `python -m pipeline status <name>` (an invalid spec prints each bad field and",
        "what is allowed). A walkthrough that writes one from scratch:",
        "[add your own model](add-your-own-model.md); worked examples: `config/credit_default.yaml`",
        "(binary, lake), `config/examples/claim_cost.yaml` (regression),",
        "`config/examples/credit_default_postgres.yaml` (PostgreSQL source).",
        "",
        "Sections: " + ", ".join(f"[{key.rstrip('.') or 'top level'}](#{_anchor(key.rstrip('.'))})"
                                 for key, _ in sections)
        + ", [tolerances](#tolerances), [metrics](#metrics), [earlier specs](#earlier-specs).",
    ]
    for key, model in sections:
        title = key.rstrip(".") or "top level"
        out += ["", f"## {title}", "", _prose(model.__doc__), "", *_section_table(key, model)]
    out += [
        "", "## tolerances", "",
        "Margins and tolerances (`promotion.min_lift_over_baseline`, `promotion.champion_margin`,",
        "`promotion.slice_tolerance`, `drift.performance_tolerance`) are written one of three ways:",
        "",
        "* a plain number, in the metric's own units: allowed only for bounded metrics (see below),",
        "  e.g. `0.003` ROC AUC points;",
        "* a percentage of the reference value (the champion's or the baseline's metric), e.g. `\"-0.5%\"`;",
        "* bootstrap standard errors of the compared quantity, e.g. `\"1se\"`.",
        "",
        "Positive means better: a negative margin tolerates a regression (non-inferiority), a positive",
        "one requires an improvement. On an unbounded metric (RMSE, MAE, log loss) a plain non-zero",
        "number is refused with a message saying how to write it.",
        "", "## metrics", "",
        "`promotion.primary_metric` and the keys of `promotion.metric_floors` name one of the task's",
        "metrics (from `pipeline/metrics.py`).",
        "", *_metrics_table(),
        "", "## earlier specs", "",
        _prose(config.ModelSpec._migrate.__func__.__doc__),
    ]
    return "\n".join(out) + "\n"
