"""MAESTRO segment-based mean partial AUROC (DCASE'24 Task 4), equal to sed_scores_eval's ``segment_based.auroc``.

Pipeline of the DCASE'24 baseline's test: every 10 s chunk ``<recording>-<start*100>-<end*100>`` gets one score per
1 s segment (the duration-weighted mean of the frame scores in it); chunk segments are averaged where chunks
overlap, giving one score per segment of the full recording. Ground truth: chunk events with confidence > 0.5 of
the evaluated classes, shifted to recording time and merged where they overlap or touch. Per class, the ROC over
all segments (positive when an event overlaps the segment) is integrated as a staircase up to FPR 0.1 and divided
by 0.1 (no McClish correction); the mean over classes is the mpAUC.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from datamodules.sed.label_encoder import MAESTRO_EVAL_CLASSES
from metrics.sed.psds import staircase_area
from metrics.sed.scores import ClipScores, audio_id, check_durations, check_ground_truth

MAESTRO_SEGMENT_LENGTH = 1.0
MAESTRO_MAX_FPR = 0.1
MAESTRO_MIN_CONFIDENCE = 0.5
# sed_scores_eval rounds segment boundaries and frame times to microseconds before comparing them.
_TIME_DECIMALS = 6

RecordingEvents = dict[str, list[tuple[float, float, str]]]


def parse_chunk_id(chunk_id: str) -> tuple[str, float, float]:
    """``(recording, start, end)`` of a chunk id ``<recording>-<start*100>-<end*100>`` (times in seconds)."""
    parts = chunk_id.rsplit("-", 2)
    if len(parts) != 3 or not (parts[1].isdigit() and parts[2].isdigit()):
        raise ValueError(f"chunk id {chunk_id!r} is not <recording>-<start*100>-<end*100>")
    return parts[0], int(parts[1]) / 100, int(parts[2]) / 100


def segment_mean_scores(
    clip: ClipScores, clip_length: float, segment_length: float = MAESTRO_SEGMENT_LENGTH
) -> np.ndarray:
    """``(ceil(clip_length / segment_length), C)`` duration-weighted mean frame score of every segment."""
    starts = np.arange(0.0, clip_length, segment_length)
    ends = starts + segment_length
    weights = np.clip(
        np.minimum(clip.offsets[None, :], ends[:, None]) - np.maximum(clip.onsets[None, :], starts[:, None]), 0.0, None
    )
    totals = weights.sum(axis=1)
    if np.any(totals <= 0):
        empty_start = starts[np.argmax(totals <= 0)]
        raise ValueError(f"segment at {empty_start} s has no frames (frames end at {clip.timestamps[-1]} s)")
    return weights @ clip.scores / totals[:, None]


def overlap_add_chunks(
    chunk_scores: Mapping[str, ClipScores],
    recording_durations: Mapping[str, float],
    segment_length: float = MAESTRO_SEGMENT_LENGTH,
) -> dict[str, ClipScores]:
    """Segment scores of full recordings from overlapping chunks (mean over the chunks covering a segment).

    Args:
        chunk_scores: Frame scores keyed by chunk id ``<recording>-<start*100>-<end*100>``.
        recording_durations: Seconds per recording id.
        segment_length: Segment length in seconds.

    Returns:
        Per recording one score row per segment; the last segment ends at the recording's end.
    """
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    class_names: tuple[str, ...] | None = None
    for chunk_id, clip in chunk_scores.items():
        recording, start, end = parse_chunk_id(chunk_id)
        if recording not in recording_durations:
            raise ValueError(f"chunk {chunk_id!r}: recording {recording!r} has no duration")
        if class_names is None:
            class_names = clip.class_names
        elif clip.class_names != class_names:
            raise ValueError(f"chunk {chunk_id!r} scores classes {clip.class_names}, expected {class_names}")
        n_segments = math.ceil(recording_durations[recording] / segment_length)
        if recording not in sums:
            sums[recording] = np.zeros((n_segments, len(clip.class_names)))
            counts[recording] = np.zeros(n_segments)
        segments = segment_mean_scores(clip, end - start, segment_length)
        first = int(start // segment_length)
        if first + len(segments) > n_segments:
            raise ValueError(
                f"chunk {chunk_id!r} ends after recording {recording!r} ({recording_durations[recording]} s)"
            )
        sums[recording][first : first + len(segments)] += segments
        counts[recording][first : first + len(segments)] += 1
    out = {}
    for recording, total in sums.items():
        duration = recording_durations[recording]
        timestamps = np.minimum(np.arange(len(total) + 1) * segment_length, duration)
        out[recording] = ClipScores(timestamps, total / np.maximum(counts[recording], 1)[:, None], class_names)
    return out


def recording_ground_truth(
    chunk_ground_truth: pd.DataFrame,
    class_names: Sequence[str] = MAESTRO_EVAL_CLASSES,
    min_confidence: float = MAESTRO_MIN_CONFIDENCE,
) -> RecordingEvents:
    """Recording-level events from chunk-level soft labels.

    Keeps events with confidence above ``min_confidence`` (all events when the table has no ``confidence``) of
    ``class_names``, shifts them by their chunk's start and merges events of one class that overlap or touch.
    """
    table = check_ground_truth(chunk_ground_truth, "MAESTRO ground truth")
    keep = table["event_label"].isin(list(class_names))
    if "confidence" in table.columns:
        keep &= table["confidence"] > min_confidence
    per_class: dict[tuple[str, str], list[tuple[float, float]]] = {}
    kept = table.loc[keep, ["filename", "onset", "offset", "event_label"]]
    for filename, onset, offset, label in kept.itertuples(index=False):
        recording, start, _ = parse_chunk_id(audio_id(filename))
        per_class.setdefault((recording, label), []).append((start + onset, start + offset))
    events: RecordingEvents = {}
    for (recording, label), spans in per_class.items():
        merged: list[list[float]] = []
        for onset, offset in sorted(spans):
            if merged and onset <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], offset)
            else:
                merged.append([onset, offset])
        events.setdefault(recording, []).extend((on, off, label) for on, off in merged)
    return events


def segment_max_scores(clip: ClipScores, duration: float, segment_length: float = MAESTRO_SEGMENT_LENGTH) -> np.ndarray:
    """``(ceil(duration / segment_length), C)`` maximum score of the frames overlapping each segment (0 if none)."""
    n_segments = math.ceil(duration / segment_length)
    bounds = np.round(np.arange(n_segments + 1) * segment_length, _TIME_DECIMALS)
    timestamps = np.round(clip.timestamps, _TIME_DECIMALS)
    # Frames [first, stop) overlap a segment: the last one starting at or before it up to the first ending after it.
    first = np.maximum(np.searchsorted(timestamps, bounds[:-1], side="right") - 1, 0)
    stop = np.minimum(np.searchsorted(timestamps, bounds[1:], side="left"), len(timestamps) - 1)
    out = np.zeros((n_segments, clip.scores.shape[1]))
    for i in np.flatnonzero(stop > first):
        out[i] = clip.scores[first[i] : stop[i]].max(axis=0)
    return out


def segment_targets(
    events: Sequence[tuple[float, float, str]],
    duration: float,
    class_names: Sequence[str],
    segment_length: float = MAESTRO_SEGMENT_LENGTH,
) -> np.ndarray:
    """``(ceil(duration / segment_length), C)`` booleans: an event of the class overlaps the segment."""
    n_segments = math.ceil(duration / segment_length)
    bounds = np.round(np.arange(n_segments + 1) * segment_length, _TIME_DECIMALS)
    targets = np.zeros((n_segments, len(class_names)), dtype=bool)
    column = {name: c for c, name in enumerate(class_names)}
    for onset, offset, label in events:
        if label in column:
            targets[:, column[label]] |= (bounds[:-1] < offset) & (bounds[1:] > onset)
    return targets


def partial_auroc(scores: np.ndarray, targets: np.ndarray, max_fpr: float | None = MAESTRO_MAX_FPR) -> float:
    """Staircase area under the ROC up to ``max_fpr``, divided by ``max_fpr`` (NaN without positives or negatives).

    A sample is positive at threshold t when its score is at least t; every distinct score is an operating point.
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=bool)
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], targets[order]
    last_of_score = np.append(ranked[1:] != ranked[:-1], True)
    tpr = np.concatenate([[0.0], np.cumsum(hits)[last_of_score] / n_pos])
    fpr = np.concatenate([[0.0], np.cumsum(~hits)[last_of_score] / n_neg])
    if max_fpr is None:
        return float(np.sum(np.diff(fpr) * tpr[:-1]))
    return staircase_area(fpr, tpr, max_fpr) / max_fpr


def segment_pauc(
    scores: Mapping[str, ClipScores],
    ground_truth: Mapping[str, Sequence[tuple[float, float, str]]],
    durations: Mapping[str, float],
    class_names: Sequence[str],
    segment_length: float = MAESTRO_SEGMENT_LENGTH,
    max_fpr: float | None = MAESTRO_MAX_FPR,
) -> dict[str, float]:
    """Per-class segment-based partial AUROC and their ``"mean"``.

    Args:
        scores: Scores per recording (frame- or segment-level), holding at least ``class_names``.
        ground_truth: Events per recording (a recording missing here has none).
        durations: Seconds per recording; every recording in ``scores`` needs one.
        class_names: Evaluated classes.
        segment_length: Segment length in seconds.
        max_fpr: Upper FPR limit (None: full AUROC).
    """
    missing = sorted(set(scores) - set(durations))
    if missing:
        raise ValueError(f"recordings without a duration: {missing[:5]}")
    seg_scores, seg_targets = [], []
    for recording, clip in scores.items():
        clip = clip.select(class_names)
        seg_scores.append(segment_max_scores(clip, durations[recording], segment_length))
        events = ground_truth.get(recording, [])
        seg_targets.append(segment_targets(events, durations[recording], class_names, segment_length))
    all_scores, all_targets = np.concatenate(seg_scores), np.concatenate(seg_targets)
    result = {name: partial_auroc(all_scores[:, c], all_targets[:, c], max_fpr) for c, name in enumerate(class_names)}
    result["mean"] = float(np.mean([result[name] for name in class_names]))
    return result


def segment_pauroc(
    scores: Mapping[str, ClipScores],
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    class_names: Sequence[str] | None = None,
    segment_length: float = MAESTRO_SEGMENT_LENGTH,
    max_fpr: float | None = MAESTRO_MAX_FPR,
) -> dict[str, float]:
    """:func:`segment_pauc` of the evaluation tables (as :func:`metrics.sed.psds.psds1_macro` takes them).

    PretrainedSED's AudioSet-strong ``val/pauroc`` is its ``"mean"`` with the defaults (1 s segments, max_fpr 0.1),
    sed_scores_eval 0.0.3's ``segment_based.auroc``.

    Args:
        scores: Frame scores keyed by audio id.
        ground_truth: ``filename onset offset event_label`` of the clips.
        durations: ``filename duration`` of the scored clips (the evaluated ones).
        class_names: Evaluated classes (default: those of the ground truth, sorted).
    """
    table = check_ground_truth(ground_truth)
    seconds = check_durations(durations)
    clip_seconds = {audio_id(f): float(d) for f, d in zip(seconds["filename"], seconds["duration"])}
    missing = sorted(set(clip_seconds) - set(scores))
    if missing:
        raise ValueError(f"clips without scores: {missing[:5]}")
    events: RecordingEvents = {}
    labelled = table[table["event_label"].notna()]
    for filename, onset, offset, label in labelled[["filename", "onset", "offset", "event_label"]].itertuples(
        index=False
    ):
        events.setdefault(audio_id(filename), []).append((onset, offset, label))
    names = sorted(labelled["event_label"].unique()) if class_names is None else list(class_names)
    return segment_pauc(scores, events, clip_seconds, names, segment_length, max_fpr)


def maestro_mpauc(
    chunk_scores: Mapping[str, ClipScores],
    chunk_ground_truth: pd.DataFrame,
    recording_durations: pd.DataFrame,
    class_names: Sequence[str] = MAESTRO_EVAL_CLASSES,
) -> float:
    """MAESTRO segment-based mpAUC of chunk scores (the DCASE'24 Task 4 MAESTRO metric).

    Args:
        chunk_scores: Frame scores keyed by chunk id (audio id of ``<recording>-<start*100>-<end*100>.wav``).
        chunk_ground_truth: Chunk-level table ``filename onset offset event_label confidence``.
        recording_durations: ``filename duration`` of the full recordings.
        class_names: Evaluated classes (the 11 MAESTRO classes of the challenge).
    """
    durations_table = check_durations(recording_durations, "MAESTRO durations")
    durations = {audio_id(f): d for f, d in zip(durations_table["filename"], durations_table["duration"])}
    recordings = overlap_add_chunks(chunk_scores, durations)
    events = recording_ground_truth(chunk_ground_truth, class_names)
    return segment_pauc(recordings, events, durations, class_names)["mean"]
