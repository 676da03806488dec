"""sweep.stats against independent computations: numpy's ddof=1 std, scipy's t interval, a hand-computed IQM and
probability of improvement, a hand-counted time to score."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from fakes import HOPPER_DATA, fake_run
from rliable import metrics
from scipy import stats as sps

from sweep import records, stats


def _scores(table: dict[tuple[str, str], list[float]], data: dict[str, float]) -> pd.DataFrame:
    rows = [{"dataset": d, "agent": a, "seed": i, "score": v, "return": np.nan, "updates": 1000,
             "train_minutes": 4.0, "clock": "cpu", "data_score": data[d]}
            for (d, a), vs in table.items() for i, v in enumerate(vs)]  # fmt: skip
    return pd.DataFrame(rows)


def test_sample_std_and_t_interval():
    x = [40.3, 42.2, 96.6]
    assert stats.sample_std(x) == pytest.approx(np.std(x, ddof=1)) == pytest.approx(31.97, abs=0.01)
    lo, hi = stats.t_interval(x)
    ref = sps.t.interval(0.95, 2, loc=np.mean(x), scale=sps.sem(x))
    assert (lo, hi) == pytest.approx(ref)
    assert np.isnan(stats.sample_std([1.0])) and all(np.isnan(stats.t_interval([1.0])))


def test_per_dataset_counts_seeds_at_or_above_the_data():
    scores = _scores({("hopper-medium", "mingru"): [40.3, 42.2, 96.6], ("hopper-medium", "dt"): [60.0, 61.0, 10.0]},
                     {"hopper-medium": 50.0})  # fmt: skip
    table = stats.per_dataset(scores).set_index("agent")
    assert table.loc["mingru", "at_data"] == 1 and table.loc["dt", "at_data"] == 2  # the mean 59.7 would say "at"
    assert table.loc["mingru", "std"] == pytest.approx(np.std([40.3, 42.2, 96.6], ddof=1))
    counts = stats.at_data_counts(table.reset_index()).set_index("agent")
    assert counts.loc["mingru", ["seeds_at", "seeds", "datasets_at", "datasets"]].tolist() == [1, 3, 0, 1]
    assert counts.loc["dt", "datasets_at"] == 1


def test_aggregates_and_probability_of_improvement_by_hand():
    a = {"d1": [1.0, 2.0, 3.0, 4.0], "d2": [5.0, 6.0, 7.0, 8.0]}
    b = {"d1": [0.0, 0.0, 10.0, 10.0], "d2": [5.0, 5.0, 5.0, 5.0]}
    table = {(d, "a"): v for d, v in a.items()} | {(d, "b"): v for d, v in b.items()}
    scores = _scores(table, {"d1": 0.0, "d2": 0.0})
    agg = stats.aggregates(scores, reps=200).set_index("agent")
    # IQM of a's 8 runs: drop the lowest and highest two (1, 2, 7, 8), mean of 3, 4, 5, 6.
    assert agg.loc["a", "iqm"] == pytest.approx(4.5) and agg.loc["a", "mean"] == pytest.approx(4.5)
    assert agg.loc["b", "iqm"] == pytest.approx(5.0)  # 0 0 5 5 5 5 10 10 -> 5 5 5 5
    assert agg.loc["a", "iqm_lo"] <= 4.5 <= agg.loc["a", "iqm_hi"]
    assert agg.loc["b", "mean_lo"] < agg.loc["b", "mean_hi"]
    poi = stats.improvement(scores, "b", reps=200).set_index("agent")
    # d1: pairs (a > b) count 1 each when b = 0 (8 of 16), ties count half: none; d2: a > 5 in 3 of 4 runs, a = 5
    # once (half): (12 + 2) / 16.
    assert poi.loc["a", "poi"] == pytest.approx((8 / 16 + 14 / 16) / 2)
    assert poi.loc["a", "lo"] <= poi.loc["a", "poi"] <= poi.loc["a", "hi"]
    with pytest.raises(ValueError, match="no baseline agent 'c'"):
        stats.improvement(scores, "c")


def _exact_distribution(statistic, matrices):
    """The stratified bootstrap's distribution of ``statistic`` computed exactly: its value on every resample of
    every task's runs of every matrix (each equally likely), enumerated."""
    choices = [list(itertools.product(range(m.shape[0]), repeat=m.shape[0])) for m in matrices for _ in m.T]
    values = []
    for pick in itertools.product(*choices):
        it = iter(pick)
        resampled = [np.stack([m[list(next(it)), t] for t in range(m.shape[1])], axis=1) for m in matrices]
        values.append(statistic(*resampled))
    return np.array(values)


def _is_quantile(values, q, p, tol=0.015):
    """Whether ``q`` is a ``p``-quantile of the equally likely ``values`` (up to ``tol`` of probability): at most
    p of them lie below it and at least p at or below it; the distribution is discrete, so a range of q qualify."""
    return np.mean(values < q) - tol <= p <= np.mean(values <= q) + tol


def _iqm(m):
    """Mean of the middle half of all runs (a quarter cut at each end), by sorting: rliable's IQM, written out."""
    x = np.sort(m.ravel())
    cut = len(x) // 4
    return x[cut : len(x) - cut].mean()


def _poi(x, y):
    """P(X > Y) + P(X = Y) / 2 per task by counting every pair, averaged over tasks."""
    per_task = [np.mean([(a > b) + 0.5 * (a == b) for a in x[:, t] for b in y[:, t]]) for t in range(x.shape[1])]
    return np.mean(per_task)


def test_stratified_bootstrap_matches_the_exact_enumeration():
    """On cases small enough to enumerate every resample (729 each), the Monte-Carlo percentile interval agrees with
    the exact one: IQM and mean over one agent's 3 seeds x 2 datasets, and the probability of improvement of 3 seeds
    over 3 (resampled independently)."""
    m = np.array([[1.0, 12.0], [4.0, 30.0], [9.0, 20.0]])
    x, y = np.array([[3.0], [5.0], [8.0]]), np.array([[2.0], [5.0], [9.0]])
    cases = [(metrics.aggregate_iqm, _iqm, [m], 4000), (metrics.aggregate_mean, np.mean, [m], 4000),
             (metrics.probability_of_improvement, _poi, [x, y], 2000)]  # fmt: skip
    for fn, ref, matrices, reps in cases:
        assert fn(*matrices) == pytest.approx(ref(*matrices))
        exact = _exact_distribution(ref, matrices)
        lo, hi = stats.stratified_bootstrap(fn, matrices, reps=reps)
        assert _is_quantile(exact, lo, 0.025) and _is_quantile(exact, hi, 0.975), (fn.__name__, lo, hi)
        assert not _is_quantile(exact, lo, 0.1) and not _is_quantile(exact, hi, 0.9)  # the check can fail


def test_probability_of_improvement_is_the_mann_whitney_u_over_pairs():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, (5, 3)).round(1), rng.normal(0.0, 1.0, (5, 3)).round(1)
    table = {(f"d{t}", "a"): list(a[:, t]) for t in range(3)} | {(f"d{t}", "b"): list(b[:, t]) for t in range(3)}
    poi = stats.improvement(_scores(table, dict.fromkeys(["d0", "d1", "d2"], 0.0)), "b", reps=50)
    u = [sps.mannwhitneyu(a[:, t], b[:, t]).statistic / 25 for t in range(3)]
    assert poi.set_index("agent").loc["a", "poi"] == pytest.approx(np.mean(u))


def test_one_run_per_task_has_no_bootstrap_interval():
    one, two = np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]])
    assert all(np.isnan(stats.stratified_bootstrap(metrics.aggregate_mean, [one], reps=10)))
    assert all(np.isnan(stats.stratified_bootstrap(metrics.probability_of_improvement, [two, one], reps=10)))
    lo, hi = stats.stratified_bootstrap(metrics.aggregate_mean, [two], reps=200)
    assert lo < 3.0 < hi


def test_stratified_bootstrap_resamples_within_each_task():
    m = np.array([[0.0, 10.0], [0.0, 20.0]])  # task 0 never varies; task 1's mean lies in [10, 20]
    lo, hi = stats.stratified_bootstrap(lambda x: x.mean(), [m], reps=500)
    assert 5.0 <= lo <= hi <= 10.0 and hi - lo > 1.0


def test_updates_per_minute_and_equal_updates(tmp_path):
    fake_run(tmp_path, "hopper-medium", "mingru", 0, [10.0, 20.0, 30.0, 40.0], minutes=[1, 2, 3, 4])
    fake_run(tmp_path, "hopper-medium", "dt", 0, [5.0, 6.0], minutes=[2, 4])
    df, _ = records.collect(tmp_path, "x")
    speed = stats.updates_per_minute(stats.scores_of(df)).set_index("agent")
    assert speed.loc["mingru", "median"] == 1000.0 and speed.loc["dt", "median"] == 500.0
    n, matched = stats.at_updates(df)
    assert n == 2000  # dt's final update count, the smaller
    assert matched.set_index("agent").loc["mingru", "score"] == 20.0  # mingru's evaluation at 2000 updates
    between = stats.at_updates(df, 2500)[1].set_index("agent")  # the last evaluation at or before: 2000 each
    assert between.loc["mingru", ["updates", "score"]].tolist() == [2000, 20.0]
    assert between.loc["dt", ["updates", "score"]].tolist() == [2000, 6.0]
    assert "mingru" not in stats.at_updates(df, 999)[1]["agent"].tolist()  # no evaluation that early
    table = stats.per_dataset(stats.scores_of(df)).set_index("agent")
    assert table.loc["mingru", ["updates", "per_minute", "clock"]].tolist() == [4000, 1000.0, "cpu"]


def test_time_to_score_by_hand(tmp_path):
    """hopper-medium: dt x3 (final 60), mingru x2, minlstm x1 (never there); walker2d-medium: dt, mingru."""
    for seed, (m, s) in enumerate([([1, 2, 3, 4], [20, 45, 55, 60]), ([1, 2, 3, 4], [30, 52, 58, 70]),
                                   ([1.5, 3, 4.5], [10, 40, 50])]):  # fmt: skip
        fake_run(tmp_path, "hopper-medium", "dt", seed, s, minutes=m)  # seed 2: 50 < 50.31, never the data
    fake_run(tmp_path, "hopper-medium", "mingru", 0, [40, 55, 62, 65], minutes=[0.5, 1, 1.5, 2])
    fake_run(tmp_path, "hopper-medium", "mingru", 1, [50, 51, 59, 61], minutes=[0.5, 1, 1.5, 2.5])
    fake_run(tmp_path, "hopper-medium", "minlstm", 0, [10, 20], minutes=[1, 2])
    fake_run(tmp_path, "walker2d-medium", "dt", 0, [45, 80], minutes=[2, 5])
    fake_run(tmp_path, "walker2d-medium", "mingru", 0, [60, 70, 85], minutes=[1, 2, 3])
    tts = stats.time_to_score(records.collect(tmp_path, "x")[0], "dt")
    assert tts["clock"] == {"cpu": 8}
    hopper, walker = tts["datasets"]["hopper-medium"], tts["datasets"]["walker2d-medium"]
    assert hopper["data"] == pytest.approx(HOPPER_DATA) and hopper["baseline_final"] == pytest.approx(60.0)
    dt = hopper["agents"]["dt"]
    assert dt["to_data"] == {"minutes": 2.5, "reached": 2, "seeds": 3, "per_seed": [3, 2, None]}
    assert dt["to_baseline"] == {"minutes": 4.0, "reached": 2, "seeds": 3, "per_seed": [4, 4, None]}
    mingru = hopper["agents"]["mingru"]
    assert mingru["to_data"]["per_seed"] == [1, 1] and mingru["to_baseline"]["per_seed"] == [1.5, 2.5]
    assert hopper["agents"]["minlstm"]["to_data"] == {"minutes": None, "reached": 0, "seeds": 1, "per_seed": [None]}
    assert "minlstm" not in walker["agents"] and walker["agents"]["mingru"]["to_baseline"]["minutes"] == 3
    avg = tts["average"]
    assert avg["dt"]["to_data"] == {"minutes": pytest.approx((2.5 + 5) / 2), "datasets": 2, "of": 2}
    assert avg["mingru"]["to_baseline"]["minutes"] == pytest.approx((2 + 3) / 2)
    assert avg["mingru"]["ratio"] == {"ratio": pytest.approx((2 / 4 + 3 / 5) / 2), "datasets": 2}
    assert avg["dt"]["ratio"] == {"ratio": 1.0, "datasets": 2}
    assert avg["minlstm"]["to_data"] == {"minutes": None, "datasets": 0, "of": 1}


def test_more_seeds_on_some_datasets():
    """5 seeds on d1 and 3 on d2: the IQM and mean pool the 3 seeds both have, so d1 does not weigh more; the
    probability of improvement counts every pair on each dataset, averaged over the two."""
    table = {("d1", "a"): [1.0, 2.0, 3.0, 4.0, 5.0], ("d2", "a"): [10.0, 20.0, 30.0],
             ("d1", "b"): [0.0, 2.0, 6.0, 6.0, 6.0], ("d2", "b"): [15.0, 15.0, 15.0]}  # fmt: skip
    scores = _scores(table, {"d1": 0.0, "d2": 0.0})
    agg = stats.aggregates(scores, reps=100).set_index("agent")
    assert agg.loc["a", ["runs", "seeds"]].tolist() == [6, 3]
    assert agg.loc["a", "mean"] == pytest.approx(np.mean([1.0, 2.0, 3.0, 10.0, 20.0, 30.0]))
    poi = stats.improvement(scores, "b", reps=100).set_index("agent").loc["a"]
    d1 = np.mean([(x > y) + 0.5 * (x == y) for x in table["d1", "a"] for y in table["d1", "b"]])
    assert d1 == pytest.approx(8.5 / 25)
    assert poi["poi"] == pytest.approx((d1 + 2 / 3) / 2)
    assert poi[["runs", "baseline_runs"]].tolist() == [8, 8]


def test_stratified_bootstrap_of_runs_of_different_lengths_matches_the_exact_enumeration():
    """Per-task run arrays of different lengths (3 runs against 4) are resampled each at its own length: the
    percentile interval of P(X > Y) agrees with the exact one over all 27 x 256 resamples."""
    x, y = [np.array([3.0, 5.0, 8.0])], [np.array([2.0, 5.0, 9.0, 4.0])]
    xs = x[0][np.array(list(itertools.product(range(3), repeat=3)))][:, None, :, None]  # (27, 1, 3, 1)
    ys = y[0][np.array(list(itertools.product(range(4), repeat=4)))][None, :, None, :]  # (1, 256, 1, 4)
    exact = ((xs > ys) + 0.5 * (xs == ys)).mean(axis=(2, 3)).ravel()  # every pair counted, per resample
    assert stats.probability_of_improvement(x, y) == pytest.approx(_poi(x[0][:, None], y[0][:, None]))
    lo, hi = stats.stratified_bootstrap(stats.probability_of_improvement, [x, y], reps=2000)
    assert _is_quantile(exact, lo, 0.025) and _is_quantile(exact, hi, 0.975), (lo, hi)
    assert not _is_quantile(exact, lo, 0.1) and not _is_quantile(exact, hi, 0.9)
    assert all(np.isnan(stats.stratified_bootstrap(stats.probability_of_improvement, [x, [y[0][:1]]], reps=10)))
