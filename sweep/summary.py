"""Every number a sweep report shows, computed once from a tidy table (sweep.stats), so that report.md, report.json
and the plots agree and the bootstrap runs once; and those numbers as plain JSON (NaN as null)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sweep import stats

#: The level of every interval in the report.
LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """The report's numbers; the frames are sweep.stats' (one row per dataset x agent, or per agent)."""

    scores: pd.DataFrame  # stats.scores_of: one final score per run
    per_dataset: pd.DataFrame  # stats.per_dataset of the final scores
    aggregates: pd.DataFrame  # stats.aggregates: IQM and mean with stratified-bootstrap intervals
    improvements: dict[str, pd.DataFrame]  # stats.improvement over each candidate, the strongest (baseline) first
    at_data: pd.DataFrame  # stats.at_data_counts
    speed: pd.DataFrame  # stats.updates_per_minute
    equal_updates: int | None  # the common update count; None without evaluations during training
    at_updates: pd.DataFrame | None  # stats.per_dataset of the scores at equal_updates
    at_updates_runs: pd.DataFrame | None  # stats.at_updates: the evaluation each run is read at
    time_to_score: dict | None  # stats.time_to_score; None without a baseline or minutes at evaluations
    baseline: str | None  # the strongest of the candidates by IQM
    candidates: tuple[str, ...]  # the baselines it was chosen from (one: given)
    reps: int

    @property
    def improvement(self) -> pd.DataFrame | None:
        """stats.improvement over the baseline, the strongest candidate; None without one."""
        return self.improvements.get(self.baseline)


def strongest(aggregates: pd.DataFrame, candidates: Sequence[str]) -> str:
    """The candidate with the highest IQM of final scores (ties: the first named): the baseline a report compares
    every other agent with, so that none is measured against a weaker one than the table holds."""
    return max(candidates, key=aggregates.set_index("agent")["iqm"].get)


def summarize(
    df: pd.DataFrame, baseline: str | Sequence[str] | None, reps: int = 2000, updates: int | None = None
) -> Summary:
    """The numbers of a report on the tidy table ``df``: finals at each run's primary target, ``baseline`` the
    agent the probability of improvement and the time to score compare with (several: the strongest of them by
    IQM, :func:`strongest`), ``reps`` bootstrap replicates, ``updates`` the common update count (default: see
    :func:`sweep.stats.at_updates`)."""
    scores = stats.scores_of(df)
    if scores.empty:
        raise ValueError("the table has no final evaluation (eval == 'final') to report")
    candidates = (baseline,) if isinstance(baseline, str) else tuple(baseline or ())
    agents = set(scores["agent"])
    for b in candidates:
        if b not in agents:
            raise ValueError(f"no baseline agent {b!r} in the table; its agents: {stats.agent_order(scores.agent)}")
    table = stats.per_dataset(scores, LEVEL)
    n, matched = stats.at_updates(df, updates) if (df["eval"] == "train").any() else (None, None)
    agg = stats.aggregates(scores, reps, LEVEL)
    baseline = strongest(agg, candidates) if candidates else None
    order = [baseline, *(b for b in candidates if b != baseline)] if baseline else []
    return Summary(
        scores=scores,
        per_dataset=table,
        aggregates=agg,
        improvements={b: stats.improvement(scores, b, reps, LEVEL) for b in order},
        at_data=stats.at_data_counts(table),
        speed=stats.updates_per_minute(scores),
        equal_updates=n,
        at_updates=None if matched is None else stats.per_dataset(matched, LEVEL),
        at_updates_runs=matched,
        time_to_score=stats.time_to_score(df, baseline) if baseline else None,
        baseline=baseline,
        candidates=candidates,
        reps=reps,
    )


def _plain(value):
    """``value`` with NumPy scalars as Python numbers and NaN as None, recursively."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


def _records(frame: pd.DataFrame | None) -> list[dict] | None:
    return None if frame is None else _plain(frame.to_dict("records"))


def to_json(s: Summary, meta: dict) -> dict:
    """The summary as report.json holds it: the table's provenance, how the intervals were made, and each frame as
    a list of records (column names as in sweep.stats)."""
    return {
        "name": meta.get("name", ""),
        "commit": meta.get("commit", "unrecorded"),
        "machines": meta.get("machines", []),
        "baseline": s.baseline,
        "baseline_candidates": list(s.candidates),
        "intervals": {
            "level": LEVEL,
            "per_dataset": "Student-t interval of the mean over seeds (mean ± t_{n-1} s / sqrt(n), s with ddof=1)",
            "aggregates": f"percentile stratified bootstrap, {s.reps} replicates, seeds resampled within each dataset",
        },
        "per_dataset": _records(s.per_dataset),
        "aggregates": _records(s.aggregates),
        "improvement": _records(s.improvement),
        "improvement_over_others": {b: _records(frame) for b, frame in s.improvements.items() if b != s.baseline},
        "at_data": _records(s.at_data),
        "updates_per_minute": _records(s.speed),
        "equal_updates": None
        if s.equal_updates is None
        else {"updates": s.equal_updates, "per_dataset": _records(s.at_updates), "runs": _records(s.at_updates_runs)},
        "time_to_score": _plain(s.time_to_score),
    }
