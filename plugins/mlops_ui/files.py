"""Which files the plugin serves: reports, Data Docs and replay output, each under its root and its model.

The status library names every file by a root ("reports", "data" or "state") and a path relative to
it. A request names the same, plus the model whose access the user was checked for; a file is
served only when its path lies in one of that model's folders of the root and, once symbolic
links are resolved, still under the root. Anything else is "not found", so the answer says
nothing about files outside.

A drift report page (`<kind>.html` in a check's folder) is kept as the snapshot it is rendered
from (`include.monitoring.evidently_reports`): `report_snapshot` finds that snapshot, by the same
rules.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

from include.core import settings
from include.monitoring.evidently_reports import HTML_SUFFIX, snapshot_for_html

ROOTS = {"reports": settings.reports_dir, "data": settings.data_dir, "state": settings.state_dir}

# Where each root keeps a model's files (`{model}` is the model's name). GX's shared static assets
# (fonts, images; no data) are linked from every Data Docs site, so they are served to any model.
MODEL_FOLDERS = {
    "reports": ("{model}/*", "gx/{model}/*", "gx/_static-*"),
    "data": ("{model}/*",),
    "state": ("replay/{model}/*",),
}


def resolve(model: str, root: str, path: str) -> Path | None:
    """The file to serve for `path` under `root` for `model`, or None when there is none to serve.

    None for: an unknown root, an absolute path or one with a `..` part, a path outside the model's
    folders, a path that resolves (through links) outside the root, and a path that is not a file.
    """
    if root not in ROOTS:
        return None
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    patterns = (pattern.format(model=model) for pattern in MODEL_FOLDERS[root])
    if not any(fnmatch.fnmatchcase(relative.as_posix(), pattern) for pattern in patterns):
        return None
    base = ROOTS[root]().resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or not candidate.is_file():
        return None
    return candidate


def report_snapshot(model: str, root: str, path: str) -> Path | None:
    """The snapshot a report page `path` is rendered from, or None when it has none to serve."""
    if root != "reports" or not path.endswith(HTML_SUFFIX):
        return None
    return resolve(model, root, snapshot_for_html(PurePosixPath(path)).as_posix())
