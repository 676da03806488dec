"""End-to-end training per backbone, TensorBoard events, results.json, resume, train modes."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.checkpoint import load_checkpoint
from agents.config import TrainConfig
from agents.decision import masked_mse
from agents.rundir import prepare_run_dir
from agents.trainer import (
    build_model,
    compute_loss,
    fit_optimizer_to_graphs,
    load_model,
    make_optimizer,
    make_updater,
    sample_batch,
    to_tensors,
    train,
)

RESULT_KEYS = {
    "normalized_score_mean", "normalized_score_std", "return_mean", "return_std", "episodes", "score_reference",
    "steps", "wall_time_s", "backbone", "acting_mode",
}  # fmt: skip


def scalars(run: Path) -> dict[str, list[float]]:
    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    out = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    out["_histograms"] = acc.Tags()["histograms"]
    return out


@pytest.mark.parametrize(
    ("backbone", "layout", "acting"),
    [
        ("mingru", "interleaved", "recurrent"),
        ("mingru", "stacked", "window"),
        ("minlstm", "stacked", "recurrent"),
        ("gru", "stacked", "recurrent"),
        ("lstm", "interleaved", "window"),
        ("transformer", "interleaved", "window"),
    ],
)
def test_end_to_end(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, backbone: str, layout: str, acting: str
) -> None:
    vector = "async" if acting == "recurrent" else "sync"  # "auto" would pick sync on a 2-core machine
    cfg = tiny_config(backbone=backbone, layout=layout, acting_mode=acting, steps=150, eval_vector=vector)
    run = tmp_path / "run"
    res = train(cfg, run)
    assert RESULT_KEYS <= set(res)
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["steps"] == 150 and on_disk["backbone"] == backbone and on_disk["acting_mode"] == acting
    assert on_disk["episodes"] == 2 and on_disk["score_reference"] == "d4rl"
    assert {t["vector"] for t in on_disk["per_target"].values()} == {vector}
    assert np.isfinite(on_disk["normalized_score_mean"])
    assert on_disk["batch_size"] == cfg.batch_size and on_disk["machine"]["cores"] >= 1
    assert on_disk["machine"]["torch"] == torch.__version__ and "gpu" not in on_disk["machine"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    assert on_disk["commit"].removesuffix("+dirty") == (head.stdout.strip() if head.returncode == 0 else "unknown")
    tb = scalars(run)
    for tag in (
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "perf/steps_per_s",
        "perf/tokens_per_s",
        "eval/return_mean",
        "eval/normalized_score",
        "eval/normalized_score_best",
        "eval/episode_length",
    ):
        assert tag in tb, tag
    loss = tb["train/loss"]
    assert len(loss) == 15 and np.mean(loss[-3:]) < 0.7 * loss[0], loss
    assert {"train/action_pred", "eval/actions"} <= set(tb["_histograms"])
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "latest").is_file()


def test_resume_matches_uninterrupted_run(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """Train 40 steps straight; or 20, stop, resume to 40: identical weights, step count continues."""
    cfg = tiny_config(backbone="mingru", layout="stacked", dropout=0.1, steps=40, checkpoint_every=20, eval_episodes=1,
                      eval_envs=1, eval_max_steps=5)  # fmt: skip
    full = tmp_path / "full"
    train(cfg, full)
    part = tmp_path / "part"
    train(cfg.__class__(**{**cfg.__dict__, "steps": 20}), part)
    assert load_checkpoint(part).meta["step"] == 20
    res = train(cfg, part, resume=True)
    assert res["steps"] == 40 and load_checkpoint(part).meta["step"] == 40
    a, _, _ = load_model(full)
    b, _, _ = load_model(part)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name
    assert res["return_mean"] == json.loads((full / "results.json").read_text())["return_mean"]
    assert scalars(part)["train/loss"] == pytest.approx(scalars(full)["train/loss"], rel=0, abs=0)


def test_resume_rejects_a_different_model(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    cfg = tiny_config(steps=5, eval_max_steps=3, eval_episodes=1, eval_envs=1)
    train(cfg, tmp_path / "r")
    with pytest.raises(ValueError, match=r"trained with a different model: backbone='lstm' \(checkpoint: 'mingru'\)"):
        train(cfg.__class__(**{**cfg.__dict__, "backbone": "lstm", "steps": 10}), tmp_path / "r", resume=True)


def test_resume_checks_rtg_embed_and_reads_a_checkpoint_without_it_as_joint(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path
) -> None:
    from agents.trainer import check_same_model

    cfg = tiny_config(steps=5, eval_max_steps=3, eval_episodes=1, eval_envs=1, layout="stacked")
    train(cfg, tmp_path / "r")
    ln = cfg.__class__(**{**cfg.__dict__, "rtg_embed": "layernorm", "steps": 10})
    with pytest.raises(ValueError, match=r"rtg_embed='layernorm' \(checkpoint: 'joint'\)"):
        train(ln, tmp_path / "r", resume=True)
    saved = {k: v for k, v in cfg.__dict__.items() if k != "rtg_embed"}  # written before the key existed
    check_same_model(cfg, saved, "old run")
    with pytest.raises(ValueError, match=r"rtg_embed='layernorm' \(checkpoint: 'joint'\)"):
        check_same_model(ln, saved, "old run")


@pytest.mark.parametrize("mode", ["episode_start", "segments", "burn_in", "mixed"])
def test_train_modes_run(tiny_config: Callable[..., TrainConfig], tmp_path: Path, mode: str) -> None:
    cfg = tiny_config(train_mode=mode, segment_len=40, segment_batch=2, burn_in=6, steps=30, acting_mode="recurrent",
                      eval_episodes=1, eval_envs=1, eval_max_steps=5)  # fmt: skip
    res = train(cfg, tmp_path / mode)
    assert res["train_mode"] == mode and res["steps"] == 30
    loss = scalars(tmp_path / mode)["train/loss"]
    assert loss[-1] < loss[0]


@pytest.mark.parametrize("backbone", ["mingru", "transformer"])
def test_segments_cut_after_the_longest_episode_keep_the_loss(
    tiny_config: Callable[..., TrainConfig], backbone: str
) -> None:
    """Segments cut after the batch's longest episode give the loss of the full right-padded (B, segment_len)
    batch, for a recurrent and an attention backbone; only the shape changes."""
    from envs import load_dataset

    cfg = tiny_config(backbone=backbone, layout="stacked", train_mode="segments", segment_len=1000, batch_size=4)
    store = load_dataset(cfg.dataset, env_id=cfg.env)
    model = build_model(cfg, store.obs_dim, store.act_dim, store.state_mean, store.state_std).eval()
    full = sample_batch(store, cfg, np.random.default_rng(5))
    cut = sample_batch(store, cfg, np.random.default_rng(5), fixed_shape=False)
    longest = int(full["mask"].sum(axis=1).max())
    assert full["states"].shape[1] == 1000 and cut["states"].shape[1] == longest < 1000
    with torch.no_grad():
        losses = [compute_loss(model, to_tensors(b, torch.device("cpu")), cfg)[0] for b in (full, cut)]
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_mixed_loss_is_the_mean_of_the_window_and_segment_losses(tiny_config: Callable[..., TrainConfig]) -> None:
    """train_mode=mixed: windows and whole-episode segments in one batch; the loss is the plain average of the two
    parts' masked MSEs, each computed here on its own through the model's forward."""
    from envs import load_dataset

    cfg = tiny_config(train_mode="mixed", segment_len=60, segment_batch=3, layout="stacked")
    store = load_dataset(cfg.dataset, env_id=cfg.env)
    model = build_model(cfg, store.obs_dim, store.act_dim, store.state_mean, store.state_std).eval()
    b = to_tensors(sample_batch(store, cfg, np.random.default_rng(0)), torch.device("cpu"))
    assert b["states"].shape[:2] == (cfg.batch_size, cfg.context_len) and b["seg_states"].shape[:2] == (3, 60)
    assert bool(b["seg_mask"][:, 0].all()) and bool((b["seg_timesteps"][:, 0] == 0).all())  # from t=0
    keys = ("states", "actions", "rtg", "timesteps", "mask")
    with torch.no_grad():
        loss, pred, mask = compute_loss(model, b, cfg)
        win = masked_mse(model(*(b[k] for k in keys))[0], b["actions"], b["mask"])
        seg = masked_mse(model(*(b[f"seg_{k}"] for k in keys))[0], b["seg_actions"], b["seg_mask"])
    torch.testing.assert_close(loss, (win + seg) / 2)
    assert pred.shape[:2] == mask.shape == b["mask"].shape


def test_run_dir_is_never_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "precious.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="already exists; pass --resume to continue it, --overwrite"):
        prepare_run_dir(run, resume=False, overwrite=False)
    assert (run / "precious.txt").read_text() == "keep"
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        prepare_run_dir(run, resume=True, overwrite=False)
    with pytest.raises(FileExistsError, match="is not a run directory of this toolkit.*holds precious.txt"):
        prepare_run_dir(run, resume=False, overwrite=True)
    assert (run / "precious.txt").read_text() == "keep"
    (run / "config.yaml").write_text("seed: 0\n")  # now a run (config.yaml beside its TensorBoard folder)
    (run / "tb").mkdir()
    prepare_run_dir(run, resume=False, overwrite=True)
    (old,) = tmp_path.glob("run.old-*")
    assert (old / "precious.txt").read_text() == "keep" and not (run / "precious.txt").exists()


def test_linked_run_dir_is_refused_not_followed(tmp_path: Path) -> None:
    """A link to a missing folder is named as such (not "File exists"); --overwrite never deletes through a link."""
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match="is a link to .*gone.*, which does not exist; restore its target"):
        prepare_run_dir(dangling, resume=False, overwrite=True)
    assert dangling.is_symlink() and not (tmp_path / "gone").exists()
    target = tmp_path / "kept"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    linked = tmp_path / "linked"
    linked.symlink_to(target)
    with pytest.raises(FileExistsError, match="--overwrite does not delete through a link"):
        prepare_run_dir(linked, resume=False, overwrite=True)
    assert (target / "precious.txt").read_text() == "keep" and linked.is_symlink()
    with pytest.raises(FileExistsError, match="already exists; pass --resume"):
        prepare_run_dir(linked, resume=False, overwrite=False)


def test_unwritable_run_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="cannot write to run directory"):
        prepare_run_dir(blocker / "run", resume=False, overwrite=False)


def test_kill9_then_resume_matches_uninterrupted(d4rl_file: object, tmp_path: Path) -> None:
    """kill -9 a training process mid-run; --resume from its last checkpoint ends bit-identical to a clean run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    flags = ["--dataset", f"d4rl:{d4rl_file.path}", "--dim", "16", "--depth", "1", "--context-len", "4",  # type: ignore[attr-defined]
             "--batch-size", "8", "--eval-episodes", "1", "--final-eval-episodes", "1", "--eval-envs", "1",
             "--eval-max-steps", "5", "--target-returns", "100", "--threads", "1", "--no-progress",
             "--dropout", "0.1"]  # fmt: skip
    cli = [sys.executable, str(root / "run_rl.py"), "train"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([*cli, *flags, "--out", str(killed), "--steps", "100000", "--checkpoint-every", "5"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:  # a checkpoint after step 0 (which every run writes)
        if latest.exists() and latest.read_text().strip() not in ("", "step_0000000"):
            break
        time.sleep(0.02)
    time.sleep(0.1)  # let it get part-way through later steps or saves
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    stopped_at = load_checkpoint(killed).meta["step"]
    assert 0 < stopped_at < 60
    done = subprocess.run([*cli, "--out", str(killed), "--resume", "--steps", "60"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    clean = tmp_path / "clean"
    done = subprocess.run([*cli, *flags, "--out", str(clean), "--steps", "60"], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    a, _, _ = load_model(killed)
    b, _, _ = load_model(clean)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_same_seed_same_losses_on_cpu(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """Determinism: same seed and config -> identical losses and weights; another seed differs."""
    cfg = tiny_config(dropout=0.1, steps=20, log_every=2, eval_episodes=1, eval_envs=1, eval_max_steps=3)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(cfg.__class__(**{**cfg.__dict__, "seed": seed}), tmp_path / name)
    a, b, c = (scalars(tmp_path / n)["train/loss"] for n in "abc")
    assert a == b and a != c
    from agents.distributed import fingerprint

    assert fingerprint(load_model(tmp_path / "a")[0]) == fingerprint(load_model(tmp_path / "b")[0])


def test_resume_on_another_world_size_rederives_rngs(
    tiny_config: Callable[..., TrainConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint from 2 ranks resumed by 1 process: streams re-derived from (seed, rank, step), with a warning."""
    from agents.distributed import DistInfo
    from agents.resume import restore_rng_states

    cfg = tiny_config(steps=4, eval_max_steps=3, eval_episodes=1, eval_envs=1)
    train(cfg, tmp_path / "r")
    ckpt = load_checkpoint(tmp_path / "r")
    assert ckpt.meta["world_size"] == 1 and set(ckpt.rng) == {"torch_cpu.0"}
    rng = restore_rng_states(ckpt, cfg.seed, DistInfo(), torch.device("cpu"), 4)
    assert rng is not None and rng.bit_generator.state == ckpt.meta["sampler_rng_per_rank"][0]
    ckpt.meta["world_size"] = 2
    rng = restore_rng_states(ckpt, cfg.seed, DistInfo(), torch.device("cpu"), 4)
    want = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0, 4]))
    assert rng.bit_generator.state == want.bit_generator.state
    assert "checkpoint written by 2 process(es), resuming on 1" in capsys.readouterr().err


def test_training_does_not_import_dataset_generation() -> None:
    """The Decision agents never import agents.behaviour (SAC, recipes); staleness comes through envs.provenance."""
    import subprocess
    import sys

    code = (
        "import sys, agents.trainer, agents.evaluation, agents.policy, agents.checkpoint; "
        "print(sorted(m for m in sys.modules if m.startswith('agents.behaviour')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cuda_graphs_auto_runs_eager_on_cpu(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """cuda_graphs=auto resolves to off on CPU: same losses, weights and recorded mode as an explicit off run."""
    from agents.distributed import fingerprint

    base = tiny_config(dropout=0.1, steps=12, log_every=2, histogram_every=4, eval_episodes=1, eval_envs=1,
                       eval_max_steps=3)  # fmt: skip
    results = {}
    for mode in ("auto", "off"):
        results[mode] = train(dataclasses.replace(base, cuda_graphs=mode), tmp_path / mode)
    assert results["auto"]["cuda_graphs"] == results["off"]["cuda_graphs"] == "off"
    assert scalars(tmp_path / "auto")["train/loss"] == scalars(tmp_path / "off")["train/loss"]
    assert fingerprint(load_model(tmp_path / "auto")[0]) == fingerprint(load_model(tmp_path / "off")[0])
    assert load_model(tmp_path / "auto")[1].cuda_graphs == "auto"  # the config as given is what is saved


def test_cuda_graphs_on_needs_cuda(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    cfg = tiny_config(cuda_graphs="on", steps=2)
    with pytest.raises(ValueError, match=r"cuda_graphs='on' needs a model on CUDA, got device cpu; use 'auto' or"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


def _reference_update(
    model: torch.nn.Module, b: dict[str, torch.Tensor], cfg: TrainConfig, opt: Any, sched: Any
) -> tuple[float, float]:
    """The update spelled out: compute_loss -> zero_grad -> backward -> clip_grad_norm_ -> AdamW -> scheduler."""
    loss, _, _ = compute_loss(model, b, cfg)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(list(model.parameters()), cfg.grad_clip)
    opt.step()
    sched.step()
    return loss.item(), float(norm)


@pytest.mark.parametrize("backbone", ["mingru", "gru"])
def test_the_update_matches_its_spelled_out_reference(backbone: str) -> None:
    """The trainer's one update (eager off CUDA) takes the reference's steps: loss, norm, weights, lr."""
    cfg = TrainConfig(backbone=backbone, layout="stacked", dim=8, depth=1, dropout=0.1, warmup_steps=3, lr=1e-3)
    B, K = 3, 5
    gen = torch.Generator().manual_seed(0)
    batches = [
        {"states": torch.randn(B, K, 4, generator=gen), "actions": torch.rand(B, K, 2, generator=gen) - 0.5,
         "rtg": torch.rand(B, K, generator=gen), "timesteps": torch.arange(K).expand(B, K).contiguous(),
         "mask": torch.rand(B, K, generator=gen) > 0.2}
        for _ in range(4)
    ]  # fmt: skip
    runs = []
    for graphed in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg, 4, 2).train()
        opt, sched = make_optimizer(model.parameters(), cfg)
        upd = make_updater(model, cfg, opt, sched, graphs=False) if graphed else None
        trace = []
        for b in batches:
            if upd is None:
                loss, norm = _reference_update(model, b, cfg, opt, sched)
                trace.append((loss, norm, float(sched.get_last_lr()[0])))
            else:
                out = upd.step(b)
                trace.append((out.loss.item(), float(out.grad_norm), float(sched.get_last_lr()[0])))
                assert out.pred.shape == (B, K, 2) and torch.equal(out.mask, b["mask"])  # what the histograms show
        runs.append((trace, [p.detach().clone() for p in model.parameters()]))
    (trace_a, w_a), (trace_b, w_b) = runs
    assert trace_a == trace_b and trace_a[0][2] < trace_a[-1][2]  # the warm-up advanced once per step, in both
    assert all(torch.equal(x, y) for x, y in zip(w_a, w_b, strict=True))


def test_optimizer_fits_either_mode_and_checkpoints_plain_floats() -> None:
    """A capturable-style group (tensor lr, capturable) is stored with float lr, and converts both ways."""
    from agents.checkpoint import json_safe, optimizer_to_tensors

    cfg = TrainConfig(layout="stacked", dim=8, depth=1, warmup_steps=4, lr=2e-3)
    model = build_model(cfg, 4, 2)
    opt, sched = make_optimizer(model.parameters(), cfg)
    opt.param_groups[0]["lr"] = torch.tensor(opt.param_groups[0]["lr"])  # as make_optimizer(graphs=True) on CUDA
    sched._last_lr = [opt.param_groups[0]["lr"]]
    meta = optimizer_to_tensors(opt.state_dict())[1]
    saved = json.loads(json.dumps({"opt": meta, "sched": json_safe(sched.state_dict())}))  # would fail on tensors
    assert saved["opt"]["param_groups"][0]["lr"] == pytest.approx(2e-3 / 4)
    assert saved["sched"]["_last_lr"] == [pytest.approx(2e-3 / 4)]
    fit_optimizer_to_graphs(opt, sched, graphs=True)
    group = opt.param_groups[0]
    assert group["capturable"] and isinstance(group["lr"], torch.Tensor) and float(group["lr"]) == pytest.approx(5e-4)
    fit_optimizer_to_graphs(opt, sched, graphs=False)
    assert not group["capturable"] and type(group["lr"]) is float and group["lr"] == pytest.approx(5e-4)
    model(torch.randn(2, 3, 4), torch.zeros(2, 3, 2), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.long),
          torch.ones(2, 3, dtype=torch.bool))[0].sum().backward()  # fmt: skip
    opt.step()  # the eager AdamW (foreach) accepts the converted group
    sched.step()
    assert type(sched.get_last_lr()[0]) is float and sched.get_last_lr()[0] == pytest.approx(1e-3)


def _logged_lr(cfg: TrainConfig, tmp_path: Path) -> dict[int, float]:
    """Train ``cfg`` and read train/lr back from its TensorBoard file: {step: rate the next update uses}."""
    train(cfg, tmp_path / "run")
    acc = EventAccumulator(str(tmp_path / "run" / "tb"))
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("train/lr")}


def test_cosine_schedule_decays_to_the_floor(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """train/lr follows warm-up then cosine, written out here: lr * (r + (1 - r) * (1 + cos(pi * p)) / 2)."""
    cfg = tiny_config(steps=40, warmup_steps=10, lr=1e-3, lr_schedule="cosine", min_lr_ratio=0.1, log_every=5)
    logged = _logged_lr(cfg, tmp_path)

    def expected(update: int) -> float:  # the rate used by the update numbered `update` (1-based)
        if update < 10:
            return 1e-3 * update / 10
        p = min((update - 10) / 30, 1.0)
        return 1e-3 * (0.1 + 0.9 * (1 + math.cos(math.pi * p)) / 2)

    assert sorted(logged) == [5, 10, 15, 20, 25, 30, 35, 40]
    for step, value in logged.items():  # logged after `step` updates: the rate the next update will use
        assert value == pytest.approx(expected(step + 1), rel=1e-5), step
    assert logged[40] == pytest.approx(1e-4, rel=1e-5)


def test_wsd_schedule_holds_then_decays_linearly(tiny_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    """train/lr under warm-up, stable, decay, written out here: the peak until 75 % of the run, then a straight
    line to lr * r at the last update."""
    cfg = tiny_config(steps=40, warmup_steps=10, lr=1e-3, lr_schedule="wsd", decay_fraction=0.25,
                      min_lr_ratio=0.1, log_every=5)  # fmt: skip
    logged = _logged_lr(cfg, tmp_path)

    def expected(update: int) -> float:  # the rate used by the update numbered `update` (1-based)
        if update < 10:
            return 1e-3 * update / 10
        if update <= 30:
            return 1e-3
        return 1e-3 * (1 - 0.9 * min((update - 30) / 10, 1.0))

    assert sorted(logged) == [5, 10, 15, 20, 25, 30, 35, 40]
    for step, value in logged.items():
        assert value == pytest.approx(expected(step + 1), rel=1e-5), step
    assert logged[30] < logged[25] == pytest.approx(1e-3)
    assert logged[40] == pytest.approx(1e-4, rel=1e-5)
