"""Report pages rendered from their snapshots, the most recently opened kept in memory within a bound.

Rendering a drift report's page from its snapshot takes a fraction of a second and gives about
4 MB of HTML (Evidently's JavaScript bundle inlined). A person who opens a report usually opens
it again (back, reload, the next tab), so the pages last opened are kept, up to `MAX_BYTES` in
all: the api-server's memory stays bounded however many reports there are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from include.monitoring.evidently_reports import render_html

MAX_BYTES = 64 * 2**20
"""About 16 report pages."""


class RenderedPages:
    """Pages rendered from snapshots, least recently opened dropped first once over `max_bytes`.

    A page is kept with its snapshot's size and modification time, so a check re-run (which
    rewrites the snapshot) is rendered again.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, tuple[tuple[int, int], str]] = OrderedDict()
        self._bytes = 0

    def page(self, snapshot: Path) -> str:
        """The HTML page of `snapshot`, rendered on first open (and after the snapshot changed)."""
        stat = snapshot.stat()
        version, key = (stat.st_mtime_ns, stat.st_size), str(snapshot)
        with self._lock:
            kept = self._pages.get(key)
            if kept is not None and kept[0] == version:
                self._pages.move_to_end(key)
                return kept[1]
        # Rendered outside the lock: two first opens of one page render it twice, harmlessly.
        html = render_html(snapshot)
        with self._lock:
            self._drop(key)
            if len(html) <= self.max_bytes:
                self._pages[key] = (version, html)
                self._bytes += len(html)
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._pages)))
        return html

    @property
    def kept_bytes(self) -> int:
        return self._bytes

    def kept(self) -> list[str]:
        """The snapshots whose pages are kept, least recently opened first."""
        with self._lock:
            return list(self._pages)

    def _drop(self, key: str) -> None:
        kept = self._pages.pop(key, None)
        if kept is not None:
            self._bytes -= len(kept[1])
