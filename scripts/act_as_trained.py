"""The training-regime × acting-mode table of docs/RESULTS.md ("Training regime and acting mode") from its tidy results.

    python -m sweep collect runs/act-win --name act-win --out /tmp/win.csv   # and runs/act-mixed, runs/act-segments
    python scripts/act_as_trained.py results/act-as-trained.csv

Each row of the CSV is one run x evaluation x target (``python -m sweep collect``); ``agent`` names the training
regime, ``eval`` is ``final`` (recurrent acting, the run's own last evaluation) or ``window`` (the same weights
rerun on K-step windows, ``run_rl.py eval --acting-mode window``). Prints one Markdown table: per dataset, the
score at DT's first target, mean ± sample std (ddof=1) over seeds with the seeds listed, and the updates made.
"""

from __future__ import annotations

import sys

import pandas as pd

COLUMNS = [("window", "window", "window-trained, window acting"),
           ("window", "final", "window-trained, recurrent acting"),
           ("mixed", "final", "mixed-trained, recurrent acting"),
           ("segments", "final", "segments-trained, recurrent acting")]  # fmt: skip


def cell(scores: pd.Series) -> str:
    if scores.empty:
        return ""
    sd = f" ± {scores.std(ddof=1):.1f}" if len(scores) > 1 else ""
    return f"{scores.mean():.1f}{sd} ({' / '.join(f'{s:.1f}' for s in scores)})"


def main(path: str) -> None:
    d = pd.read_csv(path)
    d = d[d["primary"] & d["eval"].isin(["final", "window"])].sort_values("seed")
    shown = [c for c in COLUMNS if ((d["agent"] == c[0]) & (d["eval"] == c[1])).any()]
    print("| dataset (data) | " + " | ".join(c[2] for c in shown) + " | updates: window / mixed |")
    print("|---" * (len(shown) + 2) + "|")
    means = {c: [] for c in shown}
    for ds, g in d.groupby("dataset"):
        row = []
        for c in shown:
            s = g[(g["agent"] == c[0]) & (g["eval"] == c[1])]["score"]
            row.append(cell(s))
            if len(s):
                means[c].append(s.mean())
        ups = [g[(g["agent"] == a) & (g["eval"] == "final")]["updates"] for a in ("window", "mixed")]
        upd = " / ".join(f"{u.min()}–{u.max()}" if len(u) else "" for u in ups)
        print(f"| {ds} ({g['data_score'].iloc[0]:.1f}) | " + " | ".join(row) + f" | {upd} |")
    averages = " | ".join(f"{sum(m) / len(m):.1f} ({len(m)})" for m in means.values())
    print(f"| average over datasets (datasets) | {averages} | |")


if __name__ == "__main__":
    main(sys.argv[1])
