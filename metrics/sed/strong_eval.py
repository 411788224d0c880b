"""AudioSet-strong evaluation as PretrainedSED reports it: median filter, PSDS1, class-averaged PSDS1, pAUROC.

Scores of the whole evaluation set (17k clips x 250 frames x 407 classes) stay in one float16 array; the metrics
read it clip by clip through :class:`FrameScoreTable`, a mapping that builds each clip's :class:`ClipScores` only
when asked for, so no float64 copy of the set is ever held.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Dict, Iterator, Sequence

import numpy as np
import pandas as pd

from metrics.sed.pauc import segment_pauroc
from metrics.sed.postprocess import median_filter
from metrics.sed.psds import PSDS1, ReferenceSet
from metrics.sed.psds_classwise import threshold_independent_psds
from metrics.sed.scores import ClipScores, audio_id, restrict_to_clips

PAUROC_SEGMENT_SECONDS = 1.0
PAUROC_MAX_FPR = 0.1


class FrameScoreTable(Mapping):
    """Read-only mapping audio id -> :class:`ClipScores` over an (N, T, C) score array.

    Args:
        names: The N clip ids (file names; keys are their audio ids).
        scores: (N, T, C) frame scores (any float dtype; kept as given).
        class_names: The C classes.
        timestamps: (T + 1,) frame boundaries in seconds.
    """

    def __init__(self, names: Sequence[str], scores: np.ndarray, class_names: Sequence[str],
                 timestamps: np.ndarray) -> None:
        if scores.ndim != 3 or scores.shape[0] != len(names) or scores.shape[2] != len(class_names):
            raise ValueError(f"scores must be ({len(names)}, frames, {len(class_names)}), got {scores.shape}")
        if len(timestamps) != scores.shape[1] + 1:
            raise ValueError(f"{scores.shape[1]} frames need {scores.shape[1] + 1} timestamps, got {len(timestamps)}")
        self._rows = {audio_id(name): i for i, name in enumerate(names)}
        self._scores, self._classes = scores, tuple(class_names)
        self._timestamps = np.asarray(timestamps, dtype=np.float64)

    def __getitem__(self, clip_id: str) -> ClipScores:
        return ClipScores(self._timestamps, self._scores[self._rows[clip_id]], self._classes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def evaluate_frame_scores(
    names: Sequence[str],
    probs: np.ndarray,
    class_names: Sequence[str],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    timestamps: np.ndarray,
    median_window: int = 9,
) -> Dict[str, float]:
    """``psds1``, ``psds1_macro`` and ``pauroc`` of frame probabilities.

    Args:
        names: Clip ids of the rows of ``probs``.
        probs: (N, T, C) frame probabilities of the evaluated classes (float16 is fine).
        class_names: The C evaluated classes (PretrainedSED: the 407 both trained and evaluated).
        ground_truth: ``filename onset offset event_label`` of those classes; clips without such events are not
            evaluated (PretrainedSED drops them, as the DESED evaluation does).
        durations: ``filename duration`` of the evaluated clips.
        timestamps: (T + 1,) frame boundaries in seconds.
        median_window: Median filter length in frames (1: none).

    Returns:
        ``psds1``: PSDS1 (dtc = gtc = 0.7, no cross-triggers, alpha_st 1, max_efpr 100) over all classes, every
        distinct score a threshold (sed_scores_eval's ``psds``, PretrainedSED's ``val/psds1``); ``psds1_macro``: the
        mean of the per-class PSDS1 values (PretrainedSED's ``psds1_macro_averaged``); ``pauroc``: segment-based
        partial AUROC (1 s segments, max FPR 0.1), mean over classes. Scores of clips outside ``durations`` are ignored.
    """
    evaluated = {audio_id(f) for f in durations["filename"]}
    rows = [i for i, name in enumerate(names) if audio_id(name) in evaluated]
    ground_truth, durations = restrict_to_clips(ground_truth, durations, [audio_id(names[i]) for i in rows])
    reference = ReferenceSet(ground_truth, durations)
    present = list(reference.class_names)  # the classes with events among the evaluated clips
    column = {name: c for c, name in enumerate(class_names)}
    unknown = [name for name in present if name not in column]
    if unknown:
        raise ValueError(f"ground-truth classes without scores: {unknown[:5]}")
    columns = np.array([column[name] for name in present])
    filtered = np.zeros((len(rows), probs.shape[1], len(present)), np.float16)
    for k, i in enumerate(rows):
        filtered[k] = median_filter(np.asarray(probs[i], dtype=np.float32)[:, columns], median_window)
    scores = FrameScoreTable([names[i] for i in rows], filtered, present, timestamps)
    per_class = reference.class_psds(scores, PSDS1)
    pauroc = segment_pauroc(scores, ground_truth, durations, present, PAUROC_SEGMENT_SECONDS, PAUROC_MAX_FPR)
    return {"psds1": threshold_independent_psds(reference, scores, PSDS1),
            "psds1_macro": float(np.mean(list(per_class.values()))), "pauroc": pauroc["mean"]}
