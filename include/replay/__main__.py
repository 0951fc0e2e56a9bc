"""`python -m include.replay MODEL [--start DAY] [--end DAY] [--policies a,b]` (what `make replay` runs)."""

from __future__ import annotations

import argparse
import logging
import sys

from include.replay.policies import BUILT_IN


def parser() -> argparse.ArgumentParser:
    described = "\n".join(f"  {policy.name:<10} {policy.description}" for policy in BUILT_IN.values())
    found = argparse.ArgumentParser(
        prog="python -m include.replay",
        description="Replay a model's data day by day under several retraining policies, each in its own\n"
                    "throw-away state, and measure what each buys: the realized primary metric of the model\n"
                    "serving each day, and the CPU seconds spent training. Writes days.csv, summary.json,\n"
                    "replay.png and report.md under state/replay/<model>/<timestamp>/ (and .../latest).",
        epilog=f"built-in policies:\n{described}\n  (and any under replay.policies in the model's config)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    found.add_argument("model", help="the model's name (its config is include/models/<model>.yaml)")
    found.add_argument("--start", help="first day to replay, YYYY-MM-DD (default: the source's first day)")
    found.add_argument("--end", help="last day to replay, YYYY-MM-DD (default: the source's last day)")
    found.add_argument("--policies", help="comma-separated policy names (default: every policy the config offers)")
    found.add_argument("--jobs", type=int, help="processes replaying at once (default: the CPU count)")
    found.add_argument("--keep-state", action="store_true",
                       help="keep each policy's MLflow store and files in the output folder (state/)")
    return found


def main(argv: list[str] | None = None) -> int:
    from include.replay.runner import ReplayError, replay

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("mlflow", "great_expectations", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        done = replay(args.model, args.start, args.end, args.policies, jobs=args.jobs, keep_state=args.keep_state)
    except ReplayError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    print((done.folder / "report.md").read_text())
    print(f"written to {done.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
