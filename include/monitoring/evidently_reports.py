"""Evidently reports kept as snapshots, rendered to HTML only when a person opens one.

Evidently's HTML report inlines its whole JavaScript bundle (about 4 MB) every time, so writing it
for every check costs megabytes per model and day, on disk and again in MLflow. What makes one
report differ from another is small: the snapshot (`Snapshot.dumps()`: the metric results and the
widgets the page draws), about 0.5 MB of JSON that gzip takes to about 75 KB. A check keeps, per
report kind (`data_drift`, `prediction_drift`), in its report folder:

    <kind>.snapshot.json.gz   the snapshot, gzipped: what the HTML is rendered from
    <kind>.json               the results alone (`Snapshot.dict()`: metrics and tests), for tools

and the page a person opens (`<kind>.html`, the name the UI links to) is rendered from the snapshot
by `render_html`, which is what `Snapshot.save_html` would have written (the same widgets and
data; only the random element ids differ).

Evidently is imported inside the functions: importing it costs seconds (see `drift.write_evidently_report`).
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path
from typing import Any

SNAPSHOT_SUFFIX = ".snapshot.json.gz"
HTML_SUFFIX = ".html"


def snapshot_path(folder: Path, kind: str) -> Path:
    """Where the snapshot of report `kind` is kept in a report folder."""
    return folder / f"{kind}{SNAPSHOT_SUFFIX}"


def html_name(kind: str) -> str:
    """The file name a person opens for report `kind` (rendered from the snapshot when opened)."""
    return f"{kind}{HTML_SUFFIX}"


def snapshot_for_html(html: Path) -> Path:
    """The snapshot a report page (`<folder>/<kind>.html`) is rendered from."""
    return snapshot_path(html.parent, html.name.removesuffix(HTML_SUFFIX))


def save_report(snapshot: Any, folder: Path, kind: str) -> dict[str, str]:
    """Keep an Evidently snapshot of report `kind` in `folder`: the gzipped snapshot and the results JSON.

    Both files replace earlier ones whole (a re-run of a check overwrites its reports), and an
    HTML page of `kind` left in the folder by an earlier version of the project is removed, so the
    page a person opens is always the one rendered from the newest snapshot.

    Returns:
        {"snapshot": path, "json": path}
    """
    folder.mkdir(parents=True, exist_ok=True)
    packed = snapshot_path(folder, kind)
    # mtime=0: the same snapshot gives the same bytes, so a re-run does not look like a change.
    _write_bytes_atomically(packed, gzip.compress(snapshot.dumps().encode("utf-8"), compresslevel=9, mtime=0))
    results = folder / f"{kind}.json"
    _write_bytes_atomically(results, snapshot.json().encode("utf-8"))
    (folder / html_name(kind)).unlink(missing_ok=True)
    return {"snapshot": str(packed), "json": str(results)}


def load_snapshot(path: Path) -> Any:
    """The Evidently `Snapshot` kept in `path` (a `.snapshot.json.gz`)."""
    from evidently.core.report import Snapshot

    return Snapshot.loads(gzip.decompress(Path(path).read_bytes()).decode("utf-8"))


def render_html(path: Path) -> str:
    """The standalone HTML page of the snapshot in `path`, as `Snapshot.save_html` writes it."""
    return load_snapshot(path).get_html_str(as_iframe=False)


def _write_bytes_atomically(path: Path, data: bytes) -> None:
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
