"""What each retraining policy buys: the replay's days summarized, plotted and written up.

The replay runner records one row per policy and data day (`days`: policy, day, curated,
served_by, rows_scored, labelled_rows, realized_metric, realized_metric_7d, request, retrain,
retrain_why, trained_version, gate, promoted_version, train_cpu_seconds). This module turns those
rows into what a team decides with: per policy, the realized metric it kept and the training CPU
it spent; per scenario of the data world, when the monitor asked for a retrain and when the
policy's 7-day metric came back within `tolerance` of the reference policy (`every_day`, the
freshness ceiling).

Days are calendar days: a day with no row or no value for a policy lacks a value, it is not
skipped over.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from include.core.config import Scenario
from include.core.jsonable import write_json_atomically

NO_GROUND_TRUTH = "the source has no ground truth (a `files` source): the scenario part is left out"
RECOVERY_DAYS = 7
"""A policy has recovered once its 7-day metric is back within tolerance for this many days in a row."""
NONE = "—"
_SCENARIO_KEYS = {"kind", "onset", "end"}


def summarize(
    days: pd.DataFrame,
    *,
    metric: str,
    greater_is_better: bool,
    policies: Sequence[dict],
    scenarios: Sequence[Scenario] | None,
    reference: str = "every_day",
    tolerance: float = 0.02,
) -> dict:
    """Per policy what it kept and spent, and per scenario how fast it noticed and recovered.

    Args:
        days: one row per policy and day, as the replay runner records them.
        metric: the primary metric's name (for the report's wording only).
        greater_is_better: the metric's direction; "worse" and "worst" follow it.
        policies: `{"name", "description", "listens_to_requests"}` in display order; a policy
            absent from `days` (not run) is left out.
        scenarios: the data world's scenarios (ground truth), or None when the source has none.
        reference: the policy the others are measured against (the freshness ceiling).
        tolerance: how much worse than the reference, in the metric's units, still counts as level.

    Returns:
        {"metric", "greater_is_better", "first_scored_day", "policies": {name: {...}},
         "scenarios": {name: {"kind", "onset", "end", <policy>: {"first_request", "first_request_reason",
         "fell_behind_on", "recovered_on", "mean_metric"}}} or None, "scenarios_note",
         "reference", "tolerance"}. Dates are ISO strings, metrics rounded to 4 decimals.

    Raises:
        ValueError: a policy is named like a scenario entry's own key (kind, onset, end).
    """
    frame = _normalized(days)
    ran = [policy for policy in policies if policy["name"] in set(frame["policy"])]
    clashing = sorted(_SCENARIO_KEYS & {policy["name"] for policy in ran})
    if clashing:
        raise ValueError(f"policy names {clashing} clash with the scenario keys {sorted(_SCENARIO_KEYS)}: rename them")
    first_scored = _first_scored_day(frame, reference)
    if scenarios is None:
        scenario_summaries, note = None, NO_GROUND_TRUTH
    else:
        scenario_summaries, note = _scenario_summaries(
            frame, [policy["name"] for policy in ran], scenarios, first_scored, reference, greater_is_better, tolerance
        )
    return {
        "metric": metric,
        "greater_is_better": greater_is_better,
        "first_scored_day": _iso(first_scored),
        "policies": {
            policy["name"]: _policy_summary(frame[frame["policy"] == policy["name"]], policy, greater_is_better)
            for policy in ran
        },
        "scenarios": scenario_summaries,
        "scenarios_note": note,
        "reference": reference,
        "tolerance": tolerance,
    }


def plot_replay(
    days: pd.DataFrame,
    summary: dict,
    path: Path,
    scenarios: Sequence[Scenario] | None = None,
    *,
    model: str | None = None,
) -> Path:
    """Draw each policy's 7-day realized metric over the days, with scenarios and retrains, as a PNG.

    Scenario periods are shaded (an open-ended one to the last day), their onsets dashed and named; a dot on a policy's
    line marks a day it retrained, a cross a retrain the gate rejected.

    Args:
        days: the replay's rows (as for `summarize`).
        summary: `summarize`'s result: the policies drawn, their order, means and retrain counts.
        path: where to write the PNG (folders made).
        scenarios: the data world's scenarios to shade, if any.
        model: the model's name, for the title.

    Returns:
        path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    frame = _normalized(days)
    first, last = frame["day"].min(), frame["day"].max()
    one_day = pd.Timedelta(days=1)
    fig, ax = plt.subplots(figsize=(12, 6), dpi=110)
    try:
        shades = plt.get_cmap("Pastel2").colors
        for number, scenario in enumerate(sorted(scenarios or [], key=lambda scenario: scenario.start)):
            start = max(pd.Timestamp(scenario.start), first)
            end = min(pd.Timestamp(scenario.end) if scenario.end else last, last)
            if start > end:
                continue
            ax.axvspan(start, end + one_day, color=shades[number % len(shades)], alpha=0.35, zorder=0)
            ax.axvline(start, color="0.55", linestyle="--", linewidth=0.8, zorder=1)
            ax.text(start, 0.99, f" {scenario.name}", transform=ax.get_xaxis_transform(), rotation=90, va="top",
                    ha="left", fontsize=8, color="0.3", bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none"})
        for name, entry in summary["policies"].items():
            rows = frame[frame["policy"] == name].set_index("day").sort_index()
            weekly = rows["realized_metric_7d"]
            (line,) = ax.plot(weekly.index, weekly, linewidth=1.6,
                              label=f"{name}: mean {_number(entry['mean_metric'])}, {entry['retrains']} retrains")
            retrained = rows[_given(rows["retrain"])]
            on_line = weekly.ffill().bfill().loc[retrained.index]
            rejected = (retrained["gate"] == "rejected").to_numpy()
            ax.scatter(on_line.index[~rejected], on_line[~rejected], marker="o", s=10, color=line.get_color(), zorder=3)
            ax.scatter(on_line.index[rejected], on_line[rejected], marker="x", s=30, color=line.get_color(), zorder=3)
        handles, _ = ax.get_legend_handles_labels()
        handles += [
            Line2D([], [], marker="o", linestyle="", color="0.3", label="retrain"),
            Line2D([], [], marker="x", linestyle="", color="0.3", label="retrain the gate rejected"),
        ]
        ax.legend(handles=handles, loc="best", fontsize=8)
        metric = summary["metric"]
        ax.set_title(f"{model + ': ' if model else ''}7-day realized {metric} per retraining policy")
        ax.set_ylabel(f"7-day realized {metric}")
        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlim(first, last + one_day)
        ax.grid(alpha=0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_report(summary: dict, path: Path, header: dict[str, Any]) -> Path:
    """Write report.md: the run's facts, the policy table, the scenario table and how to read them.

    Args:
        summary: `summarize`'s result.
        path: where to write the Markdown (folders made).
        header: the run's facts, label -> value (model, days replayed, when, machine, elapsed).

    Returns:
        path.
    """
    model = _model_name(header)
    lines = [f"# Replay{' of ' + model if model else ''}: what each retraining policy buys", ""]
    lines += [f"- **{label}**: {value}" for label, value in header.items()]
    lines += ["", "## Policies", "", *_policy_table(summary), ""]
    never = [name for name, entry in summary["policies"].items() if not entry["days_scored"]]
    if never:
        lines += [f"Never served a scored day: {', '.join(f'`{name}`' for name in never)}. Every training, the "
                  "first model's included, was refused or failed (see `retrain_why` and `gate` in days.csv).", ""]
    lines += ["## Scenarios", ""]
    if summary["scenarios"] is not None:
        lines += [*_scenario_table(summary), ""]
        listening = [name for name, entry in summary["policies"].items() if entry["listens_to_requests"]]
        lines.append(
            f"Each cell: first retrain request after the onset / the day the 7-day {summary['metric']} was back "
            f"within {summary['tolerance']} of `{summary['reference']}` for {RECOVERY_DAYS} days. Only policies that "
            f"listen to requests are monitored ({', '.join(listening) or 'none'}); the others never request."
        )
    if summary["scenarios_note"]:
        lines += ["", f"Note: {summary['scenarios_note']}."]
    lines += ["", "## How to read this", "", _how_to_read(summary), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def write_outputs(
    days: pd.DataFrame,
    summary: dict,
    folder: Path,
    header: dict[str, Any],
    scenarios: Sequence[Scenario] | None = None,
) -> dict[str, Path]:
    """Write the replay's four outputs into `folder`: days.csv, summary.json, replay.png, report.md.

    summary.json is the summary with the header facts under "run". The model's name for the plot's
    and the report's titles is the header's "model" entry (any letter case), when it has one.

    Returns:
        {"days", "summary", "plot", "report"}: the paths written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "days": folder / "days.csv",
        "summary": folder / "summary.json",
        "plot": folder / "replay.png",
        "report": folder / "report.md",
    }
    days.to_csv(paths["days"], index=False)
    write_json_atomically(paths["summary"], {**summary, "run": header})
    plot_replay(days, summary, paths["plot"], scenarios, model=_model_name(header))
    write_report(summary, paths["report"], header)
    return paths


def _normalized(days: pd.DataFrame) -> pd.DataFrame:
    """The rows with days as timestamps and the numeric columns as floats (NaN where missing)."""
    frame = days.copy()
    frame["day"] = pd.to_datetime(frame["day"]).dt.normalize()
    for column in ("realized_metric", "realized_metric_7d", "train_cpu_seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame.sort_values(["policy", "day"], kind="stable")


def _given(column: pd.Series) -> pd.Series:
    """Whether each value is set: neither missing nor an empty string."""
    return column.notna() & column.astype(str).str.strip().ne("")


def _policy_summary(rows: pd.DataFrame, policy: dict, greater_is_better: bool) -> dict:
    scored = rows["realized_metric"].dropna()
    weekly = rows.set_index("day")["realized_metric_7d"].dropna()
    worst_on = (weekly.idxmin() if greater_is_better else weekly.idxmax()) if len(weekly) else None
    return {
        "description": policy["description"],
        "listens_to_requests": bool(policy["listens_to_requests"]),
        "mean_metric": _rounded(scored.mean()),
        "worst_7day_metric": _rounded(weekly[worst_on]) if worst_on is not None else None,
        "worst_7day_on": _iso(worst_on),
        "retrains": int(_given(rows["retrain"]).sum()),
        "promotions": int(_given(rows["promoted_version"]).sum()),
        "train_cpu_seconds": round(float(rows["train_cpu_seconds"].fillna(0).sum()), 1),
        "days_scored": len(scored),
    }


def _first_scored_day(frame: pd.DataFrame, reference: str) -> pd.Timestamp | None:
    """The first day the reference policy has a realized metric (any policy's, without the reference)."""
    rows = frame[frame["policy"] == reference] if reference in set(frame["policy"]) else frame
    scored = rows.loc[rows["realized_metric"].notna(), "day"]
    return scored.min() if len(scored) else None


def _scenario_summaries(
    frame: pd.DataFrame,
    names: list[str],
    scenarios: Sequence[Scenario],
    first_scored: pd.Timestamp | None,
    reference: str,
    greater_is_better: bool,
    tolerance: float,
) -> tuple[dict, str | None]:
    """Per scenario whose onset falls on a scored replayed day, each policy's request and recovery.

    A scenario's period, for requests and recovery, runs from its onset to the day before the next
    scenario's onset (or the last replayed day): what happens after the next onset is the next
    scenario's doing. Its mean metric runs to its own end (or the last day), as a shift persists.
    """
    last_day = frame["day"].max()
    ordered = sorted(scenarios, key=lambda scenario: scenario.start)
    onsets = [pd.Timestamp(scenario.start) for scenario in ordered]
    kept = [
        scenario
        for scenario, onset in zip(ordered, onsets, strict=True)
        if first_scored is not None and first_scored <= onset <= last_day
    ]
    weekly = frame.pivot(index="day", columns="policy", values="realized_metric_7d").reindex(
        pd.date_range(frame["day"].min(), last_day, freq="D")
    )
    has_reference = reference in names
    summaries = {}
    for scenario in kept:
        onset = pd.Timestamp(scenario.start)
        following = [later for later in onsets if later > onset]
        period_end = min(following[0] - pd.Timedelta(days=1), last_day) if following else last_day
        metric_end = min(pd.Timestamp(scenario.end), last_day) if scenario.end else last_day
        entry: dict[str, Any] = {"kind": scenario.kind, "onset": _iso(onset), "end": _iso(scenario.end)}
        for name in names:
            rows = frame[frame["policy"] == name]
            in_period = rows[rows["day"].between(onset, period_end)]
            requested = in_period.loc[_given(in_period["request"]), "day"]
            fell_behind_on, recovered_on = None, None
            if has_reference:
                period = weekly.loc[onset:period_end]
                worse_by = period[reference] - period[name] if greater_is_better else period[name] - period[reference]
                worse_by = worse_by.round(9)  # 0.80 - 0.78 is level at a tolerance of 0.02, not 2e-17 behind
                fell_behind_on, recovered_on = _fell_behind_and_recovered(worse_by, tolerance)
            first = requested.min() if len(requested) else None
            entry[name] = {
                "first_request": _iso(first),
                "first_request_reason": None if first is None else str(in_period.loc[in_period["day"] == first,
                                                                                     "request"].iloc[0]),
                "fell_behind_on": _iso(fell_behind_on),
                "recovered_on": _iso(recovered_on),
                "mean_metric": _rounded(rows.loc[rows["day"].between(onset, metric_end), "realized_metric"].mean()),
            }
        summaries[scenario.name] = entry
    notes = []
    skipped = [scenario.name for scenario in ordered if scenario.name not in summaries]
    if skipped:
        since = f"the first scored day ({_iso(first_scored)})" if first_scored is not None else "a scored day (none)"
        notes.append(f"left out, as their onset is before {since} or after the last replayed day "
                     f"({_iso(last_day)}): {', '.join(skipped)}")
    if not has_reference:
        notes.append(f"recovery needs the reference policy `{reference}`, which the replay did not run: "
                     "fell_behind_on and recovered_on are left empty")
    return summaries, "; ".join(notes) or None


def _fell_behind_and_recovered(
    worse_by: pd.Series, tolerance: float
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The first day worse than the reference by more than `tolerance`, and the day it recovered.

    Args:
        worse_by: per calendar day of the scenario's period, how much worse the policy's 7-day
            metric is than the reference's (NaN where either lacks a value).

    Returns:
        (fell_behind_on, recovered_on): (None, onset) when it never fell behind; recovered_on is the
        first later day back within tolerance that starts `RECOVERY_DAYS` days inside the period
        none of which is worse beyond it (days lacking a value don't break the run), else None.
    """
    behind = worse_by.index[worse_by > tolerance]
    if not len(behind):
        return None, worse_by.index[0]
    fell_behind_on = behind[0]
    for position, day in enumerate(worse_by.index):
        if day <= fell_behind_on or not worse_by.iloc[position] <= tolerance:
            continue
        run = worse_by.iloc[position : position + RECOVERY_DAYS]
        if len(run) == RECOVERY_DAYS and not (run > tolerance).any():
            return fell_behind_on, day
    return fell_behind_on, None


def _policy_table(summary: dict) -> list[str]:
    metric, reference, policies = summary["metric"], summary["reference"], summary["policies"]
    columns = ["policy", "what it does", f"mean {metric}", "worst 7-day", "retrains", "promotions", "training CPU s"]
    reference_cpu = policies[reference]["train_cpu_seconds"] if reference in policies else None
    if reference_cpu is not None:
        columns.append(f"CPU vs {reference}")
    rows = []
    for name, entry in policies.items():
        worst = _number(entry["worst_7day_metric"])
        if entry["worst_7day_on"]:
            worst += f" ({entry['worst_7day_on']})"
        row = [f"`{name}`", entry["description"], _number(entry["mean_metric"]), worst, str(entry["retrains"]),
               str(entry["promotions"]), f"{entry['train_cpu_seconds']:.1f}"]
        if reference_cpu is not None:
            row.append(_cpu_ratio(entry["train_cpu_seconds"], reference_cpu))
        rows.append(row)
    return _markdown_table(columns, rows)


def _scenario_table(summary: dict) -> list[str]:
    names = list(summary["policies"])
    columns = ["scenario", "onset", *(f"`{name}` first request / recovered" for name in names)]
    rows = []
    for scenario_name, entry in summary["scenarios"].items():
        cells = [f"{scenario_name} ({entry['kind']})", entry["onset"]]
        for name in names:
            outcome = entry[name]
            requested = f"{outcome['first_request']} ({outcome['first_request_reason']})" if outcome["first_request"] \
                else NONE
            cells.append(f"{requested} / {_recovery(outcome, entry['onset'])}")
        rows.append(cells)
    return _markdown_table(columns, rows)


def _recovery(outcome: dict, onset: str) -> str:
    if outcome["fell_behind_on"] is None:
        return "never fell behind" if outcome["recovered_on"] == onset else NONE
    if outcome["recovered_on"] is None:
        return f"not recovered (behind from {outcome['fell_behind_on']})"
    return f"{outcome['recovered_on']} (behind from {outcome['fell_behind_on']})"


def _how_to_read(summary: dict) -> str:
    metric, reference = summary["metric"], summary["reference"]
    return (
        f"The {metric} is realized: each day's served predictions scored on the labels that have arrived for them, "
        f"so it trails the world by the label delay, and the 7-day figure pools a week of those labels. "
        f"`{reference}` retrains every day without a gate: it is the freshness ceiling, the most retraining can buy; "
        f"`level0` trains once and never again: the floor. "
        f"Pick the policy with the least training CPU whose mean and worst 7 days are within what your team can "
        f"afford of `{reference}`."
    )


def _cpu_ratio(cpu: float, reference_cpu: float) -> str:
    """A policy's training CPU as a share of the reference's: "1/12" when small, "0.75×" otherwise."""
    if not reference_cpu:
        return NONE
    ratio = cpu / reference_cpu
    if ratio == 0:
        return "0"
    if ratio < 0.5:
        return f"1/{round(1 / ratio)}"
    return f"{ratio:.2f}×"


def _markdown_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _model_name(header: dict[str, Any]) -> str | None:
    return next((str(value) for label, value in header.items() if label.lower() == "model"), None)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def _number(value: float | None) -> str:
    return NONE if value is None else f"{value:.4f}"


def _iso(day: pd.Timestamp | dt.date | None) -> str | None:
    if day is None or pd.isna(day):
        return None
    return day.date().isoformat() if isinstance(day, pd.Timestamp) else day.isoformat()
