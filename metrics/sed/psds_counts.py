"""Intersection-based counts (TP, FP, cross-triggers) of every operating point, from frame scores in one pass.

The engine behind :class:`metrics.sed.psds.ReferenceSet`. Clips are read in batches of bounded size, so memory does
not grow with the number of clips or thresholds. Within a batch, each class curve's detections at all thresholds
come from :func:`metrics.sed.psds_runs.curve_runs` (a detection that persists over several thresholds is judged
once) and are kept as *deltas keyed by threshold value* (:mod:`metrics.sed.psds_deltas`): a detection present for
thresholds ``lo < t <= hi`` adds one at ``hi`` and removes one at ``lo``; the count at ``t`` is the sum of the
deltas keyed ``>= t``. Curves of a
clip without events of their class (nor, with cross-triggers, of any class) only count false positives, which the
rises of the curve give directly (:func:`metrics.sed.psds_runs.run_starts`).

Keys are levels (a fixed list of K thresholds, dense counts) or the scores themselves (every distinct score a
threshold, as sed_scores_eval evaluates; one curve per class). The criteria follow psds_eval
(:data:`PSDS_EVAL`) or sed_scores_eval (:data:`SED_SCORES_EVAL`).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from metrics.sed.psds_deltas import Deltas
from metrics.sed.psds_runs import curve_runs, join_rises, run_starts
from metrics.sed.scores import ClipScores

if TYPE_CHECKING:
    from metrics.sed.psds import ReferenceSet

# Bound on detection/ground-truth pairs held at once (memory, not results).
_MAX_PAIRS_PER_CHUNK = 4_000_000
# Scores read at once (clips x frames x classes): 64 MB of float64.
_MAX_SCORES_PER_BATCH = 1 << 23


@dataclass(frozen=True)
class Convention:
    """How a toolkit decides activity and the intersection criteria.

    Attributes:
        inclusive: A frame is active when its score reaches the threshold (sed_scores_eval), not only when it
            exceeds it (psds_eval, the DCASE decoding).
        decimals: ``None``: summed intersection fractions are compared with the criterion (psds_eval); otherwise
            summed intersections in seconds and criterion x length, both rounded to this many decimals
            (sed_scores_eval's ``time_decimals``).
        in_clip_only: A false positive must overlap its clip (psds_eval).
    """

    inclusive: bool
    decimals: int | None
    in_clip_only: bool


PSDS_EVAL = Convention(inclusive=False, decimals=None, in_clip_only=True)
SED_SCORES_EVAL = Convention(inclusive=True, decimals=6, in_clip_only=False)


@dataclass(frozen=True)
class Criteria:
    """Intersection criteria of one evaluation (see :class:`metrics.sed.psds.PSDSParams`)."""

    dtc: float
    gtc: float
    cttc: float = 0.3
    cross_triggers: bool = False
    convention: Convention = PSDS_EVAL

    def __post_init__(self) -> None:
        if self.cross_triggers and self.convention.decimals is not None:
            raise ValueError("cross-triggers are counted with the psds_eval convention only")


@dataclass(frozen=True, eq=False)
class Detections:
    """Detections (indices into a :class:`ReferenceSet`), each present for thresholds ``lo < t <= hi``."""

    clip: np.ndarray
    cls: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    lo: np.ndarray
    hi: np.ndarray



def scan_scores(
    reference: "ReferenceSet",
    scores: Mapping[str, ClipScores],
    criteria: Criteria,
    floors: np.ndarray,
    to_values: Callable[[np.ndarray, np.ndarray], np.ndarray],
    deltas: Deltas,
) -> None:
    """Adds the deltas of every clip's scores, a batch of clips at a time.

    Args:
        reference: The evaluation set; clips it lacks are ignored, as are score columns of other classes.
        scores: Frame scores keyed by audio id (read once, in order, so a lazy mapping keeps memory flat).
        criteria: Intersection criteria.
        floors: ``(C,)`` per evaluated class, the score a frame must exceed to be active at any evaluated
            threshold.
        to_values: ``(curves (N, W) with -inf sentinels, class (N,)) -> values`` (levels or clamped scores).
        deltas: Where the deltas go.
    """
    class_names: tuple[str, ...] | None = None
    column_class = np.zeros(0, dtype=np.int64)
    batch: list[tuple[int, ClipScores]] = []
    size = 0
    for clip_id, clip in scores.items():
        if class_names is None:
            class_names = clip.class_names
            lookup = {name: c for c, name in enumerate(reference.class_names)}
            column_class = np.array([lookup.get(name, -1) for name in class_names], dtype=np.int64)
        elif clip.class_names != class_names:
            raise ValueError(f"clip {clip_id!r} scores classes {clip.class_names}, expected {class_names}")
        index = reference.clip_index.get(clip_id)
        if index is None:
            continue
        batch.append((index, clip))
        size += clip.scores.size
        if size >= _MAX_SCORES_PER_BATCH:
            _scan_batch(reference, batch, column_class, criteria, floors, to_values, deltas)
            batch, size = [], 0
    if class_names is None:
        raise ValueError("no clip scores to evaluate")
    if batch:
        _scan_batch(reference, batch, column_class, criteria, floors, to_values, deltas)


def _scan_batch(
    reference: "ReferenceSet",
    batch: list[tuple[int, ClipScores]],
    column_class: np.ndarray,
    criteria: Criteria,
    floors: np.ndarray,
    to_values: Callable[[np.ndarray, np.ndarray], np.ndarray],
    deltas: Deltas,
) -> None:
    n_frames = max(clip.scores.shape[0] for _, clip in batch)
    # (clip, frame, column) with an inactive sentinel frame before and after every clip.
    stacked = np.empty((len(batch), n_frames + 2, len(column_class)))
    stacked[:, 0] = -np.inf
    times = np.zeros((len(batch), n_frames + 1))
    clip_of_row = np.array([index for index, _ in batch], dtype=np.int64)
    for row, (_, clip) in enumerate(batch):
        length = clip.scores.shape[0]
        stacked[row, 1 : length + 1] = clip.scores
        stacked[row, length + 1 :] = -np.inf
        times[row, : length + 1] = clip.timestamps
    column_floor = np.where(column_class >= 0, floors[np.maximum(column_class, 0)], np.inf)
    rows, columns = np.nonzero(np.fmax.reduce(stacked, axis=1) > column_floor)
    if rows.size == 0:
        return
    clip, cls = clip_of_row[rows], column_class[columns]
    values = to_values(stacked[rows, :, columns], cls)
    del stacked

    n_classes = len(reference.class_names)
    traced = reference.group_event_count[clip * n_classes + cls] > 0
    if criteria.cross_triggers:
        traced |= reference.clip_event_count[clip] > 0
    # Clips starting before 0 s could have detections outside them: judge those in full.
    traced |= times[rows, 0] < 0
    decimals = criteria.convention.decimals
    if decimals is not None:
        shortest = float(np.min(np.diff(times, axis=1)[times[:, 1:] > 0], initial=np.inf))
        if np.round(criteria.dtc * shortest, decimals) <= 0:
            traced[:] = True  # a detection without ground truth could pass the DTC: judge every one
    untraced = np.flatnonzero(~traced)
    if untraced.size:
        # Every detection is a false positive: count the runs opening at each threshold.
        row, start, lo, hi = run_starts(values[untraced])
        if criteria.convention.in_clip_only:
            inside = times[rows[untraced[row]], start - 1] < reference.durations[clip[untraced[row]]]
            row, start, lo, hi = row[inside], start[inside], lo[inside], hi[inside]
        row, _, lo, hi = join_rises(row, start, lo, hi)
        deltas.add_fp(cls[untraced[row]], lo, hi)
    traced = np.flatnonzero(traced)
    if traced.size:
        row, start, stop, lo, hi = curve_runs(values[traced])
        curve = traced[row]
        detections = Detections(
            clip=clip[curve],
            cls=cls[curve],
            onset=times[rows[curve], start - 1],
            offset=times[rows[curve], stop - 1],
            lo=lo,
            hi=hi,
        )
        judge(reference, detections, criteria, deltas)


def judge(reference: "ReferenceSet", detections: Detections, criteria: Criteria, deltas: Deltas) -> None:
    """Adds the TP, FP (and cross-trigger) deltas of ``detections`` against the reference's ground truth."""
    ref, det = reference, detections
    n_classes = len(ref.class_names)
    decimals = criteria.convention.decimals
    length = det.offset - det.onset
    # Pairs with same-class events decide the DTC; cross-triggers need the clip's events of every class.
    if criteria.cross_triggers:
        starts, counts = ref.clip_event_start[det.clip], ref.clip_event_count[det.clip]
    else:
        group = det.clip * n_classes + det.cls
        starts, counts = ref.group_event_start[group], ref.group_event_count[group]
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lo, hi in _chunks(counts, _MAX_PAIRS_PER_CHUNK):
        cls, clip, onset, offset = det.cls[lo:hi], det.clip[lo:hi], det.onset[lo:hi], det.offset[lo:hi]
        d, g = _pairs(starts[lo:hi], counts[lo:hi])
        overlapping = (onset[d] < ref.event_offset[g]) & (ref.event_onset[g] < offset[d])
        d, g = d[overlapping], g[overlapping]
        # Same operations as the toolkits (min - max, then divide or round) so that ties at a criterion resolve alike.
        intersection = np.minimum(offset[d], ref.event_offset[g]) - np.maximum(onset[d], ref.event_onset[g])
        same = ref.event_class[g] == cls[d]
        m = hi - lo
        if decimals is None:
            precision = intersection / length[lo:hi][d]
            covered = np.bincount(d[same], weights=precision[same], minlength=m)
            dtc_ok = (np.bincount(d[same], minlength=m) > 0) & (covered >= criteria.dtc)
            weight = intersection / ref.event_duration[g]
        else:
            covered = np.bincount(d[same], weights=intersection[same], minlength=m)
            dtc_ok = np.round(covered, decimals) >= np.round(criteria.dtc * length[lo:hi], decimals)
            weight = intersection
        hit = same & dtc_ok[d]
        hits.append((g[hit], weight[hit], lo + d[hit]))

        false = ~dtc_ok
        if criteria.convention.in_clip_only:
            false &= (onset < ref.durations[clip]) & (offset > 0)
        deltas.add_fp(cls[false], det.lo[lo:hi][false], det.hi[lo:hi][false])

        if criteria.cross_triggers:
            other = ~same & ~dtc_ok[d]
            pair_key = d[other] * n_classes + ref.event_class[g[other]]
            unique_keys, inverse = np.unique(pair_key, return_inverse=True)
            covered_by = np.bincount(inverse, weights=precision[other], minlength=len(unique_keys))
            triggered = unique_keys[covered_by >= criteria.cttc]
            d_ct, gt_cls = triggered // n_classes, triggered % n_classes
            deltas.add_ct(cls[d_ct], gt_cls, det.lo[lo:hi][d_ct], det.hi[lo:hi][d_ct])
    _add_true_positives(ref, det, hits, criteria, deltas)


def _add_true_positives(
    ref: "ReferenceSet",
    det: Detections,
    hits: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    criteria: Criteria,
    deltas: Deltas,
) -> None:
    """TP deltas: an event is a true positive at a threshold when the DTC-passing detections present there cover
    at least ``gtc`` of it. Its coverage only changes at the ``lo``/``hi`` keys of its detections (breakpoints)."""
    if not hits:
        return
    event, weight, index = (np.concatenate(column) for column in zip(*hits))
    if event.size == 0:
        return
    # Summed in onset order per event, as the toolkits sum the detections of one operating point.
    order = np.lexsort((det.onset[index], event))
    event, weight, index = event[order], weight[order], index[order]
    lo, hi = det.lo[index], det.hi[index]
    n = event.size
    keys, owners = np.concatenate([lo, hi]), np.concatenate([event, event])
    by = np.lexsort((keys, owners))
    new = np.ones(2 * n, dtype=bool)
    new[1:] = (owners[by][1:] != owners[by][:-1]) | (keys[by][1:] != keys[by][:-1])
    rank = np.empty(2 * n, dtype=np.int64)
    rank[by] = np.cumsum(new) - 1
    point_event, point_key = owners[by][new], keys[by][new]
    # A detection is present at the breakpoints after its lo up to its hi.
    first, spans = rank[:n] + 1, rank[n:] - rank[:n]
    point = np.repeat(first, spans) + np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    coverage = np.bincount(point, weights=np.repeat(weight, spans), minlength=point_key.size)
    present = np.bincount(point, minlength=point_key.size) > 0
    if criteria.convention.decimals is None:
        status = present & (coverage >= criteria.gtc)
    else:
        decimals = criteria.convention.decimals
        needed = np.round(criteria.gtc * ref.event_duration[point_event], decimals)
        status = present & (np.round(coverage, decimals) >= needed)
    status = status.astype(np.int64)
    following = np.zeros_like(status)
    following[:-1] = np.where(point_event[1:] == point_event[:-1], status[1:], 0)
    change = status - following
    moved = change != 0
    deltas.add_tp(ref.event_class[point_event[moved]], point_key[moved], change[moved])


def _chunks(counts: np.ndarray, max_pairs: int) -> list[tuple[int, int]]:
    """Splits detections into consecutive ranges of at most ``max_pairs`` candidate pairs (at least one each)."""
    if len(counts) == 0:
        return []
    cumulative = np.cumsum(counts)
    bounds = [0]
    while bounds[-1] < len(counts):
        start = bounds[-1]
        base = cumulative[start - 1] if start else 0
        stop = int(np.searchsorted(cumulative, base + max_pairs, side="right"))
        bounds.append(max(stop, start + 1))
    return list(zip(bounds[:-1], bounds[1:]))


def _pairs(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (detection, event) candidates: detection ``i`` against events ``starts[i] .. starts[i] + counts[i]``."""
    detection = np.repeat(np.arange(len(counts)), counts)
    first_of_detection = np.repeat(np.cumsum(counts) - counts, counts)
    event = np.repeat(starts, counts) + (np.arange(detection.size) - first_of_detection)
    return detection, event
