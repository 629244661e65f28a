"""Great Expectations Data Docs for driftline validations: offline, with the pipeline's verdict,
one site per run and one per model.

Contract:
* :func:`write_data_docs` renders one validation with GX's own page renderers into
  ``<run prefix>/data_docs/`` (the run's site: its validation page, its suite page, an index) and,
  when the :class:`DocsTarget` names a model site, adds the same pages to
  ``<artifact_root>/<model>/data_docs/`` and rebuilds that site's index so it lists every
  validation the model has had, newest first. Both go through :class:`pipeline.storage.Store`, so
  a local artifact root and an ``s3://`` one work alike.
* **The page agrees with the pipeline.** The GX result's ``success`` is driftline's verdict (only
  a critical failure, a quarantine over its limit or too few valid rows fail a validation), not
  "every expectation passed": a run whose only failures are warnings reads "Succeeded with N
  warnings". The overview's statistics add the verdict, critical failures, warnings, quarantined
  and valid rows; every expectation row has a *Severity* column (GX's ``meta_properties``
  notes); expectations on a missing column appear as failed, saying so.
* **Names are driftline's**: the data asset is the caller's (``<model> snapshot``), the run name
  ``<date> <stage> <run id>``, the run time the run id's own time (so a retried task rewrites
  the same page rather than adding one).
* **Offline**: every page's CSS, JS and image references point at files inside the site
  (``static/vendor/``, copied from ``pipeline/static/datadocs/``, whose ``manifest.json`` pins each
  npm package and maps each CDN URL GX's templates use to its file; GX's logo comes from its own
  ``static/images``). A page asking for an external asset no table entry covers raises
  :class:`DataDocsAssetUnknown` -- a GX upgrade that adds a CDN URL fails the tests, not silently
  the reader. Links (``<a href>``) to GX's web site stay.
* The model site's index is rebuilt from the small ``<page>.json`` entries stored beside each
  validation page (one per validation; a retry overwrites its own). Two validations of one model
  finishing at the same instant may each write an index missing the other; the next validation's
  index lists both.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import DriftlineError
from pipeline.storage import Store, join

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "datadocs"
#: GX's templates take their logo from this bucket; GX ships the same images in ``static/images``.
_GX_WEB_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_ASSET_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_ASSET_URL = re.compile(r"""\b(src|href)=(["'])(https?://[^"']*)\2""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(["']?)(https?://[^"')\s]+)\1\s*\)""", re.IGNORECASE)
_STATIC_REF = re.compile(r"""(["'])(?:\.\./)*static/""")
_CDN_ONLY_ATTRS = re.compile(r"""\s(?:integrity|crossorigin)=(["'])[^"']*\1""", re.IGNORECASE)
_SEVERITY_COLUMN = "Severity"
_STATIC_MARKER = "static/driftline-static.json"


class DataDocsError(DriftlineError):
    """Data Docs could not be rendered."""


class DataDocsAssetUnknown(DataDocsError):
    """A Data Docs page references an external asset that is not vendored."""


@dataclass(frozen=True)
class DocsTarget:
    """Whose validation a Data Docs page shows, and the model's site it joins.

    Attributes:
        model: the model (names the model site).
        asset_name: the data asset the pages name, e.g. ``credit_default snapshot``.
        run_name: driftline's run, e.g. ``2026-02-01 retrain 20260202T010203004Z-ab12cd``.
        batch: the validated window within the run (the page's file name), e.g. ``snapshot``.
        run_time: when the run started (UTC).
        model_site: the model's site (``<artifact_root>/<model>/data_docs``); None = the run's
            own site only.
    """

    model: str
    asset_name: str
    run_name: str
    batch: str
    run_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    model_site: str | None = None

    @classmethod
    def for_run(cls, artifact_root: str, model: str, day: str, run_id: str, stage: str,
                window: str) -> DocsTarget:
        """The target of a pipeline run: asset ``<model> <window>``, run name ``<day> <stage>
        <run_id>``, run time the run id's time, model site ``<artifact_root>/<model>/data_docs``."""
        return cls(model=model, asset_name=f"{model} {window}", run_name=f"{day} {stage} {run_id}", batch=window,
                   run_time=run_time_of(run_id), model_site=join(artifact_root, model, "data_docs"))


    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "asset_name": self.asset_name, "run_name": self.run_name,
                "batch": self.batch, "run_time": self.run_time.isoformat(), "model_site": self.model_site}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DocsTarget:
        return cls(model=raw["model"], asset_name=raw["asset_name"], run_name=raw["run_name"], batch=raw["batch"],
                   run_time=datetime.fromisoformat(raw["run_time"]), model_site=raw.get("model_site"))


def run_time_of(run_id: str) -> datetime:
    """The UTC instant a run id (``YYYYmmddTHHMMSSfffZ-xxxxxx``) encodes; now for any other id."""
    try:
        at = datetime.strptime(run_id[:15], "%Y%m%dT%H%M%S")
        return at.replace(microsecond=int(run_id[15:18]) * 1000, tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)


def write_data_docs(store: Store, site_uri: str, report: dict[str, Any],
                    evidence: list[tuple[dict[str, Any], Any]], target: DocsTarget) -> str:
    """Render one validation into the run's site at ``site_uri`` (and the model's site).

    Args:
        store: where the sites live.
        site_uri: the run's site folder (``<out_prefix>/data_docs``).
        report: the validation report (``success``, ``failures``, ``warnings``, ``problems``,
            counts, ``suite_name``) -- the verdict the pages show.
        evidence: ``(expectation, GX result JSON or None)`` for every expectation of the suite,
            in order (the JSON is ``ExpectationValidationResult.to_json_dict()`` without its
            configuration, as :mod:`pipeline.validate` stores it); None = its column is missing.
        target: names and the model site.

    Returns:
        The run site's ``index.html`` URI.

    Raises:
        DataDocsAssetUnknown: a rendered page references an external asset no vendored file
            replaces (the message names it and the manifest to extend).
    """
    result = _suite_result(report, evidence, target)
    with tempfile.TemporaryDirectory(prefix="driftline-docs-") as tmp:
        site = Path(tmp)
        page = _render_pages(site, report["suite_name"], evidence, result)
        entry = _entry(report, target, page)
        (site / "index.html").write_text(_index_html([entry], f"{target.asset_name}, {target.run_name}"))
        _localise(site)
        store.upload_dir(site, site_uri)
        if target.model_site:
            _add_to_model_site(store, target, site, page, entry)
    return join(site_uri, "index.html")


def model_site_index(model_site: str) -> str:
    return join(model_site, "index.html")


def _suite_result(report: dict[str, Any], evidence: list[tuple[dict[str, Any], Any]],
                  target: DocsTarget) -> Any:
    """GX's suite result with driftline's verdict, names and each expectation's severity."""
    import great_expectations as gx
    from great_expectations.core import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    results = []
    for exp, gx_result in evidence:
        if gx_result is None:
            config = ExpectationConfiguration(type=exp["type"], kwargs=exp["kwargs"], meta=dict(exp["meta"]))
            missing = f"column {exp['kwargs']['column']!r} is missing from the data"
            gx_result = ExpectationValidationResult(
                success=False, expectation_config=config, result={},
                exception_info={"raised_exception": True, "exception_traceback": missing,
                                "exception_message": missing})
        else:
            config = ExpectationConfiguration(type=exp["type"], kwargs=copy.deepcopy(exp["kwargs"]),
                                              meta=copy.deepcopy(exp["meta"]))
            gx_result = ExpectationValidationResult(
                success=gx_result.get("success"), expectation_config=config,
                result=copy.deepcopy(gx_result.get("result") or {}), meta=copy.deepcopy(gx_result.get("meta") or {}),
                exception_info=copy.deepcopy(gx_result.get("exception_info")))
        meta = gx_result.expectation_config.meta
        meta["attributes"] = {**meta.get("attributes", {}), "severity": exp["meta"]["severity"]}
        results.append(gx_result)
    passed = sum(bool(r.success) for r in results)
    critical, warnings = len(report["failures"]), len(report["warnings"])
    other = len(report["problems"]) - critical
    if report["success"]:
        status = f"Succeeded with {warnings} warning(s)" if warnings else "Succeeded"
    else:
        causes = [f"{critical} critical failure(s)"] if critical else []
        causes += [f"{other} row limit(s) broken"] if other else []
        status = f"Failed: {', '.join(causes)}"
    quarantine = (f"{report['quarantined_rows']} of {report['rows']} ({report['quarantine_fraction']:.2%}; "
                  f"limit {report['max_quarantine_fraction']:.2%})")
    return ExpectationSuiteValidationResult(
        success=bool(report["success"]),
        results=results,
        suite_name=report["suite_name"],
        statistics={"evaluated_expectations": len(results), "successful_expectations": passed,
                    "unsuccessful_expectations": len(results) - passed,
                    "success_percent": 100.0 * passed / len(results) if results else None},
        batch_id=target.batch,
        meta={
            "great_expectations_version": gx.__version__,
            "run_id": RunIdentifier(run_name=target.run_name, run_time=target.run_time),
            "batch_spec": {"data_asset_name": target.asset_name, "batch": target.batch},
            "driftline": {"status": status, "statistics": [
                ["Pipeline verdict", "passed" if report["success"] else "failed"],
                ["Critical failures (fail the run)", critical],
                ["Warnings (recorded, the run goes on)", warnings],
                ["Quarantined rows", quarantine],
                ["Valid rows", f"{report['valid_rows']} (minimum {report['min_rows']})"],
            ]},
        },
    )


def _render_pages(site: Path, suite_name: str, evidence: list[tuple[dict[str, Any], Any]],
                  result: Any) -> str:
    """Render the validation and suite pages into ``site`` with GX's SiteBuilder; returns the
    validation page's path relative to the site."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.render.components import LegacyDiagnosticRendererType
    from great_expectations.render.renderer.site_builder import SiteBuilder

    context = gx.get_context(mode="ephemeral")
    context.suites.add(gx.ExpectationSuite(
        name=suite_name,
        expectations=[{"type": e["type"], "kwargs": e["kwargs"],
                       "meta": {**e["meta"], "attributes": {"severity": e["meta"]["severity"]}}}
                      for e, _ in evidence],
        meta={"notes": {"format": LegacyDiagnosticRendererType.META_PROPERTIES,
                        "content": {_SEVERITY_COLUMN: "severity"}}}))
    key = ValidationResultIdentifier(expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name),
                                     run_id=result.meta["run_id"], batch_identifier=result.batch_id)
    context.validation_results_store.set(key, result)
    builder = SiteBuilder(
        data_context=context, site_name="driftline", show_how_to_buttons=False,
        store_backend={"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
        site_section_builders={
            "validations": {"renderer": {"module_name": "pipeline.verdict_page", "class_name": "VerdictPageRenderer"}},
            "profiling": "None",
        })
    builder.build(build_index=False)
    page = "/".join(["validations", *suite_name.split("."), *key.run_id.to_tuple(), f"{key.batch_identifier}.html"])
    if not (site / page).is_file():
        # GX logs a rendering error and writes no page rather than raising.
        raise DataDocsError(f"Great Expectations rendered no validation page for suite {suite_name!r} (its "
                            "error is logged above by great_expectations.render); the validation itself is "
                            "recorded in validation.json")
    return page


def _entry(report: dict[str, Any], target: DocsTarget, page: str) -> dict[str, Any]:
    """One validation as GX's index lists it (plus driftline's counts)."""
    suite = report["suite_name"]
    return {
        "expectation_suite_name": suite,
        "expectation_suite_filepath": "/".join(["expectations", *suite.split(".")]) + ".html",
        "filepath": urllib.parse.quote(page),
        "run_name": target.run_name,
        "run_time": target.run_time.isoformat(),
        "batch_identifier": target.batch,
        "batch_spec": {"data_asset_name": target.asset_name, "batch": target.batch},
        "validation_success": bool(report["success"]),
        "asset_name": target.asset_name,
        "critical_failures": len(report["failures"]),
        "warnings": len(report["warnings"]),
    }


def _index_html(entries: list[dict[str, Any]], site_name: str) -> str:
    """GX's index page listing ``entries`` newest first, and the suites they used."""
    from great_expectations.render.renderer.site_index_page_renderer import (
        SiteIndexPageRenderer,
    )
    from great_expectations.render.view import DefaultJinjaIndexPageView

    validations = sorted(entries, key=lambda e: e["run_time"], reverse=True)
    suites = {e["expectation_suite_name"]: e["expectation_suite_filepath"] for e in reversed(validations)}
    links = {
        "site_name": site_name,
        "validations_links": [{**e, "run_id": e["run_name"]} for e in validations],
        "expectations_links": [{"expectation_suite_name": name, "filepath": urllib.parse.quote(path)}
                               for name, path in sorted(suites.items())],
    }
    rendered = SiteIndexPageRenderer.render(links)
    return DefaultJinjaIndexPageView().render(rendered, data_context_id=None, show_how_to_buttons=False)


def _add_to_model_site(store: Store, target: DocsTarget, run_site: Path, page: str, entry: dict[str, Any]) -> None:
    """Copy the run's pages into the model's site, store its index entry, rebuild the index."""
    model_site = str(target.model_site)
    marker = json.dumps({"great_expectations": _gx_version(), "vendor": _vendor_manifest()}, sort_keys=True)
    marker_uri = join(model_site, _STATIC_MARKER)
    if not store.exists(marker_uri) or store.read_text(marker_uri) != marker:
        store.upload_dir(run_site / "static", join(model_site, "static"))
        store.write_text(marker_uri, marker)
    store.write_file(join(model_site, urllib.parse.unquote(entry["expectation_suite_filepath"])),
                     run_site / entry["expectation_suite_filepath"])
    store.write_file(join(model_site, page), run_site / page)
    store.write_json(join(model_site, page[: -len(".html")] + ".json"), entry)
    validations = join(model_site, "validations")
    entries = [store.read_json(uri) for uri in store.list(validations) if uri.endswith(".json")]
    with tempfile.TemporaryDirectory(prefix="driftline-docs-index-") as tmp:
        index = Path(tmp) / "index.html"
        index.write_text(_index_html(entries, f"{target.model}: every validation"))
        _localise_page(index, depth=0)
        store.write_file(model_site_index(model_site), index)


def _gx_version() -> str:
    import great_expectations as gx

    return str(gx.__version__)


def _vendor_manifest() -> dict[str, Any]:
    return json.loads((VENDOR_DIR / "manifest.json").read_text())


def _replacements() -> dict[str, str]:
    """CDN URL -> path of its vendored file below ``static/vendor/``."""
    table = {}
    for package in _vendor_manifest()["packages"]:
        for url, local in package["replaces"].items():
            table[url] = f"static/vendor/{package['folder']}/{local}"
    return table


def _localise(site: Path) -> None:
    """Copy the vendored files into ``site/static/vendor`` and point every page at them."""
    shutil.copytree(VENDOR_DIR, site / "static" / "vendor", dirs_exist_ok=True)
    table = _replacements()
    for page in site.rglob("*.html"):
        _localise_page(page, depth=len(page.relative_to(site).parts) - 1, table=table)


def _localise_page(page: Path, depth: int, table: dict[str, str] | None = None) -> None:
    """Rewrite ``page``'s external asset URLs to site-relative ones (``depth`` folders below the
    site root); drops the CDN-only ``integrity``/``crossorigin`` attributes of the tags it
    rewrites (a ``crossorigin`` script read from ``file://`` is blocked)."""
    table = table if table is not None else _replacements()
    up = "../" * depth

    def local(url: str) -> str:
        bare = url.split("?", 1)[0].split("#", 1)[0]
        if bare in table:
            return up + table[bare]
        if bare.startswith(_GX_WEB_ASSETS):
            return up + "static/images/" + _gx_image(bare[len(_GX_WEB_ASSETS):])
        raise DataDocsAssetUnknown(
            f"{page}: Data Docs page loads {url}, which is not vendored; add the package that serves it to "
            f"{VENDOR_DIR / 'manifest.json'} (npm pack <name>@<version>, copy the file, map the URL under "
            "'replaces')")

    def rewrite(tag: re.Match[str]) -> str:
        text = tag.group(0)
        found = _ASSET_URL.search(text)
        if not found:
            # GX's favicon template climbs one folder too few on validation pages.
            relative = _STATIC_REF.search(text)
            return text if relative is None else text.replace(relative.group(0), f"{relative.group(1)}{up}static/", 1)
        text = text[: found.start(3)] + local(found.group(3)) + text[found.end(3):]
        return _CDN_ONLY_ATTRS.sub("", text)

    def rewrite_css(found: re.Match[str]) -> str:
        return f"url({found.group(1)}{local(found.group(2))}{found.group(1)})"

    html = _ASSET_TAG.sub(rewrite, page.read_text())
    page.write_text(_CSS_URL.sub(rewrite_css, html))


def _gx_image(name: str) -> str:
    """The image of GX's web-asset bucket a site's ``static/images`` has (GX ships the light logo,
    not the dark-mode one: that falls back to the light logo)."""
    import great_expectations

    images = Path(great_expectations.__file__).parent / "render" / "view" / "static" / "images"
    return name if (images / name).is_file() else "logo-long.png"


def external_assets(html: str) -> list[str]:
    """The external (``http(s)://``) URLs ``html``'s ``<script>``, ``<link>`` and ``<img>`` tags
    and inline ``url(...)`` load."""
    found = [m.group(3) for tag in _ASSET_TAG.finditer(html) for m in [_ASSET_URL.search(tag.group(0))] if m]
    return found + [m.group(2) for m in _CSS_URL.finditer(html)]
