"""Counts of every operating point kept as deltas keyed by threshold (see :mod:`metrics.sed.psds_counts`).

A detection present for thresholds ``lo < t <= hi`` adds one at key ``hi`` and removes one at key ``lo``; the count
at threshold ``t`` is the sum of the deltas keyed ``>= t``. :class:`DenseDeltas` keys by level (a fixed list of
thresholds, counts per operating point); :class:`SparseDeltas` by score (every distinct score a threshold).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from metrics.sed.psds import ReferenceSet

# Cross-trigger deltas gathered before they are added to the (class, class, threshold) counts: 64 MB.
_MAX_PENDING_CROSS_TRIGGERS = 1 << 22
# Score-keyed deltas gathered at least before equal keys are summed.
_MIN_DELTAS_TO_SUM = 1 << 20


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
class ClassCurve:
    """Counts of one class at every threshold where they change (threshold-independent evaluation).

    Attributes:
        thresholds: ``(M,)`` ascending scores; ``tp[i]``/``fp[i]`` hold for thresholds in
            ``(thresholds[i - 1], thresholds[i]]`` (no detection above the last).
        tp, fp: ``(M,)`` true-positive events and false-positive detections.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray


class DenseDeltas:
    """Deltas keyed by level ``0 .. K``; operating point ``k`` counts the keys above ``k``."""

    def __init__(self, n_operating_points: int, n_classes: int, cross_triggers: bool) -> None:
        self.n_keys, self.n_classes = n_operating_points + 1, n_classes
        self.tp = np.zeros(n_classes * self.n_keys)
        self.fp = np.zeros(n_classes * self.n_keys)
        self.ct = np.zeros(n_classes * n_classes * self.n_keys, dtype=np.int64) if cross_triggers else None
        self._ct_pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._ct_pending_size = 0

    def add_tp(self, cls: np.ndarray, key: np.ndarray, delta: np.ndarray) -> None:
        self.tp += np.bincount(cls * self.n_keys + key.astype(np.int64), delta, minlength=self.tp.size)

    def add_fp(self, cls: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        base = cls * self.n_keys
        self.fp += np.bincount(base + hi.astype(np.int64), minlength=self.fp.size)
        self.fp -= np.bincount(base + lo.astype(np.int64), minlength=self.fp.size)

    def add_ct(self, cls: np.ndarray, gt_cls: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        base = (cls * self.n_classes + gt_cls) * self.n_keys
        self._ct_pending.append((base + hi.astype(np.int64), base + lo.astype(np.int64)))
        self._ct_pending_size += base.size
        if self._ct_pending_size >= _MAX_PENDING_CROSS_TRIGGERS:
            self._flush_cross_triggers()

    def _flush_cross_triggers(self) -> None:
        # One pass over the large (class, class, key) array per many batches, not per batch.
        if self._ct_pending:
            rises, falls = (np.concatenate(part) for part in zip(*self._ct_pending))
            self.ct += np.bincount(rises, minlength=self.ct.size) - np.bincount(falls, minlength=self.ct.size)
        self._ct_pending, self._ct_pending_size = [], 0

    def counts(self, reference: "ReferenceSet") -> OperatingPointCounts:
        """The counts of operating points ``0 .. K - 1``."""

        def at_operating_points(deltas: np.ndarray) -> np.ndarray:
            above = np.cumsum(deltas.reshape(-1, self.n_keys)[:, ::-1], axis=1)[:, ::-1]
            return np.ascontiguousarray(above[:, 1:].T)

        ct = None
        if self.ct is not None:
            self._flush_cross_triggers()
            ct = at_operating_points(self.ct.astype(np.float64))
            ct = ct.reshape(self.n_keys - 1, self.n_classes, self.n_classes)
        return OperatingPointCounts(
            class_names=reference.class_names,
            tp=at_operating_points(self.tp),
            fp=at_operating_points(self.fp),
            ct=ct,
            n_events=reference.n_events,
            event_seconds=reference.event_seconds,
            total_seconds=reference.total_seconds,
        )


class SparseDeltas:
    """Deltas keyed by score, per class; the count at threshold ``t`` sums the keys ``>= t``.

    Deltas of equal (class, key) are summed from time to time (amortised: when the new ones outnumber the summed
    ones), so memory follows the number of distinct scores where counts change, not the number of detections.
    """

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.summed_size, self.pending_size = 0, 0

    def add_tp(self, cls: np.ndarray, key: np.ndarray, delta: np.ndarray) -> None:
        self._add(cls, key, delta, np.zeros(len(cls), dtype=np.int32))

    def add_fp(self, cls: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        ones = np.ones(len(cls), dtype=np.int32)
        self._add(np.concatenate([cls, cls]), np.concatenate([hi, lo]), np.zeros(2 * len(cls), np.int32),
                  np.concatenate([ones, -ones]))

    def add_ct(self, cls: np.ndarray, gt_cls: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        raise ValueError("cross-triggers need a fixed list of thresholds")

    def _add(self, cls: np.ndarray, key: np.ndarray, tp: np.ndarray, fp: np.ndarray) -> None:
        self.parts.append((cls.astype(np.int32), key.astype(np.float64), tp.astype(np.int32), fp.astype(np.int32)))
        self.pending_size += len(cls)
        if self.pending_size > max(self.summed_size, _MIN_DELTAS_TO_SUM):
            self._sum()

    def _sum(self) -> None:
        """Replaces the parts by one of distinct (class, key), sorted, without zero deltas."""
        cls, key, tp, fp = (np.concatenate(column) for column in zip(*self.parts))
        order = np.lexsort((key, cls))
        cls, key, tp, fp = cls[order], key[order], tp[order], fp[order]
        first = np.flatnonzero(np.append(True, (key[1:] != key[:-1]) | (cls[1:] != cls[:-1])))
        tp, fp = np.add.reduceat(tp, first), np.add.reduceat(fp, first)
        keep = (tp != 0) | (fp != 0)
        self.parts = [(cls[first][keep], key[first][keep], tp[keep], fp[keep])]
        self.summed_size, self.pending_size = int(keep.sum()), 0

    def curves(self, floors: np.ndarray) -> list[ClassCurve]:
        """Per class, the counts at every key above its floor (thresholds at or below it are not exact)."""
        if not self.parts:
            empty = np.zeros(0)
            return [ClassCurve(thresholds=empty, tp=empty, fp=empty) for _ in range(self.n_classes)]
        self._sum()
        cls, key, tp, fp = self.parts[0]
        bounds = np.searchsorted(cls, np.arange(self.n_classes + 1))
        curves = []
        for c in range(self.n_classes):
            part = slice(bounds[c], bounds[c + 1])
            keep = key[part] > floors[c]
            above = [np.cumsum(counts[part][::-1])[::-1][keep].astype(np.float64) for counts in (tp, fp)]
            curves.append(ClassCurve(thresholds=key[part][keep], tp=above[0], fp=above[1]))
        return curves


Deltas = DenseDeltas | SparseDeltas
