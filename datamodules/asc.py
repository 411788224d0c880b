"""Acoustic scene classification data (TAU Urban Acoustic Scenes 2022 Mobile, DCASE'24/'25 Task 1): the
datamodule over the packed files of ``datamodules.sources.tau22`` (``sonolab asc-pack``).

Items carry the waveform at the storage rate (44.1 kHz); resampling to the model rate happens on the batch tensor in
the task (:class:`Resample`), after DIR and time rolling, which therefore act at the storage rate.
"""
from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from datamodules.datasets import DecodeGuard, DecodeMode, OnDecodeError, decode_mode
from datamodules.format.hdf5 import AudioH5
from datamodules.label_space import check_same_classes, stored_names
from datamodules.sources.tau22 import SPLIT_PERCENTS, STORAGE_RATE, read_filenames
from datamodules.splits import clip_groups, held_out_mask
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

    Items: ``audio`` (float32, ``clip_samples``), ``target`` (scene index), ``device`` (index into ``device_vocab``),
    ``city`` (index into the file's city names), ``name`` (as stored, e.g. ``audio/airport-...-a.wav``), ``index``,
    ``skipped`` (undecodable clips it stands for, see :class:`~datamodules.datasets.DecodeGuard`).

    Args:
        path: HDF5 file with scene and device labels.
        names: Clip names to keep (``None``: every row); unknown names are an error.
        devices: Device names to keep (``None``: all).
        clip_samples: Item length in samples at the storage rate (padded/cropped at the end).
        on_decode_error: A clip that cannot be decoded: ``"raise"``, ``"replace"`` (by another clip of the dataset,
            drawn from its index: the same one every epoch) or ``"drop"`` (a silent placeholder for the task to leave
            out).
        device_vocab: The device names that the items' ``device`` ids index (a, b, c, s1-s6 by default); every
            device of the file must be in it.
    """

    def __init__(self, path: str, names: Optional[Sequence[str]] = None, devices: Optional[Sequence[str]] = None,
                 clip_samples: int = STORAGE_RATE, on_decode_error: DecodeMode = "raise",
                 device_vocab: Sequence[str] = DEVICES) -> None:
        self.guard = DecodeGuard(on_decode_error)
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
        # file device ids -> ids of the shared vocabulary (files packed elsewhere may order devices differently)
        self.device_vocab = tuple(device_vocab)
        missing = [d for d in self.h5.device_names if d not in self.device_vocab]
        if missing:
            raise ValueError(f"{path}: device_names {missing} are not in the device vocabulary {list(device_vocab)}")
        to_global = np.array([self.device_vocab.index(d) for d in self.h5.device_names], dtype=np.int64)
        file_ids = self.h5.labels("device")[rows]
        if len(file_ids) and (file_ids.min() < 0 or file_ids.max() >= len(to_global)):
            bad = int(rows[np.flatnonzero((file_ids < 0) | (file_ids >= len(to_global)))[0]])
            raise ValueError(f"{path}: clip {self.h5.names[bad]!r} has device id {int(self.h5.labels('device')[bad])}, "
                             f"expected an index into its {len(to_global)} device_names")
        self.device_ids = to_global[file_ids]
        if devices is not None:
            wanted = [self.device_vocab.index(d) for d in devices]
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
        return self.guard.item(self._read, int(index), len(self))

    def _read(self, index: int, silent: bool) -> Dict[str, Any]:
        row = int(self.rows[index])
        wave = np.zeros(self.clip_samples, np.float32) if silent else \
            self.h5.waveform(row, self.h5.sample_rate, self.clip_samples)
        return {"audio": torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                "target": int(self.scenes[index]), "device": int(self.device_ids[index]),
                "city": int(self.cities[index]), "name": self.h5.names[row], "index": row}


def device_vocabulary(per_file: Sequence[Sequence[str]]) -> List[str]:
    """The shared device names of several files: TAU22's a, b, c, s1-s6 when every device is one of them (ids then
    stay those of the DCASE tools), else every file's devices in order of first appearance."""
    seen = list(dict.fromkeys(d for names in per_file for d in names))
    return list(DEVICES) if set(seen) <= set(DEVICES) else seen


class ASCDataModule(pl.LightningDataModule):
    """TAU22 scene clips: one training split by name, the dev-test file for validation and test.

    The scene names of the first configured file (train, else test, else val) are the label space; the other files
    must have the same names in the same order (their scene ids index them). The device vocabulary
    (:attr:`device_names`) is TAU22's a, b, c, s1-s6 when the files' devices are among them, else the devices of all
    configured files in order of first appearance; item ``device`` ids index it.

    Validation: by default on ``test_h5``, as the DCASE'24 baseline does (TAU22 has no validation split); ``val_h5``
    names another file; ``val_fraction`` holds out whole recordings or cities of the training split instead
    (:func:`held_out_mask`). :attr:`validation_source` says which, for the logs and the result files.

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
            batches then carry ``teacher`` (B, C) and ``teacher_weight`` (0 where a clip has no teacher row). The
            coverage of the training split is reported at fit setup (``teacher_coverage``, logged as
            ``train/teacher_coverage``): none covered is an error, a partial cover a warning.
        on_decode_error: A training clip whose audio cannot be decoded: ``"skip"`` replaces it by another clip of the
            split (warned once per clip, counted in ``train/skipped_clips``); ``"raise"`` stops with an error naming
            the file and the clip.
        eval_on_decode_error: The same for validation, test and prediction clips, ``"raise"`` by default (a metric
            of a silently shrunk set is another number); ``"skip"`` leaves such clips out of the metrics and the
            predictions, warns once per clip and logs ``val/skipped_clips`` / ``test/skipped_clips``.
        val_fraction: Hold out this fraction (0 < f < 1) of the training split's clips for validation, in whole
            groups of ``val_group`` (0: no held-out split); those clips are left out of training.
        val_group: What a group is: ``"recording"`` (TAU's ``<city>-<location>`` identifier from the file name: all
            segments of one place, so no place is on both sides) or ``"city"`` (the file's city labels).
        val_seed: Seed of the draw of the held-out groups.
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
        on_decode_error: OnDecodeError = "skip",
        eval_on_decode_error: OnDecodeError = "raise",
        val_fraction: float = 0.0,
        val_group: Literal["recording", "city"] = "recording",
        val_seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._decode = {"train": decode_mode(on_decode_error, train=True),
                        "eval": decode_mode(eval_on_decode_error, train=False)}
        if split not in SPLIT_PERCENTS:
            raise ValueError(f"split must be one of {SPLIT_PERCENTS}, got {split}")
        reference = train_h5 or test_h5 or val_h5
        if reference is None:
            raise ValueError("ASCDataModule needs train_h5 or test_h5")
        self.device_names: List[str] = device_vocabulary(
            [stored_names(p, "device_names") for p in dict.fromkeys(p for p in (reference, test_h5, val_h5) if p)])
        for devs in (train_devices, eval_devices):
            unknown = [d for d in devs or () if d not in self.device_names]
            if unknown:
                raise ValueError(f"unknown devices {unknown}; known: {self.device_names}")
        if val_fraction:
            if not 0.0 < val_fraction < 1.0:
                raise ValueError(f"val_fraction must lie in (0, 1) (0: no held-out split), got {val_fraction}")
            if val_group not in ("recording", "city"):
                raise ValueError(f"val_group must be 'recording' or 'city', got {val_group!r}")
            if val_h5 or not train_h5:
                raise ValueError("val_fraction holds out clips of train_h5: set train_h5 and leave val_h5 unset")
        self._held_out: Optional[Tuple[List[str], List[str]]] = None
        header = AudioH5(reference)
        self.class_names: List[str] = list(header.scene_names) or list(SCENE_CLASSES)
        self._reference = reference
        self.storage_rate = header.sample_rate
        self.teacher = TeacherLogits(teacher_logits) if teacher_logits else None
        if self.teacher is not None:
            self.teacher.check_classes(self.num_classes)
        self.teacher_coverage: Optional[float] = None
        self._datasets: Dict[str, SceneDataset] = {}

    @property
    def num_classes(self) -> int:
        """Scene classes (linked into the task)."""
        return len(self.class_names)

    def _val_path(self) -> Optional[str]:
        hp = self.hparams
        return hp.val_h5 or (hp.train_h5 if hp.val_fraction else hp.test_h5)

    @property
    def validates_on_test(self) -> bool:
        """Whether validation (checkpoint selection) reads the test file, as the DCASE'24 baseline does."""
        hp = self.hparams
        return not hp.val_h5 and not hp.val_fraction and bool(hp.test_h5)

    @property
    def validation_source(self) -> str:
        """What the validation set is, in words (for the logs and the result files)."""
        hp = self.hparams
        if hp.val_fraction:
            train, val = self.held_out_split()
            share = len(val) / (len(train) + len(val))
            groups = "recordings" if hp.val_group == "recording" else "cities"
            return (f"held-out {groups} of {os.path.basename(hp.train_h5)} "
                    f"(val_fraction {hp.val_fraction:g}, seed {hp.val_seed}: {len(val)} clips, {share:.1%} of the "
                    "training split, left out of training)")
        if hp.val_h5:
            return f"the validation set {os.path.basename(hp.val_h5)}"
        return f"the test set {os.path.basename(hp.test_h5)}" if hp.test_h5 else "none"

    def held_out_split(self) -> Tuple[List[str], List[str]]:
        """(training, validation) clip names of the ``val_fraction`` split of the training split (computed once)."""
        hp = self.hparams
        if not hp.val_fraction:
            raise ValueError("no held-out split: val_fraction is 0")
        if self._held_out is None:
            h5 = AudioH5(hp.train_h5)
            names = self.split_names()
            names = list(h5.names) if names is None else names
            held = held_out_mask(clip_groups(h5, names, hp.val_group), hp.val_fraction, hp.val_seed)
            self._held_out = ([n for n, v in zip(names, held) if not v], [n for n, v in zip(names, held) if v])
        return self._held_out

    @property
    def train_device_names(self) -> Optional[List[str]]:
        """The devices of the training clips (split, held-out part and ``train_devices`` applied), in vocabulary
        order; ``None`` without ``train_h5``."""
        if not self.hparams.train_h5:
            return None
        present = set(self.dataset("train").device_ids.tolist())
        return [d for i, d in enumerate(self.device_names) if i in present]

    def calibration_dataloader(self, batches: int, seed: int = 0) -> DataLoader:
        """``batches`` batches of training clips (all clips when fewer), drawn with ``seed``, in file order and never
        shuffled: the same batches at every call, for a reproducible int8 calibration. The items are not augmented."""
        ds = self.dataset("train")
        clips = min(int(batches) * self.hparams.batch_size, len(ds))
        chosen = np.sort(np.random.default_rng(seed).choice(len(ds), size=clips, replace=False))
        return DataLoader(Subset(ds, chosen.tolist()), batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers)

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
                names = self.held_out_split()[0] if hp.val_fraction else self.split_names()
                ds = SceneDataset(hp.train_h5, names, hp.train_devices, hp.clip_samples, self._decode["train"],
                                  self.device_names)
            else:
                path = self._val_path() if stage == "val" else hp.test_h5
                if not path:
                    raise ValueError(f"no file configured for the {stage} stage")
                names = self.held_out_split()[1] if stage == "val" and hp.val_fraction else None
                ds = SceneDataset(path, names, hp.eval_devices, hp.clip_samples, self._decode["eval"],
                                  self.device_names)
            check_same_classes(ds.h5.scene_names, self.class_names, ds.h5.path, repr(self._reference), "scene_names")
            if len(ds) == 0:
                raise ValueError(f"the {stage} set is empty (split {hp.split}, devices {hp.train_devices})")
            self._datasets[stage] = ds
        return self._datasets[stage]

    def setup(self, stage: str) -> None:
        """Opens (and checks) the files of the stage; at ``fit`` also reports the teacher coverage."""
        hp = self.hparams
        stages = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        configured = {"train": hp.train_h5, "val": self._val_path(), "test": hp.test_h5}
        for name in stages.get(stage, ()):
            if configured[name]:
                self.dataset(name)
        if stage == "fit" and self.teacher is not None and hp.train_h5:
            ds = self.dataset("train")
            names = list(ds.h5.names[ds.rows])
            found = self.teacher.contains(names) | self.teacher.contains([os.path.basename(n) for n in names])
            self.teacher_coverage = self.teacher.check_coverage(names, found)

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
