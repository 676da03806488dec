"""Markdown tables and plots of a tidy sweep table (sweep.records), from the numbers in sweep.summary.

`write_report` writes into one folder: report.md (the tables below), report.json (every number of those tables,
sweep.summary.to_json), scores.png (each seed's final score per dataset with the agents' means and the data's
score), aggregates.png (IQM and mean with their intervals) and, when the runs recorded minutes at their evaluations,
curves.png (seaborn: score against minutes of update time per dataset).

report.md holds, in order:
1. per dataset: the data's score, and per agent the mean ± sample std [95 % Student-t interval] of the final score
   at the primary target and how many seeds end at or above the data ("2/3"); then per dataset and agent the final
   update count and updates per minute of update time (CPU-minutes on a CPU budget);
2. the aggregates over the datasets every agent has: IQM and mean with 95 % percentile stratified-bootstrap
   intervals, the probability of improvement over the baseline agent with its interval, seeds (and datasets) at or
   above the data, updates per minute;
3. equal updates, where the runs have evaluations during training: the per-dataset table of each run's first
   evaluation at or before a common update count (``--updates N``; default the smallest final count of any run);
4. every other evaluation of the final weights (RUN/evals/NAME: another acting mode, other targets) beside the final;
5. the final score at each target; 6. minutes to the data's score and to the baseline's final score.

A results page splices in the brief version (``render(..., full_report=LINK)``, ``--splice``): sections 1-2, the
machine, and a link to report.md for the rest.

Equal updates, two ways:

    python -m sweep report results/equal-time.csv --baseline attention --updates 1000 --out /tmp/r
    python -m sweep run experiments/equal-updates.yaml      # every agent trained to the same 1,250 updates
    python -m sweep report runs/equal-updates/equal-updates.csv --baseline attention --out /tmp/equal-updates

The first reads a time-budgeted sweep's evaluations during training, which fall on each run's own schedule (the
report states the updates each agent was read at); the second trains every agent to exactly the same number of
updates, so its final scores are the equal-updates comparison.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from sweep import stats
from sweep.summary import LEVEL, Summary, summarize, to_json


def _cell(r: pd.Series | None) -> str:
    if r is None:
        return "–"
    at = "" if pd.isna(r["at_data"]) else f" · {int(r['at_data'])}/{r['n']}"
    if r["n"] < 2:
        return f"{r['mean']:.1f} (n=1){at}"
    return f"{r['mean']:.1f} ± {r['std']:.1f} [{r['lo']:.1f}, {r['hi']:.1f}]{at}"


def _grid(table: pd.DataFrame, cell, data: bool = True) -> list[str]:
    """Markdown lines of a dataset x agent grid from a :func:`sweep.stats.per_dataset` table, each cell
    ``cell(row or None)``, with the data's score as the first column when ``data``."""
    agents = stats.agent_order(table["agent"])
    cells = {(r["dataset"], r["agent"]): r for _, r in table.iterrows()}
    lines = ["| dataset | " + ("data | " if data else "") + " | ".join(agents) + " |",
             "|---|" + ("---|" if data else "") + "---|" * len(agents)]  # fmt: skip
    for d in stats.dataset_order(table["dataset"]):
        score = table.loc[table["dataset"] == d, "data"].iloc[0]
        first = [("–" if pd.isna(score) else f"{score:.1f}")] if data else []
        lines.append(f"| {d} | " + " | ".join(first + [cell(cells.get((d, a))) for a in agents]) + " |")
    return lines


def dataset_table(table: pd.DataFrame) -> list[str]:
    """Markdown lines: per dataset, the data's score and each agent's :func:`_cell`."""
    return _grid(table, _cell)


def _updates_cell(r: pd.Series | None) -> str:
    return "–" if r is None else f"{r['updates']:.0f} ({r['per_minute']:.0f}/min, {r['clock']})"


def updates_table(table: pd.DataFrame) -> list[str]:
    """Markdown lines: per dataset and agent, the final update count and updates per minute of update time."""
    return ["", "Updates behind the final scores: mean over seeds of the final update count (mean over seeds of "
            "updates per minute of update time, on the runs' clock: cpu = CPU-minutes of the training process):",
            "", *_grid(table, _updates_cell, data=False)]  # fmt: skip


def _interval(v: float, lo: float, hi: float, digits: int = 1) -> str:
    if pd.isna(lo):  # one run per dataset: no interval (sweep.stats.stratified_bootstrap)
        return f"{v:.{digits}f} (1 seed)"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def aggregate_table(s: Summary) -> list[str]:
    """Markdown lines: per agent the IQM and mean [stratified-bootstrap interval], P(agent > baseline) [interval],
    seeds and datasets at or above the data, and updates per minute."""
    baseline, reps = s.baseline, s.reps
    agg = s.aggregates.set_index("agent")
    pois = [(b, frame.set_index("agent")) for b, frame in s.improvements.items()]
    at = s.at_data.set_index("agent")
    speed = s.speed.set_index("agent")
    head = "| agent | IQM [95 % CI] | mean [95 % CI] | " + "".join(f"P(agent > {b}) [95 % CI] | " for b, _ in pois)
    lines = [head + "seeds at or above the data | datasets with ≥ half the seeds at or above | updates per minute |",
             "|---|---|---|" + "---|" * len(pois) + "---|---|---|"]  # fmt: skip
    for a in agg.index:
        g = agg.loc[a]
        row = [a, _interval(g["iqm"], g["iqm_lo"], g["iqm_hi"]), _interval(g["mean"], g["mean_lo"], g["mean_hi"])]
        for _, poi in pois:
            row.append("–" if a not in poi.index else _interval(*poi.loc[a, ["poi", "lo", "hi"]], digits=2))
        row += [f"{at.loc[a, 'seeds_at']} of {at.loc[a, 'seeds']}", f"{at.loc[a, 'datasets_at']} of "
                f"{at.loc[a, 'datasets']}"] if a in at.index else ["–", "–"]  # fmt: skip
        v = speed.loc[a]
        row.append(f"{v['median']:.0f} ({v['min']:.0f}–{v['max']:.0f}), {v['clock']} clock")
        lines.append("| " + " | ".join(row) + " |")
    n = agg["datasets"].iloc[0]
    seeds = agg["seeds"].astype(int)
    pooled = ", ".join(f"{a} {k}" for a, k in seeds.items()) if seeds.nunique() > 1 else f"{seeds.iloc[0]} each"
    most = s.per_dataset.groupby("agent")["n"].max()
    ragged = any(most[a] > k for a, k in seeds.items())
    lines += ["", f"Aggregates over the {n} datasets every agent has: IQM and mean of the final scores "
              f"(rliable.metrics) over the seeds an agent has on every one of them ({pooled}"
              + (", so a dataset's extra seeds count only in its own row and in P" if ragged else "") + "), with 95 % "
              f"percentile stratified-bootstrap intervals ({reps} replicates, seeds resampled within each dataset)"
              + (f"; P(agent > {baseline}): the probability that a run of the agent scores above a run of "
                 f"{baseline} on the same dataset, from every seed each has there, averaged over datasets "
                 "(Agarwal et al., 2021)" if baseline else "")
              + (f"; {baseline} is the strongest of the baselines {', '.join(s.candidates)} by IQM, and P is "
                 "given against each" if len(s.candidates) > 1 else "")
              + ". Updates per minute: the runs' final update count over their minutes of update time, median "
              "(min–max)."]  # fmt: skip
    return lines


def extra_evals_table(df: pd.DataFrame) -> list[str]:
    """Markdown lines per other evaluation of the final weights (RUN/evals/NAME): final → NAME, mean ± sample std
    over the runs that have both, per dataset and agent."""
    lines = []
    finals = stats.scores_of(df).set_index(["dataset", "agent", "seed"])["score"]
    for name in sorted(set(df["eval"]) - {"train", "final"}):
        other = stats.scores_of(df, name).set_index(["dataset", "agent", "seed"])["score"]
        both = pd.concat({"final": finals, "other": other}, axis=1, join="inner").reset_index()
        agents = stats.agent_order(both["agent"])
        lines += ["", f"Final weights evaluated again as `{name}` (RUN/evals/{name}): final → {name}, mean ± sample "
                  "std over seeds at each one's primary target:", "",
                  "| dataset | " + " | ".join(agents) + " |", "|---|" + "---|" * len(agents)]  # fmt: skip
        for d in stats.dataset_order(both["dataset"]):
            row = []
            for a in agents:
                g = both[(both["dataset"] == d) & (both["agent"] == a)]
                row.append("–" if g.empty else f"{_mean_sd(g['final'])} → {_mean_sd(g['other'])} (n={len(g)})")
            lines.append(f"| {d} | " + " | ".join(row) + " |")
    return lines


def _mean_sd(x: pd.Series) -> str:
    return f"{x.mean():.1f}" + ("" if len(x) < 2 else f" ± {stats.sample_std(x):.1f}")


def target_table(df: pd.DataFrame) -> list[str]:
    """Markdown lines: the final score at each target (DT evaluates two per environment), mean ± sample std over
    seeds, the higher target first; none when every run evaluated one target."""
    fin = df[df["eval"] == "final"]
    if fin.groupby(["dataset", "agent", "seed"])["target"].nunique().max() < 2:
        return []
    agents = stats.agent_order(fin["agent"])
    lines = ["", "Final score at each target:", "", "| dataset | target | " + " | ".join(agents) + " |",
             "|---|---|" + "---|" * len(agents)]  # fmt: skip
    for d in stats.dataset_order(fin["dataset"]):
        sub = fin[fin["dataset"] == d]
        for t in sorted(sub["target"].dropna().unique(), reverse=True):
            row = []
            for a in agents:
                x = sub.loc[(sub["agent"] == a) & (sub["target"] == t), "score"]
                row.append("–" if x.empty else f"{_mean_sd(x)} (n={len(x)})")
            lines.append(f"| {d} | {t:g} | " + " | ".join(row) + " |")
    return lines


def _reach_text(cell: dict | None) -> str:
    if cell is None:
        return "–"
    minutes = "–" if cell["minutes"] is None else f"{cell['minutes']:.1f}"
    return f"{minutes} ({cell['reached']}/{cell['seeds']})"


def time_table(tts: dict) -> list[str]:
    """Markdown lines of :func:`sweep.stats.time_to_score`: per dataset, each agent's minutes to the data's score and
    to the baseline's final score; then per agent the averages over datasets and the ratio to the baseline's."""
    base, agents = tts["baseline"], list(tts["average"])
    lines = ["", f"Minutes of update time to the data's score and to {base}'s final score:", "",
             f"| dataset | data | {base} final | " + " | ".join(f"{a} → data | {a} → {base}" for a in agents) + " |",
             "|---|---|---|" + "---|---|" * len(agents)]  # fmt: skip
    for d, v in tts["datasets"].items():
        cells = [_reach_text(v["agents"].get(a, {}).get(k)) for a in agents for k in ("to_data", "to_baseline")]
        thresholds = ["–" if v[k] is None else f"{v[k]:.1f}" for k in ("data", "baseline_final")]
        lines.append(f"| {d} | " + " | ".join(thresholds + cells) + " |")
    lines += ["", f"| agent | → data, mean over datasets | → {base} final, mean over datasets | → {base} final, "
              f"÷ {base}'s minutes, mean |", "|---|---|---|---|"]  # fmt: skip
    for a, avg in tts["average"].items():
        cells = ["–" if avg[k]["minutes"] is None else f"{avg[k]['minutes']:.1f} ({avg[k]['datasets']} of "
                 f"{avg[k]['of']})" for k in ("to_data", "to_baseline")]  # fmt: skip
        r = avg["ratio"]
        cells.append("–" if r["ratio"] is None else f"{r['ratio']:.2f} ({r['datasets']})")
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    clock = " and ".join(f"{n} runs on the {c} clock" for c, n in sorted(tts["clock"].items()))
    lines += ["", f"Each cell: mean over the seeds that reach the score of their first evaluation at or above it, "
              f"then (seeds that reach it / seeds); – where none does. Minutes: {clock}. Averages: over the "
              "datasets where some seed got there (of those with runs); the ratio below 1 means sooner than "
              f"{base}."]  # fmt: skip
    return lines


def _short_cell(r: pd.Series | None) -> str:
    if r is None:
        return "–"
    spread = "" if r["n"] < 2 else f" ± {r['std']:.1f}"
    return f"{r['mean']:.1f}{spread} ({int(r['at_data'])}/{r['n']})"


def headline_table(s: Summary) -> list[str]:
    """Markdown lines for a README: per dataset the data's score and each agent's mean ± sample std (seeds at or
    above the data), then rows for the IQM [95 % CI], P(agent > baseline) [95 % CI] for each baseline (the strongest
    first) and updates per minute."""
    lines = _grid(s.per_dataset, _short_cell)
    agents = stats.agent_order(s.per_dataset["agent"])
    agg, speed = s.aggregates.set_index("agent"), s.speed.set_index("agent")
    iqm = [_interval(*agg.loc[a, ["iqm", "iqm_lo", "iqm_hi"]]) if a in agg.index else "–" for a in agents]
    lines.append("| **IQM** [95 % CI] | | " + " | ".join(iqm) + " |")
    for b, frame in s.improvements.items():
        poi = frame.set_index("agent")
        cells = [_interval(*poi.loc[a, ["poi", "lo", "hi"]], digits=2) if a in poi.index else "–" for a in agents]
        lines.append(f"| P(agent > {b}) [95 % CI] | | " + " | ".join(cells) + " |")
    per_min = [f"{speed.loc[a, 'median']:.0f}" if a in speed.index else "–" for a in agents]
    lines.append("| updates per minute (median) | | " + " | ".join(per_min) + " |")
    return lines


def render(s: Summary, df: pd.DataFrame, meta: dict, full_report: str | None = None) -> str:
    """The whole report.md (see the module docstring) from the numbers ``s`` of the table ``df``; with
    ``full_report`` (a link to report.md), the brief version a results page splices in: sections 1 and 2, a line
    pointing at the full report for sections 3-6, and the machine."""
    lines = [f"Final score per dataset{' (' + meta['name'] + ')' if meta.get('name') else ''}:", "",
             *dataset_table(s.per_dataset), "",
             "Each cell: D4RL-normalised score of the final evaluation at the primary target, mean ± sample std "
             "(ddof=1) over seeds [95 % Student-t interval] · seeds at or above the data's score. data: the "
             "behaviour data's mean episode return, normalised.", *updates_table(s.per_dataset), "",
             *aggregate_table(s)]  # fmt: skip
    if full_report is None:
        lines += _details(s, df)
    else:
        link = f"[{Path(full_report).name}]({full_report})"
        lines += ["", "The equal-updates reading of the evaluations during training, the final score at each target "
                  f"and the minutes to a score are in the full report, {link}."]  # fmt: skip
    machines = "; ".join(meta.get("machines", [])) or "unrecorded"
    runs = meta.get("run_commits") or {}
    made = "; ".join(f"{_short_commit(c)} ({n} runs)" for c, n in runs.items()) or "not recorded"
    lines += [
        "",
        f"Machine: {machines}. Commit: {meta.get('commit', 'unrecorded')}. Code the runs were made with "
        f'(results.json "commit"; runs made before it was recorded count as unrecorded): {made}.',
    ]
    return "\n".join(lines) + "\n"


def _details(s: Summary, df: pd.DataFrame) -> list[str]:
    """Sections 3-6 of report.md: equal updates, the other evaluations, each target, the minutes to a score."""
    lines = []
    if s.equal_updates is not None:
        got = s.at_updates_runs.groupby("agent")["updates"]
        used = ", ".join(f"{a} {got.median()[a]:.0f} ({got.min()[a]}–{got.max()[a]})"
                         for a in stats.agent_order(got.groups))  # fmt: skip
        lines += ["", f"Equal updates: each run's last evaluation at or before {s.equal_updates} updates, so no agent "
                  "is read after more updates than that (a run with no evaluation that early is left out). A faster "
                  "agent is read mid-schedule, at a higher learning rate and on 10 episodes rather than the final 50, "
                  "so this view leans against it. Updates of the evaluations "
                  f"used, median (min–max): {used}. For exactly equal updates run experiments/equal-updates.yaml.",
                  "", *dataset_table(s.at_updates)]  # fmt: skip
    lines += extra_evals_table(df) + target_table(df)
    if s.time_to_score:
        lines += time_table(s.time_to_score)
    return lines


def _short_commit(commit: str) -> str:
    """A commit as the report prints it: 12 hex digits, keeping a "+dirty" mark (agents.rundir.git_commit)."""
    sha, plus, mark = commit.partition("+")
    return sha[:12] + plus + mark


def report_md(
    df: pd.DataFrame, meta: dict, baseline: str | Sequence[str] | None, reps: int = 2000, updates: int | None = None
) -> str:
    """report.md of the tidy table ``df`` (arguments as :func:`sweep.summary.summarize`)."""
    return render(summarize(df, baseline, reps, updates), df, meta)


def _agent_palette(agents: list[str]) -> dict[str, tuple]:
    import seaborn as sns

    return dict(zip(agents, sns.color_palette("tab10", len(agents))))


def plot_scores(scores: pd.DataFrame, path: Path) -> None:
    """Each seed's final score per dataset (dots), each agent's mean with seaborn's 95 % bootstrap interval over its
    seeds, the data's score as a black bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    agents, datasets = stats.agent_order(scores["agent"]), stats.dataset_order(scores["dataset"])
    fig, ax = plt.subplots(figsize=(max(6.0, 1.0 * len(datasets) + 2), 4))
    kw = {"data": scores, "x": "dataset", "y": "score", "hue": "agent", "order": datasets, "hue_order": agents,
          "palette": _agent_palette(agents), "ax": ax}  # fmt: skip
    sns.stripplot(**kw, dodge=True, alpha=0.5, size=3, legend=False)
    sns.pointplot(**kw, dodge=0.8 - 0.8 / len(agents), linestyle="none", errorbar=("ci", 95), markers="_",
                  markersize=12, capsize=0.1, err_kws={"linewidth": 1})  # fmt: skip
    data = scores.groupby("dataset")["data_score"].first()
    for i, d in enumerate(datasets):
        if pd.notna(data.get(d)):
            ax.plot([i - 0.45, i + 0.45], [data[d]] * 2, "k-", lw=1.5, label="behaviour data" if i == 0 else None)
    ax.set_xticks(range(len(datasets)), datasets, rotation=35, ha="right", fontsize=8)
    ax.set(xlabel="", ylabel="D4RL-normalised score (final)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_aggregates(agg: pd.DataFrame, path: Path) -> None:
    """IQM and mean per agent (:func:`sweep.stats.aggregates`) with their stratified-bootstrap intervals, as
    rliable's interval plots draw them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _agent_palette(list(agg["agent"]))
    fig, axes = plt.subplots(1, 2, figsize=(7, 0.5 * len(agg) + 1.2), sharey=True)
    for ax, name in zip(axes, ("iqm", "mean")):
        for i, r in agg.iterrows():
            ax.barh(i, r[f"{name}_hi"] - r[f"{name}_lo"], left=r[f"{name}_lo"], height=0.6, color=colors[r["agent"]],
                    alpha=0.75)  # fmt: skip
            ax.plot([r[name]] * 2, [i - 0.3, i + 0.3], "k-", lw=2)
        ax.set_title("IQM" if name == "iqm" else "mean", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(agg)), agg["agent"])
    fig.supxlabel(f"D4RL-normalised score, {agg['datasets'].iloc[0]} datasets ({LEVEL:.0%} CI)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(df: pd.DataFrame, path: Path) -> bool:
    """Score against minutes of update time per dataset, the seeds' mean per agent with its 95 % interval over the
    seeds' evaluations at each scheduled minute; False (nothing drawn) without evaluations during training."""
    curves = stats.time_curves(df)
    if not (df["eval"] == "train").any() or not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    rows = [{"dataset": d, "agent": a, "seed": s, "minutes": round(m * 4) / 4, "score": y}
            for (d, a, s), cv in curves.items() for m, y in cv]  # fmt: skip
    long = pd.DataFrame(rows)
    agents, datasets = stats.agent_order(long["agent"]), stats.dataset_order(long["dataset"])
    grid = sns.relplot(data=long, x="minutes", y="score", hue="agent", hue_order=agents, col="dataset",
                       col_order=datasets, col_wrap=min(3, len(datasets)), kind="line", errorbar=("ci", 95),
                       palette=_agent_palette(agents), height=2.3, aspect=1.3, facet_kws={"sharey": False})  # fmt: skip
    data = df.groupby("dataset")["data_score"].first()
    for d, ax in grid.axes_dict.items():
        if pd.notna(data.get(d)):
            ax.axhline(data[d], color="k", lw=1, ls="--")
        ax.set_title(d, fontsize=9)
        ax.grid(alpha=0.3)
    clock = "/".join(sorted(df["clock"].dropna().unique()))
    grid.set_axis_labels(f"minutes of update time ({clock} clock)", "D4RL-normalised score")
    grid.savefig(path, dpi=80)
    return True


def write_report(
    df: pd.DataFrame,
    meta: dict,
    baseline: str | Sequence[str] | None,
    out: Path,
    reps: int = 2000,
    updates: int | None = None,
) -> Summary:
    """Write report.md, headline.md (:func:`headline_table`), report.json (:func:`sweep.summary.to_json`),
    scores.png, aggregates.png and (with evaluations during training) curves.png into ``out``; the numbers, for
    :func:`render`'s brief version."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s = summarize(df, baseline, reps, updates)
    (out / "report.md").write_text(render(s, df, meta))
    (out / "headline.md").write_text("\n".join(headline_table(s)) + "\n")
    (out / "report.json").write_text(json.dumps(to_json(s, meta), indent=1) + "\n")
    plot_scores(s.scores, out / "scores.png")
    plot_aggregates(s.aggregates, out / "aggregates.png")
    plot_curves(df, out / "curves.png")
    return s


def splice(path: Path, table_md: str, name: str, missing_ok: bool = False) -> bool:
    """Replace what lies between the lines ``<!-- name -->`` and ``<!-- /name -->`` of a Markdown file with
    ``table_md``; whether it did (without the block: False with ``missing_ok``, else ValueError naming the markers)."""
    first, last = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = Path(path).read_text()
    begin, end = text.find(first), text.find(last)
    if begin < 0 or end < begin:
        if missing_ok:
            return False
        raise ValueError(f"{path} has no {first} ... {last} block; add the two lines where the table goes")
    Path(path).write_text(text[: begin + len(first)] + "\n" + table_md.strip("\n") + "\n" + text[end:])
    return True


__all__ = ["render", "report_md", "splice", "write_report"]
