"""D4RL-normalised scores against hand-computed numbers (D4RL's d4rl/infos.py references)."""

import numpy as np
import pytest

from envs import D4RL_REF, normalized_score
from envs.scores import d4rl_env_key, normalize_with, reference_for


def test_table_matches_d4rl() -> None:
    assert D4RL_REF == {
        "halfcheetah": (-280.178953, 12135.0),
        "hopper": (-20.272305, 3234.3),
        "walker2d": (1.629008, 4592.3),
    }


@pytest.mark.parametrize(
    ("name", "ret", "expected"),
    [
        # 100 * (R - min) / (max - min), computed by hand
        ("hopper", 3234.3, 100.0),
        ("hopper", -20.272305, 0.0),
        ("Hopper-v5", 1000.0, 100 * 1020.272305 / 3254.572305),
        ("hopper-medium-v2", 1617.0, 100 * 1637.272305 / 3254.572305),
        ("halfcheetah", 4000.0, 100 * 4280.178953 / 12415.178953),
        ("HalfCheetah-v5", 12135.0, 100.0),
        ("walker2d", 2000.0, 100 * 1998.370992 / 4590.670992),
        ("minrnn/walker2d/medium-v0", 1.629008, 0.0),
    ],
)
def test_normalized_score_by_hand(name: str, ret: float, expected: float) -> None:
    got = normalized_score(name, [ret])
    assert got.shape == (1,)
    np.testing.assert_allclose(got[0], expected, rtol=1e-12, atol=1e-9)


def test_normalized_score_keeps_shape() -> None:
    r = np.array([[0.0, 3234.3], [-20.272305, 1617.0]])
    assert normalized_score("hopper", r).shape == (2, 2)


def test_aliases() -> None:
    assert d4rl_env_key("half_cheetah-medium") == "halfcheetah"
    assert d4rl_env_key("Walker2d-v5") == "walker2d"
    assert d4rl_env_key("Ant-v5") is None


def test_unknown_env_error() -> None:
    with pytest.raises(ValueError, match=r"no D4RL reference score for env 'Ant-v5'.*'hopper'"):
        normalized_score("Ant-v5", [1.0])


def test_reference_errors() -> None:
    with pytest.raises(ValueError, match=r"score_reference='minari' needs ref_min and ref_max"):
        reference_for("hopper", "minari")
    with pytest.raises(ValueError, match=r"unknown score_reference 'paper'"):
        reference_for("hopper", "paper")
    with pytest.raises(ValueError, match=r"ref_max > ref_min"):
        normalize_with([1.0], 5.0, 5.0)
