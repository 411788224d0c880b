"""Map-style datasets over the HDF5 audio format."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.format.hdf5 import AudioH5


class ClipDataset(Dataset):
    """Fixed-length clips of one HDF5 file with their weak targets.

    Items are dicts: ``audio`` (float32 tensor of ``round(clip_seconds * sample_rate)`` samples), ``target``
    (float32 multi-hot, when the file has targets; the soft labels when it has them), ``mask`` (bool, which labels
    are known; only for files with soft labels), ``name`` (clip id) and ``index`` (row in the file).

    Crops (when a clip is longer than ``clip_seconds``) are random in training, drawn from an RNG seeded by
    (seed, epoch, index) so that a run is reproducible whatever the number of workers; otherwise the start is used.

    Args:
        path: HDF5 file.
        sample_rate: Rate the audio is resampled to.
        clip_seconds: Length of every item (zero-padded or cropped).
        random_crop: Random crop offsets (training) instead of the clip start.
        seed: Seed of the crop RNG.
        num_classes: Weak classes of community files without ``class_names``.
        label: ``"weak"``: the weak (or soft) targets; ``"scene"``: a one-hot target of the clip's scene label
            (TAU files), for single-label classification with the tagging task.
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
        rng = np.random.default_rng([self.seed, self.epoch, int(index)]) if self.random_crop else None
        wave = self.h5.waveform(index, self.sample_rate, self.length, rng)
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
