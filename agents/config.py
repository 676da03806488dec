"""TrainConfig: every hyperparameter of a Decision-agent run, loaded from YAML and overridable on the CLI.

Defaults follow the Decision Transformer (Chen et al. 2021; kzl/decision-transformer gym/experiment.py) and live in
one place, the dataclass, whose field types say what each key takes (a choice is a ``Literal``). A YAML file holds only
what differs, plus an optional ``base:`` (a YAML file, relative to it, that it extends). dacite types YAML files,
``key=value`` overrides and checkpoints' configs against the fields, tyro the CLI flags; ``__post_init__`` validates.

>>> cfg = load_config(None, ["backbone=minlstm", "target_returns=[3600, 1800]", "lr=3e-4"])
>>> cfg.backbone, cfg.target_returns, cfg.lr
('minlstm', (3600.0, 1800.0), 0.0003)
>>> load_config(None, ["contxt_len=5"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: unknown config key 'contxt_len' (did you mean 'context_len'?); valid keys: ...
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

# minrnn's names (minrnn.blocks BACKBONES and ACTIVATIONS, minrnn.scan BACKENDS) are spelled out so that reading a
# config, and `run_rl.py train --help`, do not import torch; tests/cli/test_run_safety.py keeps them equal.
Backbone = Literal["mingru", "minlstm", "gru", "lstm", "transformer"]
ActivationName = Literal["gelu", "relu"]
ScanBackend = Literal["auto", "sequential", "logspace", "cpu", "triton", "triton_chunked", "fla", "fla_fused"]
Layout = Literal["interleaved", "stacked"]
RtgEmbed = Literal["joint", "layernorm", "balanced"]
ActingMode = Literal["auto", "window", "recurrent"]
TrainMode = Literal["window", "episode_start", "segments", "burn_in", "mixed"]
EvalVector = Literal["auto", "sync", "async"]
CudaGraphs = Literal["auto", "on", "off"]
LrSchedule = Literal["constant", "cosine", "wsd"]
LossReduction = Literal["mean", "sum"]
BudgetClock = Literal["wall", "cpu"]
Activation = Literal["auto", ActivationName]
BackboneInit = Literal["auto", "default", "gpt2"]
#: A target known before any rollout, on any data's return scale: the best episode return in the training data.
DataMax = Literal["data_max"]
Target = float | DataMax

BACKBONES: tuple[str, ...] = typing.get_args(Backbone)
BACKBONE_NAMES = BACKBONES
RECURRENT_BACKBONES: tuple[str, ...] = tuple(b for b in BACKBONES if b != "transformer")
ACTIVATIONS: tuple[str, ...] = typing.get_args(ActivationName)
SCAN_BACKENDS: tuple[str, ...] = typing.get_args(ScanBackend)
LAYOUTS: tuple[str, ...] = typing.get_args(Layout)
RTG_EMBEDS: tuple[str, ...] = typing.get_args(RtgEmbed)
CUDA_GRAPH_MODES: tuple[str, ...] = typing.get_args(CudaGraphs)  # agents/graphs.py's MODES
DATA_MAX: str = typing.get_args(DataMax)[0]

__all__ = [
    "BACKBONES", "BACKBONE_NAMES", "CUDA_GRAPH_MODES", "DATA_MAX", "LAYOUTS", "RECURRENT_BACKBONES", "RTG_EMBEDS",
    "TrainConfig", "apply_overrides", "config_from_dict", "load_config", "load_yaml", "parse_override",
]  # fmt: skip


def _field(default: Any, help: str) -> Any:
    """A config field: its default and its meaning (the help of its ``run_rl.py train`` flag)."""
    return dataclasses.field(default=default, metadata={"help": help})


# fmt: off
@dataclass(frozen=True)
class TrainConfig:
    """One training run; the single source of every default. Never mutated: derive variants with
    ``dataclasses.replace``. YAML files (configs/) and the CLI flags hold only what differs."""

    # --- data ---
    dataset: str = _field("", 'dataset spec: "minari:<id>" or "d4rl:<path.hdf5>"')
    env: str = _field("", 'Gymnasium id or shorthand to evaluate on; "" = the env the dataset names')
    # --- model (agents/decision.py) ---
    backbone: Backbone = _field("mingru", "sequence model (minrnn.build_backbone)")
    layout: Layout = _field("interleaved", "tokens per step: interleaved (R_t, s_t, a_t, as DT) or stacked (one)")
    rtg_embed: RtgEmbed = _field("joint", "stacked layout: joint (one Linear over R_t, s_t, a_{t-1}), layernorm (R_t "
        "through its own Linear and LayerNorm, so a high target cannot drown the state) or balanced (R_t and "
        "(s_t, a_{t-1}) each so: equal shares at any target); interleaved: joint")
    context_len: int = _field(20, "K, steps per window, in training and acting (DT: 20)")
    dim: int = _field(128, "token width (DT: 128)")
    depth: int = _field(3, "backbone layers (DT: 3)")
    n_heads: int = _field(1, "attention heads, transformer only (DT: 1)")
    dropout: float = _field(0.1, "dropout in the embedding and the backbone (DT: 0.1)")
    max_ep_len: int = _field(1000, "size of the learned timestep embedding; timesteps beyond are clamped (DT: 1000)")
    rtg_scale: float = _field(1000.0, "returns-to-go are divided by this before embedding (DT: 1000)")
    activation: Activation = _field("auto", "the backbone MLP's activation: relu (DT's GPT-2 and d3rlpy's), gelu, "
        "or auto = relu for the transformer, gelu for the recurrent backbones")
    backbone_init: BackboneInit = _field("auto", "backbone Linear init: 'gpt2' (N(0, 0.02), zero bias, as DT's GPT-2 "
        "and d3rlpy), 'default' (PyTorch's), 'auto' = gpt2 for the transformer, default for the recurrent backbones")
    forget_bias: float = _field(0.0, "minlstm only: added to the forget gate's bias at init (> 0: remembers longer)")
    # --- optimisation ---
    steps: int = _field(100_000, "gradient updates (DT: 100k)")
    batch_size: int = _field(64, "windows per update (DT: 64)")
    lr: float = _field(1e-4, "AdamW peak learning rate (DT: 1e-4)")
    weight_decay: float = _field(1e-4, "AdamW weight decay (DT: 1e-4)")
    warmup_steps: int = _field(10_000, "linear learning-rate warm-up from lr/warmup_steps to lr (DT: 10k)")
    lr_schedule: LrSchedule = _field("constant", "after the warm-up: constant (DT), cosine (to lr * min_lr_ratio at "
        "the end of the run: `steps`, or time_budget_min if that comes first) or wsd (warm-up, stable, decay: "
        "constant, then linear to lr * min_lr_ratio over the run's last decay_fraction)")
    min_lr_ratio: float = _field(0.1, "lr_schedule=cosine or wsd: the final learning rate as a fraction of lr")
    decay_fraction: float = _field(0.2, "lr_schedule=wsd: the last fraction of the run (steps or budget), which decays")
    grad_clip: float = _field(0.25, "max global grad norm; 0 disables clipping (DT: 0.25)")
    loss_reduction: LossReduction = _field("mean", "the squared action error over action dimensions: mean (DT) or "
        "sum (d3rlpy; act_dim x the mean, so it meets grad_clip sooner); either way averaged over the real steps")
    train_mode: TrainMode = _field("window", "window (random K-step windows, DT), episode_start, segments (episodes "
        "from t=0, the state recurrent acting carries), burn_in, or mixed (batch_size windows plus segment_batch "
        "segments in each update, the two losses averaged)")
    segment_len: int = _field(1000, "train_mode=segments or mixed: steps per segment (right-padded episodes)")
    segment_batch: int = _field(4, "train_mode=mixed: whole-episode segments in each update, beside the windows")
    burn_in: int = _field(20, "train_mode=burn_in: steps run without gradient before each window")
    # --- acting and evaluation ---
    acting_mode: ActingMode = _field("auto", "window (rerun the last K steps, DT), recurrent (carry the state, O(1) "
        "per step) or auto: recurrent for recurrent backbones (same score, ~9x cheaper), window for the transformer")
    target_returns: tuple[Target, ...] = _field((), "evaluation returns-to-go at t=0: numbers and/or data_max (the "
        "training data's best episode return); [] = DT's for the env")
    eval_every: int = _field(10_000, "steps between evaluations; 0 = only at the end")
    eval_every_min: float = _field(0.0, "also evaluate each time this many minutes of update time (on budget_clock) "
        "have passed, so agents of different speeds are sampled at the same times; 0 = off")
    eval_at_min: tuple[float, ...] = _field((), "also evaluate when update time (on budget_clock) first passes each of "
        "these minutes, e.g. [0.25, 0.5]: early points, finer than eval_every_min's grid")
    eval_episodes: int = _field(10, "episodes per target per evaluation")
    eval_envs: int = _field(10, "parallel environments per evaluation")
    eval_vector: EvalVector = _field("auto", "sync (one process), async (one per env) or auto (async with a core each)")
    eval_seed: int = _field(10_000, "episode k of an evaluation uses env reset seed eval_seed + k")
    eval_max_steps: int = _field(1000, "episode cap during evaluation (1000 as in D4RL)")
    final_eval_episodes: int = _field(50, "episodes per target of the final evaluation (results.json 'last')")
    video_every: int = _field(0, "steps between evaluation videos (eval/video); 0 = off; a multiple of eval_every")
    # --- runtime ---
    seed: int = _field(0, "seeds torch, numpy and the window sampler")
    threads: int = _field(0, "torch intra-op threads; 0 = all cores")
    device: str = _field("cpu", 'torch device for training and acting: "cpu", "cuda", "cuda:1" or "auto"')
    bf16: bool = _field(False, "bf16 autocast for the forward pass")
    compile: bool = _field(False, "torch.compile the model for training")
    scan_backend: ScanBackend = _field("auto", "minrnn scan back-end (minrnn/scan.py)")
    cuda_graphs: CudaGraphs = _field("auto", "CUDA-graph the update and recurrent acting (agents/graphs.py): auto "
        "(where the backbone allows it on CUDA; off with compile or under torchrun), on (an error where not), off")
    log_every: int = _field(100, "steps between train/ and perf/ scalars")
    histogram_every: int = _field(5_000, "steps between action histograms; 0 disables them")
    checkpoint_every: int = _field(5_000, "steps between resumable checkpoints; 0 = only at the end")
    time_budget_min: float = _field(0.0, "stop after this many minutes of update time (evaluation and checkpoints "
        "excluded), then run the final evaluation; 0 = off (only `steps` stops the run)")
    budget_clock: BudgetClock = _field("wall", "the clock of time_budget_min and eval_every_min: wall (elapsed "
        "seconds of update steps) or cpu (this process's CPU seconds in them, which other jobs barely change)")
    requeue_exit_code: int = _field(0, "exit status after SIGTERM/SIGUSR1 wrote a checkpoint (Slurm requeue: e.g. 3)")
    progress: bool = _field(True, "show a tqdm progress bar")

    def __post_init__(self) -> None:
        """ValueError naming the bad value and the fix: a TrainConfig exists only valid, whether made, loaded or
        derived with ``dataclasses.replace``."""
        for key, choices in _choices().items():
            if err := _bad_choice(key, getattr(self, key), choices):
                raise err
        if self.rtg_embed != "joint" and self.layout != "stacked":
            raise ValueError(f"rtg_embed={self.rtg_embed!r} needs layout 'stacked' (the interleaved layout already "
                             "gives R_t its own token); set rtg_embed=joint (--set rtg_embed=joint overrides a config "
                             "file that sets it) or layout=stacked")
        def check(key: str, ok: bool, bound: str) -> None:
            if not ok:
                raise ValueError(f"{key} must be {bound}, got {getattr(self, key)}: set e.g. --set {key}=...")

        for key in ("context_len", "dim", "depth", "n_heads", "max_ep_len", "steps", "batch_size", "segment_len",
                    "segment_batch", "eval_episodes", "eval_envs", "eval_max_steps", "final_eval_episodes"):
            check(key, getattr(self, key) >= 1, ">= 1")
        for key in ("weight_decay", "grad_clip", "warmup_steps", "burn_in", "eval_every", "threads", "video_every",
                    "time_budget_min", "eval_every_min", "log_every", "histogram_every", "checkpoint_every"):
            check(key, getattr(self, key) >= 0, ">= 0")
        check("lr", self.lr > 0, "> 0")
        check("rtg_scale", self.rtg_scale > 0, "> 0")
        check("min_lr_ratio", 0.0 <= self.min_lr_ratio <= 1.0, "in [0, 1]")
        check("decay_fraction", 0.0 < self.decay_fraction <= 1.0, "in (0, 1]")
        check("dropout", 0.0 <= self.dropout < 1.0, "in [0, 1)")
        check("requeue_exit_code", 0 <= self.requeue_exit_code <= 255, "an exit status in 0..255")
        if self.cuda_graphs == "on" and self.compile:
            raise ValueError("cuda_graphs='on' and compile=True both remove launch overhead; pick one (set "
                             "cuda_graphs: off to use torch.compile)")
        if any(t != DATA_MAX and not math.isfinite(t) for t in self.target_returns):
            raise ValueError(f"target_returns must be finite numbers or {DATA_MAX!r}, got "
                             f"{list(self.target_returns)}: e.g. --target-returns 3600 1800")
        if any(not t > 0 for t in self.eval_at_min):
            raise ValueError(f"eval_at_min must hold minutes > 0, got {list(self.eval_at_min)}")
        if self.video_every and self.eval_every and self.video_every % self.eval_every:
            raise ValueError(f"video_every ({self.video_every}) must be a multiple of eval_every ({self.eval_every}): "
                             f"videos are filmed at evaluations; e.g. --video-every {self.eval_every}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if self.backbone == "transformer" and self.acting_mode == "recurrent":
            raise ValueError(f"acting_mode='recurrent' needs a recurrent backbone {list(RECURRENT_BACKBONES)}; the "
                             "transformer acts with acting_mode='window'")
        if self.backbone == "transformer" and self.train_mode == "burn_in":
            raise ValueError("train_mode='burn_in' needs a recurrent backbone; use 'window' for the transformer")
        if self.forget_bias and self.backbone != "minlstm":
            raise ValueError(f"forget_bias={self.forget_bias} only applies to backbone 'minlstm' (got "
                             f"{self.backbone!r}); drop it or set --backbone minlstm")
        if self.forget_bias and self.resolved_backbone_init() == "gpt2":
            raise ValueError("forget_bias is added to the default initialisation, and backbone_init='gpt2' zeroes "
                             "every bias; use backbone_init='default' (or 'auto') with forget_bias")
        if self.train_mode == "burn_in" and self.burn_in < 1:
            raise ValueError(f"train_mode='burn_in' needs burn_in >= 1, got {self.burn_in}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def resolved_acting_mode(self) -> str:
        """The acting mode evaluation uses: ``acting_mode``, with "auto" resolved for the backbone."""
        auto = "recurrent" if self.backbone in RECURRENT_BACKBONES else "window"
        return auto if self.acting_mode == "auto" else self.acting_mode

    def resolved_activation(self) -> str:
        """'relu' or 'gelu': ``auto`` gives the transformer DT's ReLU, the recurrent backbones GELU."""
        return ("relu" if self.backbone == "transformer" else "gelu") if self.activation == "auto" else self.activation

    def resolved_backbone_init(self) -> str:
        """'gpt2' or 'default': ``auto`` gives the transformer GPT-2's initialisation, as DT and d3rlpy have it."""
        auto = "gpt2" if self.backbone == "transformer" else "default"
        return auto if self.backbone_init == "auto" else self.backbone_init
# fmt: on


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


@functools.cache
def _choices() -> dict[str, tuple[str, ...]]:
    """{key: its values} for every ``Literal`` field."""
    return {k: typing.get_args(t) for k, t in _hints().items() if typing.get_origin(t) is Literal}


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _bad_choice(key: str, value: Any, choices: tuple[str, ...]) -> ValueError | None:
    if value in choices:
        return None
    return ValueError(f"{key}={value!r} is not valid{did_you_mean(str(value), choices)}; use one of {list(choices)}")


def _wrong_type(key: str, value: Any) -> ValueError:
    """The message for a value of the wrong type: a choice's (did you mean ...), or the type the key expects."""
    want = _hints()[key]
    if key in _choices():
        return _bad_choice(key, value, _choices()[key]) or ValueError(f"{key}={value!r} is not valid")
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(want, "")
    if typing.get_origin(want) is tuple:
        words = "a list of numbers, e.g. [3600, 1800]"
        if DataMax in typing.get_args(typing.get_args(want)[0]):
            words = f"a list of numbers or {DATA_MAX!r}, e.g. [3600, 1800] or [{DATA_MAX}]"
    return ValueError(f"config key {key!r} expects {words}, got {value!r}")


def _yaml(value: Any) -> Any:
    """A ``--set`` value is text: read it as YAML, as the same value in a config file would be."""
    if isinstance(value, str) and value.strip():
        with contextlib.suppress(yaml.YAMLError):
            return yaml.safe_load(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool):  # an int to Python, not a number to whoever wrote it: refused as the text it was
        return str(value).lower()
    with contextlib.suppress(TypeError, ValueError):  # an int, or text that reads as one (YAML 1.1 leaves 3e-4 text)
        return float(value)
    return value


def _count(value: Any) -> Any:
    value = _number(_yaml(value))  # a whole number, as text or as a float, is a count
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _listed(value: Any) -> Any:
    value = _yaml(value)
    return value if isinstance(value, (list, tuple)) else [value]


@functools.cache
def _dacite_config() -> Any:
    """dacite's hooks, run before it checks a value's type: text is read as YAML (a str or choice field keeps it), a
    number or numeric text is a float, a whole float an int, a single value a one-element list."""
    import dacite

    tuples = {t: _listed for t in _hints().values() if typing.get_origin(t) is tuple}
    return dacite.Config(type_hooks={bool: _yaml, int: _count, float: _number, **tuples}, cast=[tuple], strict=True)


def apply_overrides(cfg: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """``cfg`` with ``values`` (key -> value, as a YAML file, a checkpoint's JSON or ``--set`` text gives it) applied,
    typed against the fields and validated once. ValueError names an unknown key and the closest one, or the key,
    the type it expects and the value given."""
    import dacite

    try:
        return dacite.from_dict(TrainConfig, {**dataclasses.asdict(cfg), **values}, _dacite_config())
    except dacite.UnexpectedDataError as err:
        key = sorted(err.keys)[0]
        raise ValueError(f"unknown config key {key!r}{did_you_mean(key, list(_hints()))}; valid keys: "
                         f"{', '.join(_hints())}") from None  # fmt: skip
    except dacite.WrongTypeError as err:
        key = str(err.field_path).split(".")[0]
        raise _wrong_type(key, _yaml(values.get(key, err.value))) from None


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
    return data if base is None else {**load_yaml(path.parent / str(base)), **data}


def parse_override(text: str) -> tuple[str, str]:
    """Split ``"key=value"`` (dashes in the key are accepted as underscores)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value, e.g. --set context_len=40")
    key, value = text.split("=", 1)
    return key.strip().replace("-", "_"), value


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file (if any), then the overrides, applied at once (and so validated once)."""
    values: dict[str, Any] = load_yaml(path) if path else {}
    values.update(overrides if isinstance(overrides, dict) else map(parse_override, overrides or []))
    return apply_overrides(TrainConfig(), values)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a config saved by ``to_dict`` (e.g. from a checkpoint's JSON); unknown keys are rejected. A config
    saved before ``activation`` existed trained with GELU, whatever its backbone, and is read so."""
    return apply_overrides(TrainConfig(), {"activation": "gelu", **data})
