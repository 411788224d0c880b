"""The detections of a score curve at every threshold at once.

A curve is one class's scores in one clip, given as *values* with a sentinel before its first and after its last
frame; the sentinel is the same for every curve and at most every value. Values are either levels (how many
decision thresholds a score passes, small integers) or the scores themselves (every distinct score a threshold).
At a threshold ``t`` the detections are the maximal runs of frames with value ``>= t``.

Runs at successive thresholds nest, so the detections of all thresholds form a tree: the run of frames
``[a, b)`` is a detection exactly for ``lo < t <= hi`` with ``lo = max(value[a - 1], value[b])`` (its borders) and
``hi = min(value[a:b])`` (its lowest frame). :func:`curve_runs` lists each such run once with its ``(lo, hi]``
range; a curve of ``T`` frames has at most ``T`` of them however many thresholds there are. Each is found from
the step that opens it: a rise at ``a`` opens the run that ends at the first frame after it at most as high as
``value[a - 1]``; a fall at ``b`` closes the run that starts after the last frame before it at most as high as
``value[b]``. Those nearest frames come from a table of running minima over windows of 1, 2, 4, ... frames (binary
lifting), so the cost is ``O(frames x log frames)``, independent of the number of thresholds.
"""
from __future__ import annotations

import numpy as np


def score_levels(scores: np.ndarray, thresholds: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Levels of ``scores``: how many of the sorted ``thresholds`` each score passes.

    A frame is active at threshold ``k`` when its level is above ``k``; it passes a threshold by exceeding it
    (psds_eval, the DCASE decoding) or, with ``inclusive``, by reaching it (sed_scores_eval). NaN scores get level
    0 (never active).

    Returns:
        Levels of the same shape, in the smallest unsigned integer type that holds ``len(thresholds)``.
    """
    levels = np.zeros(scores.shape, dtype=np.min_scalar_type(len(thresholds)))
    # Most frames of most classes pass no threshold; only the others are searched (NaN passes none).
    passing = scores >= thresholds[0] if inclusive else scores > thresholds[0]
    levels[passing] = np.searchsorted(thresholds, scores[passing], side="right" if inclusive else "left")
    return levels


def run_starts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where runs open, enough to count the detections of every threshold.

    Args:
        values: ``(N, W)`` curves, sentinels in their first and last columns.

    Returns:
        ``(row, start, lo, hi)``: at thresholds ``lo < t <= hi`` a detection starts at column ``start``.
    """
    flat = values.reshape(-1)
    # Flattened, one curve's last sentinel meets the next one's first: no step between them.
    rises = np.flatnonzero(flat[1:] > flat[:-1]) + 1
    rows, starts = np.divmod(rises, values.shape[1])
    return rows, starts, flat[rises - 1], flat[rises]


def join_rises(
    rows: np.ndarray, starts: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Joins :func:`run_starts` of consecutive columns: across a steady rise, each threshold sees a run start at
    exactly one of them, so the rise counts as one start for ``lo`` of its first column ``< t <=`` ``hi`` of its
    last (fewer deltas, same counts). Starts dropped before (e.g. outside a clip) end a rise.

    Returns:
        ``(row, start, lo, hi)`` of the joined rises, ``start`` their first column.
    """
    if rows.size == 0:
        return rows, starts, lo, hi
    continues = np.zeros(rows.size, dtype=bool)
    continues[1:] = (rows[1:] == rows[:-1]) & (starts[1:] == starts[:-1] + 1)
    first = np.flatnonzero(~continues)
    last = np.append(first[1:] - 1, rows.size - 1)
    return rows[first], starts[first], lo[first], hi[last]


def curve_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct detection of every threshold, once.

    Args:
        values: ``(N, W)`` curves, sentinels in their first and last columns.

    Returns:
        ``(row, start, stop, lo, hi)``: columns ``[start, stop)`` of curve ``row`` are a detection at thresholds
        ``lo < t <= hi``. Runs opened by a rise come first, then those whose closing fall is the higher border.
    """
    flat = values.reshape(-1)
    minima = _running_minima(flat, values.shape[1])
    starts = np.flatnonzero(flat[1:] > flat[:-1]) + 1
    lo = flat[starts - 1]
    stops = _first_at_most(minima, starts, lo)

    fall_stops = np.flatnonzero(flat[1:] < flat[:-1]) + 1
    fall_lo = flat[fall_stops]
    before = _last_at_most(minima, fall_stops - 1, fall_lo)
    # A run whose borders are equally high was already opened by its rise.
    higher = flat[before] < fall_lo

    starts = np.concatenate([starts, before[higher] + 1])
    stops = np.concatenate([stops, fall_stops[higher]])
    lo = np.concatenate([lo, fall_lo[higher]])
    hi = _range_minimum(minima, starts, stops)
    rows, starts = np.divmod(starts, values.shape[1])
    return rows, starts, stops - rows * values.shape[1], lo, hi


def _running_minima(flat: np.ndarray, width: int) -> np.ndarray:
    """``minima[j, i] = min(flat[i : i + 2**j])`` (cut at the end), for windows up to a curve's ``width``.

    Curves lie end to end in ``flat``; a window reaching into a neighbour holds a sentinel, so searches that stop
    at sentinels never leave their curve.
    """
    n_levels = max(1, int(np.ceil(np.log2(width))))
    minima = np.empty((n_levels, flat.size), dtype=flat.dtype)
    minima[0] = flat
    for j in range(1, n_levels):
        step = 1 << (j - 1)
        np.minimum(minima[j - 1, :-step], minima[j - 1, step:], out=minima[j, :-step])
        minima[j, -step:] = minima[j - 1, -step:]
    return minima


def _first_at_most(minima: np.ndarray, start: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """First position at or after ``start`` whose value is at most ``bound`` (a curve's last column always is)."""
    position = start.copy()
    for j in range(len(minima) - 1, -1, -1):
        # Every value in [start, position) is above bound; a window without a sentinel stays inside the curve.
        above = minima[j].take(position) > bound
        position[above] += 1 << j
    return position


def _last_at_most(minima: np.ndarray, start: np.ndarray, bound: np.ndarray) -> np.ndarray:
    """Last position at or before ``start`` whose value is at most ``bound`` (a curve's first column always is)."""
    position = start.copy()
    for j in range(len(minima) - 1, -1, -1):
        # Window (position - 2**j, position]; one reaching before position 0 holds the first sentinel either way.
        above = minima[j].take(np.maximum(position - (1 << j) + 1, 0)) > bound
        position[above] -= 1 << j
    return position


def _range_minimum(minima: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``min(flat[start:stop])`` of non-empty ranges, from two overlapping power-of-two windows."""
    level = np.zeros(stop.size, dtype=np.int64)
    length = stop - start
    for j in range(1, len(minima)):
        level += length >= (1 << j)
    table = minima.reshape(-1)
    first = table.take(level * minima.shape[1] + start)
    second = table.take(level * minima.shape[1] + stop - (1 << level))
    return np.minimum(first, second)
