"""What the prediction service pays to notice model configs added or edited while it runs.

    .venv/bin/python bench/bench_serving_configs.py [--models 50] [--repeat 200]

In a temporary models folder it writes `--models` copies of the demo config (`model_00`, ...),
builds the service's config state (`PredictionService`, nothing started: no registry, no log) and
times, against reading every config at start (the baseline, in the same run):

  - the check before each round of the alias poll when nothing changed (one directory scan),
  - the re-read after one config is added (only the new file is parsed),
  - the re-read after one config is edited (only that file, and its model's validator),

each the median of several rounds (`--repeat` checks, `--changes` additions and edits).

A request naming an unknown model pays the check and, when the folder changed, the re-read, on the
event loop: the figures say how long other requests wait then. The folder is removed at the end.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from include.core import settings  # noqa: E402
from include.delivery.serving import PredictionService  # noqa: E402

DEMO_CONFIG = settings.PROJECT_ROOT / "include" / "models" / "credit_default.yaml"


def write_config(folder: Path, name: str, max_batch_size: int = 1000) -> None:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["name"] = name
    raw["serving"]["max_batch_size"] = max_batch_size
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(raw))


def timed_ms(action, repeat: int, prepare=lambda index: None) -> float:
    """The median time of `action` over `repeat` calls, each after `prepare(index)`, in milliseconds."""
    times = []
    for index in range(repeat):
        prepare(index)
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=200, help="checks with nothing changed")
    parser.add_argument("--changes", type=int, default=10, help="configs added, then edited, one at a time")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-serving-configs-"))
    try:
        for index in range(args.models):
            write_config(folder, f"model_{index:02d}")
        service: PredictionService | None = None

        def start() -> None:
            nonlocal service
            service = PredictionService(folder, "sqlite://", 5, None, 1)

        start_ms = timed_ms(start, 3)
        gc.collect()  # the start leaves a full collection due (~0.5 s): it would land on the first re-read
        unchanged_ms = timed_ms(service.read_configs_if_changed, args.repeat)
        added_ms = timed_ms(service.read_configs_if_changed, args.changes,
                            lambda index: write_config(folder, f"added_{index:02d}"))
        edited_ms = timed_ms(service.read_configs_if_changed, args.changes,
                             lambda index: write_config(folder, "model_00", max_batch_size=index + 1))
        assert len(service.slots) == args.models + args.changes
        assert service.slots["model_00"].validator.max_batch_size == args.changes
    finally:
        shutil.rmtree(folder)

    print(f"{args.models} model configs")
    print(f"  {'read every config (service start), baseline':48} {start_ms:9.2f} ms   1.000")
    for what, ms in (("check, nothing changed", unchanged_ms), ("re-read after one config added", added_ms),
                     ("re-read after one config edited", edited_ms)):
        print(f"  {what:48} {ms:9.2f} ms   {ms / start_ms:.3f}")


if __name__ == "__main__":
    main()
