"""Evidently reports kept as snapshots: a real Evidently report, saved, reloaded and rendered."""

import json
import lzma
import re

import numpy as np
import pandas as pd
import pytest

from include.monitoring.evidently_reports import (
    UnreadableSnapshot,
    html_name,
    load_snapshot,
    render_html,
    save_report,
    snapshot_for_html,
    snapshot_path,
)

# Rendering names the page's script variable and the group that wraps the widgets afresh each
# time; every other byte comes from the snapshot.
SCRIPT_VARIABLE = re.compile(r"metric_[0-9a-f]{32}")


def embedded_report(html: str) -> dict:
    """The report data a page draws (the JSON Evidently embeds in its script), without the wrapping group's id."""
    found = re.search(r"var metric_[0-9a-f]{32} = (\{.*?\});\n", html, flags=re.S)
    assert found, "no embedded report data in the page"
    data = json.loads(found.group(1))
    data["widgets"][0].pop("id")
    return data


def same_page(html: str) -> str:
    """The page with its fresh names replaced by placeholders."""
    found = re.search(r"var metric_[0-9a-f]{32} = (\{.*?\});\n", html, flags=re.S)
    group_id = json.loads(found.group(1))["widgets"][0]["id"]
    return SCRIPT_VARIABLE.sub("metric_<id>", html).replace(group_id, "<group id>")


@pytest.fixture(scope="module")
def snapshot():
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"income": rng.normal(50, 10, 600), "region": rng.choice(["n", "s", "e"], 600)})
    current = pd.DataFrame({"income": rng.normal(65, 10, 400), "region": rng.choice(["n", "s", "w"], 400)})
    definition = DataDefinition(numerical_columns=["income"], categorical_columns=["region"])
    return Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def test_the_page_rendered_from_the_kept_snapshot_is_the_page_save_html_writes(snapshot, tmp_path):
    snapshot.save_html(str(tmp_path / "written.html"))
    written = (tmp_path / "written.html").read_text()

    kept = save_report(snapshot, tmp_path / "report", "data_drift")
    rendered = render_html(kept["snapshot"])

    assert embedded_report(rendered) == embedded_report(written)
    assert same_page(rendered) == same_page(written)
    assert "income" in json.dumps(embedded_report(rendered)) and len(rendered) > 1_000_000


def test_a_report_is_kept_small_and_readable_by_tools(snapshot, tmp_path):
    kept = save_report(snapshot, tmp_path, "data_drift")

    assert sorted(path.name for path in tmp_path.iterdir()) == ["data_drift.json", "data_drift.snapshot.json.xz"]
    assert (tmp_path / "data_drift.snapshot.json.xz").stat().st_size < 100_000
    assert json.loads((tmp_path / "data_drift.json").read_text()) == json.loads(snapshot.json())
    assert load_snapshot(kept["snapshot"]).dict() == json.loads(snapshot.json())


def test_saving_again_gives_the_same_bytes_and_replaces_an_old_html_page(snapshot, tmp_path):
    (tmp_path / "data_drift.html").write_text("<html>the page of an earlier check</html>")
    save_report(snapshot, tmp_path, "data_drift")
    first = (tmp_path / "data_drift.snapshot.json.xz").read_bytes()
    save_report(snapshot, tmp_path, "data_drift")

    assert (tmp_path / "data_drift.snapshot.json.xz").read_bytes() == first
    assert lzma.decompress(first).decode() == snapshot.dumps()
    assert not (tmp_path / "data_drift.html").exists()


def test_a_page_name_leads_to_its_snapshot(tmp_path):
    assert snapshot_for_html(tmp_path / html_name("prediction_drift")) == snapshot_path(tmp_path, "prediction_drift")


def test_a_snapshot_cut_short_is_an_error_naming_its_file(snapshot, tmp_path):
    kept = save_report(snapshot, tmp_path, "data_drift")["snapshot"]
    with open(kept, "r+b") as packed:
        packed.truncate(1000)

    with pytest.raises(UnreadableSnapshot, match="data_drift.snapshot.json.xz"):
        render_html(kept)
