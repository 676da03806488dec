"""Listing local Minari datasets with return statistics."""

from pathlib import Path

import numpy as np

from envs import format_table, list_local_datasets
from envs.listing import COLUMNS


def test_lists_both_fixture_datasets(minari_datasets) -> None:
    rows = list_local_datasets(minari_datasets.root)
    assert [r["id"] for r in rows] == sorted([minari_datasets.ours_id, minari_datasets.ref_id])
    returns = np.array([r.rewards.sum() for r in minari_datasets.rollouts])
    for row in rows:
        assert list(row) == list(COLUMNS)
        assert row["env"] == "Hopper-v5"
        assert row["episodes"] == len(minari_datasets.rollouts)
        assert row["transitions"] == sum(len(r.rewards) for r in minari_datasets.rollouts)
        got = [row["return_mean"], row["return_std"], row["return_min"], row["return_max"]]
        np.testing.assert_allclose(got, [returns.mean(), returns.std(), returns.min(), returns.max()], rtol=1e-6)
    assert list_local_datasets() == rows  # default root: $MINARI_DATASETS_PATH, set by the fixture


def test_format_table(minari_datasets) -> None:
    text = format_table(list_local_datasets(minari_datasets.root))
    lines = text.splitlines()
    assert lines[0].split() == list(COLUMNS) and len(lines) == 3
    assert minari_datasets.ours_id in text and "Hopper-v5" in text


def test_empty_root(tmp_path: Path) -> None:
    assert list_local_datasets(tmp_path / "absent") == []
    assert format_table([]).startswith("no local Minari datasets found under")
