"""SED items of HDF5 audio files: fixed-length audio, frame and clip targets in the label space, valid-class masks.

One item (a dict, see :func:`collate_sed` for the batch):
    audio        (samples,) float32      resampled to ``sample_rate``, zero-padded or cropped to the clip length
    strong       (C, T) float32          frame targets of the clip's events (confidences kept); zeros unless strong
    weak         (C,) float32            the file's weak labels (weak rows) or the frame maximum of ``strong``
    mask         (C,) bool               valid classes (all True for evaluation files)
    has_strong   () bool                 the row's ``strong`` is supervision
    has_weak     () bool                 the row's ``weak`` is supervision (weak-labelled rows only)
    source       () long                 index of the training source (-1 for evaluation files)
    skipped      () long                 undecodable clips it stands for (datamodules.datasets.DecodeGuard)
    name         str                     clip id as stored in the file
    embeddings   (D, T_e) float32        precomputed frame embeddings, when a file of them is given
"""
from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.datasets import DecodeGuard, DecodeMode
from datamodules.format.audio_io import pad_or_crop
from datamodules.format.hdf5 import AudioH5
from datamodules.sed.embeddings import FrameEmbeddings
from datamodules.sed.label_encoder import EventLabelEncoder
from datamodules.sed.masks import map_classes

LabelKind = Literal["strong", "weak", "none"]
LABEL_KINDS = ("strong", "weak", "none")


def infer_labels(h5: AudioH5) -> str:
    """Supervision an evaluation file carries: ``strong`` with events, else ``weak`` with class names and weak
    targets, else ``none``."""
    if h5.has_events():
        return "strong"
    if h5.class_names:
        try:
            h5.weak_targets()
            return "weak"
        except ValueError:  # no 'target' dataset
            pass
    return "none"


class SEDClipDataset(Dataset):
    """Items of one HDF5 file in the label space of ``encoder``.

    Clips longer than the encoder's ``clip_duration`` are cropped at a random offset when ``random_crop`` (seeded by
    (seed, epoch, source, row), events shifted along), else at the start; shorter clips are zero-padded at the end.
    With ``embeddings`` crops always take the start, as the embeddings were computed on the stored clip.

    Args:
        path: The HDF5 audio file (events/class and target columns follow its ``class_names``).
        encoder: Label space and frame grid of the targets.
        labels: Supervision of this file: ``strong`` (events -> frame targets), ``weak`` (clip targets), ``none``,
            or ``None``: what the file holds (:func:`infer_labels`; evaluation files).
        sample_rate: Rate the audio is resampled to.
        source_index: Index of the training source (the ``source`` field), -1 for evaluation files.
        name: Source name, for messages.
        aliases: MAESTRO -> DESED aliases (:mod:`datamodules.sed.masks`).
        reverse_aliases: DESED -> MAESTRO aliases as well.
        strict_classes: Raise on file classes outside the label space (else they are ignored with a warning).
        all_valid: Mask every class valid (evaluation files: no mask at test time).
        random_crop: Random crop offsets for long clips.
        seed: Seed of the crops.
        embeddings: HDF5 of frame embeddings holding every clip of the file.
        on_decode_error: A clip that cannot be decoded: ``"raise"``, ``"replace"`` (by another clip of the file,
            drawn from (seed, epoch, source, row)) or ``"drop"`` (a silent placeholder for the task to leave out).
    """

    def __init__(
        self,
        path: str,
        encoder: EventLabelEncoder,
        labels: Optional[LabelKind],
        sample_rate: int,
        source_index: int = -1,
        name: Optional[str] = None,
        aliases: bool = True,
        reverse_aliases: bool = False,
        strict_classes: bool = False,
        all_valid: bool = False,
        random_crop: bool = False,
        seed: int = 0,
        embeddings: Optional[str] = None,
        on_decode_error: DecodeMode = "raise",
    ) -> None:
        where = f"{name} ({path})" if name else path
        if labels is not None and labels not in LABEL_KINDS:
            raise ValueError(f"{where}: labels must be one of {LABEL_KINDS}, got {labels!r}")
        self.h5 = AudioH5(path)
        labels = infer_labels(self.h5) if labels is None else labels
        self.where, self.labels, self.encoder = where, labels, encoder
        if labels != "none" and not self.h5.class_names:
            raise ValueError(f"{where}: labels={labels!r} needs the file's 'class_names' attribute; it has none")
        if labels == "strong" and not self.h5.has_events():
            raise ValueError(f"{where}: labels='strong' needs strong events (an 'events' group); the file has none")
        if labels == "weak":
            self.h5.weak_targets()  # raises ValueError naming the file when it has no 'target' dataset
        self.mapping = map_classes(self.h5.class_names, encoder.class_names, aliases, reverse_aliases,
                                   strict_classes, source=where)
        self._vocab_encoder = EventLabelEncoder(self.mapping.vocabulary, encoder.clip_duration, encoder.frame_hop,
                                                encoder.n_frames)
        self.mask = np.ones(encoder.n_classes, bool) if all_valid else self.mapping.mask
        self.sample_rate, self.source_index = int(sample_rate), int(source_index)
        self.length = int(round(encoder.clip_duration * self.sample_rate))
        self.seed, self.epoch = int(seed), 0
        self.guard = DecodeGuard(on_decode_error, self.seed)
        self.embeddings = FrameEmbeddings(embeddings) if embeddings else None
        self.random_crop = random_crop and self.embeddings is None
        if self.embeddings is not None:
            missing = [n for n in self.h5.names if n not in self.embeddings]
            if missing:
                raise KeyError(f"{embeddings}: no frame embeddings for {len(missing)} clip(s) of {where}, e.g. "
                               f"{missing[:3]}")

    def __len__(self) -> int:
        return len(self.h5)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the crop draws of plain integer indexing."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        return self.item(index, self.epoch)

    def item(self, index: int, epoch: int) -> Dict[str, Any]:
        """Item of row ``index`` with the crop of ``epoch``."""
        return self.guard.item(lambda row, silent: self._read(row, epoch, silent), int(index), len(self), epoch,
                               stream=self.source_index + 1)

    def _read(self, index: int, epoch: int, silent: bool) -> Dict[str, Any]:
        wave = np.zeros(self.length, np.float32) if silent else self.h5.waveform(index, self.sample_rate)
        start = 0
        if self.random_crop and wave.shape[-1] > self.length:
            rng = np.random.default_rng([self.seed, epoch, self.source_index + 1, int(index)])
            start = int(rng.integers(0, wave.shape[-1] - self.length + 1))
        wave = pad_or_crop(wave[start:], self.length)
        strong, weak = self._targets(index, start / self.sample_rate)
        item: Dict[str, Any] = {
            "audio": torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
            "strong": torch.from_numpy(strong),
            "weak": torch.from_numpy(weak),
            "mask": torch.from_numpy(self.mask.copy()),
            "has_strong": torch.tensor(self.labels == "strong"),
            "has_weak": torch.tensor(self.labels == "weak"),
            "source": torch.tensor(self.source_index, dtype=torch.long),
            "name": str(self.h5.names[index]),
        }
        if self.embeddings is not None:
            item["embeddings"] = torch.from_numpy(self.embeddings.get(item["name"]))
        return item

    def _targets(self, index: int, shift: float) -> tuple:
        """``(C, T)`` and ``(C,)`` float32 targets of row ``index``, events moved ``shift`` seconds earlier."""
        vocab = self.mapping.vocabulary
        strong = np.zeros((len(vocab), self.encoder.n_frames), dtype=np.float32)
        weak = np.zeros(len(vocab), dtype=np.float32)
        if self.labels == "strong":
            events = self.h5.events(index)
            classes = events["class"].astype(np.int64)
            if classes.size and (classes.min() < 0 or classes.max() >= len(self.mapping.index)):
                raise ValueError(f"{self.where}: clip {self.h5.names[index]!r} has an event class index outside "
                                 f"[0, {len(self.mapping.index)}) of the file's class_names")
            rows = self.mapping.index[classes]
            table = [(on - shift, off - shift, vocab[r], conf) for on, off, r, conf
                     in zip(events["onset"], events["offset"], rows, events["confidence"]) if r >= 0]
            strong = np.ascontiguousarray(self._vocab_encoder.encode_strong(table).T)
            weak = strong.max(axis=1)
        elif self.labels == "weak":
            target = self.h5.weak_target(index)
            keep = self.mapping.index >= 0
            weak[self.mapping.index[keep]] = target[keep]
        strong, weak = self.mapping.to_label_space(strong, weak)
        return np.ascontiguousarray(strong, dtype=np.float32), np.ascontiguousarray(weak, dtype=np.float32)


class MultiSourceDataset(Dataset):
    """Several :class:`SEDClipDataset` as consecutive index blocks; indexing with a list returns a whole batch.

    ``dataset[[i, j, ...]]`` (e.g. an :class:`~datamodules.sed.sampler.IndexBatch`, whose ``epoch`` seeds the crops)
    returns the collated batch, rows in the order of the list; ``dataset[i]`` returns one item.

    Args:
        parts: The sources, in order.
    """

    def __init__(self, parts: Sequence[SEDClipDataset]) -> None:
        if not parts:
            raise ValueError("MultiSourceDataset needs at least one source")
        self.parts = list(parts)
        self.sizes = [len(p) for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(np.int64)
        self.epoch = 0

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the crops of indices that carry none."""
        self.epoch = int(epoch)

    def _item(self, index: int, epoch: int) -> Dict[str, Any]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part].item(int(index - self.offsets[part]), epoch)

    def __getitem__(self, key: Union[int, Sequence[int]]) -> Dict[str, Any]:
        epoch = getattr(key, "epoch", self.epoch)
        if isinstance(key, (int, np.integer)):
            return self._item(int(key), epoch)
        return collate_sed([self._item(int(i), epoch) for i in key])


def collate_sed(items: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stacks items into a batch: tensors gain a leading batch axis, ``name`` becomes a list of clip ids."""
    if not items:
        raise ValueError("collate_sed: no items")
    keys = set(items[0])
    if any(set(item) != keys for item in items):
        raise ValueError("collate_sed: items have different fields (e.g. embeddings for some sources only)")
    batch: Dict[str, Any] = {"name": [item["name"] for item in items]}
    for key in keys - {"name"}:
        batch[key] = torch.stack([item[key] for item in items])
    return batch


def passthrough(batch: Dict[str, Any]) -> Dict[str, Any]:
    """Collate function of loaders whose dataset already returns batches (module level, so workers can pickle it)."""
    return batch
