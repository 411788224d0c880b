"""The AudioSet-strong datamodule (PretrainedSED pre-training): label space, splits, sampler, evaluation reference."""
from __future__ import annotations

from typing import Dict, List, Literal, Optional, Tuple, Union

import numpy as np
import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from datamodules.datasets import OnDecodeError, decode_mode
from datamodules.format.hdf5 import AudioH5
from datamodules.format.strong_logits import LogitsFileError
from datamodules.samplers import DistributedWeightedSampler, strong_clip_weights
from datamodules.sed.label_encoder import EventLabelEncoder
from datamodules.sed.reference import DURATION_COLUMNS, GROUND_TRUTH_COLUMNS
from datamodules.sources import audioset_strong as tables
from datamodules.strong.clips import StrongClips, active_frame_counts, collect_clips
from datamodules.strong.dataset import StrongClipDataset, TeacherFrames

SPLITS = ("train", "val", "test", "predict")


class AudioSetStrongDataModule(pl.LightningDataModule):
    """AudioSet strong: training clips drawn by PretrainedSED's balanced sampler, eval clips for val/test.

    The label space is read at construction: the class map and both tables give :attr:`class_names` (trained
    classes) and :attr:`metric_classes`. A split's clips are the rows of its HDF5 files that hold a segment of its
    table (train: the train table; val, test: the eval table), matched by YouTube id and start time
    (:func:`datamodules.sources.audioset_strong.match_segments`); segments without audio are skipped with one
    warning, clips without strong labels are left out.

    Args:
        train_table: ``audioset_train_strong.tsv``.
        eval_table: ``audioset_eval_strong.tsv``.
        class_map: ``mid_to_display_name.tsv`` (or PretrainedSED's comma-separated copy).
        train_h5: Training audio file(s), e.g. the community ``balanced_train_segments_mp3.hdf`` and
            ``unbalanced_train_segments_mp3.hdf``, or sonolab files.
        val_h5: Validation audio (AudioSet ``eval_segments_mp3.hdf``; PretrainedSED validates on the eval set).
        test_h5: Test audio (the same eval file, usually).
        predict_h5: Files to predict: their clips with strong labels in either table (default: the training files,
            whose logits are the distillation targets).
        sample_rate: Rate the model expects.
        clip_seconds: Clip length (10 s).
        frames: Target frames per clip (250: 40 ms).
        batch_size: Clips per batch (per process under DDP).
        num_workers: DataLoader workers.
        num_samples: Training draws per epoch over all processes (100,000).
        sampler: ``"balanced"``: clip weights :func:`~datamodules.samplers.strong_clip_weights` (class count = 30 +
            active frames, class weight = 1000 / count, clip weight = sum over classes of its active frames x
            class weight); ``"random"``: uniform weights (PretrainedSED without ``--use_balanced_sampler``).
        replacement: Draw with replacement. PretrainedSED's ``get_weighted_sampler`` draws without (its default
            ``sampler_replace=False``), which needs at least ``num_samples`` clips of positive weight.
        seed: Seed of the draws (per epoch: seed + epoch; disjoint shares per process).
        teacher_logits: HDF5 of ensemble logits (``filenames`` (N,), ``strong_logits`` (N, C, T) float16) that must
            hold every training clip (matched like the tables); training batches then carry ``teacher_logits``.
        on_decode_error: An undecodable training clip: ``"skip"`` replaces it by another clip of the split (warned,
            counted in ``train/skipped_clips``); ``"raise"`` stops.
        eval_on_decode_error: The same for val/test/predict (``"skip"`` leaves the clip out of the metrics).
    """

    def __init__(
        self,
        train_table: str,
        eval_table: str,
        class_map: str,
        train_h5: Optional[Union[str, List[str]]] = None,
        val_h5: Optional[str] = None,
        test_h5: Optional[str] = None,
        predict_h5: Optional[Union[str, List[str]]] = None,
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        frames: int = 250,
        batch_size: int = 32,
        num_workers: int = 4,
        num_samples: int = 100_000,
        sampler: Literal["balanced", "random"] = "balanced",
        replacement: bool = True,
        seed: int = 0,
        teacher_logits: Optional[str] = None,
        on_decode_error: OnDecodeError = "skip",
        eval_on_decode_error: OnDecodeError = "raise",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if sampler not in ("balanced", "random"):
            raise ValueError(f"sampler must be 'balanced' or 'random', got {sampler!r}")
        self._decode = {"train": decode_mode(on_decode_error, train=True),
                        "eval": decode_mode(eval_on_decode_error, train=False)}
        self.class_map = tables.read_class_map(class_map)
        self.tables = {"train": tables.read_strong_table(train_table, self.class_map),
                       "eval": tables.read_strong_table(eval_table, self.class_map)}
        self.class_names: List[str] = tables.trained_classes(self.tables["train"], self.class_map)
        self.evaluated_class_names = tables.evaluated_classes(self.tables["eval"], self.class_map)
        self.metric_class_names = tables.metric_classes(self.class_names, self.evaluated_class_names)
        column = {name: c for c, name in enumerate(self.class_names)}
        self.metric_classes: List[int] = [column[name] for name in self.metric_class_names]
        self.encoder = EventLabelEncoder(self.class_names, clip_seconds, clip_seconds / frames, frames)
        self._class_index = {mid: column[name] for mid, name in self.class_map.items() if name in column}
        self._files = {"train": _paths(train_h5), "val": _paths(val_h5), "test": _paths(test_h5),
                       "predict": _paths(predict_h5) or _paths(train_h5)}
        self._datasets: Dict[str, StrongClipDataset] = {}

    @property
    def num_classes(self) -> int:
        """Trained classes: the model's output columns (linked into the task)."""
        return len(self.class_names)

    def dataset(self, split: str) -> StrongClipDataset:
        """The dataset of ``split`` (``train``, ``val``, ``test``, ``predict``), built on first use."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self._datasets:
            files = self._files[split]
            if not files:
                raise ValueError(f"no {split}_h5 file configured for the {split} stage")
            table = self.tables["train" if split == "train" else "eval"]
            if split == "predict":
                table = tables.StrongTable(f"{self.tables['train'].path} + {self.tables['eval'].path}",
                                           {**self.tables["train"].events, **self.tables["eval"].events})
            h5s = [AudioH5(p) for p in files]
            clips = collect_clips(h5s, table, self._class_index, split, warn_missing=split != "predict")
            teacher, rows = (self._teacher(clips) if split == "train" and self.hparams.teacher_logits
                             else (None, None))
            self._datasets[split] = StrongClipDataset(
                h5s, clips, self.encoder, self.hparams.sample_rate,
                self._decode["train" if split == "train" else "eval"], self.hparams.seed, teacher, rows)
        return self._datasets[split]

    def _teacher(self, clips: StrongClips) -> Tuple[TeacherFrames, np.ndarray]:
        """The teacher file and the row of every training clip; a missing clip or another shape is an error."""
        path = self.hparams.teacher_logits
        teacher = TeacherFrames(path)
        if teacher.shape != (self.num_classes, self.hparams.frames):
            raise LogitsFileError(f"{path}: logits of shape {teacher.shape} per clip, expected ({self.num_classes}, "
                                  f"{self.hparams.frames}) (trained classes, frames)")
        if teacher.class_names and teacher.class_names != self.class_names:
            k = next((k for k, (a, b) in enumerate(zip(teacher.class_names, self.class_names)) if a != b),
                     min(len(teacher.class_names), self.num_classes))
            raise LogitsFileError(f"{path}: its class_names differ from the trained classes at column {k} "
                                  f"({teacher.class_names[k:k + 1]} vs {self.class_names[k:k + 1]})")
        rows = teacher.rows_of(clips.names)
        missing = [clips.names[i] for i in np.flatnonzero(rows < 0)]
        if missing:
            raise LogitsFileError(f"{path}: {len(missing)} of {len(clips)} training clips have no logits (e.g. "
                                  f"{missing[:5]}); the teacher file must cover every training clip")
        return teacher, rows

    def setup(self, stage: str) -> None:
        """Builds (and checks) the datasets of the stage."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage, ()):
            if self._files[split] or split == "train":
                self.dataset(split)

    def train_sampler(self) -> DistributedWeightedSampler:
        """This process's share of the epoch's draws (balanced or uniform weights)."""
        dataset = self.dataset("train")
        if self.hparams.sampler == "balanced":
            weights = strong_clip_weights(active_frame_counts(dataset.clips, self.encoder))
        else:
            weights = np.ones(len(dataset))
        trainer = self.trainer
        return DistributedWeightedSampler(
            weights, self.hparams.num_samples, replacement=self.hparams.replacement,
            num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0,
            seed=self.hparams.seed)

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        if self.trainer is not None:
            dataset.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return DataLoader(dataset, batch_size=self.hparams.batch_size, sampler=self.train_sampler(),
                          num_workers=self.hparams.num_workers)

    def _eval_loader(self, split: str) -> DataLoader:
        return DataLoader(self.dataset(split), batch_size=self.hparams.batch_size, shuffle=False,
                          num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")

    def reference(self, stage: str = "val") -> Tuple[pd.DataFrame, pd.DataFrame]:
        """``(ground_truth, durations)`` of the ``val`` or ``test`` clips for :class:`metrics.sed.ReferenceSet`,
        restricted to the metric classes as PretrainedSED evaluates: events of the other classes are left out, and
        so are clips left without events (``filename`` is the clip id as stored).

        A clip's duration is the file's stored ``duration`` (``clip_seconds`` for community files, which have none)
        capped at ``clip_seconds``; events are cut to it.
        """
        if stage not in ("val", "test"):
            raise ValueError(f"a reference exists for 'val' and 'test', got {stage!r}")
        dataset = self.dataset(stage)
        clips, clip_seconds = dataset.clips, float(self.hparams.clip_seconds)
        metric = np.zeros(self.num_classes, dtype=bool)
        metric[self.metric_classes] = True
        events, durations = [], []
        for i, name in enumerate(clips.names):
            stored = dataset.h5s[clips.file_index[i]].durations
            duration = min(float(stored[clips.rows[i]]) if stored is not None else clip_seconds, clip_seconds)
            kept = [(name, round(float(a), 6), round(min(float(b), duration), 6), self.class_names[c])
                    for a, b, c in zip(*clips.events(i)) if metric[c] and a < duration and min(b, duration) > a]
            if kept:
                events.extend(kept)
                durations.append((name, duration))
        return (pd.DataFrame(events, columns=GROUND_TRUTH_COLUMNS), pd.DataFrame(durations, columns=DURATION_COLUMNS))


def _paths(value: Optional[Union[str, List[str]]]) -> List[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)
