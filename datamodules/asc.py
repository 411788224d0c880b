"""Acoustic scene classification data (TAU Urban Acoustic Scenes 2022 Mobile, DCASE'24/'25 Task 1): the
datamodule over the packed files of ``datamodules.sources.tau22`` (``sonolab asc-pack``).

Items carry the waveform at the storage rate (44.1 kHz); resampling to the model rate happens on the batch tensor in
the task (:class:`Resample`), after DIR and time rolling, which therefore act at the storage rate.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from datamodules.format.hdf5 import AudioH5
from datamodules.sources.tau22 import SPLIT_PERCENTS, STORAGE_RATE, read_filenames
from datamodules.teacher import TeacherLogits
from metrics.asc import DEVICES, SCENE_CLASSES


# ---------------------------------------------------------------------------------------------------------------
# Batch resampling (torch; no torchaudio needed)
# ---------------------------------------------------------------------------------------------------------------
class Resample(nn.Module):
    """Band-limited (Hann-windowed sinc) polyphase resampling of (B, n) or (B, 1, n) batches along the last axis.

    The same kernel design as torchaudio's default ``sinc_interp_hann`` (6 zero crossings, rolloff 0.99); output
    length ``ceil(n * new / orig)`` (1 s at 44.1 kHz -> 32,000 samples at 32 kHz).

    Args:
        orig_rate: Input rate in Hz.
        new_rate: Output rate in Hz.
        lowpass_filter_width: Zero crossings of the sinc on each side.
        rolloff: Cut-off as a fraction of the lower Nyquist rate.
    """

    def __init__(self, orig_rate: int = STORAGE_RATE, new_rate: int = 32000, lowpass_filter_width: int = 6,
                 rolloff: float = 0.99) -> None:
        super().__init__()
        self.orig_rate, self.new_rate = int(orig_rate), int(new_rate)
        g = math.gcd(self.orig_rate, self.new_rate)
        self.orig, self.new = self.orig_rate // g, self.new_rate // g
        base = min(self.orig, self.new) * rolloff
        self.width = math.ceil(lowpass_filter_width * self.orig / base)
        idx = torch.arange(-self.width, self.width + self.orig, dtype=torch.float64)[None, None] / self.orig
        t = (torch.arange(0, -self.new, -1, dtype=torch.float64)[:, None, None] / self.new + idx) * base
        t = t.clamp(-lowpass_filter_width, lowpass_filter_width)
        window = torch.cos(t * math.pi / lowpass_filter_width / 2) ** 2
        t = t * math.pi
        sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
        self.register_buffer("kernel", (sinc * window * base / self.orig).float(), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if self.orig == self.new:
            return wave
        shape = wave.shape
        x = wave.reshape(-1, 1, shape[-1]).float()
        n = shape[-1]
        x = nn.functional.pad(x, (self.width, self.width + self.orig))
        y = nn.functional.conv1d(x, self.kernel.to(x.device), stride=self.orig)  # (N, new, frames)
        y = y.transpose(1, 2).reshape(x.shape[0], -1)
        out = y[:, : math.ceil(self.new * n / self.orig)]
        return out.reshape(*shape[:-1], out.shape[-1]).to(wave.dtype)

    def extra_repr(self) -> str:
        return f"orig_rate={self.orig_rate}, new_rate={self.new_rate}"


# ---------------------------------------------------------------------------------------------------------------
# Dataset and datamodule
# ---------------------------------------------------------------------------------------------------------------
class SceneDataset(Dataset):
    """1 s scene clips of one HDF5 file (or a subset of its rows) at the storage rate.

    Items: ``audio`` (float32, ``clip_samples``), ``target`` (scene index), ``device`` (index into a, b, c, s1-s6),
    ``city`` (index into the file's city names), ``name`` (as stored, e.g. ``audio/airport-...-a.wav``), ``index``.

    Args:
        path: HDF5 file with scene and device labels.
        names: Clip names to keep (``None``: every row); unknown names are an error.
        devices: Device names to keep (``None``: all).
        clip_samples: Item length in samples at the storage rate (padded/cropped at the end).
    """

    def __init__(self, path: str, names: Optional[Sequence[str]] = None, devices: Optional[Sequence[str]] = None,
                 clip_samples: int = STORAGE_RATE) -> None:
        self.h5 = AudioH5(path)
        if not self.h5.scene_names or not self.h5.device_names:
            raise ValueError(f"{path} has no scene/device names; pack it with `sonolab asc-pack`")
        if names is None:
            rows = np.arange(len(self.h5))
        else:
            lookup = {n: i for i, n in enumerate(self.h5.names)}
            unknown = [n for n in names if n not in lookup]
            if unknown:
                raise ValueError(f"{len(unknown)} clips of the split are not in {path}, e.g. {unknown[:3]}")
            rows = np.array([lookup[n] for n in names], dtype=np.int64)
        # file device ids -> the global a, b, c, s1-s6 ids (files packed elsewhere may order devices differently)
        to_global = np.array([DEVICES.index(d) if d in DEVICES else -1 for d in self.h5.device_names], dtype=np.int64)
        self.device_ids = to_global[self.h5.labels("device")[rows]]
        if devices is not None:
            wanted = [DEVICES.index(d) for d in devices]
            keep = np.isin(self.device_ids, wanted)
            rows, self.device_ids = rows[keep], self.device_ids[keep]
        self.rows = rows
        self.scenes = self.h5.labels("scene")[rows].astype(np.int64)
        try:
            self.cities = self.h5.labels("city")[rows].astype(np.int64)
        except ValueError:  # a file without city labels
            self.cities = np.full(len(rows), -1, dtype=np.int64)
        self.clip_samples = int(clip_samples)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        row = int(self.rows[index])
        wave = self.h5.waveform(row, self.h5.sample_rate, self.clip_samples)
        return {"audio": torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                "target": int(self.scenes[index]), "device": int(self.device_ids[index]),
                "city": int(self.cities[index]), "name": self.h5.names[row], "index": row}


class ASCDataModule(pl.LightningDataModule):
    """TAU22 scene clips: one training split by name, the dev-test file for validation and test.

    Args:
        train_h5: Packed training file (``tau_train.h5``: every clip of split100).
        test_h5: Packed dev-test file; also used for validation unless ``val_h5`` is given.
        val_h5: Validation file (default ``test_h5``; TAU22 has no validation split).
        split: Training split in percent (5, 10, 25, 50, 100): the rows named in ``split_dir/split{N}.csv``.
        split_dir: Folder of the ``split*.csv`` lists (default: the folder of ``train_h5``, where ``asc-pack`` copies
            them). Without ``split100.csv`` there, split 100 means every row of ``train_h5``.
        train_devices: Train only on these devices (device-specific fine-tuning, DCASE'25), e.g. ``["b"]``.
        eval_devices: Validate/test only on these devices (``None``: all).
        clip_samples: Clip length at the storage rate.
        batch_size: Clips per batch.
        num_workers: DataLoader workers.
        teacher_logits: HDF5 of raw teacher logits keyed by file name (``audio/...wav`` or the bare name); training
            batches then carry ``teacher`` (B, C) and ``teacher_weight`` (0 where a clip has no teacher row).
    """

    def __init__(
        self,
        train_h5: Optional[str] = None,
        test_h5: Optional[str] = None,
        val_h5: Optional[str] = None,
        split: int = 100,
        split_dir: Optional[str] = None,
        train_devices: Optional[List[str]] = None,
        eval_devices: Optional[List[str]] = None,
        clip_samples: int = STORAGE_RATE,
        batch_size: int = 256,
        num_workers: int = 4,
        teacher_logits: Optional[str] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if split not in SPLIT_PERCENTS:
            raise ValueError(f"split must be one of {SPLIT_PERCENTS}, got {split}")
        for devs in (train_devices, eval_devices):
            unknown = [d for d in devs or () if d not in DEVICES]
            if unknown:
                raise ValueError(f"unknown devices {unknown}; known: {list(DEVICES)}")
        reference = train_h5 or test_h5 or val_h5
        if reference is None:
            raise ValueError("ASCDataModule needs train_h5 or test_h5")
        header = AudioH5(reference)
        self.class_names: List[str] = list(header.scene_names) or list(SCENE_CLASSES)
        self.storage_rate = header.sample_rate
        self.teacher = TeacherLogits(teacher_logits) if teacher_logits else None
        if self.teacher is not None and self.teacher.shape != (self.num_classes,):
            raise ValueError(f"teacher logits {teacher_logits!r} have shape {self.teacher.shape}, "
                             f"expected ({self.num_classes},)")
        self._datasets: Dict[str, SceneDataset] = {}

    @property
    def num_classes(self) -> int:
        """Scene classes (linked into the task)."""
        return len(self.class_names)

    def split_names(self) -> Optional[List[str]]:
        """File names of the configured split (``None``: all rows of ``train_h5``)."""
        hp = self.hparams
        folder = hp.split_dir or os.path.dirname(os.path.abspath(hp.train_h5))
        path = os.path.join(folder, f"split{hp.split}.csv")
        if not os.path.isfile(path):
            if hp.split == 100:
                return None
            raise FileNotFoundError(f"split list {path!r} does not exist (set split_dir)")
        return read_filenames(path)

    def dataset(self, stage: str) -> SceneDataset:
        """The dataset of ``train``, ``val`` or ``test`` (built once)."""
        if stage not in self._datasets:
            hp = self.hparams
            if stage == "train":
                if not hp.train_h5:
                    raise ValueError("no train_h5 configured")
                ds = SceneDataset(hp.train_h5, self.split_names(), hp.train_devices, hp.clip_samples)
            else:
                path = (hp.val_h5 or hp.test_h5) if stage == "val" else hp.test_h5
                if not path:
                    raise ValueError(f"no file configured for the {stage} stage")
                ds = SceneDataset(path, None, hp.eval_devices, hp.clip_samples)
            if len(ds) == 0:
                raise ValueError(f"the {stage} set is empty (split {hp.split}, devices {hp.train_devices})")
            self._datasets[stage] = ds
        return self._datasets[stage]

    def _loader(self, stage: str) -> DataLoader:
        return DataLoader(self.dataset(stage), batch_size=self.hparams.batch_size, shuffle=stage == "train",
                          num_workers=self.hparams.num_workers, drop_last=False,
                          persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")

    def teacher_lookup(self, names: Sequence[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Raw teacher logits and 0/1 weights of ``names``; a name is tried as stored, then without ``audio/``."""
        logits, weight = self.teacher.lookup(list(names))
        if (weight == 0).any():
            bare = [os.path.basename(n) for n in names]
            logits2, weight2 = self.teacher.lookup(bare)
            use = (weight == 0) & (weight2 > 0)
            logits[use], weight[use] = logits2[use], weight2[use]
        return logits, weight

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Attaches teacher logits to training batches (in the main process, by file name)."""
        if self.teacher is not None and self.trainer is not None and self.trainer.training:
            batch["teacher"], batch["teacher_weight"] = self.teacher_lookup(batch["name"])
        return batch
