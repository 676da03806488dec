"""TrainConfig: every hyperparameter of a Decision-agent run, loaded from YAML and overridable on the CLI.

Defaults follow the Decision Transformer (Chen et al. 2021; kzl/decision-transformer gym/experiment.py) and live
in one place, the TrainConfig dataclass. A YAML file holds only the fields that differ, plus an optional ``base:``
key naming another YAML file (relative to it) whose values it extends. Overrides are ``key=value`` strings;
values are parsed as YAML scalars or lists and then checked against the field's type.

>>> cfg = load_config(None, ["backbone=minlstm", "target_returns=[3600, 1800]", "lr=3e-4"])
>>> cfg.backbone, cfg.target_returns, cfg.lr
('minlstm', (3600.0, 1800.0), 0.0003)
>>> load_config(None, ["contxt_len=5"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown config key 'contxt_len' (did you mean 'context_len'?); valid keys: ...
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The names minrnn builds (minrnn.blocks BACKBONES and ACTIVATIONS, minrnn.scan BACKENDS), spelled out so that
#: reading a config, and ``run_rl.py train --help``, do not import torch; tests/agents/test_config.py keeps them equal.
BACKBONES: tuple[str, ...] = ("mingru", "minlstm", "gru", "lstm", "transformer")
ACTIVATIONS: tuple[str, ...] = ("gelu", "relu")
SCAN_BACKENDS: tuple[str, ...] = ("auto", "sequential", "logspace", "cpu", "triton", "triton_chunked", "fla", "fla_fused")

__all__ = [
    "ACTING_MODES",
    "BACKBONE_NAMES",
    "CUDA_GRAPH_MODES",
    "DATA_MAX",
    "LOSS_REDUCTIONS",
    "LR_SCHEDULES",
    "BUDGET_CLOCKS",
    "ACTIVATION_NAMES",
    "BACKBONE_INITS",
    "DEFAULT_TARGETS",
    "EVAL_VECTORS",
    "CONFIGS_DIR",
    "LAYOUTS",
    "RECURRENT_BACKBONES",
    "TRAIN_MODES",
    "TrainConfig",
    "apply_overrides",
    "config_keys",
    "load_config",
    "load_yaml",
    "resolve_config_path",
    "resolve_targets",
]

BACKBONE_NAMES: tuple[str, ...] = BACKBONES  # minrnn.blocks builds them
RECURRENT_BACKBONES: tuple[str, ...] = tuple(b for b in BACKBONES if b != "transformer")
LAYOUTS: tuple[str, ...] = ("interleaved", "stacked")
RTG_EMBEDS: tuple[str, ...] = ("joint", "layernorm", "balanced")
ACTING_MODES: tuple[str, ...] = ("auto", "window", "recurrent")
TRAIN_MODES: tuple[str, ...] = ("window", "episode_start", "segments", "burn_in", "mixed")
EVAL_VECTORS: tuple[str, ...] = ("auto", "sync", "async")
#: Values of ``cuda_graphs`` (agents/graphs.py reads them from here as ``MODES``).
CUDA_GRAPH_MODES: tuple[str, ...] = ("auto", "on", "off")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "wsd")
LOSS_REDUCTIONS: tuple[str, ...] = ("mean", "sum")
BUDGET_CLOCKS: tuple[str, ...] = ("wall", "cpu")
ACTIVATION_NAMES: tuple[str, ...] = ("auto", *ACTIVATIONS)
BACKBONE_INITS: tuple[str, ...] = ("auto", "default", "gpt2")
#: A target return a config may give instead of a number: the best episode return in the training data, known
#: before any rollout (DT's targets assume D4RL's return scale; data made elsewhere may not be on it).
DATA_MAX = "data_max"
#: DT's evaluation targets (returns-to-go at t=0) per D4RL env (kzl/decision-transformer gym/experiment.py,
#: ``env_targets``).
DEFAULT_TARGETS: dict[str, tuple[float, ...]] = {
    "hopper": (3600.0, 1800.0),
    "halfcheetah": (12000.0, 6000.0),
    "walker2d": (5000.0, 2500.0),
}


def _field(default: Any, help: str) -> Any:
    """A config field: its default and its one-line meaning (the help of its ``run_rl.py train`` flag)."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """One training run; the single source of every default. Never mutated: derive variants with
    ``dataclasses.replace``. YAML files (configs/) and the CLI flags hold only what differs."""

    # --- data ---
    dataset: str = _field("", 'dataset spec: "minari:<id>" or "d4rl:<path.hdf5>"')
    env: str = _field("", 'Gymnasium id or shorthand to evaluate on; "" = the env the dataset names')
    # --- model (agents/decision.py) ---
    backbone: str = _field("mingru", "sequence model: " + ", ".join(BACKBONE_NAMES))
    layout: str = _field("interleaved", 'tokens: "interleaved" (RTG, s, a per step, as DT) or "stacked" (one per step)')
    rtg_embed: str = _field(
        "joint",
        "stacked layout: 'joint' (one Linear over R_t, s_t, a_{t-1}), 'layernorm' (R_t through its own Linear and "
        "LayerNorm, so a target far above the data cannot drown the state) or 'balanced' (R_t and (s_t, a_{t-1}) "
        "each through their own Linear and LayerNorm: equal shares at any target); interleaved: 'joint'",
    )
    context_len: int = _field(20, "K, steps per window, in training and acting (DT: 20)")
    dim: int = _field(128, "token width (DT: 128)")
    depth: int = _field(3, "backbone layers (DT: 3)")
    n_heads: int = _field(1, "attention heads, transformer only (DT: 1)")
    dropout: float = _field(0.1, "dropout in the embedding and the backbone (DT: 0.1)")
    max_ep_len: int = _field(1000, "size of the learned timestep embedding; timesteps beyond are clamped (DT: 1000)")
    rtg_scale: float = _field(1000.0, "returns-to-go are divided by this before embedding (DT: 1000)")
    activation: str = _field(
        "auto",
        "the backbone MLP's activation: 'relu' (DT's GPT-2 configuration, kzl/decision-transformer "
        "gym/experiment.py, and d3rlpy's), 'gelu', or 'auto' = relu for the transformer, gelu for the recurrent "
        "backbones",
    )
    backbone_init: str = _field(
        "auto",
        "backbone Linear init: 'gpt2' (N(0, 0.02), zero bias, as DT's GPT-2 and d3rlpy), 'default' (PyTorch's), "
        "'auto' = gpt2 for the transformer, default for the recurrent backbones",
    )
    forget_bias: float = _field(
        0.0,
        "minlstm only: added to the forget gate's bias at init; > 0 starts the cell remembering longer (the "
        "official code's forget_bias_init_scale, BorealisAI/minRNNs models/minRNNs.py)",
    )
    # --- optimisation ---
    steps: int = _field(100_000, "gradient updates (DT: 100k)")
    batch_size: int = _field(64, "windows per update (DT: 64)")
    lr: float = _field(1e-4, "AdamW peak learning rate (DT: 1e-4)")
    weight_decay: float = _field(1e-4, "AdamW weight decay (DT: 1e-4)")
    warmup_steps: int = _field(10_000, "linear learning-rate warm-up from lr/warmup_steps to lr (DT: 10k)")
    lr_schedule: str = _field(
        "constant",
        "after the warm-up: 'constant' (DT), 'cosine' (decays to lr * min_lr_ratio at `steps`, or at the end of "
        "time_budget_min when that comes first) or 'wsd' (warm-up, stable, decay: constant, then a linear decay to "
        "lr * min_lr_ratio over the last decay_fraction of the run, measured the same way)",
    )
    min_lr_ratio: float = _field(0.1, "lr_schedule=cosine or wsd: the final learning rate as a fraction of lr")
    decay_fraction: float = _field(0.2, "lr_schedule=wsd: the last fraction of the run (steps or budget), which decays")
    grad_clip: float = _field(0.25, "max global grad norm; 0 disables clipping (DT: 0.25)")
    loss_reduction: str = _field(
        "mean",
        "the squared action error over action dimensions: 'mean' (DT's code, kzl/decision-transformer) or 'sum' "
        "(d3rlpy's DecisionTransformer); either way averaged over the real steps. The sum is act_dim x the mean, so "
        "under grad_clip it meets the clip act_dim x sooner",
    )
    train_mode: str = _field(
        "window",
        "window (random K-step windows, DT), episode_start, segments (episodes from t=0, the state recurrent "
        "acting carries), burn_in, or mixed (batch_size windows plus segment_batch segments in each update, the "
        "two losses averaged)",
    )
    segment_len: int = _field(1000, "train_mode=segments or mixed: steps per segment (right-padded episodes)")
    segment_batch: int = _field(4, "train_mode=mixed: whole-episode segments in each update, beside the windows")
    burn_in: int = _field(20, "train_mode=burn_in: steps run without gradient before each window")
    # --- acting and evaluation ---
    acting_mode: str = _field(
        "auto",
        '"window" (rerun last K steps, DT), "recurrent" (carry state, O(1)/step) or "auto": recurrent for '
        "recurrent backbones, window for the transformer (docs/RESULTS.md §3: same score, ~9x cheaper)",
    )
    target_returns: tuple[float | str, ...] = _field(
        (),
        "evaluation returns-to-go at t=0: numbers and/or 'data_max' (the best episode return in the training data); "
        "[] = DT's for the env",
    )
    eval_every: int = _field(10_000, "steps between evaluations; 0 = only at the end")
    eval_every_min: float = _field(
        0.0,
        "also evaluate each time this many minutes of update time (on budget_clock) have passed; 0 = off. Agents of "
        "different speeds then get score-against-time curves sampled at the same times",
    )
    eval_at_min: tuple[float, ...] = _field(
        (),
        "also evaluate when update time (on budget_clock) first passes each of these minutes, e.g. [0.25, 0.5]: early "
        "points of a score-against-time curve, finer than eval_every_min's grid",
    )
    eval_episodes: int = _field(10, "episodes per target per evaluation")
    eval_envs: int = _field(10, "parallel environments per evaluation")
    eval_vector: str = _field(
        "auto", '"sync" (one process), "async" (a process per env) or "auto" (async with a core each)'
    )
    eval_seed: int = _field(10_000, "episode k of an evaluation uses env reset seed eval_seed + k")
    eval_max_steps: int = _field(1000, "episode cap during evaluation (1000 as in D4RL)")
    final_eval_episodes: int = _field(
        50,
        "episodes per target of the evaluation at the end of training (results.json 'last'); eval_episodes is "
        "for the intermediate ones",
    )
    video_every: int = _field(
        0,
        "steps between evaluation videos in TensorBoard (eval/video, also at the final evaluation); 0 = off; "
        "must be a multiple of eval_every",
    )
    # --- runtime ---
    seed: int = _field(0, "seeds torch, numpy and the window sampler")
    threads: int = _field(0, "torch intra-op threads; 0 = all cores")
    device: str = _field("cpu", 'torch device for training and acting: "cpu", "cuda", "cuda:1" or "auto"')
    bf16: bool = _field(False, "bf16 autocast for the forward pass")
    compile: bool = _field(False, "torch.compile the model for training")
    scan_backend: str = _field("auto", "minrnn scan back-end: " + ", ".join(SCAN_BACKENDS))
    cuda_graphs: str = _field(
        "auto",
        "CUDA-graph the update and recurrent acting (agents/graphs.py): auto (on CUDA for mingru/minlstm/"
        "transformer updates and mingru/minlstm acting; off on CPU, with compile or under torchrun), on (an error "
        "off CUDA or for gru/lstm), off",
    )
    log_every: int = _field(100, "steps between train/ and perf/ scalars")
    histogram_every: int = _field(5_000, "steps between action histograms; 0 disables them")
    checkpoint_every: int = _field(5_000, "steps between resumable checkpoints; 0 = only at the end")
    time_budget_min: float = _field(
        0.0,
        "stop after this many minutes of update time (evaluation and checkpoints excluded), then run the final "
        "evaluation; 0 = off (only `steps` stops the run)",
    )
    budget_clock: str = _field(
        "wall",
        "the clock of time_budget_min and eval_every_min: 'wall' (elapsed seconds of update steps) or 'cpu' (this "
        "process's CPU seconds in them: with threads=1, minutes of one core, which other jobs on a shared machine "
        "barely change)",
    )
    requeue_exit_code: int = _field(
        0, "exit status after SIGTERM/SIGUSR1 wrote a checkpoint (0; a Slurm requeue wrapper may want another)"
    )
    progress: bool = _field(True, "show a tqdm progress bar")

    def __post_init__(self) -> None:
        self.validate()  # a TrainConfig exists only valid: made, loaded or derived with dataclasses.replace

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @property
    def interleaved(self) -> bool:
        """True for DT's token layout (RTG, s, a per step), False for one stacked token per step."""
        return self.layout == "interleaved"

    @property
    def tokens_per_step(self) -> int:
        """Backbone tokens per environment step: 3 for interleaved, 1 for stacked."""
        return tokens_per_step(self.layout)

    @property
    def window_steps(self) -> int:
        """Steps per sampled training sequence, a burn-in prefix included."""
        if self.train_mode == "segments":
            return self.segment_len
        if self.train_mode == "burn_in":
            return self.burn_in + self.context_len
        return self.context_len  # mixed: the windows' (its segments add up to segment_batch x segment_len steps)

    def resolved_acting_mode(self) -> str:
        """The acting mode evaluation uses: ``acting_mode``, with "auto" resolved for the backbone."""
        if self.acting_mode != "auto":
            return self.acting_mode
        return "recurrent" if self.backbone in RECURRENT_BACKBONES else "window"

    def resolved_activation(self) -> str:
        """'relu' or 'gelu': ``auto`` gives the transformer DT's ReLU, the recurrent backbones GELU."""
        if self.activation != "auto":
            return self.activation
        return "relu" if self.backbone == "transformer" else "gelu"

    def resolved_backbone_init(self) -> str:
        """'gpt2' or 'default': ``auto`` gives the transformer GPT-2's initialisation, as DT and d3rlpy have it."""
        if self.backbone_init != "auto":
            return self.backbone_init
        return "gpt2" if self.backbone == "transformer" else "default"

    def lr_factor(self, step: int, budget_used: float = 0.0) -> float:
        """Learning rate at update ``step`` (0-based) as a fraction of ``lr``: DT's linear warm-up
        min((step + 1) / warmup_steps, 1) (kzl/decision-transformer gym/experiment.py), then constant, or a cosine
        decay to ``min_lr_ratio`` (Loshchilov & Hutter 2017, without restarts) that ends at ``steps`` or, with a
        ``time_budget_min``, when ``budget_used`` (the fraction of the budget spent, 0..1) reaches 1, whichever
        is further along. A time-budgeted run thus ends on its smallest rate, whatever its speed.

        >>> cfg = TrainConfig(steps=110, warmup_steps=10, lr_schedule="cosine", min_lr_ratio=0.0)
        >>> [round(cfg.lr_factor(s), 3) for s in (0, 9, 59, 109, 200)]
        [0.1, 1.0, 0.5, 0.0, 0.0]
        >>> round(cfg.lr_factor(20, budget_used=0.5), 3), round(cfg.lr_factor(20, budget_used=1.0), 3)
        (0.5, 0.0)

        ``wsd`` (warm-up, stable, decay; Hu et al. 2024, MiniCPM; Hägele et al. 2024) holds the peak rate and decays
        linearly to ``min_lr_ratio`` over the last ``decay_fraction`` of the run, so a short budget spends most of
        its updates at the full rate and still ends on the smallest one:

        >>> cfg = TrainConfig(steps=100, warmup_steps=10, lr_schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.0)
        >>> [round(cfg.lr_factor(s), 3) for s in (0, 9, 79, 89, 99)]
        [0.1, 1.0, 1.0, 0.5, 0.0]
        >>> round(cfg.lr_factor(20, budget_used=0.9), 3)
        0.5
        """
        warmup = max(self.warmup_steps, 1)
        if step + 1 < warmup or self.lr_schedule == "constant":
            return min((step + 1) / warmup, 1.0)
        if self.lr_schedule == "wsd":
            progress = min(max((step + 1) / max(self.steps, 1), budget_used), 1.0)
            into_decay = (progress - (1.0 - self.decay_fraction)) / max(self.decay_fraction, 1e-12)
            return 1.0 - (1.0 - self.min_lr_ratio) * min(max(into_decay, 0.0), 1.0)
        progress = min(max((step + 1 - warmup) / max(self.steps - warmup, 1), budget_used), 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def resolved_cuda_graphs(self, distributed: bool = False) -> str:
        """``cuda_graphs`` for this run, before the device and backbone are known (``agents.graphs.use_graphs``
        decides those): "auto" becomes "off" with ``compile`` (it removes the same launch overhead) and in a
        ``distributed`` run (DDP's bucketed all-reduce inside a captured graph is untested here); "on" in a
        distributed run is a ValueError. Every train_mode samples fixed-shape batches ((B, segment_len) for
        segments), so none of them turns it off. The config itself is not changed."""
        if self.cuda_graphs == "on" and distributed:
            raise ValueError(
                "cuda_graphs='on' is not supported in a multi-process (torchrun/DDP) run; use 'auto' (off there) "
                "or 'off'"
            )
        if self.cuda_graphs == "auto" and (self.compile or distributed):
            return "off"
        return self.cuda_graphs

    def validate(self) -> TrainConfig:
        """Return self, or raise ValueError naming the bad value and the fix; run once, by ``__post_init__``."""
        _check_choice("backbone", self.backbone, BACKBONE_NAMES)
        _check_choice("layout", self.layout, LAYOUTS)
        _check_choice("rtg_embed", self.rtg_embed, RTG_EMBEDS)
        if self.rtg_embed != "joint" and self.layout != "stacked":
            raise ValueError(
                f"rtg_embed={self.rtg_embed!r} needs layout 'stacked' (the interleaved layout already gives R_t its "
                "own token); set rtg_embed=joint (--set rtg_embed=joint overrides a config file that sets it) "
                "or layout=stacked"
            )
        _check_choice("acting_mode", self.acting_mode, ACTING_MODES)
        _check_choice("train_mode", self.train_mode, TRAIN_MODES)
        _check_choice("eval_vector", self.eval_vector, EVAL_VECTORS)
        _check_choice("scan_backend", self.scan_backend, SCAN_BACKENDS)
        _check_choice("cuda_graphs", self.cuda_graphs, CUDA_GRAPH_MODES)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("loss_reduction", self.loss_reduction, LOSS_REDUCTIONS)
        _check_choice("backbone_init", self.backbone_init, BACKBONE_INITS)
        _check_choice("activation", self.activation, ACTIVATION_NAMES)
        _check_choice("budget_clock", self.budget_clock, BUDGET_CLOCKS)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}: e.g. --set min_lr_ratio=0.1")
        if not 0.0 < self.decay_fraction <= 1.0:
            raise ValueError(
                f"decay_fraction must be in (0, 1], got {self.decay_fraction}: e.g. --set decay_fraction=0.2"
            )
        if self.cuda_graphs == "on" and self.compile:
            raise ValueError(
                "cuda_graphs='on' and compile=True both remove launch overhead; pick one (set cuda_graphs: off to "
                "use torch.compile)"
            )
        positive = ("context_len", "dim", "depth", "n_heads", "max_ep_len", "steps", "batch_size", "segment_len")
        positive += ("segment_batch",)
        positive += ("eval_episodes", "eval_envs", "eval_max_steps", "final_eval_episodes")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}: set e.g. --set {key}=...")
        for key in ("lr", "rtg_scale"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        nonneg = ("weight_decay", "grad_clip", "warmup_steps", "burn_in", "eval_every", "threads", "video_every")
        nonneg += ("time_budget_min", "eval_every_min")
        for key in nonneg + ("log_every", "histogram_every", "checkpoint_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if any(t != DATA_MAX and not math.isfinite(t) for t in self.target_returns):
            raise ValueError(
                f"target_returns must be finite numbers or {DATA_MAX!r}, got {list(self.target_returns)}: e.g. "
                "--target-returns 3600 1800"
            )
        if any(not t > 0 for t in self.eval_at_min):
            raise ValueError(f"eval_at_min must hold minutes > 0, got {list(self.eval_at_min)}")
        if self.video_every and self.eval_every and self.video_every % self.eval_every:
            raise ValueError(
                f"video_every ({self.video_every}) must be a multiple of eval_every ({self.eval_every}): videos are "
                f"filmed at evaluations; e.g. --video-every {self.eval_every}"
            )
        if not 0 <= self.requeue_exit_code <= 255:
            raise ValueError(f"requeue_exit_code must be an exit status in 0..255, got {self.requeue_exit_code}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.backbone == "transformer" and self.acting_mode == "recurrent":
            raise ValueError(
                "acting_mode='recurrent' needs a recurrent backbone "
                f"{list(RECURRENT_BACKBONES)}; the transformer acts with acting_mode='window'"
            )
        if self.backbone == "transformer" and self.train_mode == "burn_in":
            raise ValueError("train_mode='burn_in' needs a recurrent backbone; use 'window' for the transformer")
        if self.forget_bias and self.backbone != "minlstm":
            raise ValueError(
                f"forget_bias={self.forget_bias} only applies to backbone 'minlstm' (got {self.backbone!r}); "
                "drop it or set --backbone minlstm"
            )
        if self.forget_bias and self.resolved_backbone_init() == "gpt2":
            raise ValueError(
                "forget_bias is added to the default initialisation, and backbone_init='gpt2' zeroes every bias; "
                "use backbone_init='default' (or 'auto') with forget_bias"
            )
        if self.train_mode == "burn_in" and self.burn_in < 1:
            raise ValueError(f"train_mode='burn_in' needs burn_in >= 1, got {self.burn_in}")
        return self


def tokens_per_step(layout: str) -> int:
    """Backbone tokens per environment step for a layout: 3 interleaved (R_t, s_t, a_t as DT), 1 stacked.

    >>> tokens_per_step("interleaved"), tokens_per_step("stacked")
    (3, 1)
    """
    _check_choice("layout", layout, LAYOUTS)
    return 3 if layout == "interleaved" else 1


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{key}={value!r} is not valid{hint}; use one of {list(choices)}")


def config_keys() -> list[str]:
    """Names of every TrainConfig field, in declaration order."""
    return [f.name for f in dataclasses.fields(TrainConfig)]


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _unknown_key(key: str) -> ValueError:
    keys = config_keys()
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"unknown config key {key!r}{hint}; valid keys: {', '.join(keys)}")


def coerce(key: str, value: Any) -> Any:
    """Convert ``value`` (from YAML or a CLI string) to the type of field ``key``; ValueError if impossible."""
    types_ = _field_types()
    if key not in types_:
        raise _unknown_key(key)
    want = types_[key]
    if isinstance(value, str) and want in (int, float):
        try:  # YAML 1.1 reads "3e-4" as a string; Python's float() does not
            value = float(value) if want is float else int(value)
        except ValueError:
            pass
    if isinstance(value, str) and want is not str:
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as err:
            raise ValueError(f"config key {key!r}: cannot parse {value!r} ({err})") from None
    bad = ValueError(f"config key {key!r} expects {_type_name(want)}, got {value!r}")
    if want is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if want is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise bad
        return int(value)
    if want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if want is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad
        return str(value)
    if typing.get_origin(want) is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise bad
        names = (DATA_MAX,) if str in typing.get_args(typing.get_args(want)[0]) else ()
        try:
            return tuple(v if v in names else coerce_float(float(v) if isinstance(v, str) else v) for v in value)
        except ValueError:
            raise bad from None
    raise TypeError(f"internal: no coercion for field {key!r} of type {want}")  # pragma: no cover


def coerce_float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(v)
    return float(v)


def _type_name(t: Any) -> str:
    if typing.get_origin(t) is tuple:
        if str in typing.get_args(typing.get_args(t)[0]):
            return f"a list of numbers or {DATA_MAX!r}, e.g. [3600, 1800] or [{DATA_MAX}]"
        return "a list of numbers, e.g. [3600, 1800]"
    if isinstance(t, types.GenericAlias):  # pragma: no cover
        return str(t)
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(t, str(t))


#: The shipped configs; ``--config NAME`` with a bare NAME means ``CONFIGS_DIR / "NAME.yaml"``.
CONFIGS_DIR: Path = Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(name: str | Path) -> Path:
    """The YAML file ``name`` means: an existing path as given, else the shipped ``configs/<name>.yaml``.

    FileNotFoundError naming the shipped configs when neither exists.

    >>> resolve_config_path("dt").name
    'dt.yaml'
    >>> resolve_config_path("dtt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: config file 'dtt' not found (no such file, and no configs/dtt.yaml) (did you mean 'dt'?); ...
    """
    path = Path(name)
    if path.is_file():
        return path
    shipped = CONFIGS_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if str(name) == path.name and shipped.is_file():  # a bare name, not a path to a missing file
        return shipped
    names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(path.stem, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise FileNotFoundError(
        f"config file {str(name)!r} not found (no such file, and no configs/{shipped.name}){hint}; pass a YAML path or "
        f"one of the shipped configs: {', '.join(names)}"
    )


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Raw key/value dict from a YAML config, following ``base:`` links (relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} not found; see configs/ for examples")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"config file {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of keys to values, got {type(data)}")
    base = data.pop("base", None)
    if base is None:
        return data
    return {**load_yaml(path.parent / str(base)), **data}


def apply_overrides(cfg: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """A new config with ``values`` (key -> raw value) applied after type checking."""
    return dataclasses.replace(cfg, **{key: coerce(key, value) for key, value in values.items()})


def parse_override(text: str) -> tuple[str, str]:
    """Split ``"key=value"`` (dashes in the key are accepted as underscores)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value, e.g. --set context_len=40")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any), then the overrides, applied at once (and so validated once)."""
    values: dict[str, Any] = load_yaml(resolve_config_path(path)) if path else {}
    if isinstance(overrides, dict):
        values.update(overrides)
    else:
        values.update(parse_override(o) for o in overrides or [])
    return apply_overrides(TrainConfig(), values)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved by ``to_dict`` (e.g. from a checkpoint's JSON); unknown keys are rejected. A config
    saved before ``activation`` existed trained with GELU, whatever its backbone, and is read so."""
    return apply_overrides(TrainConfig(), {"activation": "gelu", **data})


def default_targets(env_id: str) -> tuple[float, ...]:
    """DT's evaluation targets for a D4RL env; ValueError asking for target_returns otherwise."""
    from envs.scores import d4rl_env_key

    key = d4rl_env_key(env_id)
    if key not in DEFAULT_TARGETS:
        raise ValueError(
            f"no default target returns for env {env_id!r}: set them, e.g. --set target_returns=[3600,1800] or "
            f"--set target_returns=[{DATA_MAX}] (the best episode return in the data)"
        )
    return DEFAULT_TARGETS[key]


def resolve_targets(spec: Sequence[float | str], env_id: str, data_max: float | None) -> tuple[float, ...]:
    """The evaluation targets as numbers: ``spec``'s numbers as given and ``"data_max"`` replaced by ``data_max``,
    the best episode return of the training data; an empty ``spec`` means DT's targets for ``env_id``.

    >>> resolve_targets([3600, "data_max"], "Hopper-v5", 3483.8)
    (3600.0, 3483.8)
    >>> resolve_targets([], "Walker2d-v5", None)
    (5000.0, 2500.0)
    """
    if not spec:
        return default_targets(env_id)
    if DATA_MAX in spec and data_max is None:
        raise ValueError(f"target {DATA_MAX!r} needs the training data's best episode return, which is not recorded "
                         "here (a checkpoint from before it was); give the target as a number")  # fmt: skip
    return tuple(float(data_max) if t == DATA_MAX else float(t) for t in spec)  # type: ignore[arg-type]
