#!/usr/bin/env python
"""minrnn-rl command line: train, evaluate, collect datasets, list datasets, benchmark.

    python run_rl.py train --dataset minari:minrnn/hopper/medium-v0 --backbone mingru --out runs/hopper-mingru
    python run_rl.py train --config configs/hopper-medium.yaml --backbone transformer --seed 1 --out runs/dt
    python run_rl.py eval --checkpoint runs/hopper-mingru --episodes 10
    python run_rl.py collect --help
    python run_rl.py datasets
    python run_rl.py bench agents

Every TrainConfig key is a flag (``--context-len 40``) and can also be set with ``--set context_len=40``.
Errors print one line and exit non-zero; ``--debug`` shows the traceback.

Multi-process (DistributedDataParallel; gloo on CPU, nccl on GPU; effective batch = batch_size x processes):

    torchrun --nproc_per_node=4 run_rl.py train --config configs/hopper-medium.yaml --out runs/ddp
"""

from __future__ import annotations

import os

# Before any torch import: idle OpenMP threads then sleep, not spin (spinning: 2 threads 10-200x slower on a busy CPU)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# MKL results must not depend on memory alignment, or `eval` of a checkpoint would not reproduce train's score
# bit-for-bit (seen with recurrent acting: returns off by 1e-8)
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")

import argparse
import dataclasses
import difflib
import json
import sys
import time
import typing
from pathlib import Path
from typing import Any

EXIT_ERROR = 2


class CLIError(Exception):
    """A user error found while parsing the command line."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser that raises CLIError instead of printing usage and exiting."""

    def error(self, message: str) -> typing.NoReturn:
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")


# --- train --------------------------------------------------------------------------------------------------
def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (dashes for underscores), all defaulting to None (= not given)."""
    from agents.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    group = p.add_argument_group("config keys (each overrides the --config file; see configs/base.yaml)")
    comments = _field_comments()
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{comments.get(f.name, '')} (default: {_show(f.default)})"
        if hints[f.name] is bool:
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(hints[f.name]) is tuple:
            group.add_argument(flag, dest=f.name, nargs="+", default=None, metavar="R", help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def _show(value: Any) -> str:
    return "[]" if value == () else str(value)


def _field_comments() -> dict[str, str]:
    """The ``# comment`` after each TrainConfig field, for --help."""
    import inspect

    from agents import config

    out = {}
    for line in inspect.getsource(config.TrainConfig).splitlines():
        line = line.strip()
        if ":" in line and "#" in line and not line.startswith("#"):
            name = line.split(":", 1)[0].strip()
            out[name] = line.split("#", 1)[1].strip().replace("%", "%%")
    return out


def build_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train", help="train a Decision agent on an offline dataset",
        description="Train a Decision agent (DT layout over a transformer/minGRU/minLSTM/GRU/LSTM backbone), "
        "evaluate it periodically, log to TensorBoard and checkpoint into --out.",
    )  # fmt: skip
    p.add_argument("--config", help="YAML config file (optional; e.g. configs/hopper-medium.yaml)")
    p.add_argument("--out", help="run directory (default: runs/<env>-<backbone>-<layout>-seed<seed>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set context_len=40 (repeatable)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="delete an existing --out before training")
    _common(p)
    _add_config_flags(p)


def _explicit_values(args: argparse.Namespace) -> dict[str, Any]:
    """Config keys given on the command line: flags first, then --set (which wins)."""
    from agents.config import config_keys, parse_override

    values = {k: getattr(args, k) for k in config_keys() if getattr(args, k, None) is not None}
    values.update(parse_override(o) for o in args.overrides)
    return values


def resolve_train_config(args: argparse.Namespace) -> Any:
    """defaults <- saved config (with --resume) <- --config file <- flags and --set."""
    from agents.config import TrainConfig, apply_overrides, load_yaml

    values: dict[str, Any] = {}
    if args.resume and args.out:
        saved = Path(args.out) / "config.yaml"
        if saved.is_file():
            values.update(load_yaml(saved))
    if args.config:
        values.update(load_yaml(args.config))
    values.update(_explicit_values(args))
    return apply_overrides(TrainConfig(), values).validate()


def cmd_train(args: argparse.Namespace) -> int:
    from agents.distributed import process_group
    from agents.trainer import train
    from envs.make import resolve_env_id

    cfg = resolve_train_config(args)
    if args.resume and not args.out:
        raise CLIError("--resume needs --out RUN_DIR (the run to continue)")
    if args.out:
        out = Path(args.out)
    else:
        env = resolve_env_id(cfg.env) if cfg.env else Path(cfg.dataset.split(":", 1)[-1]).stem.replace("/", "-")
        out = Path("runs") / f"{env}-{cfg.backbone}-{cfg.layout}-seed{cfg.seed}"
    # under torchrun (RANK, WORLD_SIZE, ... set): DistributedDataParallel over the ranks; else one process
    with process_group(cfg.device) as dist:
        results = train(cfg, out, resume=args.resume, overwrite=args.overwrite, dist=dist)
    if dist.is_main:
        _print_results(results, out)
        print(f"TensorBoard: tensorboard --logdir {out / 'tb'}")
    return 0


def _print_results(results: dict[str, Any], out: Path) -> None:
    print(
        f"normalized score {results['normalized_score_mean']:.1f} +- {results['normalized_score_std']:.1f} "
        f"(return {results['return_mean']:.1f} +- {results['return_std']:.1f}, {results['episodes']} episodes, "
        f"target {results['target_return']:g}, {results['acting_mode']} acting, "
        f"reference {results['score_reference']}); results: {out / 'results.json'}"
    )


# --- eval -----------------------------------------------------------------------------------------------------
def build_eval_parser(sub: Any) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a trained checkpoint",
        description="Roll out a checkpoint on vectorised environments and write results.json. With the "
        "defaults (the run's eval seed, episodes, envs and targets) it reproduces the score train recorded.",
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint folder")
    p.add_argument("--which", default="latest", choices=("latest", "best"), help="which checkpoint of a run")
    p.add_argument("--episodes", type=int, help="episodes per target (default: the run's eval_episodes)")
    p.add_argument("--envs", type=int, help="parallel environments (default: the run's eval_envs)")
    p.add_argument("--seed", type=int, help="episode k uses reset seed SEED + k (default: the run's eval_seed)")
    p.add_argument("--acting-mode", choices=("window", "recurrent"), help="default: the run's acting_mode")
    p.add_argument("--targets", type=float, nargs="+", help="target returns (default: the run's)")
    p.add_argument("--max-steps", type=int, help="episode cap (default: the run's eval_max_steps)")
    p.add_argument("--out", help="where to write results.json (default: RUN/evals/<time>-<mode>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    _common(p)


def cmd_eval(args: argparse.Namespace) -> int:
    from agents.checkpoint import atomic_write_text
    from agents.config import apply_overrides
    from agents.trainer import evaluate_model, load_model, prepare_run_dir, results_dict

    model, cfg, meta = load_model(args.checkpoint, args.which)
    changes = {"acting_mode": args.acting_mode, "eval_max_steps": args.max_steps}
    cfg = apply_overrides(cfg, {k: v for k, v in changes.items() if v is not None}).validate()
    targets = tuple(args.targets) if args.targets else tuple(meta["targets"])
    folder = Path(meta["checkpoint_path"])
    run_dir = _run_dir_of(Path(args.checkpoint))
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.resolved_acting_mode()}"
    out = Path(args.out) if args.out else run_dir / "evals" / stamp
    out = prepare_run_dir(out, resume=False, overwrite=args.overwrite)
    t0 = time.perf_counter()
    evaluation = evaluate_model(model, cfg, meta["store"], targets, args.episodes, args.envs, args.seed)
    extra = {"checkpoint": str(folder), "which": args.which, "train_step": meta["step"]}
    results = results_dict(cfg, evaluation, meta["step"], time.perf_counter() - t0, extra)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    _print_results(results, out)
    return 0


def _run_dir_of(path: Path) -> Path:
    """The run directory above a checkpoint folder, or the path itself."""
    if (path / "state.json").is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return path


# --- datasets, collect, bench -------------------------------------------------------------------------------------
def build_datasets_parser(sub: Any) -> None:
    p = sub.add_parser(
        "datasets",
        help="list local Minari datasets or inspect one",
        description="List the Minari datasets found locally, or summarise one dataset spec.",
    )
    p.add_argument("--root", help="datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    p.add_argument("--inspect", metavar="SPEC", help="summarise one dataset, e.g. d4rl:/data/hopper.hdf5")
    _common(p)


def cmd_datasets(args: argparse.Namespace) -> int:
    from envs import format_table, list_local_datasets, load_dataset

    if args.inspect:
        print(json.dumps(load_dataset(args.inspect).summary(), indent=1))
        return 0
    rows = list_local_datasets(args.root)
    if not rows:
        print("no local datasets; make one with `python run_rl.py collect --help`")
        return 0
    print(format_table(rows))
    return 0


def build_collect_parser(sub: Any) -> None:
    p = sub.add_parser(
        "collect",
        help="generate a dataset from a shipped behaviour policy",
        description="Roll out a behaviour policy and write a Minari dataset (agents/recipes.py).",
    )
    _common(p)
    try:
        from agents.recipes import add_collect_args
    except ImportError:
        p.set_defaults(collect_missing=True)
        return
    add_collect_args(p)


def cmd_collect(args: argparse.Namespace) -> int:
    if getattr(args, "collect_missing", False):
        raise CLIError("collect is not available in this checkout: agents/recipes.py is missing")
    from agents.recipes import run_collect

    result = run_collect(args)
    return int(result) if isinstance(result, int) else 0


def build_bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks: scans (minrnn) and agents", description="Benchmarks.")
    bench_sub = p.add_subparsers(dest="bench_what", required=True, parser_class=Parser)
    scan = bench_sub.add_parser("scan", help="scan back-ends (forwards the rest to minrnn.bench)", add_help=False)
    scan.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for minrnn.bench")
    scan.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    agents = bench_sub.add_parser("agents", help="training-step time and acting latency per backbone and layout")
    from agents.bench import add_bench_args

    add_bench_args(agents)
    _common(agents)


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_what == "scan":
        from minrnn.bench import main as scan_main

        result = scan_main(list(args.rest))
        return int(result) if isinstance(result, int) else 0
    from agents.bench import run_bench

    run_bench(args)
    return 0


# --- quickstart ---------------------------------------------------------------------------------------------
def build_quickstart_parser(sub: Any) -> None:
    p = sub.add_parser(
        "quickstart", help="build a small dataset, train and evaluate a Decision-minGRU (a few minutes on 2 cores)",
        description="Collect a 50k-transition hopper-medium dataset from the shipped behaviour policy (once), train "
        "configs/quickstart.yaml, print the normalised score and where to point TensorBoard.",
    )  # fmt: skip
    p.add_argument("--out", default="runs/quickstart", help="run directory (a free name is chosen if it exists)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of configs/quickstart.yaml")  # fmt: skip
    _common(p)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from agents.quickstart import run_quickstart

    results = run_quickstart(args.out, args.overrides)
    out = Path(results["run_dir"])
    _print_results(results, out)
    print(f"TensorBoard: tensorboard --logdir {out / 'tb'}")
    return 0


# --- main -------------------------------------------------------------------------------------------------------
COMMANDS = {
    "train": cmd_train,
    "eval": cmd_eval,
    "datasets": cmd_datasets,
    "collect": cmd_collect,
    "bench": cmd_bench,
    "quickstart": cmd_quickstart,
}


def build_parser() -> Parser:
    parser = Parser(
        prog="run_rl.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for build in (
        build_quickstart_parser,
        build_train_parser,
        build_eval_parser,
        build_collect_parser,
        build_datasets_parser,
    ):
        build(sub)
    build_bench_parser(sub)
    for p in sub.choices.values():
        p.allow_abbrev = False
    return parser


def _unknown_flags(parser: Parser, unknown: list[str], command: str) -> CLIError:
    """One-line error for unknown flags, suggesting the closest valid one."""
    sub = parser._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    valid = sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--"))
    flag = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=", 1)[0]
    close = difflib.get_close_matches(flag, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return CLIError(f"unknown option {flag!r}{hint}; valid options: {' '.join(valid)}")


def _attach_negative_numbers(argv: list[str]) -> list[str]:
    """``--lr -1e-4`` -> ``--lr=-1e-4``: argparse takes "-1e-4" for an option, so the value would go missing."""
    out: list[str] = []
    for tok in argv:
        prev = out[-1] if out else ""
        if tok.startswith("-") and prev.startswith("--") and "=" not in prev and _is_number(tok):
            out[-1] = f"{prev}={tok}"
        else:
            out.append(tok)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        if argv[:2] == ["bench", "scan"]:  # pass everything after "bench scan" through untouched
            args = argparse.Namespace(command="bench", bench_what="scan", rest=[a for a in argv[2:] if a != "--debug"])
        else:
            args, unknown = parser.parse_known_args(_attach_negative_numbers(argv))
            if unknown:
                raise _unknown_flags(parser, unknown, args.command)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if type(err).__name__ == "PeerError" and not debug:  # another rank failed and reported it: stay quiet
            return EXIT_ERROR  # one line, no traceback, non-zero exit (issue 6); --debug re-raises
        if debug:
            raise
        msg = " ".join(str(err).split()) or type(err).__name__  # one line, whatever the message holds
        kind = (
            ""
            if isinstance(err, (CLIError, ValueError, FileNotFoundError, FileExistsError, PermissionError))
            else f"{type(err).__name__}: "
        )
        print(f"error: {kind}{msg}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
