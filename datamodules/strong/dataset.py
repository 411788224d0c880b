"""Items of an AudioSet-strong split (fields in :mod:`datamodules.strong`), and teacher logits read row by row."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.datasets import DecodeGuard, DecodeMode
from datamodules.format.hdf5 import AudioH5, LazyH5
from datamodules.format.strong_logits import LOGITS, LogitsFileError, logits_shape, read_names
from datamodules.sed.label_encoder import EventLabelEncoder
from datamodules.sources import audioset_strong as tables
from datamodules.strong.clips import StrongClips


class TeacherFrames(LazyH5):
    """Frame logits of a teacher (ensemble) file (:mod:`datamodules.format.strong_logits`), read row by row.

    Args:
        path: HDF5 with ``filenames`` (N,) and ``strong_logits`` (N, C, T).
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.names = read_names(path)
        self.shape = logits_shape(path)[1:]
        with h5py.File(path, "r") as f:
            stored = f.attrs.get("class_names")
        self.class_names = [] if stored is None else [c.decode() if isinstance(c, bytes) else str(c) for c in stored]

    def rows_of(self, names: Sequence[str]) -> np.ndarray:
        """Row of every clip id (-1: none), matched by YouTube id and, where both ids carry one, start time
        (the files of PretrainedSED name clips ``Y<ytid>``, sonolab's as the audio files)."""
        exact: Dict[tables.ClipKey, int] = {}
        by_video: Dict[str, List[Tuple[int, Optional[int]]]] = {}
        for row, name in enumerate(self.names):
            key = tables.audio_name_key(name)
            exact.setdefault(key, row)
            by_video.setdefault(key[0], []).append((row, key[1]))
        found = np.full(len(names), -1, dtype=np.int64)
        for i, name in enumerate(names):
            ytid, start = tables.audio_name_key(name)
            row = exact.get((ytid, start))
            candidates = by_video.get(ytid, ())
            if row is None and len(candidates) == 1 and None in (start, candidates[0][1]):
                row = candidates[0][0]
            found[i] = -1 if row is None else row
        return found

    def read(self, row: int, name: str) -> np.ndarray:
        """(C, T) float32 logits of ``row``; a row holding NaN or inf is an error naming the file and the clip."""
        logits = self.file[LOGITS][int(row)].astype(np.float32)
        if not np.isfinite(logits).all():
            raise LogitsFileError(f"{self.path}: row {row} (clip {name!r}) holds NaN or inf; fix or drop that row")
        return logits


class StrongClipDataset(Dataset):
    """Items (see the module docstring) of the clips of one split.

    Args:
        h5s: The HDF5 files of ``clips``.
        clips: The split's clips and events.
        encoder: Trained classes and frame grid of the targets.
        sample_rate: Rate the audio is resampled to.
        on_decode_error: ``"raise"``, ``"replace"`` or ``"drop"`` (:class:`~datamodules.datasets.DecodeGuard`).
        seed: Seed of the replacement draws.
        teacher: Teacher logits, with ``teacher_rows`` (N,) the row of every clip.
    """

    def __init__(self, h5s: Sequence[AudioH5], clips: StrongClips, encoder: EventLabelEncoder, sample_rate: int,
                 on_decode_error: DecodeMode = "raise", seed: int = 0, teacher: Optional[TeacherFrames] = None,
                 teacher_rows: Optional[np.ndarray] = None) -> None:
        self.h5s, self.clips, self.encoder = list(h5s), clips, encoder
        self.sample_rate = int(sample_rate)
        self.length = int(round(encoder.clip_duration * sample_rate))
        self.guard = DecodeGuard(on_decode_error, seed)
        self.teacher, self.teacher_rows = teacher, teacher_rows
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Changes the replacement draws of undecodable clips (called by the datamodule)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.guard.item(self._read, int(index), len(self), self.epoch)

    def targets(self, i: int) -> np.ndarray:
        """(C, T) float32 frame targets of clip ``i``."""
        names = self.encoder.class_names
        events = [(a, b, names[c]) for a, b, c in zip(*self.clips.events(i))]
        return np.ascontiguousarray(self.encoder.encode_strong(events).T)

    def _read(self, i: int, silent: bool) -> Dict[str, Any]:
        h5, row = self.h5s[self.clips.file_index[i]], int(self.clips.rows[i])
        wave = np.zeros(self.length, np.float32) if silent else h5.waveform(row, self.sample_rate, self.length)
        name = self.clips.names[i]
        item = {"audio": torch.from_numpy(np.ascontiguousarray(wave)), "strong": torch.from_numpy(self.targets(i)),
                "name": name, "index": i}
        if self.teacher is not None:
            item["teacher_logits"] = torch.from_numpy(self.teacher.read(self.teacher_rows[i], name))
        return item
