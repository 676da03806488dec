"""A sweep's results as one tidy table: one row per run x evaluation x target, read from the run folders.

A run folder (`run_rl.py train --out RUN`) holds results.json (the final evaluation of the last weights, each
target's episodes), evals.jsonl (the evaluations during training; older runs keep them in results.json's
``history``), config.yaml, dataset.json (the data's summary and fingerprint) and, for evaluations made afterwards
(`run_rl.py eval --out RUN/evals/NAME`, e.g. another acting mode or target), RUN/evals/NAME/results.json. A sweep
lays its runs out as OUT/<dataset>/<agent>/seed<k>.

The table's columns (:data:`COLUMNS`):

- ``dataset``, ``agent``, ``seed``: which run.
- ``eval``: ``train`` for an evaluation during training, ``final`` for results.json, NAME for RUN/evals/NAME.
- ``final``: whether the evaluated weights are the run's last (``final`` and every RUN/evals/NAME).
- ``updates``: gradient steps before the evaluation. ``train_minutes``: minutes of update time by then, on
  ``clock`` (``cpu``: the process's CPU time, for runs on a CPU budget; ``wall``: wall-clock time).
- ``target``: the return-to-go the agent was conditioned on; ``primary``: whether it is the run's first target, the
  one its headline score uses.
- ``episodes``, ``score`` (D4RL-normalised mean over the episodes), ``return`` (mean episode return; empty where a
  run recorded only the score).
- ``acting_mode``, ``backbone``, ``layout``: how the agent acted and what it was.
- ``data_score``: the behaviour data's D4RL-normalised mean episode return (empty where it cannot be scored).

What is the same for every row, the machine(s), the commit and each dataset's summary, goes into a sidecar JSON
next to the CSV (NAME.meta.json).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import yaml

from envs.scores import normalized_score

COLUMNS = (
    "dataset", "agent", "seed", "eval", "final", "updates", "train_minutes", "clock", "target", "primary",
    "episodes", "score", "return", "acting_mode", "backbone", "layout", "data_score",
)  # fmt: skip
#: The files of a finished run that :func:`read_run` reads: what :func:`archive_runs` keeps (no weights).
RECORD_FILES = ("results.json", "evals.jsonl", "dataset.json", "config.yaml", "evals/*/results.json")
NAN = math.nan


def _json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def data_score(summary: dict) -> float:
    """The behaviour data's D4RL score (its mean episode return, normalised); NaN when it cannot be scored.

    >>> round(data_score({"env_id": "Hopper-v5", "return_mean": 1617.0, "score_reference": "d4rl"}), 2)
    50.31
    """
    if summary.get("score_reference", "d4rl") != "d4rl" or "return_mean" not in summary:
        return NAN
    try:
        return float(normalized_score(summary.get("env_id", ""), [summary["return_mean"]])[0])
    except ValueError:
        return NAN


def machine_text(m: dict | None) -> str:
    """A results.json ``machine`` record in words."""
    if not m:
        return "unrecorded"
    where = m.get("gpu") or f"{m['cpu']} ({m['cores']} cores)"
    return f"{where}, torch {m['torch']}, {m['threads']} thread(s)"


def _evaluations(rd: Path, res: dict) -> list[dict]:
    if (rd / "evals.jsonl").is_file():
        return [json.loads(line) for line in (rd / "evals.jsonl").read_text().splitlines() if line.strip()]
    return res.get("history", [])


def _targets(e: dict) -> list[tuple[float, dict]]:
    """The per-target entries of one evaluation during training, in the order the run evaluated them."""
    return [(float(k), v) for k, v in e.items() if isinstance(v, dict) and "normalized_mean" in v]


def _final_rows(res: dict, base: dict, eval_name: str, minutes: float) -> list[dict]:
    """Rows of one evaluation of the last weights (results.json, or RUN/evals/NAME/results.json)."""
    common = {**base, "eval": eval_name, "final": True, "train_minutes": minutes,
              "updates": res.get("train_step", res.get("steps", base.get("updates"))),
              "acting_mode": res.get("acting_mode", base["acting_mode"])}  # fmt: skip
    per = res.get("per_target") or {}
    if not per:
        return [{**common, "target": res.get("target_return", NAN), "primary": True, "episodes": res.get("episodes"),
                 "score": res["normalized_score_mean"], "return": res.get("return_mean", NAN)}]  # fmt: skip
    return [
        {**common, "target": float(t), "primary": i == 0, "episodes": v.get("n_episodes", res.get("episodes")),
         "score": v["normalized_mean"], "return": v["return_mean"], "acting_mode": v.get("acting_mode",
                                                                                         common["acting_mode"])}
        for i, (t, v) in enumerate(per.items())
    ]  # fmt: skip


def read_run(rd: Path, dataset: str, agent: str, seed: int) -> list[dict]:
    """The tidy rows of one finished run folder (see the module docstring); [] when it has no results.json."""
    res = _json(rd / "results.json")
    if not res:
        return []
    cfg = (yaml.safe_load((rd / "config.yaml").read_text()) or {}) if (rd / "config.yaml").is_file() else {}
    evals = _evaluations(rd, res)
    clock = "cpu" if cfg.get("budget_clock") == "cpu" and all("cpu_min" in e for e in evals) else "wall"
    minute_key = "cpu_min" if clock == "cpu" else "train_min"
    last_minutes = res.get(minute_key, res.get("wall_time_s", NAN) / 60 if clock == "wall" else NAN)
    base = {"dataset": dataset, "agent": agent, "seed": seed, "clock": clock,
            "acting_mode": res.get("acting_mode"), "backbone": res.get("backbone", cfg.get("backbone")),
            "layout": res.get("layout", cfg.get("layout")),
            "data_score": data_score(_json(rd / "dataset.json"))}  # fmt: skip
    rows = []
    for e in evals:
        if e["step"] == res["steps"]:
            continue  # the final evaluation: results.json has it, with every episode
        common = {**base, "eval": "train", "final": False, "updates": e["step"],
                  "train_minutes": e.get(minute_key, NAN), "episodes": cfg.get("eval_episodes", NAN)}  # fmt: skip
        per = _targets(e)
        if per:
            rows += [{**common, "target": t, "primary": i == 0, "score": v["normalized_mean"],
                      "return": v.get("return_mean", NAN)} for i, (t, v) in enumerate(per)]  # fmt: skip
        else:
            rows.append({**common, "target": res.get("target_return", NAN), "primary": True, "score": e["score"],
                         "return": NAN})  # fmt: skip
    rows += _final_rows(res, {**base, "updates": res["steps"]}, "final", last_minutes)
    for extra in sorted(rd.glob("evals/*/results.json")):
        rows += _final_rows(_json(extra), {**base, "updates": res["steps"]}, extra.parent.name, last_minutes)
    return rows


def _dataset_entry(summary: dict) -> dict:
    keep = ("name", "env_id", "episodes", "transitions", "return_mean", "fingerprint")
    return {k: summary[k] for k in keep if k in summary} | {"data_score": data_score(summary)}


def collect(runs: Path, name: str) -> tuple[pd.DataFrame, dict]:
    """The tidy table of every finished run under ``runs`` (OUT/<dataset>/<agent>/seed<k>; stale runs set aside
    under .../stale/ are not read) and its sidecar: name, commit, machines, datasets, when."""
    from agents.rundir import git_commit  # imports torch: only here, not for reading tables

    runs = Path(runs)
    if not runs.is_dir():
        raise FileNotFoundError(f"no runs folder {runs}")
    rows, machines, datasets, commits = [], set(), {}, Counter()
    for res_path in sorted(runs.glob("*/*/seed*/results.json")):
        rd = res_path.parent
        if not rd.name[4:].isdigit():
            continue
        dataset, agent, seed = rd.parent.parent.name, rd.parent.name, int(rd.name[4:])
        rows += read_run(rd, dataset, agent, seed)
        res = _json(res_path)
        machines.add(machine_text(res.get("machine")))
        commits[res.get("commit", "unrecorded")] += 1
        summary = _json(rd / "dataset.json")
        if summary:
            datasets.setdefault(dataset, _dataset_entry(summary))
    if not rows:
        raise ValueError(f"no finished run (OUT/<dataset>/<agent>/seed<k>/results.json) under {runs}")
    meta = {
        "name": name,
        "commit": git_commit(),
        "commit_note": "the checkout's HEAD when the runs were collected",
        "run_commits": dict(sorted(commits.items())),  # results.json "commit": the code each run was made with
        "machines": sorted(machines),
        "datasets": datasets,
        "collected": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    return tidy(rows), meta


def tidy(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with :data:`COLUMNS` in order and their types, sorted by run, evaluation, target."""
    df = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    floats = ("train_minutes", "target", "episodes", "score", "return", "data_score")
    df = df.astype({"seed": int, "final": bool, "primary": bool, "updates": int} | dict.fromkeys(floats, float))
    return df.reset_index(drop=True)


def from_summary_table(path: Path, name: str, commit: str) -> tuple[pd.DataFrame, dict]:
    """The tidy table of an older sweep kept only as a per-run summary (the ``table.csv`` of the sweep script this
    package replaced: one row per run with its last score at each target); ``commit``: the commit that holds it.

    Only the final evaluations are there: no evaluation during training, no episode counts, minutes on the wall
    clock (``wall_time_s``), and the return only at the primary target (the one ``last`` equals).
    """
    src = pd.read_csv(path)
    targets = sorted((c for c in src.columns if c.startswith("last@")), key=lambda c: -float(c[5:]))
    rows = []
    for r in src.to_dict("records"):
        base = {"dataset": r["config"], "agent": r["backbone"], "seed": r["seed"], "eval": "final", "final": True,
                "updates": r["steps"], "train_minutes": r["wall_time_s"] / 60, "clock": "wall", "episodes": NAN,
                "acting_mode": r["acting_mode"], "layout": r.get("layout"), "data_score": r.get("data", NAN),
                "backbone": "transformer" if r["backbone"] == "dt" else r["backbone"]}  # fmt: skip
        scored = [(float(c[5:]), r[c]) for c in targets if pd.notna(r[c])]
        primary = next((t for t, v in scored if v == r["last"]), None)
        if primary is None:
            rows.append({**base, "target": NAN, "primary": True, "score": r["last"], "return": r["return_last"]})
        for t, v in scored:
            rows.append({**base, "target": t, "primary": t == primary, "score": v,
                         "return": r["return_last"] if t == primary else NAN})  # fmt: skip
    datasets = {d: {"data_score": float(g["data"].iloc[0])} for d, g in src.groupby("config") if "data" in g}
    meta = {"name": name, "commit": commit, "commit_note": f"the commit that holds {path}",
            "machines": sorted(src["machine"].dropna().unique().tolist()), "datasets": datasets,
            "source": "a per-run summary: final evaluations only, minutes on the wall clock, no episode counts",
            }  # fmt: skip
    return tidy(rows), meta


def meta_path(csv: Path) -> Path:
    """The sidecar of a tidy CSV: NAME.meta.json next to NAME.csv."""
    return Path(csv).with_suffix(".meta.json")


def write_table(df: pd.DataFrame, meta: dict, path: Path) -> Path:
    """Write the tidy CSV (6 significant digits) and its sidecar; the CSV's path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False, float_format="%.6g")
    meta_path(path).write_text(json.dumps(meta, indent=1) + "\n")
    return path


def read_table(spec: str | Path) -> tuple[pd.DataFrame, dict]:
    """A tidy CSV and its sidecar ({} without one). ``PATH:agent1,agent2`` keeps only those agents' rows, so one
    report can take its columns from several sweeps."""
    spec = str(spec)
    path, _, agents = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tidy table {path} (make one with `python -m sweep collect RUNS --name NAME`)")
    df = pd.read_csv(path)
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a tidy sweep table: it lacks the column(s) {sorted(missing)}")
    if agents:
        keep = agents.split(",")
        unknown = sorted(set(keep) - set(df["agent"]))
        if unknown:
            raise ValueError(f"{path} has no agent(s) {unknown}; it has {sorted(df['agent'].unique())}")
        df = df[df["agent"].isin(keep)]
    return tidy(df.to_dict("records")), _json(meta_path(path))


def archive_runs(out: Path, to: Path) -> list[Path]:
    """Copy :data:`RECORD_FILES` of every finished run under ``out`` to the same place under ``to`` (no weights),
    so that copied back they count as finished; the run folders written. All or nothing: if a record already in
    ``to`` differs from the run's, raise listing every such file before copying anything."""
    copies, conflicts, runs = [], [], []
    for res in sorted(Path(out).glob("*/*/seed*/results.json")):
        rd = res.parent
        dest = Path(to) / rd.relative_to(out)
        runs.append(dest)
        for src in sorted(p for pattern in RECORD_FILES for p in rd.glob(pattern) if p.is_file()):
            dst = dest / src.relative_to(rd)
            if not dst.exists():
                copies.append((src, dst))
            elif dst.read_bytes() != src.read_bytes():
                conflicts.append(dst)
    if conflicts:
        listed = "\n  ".join(str(c) for c in conflicts)
        raise FileExistsError(
            f"{len(conflicts)} record(s) in {to} exist and differ from the runs' (nothing was copied):\n  {listed}\n"
            "archive into an empty folder, or move those runs' records aside first"
        )
    for src, dst in copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return runs
