"""SAC behaviour-policy learning and the D4RL-style dataset recipes, on real MuJoCo and real Minari files."""

from __future__ import annotations

import dataclasses
import json
import os

import minari
import numpy as np
import pytest
import torch

from agents.behaviour.recipes import POLICY_DIR, ActorPolicy, UniformPolicy, build, pick_checkpoints
from agents.behaviour.sac import SACConfig, load_actor, read_evals, train
from envs.collect import rollout

# 64-wide MLPs keep the updates cheap; evaluated and checkpointed every 500 steps
SMALL = SACConfig(env_id="Hopper-v5", total_steps=2500, learning_starts=500, eval_every=500, checkpoint_every=500,
                  eval_episodes=2, seed=3, hidden=64)  # fmt: skip


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory):
    """A 2500-step SAC run on Hopper-v5 (`SMALL`)."""
    run = tmp_path_factory.mktemp("sac") / "hopper"
    train(SMALL, run, progress=False)
    return run


def _random_returns(episodes: int, seed: int) -> np.ndarray:
    from envs.evaluate import evaluate

    return evaluate(
        UniformPolicy("Hopper-v5", seed), "Hopper-v5", n_episodes=episodes, n_envs=1, seed=seed, score_reference="d4rl"
    ).returns


def test_sac_learns_and_checkpoints_load(sac_run):
    evals = read_evals(sac_run)
    assert [r["step"] for r in evals] == [500, 1000, 1500, 2000, 2500]
    best = max(r["return_mean"] for r in evals)
    # a uniform-random Hopper falls over at once (returns ~10-40); a few thousand SAC updates already hop
    assert best > 2 * _random_returns(4, seed=0).mean()
    actor, meta = load_actor(sac_run / evals[-1]["actor"])
    assert meta["env_id"] == "Hopper-v5" and meta["step"] == 2500
    obs = np.zeros((4, meta["obs_dim"]), np.float32)
    a = actor.act(obs, deterministic=True)
    assert a.shape == (4, meta["act_dim"]) and np.all(np.abs(a) <= 1)


def test_numpy_actor_matches_torch_actor(sac_run):
    path = sac_run / read_evals(sac_run)[-1]["actor"]
    actor, _ = load_actor(path)
    obs = np.random.default_rng(0).standard_normal((8, 11)).astype(np.float32)
    ref = actor.act(obs, deterministic=True)
    got = ActorPolicy(path, deterministic=True).act(obs, np.zeros(8), np.zeros(8, bool))
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_sac_resume_continues_and_grows_buffer(sac_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(sac_run, run)
    train(dataclasses.replace(SMALL, total_steps=3000), run, progress=False)
    assert torch.load(run / "state.pt", weights_only=True)["step"] == 3000
    assert np.load(run / "buffer" / "rewards.npy", mmap_mode="r").shape == (3000,)
    assert read_evals(run)[-1]["step"] == 3000


def test_pick_checkpoints_nearest_target_and_best():
    rows = [
        {"step": s, "return_mean": r, "actor": f"a{s}"}
        for s, r in [(10, 100), (20, 900), (30, 1500), (40, 1700), (50, 3000), (60, 2500)]
    ]
    picks = pick_checkpoints(rows, "hopper")
    # hopper target 47.5 normalised = 0.475 * (3234.3 + 20.27) - 20.27 = 1525.6: nearest is 1500
    assert picks["medium"]["step"] == 30 and picks["expert"]["step"] == 50
    assert [r["step"] for r in picks["replay"]] == [10, 20]


def test_pick_checkpoints_remeasures_candidates():
    """SAC's own evaluation is noisy: the recipe re-measures the candidates and picks on the measured scores."""
    rows = [
        {"step": s, "return_mean": r, "actor": f"a{s}"}
        for s, r in [(10, 100), (20, 900), (30, 1500), (40, 1700), (50, 3000), (60, 2500), (70, 2900)]
    ]
    measured = {10: 1.0, 20: 20.0, 30: 30.0, 40: 46.0, 50: 70.0, 60: 80.0, 70: 75.0}  # sampled actions do worse
    calls = []

    def measure(row):
        calls.append(row["step"])
        return measured[row["step"]]

    picks = pick_checkpoints(rows, "hopper", measure=measure, candidates=3)
    # nearest 1525.6 by SAC's evaluation: 30 (1500), 40 (1700), 20 (900); measured, 40 (46.0) is nearest 47.5
    assert picks["medium"]["step"] == 40 and picks["medium"]["measured_normalized_score"] == 46.0
    # best by SAC's evaluation: 50, 70, 60; measured, 60 is the best
    assert picks["expert"]["step"] == 60
    assert sorted(calls) == [20, 30, 40, 50, 60, 70]  # each candidate measured once, nothing else
    assert [r["step"] for r in picks["replay"]] == [10, 20, 30]


@pytest.mark.parametrize("level", ["random", "medium", "medium-replay", "medium-expert"])
def test_recipe_writes_minari_dataset(sac_run, tmp_path, level, monkeypatch):
    size = None if level == "medium-replay" else 600
    ds_id, path = build("hopper", level, size=size, seed=1, sac_run=sac_run, root=tmp_path)
    assert ds_id == f"minrnn/hopper/{level}-v0"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset(ds_id)
    meta = ds.storage.metadata
    assert meta["score_reference"] == "d4rl"
    assert meta["ref_min_score"] == pytest.approx(-20.272305) and meta["ref_max_score"] == pytest.approx(3234.3)
    expected = {"random": 600, "medium": 600, "medium-expert": 1200}.get(level)
    if level == "medium-replay":  # the real buffer up to the medium checkpoint
        expected = meta["recipe"]["policy"]["sac_step"]
        assert meta["recipe"]["policy"]["replay"] == "the real SAC replay buffer"
    assert ds.total_steps == expected == meta["recipe"]["transitions"]
    if level in ("medium", "medium-expert"):
        assert "sac_step" in json.dumps(meta["recipe"]["policy"])
    ep = next(iter(ds.iterate_episodes()))
    assert ep.observations.shape[0] == len(ep.actions) + 1

    from envs import load_dataset

    store = load_dataset(f"minari:{ds_id}")
    assert store.num_transitions == expected
    assert store.score_reference == "d4rl"


def test_replay_from_buffer_matches_buffer(sac_run, tmp_path, monkeypatch):
    ds_id, _ = build("hopper", "medium-replay", size=1234, sac_run=sac_run, root=tmp_path)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    ds = minari.load_dataset(ds_id)
    acts = np.concatenate([e.actions for e in ds.iterate_episodes()])
    rews = np.concatenate([e.rewards for e in ds.iterate_episodes()])
    n = min(1234, ds.storage.metadata["recipe"]["policy"]["sac_step"])  # never past the medium checkpoint
    assert len(acts) == n
    np.testing.assert_array_equal(acts, np.load(sac_run / "buffer" / "actions.npy")[:n])
    np.testing.assert_array_equal(rews, np.load(sac_run / "buffer" / "rewards.npy")[:n])


def test_collecting_twice_with_same_seed_is_identical(sac_run):
    path = sac_run / read_evals(sac_run)[-1]["actor"]
    runs = [rollout(ActorPolicy(path, seed=7), "Hopper-v5", 700, seed=7) for _ in range(2)]
    assert len(runs[0]) == len(runs[1])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.rewards, b.rewards)
    other = rollout(ActorPolicy(path, seed=8), "Hopper-v5", 700, seed=8)
    assert not np.array_equal(other[0].actions, runs[0][0].actions)


def test_existing_dataset_is_not_overwritten(sac_run, tmp_path):
    build("hopper", "random", size=50, root=tmp_path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        build("hopper", "random", size=50, root=tmp_path)
    build("hopper", "random", size=60, root=tmp_path, overwrite=True)


def test_bad_recipe_arguments():
    with pytest.raises(ValueError, match="unknown level 'mediocre'"):
        build("hopper", "mediocre", size=10)
    with pytest.raises(ValueError, match="no recipes for env 'Ant-v5'"):
        build("Ant-v5", "medium", size=10)
    with pytest.raises(ValueError, match="--size must be positive"):
        build("hopper", "medium", size=0)


@pytest.mark.skipif(not (POLICY_DIR / "index.json").exists(), reason="no shipped policies yet")
def test_shipped_policies_build_datasets(tmp_path, monkeypatch):
    index = json.loads((POLICY_DIR / "index.json").read_text())
    for env, entry in index.items():
        for role, info in entry["policies"].items():
            assert (POLICY_DIR / info["file"]).is_file(), f"{env} {role} weights missing"
            assert np.isfinite(info["sampled"]["return_mean"])
        ds_id, _ = build(env, "medium", size=300, root=tmp_path)
        monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
        assert minari.load_dataset(ds_id).total_steps == 300
        monkeypatch.delenv("MINARI_DATASETS_PATH")
    assert os.environ.get("MINARI_DATASETS_PATH") != str(tmp_path)


def test_replay_approximation_covers_the_whole_history():
    from agents.behaviour.recipes import replay_stretches

    got = replay_stretches([10_000, 30_000, 60_000, 80_000], warmup=5_000, medium_step=90_000)
    assert got == [(0, 5_000, None), (5_000, 10_000, None), (10_000, 30_000, 10_000), (30_000, 60_000, 30_000),
                   (60_000, 80_000, 60_000), (80_000, 90_000, 80_000)]  # fmt: skip
    # a checkpoint inside the warm-up cannot have made data yet; one at the medium step is never used
    assert replay_stretches([3, 20], warmup=5, medium_step=20) == [(0, 5, None), (5, 20, 3)]


def test_datasets_from_reshipped_policies_are_flagged_stale(tmp_path, monkeypatch):
    """A dataset records which shipped weights made it; re-shipping other weights under the same name is noticed."""
    import shutil

    import agents.behaviour.recipes as recipes

    pol = tmp_path / "policies"
    shutil.copytree(POLICY_DIR, pol)
    monkeypatch.setattr(recipes, "POLICY_DIR", pol)
    root = tmp_path / "ds"
    build("hopper", "medium", size=200, root=root)
    build("hopper", "medium-replay", size=300, root=root)
    build("hopper", "random", size=50, root=root)
    for level in ("medium", "medium-replay", "random"):
        assert recipes.dataset_stale_reason(f"minari:minrnn/hopper/{level}-v0", root=root) is None
    assert recipes.dataset_stale_reason("d4rl:/some/file.hdf5") is None

    # re-ship: other weights under hopper_medium's name (same step in the index: only the hash can tell)
    shutil.copyfile(pol / "hopper_expert.safetensors", pol / "hopper_medium.safetensors")
    why = recipes.dataset_stale_reason("minari:minrnn/hopper/medium-v0", root=root)
    assert why is not None and "hopper_medium.safetensors" in why
    # the trainer's path: envs alone, with the policy folder the dataset's metadata records
    from envs.provenance import dataset_stale_reason

    assert dataset_stale_reason("minari:minrnn/hopper/medium-v0", root=root) == why
    assert dataset_stale_reason("minari:minrnn/hopper/random-v0", root=root) is None
    assert recipes.dataset_stale_reason("minari:minrnn/hopper/medium-replay-v0", root=root) is None
    assert recipes.dataset_stale_reason("minari:minrnn/hopper/random-v0", root=root) is None

    # an older dataset (no hashes recorded) is compared by SAC step
    index = json.loads((pol / "index.json").read_text())
    replay = index["hopper"]["policies"]["replay_1"]
    meta = json.loads((root / "minrnn/hopper/medium-replay-v0/data/metadata.json").read_text())
    parts = meta["recipe"]["policy"]["parts"]
    assert any(p["policy"] == replay["file"] for p in parts)
    for p in parts:
        p.pop("sha256", None)
    assert recipes.stale_reason(meta["recipe"], pol) is None
    replay["sac_step"] += 10_000
    (pol / "index.json").write_text(json.dumps(index))
    why = recipes.stale_reason(meta["recipe"], pol)
    assert why is not None and replay["file"] in why and f"{replay['sac_step']:,}" in why
