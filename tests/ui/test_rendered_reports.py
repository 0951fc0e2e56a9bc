"""The pages the UI renders from report snapshots: kept within their bound, rendered again when a snapshot changes."""

from pathlib import Path

import pytest
from mlops_ui.rendered_reports import RenderedPages

from include.monitoring.evidently_reports import render_html, save_report
from tests.status_world import evidently_snapshot


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    return [
        save_report(evidently_snapshot(kind), folder / f"check_{index}", kind)["snapshot"]
        for index, kind in enumerate(["data_drift", "prediction_drift", "data_drift"])
    ]


def test_a_page_is_rendered_once_and_kept(snapshots):
    pages = RenderedPages()
    first = pages.page(Path(snapshots[0]))

    assert "Drift in column 'annual_income'" in first and first.lstrip().startswith("<!DOCTYPE html>")
    assert pages.page(Path(snapshots[0])) is first, "the second open is served from memory"


def test_the_pages_kept_stay_within_the_bound_least_recently_opened_dropped_first(snapshots):
    one_page = len(render_html(snapshots[0]))
    pages = RenderedPages(max_bytes=int(one_page * 2.5))
    for snapshot in (snapshots[0], snapshots[1], snapshots[0], snapshots[2]):
        pages.page(Path(snapshot))

    assert pages.kept() == [snapshots[0], snapshots[2]]
    assert pages.kept_bytes <= pages.max_bytes


def test_a_rewritten_snapshot_is_rendered_again(snapshots, tmp_path):
    kept = Path(save_report(evidently_snapshot("data_drift"), tmp_path, "data_drift")["snapshot"])
    pages = RenderedPages()
    before = pages.page(kept)
    save_report(evidently_snapshot("prediction_drift"), tmp_path, "data_drift")

    after = pages.page(kept)

    assert "column 'prediction'" in after and "column 'prediction'" not in before
