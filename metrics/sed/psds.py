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

Frame scores are counted at every threshold in one pass over the clips (:mod:`metrics.sed.psds_counts`), with
memory bounded by a batch of clips: an AudioSet-strong evaluation set (17k clips x 407 classes) fits in a few
hundred MB when the scores mapping loads clips lazily. :mod:`metrics.sed.psds_classwise` gives per-class PSDS, also
threshold-independent (every distinct score a threshold, equal to sed_scores_eval), as PretrainedSED reports them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.sed.postprocess import DecodedEvents
from metrics.sed.psds_counts import Criteria, Detections, judge, scan_scores
from metrics.sed.psds_deltas import DenseDeltas, OperatingPointCounts
from metrics.sed.psds_runs import score_levels
from metrics.sed.scores import ClipScores, SEDInputError, audio_id, check_durations, check_ground_truth

SECONDS_PER_HOUR = 3600.0
# Decision thresholds 0.01, 0.03, ..., 0.99 (the decimal values, not np.arange's accumulated float error).
PSDS_THRESHOLDS: tuple[float, ...] = tuple(round(0.01 + 0.02 * k, 2) for k in range(50))


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
        self.clip_index: dict[str, int] = {clip_id: i for i, clip_id in enumerate(self.clip_ids)}
        self.durations = durations["duration"].to_numpy(dtype=np.float64)
        self.total_seconds = float(durations["duration"].sum())

        gt_ids = ground_truth["filename"].map(audio_id)
        unknown = sorted(set(gt_ids) - set(self.clip_index))
        if unknown:
            more = " ..." if len(unknown) > 5 else ""
            raise SEDInputError(f"ground truth: clips without a duration: {unknown[:5]}{more}")
        events = ground_truth[ground_truth["event_label"].notna() & (ground_truth["offset"] > ground_truth["onset"])]
        if events.empty:
            raise SEDInputError("ground truth: no events to evaluate against")
        self.class_names: tuple[str, ...] = tuple(sorted(set(events["event_label"])))
        class_index = {name: c for c, name in enumerate(self.class_names)}
        clip = gt_ids[events.index].map(self.clip_index).to_numpy(dtype=np.int64)
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
        # Events per clip and per (clip, class) as CSR ranges; events are sorted by clip, then class.
        clip_start = np.searchsorted(self.event_clip, np.arange(len(self.clip_ids) + 1))
        self.clip_event_start, self.clip_event_count = clip_start[:-1], np.diff(clip_start)
        group = self.event_clip * n_classes + self.event_class
        group_start = np.searchsorted(group, np.arange(len(self.clip_ids) * n_classes + 1))
        self.group_event_start, self.group_event_count = group_start[:-1], np.diff(group_start)

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
        deltas = DenseDeltas(det.n_operating_points, len(self.class_names), cross_triggers)
        # Operating point k is the level range (k, k + 1]: judged as score-curve detections, one point each.
        op = det.operating_point
        detections_at = Detections(det.clip, det.cls, det.onset, det.offset, lo=op, hi=op + 1)
        judge(self, detections_at, Criteria(dtc, gtc, cttc, cross_triggers), deltas)
        return deltas.counts(self)

    def count_scores(
        self,
        scores: Mapping[str, ClipScores],
        thresholds: Sequence[float],
        dtc: float,
        gtc: float,
        cttc: float = 0.3,
        cross_triggers: bool = False,
    ) -> OperatingPointCounts:
        """TP/FP (and optionally cross-trigger) counts of clip scores decoded at each of ``thresholds`` (as
        :func:`metrics.sed.postprocess.decode_thresholds` decodes), without decoding them: one pass over the clips.

        Args:
            scores: Frame scores keyed by audio id; read once, clip by clip, so a lazily loading mapping keeps
                memory bounded. All clips must score the same classes.
            thresholds: Decision thresholds (any order, repeats allowed); one operating point each, in this order.
            dtc, gtc, cttc: Intersection criteria.
            cross_triggers: Count cross-triggers (needed only for ``alpha_ct > 0``).
        """
        requested = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if requested.size == 0 or np.isnan(requested).any():
            raise ValueError(f"thresholds must be a non-empty list of numbers, got {list(thresholds)}")
        grid, position = np.unique(requested, return_inverse=True)
        deltas = DenseDeltas(len(grid), len(self.class_names), cross_triggers)
        floors = np.full(len(self.class_names), grid[0])
        scan_scores(self, scores, Criteria(dtc, gtc, cttc, cross_triggers), floors,
                    lambda curves, _: score_levels(curves, grid), deltas)
        counts = deltas.counts(self)
        ct = None if counts.ct is None else counts.ct[position]
        return OperatingPointCounts(self.class_names, counts.tp[position], counts.fp[position], ct,
                                    self.n_events, self.event_seconds, self.total_seconds)

    def class_psds(
        self,
        scores: Mapping[str, ClipScores],
        params: PSDSParams = PSDS1,
        thresholds: Sequence[float] | None = None,
    ) -> dict[str, float]:
        """PSDS of each class alone, threshold-independent unless ``thresholds`` are given: see
        :func:`metrics.sed.psds_classwise.class_psds`."""
        from metrics.sed.psds_classwise import class_psds  # that module builds on this one

        return class_psds(self, scores, params, thresholds)

    def psds(
        self,
        scores: Mapping[str, ClipScores] | DecodedEvents | Sequence[pd.DataFrame] | Mapping[float, pd.DataFrame],
        params: PSDSParams = PSDS1,
        thresholds: Sequence[float] = PSDS_THRESHOLDS,
    ) -> float:
        """PSDS of clip scores keyed by audio id (one operating point per threshold, counted in one pass over the
        clips: :meth:`count_scores`), decoded events, or per-operating-point detection tables."""
        cross_triggers = params.alpha_ct > 0
        if _holds_clip_scores(scores):
            counts = self.count_scores(scores, thresholds, params.dtc, params.gtc, params.cttc, cross_triggers)
        else:
            counts = self.count(scores, params.dtc, params.gtc, params.cttc, cross_triggers)
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
        if _holds_clip_scores(scores):
            counts = self.count_scores(scores, [threshold], criteria.dtc, criteria.gtc, criteria.cttc)
        else:
            counts = self.count([scores], criteria.dtc, criteria.gtc, criteria.cttc)
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
    curves = np.stack([best_tpr_staircase(tpr[:, c], efpr[:, c], grid) for c in range(tpr.shape[1])])
    etpr = curves.mean(axis=0) - alpha_st * curves.std(axis=0)
    etpr = np.clip(np.nan_to_num(etpr, nan=0.0), 0.0, None)
    return PSDROC(efpr=grid, etpr=etpr, tpr_per_class=curves)


def best_tpr_staircase(tpr: np.ndarray, efpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """One class's ROC as a staircase on ``grid``: the best TPR among its operating points with eFPR at most x
    (0 below all of them)."""
    order = np.lexsort((tpr, efpr))
    best_so_far = np.maximum.accumulate(tpr[order])
    position = np.searchsorted(efpr[order], grid, side="right") - 1
    return np.where(position >= 0, best_so_far[np.maximum(position, 0)], 0.0)


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
    """Whether ``scores`` maps audio ids to :class:`ClipScores` (rather than thresholds to tables); only the first
    entry is looked at, so that a lazily loading mapping is not read."""
    if not isinstance(scores, Mapping):
        return False
    first = next(iter(scores.values()), None)
    return first is None or isinstance(first, ClipScores)


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
