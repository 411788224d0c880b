"""The clips of an AudioSet-strong split: HDF5 rows matched to table segments, their events, active-frame counts."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import numpy as np
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from datamodules.format.hdf5 import AudioH5
from datamodules.sed.label_encoder import _BOUNDARY_SNAP, EventLabelEncoder
from datamodules.sources import audioset_strong as tables


class MissingClipsWarning(UserWarning):
    """Segments of a strong-label table have no audio in the HDF5 files (never downloaded); they are skipped."""


@dataclass
class StrongClips:
    """The clips of one split: their HDF5 rows and their events as flat arrays (cheap to hand to workers).

    Attributes:
        files: The HDF5 files.
        file_index, rows: (N,) file and row of every clip.
        names: Clip ids as stored (``audio_name``).
        onset, offset, cls: (E,) events of all clips, classes as indices into the trained classes.
        index: (N + 1,) offsets: the events of clip i are ``index[i]:index[i + 1]``.
    """

    files: List[str]
    file_index: np.ndarray
    rows: np.ndarray
    names: List[str]
    onset: np.ndarray
    offset: np.ndarray
    cls: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def events(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(onset, offset, class) arrays of clip ``i``."""
        a, b = self.index[i], self.index[i + 1]
        return self.onset[a:b], self.offset[a:b], self.cls[a:b]


def collect_clips(h5s: Sequence[AudioH5], table: tables.StrongTable, class_index: Dict[str, int],
                  split: str, warn_missing: bool = True) -> StrongClips:
    """The rows of ``h5s`` that hold a segment of ``table``, with the segment's events in trained classes.

    Segments without audio are skipped with one :class:`MissingClipsWarning` (count and first ids; unless
    ``warn_missing`` is off); rows whose clip has no strong labels are left out (counted in an info line).
    """
    files = [h5.path for h5 in h5s]
    match = tables.match_segments(list(table.events), [h5.names for h5 in h5s], files)
    if match.missing and warn_missing:
        rank_zero_warn(f"AudioSet strong {split}: {len(match.missing)} of {len(table.events)} segments of "
                       f"{table.path} are not in {files} and are skipped (e.g. {match.missing[:5]})",
                       category=MissingClipsWarning)
    unlabeled = sum(match.unlabeled) + len(match.duplicates)
    if unlabeled:
        rank_zero_info(f"AudioSet strong {split}: {unlabeled} clips of {files} have no strong labels in "
                       f"{table.path} (or repeat a clip) and are left out")
    onset, offset, cls, index = [], [], [], [0]
    for _, _, segment in match.rows:
        for a, b, mid in table.events[segment]:
            if mid in class_index:
                onset.append(a)
                offset.append(b)
                cls.append(class_index[mid])
        index.append(len(onset))
    return StrongClips(
        files, np.array([f for f, _, _ in match.rows], dtype=np.int64), np.array([r for _, r, _ in match.rows],
                                                                                 dtype=np.int64),
        [h5s[f].names[r] for f, r, _ in match.rows], np.asarray(onset, dtype=np.float64),
        np.asarray(offset, dtype=np.float64), np.asarray(cls, dtype=np.int64), np.asarray(index, dtype=np.int64))


def active_frame_counts(clips: StrongClips, encoder: EventLabelEncoder) -> np.ndarray:
    """(N, C) unsigned integers: active frames of every class in every clip, i.e. the frame targets of
    :meth:`EventLabelEncoder.encode_strong` summed over time, without building them (events of a class that share a
    frame count it once)."""
    n_clips, n_classes, n_frames = len(clips), encoder.n_classes, encoder.n_frames
    counts = np.zeros(n_clips * n_classes, dtype=np.uint8 if n_frames < 256 else np.uint32)
    if not len(clips.onset):
        return counts.reshape(n_clips, n_classes)
    first = np.floor(encoder.time_to_frame(clips.onset) + _BOUNDARY_SNAP).astype(np.int64)
    stop = np.ceil(encoder.time_to_frame(clips.offset) - _BOUNDARY_SNAP).astype(np.int64)
    group = np.repeat(np.arange(n_clips), np.diff(clips.index)) * n_classes + clips.cls
    order = np.lexsort((first, group))
    group, first, stop = group[order], first[order], stop[order]
    # Frame intervals of one (clip, class) laid out on one line, groups n_frames + 1 apart, so that the running
    # maximum of the ends never carries over from one group to the next: the union length per group is the sum of
    # what each interval adds beyond the ends before it.
    start = group * (n_frames + 1) + first
    end = np.maximum(group * (n_frames + 1) + stop, start)
    reach = np.concatenate([[-1], np.maximum.accumulate(end)[:-1]])
    added = np.maximum(end - np.maximum(start, reach), 0)
    groups, starts = np.unique(group, return_index=True)
    counts[groups] = np.add.reduceat(added, starts)
    return counts.reshape(n_clips, n_classes)
