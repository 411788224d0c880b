"""Audio tagging data: clips of HDF5 files with weak multi-hot targets."""
from __future__ import annotations

from typing import List, Literal, Optional, Union

import numpy as np

import pytorch_lightning as pl
from torch.utils.data import ConcatDataset, DataLoader

from datamodules.datasets import ClipDataset
from datamodules.format.hdf5 import AudioH5
from datamodules.samplers import DistributedWeightedSampler, class_balanced_weights
from datamodules.teacher import TeacherLogits


class TaggingDataModule(pl.LightningDataModule):
    """Train/val/test/predict splits, each one HDF5 file in the sonolab (or community AudioSet) format.

    Args:
        train_h5: Training file, or several (e.g. AudioSet balanced + unbalanced) read as one set.
        val_h5: Validation file.
        test_h5: Test file.
        predict_h5: File to predict (defaults to ``test_h5``).
        sample_rate: Rate the model's frontend expects; audio is resampled to it.
        clip_seconds: Clip length; shorter clips are zero-padded, longer ones cropped (randomly in training).
        batch_size: Clips per batch (per process under DDP).
        num_workers: DataLoader workers (each opens the HDF5 files lazily).
        num_classes: Classes of community files without ``class_names`` (527 AudioSet, 200 FSD50K).
        seed: Seed of the random crops and of the balanced sampler.
        balanced_sampling: Draw training clips with the class-balanced weights w_c = 1000 / (n_c + 100) summed over a
            clip's positives, ``samples_per_epoch`` draws without replacement, split disjointly across DDP ranks.
        samples_per_epoch: Draws per epoch of the balanced sampler (100,000 for AudioSet).
        teacher_logits: HDF5 of teacher logits keyed by clip id; training batches then carry ``teacher`` and
            ``teacher_weight`` (0 for clips without a teacher row).
        folds_h5: Cross-validation folds, one file each (ESC-50: five). Training uses every fold but ``fold``,
            validation and test use ``fold``; ``train_h5``/``val_h5``/``test_h5`` must then be left unset.
        fold: The held-out fold, 1-based.
        label: ``"weak"``: the files' weak (or soft) labels; ``"scene"``: one-hot scene labels of TAU files
            (DCASE'20 scene classification with the tagging task).
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
        num_classes: Optional[int] = None,
        seed: int = 0,
        balanced_sampling: bool = False,
        samples_per_epoch: int = 100_000,
        teacher_logits: Optional[str] = None,
        folds_h5: Optional[List[str]] = None,
        fold: int = 1,
        label: Literal["weak", "scene"] = "weak",
    ) -> None:
        super().__init__()
        # num_classes is the task's hyper-parameter (linked from here); saving it twice would clash in the logger
        self.save_hyperparameters(ignore=["num_classes"])
        self._splits = _split_files(train_h5, val_h5, test_h5, predict_h5, folds_h5, fold)
        train_h5, val_h5, test_h5, predict_h5 = (self._splits[k] for k in ("train", "val", "test", "predict"))
        self._datasets: dict = {}
        first_train = train_h5[0] if isinstance(train_h5, (list, tuple)) and train_h5 else train_h5
        reference = next((p for p in (first_train, val_h5, test_h5, predict_h5) if p), None)
        if reference is None:
            raise ValueError("TaggingDataModule needs at least one of train_h5, val_h5, test_h5, predict_h5")
        if label == "scene":
            self.class_names: List[str] = ClipDataset(reference, sample_rate, clip_seconds, label="scene").class_names
        else:
            header = AudioH5(reference, num_classes=num_classes)
            self.class_names = header.class_names or [str(i) for i in range(header.num_classes)]
        self.teacher = TeacherLogits(teacher_logits) if teacher_logits else None
        if self.teacher is not None and self.teacher.shape != (self.num_classes,):
            raise ValueError(f"teacher logits in {teacher_logits!r} have shape {self.teacher.shape}, expected "
                             f"({self.num_classes},)")

    @property
    def num_classes(self) -> int:
        """Number of weak classes (linked into the task's ``num_classes``)."""
        return len(self.class_names)

    def _dataset(self, split: str) -> Union[ClipDataset, "ClipConcat"]:
        if split not in self._datasets:
            path = self._splits[split]
            if not path:
                raise ValueError(f"no {split}_h5 file configured for the {split} stage")
            parts = [
                ClipDataset(p, self.hparams.sample_rate, self.hparams.clip_seconds, random_crop=split == "train",
                            seed=self.hparams.seed, num_classes=self.num_classes, label=self.hparams.label)
                for p in ([path] if isinstance(path, str) else path)
            ]
            for part in parts[1:]:
                if part.class_names != parts[0].class_names:
                    raise ValueError(f"{part.h5.path} and {parts[0].h5.path} have different class names")
            self._datasets[split] = parts[0] if len(parts) == 1 else ClipConcat(parts)
        return self._datasets[split]

    def _loader(self, split: str) -> DataLoader:
        dataset = self._dataset(split)
        if split == "train" and self.trainer is not None:
            dataset.set_epoch(self.trainer.current_epoch)
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


class ClipConcat(ConcatDataset):
    """Several :class:`ClipDataset` read as one (rows in file order)."""

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            part.set_epoch(epoch)

    def weak_targets(self) -> np.ndarray:
        return np.concatenate([part.weak_targets() for part in self.datasets])
