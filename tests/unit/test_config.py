"""Model spec loading: the demo spec is valid; every kind of mistake names file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from pipeline.config import ModelSpec, Settings, SpecError, find_spec, load_spec, load_specs, parse_spec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "config" / "credit_default.yaml"


@pytest.fixture
def demo_data() -> dict:
    return yaml.safe_load(DEMO.read_text())


def _write(tmp_path: Path, data: dict, name: str = "model.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_demo_spec_is_valid(settings):
    spec = load_spec(DEMO, settings)
    assert spec.name == "credit_default" and spec.task == "binary"
    assert spec.source.kind == "lake"
    assert spec.source.uri == f"{settings.lake_root}/credit_default"
    assert spec.required_columns[:3] == ("event_time", "defaulted", "application_id")
    assert len(spec.features) == 17
    assert spec.primary_metric == "roc_auc"
    assert spec.windows.total_days == 42
    assert spec.model_columns[-1] == "event_time"  # application_hour reads the timestamp


def test_spec_is_frozen(spec):
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"
    with pytest.raises(pydantic.ValidationError):
        spec.promotion.champion_margin = 1.0


def _set(data: dict, dotted: str, value) -> dict:
    node = data
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DELETE = object()


@pytest.mark.parametrize("field, value, needles", [
    ("task", "multiclass", ["task", "'binary' or 'regression'", "'multiclass'"]),
    ("source.kind", "ftp", ["source.kind", "'lake' or 'postgres'", "'ftp'"]),
    ("source.format", "json", ["source.format", "'parquet' or 'csv'"]),
    ("source.uri", _DELETE, ["source", "needs source.uri"]),
    ("colour", "blue", ["colour", "unknown field"]),
    ("promotion.primary_metric", "accuracy", ["'accuracy' is not a binary metric", "roc_auc"]),
    ("promotion.metric_floors", {"accuracy": 0.5}, ["metric_floors", "accuracy"]),
    ("promotion.confidence", 1.5, ["promotion.confidence", "less than 1"]),
    ("windows.train_days", 0, ["windows.train_days", "greater than 0"]),
    ("name", "Credit-Default", ["name", "pattern"]),
    ("slice_columns", ["postcode"], ["slice column 'postcode'"]),
    ("numeric_features", ["age", "age"], ["listed twice", "age"]),
    ("derived_features", [{"name": "r", "kind": "ratio", "numerator": "age"}], ["needs denominator"]),
    ("derived_features", [{"name": "r", "kind": "log1p", "column": "salary"}], ["unknown columns ['salary']"]),
    ("drift.psi_bins", 2, ["drift.psi_bins", "greater than or equal to 3"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_fields_raise_spec_error_naming_file_and_field(tmp_path, settings, demo_data, field, value, needles):
    path = _write(tmp_path, _set(demo_data, field, value))
    with pytest.raises(SpecError) as err:
        load_spec(path, settings)
    msg = str(err.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg


def test_postgres_source_needs_exactly_one_of_table_and_query(tmp_path, settings, demo_data):
    demo_data["source"] = {"kind": "postgres", "table": "t", "query": "SELECT 1"}
    with pytest.raises(SpecError, match="exactly one of source.table or source.query"):
        load_spec(_write(tmp_path, demo_data), settings)
    demo_data["source"] = {"kind": "postgres", "query": "SELECT * FROM t"}
    assert load_spec(_write(tmp_path, demo_data), settings).source.describe() == "postgres query"


@pytest.mark.parametrize("text, needle", [
    ("name: [unclosed", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping, got list"),
    ("", "must be a YAML mapping, got NoneType"),
])
def test_unparsable_files(tmp_path, settings, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=needle) as err:
        load_spec(path, settings)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path, settings):
    with pytest.raises(SpecError, match="cannot read model spec"):
        load_spec(tmp_path / "absent.yaml", settings)


def test_variable_expansion(tmp_path, demo_data, monkeypatch):
    monkeypatch.setenv("DRIFTLINE_SOURCE_BUCKET", "lake-bucket")
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_LAKE_ROOT": "s3://lakes/prod"})
    assert load_spec(DEMO, settings).source.uri == "s3://lakes/prod/credit_default"
    demo_data["source"]["uri"] = "s3://${DRIFTLINE_SOURCE_BUCKET}/x"
    assert parse_spec(demo_data, settings=settings).source.uri == "s3://lake-bucket/x"
    demo_data["source"]["uri"] = "${DRIFTLINE_NOT_SET_ANYWHERE}/x"
    with pytest.raises(SpecError, match=r"source\.uri references \$\{DRIFTLINE_NOT_SET_ANYWHERE\}, which is not set"):
        parse_spec(demo_data, path="m.yaml", settings=settings)


def test_settings_defaults_and_overrides(tmp_path):
    s = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path)})
    assert s.artifact_root == str(tmp_path / "artifacts")
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    s = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_ARTIFACT_ROOT": "s3://b/a",
                           "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert (s.artifact_root, s.mlflow_tracking_uri) == ("s3://b/a", "http://127.0.0.1:5000")


def test_find_spec_and_duplicate_names(tmp_path, demo_data):
    settings = Settings.from_env({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_CONFIG_DIR": str(tmp_path / "cfg")})
    (tmp_path / "cfg").mkdir()
    _write(tmp_path / "cfg", demo_data, "a.yaml")
    assert isinstance(find_spec("credit_default", settings), ModelSpec)
    with pytest.raises(SpecError, match="no model named 'other'"):
        find_spec("other", settings)
    _write(tmp_path / "cfg", demo_data, "b.yml")
    with pytest.raises(SpecError, match=r"used by more than one spec: \['credit_default'\]"):
        load_specs(tmp_path / "cfg", settings)


@pytest.mark.parametrize("value, canonical, unit", [
    (-0.005, "-0.005", "absolute"), ("-0.5%", "-0.5%", "relative"), (" 2 se", "2.0se", "se"), ("3%", "3.0%", "relative"),
    (0, "0.0", "absolute"),
])
def test_tolerances_parse_to_a_canonical_unit(demo_data, settings, value, canonical, unit):
    from pipeline.config import tolerance_unit, tolerance_value

    demo_data["promotion"]["champion_margin"] = value
    margin = parse_spec(demo_data, settings=settings).promotion.champion_margin
    assert margin.replace(".0%", "%") == canonical.replace(".0%", "%") and tolerance_unit(margin) == unit
    expected = {"absolute": float(value) if unit == "absolute" else None,
                "relative": None, "se": None}[unit]
    if unit == "relative":
        assert tolerance_value(margin, reference=0.8) == pytest.approx(float(canonical.rstrip("%")) / 100 * 0.8)
    elif unit == "se":
        assert tolerance_value(margin, reference=None, se=0.01) == pytest.approx(0.02)
    else:
        assert tolerance_value(margin, reference=None) == expected


def test_a_plain_number_is_rejected_for_an_unbounded_metric_with_how_to_convert(demo_data, settings):
    demo_data.update(task="regression", promotion={"primary_metric": "rmse", "champion_margin": -0.005})
    with pytest.raises(SpecError) as err:
        parse_spec(demo_data, path="m.yaml", settings=settings)
    msg = str(err.value)
    assert "promotion.champion_margin is -0.005, a plain number, but rmse is in the target's units" in msg
    assert "'-0.5%'" in msg and "'1se'" in msg
    demo_data["promotion"]["champion_margin"] = "-0.5%"
    demo_data["drift"]["performance_tolerance"] = "3%"
    demo_data["promotion"]["slice_tolerance"] = "3%"
    demo_data["promotion"]["min_lift_over_baseline"] = "0.5%"
    assert parse_spec(demo_data, settings=settings).primary_metric == "rmse"
    with pytest.raises(SpecError, match="is not a tolerance"):
        parse_spec({**demo_data, "promotion": {"champion_margin": "five"}}, settings=settings)


def test_earlier_specs_are_migrated(demo_data, settings):
    """``drift.label_delay_days`` moved to the top level (every stage uses it) and
    ``drift.min_new_rows`` was replaced by ``adaptation.min_post_change_rows``."""
    del demo_data["label_delay_days"]
    demo_data["drift"].update(label_delay_days=5, min_new_rows=2000)
    spec = parse_spec(demo_data, settings=settings)
    assert spec.label_delay_days == 5 and "min_new_rows" not in spec.drift.model_dump()
    demo_data["label_delay_days"] = 3
    with pytest.raises(SpecError, match="label_delay_days is given twice"):
        parse_spec(demo_data, settings=settings)
