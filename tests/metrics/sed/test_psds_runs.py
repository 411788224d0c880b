"""The detections of a score curve at every threshold (psds_runs) against per-threshold decoding."""
import numpy as np
import pytest

from metrics.sed.psds_runs import curve_runs, join_rises, run_starts, score_levels


def _runs_at(values: np.ndarray, threshold: float) -> set[tuple[int, int, int]]:
    """Brute force: (row, start, stop) of every maximal run of values >= threshold."""
    runs = set()
    for row, curve in enumerate(values):
        edges = np.diff(np.concatenate([[0], (curve >= threshold).astype(int), [0]]))
        runs |= {(row, int(a), int(b)) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1))}
    return runs


def test_curve_runs_hand_case():
    # Levels 1 3 1 2 between sentinels: one run at threshold 1, two at 2 ([2, 3) and [4, 5)), one at 3.
    values = np.array([[0, 1, 3, 1, 2, 0]], dtype=np.uint8)
    rows, starts, stops, lo, hi = curve_runs(values)
    found = sorted(zip(rows.tolist(), starts.tolist(), stops.tolist(), lo.tolist(), hi.tolist()))
    assert found == [(0, 1, 5, 0, 1), (0, 2, 3, 1, 3), (0, 4, 5, 1, 2)]
    rows, starts, lo, hi = run_starts(values)
    assert sorted(zip(starts.tolist(), lo.tolist(), hi.tolist())) == [(1, 0, 1), (2, 1, 3), (4, 1, 2)]
    # The rise 0 -> 1 -> 3 over columns 1-2 is one start for thresholds 1 to 3.
    rows, starts, lo, hi = join_rises(rows, starts, lo, hi)
    assert list(zip(starts.tolist(), lo.tolist(), hi.tolist())) == [(1, 0, 3), (4, 1, 2)]


@pytest.mark.parametrize("kind", ["levels", "scores"])
def test_curve_runs_are_the_runs_of_every_threshold(kind):
    rng = np.random.default_rng(0 if kind == "levels" else 1)
    for _ in range(40):
        n, width = int(rng.integers(1, 5)), int(rng.integers(3, 40))
        values = np.zeros((n, width)) if kind == "scores" else np.zeros((n, width), dtype=np.uint8)
        inner = rng.integers(0, 6, (n, width - 2)) if kind == "levels" else rng.random((n, width - 2)).round(1)
        values[:, 1:-1] = inner
        if kind == "scores":
            values[:, [0, -1]] = -np.inf
        rows, starts, stops, lo, hi = curve_runs(values)
        assert np.all(lo < hi)
        # Each listed run exists at every threshold of its range and nowhere else; every run is listed once.
        for threshold in np.unique(values[np.isfinite(values) & (values > 0)]):
            present = (lo < threshold) & (threshold <= hi)
            assert set(zip(rows[present].tolist(), starts[present].tolist(), stops[present].tolist())) == _runs_at(
                values, threshold
            )
            assert present.sum() == len(_runs_at(values, threshold))
            for starting in (run_starts(values), join_rises(*run_starts(values))):
                assert np.sum((starting[2] < threshold) & (threshold <= starting[3])) == present.sum()
        assert len(set(zip(rows.tolist(), starts.tolist(), stops.tolist()))) == rows.size


def test_score_levels_exceed_or_reach():
    thresholds = np.array([0.1, 0.5, 0.9])
    scores = np.array([0.05, 0.1, 0.3, 0.5, 0.95, np.nan])
    assert score_levels(scores, thresholds).tolist() == [0, 0, 1, 1, 3, 0]
    assert score_levels(scores, thresholds, inclusive=True).tolist() == [0, 1, 1, 2, 3, 0]
    assert score_levels(scores, thresholds).dtype == np.uint8
