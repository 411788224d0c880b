"""Post-processing of frame scores: class-wise median filtering and threshold decoding to events."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from datamodules.sed.label_encoder import DESED_CLASSES, MAESTRO_REAL_CLASSES, active_runs
from metrics.sed.scores import ClipScores, SEDInputError

# Published DCASE'24 baseline windows in frames of 0.064 s, in the order of DESED_CLASSES / MAESTRO_REAL_CLASSES.
DESED_MEDIAN_WINDOWS: tuple[int, ...] = (3, 9, 9, 5, 5, 5, 9, 7, 11, 9)
MAESTRO_MEDIAN_WINDOWS: tuple[int, ...] = (7, 3, 9, 13, 7, 1, 13, 3, 13, 7, 5, 5, 1, 13, 17, 13, 15)
MEDIAN_WINDOW_PRESETS: dict[str, dict[str, int]] = {
    "desed": dict(zip(DESED_CLASSES, DESED_MEDIAN_WINDOWS)),
    "maestro": dict(zip(MAESTRO_REAL_CLASSES, MAESTRO_MEDIAN_WINDOWS)),
}
# The 27-class DCASE'24 label space (DESED then MAESTRO real).
MEDIAN_WINDOW_PRESETS["dcase2024"] = {**MEDIAN_WINDOW_PRESETS["desed"], **MEDIAN_WINDOW_PRESETS["maestro"]}


def preset_windows(preset: str, class_names: Sequence[str]) -> tuple[int, ...]:
    """Median-filter windows of a named preset for the given classes, in their order.

    Raises:
        SEDInputError: Unknown preset, or classes the preset has no window for (a custom label space); the message
            names them and the fix.
    """
    if preset not in MEDIAN_WINDOW_PRESETS:
        raise SEDInputError(f"unknown median-filter preset {preset!r}; choose from {sorted(MEDIAN_WINDOW_PRESETS)}, "
                            "or use a single window for every class or a per-class list")
    windows = MEDIAN_WINDOW_PRESETS[preset]
    missing = [name for name in class_names if name not in windows]
    if missing:
        raise SEDInputError(f"median-filter preset {preset!r} has no window for classes {missing}; use a single "
                            f"window for every class (e.g. 5) or a per-class list of {len(class_names)} windows in "
                            "label-space order")
    return tuple(windows[name] for name in class_names)


def median_filter(scores: np.ndarray, windows: int | Sequence[int]) -> np.ndarray:
    """Class-wise median filter along time.

    Edges are handled by reflection, as scipy's ``median_filter`` (used by the DCASE baseline) does by default.

    Args:
        scores: ``(frames, classes)`` or batched ``(..., frames, classes)`` scores.
        windows: One window length in frames for every class, or one per class (1 leaves a class unchanged).

    Returns:
        Filtered scores of the same shape (float64 unless the input is float32).
    """
    scores = np.asarray(scores)
    if scores.ndim < 2:
        raise ValueError(f"scores must be (..., frames, classes), got shape {scores.shape}")
    n_classes = scores.shape[-1]
    per_class = np.full(n_classes, windows, dtype=int) if np.isscalar(windows) else np.asarray(windows, dtype=int)
    if per_class.shape != (n_classes,) or np.any(per_class < 1):
        raise ValueError(f"windows must be positive, one per class ({n_classes}), got {windows!r}")
    out = np.array(scores, dtype=np.float32 if scores.dtype == np.float32 else np.float64)
    # One scipy call per distinct window: classes sharing a window are filtered together (size 1 across classes).
    for window in np.unique(per_class):
        if window == 1:
            continue
        columns = np.flatnonzero(per_class == window)
        size = (1,) * (scores.ndim - 2) + (int(window), 1)
        out[..., columns] = ndimage.median_filter(out[..., columns], size=size, mode="reflect")
    return out


def median_filter_clips(clips: Mapping[str, ClipScores], windows: int | Sequence[int]) -> dict[str, ClipScores]:
    """:func:`median_filter` applied to every clip."""
    return {clip_id: clip.with_scores(median_filter(clip.scores, windows)) for clip_id, clip in clips.items()}


def decode_events(clip: ClipScores, threshold: float) -> list[tuple[float, float, str]]:
    """Events of one clip at one threshold.

    A frame is active when its score exceeds ``threshold``; an event is a maximal run of active frames, from the
    first frame's onset to the last frame's offset.

    Returns:
        ``(onset, offset, label)`` ordered by class, then time.
    """
    columns, starts, ends = active_runs(clip.scores.T > threshold)
    return [
        (float(clip.onsets[s]), float(clip.offsets[e - 1]), clip.class_names[c])
        for c, s, e in zip(columns, starts, ends)
    ]


@dataclass(frozen=True, eq=False)
class DecodedEvents:
    """Events of many clips at many thresholds, as parallel arrays (one entry per event).

    Attributes:
        thresholds: ``(K,)`` decision thresholds.
        clip_ids: Audio ids; ``clip_index`` points into them.
        class_names: Classes; ``class_index`` points into them.
        threshold_index, clip_index, class_index: ``(M,)`` integer arrays.
        onset, offset: ``(M,)`` times in seconds.
    """

    thresholds: np.ndarray
    clip_ids: tuple[str, ...]
    class_names: tuple[str, ...]
    threshold_index: np.ndarray
    clip_index: np.ndarray
    class_index: np.ndarray
    onset: np.ndarray
    offset: np.ndarray

    def tables(self, filenames: Mapping[str, str] | None = None) -> dict[float, pd.DataFrame]:
        """One detection table (``filename onset offset event_label``) per threshold, as psds_eval takes them.

        Args:
            filenames: Audio id -> file name written in the tables (default: the audio id itself).
        """
        names = np.array([filenames[c] if filenames else c for c in self.clip_ids] or [""], dtype=object)
        labels = np.array(self.class_names, dtype=object)
        tables = {}
        for k, threshold in enumerate(self.thresholds):
            rows = self.threshold_index == k
            tables[float(threshold)] = pd.DataFrame(
                {
                    "filename": names[self.clip_index[rows]],
                    "onset": self.onset[rows],
                    "offset": self.offset[rows],
                    "event_label": labels[self.class_index[rows]],
                }
            )
        return tables


def decode_thresholds(clips: Mapping[str, ClipScores], thresholds: Sequence[float]) -> DecodedEvents:
    """Threshold decoding (as :func:`decode_events`) of every clip at every threshold, vectorised.

    Raises:
        ValueError: The clips score different classes.
    """
    clip_ids = tuple(clips)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if not clip_ids:
        raise ValueError("no clips to decode")
    class_names = clips[clip_ids[0]].class_names
    lengths = np.array([clips[c].scores.shape[0] for c in clip_ids])
    for clip_id in clip_ids:
        if clips[clip_id].class_names != class_names:
            raise ValueError(f"clip {clip_id!r} scores classes {clips[clip_id].class_names}, expected {class_names}")
    # All clips end to end with one never-active separator row after each, so runs cannot cross clip borders.
    n_rows = int(lengths.sum()) + len(clip_ids)
    stacked = np.full((n_rows, len(class_names)), -np.inf)
    onsets = np.zeros(n_rows)
    offsets = np.zeros(n_rows)
    clip_of_row = np.repeat(np.arange(len(clip_ids)), lengths + 1)
    row = 0
    for clip_id, length in zip(clip_ids, lengths):
        clip = clips[clip_id]
        stacked[row : row + length] = clip.scores
        onsets[row : row + length] = clip.onsets
        offsets[row : row + length] = clip.offsets
        row += length + 1
    parts = []
    for c in range(len(class_names)):
        k, starts, ends = active_runs(stacked[:, c][None, :] > thresholds[:, None])
        parts.append((k, clip_of_row[starts], np.full(len(k), c), onsets[starts], offsets[ends - 1]))
    columns = [np.concatenate(column) for column in zip(*parts)]
    return DecodedEvents(
        thresholds=thresholds,
        clip_ids=clip_ids,
        class_names=class_names,
        threshold_index=columns[0].astype(np.int64),
        clip_index=columns[1].astype(np.int64),
        class_index=columns[2].astype(np.int64),
        onset=columns[3],
        offset=columns[4],
    )


def detection_tables(
    clips: Mapping[str, ClipScores],
    thresholds: Sequence[float],
    filenames: Mapping[str, str] | None = None,
) -> dict[float, pd.DataFrame]:
    """Detection tables of every threshold (see :meth:`DecodedEvents.tables`)."""
    return decode_thresholds(clips, thresholds).tables(filenames)
