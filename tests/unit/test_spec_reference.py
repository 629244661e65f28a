"""The spec field reference (docs/spec-reference.md) is generated from the schema and kept current."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from pipeline import config
from pipeline.cli import main
from pipeline.spec_reference import REFERENCE_PATH, REGENERATE_COMMAND, render, undocumented_fields
from tests.conftest import REPO


def test_committed_reference_is_current():
    committed = (REPO / REFERENCE_PATH).read_text() if (REPO / REFERENCE_PATH).is_file() else ""
    assert committed == render(), (f"{REFERENCE_PATH} is out of date with pipeline/config.py; regenerate it "
                                   f"with `{REGENERATE_COMMAND}` and commit it")


def test_every_spec_field_has_a_description():
    missing = undocumented_fields()
    assert not missing, (f"spec fields without a description: {missing}; add Field(description=...) to each in "
                         f"pipeline/config.py, then run `{REGENERATE_COMMAND}`")


def test_a_field_without_a_description_is_reported():
    class Inner(BaseModel):
        documented: int = Field(default=1, description="a documented field")
        bare: int = 2

    class Outer(BaseModel):
        name: str = Field(description="the name")
        inner: Inner = Field(default=Inner(), description="a section")
        items: tuple[Inner, ...] = ()

    assert undocumented_fields(Outer) == ["items", "inner.bare", "items[].bare"]


def _rows(markdown: str) -> dict[str, dict[str, list[str]]]:
    """Section title -> field name -> its table cells, from the rendered reference."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in markdown.splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line[3:], {})
        elif current is not None and (m := re.match(r"^\| `([a-z_0-9]+)` \|(.*)\|$", line)):
            current[m.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", m.group(2))]
    return sections


def test_every_field_of_every_section_is_a_row_with_its_default_and_constraints():
    sections = _rows(render())
    expected = {"top level": config.ModelSpec, "source": config.SourceSpec, "derived_features[]": config.DerivedFeature,
                "windows": config.WindowSpec, "params": config.ModelParams, "validation": config.ValidationPolicy,
                "promotion": config.PromotionPolicy, "drift": config.DriftPolicy, "costs": config.CostPolicy,
                "adaptation": config.AdaptationPolicy, "runtime": config.RuntimePolicy}
    for title, model in expected.items():
        assert list(sections[title]) == list(model.model_fields), title
    assert sections["top level"]["name"][1] == "**required**"
    assert sections["source"]["kind"][2] == "`lake` \\| `postgres`"
    assert sections["params"]["learning_rate"][1:3] == ["`0.08`", "> 0, ≤ 1"]
    assert sections["promotion"]["champion_margin"][0:2] == ["tolerance", '`"-0.5%"`']
    assert sections["runtime"]["failed_run_retention_days"][0] == "integer or null"
    assert "`rmse` | regression (default primary) | lower | refused: use x% or xse" in render()


def test_cli_writes_the_reference(tmp_path, capsys):
    out = tmp_path / "spec-reference.md"
    assert main(["spec-reference", "--out", str(out)]) == 0
    assert out.read_text() == render()
    assert main(["spec-reference"]) == 0
    assert capsys.readouterr().out.endswith(render())
