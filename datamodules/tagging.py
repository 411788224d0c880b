"""Audio tagging data: clips of HDF5 files with weak multi-hot targets."""
from __future__ import annotations

import csv
from typing import List, Literal, Optional, Union

import numpy as np

import pytorch_lightning as pl
from torch.utils.data import ConcatDataset, DataLoader

from datamodules.datasets import ClipDataset, OnDecodeError, decode_mode
from datamodules.format.label_tables import read_class_list
from datamodules.format.text import open_text
from datamodules.label_space import LabelSpaceError, check_same_classes, stored_names
from datamodules.samplers import DistributedWeightedSampler, class_balanced_weights
from datamodules.teacher import TeacherLogits


class TaggingDataModule(pl.LightningDataModule):
    """Train/val/test/predict splits, each one HDF5 file in the sonolab (or community AudioSet) format.

    Label space: the ``class_names`` attribute of the first configured file (train, else val, test, predict), or the
    ``class_names`` argument. Every training, validation and test file must carry exactly these names, in this order
    (its target columns follow them); a file without names is an error unless ``class_names`` is given, which is
    how community AudioSet/FSD50K files (no attributes) are read. Prediction files are not checked.

    Args:
        train_h5: Training file, or several (e.g. AudioSet balanced + unbalanced) read as one set.
        val_h5: Validation file.
        test_h5: Test file.
        predict_h5: File to predict (defaults to ``test_h5``).
        sample_rate: Rate the model's frontend expects; audio is resampled to it.
        clip_seconds: Clip length; shorter clips are zero-padded, longer ones cropped (randomly in training).
        batch_size: Clips per batch (per process under DDP).
        num_workers: DataLoader workers (each opens the HDF5 files lazily).
        class_names: The label space, for files without a ``class_names`` attribute (community AudioSet/FSD50K
            files): a text file with one class per line, a CSV with a ``display_name`` column in class order
            (AudioSet's ``class_labels_indices.csv``), or a list. Files that have names must match it.
        seed: Seed of the random crops and of the balanced sampler.
        balanced_sampling: Draw training clips with the class-balanced weights w_c = 1000 / (n_c + 100) summed over a
            clip's positives, ``samples_per_epoch`` draws without replacement, split disjointly across DDP ranks.
        samples_per_epoch: Draws per epoch of the balanced sampler (100,000 for AudioSet).
        teacher_logits: HDF5 of teacher logits keyed by clip id; training batches then carry ``teacher`` and
            ``teacher_weight`` (0 for clips without a teacher row). The coverage is reported at fit setup
            (``teacher_coverage``, logged as ``train/teacher_coverage``): none covered is an error, a partial cover
            a warning.
        folds_h5: Cross-validation folds, one file each (ESC-50: five). Training uses every fold but ``fold``,
            validation and test use ``fold``; ``train_h5``/``val_h5``/``test_h5`` must then be left unset.
        fold: The held-out fold, 1-based.
        label: ``"weak"``: the files' weak (or soft) labels; ``"scene"``: one-hot scene labels of TAU files
            (DCASE'20 scene classification with the tagging task).
        on_decode_error: A training clip whose audio cannot be decoded: ``"skip"`` replaces it by another clip of the
            same file, drawn from (seed, epoch, index) (warned once per clip, counted in ``train/skipped_clips``);
            ``"raise"`` stops with an error naming the file and the clip.
        eval_on_decode_error: The same for validation, test and prediction clips, ``"raise"`` by default (a metric
            of a silently shrunk set is another number); ``"skip"`` leaves such clips out of the metrics and the
            predictions, warns once per clip and logs ``val/skipped_clips`` / ``test/skipped_clips``.
    """

    def __init__(
        self,
        train_h5: Optional[Union[str, List[str]]] = None,
        val_h5: Optional[str] = None,
        test_h5: Optional[str] = None,
        predict_h5: Optional[str] = None,
        sample_rate: int = 32000,
        clip_seconds: float = 10.0,
        batch_size: int = 32,
        num_workers: int = 4,
        class_names: Optional[Union[str, List[str]]] = None,
        seed: int = 0,
        balanced_sampling: bool = False,
        samples_per_epoch: int = 100_000,
        teacher_logits: Optional[str] = None,
        folds_h5: Optional[List[str]] = None,
        fold: int = 1,
        label: Literal["weak", "scene"] = "weak",
        on_decode_error: OnDecodeError = "skip",
        eval_on_decode_error: OnDecodeError = "raise",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._decode = {"train": decode_mode(on_decode_error, train=True),
                        "eval": decode_mode(eval_on_decode_error, train=False)}
        self._splits = _split_files(train_h5, val_h5, test_h5, predict_h5, folds_h5, fold)
        train_h5, val_h5, test_h5, predict_h5 = (self._splits[k] for k in ("train", "val", "test", "predict"))
        self._datasets: dict = {}
        self._attribute = "scene_names" if label == "scene" else "class_names"
        first_train = train_h5[0] if isinstance(train_h5, (list, tuple)) and train_h5 else train_h5
        reference = next((p for p in (first_train, val_h5, test_h5, predict_h5) if p), None)
        if reference is None:
            raise ValueError("TaggingDataModule needs at least one of train_h5, val_h5, test_h5, predict_h5")
        if class_names is not None:
            self.class_names: List[str] = read_class_names(class_names) if isinstance(class_names, str) \
                else list(class_names)
            self._origin = f"class_names {class_names!r}" if isinstance(class_names, str) else "class_names"
        else:
            self.class_names = stored_names(reference, self._attribute)
            self._origin = repr(reference)
            if not self.class_names and label == "scene":
                raise LabelSpaceError(f"{reference}: the file has no 'scene_names' attribute; label='scene' needs "
                                      "scene labels (use label='weak')")
            if not self.class_names:
                raise LabelSpaceError(
                    f"{reference}: the file has no 'class_names' attribute (a community AudioSet/FSD50K file?), so "
                    "the label space is unknown: give data.class_names (a text file with one class per line, "
                    "AudioSet's class_labels_indices.csv, or a list)")
        self.teacher = TeacherLogits(teacher_logits) if teacher_logits else None
        if self.teacher is not None:
            self.teacher.check_classes(self.num_classes)
        self.teacher_coverage: Optional[float] = None

    @property
    def num_classes(self) -> int:
        """Number of weak classes (linked into the task's ``num_classes``)."""
        return len(self.class_names)

    def _check_classes(self, path: str) -> None:
        """The file's class names must be the label space (a file without names only when ``class_names`` names
        its columns)."""
        found = stored_names(path, self._attribute)
        if not found and self.hparams.class_names is not None and self._attribute == "class_names":
            return
        check_same_classes(found, self.class_names, path, self._origin, self._attribute)

    def _dataset(self, split: str) -> Union[ClipDataset, "ClipConcat"]:
        if split not in self._datasets:
            path = self._splits[split]
            if not path:
                raise ValueError(f"no {split}_h5 file configured for the {split} stage")
            paths = [path] if isinstance(path, str) else list(path)
            if split != "predict":  # prediction needs no labels; its outputs are named by the label space
                for p in paths:
                    self._check_classes(p)
            parts = [
                ClipDataset(p, self.hparams.sample_rate, self.hparams.clip_seconds, random_crop=split == "train",
                            seed=self.hparams.seed, num_classes=None if split == "predict" else self.num_classes,
                            label=self.hparams.label,
                            on_decode_error=self._decode["train" if split == "train" else "eval"])
                for p in paths
            ]
            self._datasets[split] = parts[0] if len(parts) == 1 else ClipConcat(parts)
        return self._datasets[split]

    def setup(self, stage: str) -> None:
        """Opens (and checks) the files of the stage; at ``fit`` also reports the teacher coverage."""
        splits = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}
        for split in splits.get(stage, ()):
            if self._splits[split]:
                self._dataset(split)
        if stage == "fit" and self.teacher is not None and self._splits["train"]:
            dataset = self._dataset("train")
            parts = dataset.datasets if isinstance(dataset, ClipConcat) else [dataset]
            self.teacher_coverage = self.teacher.check_coverage([n for part in parts for n in part.h5.names])

    def _loader(self, split: str) -> DataLoader:
        dataset = self._dataset(split)
        if split == "train" and self.trainer is not None:
            # The epoch Lightning hands the samplers: right after a resume, current_epoch is still the finished one,
            # and DataLoader workers copy the dataset (with its epoch) when they start.
            dataset.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        sampler = self._balanced_sampler(dataset) if split == "train" and self.hparams.balanced_sampling else None
        return DataLoader(
            dataset, batch_size=self.hparams.batch_size, shuffle=split == "train" and sampler is None,
            sampler=sampler, num_workers=self.hparams.num_workers, drop_last=False,
        )

    def _balanced_sampler(self, dataset: ClipDataset) -> DistributedWeightedSampler:
        trainer = self.trainer
        return DistributedWeightedSampler(
            class_balanced_weights(dataset.weak_targets()), self.hparams.samples_per_epoch,
            num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0,
            seed=self.hparams.seed,
        )

    def on_before_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """Attaches teacher logits to training batches (looked up here, in the main process, by clip id)."""
        if self.teacher is not None and self.trainer is not None and self.trainer.training:
            batch["teacher"], batch["teacher_weight"] = self.teacher.lookup(batch["name"])
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict")


def _split_files(train_h5, val_h5, test_h5, predict_h5, folds_h5, fold) -> dict:
    """The file(s) of every stage, from explicit paths or from cross-validation folds."""
    if folds_h5:
        if train_h5 or val_h5 or test_h5:
            raise ValueError("give either folds_h5 or train_h5/val_h5/test_h5, not both")
        if not 1 <= fold <= len(folds_h5):
            raise ValueError(f"fold must lie in 1..{len(folds_h5)} (one per folds_h5 file), got {fold}")
        train_h5 = [p for k, p in enumerate(folds_h5, start=1) if k != fold]
        val_h5 = test_h5 = folds_h5[fold - 1]
    return {"train": train_h5, "val": val_h5, "test": test_h5, "predict": predict_h5 or test_h5}


def read_class_names(path: str) -> List[str]:
    """The label space in a file: one class per line, or a CSV with a ``display_name`` column in class order
    (AudioSet's ``class_labels_indices.csv``: ``index,mid,display_name``)."""
    with open_text(path) as f:
        header = next(csv.reader(f), [])
        if "display_name" not in header:
            return read_class_list(path)
        column = header.index("display_name")
        names = [row[column] for row in csv.reader(f) if len(row) > column and row[column].strip()]
    if not names or len(set(names)) != len(names):
        raise LabelSpaceError(f"{path}: the display_name column must list each class once, got {len(names)} names "
                              f"({len(set(names))} distinct)")
    return names


class ClipConcat(ConcatDataset):
    """Several :class:`ClipDataset` read as one (rows in file order)."""

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            part.set_epoch(epoch)

    def weak_targets(self) -> np.ndarray:
        return np.concatenate([part.weak_targets() for part in self.datasets])
