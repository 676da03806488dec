"""The sweep's command line: run an experiment, collect its runs into a tidy table, report on tables.

python -m sweep run experiments/equal-time.yaml               # train what is missing, then collect
python -m sweep collect runs/equal-time --name equal-time --out results/equal-time.csv
python -m sweep report results/equal-time.csv --baseline attention --out docs/equal-time
python -m sweep report results/equal-time.csv --baseline attention dt-cpu --out /tmp/r   # the stronger of the two
python -m sweep report results/a.csv results/b.csv:dt --baseline dt --out /tmp/r   # dt's runs from b
python -m sweep rescore runs/equal-time --targets data_max      # final weights at the data's best return
python -m sweep archive runs/equal-time --to /mnt/keep/equal-time   # the runs' records, no weights
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import pandas as pd

from sweep import launch, records, report
from sweep.experiment import load_experiment


def _run(a: argparse.Namespace) -> None:
    exp = load_experiment(a.experiment)
    changes = {k: v for k, v in (("engine", a.engine), ("jobs", a.jobs), ("out", a.out)) if v is not None}
    exp = dataclasses.replace(exp, **changes)
    if a.agents:
        unknown = sorted(set(a.agents) - {x.name for x in exp.agents})
        if unknown:
            sys.exit(f"--agents: {unknown} not in {a.experiment}; its agents: {[x.name for x in exp.agents]}")
        exp = dataclasses.replace(exp, agents=tuple(x for x in exp.agents if x.name in a.agents))
    if a.datasets:
        exp = dataclasses.replace(exp, datasets=tuple(a.datasets))
    if a.seeds:
        exp = dataclasses.replace(exp, seeds=tuple(a.seeds))
    if a.dry_run:
        for cell in launch.missing(exp):
            agent = exp.agent(cell[1])
            print(" ".join(launch.train_command(exp, agent, cell[0], cell[2])))
        return
    failed = launch.run_experiment(exp, check_data=a.check_data)
    if any(exp.out.glob("*/*/seed*/results.json")):
        path = records.write_table(*records.collect(exp.out, exp.name), exp.out / f"{exp.name}.csv")
        print(f"wrote {path}")
    if failed:
        sys.exit(f"{len(failed)} runs failed: {failed}; see their .log files next to the run folders")


def _collect(a: argparse.Namespace) -> None:
    df, meta = records.collect(Path(a.runs), a.name)
    path = records.write_table(df, meta, Path(a.out) if a.out else Path("results") / f"{a.name}.csv")
    print(f"wrote {path} ({len(df)} rows, {df.groupby(['dataset', 'agent', 'seed']).ngroups} runs)")


def _report(a: argparse.Namespace) -> None:
    parts = [records.read_table(t) for t in a.tables]
    df = records.tidy(pd.concat([p[0] for p in parts]).to_dict("records"))
    meta = {**parts[0][1], "name": a.name or parts[0][1].get("name", "")}
    meta["machines"] = sorted({m for _, m_ in parts for m in m_.get("machines", [])})
    meta["commit"] = ", ".join(dict.fromkeys(m_.get("commit", "unrecorded") for _, m_ in parts))
    s = report.write_report(df, meta, a.baseline, Path(a.out), a.reps, a.updates)
    print(f"wrote {a.out}/report.md, report.json and the plots")
    for f in a.splice:
        full = os.path.relpath(Path(a.out) / "report.md", Path(f).resolve().parent)
        report.splice(Path(f), report.render(s, df, meta, full_report=full), a.splice_name)
        print(f"updated the block <!-- {a.splice_name} --> in {f}")
    for f in a.headline:
        report.splice(Path(f), (Path(a.out) / "headline.md").read_text(), a.headline_name)
        print(f"updated the block <!-- {a.headline_name} --> in {f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train every missing run of an experiment, then collect its tidy table")
    r.add_argument("experiment", help="an experiment YAML file (experiments/*.yaml)")
    r.add_argument("--engine", choices=["auto", "ray", "pool"], help="override the experiment's engine")
    r.add_argument("--jobs", type=int, help="override the experiment's runs at once")
    r.add_argument("--out", type=Path, help="override the experiment's runs folder")
    r.add_argument("--agents", nargs="+", metavar="NAME", help="run only these of the experiment's agents")
    r.add_argument("--datasets", nargs="+", metavar="NAME", help="run only these datasets (config names)")
    r.add_argument("--seeds", nargs="+", type=int, metavar="K", help="run only these seeds")
    r.add_argument("--no-check-data", dest="check_data", action="store_false",
                   help="do not compare finished runs' data with today's datasets (skips loading them)")  # fmt: skip
    r.add_argument("--dry-run", action="store_true", help="print the missing runs' train commands, run nothing")
    c = sub.add_parser("collect", help="read a runs folder (OUT/<dataset>/<agent>/seed<k>) into one tidy CSV")
    c.add_argument("runs")
    c.add_argument("--name", required=True, help="the sweep's name, kept in the sidecar")
    c.add_argument("--out", help="the CSV to write (default: results/NAME.csv); the sidecar goes next to it")
    p = sub.add_parser("report", help="tables and plots of one or more tidy CSVs")
    p.add_argument("tables", nargs="+", help="tidy CSVs; PATH:agent1,agent2 takes only those agents' rows")
    p.add_argument("--baseline", nargs="+", metavar="AGENT",
                   help="the agent the probability of improvement and the time to score compare with; several: the "
                   "strongest of them by IQM, with P also against each of the others")  # fmt: skip
    p.add_argument("--out", required=True, help="the folder for report.md, report.json and the plots")
    p.add_argument("--name", help="the report's title (default: the first table's name)")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--updates", type=int, metavar="N",
                   help="read the equal-updates table at each run's last evaluation at or before N updates "
                   "(default: the smallest final update count of any run)")  # fmt: skip
    p.add_argument("--splice", action="append", default=[], metavar="FILE",
                   help="also replace the block <!-- NAME --> ... <!-- /NAME --> of FILE with report.md's first two "
                   "sections (per dataset, aggregates) and a link to the rest")  # fmt: skip
    p.add_argument("--splice-name", default="sweep-table", metavar="NAME", help="the block --splice replaces")
    p.add_argument("--headline", action="append", default=[], metavar="FILE",
                   help="also replace the block <!-- NAME --> ... <!-- /NAME --> of FILE (e.g. README.md) with "
                   "headline.md, the compact table (NAME: --headline-name, default HEADLINE)")  # fmt: skip
    p.add_argument("--headline-name", default="HEADLINE", metavar="NAME",
                   help="the block --headline replaces (a page with two compact tables names them apart)")  # fmt: skip
    q = sub.add_parser("rescore", help="evaluate every finished run's final weights again at other targets")
    q.add_argument("runs")
    q.add_argument("--targets", nargs="+", required=True,
                   help="numbers and/or data_max (each run's training data's best episode return)")  # fmt: skip
    q.add_argument("--name", help="RUN/evals/rescore-NAME; default: the targets joined by _")
    q.add_argument("--episodes", type=int, help="episodes per target (default: each run's final_eval_episodes)")
    q.add_argument("--datasets", nargs="+", help="only these datasets' runs")
    q.add_argument("--agents", nargs="+", help="only these agents' runs")
    v = sub.add_parser("archive", help="copy each finished run's records (no weights) to another folder")
    v.add_argument("runs")
    v.add_argument("--to", required=True, help="the folder to copy into, laid out as the runs folder")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "run":
            _run(a)
        elif a.cmd == "collect":
            _collect(a)
        elif a.cmd == "report":
            _report(a)
        elif a.cmd == "rescore":
            launch.rescore_runs(Path(a.runs), a.targets, a.name or "_".join(a.targets), a.episodes, a.datasets,
                                a.agents)  # fmt: skip
        else:
            print(f"archived {len(records.archive_runs(Path(a.runs), Path(a.to)))} runs' records to {a.to}")
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        sys.exit(f"python -m sweep {a.cmd}: {err}")


if __name__ == "__main__":
    main()
