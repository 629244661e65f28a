"""Data Docs: offline pages that agree with the pipeline's verdict, driftline's names, and the
model's own site listing every validation (local, on a real S3 API server, and in a real
headless Chromium with the network off)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.data_docs import (
    DataDocsAssetUnknown,
    DocsTarget,
    _localise_page,
    external_assets,
)
from pipeline.storage import Store, join
from pipeline.validate import ValidationFailed, validate
from tests.unit.test_validate import (
    BETWEEN,
    IN_SET,
    NOT_NULL,
    _exp,
    _suite,
    _tiny_frame,
    _tiny_spec,
)

WARN_ONLY = _suite(_exp(NOT_NULL, column="x", row_level=True), _exp(IN_SET, "warning", column="c", value_set=["a"]))
CRITICAL = _suite(*WARN_ONLY["expectations"], _exp(BETWEEN, column="x", max_value=5))
RUNS = [("2026-02-02", "20260202T010203004Z-aaaaaa", WARN_ONLY), ("2026-02-03", "20260203T010203004Z-bbbbbb", CRITICAL)]
_ASSET_REF = re.compile(r"""<(?:script|link|img)\b[^>]*?\b(?:src|href)=["']([^"']+)["']""", re.IGNORECASE)


def _validate_two_runs(root: str, store: Store) -> list:
    """Run 1: only a warning fails (the run passes); run 2: a critical expectation fails."""
    outcomes = []
    for day, run_id, suite in RUNS:
        prefix = join(root, "tiny", "runs", day, run_id)
        uri = store.write_parquet(join(prefix, "snapshot.parquet"), _tiny_frame())
        docs = DocsTarget.for_run(root, "tiny", day, run_id, "retrain", "snapshot")
        try:
            outcomes.append(validate(_tiny_spec(), uri, store, prefix, suite=suite, docs=docs))
        except ValidationFailed as err:
            outcomes.append(err.report)
    return outcomes


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _status(text: str) -> str:
    """The overview's status line (the page elsewhere offers a 'Failed Only' filter)."""
    return re.search(r"Status: (.*?) Statistics", text).group(1).strip()


def _page(site: Path, run_id: str) -> str:
    return next((site / "validations").rglob(f"*{run_id}/*/snapshot.html")).read_text()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    return root, _validate_two_runs(str(root), Store.for_uri(str(root)))


def test_every_page_loads_only_files_inside_its_site(two_runs):
    root, _ = two_runs
    pages = sorted(root.rglob("*.html"))
    assert len(pages) >= 9  # 2 runs x (index, suite, validation) + the model's index, suite, 2 validations
    for page in pages:
        html = page.read_text()
        assert external_assets(html) == [], page
        for ref in _ASSET_REF.findall(html):
            assert (page.parent / ref.split("?")[0]).resolve().is_file(), f"{page}: {ref} is not in the site"


def test_a_run_with_only_warning_failures_reads_succeeded_and_shows_severity(two_runs):
    _, (passed, failed) = two_runs
    assert passed.success and passed.warnings and not failed.success
    run_site = Path(passed.data_docs_uri).parent
    text = _text(_page(run_site, RUNS[0][1]))
    assert _status(text) == "Succeeded with 1 warning(s)"
    assert "Warnings (recorded, the run goes on) 1" in text and "Critical failures (fail the run) 0" in text
    assert "Observed Value Severity" in text and "50% unexpected warning" in text
    failed_text = _text(_page(Path(failed.data_docs_uri).parent, RUNS[1][1]))
    assert _status(failed_text) == "Failed: 1 critical failure(s)"


def test_pages_carry_driftline_names(two_runs):
    _, (passed, _) = two_runs
    text = _text(_page(Path(passed.data_docs_uri).parent, RUNS[0][1]))
    assert "Data asset: tiny snapshot" in text
    assert f"Run Name 2026-02-02 retrain {RUNS[0][1]}" in text and "Run Time 2026-02-02T01:02:03Z" in text
    assert "__none__" not in text and "Data asset: None" not in text


def test_the_model_site_lists_every_validation_newest_first(two_runs):
    root, (passed, failed) = two_runs
    model_index = root / "tiny" / "data_docs" / "index.html"
    assert passed.model_data_docs_uri == failed.model_data_docs_uri == str(model_index)
    html = model_index.read_text()
    newer, older = html.find(f"2026-02-03 retrain {RUNS[1][1]}"), html.find(f"2026-02-02 retrain {RUNS[0][1]}")
    assert -1 < newer < older
    for _, run_id, _ in RUNS:
        assert "Status: " in _text(_page(root / "tiny" / "data_docs", run_id))


def test_an_unvendored_external_asset_names_the_manifest_to_extend(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<script src="https://cdn.example.org/new-lib@2.js"></script>')
    with pytest.raises(DataDocsAssetUnknown, match=r"new-lib@2\.js.*manifest\.json"):
        _localise_page(page, depth=0)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="Debian chromium is not installed (apt-get install -y chromium) to render the page")
def test_the_model_index_renders_its_rows_in_a_browser_with_the_network_off(two_runs):
    root, _ = two_runs
    index = root / "tiny" / "data_docs" / "index.html"
    # Every http(s) request goes to a closed local port: a page needing a CDN stays empty.
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=http://127.0.0.1:9",
         "--proxy-bypass-list=<-loopback>", "--virtual-time-budget=5000", "--dump-dom", index.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    rows = re.findall(r'<tr class="clickable-row" data-href="(validations/[^"]+)"', dom)
    assert len(rows) == 2 and "2026-02-03" in rows[0] and "2026-02-02" in rows[1]


@pytest.mark.integration
def test_the_model_site_on_s3(s3_client, s3_bucket):
    store = Store.for_uri("s3://x", s3_client)
    root = f"s3://{s3_bucket}/docs"
    _validate_two_runs(root, store)
    index = store.read_text(join(root, "tiny", "data_docs", "index.html"))
    assert RUNS[0][1] in index and RUNS[1][1] in index and external_assets(index) == []
    assert store.exists(join(root, "tiny", "data_docs", "static", "vendor", "jquery-3.7.1", "jquery.min.js"))
