"""Native PSDS and intersection-based F1, vectorised over thresholds (numpy), equal to psds_eval 0.5.3.

The definitions follow psds_eval (Bilen et al., ICASSP 2020) including its conventions:

* A detection passes the detection tolerance criterion (DTC) when the summed fraction of it covered by
  same-class ground truth is at least ``dtc``. A ground-truth event is a true positive when the DTC-passing
  detections of its class together cover at least ``gtc`` of it.
* A detection that fails the DTC is a false positive when it overlaps its clip, and a cross-trigger on another
  class when the summed fraction of it covered by that class's ground truth is at least ``cttc``.
* Per class: TPR = TP / #events, FPR = FP per hour of audio, CTR = cross-triggers per hour of the other class's
  events; eFPR = FPR + alpha_ct * mean over the other classes of CTR.
* Every class's TPR-vs-eFPR points, plus a zero point, become a staircase (the best TPR at an eFPR at most x) on
  the union of all classes' eFPR values; eTPR = mean - alpha_st * std over classes, clipped at 0; PSDS is the
  area under eTPR up to ``max_efpr`` (rectangles) divided by ``max_efpr``.
* Intersection F1 per class is 2TP / (2TP + FN + FP); psds_eval leaves it undefined (NaN) for a class without
  true positives and the macro average skips such classes.

Only classes with ground truth are evaluated (psds_eval infers them from the ground truth); detections on other
classes, or on clips without a duration, are ignored as psds_eval ignores them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.sed.postprocess import DecodedEvents, decode_thresholds
from metrics.sed.scores import ClipScores, SEDInputError, audio_id, check_durations, check_ground_truth

SECONDS_PER_HOUR = 3600.0
# Decision thresholds 0.01, 0.03, ..., 0.99 (the decimal values, not np.arange's accumulated float error).
PSDS_THRESHOLDS: tuple[float, ...] = tuple(round(0.01 + 0.02 * k, 2) for k in range(50))
# Bound on detection/ground-truth pairs held at once (memory, not results).
_MAX_PAIRS_PER_CHUNK = 4_000_000


@dataclass(frozen=True)
class PSDSParams:
    """One PSDS scenario.

    Attributes:
        dtc: Detection tolerance criterion.
        gtc: Ground-truth intersection criterion.
        cttc: Cross-trigger tolerance criterion (only used when ``alpha_ct > 0``).
        alpha_ct: Weight of cross-triggers in the effective FPR.
        alpha_st: Weight of the across-class standard deviation of the TPR.
        max_efpr: Upper limit of the eFPR integration, in false positives per hour.
    """

    dtc: float
    gtc: float
    cttc: float
    alpha_ct: float
    alpha_st: float
    max_efpr: float = 100.0

    def __post_init__(self) -> None:
        for name in ("dtc", "gtc", "cttc", "alpha_ct"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.alpha_st < 0 or self.max_efpr <= 0:
            raise ValueError(f"alpha_st must be >= 0 and max_efpr > 0, got {self.alpha_st}, {self.max_efpr}")


PSDS1 = PSDSParams(dtc=0.7, gtc=0.7, cttc=0.3, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
PSDS2 = PSDSParams(dtc=0.1, gtc=0.1, cttc=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0)
# Criteria of the intersection-based F1 (DCASE: at threshold 0.5).
F1_CRITERIA = PSDSParams(dtc=0.5, gtc=0.5, cttc=0.3, alpha_ct=0.0, alpha_st=0.0)


@dataclass(frozen=True, eq=False)
class OperatingPointCounts:
    """Counts per operating point (K) and class (C).

    Attributes:
        class_names: The evaluated classes (sorted, as psds_eval orders them).
        tp: ``(K, C)`` true-positive ground-truth events.
        fp: ``(K, C)`` false-positive detections.
        ct: ``(K, C, C)`` cross-triggers of detected class on ground-truth class, or ``None`` when not counted.
        n_events: ``(C,)`` ground-truth events per class.
        event_seconds: ``(C,)`` total ground-truth duration per class.
        total_seconds: Total audio duration.
    """

    class_names: tuple[str, ...]
    tp: np.ndarray
    fp: np.ndarray
    ct: np.ndarray | None
    n_events: np.ndarray
    event_seconds: np.ndarray
    total_seconds: float


@dataclass(frozen=True, eq=False)
class PSDROC:
    """The PSD-ROC: eTPR over eFPR (step function, value held until the next x) and the per-class curves."""

    efpr: np.ndarray
    etpr: np.ndarray
    tpr_per_class: np.ndarray


@dataclass(frozen=True, eq=False)
class _Detections:
    operating_point: np.ndarray
    clip: np.ndarray
    cls: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    n_operating_points: int


class ReferenceSet:
    """Ground truth and durations of an evaluation set, parsed once for many evaluations.

    Args:
        ground_truth: Table ``filename onset offset event_label`` (rows without a label mark clips without
            events); events of zero length are ignored, as psds_eval does.
        durations: Table ``filename duration``; it defines the evaluated clips.

    Raises:
        SEDInputError: A ground-truth clip has no duration, the ground truth has no event, or two events of one
            class overlap in a clip.
    """

    def __init__(self, ground_truth: pd.DataFrame, durations: pd.DataFrame) -> None:
        ground_truth = check_ground_truth(ground_truth)
        durations = check_durations(durations)
        self.filenames: dict[str, str] = {audio_id(f): f for f in durations["filename"]}
        self.clip_ids: tuple[str, ...] = tuple(self.filenames)
        clip_index = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
        self.durations = durations["duration"].to_numpy(dtype=np.float64)
        self.total_seconds = float(durations["duration"].sum())

        gt_ids = ground_truth["filename"].map(audio_id)
        unknown = sorted(set(gt_ids) - set(clip_index))
        if unknown:
            more = " ..." if len(unknown) > 5 else ""
            raise SEDInputError(f"ground truth: clips without a duration: {unknown[:5]}{more}")
        events = ground_truth[ground_truth["event_label"].notna() & (ground_truth["offset"] > ground_truth["onset"])]
        if events.empty:
            raise SEDInputError("ground truth: no events to evaluate against")
        self.class_names: tuple[str, ...] = tuple(sorted(set(events["event_label"])))
        class_index = {name: c for c, name in enumerate(self.class_names)}
        clip = gt_ids[events.index].map(clip_index).to_numpy(dtype=np.int64)
        cls = events["event_label"].map(class_index).to_numpy(dtype=np.int64)
        onset = events["onset"].to_numpy(dtype=np.float64)
        offset = events["offset"].to_numpy(dtype=np.float64)
        order = np.lexsort((offset, onset, cls, clip))
        self.event_clip, self.event_class = clip[order], cls[order]
        self.event_onset, self.event_offset = onset[order], offset[order]
        _check_no_overlap(
            self.event_clip, self.event_class, self.event_onset, self.event_offset, "ground truth", self.clip_ids
        )
        self.event_duration = self.event_offset - self.event_onset
        n_classes = len(self.class_names)
        self.n_events = np.bincount(self.event_class, minlength=n_classes).astype(np.float64)
        self.event_seconds = np.bincount(self.event_class, weights=self.event_duration, minlength=n_classes)
        # CSR groups of events per clip and per (clip, class); events are sorted by clip, then class.
        self._clip_start = np.searchsorted(self.event_clip, np.arange(len(self.clip_ids) + 1))
        group = self.event_clip * n_classes + self.event_class
        self._group_start = np.searchsorted(group, np.arange(len(self.clip_ids) * n_classes + 1))

    @classmethod
    def from_files(cls, ground_truth_path: str, durations_path: str) -> "ReferenceSet":
        """Reads the ground-truth and durations tsv files."""
        from metrics.sed.scores import read_durations, read_ground_truth

        return cls(read_ground_truth(ground_truth_path), read_durations(durations_path))

    def count(
        self,
        detections: DecodedEvents | Sequence[pd.DataFrame] | Mapping[float, pd.DataFrame],
        dtc: float,
        gtc: float,
        cttc: float = 0.3,
        cross_triggers: bool = False,
    ) -> OperatingPointCounts:
        """TP/FP (and optionally cross-trigger) counts of every operating point.

        Args:
            detections: Decoded events (one operating point per threshold) or one detection table
                (``filename onset offset event_label``) per operating point (a sequence, or a mapping such as
                threshold -> table).
            dtc, gtc, cttc: Intersection criteria.
            cross_triggers: Count cross-triggers (needed only for ``alpha_ct > 0``).
        """
        det = self._detections(detections)
        k_ops, n_classes, n_gt = det.n_operating_points, len(self.class_names), len(self.event_clip)
        tp_hits = np.zeros(k_ops * n_gt)
        tp_seen = np.zeros(k_ops * n_gt, dtype=bool)
        fp = np.zeros(k_ops * n_classes)
        ct = np.zeros(k_ops * n_classes * n_classes) if cross_triggers else None
        duration = det.offset - det.onset
        # Pairs with same-class events decide the DTC; cross-triggers need the clip's events of every class.
        group = det.clip * n_classes + det.cls
        starts, counts = (
            (self._clip_start[det.clip], np.diff(self._clip_start)[det.clip])
            if cross_triggers
            else (self._group_start[group], np.diff(self._group_start)[group])
        )
        for lo, hi in _chunks(counts, _MAX_PAIRS_PER_CHUNK):
            op, cls, clip = det.operating_point[lo:hi], det.cls[lo:hi], det.clip[lo:hi]
            onset, offset = det.onset[lo:hi], det.offset[lo:hi]
            d, g = _pairs(starts[lo:hi], counts[lo:hi])
            overlapping = (onset[d] < self.event_offset[g]) & (self.event_onset[g] < offset[d])
            d, g = d[overlapping], g[overlapping]
            # Same operations as psds_eval (min - max, then divide) so that ties at a criterion resolve alike.
            intersection = np.minimum(offset[d], self.event_offset[g]) - np.maximum(onset[d], self.event_onset[g])
            precision = intersection / duration[lo:hi][d]
            same = self.event_class[g] == cls[d]
            m = hi - lo
            dtc_sum = np.bincount(d[same], weights=precision[same], minlength=m)
            dtc_ok = (np.bincount(d[same], minlength=m) > 0) & (dtc_sum >= dtc)

            hit = same & dtc_ok[d]
            key = op[d[hit]] * n_gt + g[hit]
            tp_hits += np.bincount(key, weights=intersection[hit] / self.event_duration[g[hit]], minlength=k_ops * n_gt)
            tp_seen[key] = True

            in_clip = ~dtc_ok & (onset < self.durations[clip]) & (offset > 0)
            fp += np.bincount(op[in_clip] * n_classes + cls[in_clip], minlength=k_ops * n_classes)

            if cross_triggers:
                other = ~same & ~dtc_ok[d]
                pair_key = d[other] * n_classes + self.event_class[g[other]]
                unique_keys, inverse = np.unique(pair_key, return_inverse=True)
                covered = np.bincount(inverse, weights=precision[other], minlength=len(unique_keys))
                triggered = unique_keys[covered >= cttc]
                d_ct, gt_cls = triggered // n_classes, triggered % n_classes
                flat = (op[d_ct] * n_classes + cls[d_ct]) * n_classes + gt_cls
                ct += np.bincount(flat, minlength=k_ops * n_classes * n_classes)
        tp_events = (tp_seen & (tp_hits >= gtc)).reshape(k_ops, n_gt)
        tp = np.zeros((k_ops, n_classes))
        for k in range(k_ops):
            tp[k] = np.bincount(self.event_class, weights=tp_events[k], minlength=n_classes)
        return OperatingPointCounts(
            class_names=self.class_names,
            tp=tp,
            fp=fp.reshape(k_ops, n_classes),
            ct=ct.reshape(k_ops, n_classes, n_classes) if cross_triggers else None,
            n_events=self.n_events,
            event_seconds=self.event_seconds,
            total_seconds=self.total_seconds,
        )

    def psds(
        self,
        scores: Mapping[str, ClipScores] | DecodedEvents | Sequence[pd.DataFrame] | Mapping[float, pd.DataFrame],
        params: PSDSParams = PSDS1,
        thresholds: Sequence[float] = PSDS_THRESHOLDS,
    ) -> float:
        """PSDS of clip scores keyed by audio id (decoded at ``thresholds``), decoded events, or
        per-operating-point detection tables."""
        if _holds_clip_scores(scores):
            scores = decode_thresholds(scores, thresholds)
        counts = self.count(scores, params.dtc, params.gtc, params.cttc, cross_triggers=params.alpha_ct > 0)
        return psds_from_counts(counts, params)

    def intersection_f1(
        self,
        scores: Mapping[str, ClipScores] | pd.DataFrame,
        threshold: float = 0.5,
        criteria: PSDSParams = F1_CRITERIA,
    ) -> float:
        """Intersection-based macro F1 of clip scores at ``threshold`` (or of one detection table).

        Returns 0.0 where psds_eval's macro average is undefined (no class has a true positive), as the DCASE
        baseline reports it.
        """
        detections = decode_thresholds(scores, [threshold]) if _holds_clip_scores(scores) else [scores]
        counts = self.count(detections, criteria.dtc, criteria.gtc, criteria.cttc)
        per_class = f1_per_class(counts)[0]
        return 0.0 if np.all(np.isnan(per_class)) else float(np.nanmean(per_class))

    def _detections(
        self, detections: DecodedEvents | Sequence[pd.DataFrame] | Mapping[float, pd.DataFrame]
    ) -> _Detections:
        """Maps detections onto this set's clip and class indices, dropping those psds_eval would ignore."""
        if isinstance(detections, Mapping):
            detections = list(detections.values())
        clip_lookup = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
        class_lookup = {name: c for c, name in enumerate(self.class_names)}
        if isinstance(detections, DecodedEvents):
            clip_map = np.array([clip_lookup.get(c, -1) for c in detections.clip_ids] or [-1])
            class_map = np.array([class_lookup.get(c, -1) for c in detections.class_names] or [-1])
            op = detections.threshold_index
            clip, cls = clip_map[detections.clip_index], class_map[detections.class_index]
            onset, offset, n_ops = detections.onset, detections.offset, len(detections.thresholds)
        else:
            parts = []
            for k, table in enumerate(detections):
                table = _check_detection_table(table, f"detection table {k}")
                parts.append(
                    (
                        np.full(len(table), k),
                        table["filename"].map(audio_id).map(clip_lookup).fillna(-1).to_numpy(dtype=np.int64),
                        table["event_label"].map(class_lookup).fillna(-1).to_numpy(dtype=np.int64),
                        table["onset"].to_numpy(dtype=np.float64),
                        table["offset"].to_numpy(dtype=np.float64),
                    )
                )
            op, clip, cls, onset, offset = (
                [np.concatenate(column) for column in zip(*parts)] if parts else [np.zeros(0, np.int64)] * 5
            )
            n_ops = len(detections)
            known = (clip >= 0) & (cls >= 0) & (offset > onset)
            order = np.lexsort((onset[known], cls[known], clip[known], op[known]))
            op_clip = op[known][order] * len(self.clip_ids) + clip[known][order]
            group = op_clip * len(self.class_names) + cls[known][order]
            _check_no_overlap(
                group, np.zeros_like(group), onset[known][order], offset[known][order], "detections", None
            )
        keep = (clip >= 0) & (cls >= 0) & (offset > onset)
        return _Detections(
            operating_point=np.asarray(op)[keep].astype(np.int64),
            clip=np.asarray(clip)[keep].astype(np.int64),
            cls=np.asarray(cls)[keep].astype(np.int64),
            onset=np.asarray(onset, dtype=np.float64)[keep],
            offset=np.asarray(offset, dtype=np.float64)[keep],
            n_operating_points=n_ops,
        )


def psd_roc(counts: OperatingPointCounts, alpha_ct: float = 0.0, alpha_st: float = 0.0) -> PSDROC:
    """The PSD-ROC of operating-point counts (psds_eval's staircase construction)."""
    tpr = counts.tp / counts.n_events
    fpr = counts.fp * SECONDS_PER_HOUR / counts.total_seconds
    if alpha_ct > 0:
        if counts.ct is None:
            raise ValueError("alpha_ct > 0 needs cross-trigger counts (count(..., cross_triggers=True))")
        n_classes = len(counts.class_names)
        if n_classes < 2:
            raise ValueError("cross-triggers need at least two classes")
        ctr = counts.ct * SECONDS_PER_HOUR / counts.event_seconds[None, None, :]
        off_diagonal = ~np.eye(n_classes, dtype=bool)
        mean_ctr = np.where(off_diagonal[None], ctr, 0.0).sum(axis=2) / (n_classes - 1)
        efpr = fpr + alpha_ct * mean_ctr
    else:
        efpr = fpr
    # The all-rejecting operating point (TPR = eFPR = 0) closes every class curve at the origin.
    tpr = np.vstack([tpr, np.zeros((1, tpr.shape[1]))])
    efpr = np.vstack([efpr, np.zeros((1, efpr.shape[1]))])
    grid = np.unique(efpr)
    curves = np.empty((tpr.shape[1], grid.size))
    for c in range(tpr.shape[1]):
        order = np.lexsort((tpr[:, c], efpr[:, c]))
        best_so_far = np.maximum.accumulate(tpr[order, c])
        position = np.searchsorted(efpr[order, c], grid, side="right") - 1
        curves[c] = np.where(position >= 0, best_so_far[np.maximum(position, 0)], 0.0)
    etpr = curves.mean(axis=0) - alpha_st * curves.std(axis=0)
    etpr = np.clip(np.nan_to_num(etpr, nan=0.0), 0.0, None)
    return PSDROC(efpr=grid, etpr=etpr, tpr_per_class=curves)


def psds_from_counts(counts: OperatingPointCounts, params: PSDSParams) -> float:
    """PSDS of operating-point counts."""
    roc = psd_roc(counts, params.alpha_ct, params.alpha_st)
    return staircase_area(roc.efpr, roc.etpr, params.max_efpr) / params.max_efpr


def staircase_area(x: np.ndarray, y: np.ndarray, max_x: float) -> float:
    """Area under a step function that holds ``y[i]`` on ``[x[i], x[i + 1])`` (the last value up to ``max_x``)."""
    below = x < max_x
    edges = np.append(x[below], max_x)
    return float(np.sum(np.diff(edges) * y[below]))


def f1_per_class(counts: OperatingPointCounts) -> np.ndarray:
    """``(K, C)`` intersection F1 per operating point and class; NaN where a class has no true positive."""
    tp, fp = counts.tp, counts.fp
    fn = counts.n_events[None, :] - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (2 * tp + fn + fp)
    return np.where(tp > 0, f1, np.nan)


def psds(
    scores: Mapping[str, ClipScores],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    params: PSDSParams = PSDS1,
    thresholds: Sequence[float] = PSDS_THRESHOLDS,
) -> float:
    """Native PSDS of clip scores keyed by audio id (one-off; use :class:`ReferenceSet` to evaluate repeatedly)."""
    return ReferenceSet(ground_truth, durations).psds(scores, params, thresholds)


def intersection_f1(
    scores: Mapping[str, ClipScores] | pd.DataFrame,
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    threshold: float = 0.5,
) -> float:
    """Native intersection-based macro F1 (dtc = gtc = 0.5) at ``threshold``."""
    return ReferenceSet(ground_truth, durations).intersection_f1(scores, threshold)


def _holds_clip_scores(scores: object) -> bool:
    """Whether ``scores`` maps audio ids to :class:`ClipScores` (rather than thresholds to tables)."""
    return isinstance(scores, Mapping) and all(isinstance(v, ClipScores) for v in scores.values())


def _check_detection_table(table: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in ("filename", "onset", "offset", "event_label") if c not in table.columns]
    if missing:
        raise SEDInputError(f"{source}: missing column(s) {missing}; found {list(table.columns)}")
    table = table[table["event_label"].notna()]
    if (table["onset"] > table["offset"]).any():
        raise SEDInputError(f"{source}: events with onset > offset")
    return table


def _check_no_overlap(
    group: np.ndarray,
    cls: np.ndarray,
    onset: np.ndarray,
    offset: np.ndarray,
    source: str,
    clip_ids: Sequence[str] | None,
) -> None:
    """Raises when two events of one group and class intersect (sorted by group, class, onset).

    Identical duplicates are let through, as psds_eval lets them through.
    """
    same = (group[1:] == group[:-1]) & (cls[1:] == cls[:-1])
    identical = (onset[1:] == onset[:-1]) & (offset[1:] == offset[:-1])
    clash = same & ~identical & (onset[1:] < offset[:-1])
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        where = f" in clip {clip_ids[group[i]]!r}" if clip_ids is not None else ""
        raise SEDInputError(
            f"{source}: intersecting events of one class{where}: "
            f"[{onset[i]}, {offset[i]}] and [{onset[i + 1]}, {offset[i + 1]}]"
        )


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
