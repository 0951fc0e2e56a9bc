"""Evidently reports kept as snapshots, rendered to HTML only when a person opens one.

Evidently's HTML report inlines its whole JavaScript bundle (about 4 MB) every time, so writing it
for every check costs megabytes per model and day, on disk and again in MLflow. What makes one
report differ from another is small: the snapshot (`Snapshot.dumps()`: the metric results and the
widgets the page draws), about 0.5 MB of JSON that xz (LZMA) takes to about 30 KB (gzip: 75 KB). A
check keeps, per report kind (`data_drift`, `prediction_drift`), in its report folder:

    <kind>.snapshot.json.xz   the snapshot, xz-compressed: what the HTML is rendered from
    <kind>.json               the results alone (`Snapshot.dict()`: metrics and tests), for tools

and the page a person opens (`<kind>.html`, the name the UI links to) is rendered from the snapshot
by `render_html`, which is what `Snapshot.save_html` would have written (the same widgets and
data; only the random element ids differ).

Evidently is imported inside the functions: importing it costs seconds (see `drift.write_evidently_report`).
"""

from __future__ import annotations

import lzma
import os
import tempfile
from pathlib import Path
from typing import Any

SNAPSHOT_SUFFIX = ".snapshot.json.xz"
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
    """Keep an Evidently snapshot of report `kind` in `folder`: the compressed snapshot and the results JSON.

    Both files replace earlier ones whole (a re-run of a check overwrites its reports), and an
    HTML page of `kind` left in the folder by an earlier version of the project is removed, so the
    page a person opens is always the one rendered from the newest snapshot.

    Returns:
        {"snapshot": path, "json": path}
    """
    folder.mkdir(parents=True, exist_ok=True)
    packed = snapshot_path(folder, kind)
    # xz's default preset: 0.15 s and 100 MB to compress; a higher one needs up to 700 MB for 1 % less.
    _write_bytes_atomically(packed, lzma.compress(snapshot.dumps().encode("utf-8")))
    results = folder / f"{kind}.json"
    _write_bytes_atomically(results, snapshot.json().encode("utf-8"))
    (folder / html_name(kind)).unlink(missing_ok=True)
    return {"snapshot": str(packed), "json": str(results)}


class UnreadableSnapshot(ValueError):
    """A kept snapshot that cannot be read back: cut short, not xz, or not an Evidently snapshot."""


def load_snapshot(path: Path) -> Any:
    """The Evidently `Snapshot` kept in `path` (a `.snapshot.json.xz`).

    Raises:
        UnreadableSnapshot: naming the file and what is wrong with it.
        OSError: the file cannot be read.
    """
    from evidently.core.report import Snapshot

    packed = Path(path).read_bytes()
    try:
        return Snapshot.loads(lzma.decompress(packed).decode("utf-8"))
    except (lzma.LZMAError, ValueError, TypeError) as error:
        raise UnreadableSnapshot(f"{path} is not a readable Evidently snapshot: {type(error).__name__}: "
                                 f"{str(error)[:300]}") from error


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
