"""Map-style datasets over the HDF5 audio format, and what every dataset does with a clip it cannot decode.

Undecodable clips (:class:`DecodeGuard`): with ``on_decode_error="raise"`` the item raises an
:class:`~datamodules.format.audio_io.AudioDecodeError` naming the file and the clip; with ``"replace"`` (training)
the item is another clip of the same file, drawn from (seed, epoch, index), so a run stays reproducible whatever the
number of workers; with ``"drop"`` (evaluation) the item keeps its labels but holds silence, and the tasks leave it
out of losses, metrics and predictions (:func:`drop_skipped`). Every item carries ``skipped``: the number of
undecodable clips it stands for (0 for a normal item); the tasks log the sum of an epoch as ``{stage}/skipped_clips``
(:func:`log_skipped_clips`). Each skip is warned once per clip and process (:class:`SkippedClipWarning`).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, Literal, Optional, Set

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.format.audio_io import AudioDecodeError
from datamodules.format.hdf5 import AudioH5

OnDecodeError = Literal["raise", "skip"]
DecodeMode = Literal["raise", "replace", "drop"]
DECODE_MODES = ("raise", "replace", "drop")
SKIPPED = "skipped"
REPLACEMENT_TRIES = 8


class SkippedClipWarning(UserWarning):
    """An undecodable clip was skipped (replaced in training, left out of an evaluation)."""


def is_decode_error(err: BaseException) -> bool:
    """Whether ``err`` says that a clip's audio cannot be decoded (:meth:`AudioH5.waveform` names file and clip)."""
    return isinstance(err, AudioDecodeError)


def decode_mode(on_decode_error: str, train: bool) -> str:
    """The dataset mode of a datamodule's ``on_decode_error`` setting: ``"skip"`` replaces undecodable clips in
    training and drops them in evaluation; ``"raise"`` raises."""
    if on_decode_error not in ("raise", "skip"):
        raise ValueError(f"on_decode_error must be 'raise' or 'skip', got {on_decode_error!r}")
    if on_decode_error == "raise":
        return "raise"
    return "replace" if train else "drop"


class DecodeGuard:
    """Applies a dataset's ``on_decode_error`` mode (see the module docstring) around the reading of one item.

    Args:
        mode: ``"raise"``, ``"replace"`` (another clip of the same dataset) or ``"drop"`` (a silent placeholder).
        seed: Seed of the replacement draws.
    """

    def __init__(self, mode: DecodeMode = "raise", seed: int = 0) -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"on_decode_error must be one of {DECODE_MODES}, got {mode!r}")
        self.mode, self.seed = mode, int(seed)
        self._warned: Set[int] = set()  # per process: DataLoader workers each hold a copy

    def item(self, read: Callable[[int, bool], Dict[str, Any]], index: int, size: int, epoch: int = 0,
             stream: int = 0) -> Dict[str, Any]:
        """``read(index, silent)`` under the mode, with the ``skipped`` field added.

        Args:
            read: Builds the item of an index; ``silent=True`` must not decode (zeros of the clip length).
            index: The item asked for.
            size: Items of the dataset (replacements are drawn among them).
            epoch: Epoch of the replacement draw.
            stream: Distinguishes the draws of datasets sharing a seed (e.g. the sources of one SED batch).
        """
        try:
            return _with_skipped(read(index, False), 0)
        except ValueError as err:
            if not is_decode_error(err):
                raise
            first = err
        if self.mode == "raise":
            raise AudioDecodeError(f"{first} (on_decode_error='raise'; 'skip' skips undecodable clips)") from first
        if self.mode == "drop":
            self._warn(index, first, "left out of this evaluation: its metrics are computed without it")
            return _with_skipped(read(index, True), 1)
        self._warn(index, first, "replaced by another clip of the same file")
        if size < 2:
            raise AudioDecodeError(f"{first}; there is no other clip to replace it with") from first
        rng = np.random.default_rng([self.seed, int(epoch), int(stream), int(index)])
        for attempt in range(1, REPLACEMENT_TRIES + 1):
            other = int(rng.integers(size - 1))
            other += other >= index  # any index but this one
            try:
                return _with_skipped(read(other, False), attempt)
            except ValueError as err:
                if not is_decode_error(err):
                    raise
                self._warn(other, err, "replaced by another clip of the same file")
        raise AudioDecodeError(f"{first}; the {REPLACEMENT_TRIES} clips drawn to replace it cannot be decoded "
                               "either: is the file damaged?") from first

    def _warn(self, index: int, err: Exception, action: str) -> None:
        if index not in self._warned:
            self._warned.add(index)
            warnings.warn(f"skipped an undecodable clip: {err}; {action}", SkippedClipWarning, stacklevel=3)


def _with_skipped(item: Dict[str, Any], count: int) -> Dict[str, Any]:
    item[SKIPPED] = torch.tensor(count, dtype=torch.long)
    return item


def drop_skipped(batch: Dict[str, Any], skipped: Optional[torch.Tensor] = None) -> Dict[str, Any]:
    """The batch without its silent placeholders (the rows with ``skipped`` > 0 of evaluation batches); the batch
    itself when it has none. Tensors and lists of one entry per row are filtered, other values kept.

    Args:
        batch: An evaluation batch, or a task's outputs of one (e.g. names and probabilities).
        skipped: The rows' ``skipped`` counts (default: the batch's own field).
    """
    skipped = batch.get(SKIPPED) if skipped is None else skipped
    if skipped is None or not bool(skipped.any()):
        return batch
    keep = skipped == 0
    rows, flags = len(keep), keep.tolist()
    out: Dict[str, Any] = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.dim() and len(value) == rows:
            value = value[keep.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == rows:
            value = [v for v, k in zip(value, flags) if k]
        out[key] = value
    return out


def log_skipped_clips(module: Any, batch: Dict[str, Any], stage: str) -> None:
    """Logs ``{stage}/skipped_clips`` with ``module`` (a LightningModule): undecodable clips of the epoch, summed over
    batches and processes. Batches without the ``skipped`` field log nothing."""
    skipped = batch.get(SKIPPED)
    if skipped is not None:
        module.log(f"{stage}/skipped_clips", skipped.sum().float(), on_step=False, on_epoch=True, reduce_fx="sum",
                   sync_dist=True, batch_size=len(skipped))


class ClipDataset(Dataset):
    """Fixed-length clips of one HDF5 file with their weak targets.

    Items are dicts: ``audio`` (float32 tensor of ``round(clip_seconds * sample_rate)`` samples), ``target``
    (float32 multi-hot, when the file has targets; the soft labels when it has them), ``mask`` (bool, which labels
    are known; only for files with soft labels), ``name`` (clip id) and ``index`` (row in the file).

    Crops (when a clip is longer than ``clip_seconds``) are random in training, drawn from an RNG seeded by
    (seed, epoch, index) so that a run is reproducible whatever the number of workers; otherwise the start is used.
    Items carry ``skipped`` as well (undecodable clips, see :class:`DecodeGuard`).

    Args:
        path: HDF5 file.
        sample_rate: Rate the audio is resampled to.
        clip_seconds: Length of every item (zero-padded or cropped).
        random_crop: Random crop offsets (training) instead of the clip start.
        seed: Seed of the crop RNG.
        num_classes: Weak classes of community files without ``class_names``.
        label: ``"weak"``: the weak (or soft) targets; ``"scene"``: a one-hot target of the clip's scene label
            (TAU files), for single-label classification with the tagging task.
        on_decode_error: A clip that cannot be decoded: ``"raise"``, ``"replace"`` (by another clip of the file)
            or ``"drop"`` (a silent placeholder for the task to leave out); see :class:`DecodeGuard`.
    """

    def __init__(
        self,
        path: str,
        sample_rate: int,
        clip_seconds: float,
        random_crop: bool = False,
        seed: int = 0,
        num_classes: Optional[int] = None,
        label: str = "weak",
        on_decode_error: DecodeMode = "raise",
    ) -> None:
        if label not in ("weak", "scene"):
            raise ValueError(f"label must be 'weak' or 'scene', got {label!r}")
        self.h5 = AudioH5(path, num_classes=None if label == "scene" else num_classes)
        if label == "scene":
            if not self.h5.scene_names:
                raise ValueError(f"{path} has no scene labels (attribute 'scene_names'); use label='weak'")
            if np.any(self.h5.labels("scene") < 0):
                raise ValueError(f"{path}: some clips have no scene label (-1)")
        self.label = label
        self.sample_rate = int(sample_rate)
        self.length = int(round(clip_seconds * sample_rate))
        self.random_crop = random_crop
        self.seed = int(seed)
        self.epoch = 0
        self.guard = DecodeGuard(on_decode_error, self.seed)

    def set_epoch(self, epoch: int) -> None:
        """Changes the crop draws of the next epoch (called by the datamodule)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.h5)

    @property
    def class_names(self) -> list:
        """The target columns: the scene names with ``label='scene'``, else the file's classes."""
        return list(self.h5.scene_names) if self.label == "scene" else list(self.h5.class_names)

    def weak_targets(self) -> np.ndarray:
        """(N, C) boolean labels of every clip (for samplers)."""
        if self.label == "scene":
            return np.eye(len(self.h5.scene_names), dtype=bool)[self.h5.labels("scene")]
        return self.h5.weak_targets()

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.guard.item(self._read, int(index), len(self), self.epoch)

    def _read(self, index: int, silent: bool) -> Dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)]) if self.random_crop else None
        wave = np.zeros(self.length, np.float32) if silent else self.h5.waveform(index, self.sample_rate,
                                                                                   self.length, rng)
        item: Dict[str, Any] = {"audio": torch.from_numpy(np.ascontiguousarray(wave)), "name": self.h5.names[index],
                                "index": int(index)}
        if self.label == "scene":
            target = np.zeros(len(self.h5.scene_names), dtype=np.float32)
            target[self.h5.label("scene", index)] = 1.0
            item["target"] = torch.from_numpy(target)
        elif self.h5.has_soft_targets:
            soft, known = self.h5.soft_target(index)
            item["target"], item["mask"] = torch.from_numpy(soft), torch.from_numpy(known)
        elif self.h5.num_classes:
            item["target"] = torch.from_numpy(self.h5.weak_target(index))
        return item
