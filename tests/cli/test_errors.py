"""Every bad input a user can give: one line on stderr ("error: ..."), exit code 2, no traceback (unless --debug).

Each case runs ``run_rl.main`` in-process; ``test_process_exit_and_no_traceback`` checks the same contract on a
real ``python run_rl.py`` process. docs/TRAINING.md ("Bad input: what the user sees") lists
these messages.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import run_rl

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "--env", "Hopper-v5", "--dim", "16", "--depth", "1", "--context-len", "4", "--batch-size", "8",
    "--eval-max-steps", "5", "--eval-envs", "1", "--eval-episodes", "1", "--target-returns", "100", "--threads", "1",
    "--final-eval-episodes", "1", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def inputs(d4rl_file: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths of every bad input: broken datasets, config files, a trained run and damaged copies of it."""
    import h5py

    root = tmp_path_factory.mktemp("bad")
    arrays = d4rl_file.arrays

    def variant(name: str, **changes: np.ndarray) -> str:
        with h5py.File(root / f"{name}.hdf5", "w") as f:
            for key, value in {**arrays, **changes}.items():
                f.create_dataset(key, data=value)
        return str(root / f"{name}.hdf5")

    obs, rewards = arrays["observations"].copy(), arrays["rewards"].copy()
    obs[7, 2], rewards[30] = np.nan, np.inf
    p = {
        "data": str(d4rl_file.path),
        "nan": variant("nan", observations=obs),
        "inf": variant("inf", rewards=rewards),
        "act2": variant("act2", actions=arrays["actions"][:, :2].copy()),
        "root": str(root),
    }
    (root / "unknown.yaml").write_text("contxt_len: 5\n")
    (root / "badvalue.yaml").write_text("lr: fast\n")
    (root / "afile").write_text("a regular file")
    run = root / "run"
    assert run_rl.main(["train", "--dataset", f"d4rl:{p['data']}", *TINY, "--steps", "3", "--out", str(run)]) == 0
    for name in ("other_backbone", "truncated"):
        shutil.copytree(run, root / name)
    state = next((root / "other_backbone" / "checkpoints").glob("step_*/state.json"))
    meta = json.loads(state.read_text())
    meta["config"]["backbone"] = "transformer"  # the weights stay minGRU's
    state.write_text(json.dumps(meta))
    weights = next((root / "truncated" / "checkpoints").glob("step_*/model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    return p


D = ["--dataset", "d4rl:{data}"]
CASES: dict[str, tuple[list[str], str]] = {
    "unknown key (flag)": (
        ["train", *D, *TINY, "--contxt-len", "5"],
        "error: unknown option '--contxt-len' (did you mean --context-len?); valid options: --acting-mode",
    ),
    "unknown key (--set)": (
        ["train", *D, *TINY, "--set", "contxt_len=5"],
        "error: unknown config key 'contxt_len' (did you mean 'context_len'?); valid keys: dataset, env,",
    ),
    "unknown key (YAML)": (
        ["train", "--config", "{root}/unknown.yaml", *D, *TINY],
        "error: unknown config key 'contxt_len' (did you mean 'context_len'?); valid keys:",
    ),
    "mistyped value (flag)": (
        ["train", *D, *TINY, "--lr", "fast"],
        "error: config key 'lr' expects a number, got 'fast'",
    ),
    "mistyped value (--set)": (
        ["train", *D, *TINY, "--set", "bf16=maybe"],
        "error: config key 'bf16' expects true or false, got 'maybe'",
    ),
    "mistyped value (YAML)": (
        ["train", "--config", "{root}/badvalue.yaml", *D, *TINY],
        "error: config key 'lr' expects a number, got 'fast'",
    ),
    "missing dataset (file)": (
        ["train", "--dataset", "d4rl:/nonexistent/hopper.hdf5", *TINY],
        "error: d4rl:/nonexistent/hopper.hdf5: no such file. To create one locally run `python run_rl.py collect",
    ),
    "missing dataset (Minari id)": (
        ["train", "--dataset", "minari:nobody/nothing-v0", *TINY],
        "error: minari:nobody/nothing-v0: dataset 'nobody/nothing-v0' is not in ",
    ),
    "missing dataset (one of ours)": (
        ["train", "--dataset", "minari:minrnn/walker2d/expert-v0", *TINY],
        "To create one locally run `python run_rl.py collect --env walker2d --level expert` (it writes "
        "minari:minrnn/walker2d/expert-v0)",
    ),
    "no dataset": (["train", *TINY], "error: no dataset: pass --dataset minari:<id> or d4rl:<file.hdf5>"),
    "observations do not fit the env": (
        ["train", *D, *TINY, "--env", "HalfCheetah-v5"],
        "'observations' has per-step shape (11,) but HalfCheetah-v5 expects (17,); pass the right env (--env on the",
    ),
    "actions do not fit the env": (
        ["train", "--dataset", "d4rl:{act2}", *TINY],
        "'actions' has per-step shape (2,) but Hopper-v5 expects (3,)",
    ),
    "NaN in the data": (
        ["train", "--dataset", "d4rl:{nan}", *TINY],
        "'observations' holds NaN or inf, first at index 7 (episode 0, step 7, value array([",
    ),
    "inf in the data": (
        ["train", "--dataset", "d4rl:{inf}", *TINY],
        "'rewards' holds NaN or inf, first at index 30 (episode 1, step 4, value np.float32(inf)); drop or repair",
    ),
    "resume with another backbone": (
        ["train", "--out", "{root}/run", "--resume", "--backbone", "lstm", "--steps", "6"],
        "/run was trained with a different model: backbone='lstm' (checkpoint: 'mingru'); drop those overrides",
    ),
    "resume with another width": (
        ["train", "--out", "{root}/run", "--resume", "--dim", "32", "--steps", "6"],
        "/run was trained with a different model: dim=32 (checkpoint: 16)",
    ),
    "eval weights of another backbone": (
        ["eval", "--checkpoint", "{root}/other_backbone"],
        "does not fit the model: missing ['backbone.blocks.0.mixer.qkv.weight'",
    ),
    "eval a truncated checkpoint": (
        ["eval", "--checkpoint", "{root}/truncated"],
        "model.safetensors does not match the sha256 recorded in state.json: it is truncated or was modified",
    ),
    # a negative number after a flag is the flag's value (bad values themselves: tests/agents/test_config.py)
    "K < 0": (["train", *D, *TINY, "--context-len", "-3"], "error: context_len must be >= 1, got -3"),
    "lr < 0": (["train", *D, *TINY, "--lr", "-1e-4"], "error: lr must be > 0, got -0.0001"),
    "unknown dataset spec": (["train", "--dataset", "hopper-medium"], "unknown dataset spec 'hopper-medium'"),
    "eval a missing run": (["eval", "--checkpoint", "/nonexistent/run"], "does not exist"),
    "--resume without --out": (["train", "--resume"], "--resume needs --out"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "output directory under a file (train)": (
        ["train", *D, *TINY, "--out", "{root}/afile/run"],
        "/afile/run' (Not a directory); choose another --out",
    ),
    "output directory under a file (eval)": (
        ["eval", "--checkpoint", "{root}/run", "--out", "{root}/afile/ev"],
        "/afile/ev' (Not a directory); choose another --out",
    ),
    "existing output directory": (
        ["train", *D, *TINY, "--out", "{root}/run"],
        "/run' already exists; pass --resume to continue it, --overwrite to replace it, or choose another --out",
    ),
    "--resume without a checkpoint": (
        ["train", *D, *TINY, "--out", "{root}/nothing", "--resume"],
        "error: --resume: no checkpoint in ",
    ),
    "--resume with --overwrite": (
        ["train", "--out", "{root}/run", "--resume", "--overwrite"],
        "error: --resume and --overwrite contradict each other: pick one",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(
    case: str,
    inputs: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))  # no local Minari datasets, whatever this machine has
    template, message = CASES[case]
    argv = [a.format(**inputs) for a in template]
    if argv[0] == "train" and "--out" not in argv and "--resume" not in argv:
        argv += ["--out", f"{inputs['root']}/never"]
    before = sorted(p.name for p in Path(inputs["root"]).iterdir())
    code = run_rl.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert message.format(**inputs) in err, err
    assert sorted(p.name for p in Path(inputs["root"]).iterdir()) == before  # nothing was written or replaced


def test_process_exit_and_no_traceback(inputs: dict[str, str]) -> None:
    """The same contract on a real process; --debug adds the traceback."""
    cmd = [sys.executable, str(ROOT / "run_rl.py"), "train", "--dataset", f"d4rl:{inputs['nan']}", *TINY,
           "--out", f"{inputs['root']}/never"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: d4rl:") and "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--debug"], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "holds NaN or inf" in proc.stderr
