"""Teacher predictions for knowledge distillation, looked up by clip id."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple

import h5py
import numpy as np
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn


class TeacherLogitsError(ValueError):
    """A teacher-logits file that cannot be used: non-finite rows, the wrong width, no training clip covered."""


def _first_non_finite_row(values: np.ndarray, chunk: int = 65536) -> Optional[int]:
    """Index of the first row holding NaN or inf (checked in chunks: the arrays can hold millions of rows)."""
    for start in range(0, len(values), chunk):
        finite = np.isfinite(values[start:start + chunk].reshape(min(chunk, len(values) - start), -1)).all(axis=1)
        if not finite.all():
            return start + int(np.argmin(finite))
    return None


class TeacherLogits:
    """A float16 matrix of teacher logits with a sorted clip-id index.

    The file is HDF5 with a clip-id dataset (``audio_name`` or ``filenames``, bytes) and a logits dataset
    (``logits`` (N, C) or ``strong_logits`` (N, C, T)), any float type. Logits are held once as a float16 torch tensor
    in shared memory and ids as a sorted fixed-width byte array, so DataLoader workers share them instead of each
    holding a copy (no per-clip Python objects to touch).

    A row with NaN or inf (or beyond the float16 range) is an error naming the file, row and clip id: one such row
    would turn the distillation loss of every batch it enters into NaN.

    Args:
        path: The HDF5 file.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"teacher logits file {path!r} does not exist")
        self.path = path
        with h5py.File(path, "r") as f:
            id_key = next((k for k in ("audio_name", "filenames") if k in f), None)
            logit_key = next((k for k in ("logits", "strong_logits") if k in f), None)
            if id_key is None or logit_key is None:
                raise ValueError(f"{path!r} needs a clip-id dataset ('audio_name' or 'filenames') and a logits dataset "
                                 f"('logits' or 'strong_logits'); found {sorted(f)}")
            ids = np.asarray(f[id_key][()]).astype(bytes)
            logits = f[logit_key][()]
        if len(ids) != len(logits):
            raise ValueError(f"{path!r}: {len(ids)} ids but {len(logits)} logit rows")
        with np.errstate(over="ignore"):  # overflow becomes inf, reported just below
            half = np.asarray(logits).astype(np.float16)
        row = _first_non_finite_row(half)
        if row is not None:
            what = ("is beyond the float16 range (|x| > 65504) the logits are held in"
                    if _first_non_finite_row(np.asarray(logits[row:row + 1])) is None else "holds NaN or inf")
            clip = ids[row].decode("utf-8", "replace")
            raise TeacherLogitsError(f"{path}: row {row} of {logit_key!r} (clip {clip!r}) {what}; fix or drop that row")
        order = np.argsort(ids)
        self.ids = ids[order]
        if len(np.unique(self.ids)) != len(self.ids):
            raise ValueError(f"{path!r}: clip ids are not unique")
        self.logits = torch.from_numpy(np.ascontiguousarray(half[order])).share_memory_()

    @property
    def shape(self) -> Tuple[int, ...]:
        """Shape of one clip's logits."""
        return tuple(self.logits.shape[1:])

    def check_classes(self, num_classes: int) -> None:
        """Raises :class:`TeacherLogitsError` unless every clip has ``num_classes`` logits."""
        if self.shape != (num_classes,):
            got = f"{self.shape[0]} logits per clip" if len(self.shape) == 1 else f"logits of shape {self.shape}"
            raise TeacherLogitsError(f"{self.path}: {got}, but the data has num_classes={num_classes}; the teacher "
                                     "must predict the training label space")

    def _find(self, names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Row of every name in the sorted arrays, and whether it is there."""
        raw = [n.encode("utf-8") if isinstance(n, str) else bytes(n) for n in names]
        if not raw:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
        fits = np.array([len(k) <= self.ids.dtype.itemsize for k in raw], dtype=bool)  # longer ids cannot match
        keys = np.asarray(raw).astype(self.ids.dtype)
        pos = np.clip(np.searchsorted(self.ids, keys), 0, len(self.ids) - 1)
        return pos, (self.ids[pos] == keys) & fits

    def contains(self, names: Sequence[str]) -> np.ndarray:
        """Whether each of ``names`` has a teacher row (bool array)."""
        return self._find(names)[1]

    def check_coverage(self, names: Sequence[str], found: Optional[np.ndarray] = None) -> float:
        """Fraction of the training clips ``names`` that have a teacher row, printed once (rank 0).

        No covered clip is an error (the ids do not match: distillation would silently do nothing); a partial cover
        is a warning with the count (the uncovered clips train on their labels only).

        Args:
            names: Clip ids of the training set.
            found: Whether each clip has a row, when the caller matches ids its own way (default: :meth:`contains`).
        """
        found = self.contains(names) if found is None else np.asarray(found, dtype=bool)
        total, covered = len(found), int(found.sum())
        if total and not covered:
            raise TeacherLogitsError(
                f"{self.path}: none of the {total} training clips has teacher logits; training ids look like "
                f"{str(names[0])!r}, the file's like {self.ids[0].decode('utf-8', 'replace')!r}")
        if covered < total:
            rank_zero_warn(f"{self.path}: {total - covered} of {total} training clips have no teacher logits; they "
                           "are trained on their labels only")
        rank_zero_info(f"teacher logits {self.path}: {covered} of {total} training clips covered")
        return covered / total if total else 0.0

    def lookup(self, names: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Float32 logits of ``names`` and a 0/1 weight (0 where the clip has no teacher row; logits are 0 there)."""
        pos, found = self._find(names)
        out = self.logits[torch.from_numpy(pos)].float()
        out[torch.from_numpy(~found)] = 0.0
        return out, torch.from_numpy(found.astype(np.float32))


def write_teacher_logits(path: str, names: Sequence[str], logits: np.ndarray) -> None:
    """Stores teacher logits (float16) keyed by clip id, in the layout :class:`TeacherLogits` reads."""
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.asarray([n.encode("utf-8") for n in names]))
        f.create_dataset("logits", data=np.asarray(logits, dtype=np.float16))
