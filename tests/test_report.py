"""Multi-seed summaries: unbiased std checked by hand; missing and non-finite seeds are not averaged away."""

import math

import pytest

from graphnet import report


def test_mean_and_unbiased_std_by_hand():
    s = report.summarize({"test_acc": [0.80, 0.82, 0.84], "one": [0.5]})
    assert s["test_acc"]["mean"] == pytest.approx(0.82)
    # sum of squared deviations 0.02^2 + 0 + 0.02^2 = 8e-4, over n - 1 = 2: std 0.02 (population std: 0.0163)
    assert s["test_acc"]["std"] == pytest.approx(0.02) and s["test_acc"]["n"] == 3
    assert s["one"] == {"mean": 0.5, "std": None, "values": [0.5], "n": 1}  # no fake "± 0" for one seed


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_a_missing_or_non_finite_seed_voids_mean_and_std_and_shows_as_na(bad):
    s = report.summarize({"test_acc": [0.8, bad, 0.9]})
    assert s["test_acc"] == {"mean": None, "std": None, "values": [0.8, None, 0.9], "n": 3}
    rows = report.table_rows(s)
    assert rows[1] == ["test_acc", "", "", "3", "0.8000 n/a 0.9000"]


def test_collect_counts_a_key_missing_from_one_seed():
    results = [{"metrics": {"test_acc": 0.8, "val_acc": 0.7}}, {"metrics": {"test_acc": 0.9}}]
    assert report.collect(results) == {"test_acc": [0.8, 0.9], "val_acc": [0.7, None]}
    assert report.summarize(report.collect(results))["val_acc"]["mean"] is None
