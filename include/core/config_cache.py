"""The discovery cache: what `include.core.config.discover_model_configs` found in the models folder.

Every DAG file parse discovers the model configs, each in a fresh process, so the result is kept
on disk (`<state>/cache/model_configs/`), keyed on the folder's listing (each file's name, size
and modification time) and on config.py's own file: an added, removed or edited config, or a
changed schema, misses and the folder is read again. An entry is a plain dict:

- `discovered`: the pickled `DiscoveredConfigs` (valid configs and errors);
- `facts`: each valid config's plain values by model name (`include.core.config.plain_facts`).

This module imports neither pydantic nor the config schema: the DAG files' parse path
(`mlops_dags.parsed_configs`) reads the facts without importing include/core/config.py. The cache
is local state like the rest of the state folder; when it cannot be read or written, the folder
is simply read.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

from include.core import settings

CONFIG_MODULE = Path(__file__).with_name("config.py")


def cache_file(folder: Path, paths: list[Path]) -> Path | None:
    """The entry for this listing of the folder (`paths`: its configs), or None when a file vanished meanwhile."""
    listing = hashlib.sha256()
    try:
        for path in [CONFIG_MODULE, *paths]:
            stat = path.stat()
            listing.update(f"\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    except OSError:
        return None
    folder_key = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return settings.state_dir() / "cache" / "model_configs" / f"{folder_key}-{listing.hexdigest()[:32]}.pickle"


def read(entry_file: Path) -> dict | None:
    """The entry's dict, or None when it is missing or unreadable."""
    try:
        entry = pickle.loads(entry_file.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("discovered"), bytes):
        return None
    if not isinstance(entry.get("facts"), dict):
        return None
    return entry


def write(entry_file: Path, discovered: bytes, facts: dict[str, dict]) -> None:
    """Write atomically (parses run in parallel), replacing older listings of the same folder."""
    try:
        entry_file.parent.mkdir(parents=True, exist_ok=True)
        partial = entry_file.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(pickle.dumps({"discovered": discovered, "facts": facts}))
        partial.replace(entry_file)
        folder_key = entry_file.name.split("-")[0]
        for older in entry_file.parent.glob(f"{folder_key}-*.pickle"):
            if older != entry_file:
                older.unlink(missing_ok=True)
    except OSError:
        return
