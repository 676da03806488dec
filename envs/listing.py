"""List the local Minari datasets with their return statistics (for ``python run_rl.py datasets``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from envs.datasets import minari_root

#: Columns of ``list_local_datasets`` rows, in display order.
COLUMNS: tuple[str, ...] = (
    "id",
    "env",
    "episodes",
    "transitions",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
)


def _episode_returns(data_path: Path, metadata: dict[str, Any]) -> np.ndarray:
    """(E,) episode returns, reading only the rewards when the storage is HDF5."""
    if metadata.get("data_format", "hdf5") == "hdf5":
        with h5py.File(data_path / "main_data.hdf5", "r") as f:
            return np.array([float(np.sum(f[name]["rewards"][()], dtype=np.float64)) for name in f])
    from minari.dataset.minari_dataset import MinariDataset

    return np.array([float(np.sum(ep.rewards, dtype=np.float64)) for ep in MinariDataset(data_path)])


def _row(dataset_id: str, data_path: Path) -> dict[str, Any]:
    metadata = json.loads((data_path / "metadata.json").read_text())
    env_spec = metadata.get("env_spec")
    env = json.loads(env_spec).get("id", "?") if env_spec else "?"
    returns = _episode_returns(data_path, metadata)
    stats = (returns.mean(), returns.std(), returns.min(), returns.max()) if len(returns) else (np.nan,) * 4
    return {
        "id": dataset_id,
        "env": env,
        "episodes": int(metadata.get("total_episodes", len(returns))),
        "transitions": int(metadata.get("total_steps", 0)),
        **{k: float(v) for k, v in zip(COLUMNS[4:], stats, strict=True)},
    }


def list_local_datasets(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per Minari dataset under ``root`` (default $MINARI_DATASETS_PATH or ~/.minari/datasets).

    Rows hold ``COLUMNS``: id (use it as "minari:<id>"), env (Gymnasium id), episodes, transitions and the
    mean/std/min/max of episode returns. A dataset that cannot be read is skipped with a warning.
    """
    base = Path(root) if root is not None else minari_root()
    if not base.is_dir():
        return []
    rows = []
    for meta in sorted(base.rglob("data/metadata.json")):
        data_path = meta.parent
        dataset_id = data_path.parent.relative_to(base).as_posix()
        try:
            rows.append(_row(dataset_id, data_path))
        except (OSError, KeyError, ValueError) as err:
            warnings.warn(f"skipping unreadable dataset {dataset_id!r} at {data_path}: {err}", stacklevel=2)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width text table of ``list_local_datasets`` rows.

    >>> print(format_table([{"id": "a/b-v0", "env": "Hopper-v5", "episodes": 2, "transitions": 30,
    ...                      "return_mean": 1.5, "return_std": 0.5, "return_min": 1.0, "return_max": 2.0}]))
    id      env        episodes  transitions  return_mean  return_std  return_min  return_max
    a/b-v0  Hopper-v5         2           30          1.5         0.5         1.0         2.0
    """
    if not rows:
        return f"no local Minari datasets found under {minari_root()}"
    cells = [list(COLUMNS)] + [[_fmt(row[c]) for c in COLUMNS] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = []
    for r in cells:
        parts = [r[0].ljust(widths[0]), r[1].ljust(widths[1])] + [
            c.rjust(w) for c, w in zip(r[2:], widths[2:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)
