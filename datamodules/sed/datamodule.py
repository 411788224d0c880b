"""Sound event detection data (DCASE'24 Task 4 style): multi-source training batches, valid-class masks, aliases.

Training batches concatenate a fixed number of clips from every :class:`SEDSource` (e.g. MAESTRO 12, synthetic 6,
strong 6, weak 12, unlabeled 24), the rows of one source contiguous and in the order of ``sources``
(:meth:`SEDDataModule.source_blocks` gives the slices: mixup mixes within a block). An epoch ends with the shortest
source stream. Validation/test/predict batches come from one file each, every class valid.

Batch (a dict; B rows, C classes, T frames):
    audio (B, samples) float32, strong (B, C, T) float32, weak (B, C) float32, mask (B, C) bool, has_strong (B,) bool,
    has_weak (B,) bool, source (B,) long (-1 outside training), skipped (B,) long, name list[str], and embeddings
    (B, D, T_e) float32 when frame-embedding files are configured. Fields are described in
    :mod:`datamodules.sed.dataset`.

Under DDP every process gets ``batch_size`` clips of every source per step from its own disjoint share
(:class:`~datamodules.sed.sampler.MultiSourceBatchSampler`, which Lightning does not re-wrap).
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import pandas as pd
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from datamodules.datasets import OnDecodeError, decode_mode
from datamodules.label_space import LabelSpaceError, show_names
from datamodules.sed.dataset import LABEL_KINDS, MultiSourceDataset, SEDClipDataset, collate_sed, passthrough
from datamodules.sed.label_encoder import EventLabelEncoder
from datamodules.sed.masks import resolve_classes
from datamodules.sed.reference import reference_tables
from datamodules.sed.sampler import MultiSourceBatchSampler, source_blocks

STAGES = ("val", "test", "predict")


@dataclass
class SEDSource:
    """One training source of the multi-source batch.

    Attributes:
        name: Short name (logs, messages), e.g. ``maestro``, ``synth``, ``weak``, ``unlabeled``.
        h5: The HDF5 audio file, or several read as one source (the DCASE'24 baseline's third source is real strong
            + synthetic).
        batch_size: Clips of this source in every batch (per process under DDP).
        labels: Supervision it gives: ``strong`` (its events become frame targets, confidences included),
            ``weak`` (clip targets) or ``none`` (unlabeled).
        domain: Data domain; the task applies mean-teacher consistency to sources whose domain is in its
            consistency set (``desed`` in the baseline).
        embeddings: HDF5 of precomputed frame embeddings of its clips
            (:class:`~datamodules.sed.embeddings.FrameEmbeddings`); one per file of ``h5`` when that is a list.
    """

    name: str
    h5: Union[str, List[str]]
    batch_size: int
    labels: Literal["strong", "weak", "none"]
    domain: str = "desed"
    embeddings: Optional[Union[str, List[str]]] = None

    def files(self) -> List[Tuple[str, Optional[str]]]:
        """(audio file, embeddings file or None) of every file of the source."""
        paths = [self.h5] if isinstance(self.h5, str) else list(self.h5)
        if self.embeddings is None:
            return [(p, None) for p in paths]
        embeddings = [self.embeddings] if isinstance(self.embeddings, str) else list(self.embeddings)
        if len(embeddings) != len(paths):
            raise ValueError(f"source {self.name!r}: {len(paths)} h5 files but {len(embeddings)} embeddings files")
        return list(zip(paths, embeddings))


class SEDDataModule(pl.LightningDataModule):
    """Multi-source SED training data and single-file evaluation data.

    Args:
        sources: Training sources, in batch order.
        val_h5: Validation file (strong events give ``has_strong``).
        test_h5: Test file.
        predict_h5: File to predict (defaults to ``test_h5``).
        classes: Label space: ``"desed"`` (10), ``"maestro"`` (17), ``"dcase24"`` (27 = DESED + MAESTRO), a path to
            a file with one class per line, or a list of names.
        aliases: MAESTRO -> DESED aliases (people talking, children voices, announcement -> Speech; cutlery and
            dishes -> Dishes): target = max over its sources, and it joins the mask.
        reverse_aliases: DESED -> MAESTRO as well (Speech -> people talking, Dishes -> cutlery and dishes), as the
            CP-JKU system does; ambiguous, off by default (see :mod:`datamodules.sed.masks`).
        strict_classes: Raise on a class of a training source outside the label space instead of ignoring it with a
            warning (it may still feed an alias).
        eval_other_classes: Classes of the validation/test file outside the label space: ``"error"`` (default:
            the file does not fit the model's classes), or ``"ignore"`` to evaluate the label space's classes only
            (the other classes' events are left out of the targets and the ground truth, with a warning).
        sample_rate: Rate the model expects; audio is resampled from the file's rate.
        clip_seconds: Clip length (zero-padded or cropped; random crops in training).
        hop_length: STFT hop of the model's frontend (samples at ``sample_rate``).
        pooling: Time pooling of the model; target frames = ``floor(floor(clip * sr / hop) / pooling)``.
        val_batch_size: Batch size of validation, test and prediction.
        num_workers: DataLoader workers.
        seed: Seed of the source permutations and crops.
        val_embeddings: Frame embeddings of the validation clips (needed when the sources have embeddings).
        test_embeddings: Frame embeddings of the test clips.
        predict_embeddings: Frame embeddings of the predicted clips (defaults to ``test_embeddings`` when
            ``predict_h5`` defaults to ``test_h5``).
        on_decode_error: A training clip whose audio cannot be decoded: ``"skip"`` replaces it by another clip of the
            same file (so of the same source), drawn from (seed, epoch, source, row) (warned once per clip, counted in
            ``train/skipped_clips``); ``"raise"`` stops with an error naming the file and the clip.
        eval_on_decode_error: The same for validation, test and prediction clips, ``"raise"`` by default (a metric
            of a silently shrunk set is another number); ``"skip"`` leaves such clips out of the metrics, the ground
            truth and the predictions, warns once per clip and logs ``val/skipped_clips`` / ``test/skipped_clips``.
    """

    def __init__(
        self,
        sources: List[SEDSource],
        val_h5: str,
        test_h5: Optional[str] = None,
        predict_h5: Optional[str] = None,
        classes: Union[str, List[str]] = "dcase24",
        aliases: bool = True,
        reverse_aliases: bool = False,
        strict_classes: bool = False,
        eval_other_classes: Literal["error", "ignore"] = "error",
        sample_rate: int = 16000,
        clip_seconds: float = 10.0,
        hop_length: int = 256,
        pooling: int = 4,
        val_batch_size: int = 24,
        num_workers: int = 0,
        seed: int = 0,
        val_embeddings: Optional[str] = None,
        test_embeddings: Optional[str] = None,
        predict_embeddings: Optional[str] = None,
        on_decode_error: OnDecodeError = "skip",
        eval_on_decode_error: OnDecodeError = "raise",
    ) -> None:
        super().__init__()
        self._decode = {"train": decode_mode(on_decode_error, train=True),
                        "eval": decode_mode(eval_on_decode_error, train=False)}
        self.sources = [_as_source(s, i) for i, s in enumerate(sources)]
        if not self.sources:
            raise ValueError("sources: at least one training source is needed")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"sources: names must be unique, got {names}")
        if eval_other_classes not in ("error", "ignore"):
            raise ValueError(f"eval_other_classes must be 'error' or 'ignore', got {eval_other_classes!r}")
        if sample_rate <= 0 or clip_seconds <= 0 or hop_length <= 0 or pooling <= 0 or val_batch_size <= 0:
            raise ValueError("sample_rate, clip_seconds, hop_length, pooling and val_batch_size must be positive, got "
                             f"{sample_rate}, {clip_seconds}, {hop_length}, {pooling}, {val_batch_size}")
        with_embeddings = [s.embeddings is not None for s in self.sources]
        if any(with_embeddings) and not all(with_embeddings):
            raise ValueError("sources: give embeddings for every source or for none (batches stack them), got them "
                             f"for {[s.name for s in self.sources if s.embeddings]} only")
        # save_hyperparameters reads the constructor's local variables: rebinding `sources` to plain dicts keeps
        # dataclasses out of checkpoints (loadable with weights_only=True) and logged hyper-parameters
        sources = [asdict(s) for s in self.sources]
        self.save_hyperparameters()
        self.class_names: Tuple[str, ...] = resolve_classes(classes)
        self.encoder = EventLabelEncoder.from_stft(self.class_names, clip_seconds, sample_rate, hop_length, pooling)
        self._datasets: Dict[str, Any] = {}

    @property
    def num_classes(self) -> int:
        """Classes of the label space (linked into the task's ``num_classes``)."""
        return len(self.class_names)

    @property
    def source_names(self) -> List[str]:
        """Names of the training sources, in batch order (``batch["source"]`` indexes this list)."""
        return [s.name for s in self.sources]

    @property
    def source_domains(self) -> List[str]:
        """Domain of every training source, in batch order."""
        return [s.domain for s in self.sources]

    def source_blocks(self) -> List[slice]:
        """Row slices of the sources in a training batch (in the order of ``sources``)."""
        return source_blocks([s.batch_size for s in self.sources])

    # ------------------------------------------------------------------------------------------------ datasets
    def _clip_dataset(self, path: str, labels: Optional[str], index: int, name: str, embeddings: Optional[str],
                      train: bool) -> SEDClipDataset:
        hp = self.hparams
        return SEDClipDataset(
            path, self.encoder, labels, hp.sample_rate, source_index=index, name=name, aliases=hp.aliases,
            reverse_aliases=hp.reverse_aliases, strict_classes=hp.strict_classes, all_valid=not train,
            random_crop=train, seed=hp.seed, embeddings=embeddings,
            on_decode_error=self._decode["train" if train else "eval"],
        )

    def train_dataset(self) -> MultiSourceDataset:
        """The sources as one dataset (built once)."""
        if "train" not in self._datasets:
            parts = [self._clip_dataset(path, s.labels, i, s.name, embeddings, train=True)
                     for i, s in enumerate(self.sources) for path, embeddings in s.files()]
            _check_embedding_shapes(parts)
            self._datasets["train"] = MultiSourceDataset(parts)
        return self._datasets["train"]

    def eval_dataset(self, stage: str) -> SEDClipDataset:
        """The file of ``stage`` (``val``, ``test`` or ``predict``), built once."""
        if stage not in self._datasets:
            path, embeddings = self._stage_files(stage)
            strict = stage != "predict" and self.hparams.eval_other_classes == "error"
            with warnings.catch_warnings():
                if strict:  # the error below replaces the warning
                    warnings.simplefilter("ignore")
                dataset = self._clip_dataset(path, None, -1, f"{stage}_h5", embeddings, train=False)
            other = [c for c in dataset.mapping.file_classes if c not in self.class_names]
            if strict and other:
                raise LabelSpaceError(
                    f"{stage}_h5 ({path}): classes {other} are not in the label space {show_names(self.class_names)}; "
                    "evaluate on a file of the model's classes, or set eval_other_classes='ignore' to score the "
                    "label space's classes only")
            if "train" in self._datasets:
                _check_embedding_shapes(self._datasets["train"].parts + [dataset])
            self._datasets[stage] = dataset
        return self._datasets[stage]

    def _stage_files(self, stage: str) -> Tuple[str, Optional[str]]:
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        hp = self.hparams
        path, embeddings = hp.get(f"{stage}_h5"), hp.get(f"{stage}_embeddings")
        if stage == "predict" and not path:
            path, embeddings = hp.test_h5, embeddings or hp.test_embeddings
        if not path:
            raise ValueError(f"no {stage}_h5 file configured for the {stage} stage")
        if any(s.embeddings for s in self.sources) and not embeddings:
            raise ValueError(f"{stage}_embeddings: the training sources have frame embeddings, so the {stage} file "
                             f"{path!r} needs them too")
        return path, embeddings

    def reference(self, stage: str = "val") -> Tuple[pd.DataFrame, pd.DataFrame]:
        """Ground truth (``filename onset offset event_label``) and durations (``filename duration``) of a stage's
        file, in label-space names, for :func:`metrics.sed.evaluate.evaluate_scores` (see
        :func:`datamodules.sed.reference.reference_tables`)."""
        return reference_tables(self.eval_dataset(stage).h5, self.class_names, self.hparams.clip_seconds)

    def source_sizes(self) -> List[int]:
        """Clips of every training source (all its files), in batch order."""
        sizes = [0] * len(self.sources)
        for part in self.train_dataset().parts:
            sizes[part.source_index] += len(part)
        return sizes

    # ------------------------------------------------------------------------------------------------ loaders
    def train_sampler(self) -> MultiSourceBatchSampler:
        """The batch sampler of this process (rank and world size from the trainer, if attached)."""
        trainer = self.trainer
        sampler = MultiSourceBatchSampler(
            self.source_sizes(), [s.batch_size for s in self.sources],
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            seed=self.hparams.seed, names=self.source_names,
        )
        sampler.set_epoch(trainer.current_epoch if trainer is not None else 0)
        return sampler

    def train_dataloader(self) -> DataLoader:
        # The sampler yields whole batches and is passed as `sampler` with batch_size=None: Lightning checks
        # `dataloader.sampler` for a DistributedSampler, finds one, and neither replaces nor wraps it under DDP.
        return DataLoader(self.train_dataset(), sampler=self.train_sampler(), batch_size=None,
                          collate_fn=passthrough, num_workers=self.hparams.num_workers)

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(self.eval_dataset(stage), batch_size=self.hparams.val_batch_size, shuffle=False,
                          collate_fn=collate_sed, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")


def _as_source(source: Union[SEDSource, Dict[str, Any]], index: int) -> SEDSource:
    """Checks one ``sources`` entry (a dict is accepted, as written in a config)."""
    if isinstance(source, dict):
        try:
            source = SEDSource(**source)
        except TypeError as err:
            raise ValueError(f"sources[{index}]: {err}") from None
    if not isinstance(source, SEDSource):
        raise ValueError(f"sources[{index}]: expected an SEDSource or a dict, got {type(source).__name__}")
    source.files()  # checks h5 against embeddings
    if not source.name or not source.h5:
        raise ValueError(f"sources[{index}]: 'name' and 'h5' must be non-empty, got {source.name!r}, {source.h5!r}")
    if int(source.batch_size) < 1:
        raise ValueError(f"sources[{index}] ({source.name}): batch_size must be >= 1, got {source.batch_size}")
    if source.labels not in LABEL_KINDS:
        raise ValueError(f"sources[{index}] ({source.name}): labels must be one of {LABEL_KINDS}, got "
                         f"{source.labels!r}")
    return source


def _check_embedding_shapes(parts: List[SEDClipDataset]) -> None:
    shapes = {p.where: p.embeddings.shape for p in parts if p.embeddings is not None}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"frame embeddings of different shapes (dim, frames): {shapes}")
