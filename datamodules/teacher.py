"""Teacher predictions for knowledge distillation, looked up by clip id."""
from __future__ import annotations

import os
from typing import Sequence, Tuple

import h5py
import numpy as np
import torch


class TeacherLogits:
    """A float16 matrix of teacher logits with a sorted clip-id index.

    The file is HDF5 with a clip-id dataset (``audio_name`` or ``filenames``, bytes) and a logits dataset
    (``logits`` (N, C) or ``strong_logits`` (N, C, T)), any float type. Logits are held once as a float16 torch tensor
    in shared memory and ids as a sorted fixed-width byte array, so DataLoader workers share them instead of each
    holding a copy (no per-clip Python objects to touch).

    Args:
        path: The HDF5 file.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"teacher logits file {path!r} does not exist")
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
        order = np.argsort(ids)
        self.ids = ids[order]
        if len(np.unique(self.ids)) != len(self.ids):
            raise ValueError(f"{path!r}: clip ids are not unique")
        self.logits = torch.from_numpy(np.ascontiguousarray(logits[order]).astype(np.float16)).share_memory_()

    @property
    def shape(self) -> Tuple[int, ...]:
        """Shape of one clip's logits."""
        return tuple(self.logits.shape[1:])

    def lookup(self, names: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Float32 logits of ``names`` and a 0/1 weight (0 where the clip has no teacher row; logits are 0 there)."""
        raw = [n.encode("utf-8") if isinstance(n, str) else bytes(n) for n in names]
        fits = np.array([len(k) <= self.ids.dtype.itemsize for k in raw], dtype=bool)  # longer ids cannot match
        keys = np.asarray(raw).astype(self.ids.dtype)
        pos = np.clip(np.searchsorted(self.ids, keys), 0, len(self.ids) - 1)
        found = (self.ids[pos] == keys) & fits
        out = self.logits[torch.from_numpy(pos)].float()
        out[torch.from_numpy(~found)] = 0.0
        return out, torch.from_numpy(found.astype(np.float32))


def write_teacher_logits(path: str, names: Sequence[str], logits: np.ndarray) -> None:
    """Stores teacher logits (float16) keyed by clip id, in the layout :class:`TeacherLogits` reads."""
    with h5py.File(path, "w") as f:
        f.create_dataset("audio_name", data=np.asarray([n.encode("utf-8") for n in names]))
        f.create_dataset("logits", data=np.asarray(logits, dtype=np.float16))
