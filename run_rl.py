#!/usr/bin/env python
"""minrnn-rl command line: train, evaluate, collect datasets, list datasets, benchmark.

    python run_rl.py train --dataset minari:minrnn/hopper/medium-v0 --backbone mingru --out runs/hopper-mingru
    python run_rl.py train --config configs/hopper-medium.yaml --backbone transformer --seed 1 --out runs/dt
    python run_rl.py train --config dt --config hopper-medium --out runs/hopper-dt    # configs/NAME.yaml
    python run_rl.py eval --checkpoint runs/hopper-mingru --episodes 10
    python run_rl.py collect --help
    python run_rl.py datasets
    python run_rl.py datasets --export minari:minrnn/hopper/medium-v0 hopper-medium.hdf5   # D4RL layout
    python run_rl.py bench agents

Every TrainConfig key is a flag (``--context-len 40``; tyro parses the dataclass) and can also be set with
``--set context_len=40``.
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
    """ArgumentParser that raises CLIError instead of printing usage and exiting, and lists its own --flags."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: list[str] = []  # every --flag added, for "did you mean" (filled by add_argument)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        self.flags += [a for a in args if isinstance(a, str) and a.startswith("--")]
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")


# --- train --------------------------------------------------------------------------------------------------
# Every TrainConfig field is a flag (--context-len 40, --no-progress, --target-returns 3600 1800): tyro parses the
# dataclass itself, starting from the config that the --config files and --set give, so a boolean not given keeps
# the value a file set. A value tyro refuses is read again the way --set reads it, for the same message.
#: The shipped configs; ``--config NAME`` with a bare NAME means ``CONFIGS_DIR / "NAME.yaml"``.
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"


def resolve_config_path(name: str) -> Path:
    """The YAML file ``--config name`` means: an existing path as given, else the shipped ``configs/<name>.yaml``;
    FileNotFoundError naming the shipped configs when neither exists."""
    from agents.config import did_you_mean

    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIGS_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if name == path.name and shipped.is_file():  # a bare name, not a path to a missing file
        return shipped
    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    raise FileNotFoundError(
        f"config file {name!r} not found (no such file, and no configs/{shipped.name}){did_you_mean(path.stem, names)}"
        f"; pass a YAML path or one of the shipped configs: {', '.join(names)}"
    )


def config_flag_names() -> list[str]:
    """Every config flag, --no-<key> for booleans included."""
    from agents.config import TrainConfig

    names = []
    for f in dataclasses.fields(TrainConfig):
        names.append("--" + f.name.replace("_", "-"))
        if isinstance(f.default, bool):
            names.append("--no-" + f.name.replace("_", "-"))
    return names


def parse_config_flags(argv: list[str], base: Any, valid: list[str]) -> Any:
    """``base`` (a TrainConfig) with the config flags in ``argv`` applied by tyro."""
    import contextlib
    import io

    import tyro

    if argv and not argv[0].startswith("--"):
        raise CLIError(f"unexpected argument {argv[0]!r}: train takes only --flags (see `run_rl.py train --help`)")
    unknown = [t.split("=", 1)[0] for t in argv if t.startswith("--") and t.split("=", 1)[0] not in valid]
    if unknown:
        raise _unknown_flags(valid, unknown)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # tyro prints a box when building the config fails
            return tyro.cli(type(base), default=base, args=argv, console_outputs=False)
    except SystemExit:
        raise _refused_flags(argv, base) from None


def _refused_flags(argv: list[str], base: Any) -> Exception:
    """Why tyro refused the config flags in ``argv``: their values read as ``--set`` reads them give the same
    ValueError (a mistyped value, a bad choice, a failed check); else a CLIError on the form of the flags."""
    from agents.config import apply_overrides

    words: dict[str, list[str]] = {}
    for token in argv:  # parse_config_flags checked that argv starts with a flag
        if token.startswith("--"):
            name, eq, text = token[2:].partition("=")
            key = name.replace("-", "_")
            words[key] = [text] if eq else []
        else:
            words[key].append(token)
    values: dict[str, Any] = {}
    for key, given in words.items():
        if key.startswith("no_") and not given:
            values[key[3:]] = "false"
        else:
            values[key] = given[0] if len(given) == 1 else given or "true"
    try:
        apply_overrides(base, values)
    except ValueError as err:
        return err
    return CLIError(
        f"cannot read the config flags {' '.join(argv)!r}: each takes one value (--target-returns one or more, a "
        "boolean none: --bf16 or --no-bf16); see `run_rl.py train --help`"
    )


def print_config_flags_help() -> None:
    """tyro's help for the config flags (after argparse's for train's own options, whose usage line is the one)."""
    import contextlib
    import io

    import tyro

    from agents.config import TrainConfig

    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        tyro.cli(TrainConfig, default=TrainConfig(), args=["--help"], prog="run_rl.py train", description="")
    body = text.getvalue().lstrip("\n")
    if body.startswith("usage:"):
        body = body.split("\n", 1)[-1].lstrip("\n")
    print("\nconfig keys (each overrides the --config file; defaults: agents/config.py TrainConfig):")
    print(body, end="")


def build_train_parser(sub: Any) -> Parser:
    p = sub.add_parser(
        "train", help="train a Decision agent on an offline dataset", add_help=False,
        description="Train a Decision agent (DT layout over a transformer/minGRU/minLSTM/GRU/LSTM backbone), "
        "evaluate it periodically, log to TensorBoard and checkpoint into --out.",
    )  # fmt: skip
    p.add_argument("-h", "--help", action="store_true", help="show this help, every config key included, and exit")
    p.add_argument("--config", action="append", default=[], metavar="CONFIG",
                   help="YAML config file, or the name of a shipped one (configs/NAME.yaml: dt, hopper-medium, ...); "
                   "repeatable, later files override earlier ones (--config dt --config hopper-medium)")  # fmt: skip
    p.add_argument("--out", help="run directory (default: runs/<env>-<backbone>-<layout>-seed<seed>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set context_len=40 (repeatable)")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in an existing run directory --out: the old run is moved aside to "
                   "OUT.old-<time>, nothing is deleted; any other folder is refused")  # fmt: skip
    _common(p)
    return p


def resolve_train_config(args: argparse.Namespace) -> Any:
    """defaults <- saved config (with --resume) <- --config files, in order <- config flags <- --set."""
    from agents.config import TrainConfig, apply_overrides, load_yaml, parse_override

    values: dict[str, Any] = {}
    if args.resume and args.out:
        saved = Path(args.out) / "config.yaml"
        if saved.is_file():
            values.update(load_yaml(saved))
    for name in args.config:
        values.update(load_yaml(resolve_config_path(name)))
    overrides = dict(parse_override(o) for o in args.overrides)
    files = apply_overrides(TrainConfig(), {**values, **overrides})  # --set here too: the flags meet its values
    return apply_overrides(parse_config_flags(args.config_flags, files, args.valid_flags), overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from agents.distributed import process_group
    from agents.preempt import Preempted
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
        try:
            results = train(cfg, out, resume=args.resume, overwrite=args.overwrite, dist=dist)
        except Preempted as stop:  # SIGTERM/SIGUSR1/SIGINT: the checkpoint at this step is written (agents/preempt.py)
            if dist.is_main:
                print(f"{stop}; continue with: python run_rl.py train --out {out} --resume", flush=True)
            return stop.exit_code
    if dist.is_main:
        _print_results(results, out)
        print(
            f"last evaluation (step {results['last']['step']}, {results['train_min']:.1f} train min, "
            f"{results['stop_reason']}): {results['last']['score']:.1f}; best {results['best']['score']:.1f} "
            f"(step {results['best']['step']}); mean of the last 3: {results['mean_last3']:.1f}"
        )
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
def build_eval_parser(sub: Any) -> Parser:
    p = sub.add_parser(
        "eval", help="evaluate a trained checkpoint",
        description="Roll out a checkpoint on vectorised environments and write results.json. With the "
        "defaults (the run's eval seed, episodes, envs and targets) it reproduces the score train recorded.",
    )  # fmt: skip
    p.add_argument("--checkpoint", required=True, help="run directory or checkpoint folder")
    p.add_argument("--which", default="latest", choices=("latest", "best"), help="which checkpoint of a run")
    # the names of train's config keys for the same things; the shorter spellings stay as aliases
    p.add_argument("--eval-episodes", "--episodes", dest="episodes", type=int, metavar="N",
                   help="episodes per target (default: the run's final_eval_episodes)")  # fmt: skip
    p.add_argument("--eval-envs", "--envs", dest="envs", type=int, metavar="N",
                   help="parallel environments (default: the run's eval_envs)")  # fmt: skip
    p.add_argument("--eval-seed", "--seed", dest="seed", type=int, metavar="SEED",
                   help="episode k uses reset seed SEED + k (default: the run's eval_seed)")  # fmt: skip
    p.add_argument("--acting-mode", choices=("window", "recurrent"), help="default: the run's acting_mode")
    p.add_argument("--target-returns", "--targets", dest="targets", type=_target_arg, nargs="+", metavar="R",
                   help="target returns: numbers and/or data_max, the best episode return of the run's training "
                   "data (default: the run's)")  # fmt: skip
    p.add_argument("--eval-max-steps", "--max-steps", dest="max_steps", type=int, metavar="N",
                   help="episode cap (default: the run's eval_max_steps)")  # fmt: skip
    p.add_argument("--out", help="where to write results.json (default: RUN/evals/<time>-<mode>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out written by eval (moved aside to OUT.old-<time>) and an existing "
                   "--save-dataset")  # fmt: skip
    p.add_argument(
        "--video",
        action="store_true",
        help="also write MP4s of the first --video-episodes episodes (headline target) to OUT/videos/",
    )
    p.add_argument(
        "--video-episodes",
        type=int,
        default=1,
        help="episodes to film (cost: ~90 s per 1000 frames at 320x240 on a 2-core CPU)",
    )
    p.add_argument("--video-size", default="320x240", help="WIDTHxHEIGHT of the videos, multiples of 16")
    p.add_argument("--save-dataset", metavar="NAME",
                   help="also write --episodes rollouts (headline target) as the Minari dataset NAME, e.g. "
                   "minrnn/hopper/mingru-eval-v0; --overwrite replaces an existing one")  # fmt: skip
    _common(p)
    return p


#: The largest --video-size side: far above any useful video, and below what an offscreen GL buffer refuses.
MAX_VIDEO_SIDE = 4096


def _video_size(text: str) -> tuple[int, int]:
    """(width, height) from "WIDTHxHEIGHT", each a multiple of 16 up to MAX_VIDEO_SIDE; CLIError otherwise."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CLIError(f"--video-size must look like WIDTHxHEIGHT, e.g. 320x240; got {text!r}") from None
    if not (16 <= w <= MAX_VIDEO_SIDE and 16 <= h <= MAX_VIDEO_SIDE) or w % 16 or h % 16:
        raise CLIError(
            f"--video-size {text}: width and height must be multiples of 16 (H.264 macro blocks) from 16 to "
            f"{MAX_VIDEO_SIDE}; e.g. 320x240 or 160x128"
        )
    return w, h


def _check_eval_args(args: argparse.Namespace) -> None:
    """CLIError for a bad eval option, before any checkpoint is loaded or episode rolled out."""
    for flag, value in (("--eval-episodes", args.episodes), ("--eval-envs", args.envs),
                        ("--eval-max-steps", args.max_steps), ("--video-episodes", args.video_episodes)):  # fmt: skip
        if value is not None and value < 1:
            raise CLIError(f"{flag} must be >= 1, got {value}")
    _video_size(args.video_size)


def _check_dataset_name(name: str, env_id: str, overwrite: bool) -> None:
    """Refuse --save-dataset before any rollout: a bad Minari id, an env without D4RL scores, an existing dataset."""
    import re

    from envs.datasets import minari_root
    from envs.scores import d4rl_reference

    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*-v\d+", name):
        raise CLIError(f"--save-dataset {name!r}: Minari ids look like 'namespace/name-v0', e.g. minrnn/hopper/x-v0")
    try:
        d4rl_reference(env_id)  # the dataset stores D4RL's reference scores (envs/collect.py write_dataset)
    except ValueError:
        raise CLIError(
            f"--save-dataset: env {env_id!r} has no D4RL reference scores, which a saved dataset records; only "
            "the D4RL MuJoCo envs (Hopper, HalfCheetah, Walker2d) are supported"
        ) from None
    if (minari_root() / name).exists() and not overwrite:
        raise FileExistsError(
            f"dataset {name} already exists at {minari_root() / name}; pass --overwrite to replace it, or choose "
            "another --save-dataset name"
        )


def cmd_eval(args: argparse.Namespace) -> int:
    from agents.evaluation import resolve_targets
    from agents.rundir import claim_run_dir, unique_dir
    from agents.trainer import load_model
    from envs.store import StoreInfo

    _check_eval_args(args)
    if args.video:  # MUJOCO_GL=egl on a headless machine: before MuJoCo is first imported (envs/video.py)
        import envs.video  # noqa: F401
    size = _video_size(args.video_size)
    model, cfg, meta = load_model(args.checkpoint, args.which)
    changes = {"acting_mode": args.acting_mode, "eval_max_steps": args.max_steps}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})
    info = StoreInfo.from_dict(meta["store"])
    run_dir = _run_dir_of(Path(args.checkpoint))
    targets = tuple(meta["targets"])
    if args.targets:
        targets = resolve_targets(args.targets, info.env_id, info.return_max or _data_max_of(run_dir))
    episodes = cfg.final_eval_episodes if args.episodes is None else args.episodes
    seed = cfg.eval_seed if args.seed is None else args.seed
    if args.save_dataset:
        _check_dataset_name(args.save_dataset, info.env_id, args.overwrite)
    folder = Path(meta["checkpoint_path"])
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.resolved_acting_mode()}"
    out = Path(args.out) if args.out else unique_dir(run_dir / "evals", stamp)  # two evals never share a folder
    with claim_run_dir(out, resume=False, overwrite=args.overwrite, keep=(folder,), resumable=False):
        return _evaluate_into(out, args, model, cfg, meta, info, targets, episodes, seed, size)


def _evaluate_into(
    out: Path, args: argparse.Namespace, model: Any, cfg: Any, meta: dict[str, Any], info: Any,
    targets: tuple[float, ...], episodes: int, seed: int, size: tuple[int, int],
) -> int:  # fmt: skip
    """eval's rollouts, videos and dataset into ``out``, whose lock the caller holds."""
    from agents.checkpoint import atomic_write_text
    from agents.evaluation import evaluate_model
    from agents.policy import DecisionPolicy
    from agents.rundir import results_dict

    folder = Path(meta["checkpoint_path"])
    t0 = time.perf_counter()
    evaluation = evaluate_model(model, cfg, info, targets, episodes, args.envs, seed)
    extra: dict[str, Any] = {"checkpoint": str(folder), "which": args.which, "train_step": meta["step"]}

    def policy() -> Any:  # a fresh one per use: the headline target, the evaluation's acting mode
        return DecisionPolicy(model, targets[0], cfg.resolved_acting_mode(), cfg.context_len)

    if args.video:  # same seeds as the evaluation: video_returns equal its first K returns
        from envs.video import record_video

        vid = record_video(policy(), info.env_id, out / "videos", n_episodes=args.video_episodes, seed=seed,
                           max_steps=cfg.eval_max_steps, width=size[0], height=size[1])  # fmt: skip
        extra.update(videos=[str(p) for p in vid.paths], video_returns=vid.returns.tolist())
    if args.save_dataset:
        from envs.collect import save_rollouts

        metadata = {"policy": f"{cfg.backbone}/{cfg.layout}/{cfg.resolved_acting_mode()}",
                    "target_return": float(targets[0]), "checkpoint": str(folder), "train_step": meta["step"],
                    "run_config": cfg.to_dict()}  # fmt: skip
        saved = save_rollouts(policy(), info.env_id, args.save_dataset, n_episodes=episodes, seed=seed,
                              max_steps=cfg.eval_max_steps, metadata=metadata, overwrite=args.overwrite)  # fmt: skip
        extra["saved_dataset"] = {"spec": f"minari:{args.save_dataset}", "path": str(saved.path),
                                  "returns": saved.returns.tolist()}  # fmt: skip
    results = results_dict(cfg, evaluation, meta["step"], time.perf_counter() - t0, extra)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    _print_results(results, out)
    for path in results.get("videos", []):
        print(f"video: {path}")
    if args.save_dataset:
        spec = f"minari:{args.save_dataset}"
        print(f"dataset: {spec} ({episodes} episodes); train on it with --dataset {spec}")
    return 0


def _target_arg(text: str) -> float | str:
    """One ``--target-returns`` value: a finite number, or data_max."""
    import math

    from agents.config import DATA_MAX

    if text == DATA_MAX:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a target is a finite number or {DATA_MAX}, got {text!r}")
    return value


def _data_max_of(run_dir: Path) -> float | None:
    """The best episode return of a run's training data from its dataset.json (runs whose checkpoints predate
    StoreInfo.return_max), or None."""
    path = run_dir / "dataset.json"
    return json.loads(path.read_text()).get("return_max") if path.is_file() else None


def _run_dir_of(path: Path) -> Path:
    """The run directory above a checkpoint folder, or the path itself."""
    if (path / "state.json").is_file() and path.parent.name == "checkpoints":
        return path.parent.parent
    return path


# --- datasets, collect, bench -------------------------------------------------------------------------------------
def build_datasets_parser(sub: Any) -> Parser:
    p = sub.add_parser(
        "datasets",
        help="list local Minari datasets or inspect one",
        description="List the Minari datasets found locally, or summarise one dataset spec.",
    )
    p.add_argument("--root", help="datasets folder (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--inspect", metavar="SPEC", help="summarise one dataset, e.g. d4rl:/data/hopper.hdf5")
    what.add_argument(
        "--export",
        nargs=2,
        metavar=("SPEC", "FILE"),
        help="write a dataset in D4RL's HDF5 layout, for d3rlpy, CORL or any D4RL reader, e.g. "
        "--export minari:minrnn/hopper/medium-v0 hopper-medium.hdf5",
    )
    p.add_argument("--overwrite", action="store_true", help="with --export: replace an existing FILE")
    _common(p)
    return p


def cmd_datasets(args: argparse.Namespace) -> int:
    from envs import format_table, list_local_datasets, load_dataset

    if args.inspect:
        print(json.dumps(load_dataset(args.inspect).summary(), indent=1))
        return 0
    if args.export:
        from envs.export import write_d4rl

        spec, file = args.export
        store = load_dataset(spec)
        path = write_d4rl(store, file, overwrite=args.overwrite)
        print(f"wrote {path}: {store.num_episodes} episodes, {store.num_transitions} transitions of {store.env_id}")
        print(f"train on it: python run_rl.py train --config cpu-budget --backbone mingru --dataset d4rl:{path}")
        return 0
    rows = list_local_datasets(args.root)
    if not rows:
        print("no local datasets; make one with `python run_rl.py collect --help`")
        return 0
    print(format_table(rows))
    return 0


def build_collect_parser(sub: Any, full: bool = True) -> Parser:
    """collect's parser; its options (which import torch and the behaviour policies) only when ``full``."""
    p = sub.add_parser(
        "collect",
        help="generate a dataset from a shipped behaviour policy",
        description="Roll out a behaviour policy and write a Minari dataset (agents/behaviour/recipes.py).",
    )
    _common(p)
    if full:
        from agents.behaviour.recipes import add_collect_args

        add_collect_args(p)
    return p


def cmd_collect(args: argparse.Namespace) -> int:
    from agents.behaviour.recipes import run_collect

    result = run_collect(args)
    return int(result) if isinstance(result, int) else 0


def build_bench_parser(sub: Any, full: bool = True) -> Parser:
    """bench's parser; the options of ``bench agents`` (which import torch) only when ``full``."""
    p = sub.add_parser("bench", help="benchmarks: scans (minrnn) and agents", description="Benchmarks.")
    bench_sub = p.add_subparsers(dest="bench_what", required=True, parser_class=Parser)
    scan = bench_sub.add_parser("scan", help="scan back-ends (forwards the rest to minrnn.bench)", add_help=False)
    scan.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for minrnn.bench")
    scan.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    agents = bench_sub.add_parser("agents", help="training-step time and acting latency per backbone and layout")
    if full:
        from agents.bench import add_bench_args

        add_bench_args(agents)
    _common(agents)
    return agents


def cmd_bench(args: argparse.Namespace) -> int:
    if args.bench_what == "scan":
        from minrnn.bench import main as scan_main

        result = scan_main(list(args.rest))
        return int(result) if isinstance(result, int) else 0
    from agents.bench import run_bench

    run_bench(args)
    return 0


# --- quickstart ---------------------------------------------------------------------------------------------
def build_quickstart_parser(sub: Any) -> Parser:
    p = sub.add_parser(
        "quickstart", help="build a small dataset, train and evaluate a Decision-minGRU (a few minutes on 2 cores)",
        description="Collect a 50k-transition hopper-medium dataset from the shipped behaviour policy (once), train "
        "configs/quickstart.yaml, print the normalised score and where to point TensorBoard.",
    )  # fmt: skip
    p.add_argument("--out", default="runs/quickstart", help="run directory (a free name is chosen if it exists)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of configs/quickstart.yaml")  # fmt: skip
    _common(p)
    return p


def cmd_quickstart(args: argparse.Namespace) -> int:
    from agents.quickstart import run_quickstart

    results = run_quickstart(args.out, args.overrides)
    out = Path(results["run_dir"])
    _print_results(results, out)
    print(f"learning curve: {out / 'learning_curve.png'}")
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


def build_parser(command: str | None = None) -> tuple[Parser, dict[str, Parser]]:
    """The top-level parser and each command's parser. With ``command``, the other commands' options that need
    heavy imports (torch, the behaviour policies) are left out, so that ``--help`` and parsing stay fast."""
    parser = Parser(
        prog="run_rl.py", description=__doc__.split("\n\n")[0], allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    commands = {
        "quickstart": build_quickstart_parser(sub),
        "train": build_train_parser(sub),
        "eval": build_eval_parser(sub),
        "collect": build_collect_parser(sub, full=command in (None, "collect")),
        "datasets": build_datasets_parser(sub),
        "bench": build_bench_parser(sub, full=command in (None, "bench")),
    }
    for p in commands.values():
        p.allow_abbrev = False
    return parser, commands


def _unknown_flags(valid: list[str], unknown: list[str]) -> CLIError:
    """One-line error for unknown flags, suggesting the closest valid one."""
    flag = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=", 1)[0]
    close = difflib.get_close_matches(flag, valid, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return CLIError(f"unknown option {flag!r}{hint}; valid options: {' '.join(sorted(valid))}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line as a Namespace; train's config flags (``args.config_flags``) are parsed later by tyro."""
    if argv[:2] == ["bench", "scan"]:  # pass everything after "bench scan" through untouched
        return argparse.Namespace(command="bench", bench_what="scan", rest=[a for a in argv[2:] if a != "--debug"])
    parser, commands = build_parser(next((a for a in argv if not a.startswith("-")), ""))
    args, unknown = parser.parse_known_args(argv)
    if args.command == "train":
        args.valid_flags = commands["train"].flags + config_flag_names()
        if args.help:
            commands["train"].print_help()
            print_config_flags_help()
            raise SystemExit(0)
        args.config_flags = unknown
    elif unknown:
        raise _unknown_flags(commands[args.command].flags, unknown)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if type(err).__name__ == "PeerError" and not debug:  # another rank failed and reported it: stay quiet
            return EXIT_ERROR  # one line, no traceback, non-zero exit; --debug re-raises
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
