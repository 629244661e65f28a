"""GX's validation page renderer with driftline's verdict and a Severity column (kept apart from
:mod:`pipeline.data_docs` because subclassing GX's renderers imports Great Expectations, which
costs seconds; GX's SiteBuilder loads this module by name when it renders a page)."""

from __future__ import annotations

from typing import Any

from great_expectations.expectations.expectation_configuration import (
    ExpectationConfiguration,
)
from great_expectations.render.renderer.content_block.validation_results_table_content_block import (
    ValidationResultsTableContentBlockRenderer,
)
from great_expectations.render.renderer.page_renderer import (
    ValidationResultsPageRenderer,
)

#: The kwarg through which GX's page renderer asks its tables for extra (meta property) columns.
_META_COLUMNS = "meta_properties_to_render"


class SeverityTableRenderer(ValidationResultsTableContentBlockRenderer):
    """GX's expectation table, able to draw the suite's meta-property columns (Severity).

    GX 1.24 passes the columns to draw in each expectation's kwargs, then rebuilds the expectation
    from those kwargs to look for a description, which pydantic refuses ("extra fields not
    permitted"): the page is not written at all. This rebuilds it without that kwarg.
    """

    @classmethod
    def _get_content_block_fn_from_expectation_description(cls, expectation_config: ExpectationConfiguration
                                                           ) -> Any:
        if _META_COLUMNS not in expectation_config.kwargs:
            return super()._get_content_block_fn_from_expectation_description(expectation_config)
        plain = ExpectationConfiguration(
            type=expectation_config.type, meta=expectation_config.meta, description=expectation_config.description,
            kwargs={k: v for k, v in expectation_config.kwargs.items() if k != _META_COLUMNS})
        return super()._get_content_block_fn_from_expectation_description(plain)


class VerdictPageRenderer(ValidationResultsPageRenderer):
    """GX's validation page, with driftline's verdict in the overview and a Severity column.

    The header's status is the ``status`` under the result's ``meta.driftline`` ("Succeeded with
    2 warning(s)", "Failed: 1 critical failure(s)"); the statistics table gains its rows
    (verdict, critical failures, warnings, quarantined and valid rows).
    """

    def __init__(self, data_context: Any = None, run_info_at_end: bool = False) -> None:
        super().__init__(
            column_section_renderer={"class_name": "ValidationResultsColumnSectionRenderer",
                                     "table_renderer": {"module_name": __name__,
                                                        "class_name": "SeverityTableRenderer"}},
            run_info_at_end=run_info_at_end, data_context=data_context)

    @classmethod
    def _render_validation_header(cls, validation_results: Any) -> Any:
        header = super()._render_validation_header(validation_results)
        verdict = validation_results.meta.get("driftline")
        if verdict:
            header.subheader.string_template["params"]["success"] = verdict["status"]
        return header

    @classmethod
    def _render_validation_statistics(cls, validation_results: Any) -> Any:
        table = super()._render_validation_statistics(validation_results)
        verdict = validation_results.meta.get("driftline")
        if verdict:
            table.table.extend([[label, value] for label, value in verdict["statistics"]])
        return table
