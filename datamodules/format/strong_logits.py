"""HDF5 files of frame-level teacher logits (PretrainedSED's ensemble targets).

Layout: ``filenames`` (N,) UTF-8 bytes, the clip ids of the audio HDF5 files; ``strong_logits`` (N, C, T) float16,
logits (not probabilities) of C classes over T frames (447 x 250 for AudioSet strong at 40 ms). Attributes
``class_names`` (C strings, optional) and ``sources`` (the files or models averaged into it).

Files are written incrementally (:class:`LogitsFileWriter`): a teacher's predictions over ~100k clips (about 22 GB at
float16) never sit in memory. Under DDP every process writes a part and the parts are merged, each clip once
(:func:`merge_parts`); an ensemble is the mean of several teachers' logits clip by clip (:func:`average_files`).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import h5py
import numpy as np

NAMES = "filenames"
LOGITS = "strong_logits"
DTYPE = np.float16
ROWS_PER_READ = 256


class LogitsFileError(ValueError):
    """A logits file that is missing, has the wrong layout, or does not match the others (one line, names the
    file)."""


class LogitsFileWriter:
    """Appends (names, logits) batches to a new logits file; :meth:`close` makes it visible under ``path``.

    The data goes to ``path + ".tmp"`` first and is renamed on close, so an interrupted run never leaves a file that
    looks complete.

    Args:
        path: Target file.
        n_classes: C.
        n_frames: T.
        class_names: Optional C class names stored as an attribute.
    """

    def __init__(self, path: str, n_classes: int, n_frames: int, class_names: Optional[Sequence[str]] = None) -> None:
        if class_names is not None and len(class_names) != n_classes:
            raise LogitsFileError(f"{path}: {len(class_names)} class names for {n_classes} classes")
        self.path, self.tmp = path, path + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._file = h5py.File(self.tmp, "w")
        self._names = self._file.create_dataset(NAMES, (0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"))
        self._logits = self._file.create_dataset(LOGITS, (0, n_classes, n_frames), maxshape=(None, n_classes, n_frames),
                                                 dtype=DTYPE, chunks=(1, n_classes, n_frames))
        if class_names is not None:
            self._file.attrs["class_names"] = [str(c) for c in class_names]
        self.rows = 0

    def append(self, names: Sequence[str], logits: np.ndarray) -> None:
        """Adds ``len(names)`` rows; ``logits`` is (len(names), C, T)."""
        logits = np.asarray(logits)
        expected = (len(names),) + self._logits.shape[1:]
        if logits.shape != expected:
            raise LogitsFileError(f"{self.path}: logits of shape {logits.shape}, expected {expected}")
        end = self.rows + len(names)
        self._names.resize((end,))
        self._logits.resize((end,) + self._logits.shape[1:])
        self._names[self.rows:end] = [str(n) for n in names]
        self._logits[self.rows:end] = logits.astype(DTYPE)
        self.rows = end

    def close(self, sources: Sequence[str] = ()) -> str:
        """Finishes the file and renames it to ``path``; returns the path."""
        if sources:
            self._file.attrs["sources"] = [str(s) for s in sources]
        self._file.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Closes and deletes the unfinished file."""
        self._file.close()
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


def _open(path: str) -> h5py.File:
    if not os.path.isfile(path):
        raise LogitsFileError(f"logits file {path!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise LogitsFileError(f"{path!r} is not a readable HDF5 file: {err}") from None
    if NAMES not in f or LOGITS not in f:
        found = sorted(f)
        f.close()
        raise LogitsFileError(f"{path}: expected datasets {NAMES!r} and {LOGITS!r} (a logits file), found {found}")
    if f[LOGITS].ndim != 3 or f[LOGITS].shape[0] != f[NAMES].shape[0]:
        shape, n = f[LOGITS].shape, f[NAMES].shape[0]
        f.close()
        raise LogitsFileError(f"{path}: {LOGITS!r} has shape {shape}, expected ({n}, classes, frames)")
    return f


def read_names(path: str) -> List[str]:
    """The clip ids of a logits file, in row order."""
    with _open(path) as f:
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f[NAMES][()]]


def logits_shape(path: str) -> tuple:
    """(N, C, T) of a logits file."""
    with _open(path) as f:
        return tuple(f[LOGITS].shape)


def _class_names(f: h5py.File) -> Optional[List[str]]:
    names = f.attrs.get("class_names")
    return None if names is None else [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _copy_rows(out: LogitsFileWriter, f: h5py.File, rows: Sequence[int], names: Sequence[str]) -> None:
    """Copies ``rows`` of ``f`` (any order) in slices of at most ROWS_PER_READ rows."""
    for start in range(0, len(rows), ROWS_PER_READ):
        part = np.asarray(rows[start:start + ROWS_PER_READ])
        order = np.argsort(part)
        block = f[LOGITS][part[order]]  # h5py wants increasing indices
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        out.append(names[start:start + ROWS_PER_READ], block[inverse])


def merge_parts(parts: Sequence[str], out: str, remove: bool = True) -> int:
    """Concatenates part files into ``out``, keeping the first row of every clip id (distributed samplers repeat a
    few clips to even out the processes). Returns the number of clips written.

    Raises:
        LogitsFileError: Parts of different (C, T).
    """
    shapes = {p: logits_shape(p)[1:] for p in parts}
    if len(set(shapes.values())) > 1:
        raise LogitsFileError(f"{out}: parts of different (classes, frames): {shapes}")
    (n_classes, n_frames), seen = next(iter(shapes.values())), set()
    with _open(parts[0]) as f:
        class_names = _class_names(f)
    writer = LogitsFileWriter(out, n_classes, n_frames, class_names)
    try:
        for part in parts:
            names = read_names(part)
            keep = [i for i, n in enumerate(names) if not (n in seen or seen.add(n))]
            with _open(part) as f:
                _copy_rows(writer, f, keep, [names[i] for i in keep])
        writer.close(sources=[os.path.basename(p) for p in parts])
    except BaseException:
        writer.abort()
        raise
    if remove:
        for part in parts:
            os.remove(part)
    return len(seen)


def average_files(inputs: Sequence[str], out: str) -> int:
    """Writes the clip-wise mean of the logits of ``inputs`` (the ensemble target), in the row order of the first.

    Every input must hold the same clips (in any order) with the same (C, T). Returns the number of clips.

    Raises:
        LogitsFileError: A missing/bad file, different shapes, or clip sets that differ (names a few clips).
    """
    if len(inputs) < 1:
        raise LogitsFileError("average_files needs at least one input")
    shapes = {p: logits_shape(p)[1:] for p in inputs}
    if len(set(shapes.values())) > 1:
        raise LogitsFileError(f"{out}: inputs of different (classes, frames): {shapes}")
    names = read_names(inputs[0])
    rows: List[Dict[str, int]] = []
    for path in inputs:
        index = {n: i for i, n in enumerate(read_names(path))}
        missing = [n for n in names if n not in index]
        extra = len(index) - (len(names) - len(missing))
        if missing or extra:
            raise LogitsFileError(f"{path}: clips differ from {inputs[0]}: {len(missing)} missing (e.g. "
                                  f"{missing[:3]}), {extra} extra")
        rows.append(index)
    n_classes, n_frames = shapes[inputs[0]]
    with _open(inputs[0]) as f:
        class_names = _class_names(f)
    writer = LogitsFileWriter(out, n_classes, n_frames, class_names)
    files = [_open(p) for p in inputs]
    try:
        for start in range(0, len(names), ROWS_PER_READ):
            batch = names[start:start + ROWS_PER_READ]
            total = np.zeros((len(batch), n_classes, n_frames), dtype=np.float32)
            for f, index in zip(files, rows):
                wanted = np.array([index[n] for n in batch])
                order = np.argsort(wanted)
                block = f[LOGITS][wanted[order]].astype(np.float32)
                total[order] += block
            writer.append(batch, total / len(files))
        writer.close(sources=[os.path.basename(p) for p in inputs])
    except BaseException:
        writer.abort()
        raise
    finally:
        for f in files:
            f.close()
    return len(names)
