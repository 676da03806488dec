"""Statistics of a tidy sweep table (sweep.records): per-dataset means with sample std and t intervals, seeds at or
above the data, aggregates over datasets x seeds with stratified-bootstrap intervals, the probability of improvement
over a baseline, updates per minute, scores at a common update count and time to score.

The aggregates follow Agarwal et al., "Deep RL at the Edge of the Statistical Precipice" (NeurIPS 2021): the
interquartile mean and the mean over all runs, and the probability of improvement, from rliable.metrics. Their
intervals are rliable's percentile stratified bootstrap (rliable/library.py ``StratifiedBootstrap``: each task's runs
resampled with replacement, independently per task), written out here because rliable.library needs arch, whose 7.x
releases (the ones rliable accepts) do not import under pandas 3.

A sweep may give some datasets more seeds than others (5 where seeds split, 3 elsewhere). The IQM and mean pool runs,
so an extra seed would weigh its dataset more: they use the seeds every dataset has. The probability of improvement
is a per-dataset count averaged over datasets, so it uses every seed each dataset has.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from rliable import metrics
from scipy import stats as sps

#: Agents in table order where the sweep names them: DT as published, DT's network and attention on the CPU recipe,
#: then the recurrent backbones; other names follow alphabetically.
AGENT_ORDER = ("dt", "dt-cpu", "attention", "transformer", "mingru", "minlstm", "gru", "lstm")
#: Dataset levels in the order papers list them; others follow.
LEVEL_ORDER = ("medium", "medium-replay", "medium-expert", "expert")


def agent_order(agents) -> list[str]:
    """Agents sorted by :data:`AGENT_ORDER`, unknown names after, alphabetically.

    >>> agent_order(["minlstm", "zeta", "dt", "attention"])
    ['dt', 'attention', 'minlstm', 'zeta']
    """
    known = {a: i for i, a in enumerate(AGENT_ORDER)}
    return sorted(set(agents), key=lambda a: (known.get(a, len(known)), a))


def dataset_order(datasets) -> list[str]:
    """Datasets by environment, then by level in :data:`LEVEL_ORDER`.

    >>> dataset_order(["walker2d-medium", "hopper-medium-replay", "hopper-medium"])
    ['hopper-medium', 'hopper-medium-replay', 'walker2d-medium']
    """

    def key(d: str) -> tuple:
        env, _, level = d.partition("-")
        return env, LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER), d

    return sorted(set(datasets), key=key)


def sample_std(x) -> float:
    """Sample standard deviation (ddof=1); NaN with fewer than two values."""
    x = np.asarray(x, float)
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def t_interval(x, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean, mean ± t_{n-1} s / sqrt(n); (NaN, NaN) with fewer than two values."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = sps.t.ppf(0.5 + level / 2, len(x) - 1) * sample_std(x) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def scores_of(df: pd.DataFrame, eval_name: str = "final") -> pd.DataFrame:
    """One score per run: the ``eval_name`` evaluation at the run's primary target (dataset, agent, seed, score,
    return, updates, train_minutes, clock, data_score)."""
    rows = df[(df["eval"] == eval_name) & df["primary"]]
    cols = ["dataset", "agent", "seed", "score", "return", "updates", "train_minutes", "clock", "data_score"]
    return rows[cols].drop_duplicates(["dataset", "agent", "seed"]).reset_index(drop=True)


def per_dataset(scores: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Per dataset and agent: seeds, mean, sample std, t interval, the data's score, seeds at or above it, and the
    updates behind the scores: their mean over seeds and the mean over seeds of updates per minute of update time on
    the runs' clock (CPU-minutes on a CPU budget)."""
    out = []
    for (d, a), g in scores.groupby(["dataset", "agent"]):
        lo, hi = t_interval(g["score"], level)
        data = g["data_score"].iloc[0]
        at = int((g["score"] >= data).sum()) if pd.notna(data) else None
        out.append({"dataset": d, "agent": a, "n": len(g), "mean": g["score"].mean(), "std": sample_std(g["score"]),
                    "lo": lo, "hi": hi, "data": data, "at_data": at, "updates": g["updates"].mean(),
                    "per_minute": (g["updates"] / g["train_minutes"]).mean(),
                    "clock": "/".join(sorted(g["clock"].unique()))})  # fmt: skip
    return pd.DataFrame(out)


def score_matrix(scores: pd.DataFrame, agent: str, datasets: list[str]) -> np.ndarray:
    """(runs, tasks) scores of ``agent`` on ``datasets``, rliable's layout: the seeds it has on every one of them."""
    mine = scores[scores["agent"] == agent]
    seeds = sorted(set.intersection(*(set(mine.loc[mine["dataset"] == d, "seed"]) for d in datasets)))
    if not seeds:
        raise ValueError(f"agent {agent!r} has no seed that ran on every one of {datasets}")
    table = mine.pivot_table(index="seed", columns="dataset", values="score")
    return table.loc[seeds, list(datasets)].to_numpy(float)


def score_columns(scores: pd.DataFrame, agent: str, datasets: list[str]) -> list[np.ndarray]:
    """Per dataset of ``datasets``, the scores of every seed ``agent`` has on it (by seed): runs per task that may
    differ between tasks."""
    mine = scores[scores["agent"] == agent].sort_values("seed")
    return [mine.loc[mine["dataset"] == d, "score"].to_numpy(float) for d in datasets]


def probability_of_improvement(xs: list[np.ndarray], ys: list[np.ndarray]) -> float:
    """P(X > Y) + P(X = Y) / 2 per task, averaged over tasks, from each task's own runs ``xs[t]`` and ``ys[t]``:
    rliable.metrics.probability_of_improvement task by task, since it takes one run count for every task."""
    return float(np.mean([metrics.probability_of_improvement(x[:, None], y[:, None]) for x, y in zip(xs, ys)]))


def _resample(sample: np.ndarray | list[np.ndarray], rng: np.random.Generator) -> np.ndarray | list[np.ndarray]:
    if isinstance(sample, np.ndarray):  # (runs, tasks)
        return np.take_along_axis(sample, rng.integers(0, sample.shape[0], size=sample.shape), axis=0)
    return [runs[rng.integers(0, len(runs), size=len(runs))] for runs in sample]


def stratified_bootstrap(
    statistic: Callable[..., float],
    matrices: list[np.ndarray | list[np.ndarray]],
    reps: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(*matrices)`` under the stratified bootstrap: in every replicate, each
    task's runs of each argument are resampled with replacement, independently. An argument is a (runs, tasks)
    matrix (rliable's layout) or a list of per-task run arrays of any lengths. (NaN, NaN) when some task has one
    run: resampling it gives the point estimate back, which is no interval at all."""
    fewest = [m.shape[0] if isinstance(m, np.ndarray) else min(map(len, m)) for m in matrices]
    if min(fewest) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    for i in range(reps):
        values[i] = statistic(*(_resample(m, rng) for m in matrices))
    lo, hi = np.percentile(values, [50 - 50 * level, 50 + 50 * level])
    return float(lo), float(hi)


def common_datasets(scores: pd.DataFrame, agents: list[str]) -> list[str]:
    """The datasets every one of ``agents`` has runs on, in :func:`dataset_order`."""
    have = [set(scores.loc[scores["agent"] == a, "dataset"]) for a in agents]
    return dataset_order(set.intersection(*have)) if have else []


def aggregates(scores: pd.DataFrame, reps: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per agent, over the datasets every agent has: IQM and mean over runs (rliable.metrics) with stratified-
    bootstrap intervals, and the runs, seeds and datasets they cover. The runs are the seeds the agent has on every
    one of those datasets (:func:`score_matrix`), so each dataset weighs the same."""
    agents = agent_order(scores["agent"])
    datasets = common_datasets(scores, agents)
    out = []
    for a in agents:
        m = score_matrix(scores, a, datasets)
        row = {"agent": a, "runs": m.size, "seeds": m.shape[0], "datasets": len(datasets)}
        for name, fn in (("iqm", metrics.aggregate_iqm), ("mean", metrics.aggregate_mean)):
            row[name] = float(fn(m))
            row[f"{name}_lo"], row[f"{name}_hi"] = stratified_bootstrap(fn, [m], reps, level, seed)
        out.append(row)
    return pd.DataFrame(out)


def improvement(
    scores: pd.DataFrame, baseline: str, reps: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """Probability of improvement of every other agent over ``baseline`` (rliable.metrics: P(X > Y) per dataset from
    the Mann-Whitney U statistic over every seed each has there, averaged over the datasets both have), with a
    stratified-bootstrap interval."""
    if baseline not in set(scores["agent"]):
        raise ValueError(f"no baseline agent {baseline!r} in the table; its agents: {agent_order(scores['agent'])}")
    out = []
    for a in agent_order(scores["agent"]):
        if a == baseline:
            continue
        datasets = common_datasets(scores, [a, baseline])
        x, y = score_columns(scores, a, datasets), score_columns(scores, baseline, datasets)
        poi = probability_of_improvement(x, y)
        lo, hi = stratified_bootstrap(probability_of_improvement, [x, y], reps, level, seed)
        out.append({"agent": a, "baseline": baseline, "poi": poi, "lo": lo, "hi": hi, "datasets": len(datasets),
                    "runs": sum(map(len, x)), "baseline_runs": sum(map(len, y))})  # fmt: skip
    return pd.DataFrame(out)


def at_data_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Per agent, from :func:`per_dataset`: seeds at or above the data out of seeds on datasets with a data score,
    and datasets where at least half the seeds are."""
    scored = table[table["at_data"].notna()]
    out = []
    for a, g in scored.groupby("agent"):
        out.append({"agent": a, "seeds_at": int(g["at_data"].sum()), "seeds": int(g["n"].sum()),
                    "datasets_at": int((2 * g["at_data"] >= g["n"]).sum()), "datasets": len(g)})  # fmt: skip
    return pd.DataFrame(out)


def updates_per_minute(scores: pd.DataFrame) -> pd.DataFrame:
    """Per agent: median (min-max) over its runs of final updates per minute of update time, and the clock."""
    s = scores.assign(rate=scores["updates"] / scores["train_minutes"])
    out = []
    for a, g in s.groupby("agent"):
        clocks = sorted(g["clock"].unique())
        out.append({"agent": a, "median": g["rate"].median(), "min": g["rate"].min(), "max": g["rate"].max(),
                    "updates": g["updates"].median(), "clock": "/".join(clocks)})  # fmt: skip
    return pd.DataFrame(out)


def at_updates(df: pd.DataFrame, updates: int | None = None) -> tuple[int, pd.DataFrame]:
    """Scores at a common update count: per run, its last evaluation (during training or final) at the primary
    target with at most ``updates`` updates, so no agent is read after more updates than another; a run with no
    evaluation that early is left out. Default ``updates``: the smallest final update count of any run, which every
    run reaches. A faster agent is thus read mid-schedule (at a higher learning rate, on fewer episodes) where a
    slower one is read at its end: for exactly equal updates, run experiments/equal-updates.yaml. (updates, one row
    per run as :func:`scores_of`, ``updates`` the evaluation's own: at or below ``updates``.)"""
    evals = df[df["eval"].isin(["train", "final"]) & df["primary"]]
    if updates is None:
        updates = int(scores_of(df)["updates"].min())
    upto = evals[evals["updates"] <= updates].sort_values("updates")
    picked = upto.groupby(["dataset", "agent", "seed"], as_index=False).tail(1)
    cols = ["dataset", "agent", "seed", "score", "return", "updates", "train_minutes", "clock", "data_score"]
    return updates, picked[cols].reset_index(drop=True)


def first_reach(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """The time of the first evaluation whose score is >= ``threshold``; None when none is.

    >>> first_reach([(1.0, 10.0), (2.0, 30.0), (3.0, 20.0)], 25.0), first_reach([(1.0, 10.0)], 25.0)
    (2.0, None)
    """
    return next((t for t, score in curve if score >= threshold), None)


def _reach(curves: list[list[tuple[float, float]]], threshold: float | None) -> dict | None:
    """How soon a set of seeds reach ``threshold``: each seed's first time (None: never), the mean over the seeds
    that reach it (None if none does), how many do, out of how many; None without a threshold or seeds."""
    if threshold is None or not curves:
        return None
    times = [first_reach(cv, threshold) for cv in curves]
    reached = [t for t in times if t is not None]
    return {"minutes": float(np.mean(reached)) if reached else None, "reached": len(reached), "seeds": len(times),
            "per_seed": times}  # fmt: skip


def time_curves(df: pd.DataFrame) -> dict[tuple[str, str, int], list[tuple[float, float]]]:
    """(dataset, agent, seed) -> [(minutes, score)] of its evaluations during training and its final one, primary
    target, for the runs whose every evaluation recorded minutes."""
    ev = df[df["eval"].isin(["train", "final"]) & df["primary"]].sort_values("updates")
    out = {}
    for key, g in ev.groupby(["dataset", "agent", "seed"]):
        if g["train_minutes"].notna().all():
            out[key] = list(zip(g["train_minutes"].astype(float), g["score"].astype(float)))
    return out


def time_to_score(df: pd.DataFrame, baseline: str) -> dict | None:
    """Minutes of update time each agent takes to reach the behaviour data's score and ``baseline``'s final score;
    None when no run recorded minutes at its evaluations.

    Per dataset and agent, each seed's time is that of its first evaluation at or above the threshold; a seed that
    never gets there counts as not reached, and the minutes are the mean over the seeds that did. The baseline's
    final score is its final score averaged over its seeds. Per agent then: each threshold's minutes averaged over
    the datasets where some seed reached it, and the ratio of its minutes to the baseline's final to the baseline's
    own, averaged over the datasets where both are defined (below 1: sooner than the baseline).
    """
    curves = time_curves(df)
    if not curves or not (df["eval"] == "train").any():
        return None
    finals = scores_of(df)
    agents = agent_order(a for _, a, _ in curves)
    datasets = {}
    for d in dataset_order(c for c, _, _ in curves):
        base = finals[(finals["dataset"] == d) & (finals["agent"] == baseline)]["score"]
        base_final = float(base.mean()) if len(base) else None
        data = finals.loc[finals["dataset"] == d, "data_score"]
        data = float(data.iloc[0]) if len(data) and pd.notna(data.iloc[0]) else None
        per_agent = {}
        for a in agents:
            cs = [cv for (dd, aa, _), cv in sorted(curves.items()) if dd == d and aa == a]
            if cs:
                per_agent[a] = {"to_data": _reach(cs, data), "to_baseline": _reach(cs, base_final)}
        datasets[d] = {"data": data, "baseline_final": base_final, "agents": per_agent}
    average = {}
    for a in agents:
        average[a] = {}
        for key in ("to_data", "to_baseline"):
            cells = [d["agents"][a][key] for d in datasets.values() if a in d["agents"] and d["agents"][a][key]]
            got = [c["minutes"] for c in cells if c["minutes"] is not None]
            average[a][key] = {"minutes": float(np.mean(got)) if got else None, "datasets": len(got), "of": len(cells)}
        ratios = []
        for d in datasets.values():
            mine, theirs = (d["agents"].get(x, {}).get("to_baseline") for x in (a, baseline))
            if mine and theirs and mine["minutes"] is not None and theirs["minutes"]:
                ratios.append(mine["minutes"] / theirs["minutes"])
        average[a]["ratio"] = {"ratio": float(np.mean(ratios)) if ratios else None, "datasets": len(ratios)}
    clocks = df.loc[(df["eval"] == "final") & df["primary"], "clock"].value_counts().to_dict()
    return {"baseline": baseline, "clock": clocks, "datasets": datasets, "average": average}
