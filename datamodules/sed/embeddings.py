"""Precomputed frame embeddings (e.g. BEATs, 768 x 496 per 10 s clip) looked up by clip id.

File layout (HDF5)::

    filenames          (N,) strings      clip ids, as stored in the audio file's ``audio_name``
    frame_embeddings   (N, D, T_e)       float16 or float32

The ids are read once; rows are read on demand from a handle opened lazily in each process (a DESED-sized file of
BEATs embeddings is several GB, too large to hold in every DataLoader worker).
"""
from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

import h5py
import numpy as np

from datamodules.format.hdf5 import LazyH5

NAMES_KEY, EMBEDDINGS_KEY = "filenames", "frame_embeddings"


class FrameEmbeddings(LazyH5):
    """Read access to a frame-embedding file by clip id.

    Args:
        path: The HDF5 file (layout in the module docstring).

    Raises:
        FileNotFoundError: No such file.
        ValueError: Missing datasets, not (N, D, T_e), or ids that are not unique or do not match the rows.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"frame embeddings file {path!r} does not exist")
        super().__init__()
        self.path = path
        with h5py.File(path, "r") as f:
            missing = [k for k in (NAMES_KEY, EMBEDDINGS_KEY) if k not in f]
            if missing:
                raise ValueError(f"{path}: frame embeddings need datasets {NAMES_KEY!r} and {EMBEDDINGS_KEY!r}; "
                                 f"missing {missing}, found {sorted(f)}")
            names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in f[NAMES_KEY][()]]
            shape = f[EMBEDDINGS_KEY].shape
        if len(shape) != 3:
            raise ValueError(f"{path}: {EMBEDDINGS_KEY!r} must be (clips, dim, frames), got shape {shape}")
        if shape[0] != len(names):
            raise ValueError(f"{path}: {len(names)} {NAMES_KEY!r} but {shape[0]} rows of {EMBEDDINGS_KEY!r}")
        self._row: Dict[str, int] = {name: i for i, name in enumerate(names)}
        if len(self._row) != len(names):
            raise ValueError(f"{path}: clip ids in {NAMES_KEY!r} are not unique")
        self.shape: Tuple[int, int] = (int(shape[1]), int(shape[2]))

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, name: str) -> bool:
        return name in self._row

    def get(self, name: str) -> np.ndarray:
        """``(D, T_e)`` float32 embeddings of clip ``name``.

        Raises:
            KeyError: The clip is not in the file.
        """
        try:
            row = self._row[name]
        except KeyError:
            raise KeyError(f"{self.path}: no frame embeddings for clip {name!r} ({len(self)} clips in the file)") \
                from None
        return np.asarray(self.file[EMBEDDINGS_KEY][row], dtype=np.float32)


def write_frame_embeddings(path: str, names: Sequence[str], array: np.ndarray) -> None:
    """Writes frame embeddings in the layout :class:`FrameEmbeddings` reads (float16 and float32 kept, else float32).

    Args:
        path: Output file (overwritten).
        names: Clip ids, one per row.
        array: ``(N, D, T_e)`` embeddings.
    """
    array = np.asarray(array)
    if array.ndim != 3 or array.shape[0] != len(names):
        raise ValueError(f"frame embeddings must be (len(names)={len(names)}, dim, frames), got shape {array.shape}")
    if array.dtype not in (np.float16, np.float32):
        array = array.astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset(NAMES_KEY, data=np.asarray(list(names), dtype=object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset(EMBEDDINGS_KEY, data=array)
