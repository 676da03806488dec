"""DT parity: our `dt` recipe against d3rlpy's DecisionTransformer on the same D4RL-layout files and seeds.

Three steps, each resumable (a finished run is skipped; one that finished short of ``--steps``, or was killed, is
continued from its last checkpoint, taken at every evaluation, so ``--steps 5000`` extends a 2,000-update table)::

    # 1. D4RL-layout files from our Minari datasets (or bring your own D4RL files)
    python scripts/parity.py export --datasets minrnn/halfcheetah/medium-v0 minrnn/hopper/medium-v0 --out runs/parity
    # 2. both sides, score against updates (d3rlpy runs in its own venv, see scripts/parity_d3rlpy.py)
    python scripts/parity.py run --out runs/parity --seeds 0 1 2 --steps 3000 --eval-every 1000 \\
        --d3rlpy-python .venv-d3rlpy/bin/python
    # 3. the table (Markdown + JSON) and a plot of score against updates
    python scripts/parity.py table --out runs/parity

Our side is ``python run_rl.py train --config dt --dataset d4rl:FILE`` (DT's recipe: interleaved tokens, causal
attention, window acting, lr 1e-4 with a 10k-step warm-up, batch 64, K=20), evaluated on the same targets, episode
count and reset seeds as the d3rlpy side. Extra agents (e.g. ``--agents dt mingru``) train with the same settings
and only the backbone changed. A variant changes a setting and gets its own row: ``--variant sum --set
loss_reduction=sum`` trains ``dt_sum`` (d3rlpy's loss reduction on DT's recipe) next to ``dt``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ACT_DIMS = {"halfcheetah": 6, "hopper": 3, "walker2d": 6}
REFERENCE = "d3rlpy-dt"  # the reference side's row in every table


def env_key(name: str) -> str:
    return next(k for k in ACT_DIMS if k in name.lower())


def dt_target(key: str) -> float:
    """The lower of DT's two evaluation targets for an env (Chen et al. 2021; envs/scores.py DT_TARGETS)."""
    from envs.scores import DT_TARGETS

    return min(DT_TARGETS[key])


def files_in(out: Path) -> list[Path]:
    return sorted((out / "data").glob("*.hdf5"))


def cmd_export(args: argparse.Namespace) -> None:
    from envs import load_dataset
    from envs.export import write_d4rl

    for ds in args.datasets:
        path = args.out / "data" / (ds.split("/")[1] + "-" + ds.split("/")[2].rsplit("-v", 1)[0] + ".hdf5")
        if path.exists():
            print(f"{path} exists, kept")
            continue
        write_d4rl(load_dataset(f"minari:{ds}"), path)
        print(f"wrote {path}")


def our_command(file: Path, agent: str, seed: int, args: argparse.Namespace, out: Path) -> list[str]:
    target = dt_target(env_key(file.name))
    overrides = [a for kv in args.set for a in ("--set", kv)]  # after ours: a variant's setting wins
    return [
        sys.executable, str(ROOT / "run_rl.py"), "train", "--config", "dt", "--dataset", f"d4rl:{file}",
        "--backbone", "transformer" if agent == "dt" else agent, "--seed", str(seed), "--steps", str(args.steps),
        "--eval-every", str(args.eval_every), "--eval-episodes", str(args.episodes), "--threads", "1",
        "--set", f"final_eval_episodes={args.episodes}",
        "--set", f"target_returns=[{target:g}]", "--set", f"checkpoint_every={args.eval_every}",
        "--set", "histogram_every=0",
        "--set", "eval_vector=sync", "--set", "progress=false", *overrides, "--out", str(out),
    ]  # fmt: skip


def d3rlpy_command(file: Path, seed: int, args: argparse.Namespace, out: Path) -> list[str]:
    from envs.make import D4RL_ENV_IDS

    key = env_key(file.name)
    return [
        args.d3rlpy_python, str(ROOT / "scripts" / "parity_d3rlpy.py"), "--file", str(file), "--env", D4RL_ENV_IDS[key],
        "--target", f"{dt_target(key):g}", "--steps", str(args.steps), "--eval-every", str(args.eval_every),
        "--episodes", str(args.episodes), "--seed", str(seed), "--out", str(out),
        "--log-dir", str(out.with_suffix("")) + "-logs",
    ]  # fmt: skip


def steps_done_ours(run: Path) -> int:
    """Updates a finished run of ours trained (its results.json's ``steps``); 0 if it has not finished."""
    res = run / "results.json"
    return int(json.loads(res.read_text())["steps"]) if res.exists() else 0


def steps_done_d3rlpy(res: Path) -> int:
    """The last update a d3rlpy run evaluated at (its JSON lines); 0 if it has none."""
    rows = res.read_text().splitlines() if res.exists() else []
    return max((json.loads(row)["step"] for row in rows), default=0)


def part_start(part: Path) -> int:
    """The update a d3rlpy log directory's step numbers count from: N for a resumed part ``parity-seed{S}-from{N}``,
    else 0."""
    return int(part.name.split("-from")[1]) if "-from" in part.name else 0


def d3rlpy_checkpoint(logs: Path, step: int) -> Path | None:
    """d3rlpy's checkpoint after ``step`` updates in a run's log directory: ``parity-seed{S}/model_{step}.d3``, or
    ``parity-seed{S}-from{N}/model_{step - N}.d3`` for a resumed part."""
    for part in sorted(logs.glob("parity-seed*")):
        start = part_start(part)
        if (part / f"model_{step - start}.d3").exists():
            return part / f"model_{step - start}.d3"
    return None


def cmd_run(args: argparse.Namespace) -> None:
    if args.set and not args.variant:
        raise SystemExit("--set needs --variant NAME: runs with other settings must not land in the plain runs' "
                         "directories (they would be extended as if they were the same runs)")  # fmt: skip
    if "-" in args.variant:
        raise SystemExit(f"--variant {args.variant!r}: use letters, digits and _ (the table splits run names at -)")
    jobs: list[tuple[list[str], Path]] = []
    files = found = files_in(args.out)
    if args.only:
        files = [f for f in found if f.stem in args.only]
        if not files:
            raise SystemExit(f"--only {' '.join(args.only)}: no such file in {args.out / 'data'}; "
                             f"there are {', '.join(f.stem for f in found)}")  # fmt: skip
    for file in files:
        for seed in args.seeds:
            for agent in args.agents:
                label = f"{agent}_{args.variant}" if args.variant else agent
                run = args.out / "ours" / f"{file.stem}-{label}-seed{seed}"
                done = steps_done_ours(run)
                started = (run / "checkpoints" / "latest").is_file()
                if not done and not started:
                    jobs.append((our_command(file, agent, seed, args, run) + ["--overwrite"], run))
                elif done < args.steps:  # finished short of --steps, or killed: go on from its last checkpoint
                    extend = [sys.executable, str(ROOT / "run_rl.py"), "train", "--out", str(run), "--resume",
                              "--steps", str(args.steps), "--threads", "1"]  # fmt: skip
                    jobs.append((extend, run))
            if args.d3rlpy_python:
                res = args.out / "d3rlpy" / f"{file.stem}-seed{seed}.jsonl"
                cmd = d3rlpy_command(file, seed, args, res)
                done = steps_done_d3rlpy(res)
                if done and done < args.steps:
                    ckpt = d3rlpy_checkpoint(Path(str(res.with_suffix("")) + "-logs"), done)
                    if ckpt is None:
                        print(f"{res}: no d3rlpy checkpoint after {done} updates to continue from; delete the file "
                              "to start it again", flush=True)  # fmt: skip
                        continue
                    cmd += ["--resume", str(ckpt), "--start-step", str(done)]
                if done < args.steps:
                    jobs.append((cmd, res))
    running: list[subprocess.Popen] = []
    for cmd, where in jobs:
        while len(running) >= args.jobs:
            running[0].wait()
            running = [p for p in running if p.poll() is None]
        where.parent.mkdir(parents=True, exist_ok=True)
        print("run:", " ".join(cmd), flush=True)
        log = open(where.with_suffix(".log"), "a")  # noqa: SIM115 (closed with the process)
        running.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
    for p in running:
        p.wait()


def read_curves(out: Path) -> dict[tuple[str, str], dict[int, list[float]]]:
    """{(dataset, agent): {update: [score per seed]}} from both sides' logs."""
    curves: dict[tuple[str, str], dict[int, list[float]]] = {}

    def add(key: tuple[str, str], lines: list[str]) -> None:
        run = {row["step"]: row["score"] for row in map(json.loads, lines)}  # one value per step per run
        for step, score in run.items():
            curves.setdefault(key, {}).setdefault(step, []).append(score)

    for evals in sorted((out / "ours").glob("*/evals.jsonl")):
        name, agent, _ = evals.parent.name.rsplit("-", 2)
        add((name, agent), evals.read_text().splitlines())
    for res in sorted(p for p in (out / "d3rlpy").glob("*.jsonl") if p.exists()):  # skip runs not started
        add((res.stem.rsplit("-", 1)[0], REFERENCE), res.read_text().splitlines())
    return curves


def read_losses(out: Path) -> dict[tuple[str, str], dict[int, list[float]]]:
    """{(dataset, agent): {update: [training action MSE per dimension, per seed]}}.

    Ours: TensorBoard's ``train/loss`` (masked MSE averaged over real steps and action dimensions; divided by the
    action size for a run with ``loss_reduction: sum``, whose loss is summed over them). d3rlpy: its
    ``loss.csv`` (per 100-update epoch: squared error summed over action dimensions, averaged over the window's
    steps), divided by the action size. d3rlpy also averages over padded steps (as zeros), under 1 % of steps for
    1000-step episodes and K=20, so its figure is at most ~1 % low.
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses: dict[tuple[str, str], dict[int, list[float]]] = {}
    for tb in sorted(p for p in (out / "ours").glob("*/tb") if p.exists()):
        name, agent, _ = tb.parent.name.rsplit("-", 2)
        config = tb.parent / "config.yaml"
        summed = config.exists() and (yaml.safe_load(config.read_text()) or {}).get("loss_reduction") == "sum"
        ea = EventAccumulator(str(tb))
        ea.Reload()
        if "train/loss" in ea.Tags()["scalars"]:
            for e in ea.Scalars("train/loss"):
                value = e.value / ACT_DIMS[env_key(name)] if summed else e.value
                losses.setdefault((name, agent), {}).setdefault(e.step, []).append(value)
    for logs in sorted((out / "d3rlpy").glob("*-logs")):
        name = logs.name.removesuffix("-logs").rsplit("-", 1)[0]
        act_dim = ACT_DIMS[env_key(name)]
        run: dict[int, float] = {}  # one value per step per run, a resumed part ("-from{N}") counting from N
        for csv in sorted(logs.glob("*/loss.csv")):
            rows = (line.split(",") for line in csv.read_text().split())
            run.update({part_start(csv.parent) + int(step): float(value) / act_dim for _, step, value in rows})
        for step, value in run.items():
            losses.setdefault((name, REFERENCE), {}).setdefault(step, []).append(value)
    return losses


def markdown(curves: dict[tuple[str, str], dict[int, list[float]]], steps: list[int], fmt: str) -> str:
    head = "| dataset | agent | seeds | " + " | ".join(f"{s:,} updates" for s in steps) + " |"
    lines = [head, "|" + "---|" * (3 + len(steps))]
    for (name, agent), c in sorted(curves.items()):
        cells = [(fmt.format(np.mean(c[s]), np.std(c[s])) + f" ({len(c[s])})") if c.get(s) else "" for s in steps]
        lines.append(f"| {name} | {agent} | {max(len(v) for v in c.values())} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def outside(x: float, low: float, high: float) -> float:
    """How far ``x`` lies outside [low, high]: 0 inside, positive above, negative below."""
    return x - high if x > high else x - low if x < low else 0.0


def spread_check(curves: dict[tuple[str, str], dict[int, list[float]]]) -> tuple[str, dict]:
    """Where each of our agents' mean score lies against the reference's seeds, at every update count both have.

    Two readings of "within the reference's seed spread", both given: its mean ± one standard deviation (over
    seeds, ddof 0, as the tables print it) and the range of its seeds (lowest to highest). Each cell is the distance
    outside each band, "in" when inside; a count row per agent says at how many points the mean is inside a band or
    above it. Returns (Markdown, {"dataset|agent": {update: {"ours", "std_band", "range_band"}}}).
    """
    steps = sorted({s for c in curves.values() for s in c})
    head = "| dataset | agent | " + " | ".join(f"{s:,} updates" for s in steps) + " | inside or above |"
    lines = [head, "|" + "---|" * (3 + len(steps))]
    data: dict[str, dict] = {}
    for (name, agent), c in sorted(curves.items()):
        ref = curves.get((name, REFERENCE))
        if agent == REFERENCE or not ref:
            continue
        row, hits, points = [], [0, 0], 0
        for s in steps:
            if not c.get(s) or len(ref.get(s, [])) < 2:
                row.append("")
                continue
            ours, r = float(np.mean(c[s])), np.asarray(ref[s])
            d_std = outside(ours, r.mean() - r.std(), r.mean() + r.std())
            d_range = outside(ours, r.min(), r.max())
            data.setdefault(f"{name}|{agent}", {})[s] = {"ours": ours, "std_band": d_std, "range_band": d_range}
            row.append(" / ".join("in" if d == 0 else f"{d:+.1f}" for d in (d_std, d_range)))
            hits[0] += d_std >= 0
            hits[1] += d_range >= 0
            points += 1
        if points:
            lines.append(f"| {name} | {agent} | " + " | ".join(row) + f" | {hits[0]} / {hits[1]} of {points} |")
    return "\n".join(lines), data


def cmd_table(args: argparse.Namespace) -> None:
    curves = read_curves(args.out)
    losses = read_losses(args.out)
    steps = sorted({s for c in curves.values() for s in c})
    loss_steps = [s for s in (200, 500, 1000, 2000, 3000, 5000) if any(s in c for c in losses.values())]
    table = (
        "Score at target (D4RL-normalised, mean ± std over seeds, (seeds)):\n\n"
        + markdown(curves, steps, "{:.1f} ± {:.1f}")
        + "\n\nTraining action MSE per dimension (mean ± std over seeds):\n\n"
        + markdown(losses, loss_steps, "{:.3f} ± {:.3f}")
    )
    check_md, check = spread_check(curves)
    if check:
        table += (
            f"\n\nOur mean score against {REFERENCE}'s seeds: distance outside its mean ± std / outside the range "
            'of its seeds ("in": inside; negative: below):\n\n' + check_md
        )
    print(table)
    (args.out / "parity.md").write_text(table + "\n")
    data = {"score": {f"{k[0]}|{k[1]}": v for k, v in curves.items()},
            "loss": {f"{k[0]}|{k[1]}": v for k, v in losses.items()}, "spread_check": check}  # fmt: skip
    (args.out / "parity.json").write_text(json.dumps(data, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k[0] for k in curves})
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for (n, agent), c in sorted(curves.items()):
            if n != name:
                continue
            xs = sorted(c)
            mean = np.array([np.mean(c[s]) for s in xs])
            std = np.array([np.std(c[s]) for s in xs])
            ax.plot(xs, mean, marker="o", label=agent)
            ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
        ax.set(title=name, xlabel="updates", ylabel="D4RL-normalised score")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "parity.png", dpi=110)
    print(f"wrote {args.out / 'parity.md'}, parity.json and parity.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write D4RL-layout files from Minari datasets")
    e.add_argument("--datasets", nargs="+", required=True, help="Minari ids, e.g. minrnn/hopper/medium-v0")
    r = sub.add_parser("run", help="train and evaluate both sides")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--steps", type=int, default=3000)
    r.add_argument("--eval-every", type=int, default=1000)
    r.add_argument("--episodes", type=int, default=10)
    r.add_argument("--agents", nargs="*", default=["dt"],
                   help="dt and/or backbones: mingru, minlstm (none: the d3rlpy side only)")  # fmt: skip
    r.add_argument("--d3rlpy-python", default="", help="python of a venv with d3rlpy 2.8 (omit: our side only)")
    r.add_argument("--jobs", type=int, default=2, help="runs at once (each uses one thread)")
    r.add_argument("--only", nargs="+", default=[], help="only these files of OUT/data, by stem (halfcheetah-medium)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for our side's runs (repeatable; needs --variant)")  # fmt: skip
    r.add_argument("--variant", default="", help="with --set: the runs are the table's row AGENT_VARIANT")
    t = sub.add_parser("table", help="tabulate and plot score against updates")
    for q in (e, r, t):
        q.add_argument("--out", type=Path, default=Path("runs/parity"))
    args = p.parse_args(argv)
    {"export": cmd_export, "run": cmd_run, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
