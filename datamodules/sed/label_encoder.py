"""Event tables <-> frame targets for sound event detection, at any frame rate.

An event is ``(onset, offset, label)`` or ``(onset, offset, label, confidence)`` in seconds, the column order of
the strong-label tables (``filename onset offset event_label [confidence]``). Frame ``i`` covers
``[i * frame_hop, (i + 1) * frame_hop)``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Union

import numpy as np
import pandas as pd

DESED_CLASSES: tuple[str, ...] = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
MAESTRO_REAL_CLASSES: tuple[str, ...] = (
    "cutlery and dishes",
    "furniture dragging",
    "people talking",
    "children voices",
    "coffee machine",
    "footsteps",
    "large_vehicle",
    "car",
    "brakes_squeaking",
    "cash register beeping",
    "announcement",
    "shopping cart",
    "metro leaving",
    "metro approaching",
    "door opens/closes",
    "wind_blowing",
    "birds_singing",
)
# The MAESTRO classes the DCASE'24 challenge scores (segment mpAUC); the other six are trained but not evaluated.
MAESTRO_EVAL_CLASSES: tuple[str, ...] = (
    "birds_singing",
    "car",
    "people talking",
    "footsteps",
    "children voices",
    "wind_blowing",
    "brakes_squeaking",
    "large_vehicle",
    "cutlery and dishes",
    "metro approaching",
    "metro leaving",
)

EventsLike = Union[pd.DataFrame, Iterable[Sequence]]

# Times that land within this many frames of a frame boundary snap to it, so that 0.192 s at a 0.064 s hop is
# frame 3 and not frame 2 because 0.192 / 0.064 = 2.9999999999999996 in floating point.
_BOUNDARY_SNAP = 1e-6


def active_runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of ``True`` along the last axis of a 1-D or 2-D boolean array.

    Args:
        active: ``(T,)`` or ``(N, T)`` booleans.

    Returns:
        ``(rows, starts, ends)``: for every run, its row (0 for 1-D input), first frame and one past its last
        frame; ordered by row, then by start.
    """
    active = np.asarray(active, dtype=bool)
    if active.ndim not in (1, 2):
        raise ValueError(f"active must be 1-D or 2-D, got shape {active.shape}")
    rows2d = np.atleast_2d(active)
    # Padding with inactive frames makes every run have a rising and a falling edge, paired in row-major order.
    padded = np.zeros((rows2d.shape[0], rows2d.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = rows2d
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    return rows, starts, ends


class EventLabelEncoder:
    """Encodes event tables as frame targets and decodes frame decisions back to events.

    Args:
        class_names: The classes, in target-column order.
        clip_duration: Seconds of one clip; decoded times are clipped to it.
        frame_hop: Seconds between frames (e.g. 0.064 = hop 256 at 16 kHz, pooled by 4).
        n_frames: Frames per clip. Defaults to ``floor(clip_duration / frame_hop)``.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        clip_duration: float = 10.0,
        frame_hop: float = 0.064,
        n_frames: int | None = None,
    ) -> None:
        if len(class_names) == 0:
            raise ValueError("class_names must not be empty")
        if len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names has duplicates: {list(class_names)}")
        if frame_hop <= 0 or clip_duration <= 0:
            raise ValueError(f"frame_hop and clip_duration must be positive, got {frame_hop}, {clip_duration}")
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.clip_duration = float(clip_duration)
        self.frame_hop = float(frame_hop)
        if n_frames is None:
            n_frames = int(math.floor(clip_duration / frame_hop + _BOUNDARY_SNAP))
        if n_frames <= 0:
            raise ValueError(f"n_frames must be positive, got {n_frames}")
        self.n_frames = int(n_frames)
        self._index = {name: i for i, name in enumerate(self.class_names)}

    @classmethod
    def from_stft(
        cls,
        class_names: Sequence[str],
        clip_duration: float = 10.0,
        sample_rate: int = 16000,
        hop_length: int = 256,
        pooling: int = 4,
    ) -> "EventLabelEncoder":
        """Encoder for a network that pools ``pooling`` STFT frames of ``hop_length`` samples into one output.

        The frame count is that of the DCASE baseline: ``floor(floor(duration * sr / hop) / pooling)``
        (156 for 10 s at 16 kHz, hop 256, pooling 4).
        """
        n_stft = int(clip_duration * sample_rate / hop_length)
        return cls(class_names, clip_duration, hop_length * pooling / sample_rate, n_stft // pooling)

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def class_index(self, label: str) -> int:
        """Column of ``label``; raises ``ValueError`` for a label outside the encoder's classes."""
        try:
            return self._index[label]
        except KeyError:
            raise ValueError(f"unknown event label {label!r}; known: {list(self.class_names)}") from None

    def time_to_frame(self, times: float | np.ndarray) -> np.ndarray:
        """Fractional frame positions of times in seconds, clipped to ``[0, n_frames]``."""
        return np.clip(np.asarray(times, dtype=np.float64) / self.frame_hop, 0.0, self.n_frames)

    def frame_to_time(self, frames: float | np.ndarray) -> np.ndarray:
        """Times in seconds of frame boundaries, clipped to ``[0, clip_duration]``."""
        return np.clip(np.asarray(frames, dtype=np.float64) * self.frame_hop, 0.0, self.clip_duration)

    @property
    def timestamps(self) -> np.ndarray:
        """The ``n_frames + 1`` frame boundaries in seconds (the onset/offset columns of a score file)."""
        return self.frame_to_time(np.arange(self.n_frames + 1))

    def encode_strong(self, events: EventsLike) -> np.ndarray:
        """Frame targets of one clip's events.

        A frame gets an event's confidence (1.0 for hard labels) when the event overlaps it; where events of one
        class overlap, the frame keeps the largest confidence.

        Args:
            events: A table with columns ``onset``, ``offset``, ``event_label`` (and optionally ``confidence``),
                or a sequence of ``(onset, offset, label[, confidence])``. Rows without a label (a clip with no
                events) are skipped.

        Returns:
            ``(n_frames, n_classes)`` float32 targets.
        """
        targets = np.zeros((self.n_frames, self.n_classes), dtype=np.float32)
        for onset, offset, label, confidence in _iter_events(events):
            column = self.class_index(label)
            first = int(math.floor(float(self.time_to_frame(onset)) + _BOUNDARY_SNAP))
            stop = int(math.ceil(float(self.time_to_frame(offset)) - _BOUNDARY_SNAP))
            if stop > first:
                np.maximum(targets[first:stop, column], confidence, out=targets[first:stop, column])
        return targets

    def encode_weak(self, labels: str | Iterable[str]) -> np.ndarray:
        """Multi-hot clip target of labels given as a list or a comma-separated string (``""`` = none)."""
        if isinstance(labels, str):
            labels = [part for part in labels.split(",") if part]
        target = np.zeros(self.n_classes, dtype=np.float32)
        for label in labels:
            if isinstance(label, float) and math.isnan(label):
                continue
            target[self.class_index(label)] = 1.0
        return target

    def decode_weak(self, target: np.ndarray, threshold: float = 0.5) -> list[str]:
        """Labels whose clip score is at least ``threshold``."""
        target = np.asarray(target)
        return [self.class_names[i] for i in np.flatnonzero(target >= threshold)]

    def decode_strong(self, active: np.ndarray) -> list[tuple[float, float, str]]:
        """Events of one clip from frame decisions.

        Args:
            active: ``(n_frames, n_classes)`` booleans (e.g. thresholded scores).

        Returns:
            ``(onset, offset, label)`` per maximal run of active frames, from the first frame's onset to the last
            frame's offset; ordered by class, then time.
        """
        active = np.asarray(active, dtype=bool)
        if active.ndim != 2 or active.shape[1] != self.n_classes:
            raise ValueError(f"active must be (frames, {self.n_classes}), got shape {active.shape}")
        columns, starts, ends = active_runs(active.T)
        onsets = self.frame_to_time(starts)
        offsets = self.frame_to_time(ends)
        return [
            (float(on), float(off), self.class_names[c]) for c, on, off in zip(columns, onsets, offsets)
        ]

    def state_dict(self) -> dict:
        """Constructor arguments as primitives (safe in checkpoints)."""
        return {
            "class_names": list(self.class_names),
            "clip_duration": self.clip_duration,
            "frame_hop": self.frame_hop,
            "n_frames": self.n_frames,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "EventLabelEncoder":
        """Inverse of :meth:`state_dict`."""
        return cls(**state)


def _iter_events(events: EventsLike) -> Iterable[tuple[float, float, str, float]]:
    """Yields ``(onset, offset, label, confidence)`` from a table or a sequence, skipping label-less rows."""
    if isinstance(events, pd.DataFrame):
        missing = {"onset", "offset", "event_label"} - set(events.columns)
        if missing:
            raise ValueError(f"event table lacks columns {sorted(missing)}; has {list(events.columns)}")
        confidence = events["confidence"] if "confidence" in events.columns else [1.0] * len(events)
        rows = zip(events["onset"], events["offset"], events["event_label"], confidence)
    else:
        rows = (tuple(event) + (1.0,) if len(event) == 3 else tuple(event) for event in events)
    for row in rows:
        if len(row) != 4:
            raise ValueError(f"an event is (onset, offset, label[, confidence]), got {row!r}")
        onset, offset, label, confidence = row
        if label is None or (isinstance(label, float) and math.isnan(label)) or label == "":
            continue
        yield float(onset), float(offset), str(label), float(confidence)
