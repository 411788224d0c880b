"""Frame-level SED pre-training on AudioSet strong (PretrainedSED, Schmid et al. ICASSP'25; specs/sed.md).

One step function serves training, validation and test. Training: waveform mix (wavmix) -> the backbone's
spectrogram -> frame shift -> mixup -> Freq-MixStyle -> filter augmentation -> frequency warping -> transformer
(+ BiGRU for teachers) -> strong head, with ``distillation_weight`` x BCE(student, sigmoid(ensemble logits)) +
(1 - ``distillation_weight``) x BCE(student, labels); every augmentation that moves or mixes time frames moves the
targets and the teacher probabilities with it. Evaluation: sigmoid, class-wise median filter, then PSDS1 (dtc = gtc
= 0.7, no cross-triggers, alpha_st 1), its per-class mean and the segment-based pAUROC (1 s, max FPR 0.1) on the
classes both trained and evaluated (407 on AudioSet strong), on the clips with events of those classes.
``sonolab predict`` returns the frame logits that :class:`callbacks.strong_logits_writer.StrongLogitsWriter` writes
for distillation (teachers -> ``sonolab ensemble-logits`` -> students' ``data.teacher_logits``).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from datamodules.augment.filter_augment import FilterAugment
from datamodules.augment.frame_shift import FrameShift
from datamodules.augment.freq_mixstyle import FreqMixStyle
from datamodules.augment.freq_warp import FrequencyWarp
from datamodules.augment.mixing import ExampleWaveformMix, Mixup
from datamodules.datasets import SKIPPED, drop_skipped, log_skipped_clips
from datamodules.teacher import TeacherLogitsError
from experiments.schedules import linear_warmup_cosine
from losses.bce_distillation import BCEDistillationLoss
from metrics.clip_outputs import ClipOutputs
from metrics.sed.strong_eval import evaluate_frame_scores
from models import create_model
from models.registry import load_weights


class StrongSED(pl.LightningModule):
    """PretrainedSED teachers and students on AudioSet strong (batches of
    :class:`datamodules.strong.datamodule.AudioSetStrongDataModule`: ``audio``, ``strong``, ``name``, optional
    ``teacher_logits``).

    Logged: ``train/loss``, ``train/label_loss``, ``train/distillation_loss``; ``{stage}/loss`` (BCE of the strong
    head over all trained classes), ``{stage}/psds1``, ``{stage}/psds1_macro`` (the mean of the per-class PSDS1
    values, PretrainedSED's ``psds1_macro_averaged``), ``{stage}/pauroc`` (segment-based, mean over classes),
    computed once per epoch over every clip exactly once (merged by clip id under DDP); ``{stage}/skipped_clips``.

    Args:
        model: Catalogue name of a FrameSED network: ``pretrainedsed_<backbone>_teacher`` (BiGRU) or
            ``pretrainedsed_<backbone>_strong`` (students, the released checkpoints).
        num_classes: Trained classes (linked from the datamodule: 447 on AudioSet strong).
        checkpoint: Weights of the whole network to start from (a PretrainedSED release file or a Lightning
            checkpoint of this task), loaded strictly through the catalogue's filter.
        backbone_checkpoint: Weights of the transformer alone (e.g. Microsoft's BEATs_iter3_plus_AS2M.pt, audiossl's
            ATST-F checkpoint), loaded strictly through the backbone entry's filter; the heads (and BiGRU) start
            random, as PretrainedSED's teachers do.
        model_overrides: FrameSED arguments replacing the catalogue's (e.g. ``backbone_overrides`` for a tiny test
            network).
        lr: Peak learning rate (PretrainedSED: 7e-5).
        weight_decay: AdamW weight decay on tensors with >= 2 dims (0: Adam, as published).
        layer_decay: Layer-wise lr decay of the transformer blocks (1.0: none, as PretrainedSED pre-trains).
        warmup_steps: Linear warm-up steps of the cosine schedule (the spec's 5000; see the note in docs).
        distillation_weight: Weight of the ensemble term (0.9 for students; 0 trains on labels only).
        wavmix_p: Probability of mixing each clip with another (waveform, Beta(2, 2), lambda >= 0.5).
        frame_shift: Standard deviation of the random circular shift as a fraction of the clip (0.125).
        mixup_p: Probability of spectrogram mixup per batch (Beta(0.2, 0.2)).
        mixstyle_p: Probability of Freq-MixStyle per batch (alpha 0.4, lambda >= 0.5).
        filter_augment_p: Probability of filter augmentation per batch (+-6 dB, 3-5 bands).
        freq_warp_p: Probability of frequency warping per batch.
        median_window: Median-filter window in frames (40 ms) before the PSDS/pAUROC evaluation.
    """

    EVAL_OPTIONS: Tuple[str, ...] = ("median_window",)

    def __init__(
        self,
        model: str = "pretrainedsed_atst_frame_teacher",
        num_classes: int = 447,
        checkpoint: Optional[str] = None,
        backbone_checkpoint: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        lr: float = 7e-5,
        weight_decay: float = 0.0,
        layer_decay: float = 1.0,
        warmup_steps: int = 5000,
        distillation_weight: float = 0.0,
        wavmix_p: float = 0.8,
        frame_shift: float = 0.125,
        mixup_p: float = 0.3,
        mixstyle_p: float = 0.3,
        filter_augment_p: float = 0.8,
        freq_warp_p: float = 0.8,
        median_window: int = 9,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 0.0 <= distillation_weight <= 1.0:
            raise ValueError(f"distillation_weight must lie in [0, 1], got {distillation_weight}")
        if median_window < 1:
            raise ValueError(f"median_window must be >= 1 frame, got {median_window}")
        self.model = create_model(model, n_classes_strong=num_classes, n_classes_weak=num_classes,
                                  **(model_overrides or {}))
        if not hasattr(self.model, "forward_mel"):
            raise ValueError(f"model {model!r} is not a FrameSED network (pretrainedsed_<backbone>_teacher/_strong)")
        if checkpoint is not None and backbone_checkpoint is not None:
            raise ValueError("pass checkpoint (the whole network) or backbone_checkpoint (the transformer), not both")
        if checkpoint is not None:
            load_weights(self.model, model, checkpoint)
        if backbone_checkpoint is not None:
            load_weights(self.model.backbone, self.model.backbone_name, backbone_checkpoint)
        self.wavmix = ExampleWaveformMix(p=wavmix_p)
        self.frame_shift = FrameShift(shift_std=frame_shift)
        self.mixup = Mixup(p=mixup_p)
        self.mixstyle = FreqMixStyle(p=mixstyle_p, alpha=0.4, keep_larger=True)
        self.filter_augment = FilterAugment(p=filter_augment_p)
        self.freq_warp = FrequencyWarp(p=freq_warp_p)
        self.loss = BCEDistillationLoss(kd_lambda=1.0 - distillation_weight)
        self._outputs = {stage: ClipOutputs() for stage in ("val", "test")}

    # ------------------------------------------------------------------------------------------------------------
    # the step
    # ------------------------------------------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) 16 kHz audio -> (B, C, ceil(n / 640)) strong logits."""
        return self.model(audio)[0]

    def setup(self, stage: str) -> None:
        needs_teacher = stage == "fit" and self.hparams.distillation_weight > 0
        if needs_teacher and not self.datamodule.hparams.get("teacher_logits"):
            raise TeacherLogitsError("distillation_weight > 0 needs ensemble logits: set data.teacher_logits (a file "
                                     "written by `sonolab predict` with StrongLogitsWriter, then "
                                     "`sonolab ensemble-logits`)")

    def _teacher_probs(self, batch: Dict[str, Any]) -> Optional[torch.Tensor]:
        logits = batch.get("teacher_logits")
        return None if logits is None else self.loss.teacher_targets(logits.float())

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        log_skipped_clips(self, batch, "train")
        wave, labels, probs = batch["audio"], batch["strong"].float(), self._teacher_probs(batch)
        wave, (labels, probs), _ = self.wavmix(wave, labels, probs)
        mel = self.model.mel(wave)
        mel, (labels, probs), _ = self.frame_shift(mel, labels, probs)
        mel, (labels, probs), _ = self.mixup(mel, labels, probs)
        mel = self.freq_warp(self.filter_augment(self.mixstyle(mel)))
        strong, _ = self.model.forward_mel(mel)
        if strong.shape != labels.shape:
            raise ValueError(f"the model gives {tuple(strong.shape[1:])} (classes, frames) per clip, the data "
                             f"{tuple(labels.shape[1:])}: data.frames/clip_seconds must give 40 ms frames of 10 s")
        if probs is None:
            parts = {"label_loss": F.binary_cross_entropy_with_logits(strong, labels)}
            parts["loss"] = parts["label_loss"]
        else:
            parts = self.loss.components(strong, labels, teacher_probs=probs)
        size = wave.shape[0]
        for name, value in parts.items():
            if name != "loss":
                self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", parts["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        return parts["loss"]

    def _eval_step(self, batch: Dict[str, Any], stage: str) -> None:
        log_skipped_clips(self, batch, stage)
        strong = self(batch["audio"]).float()
        labels = batch["strong"].float()
        loss = F.binary_cross_entropy_with_logits(strong, labels, reduction="none").mean(dim=(1, 2))
        # only the classes that are evaluated are kept (float16: 17k clips x 407 x 250 are 3.5 GB)
        metric = torch.as_tensor(self.datamodule.metric_classes, device=strong.device)
        probs = torch.sigmoid(strong.index_select(1, metric)).transpose(1, 2).half()  # (B, T, C_metric)
        rows = drop_skipped({"name": list(batch["name"]), "loss": loss, "probs": probs}, batch.get(SKIPPED))
        self._outputs[stage].add(rows["name"], loss=rows["loss"], probs=rows["probs"])

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        return drop_skipped({"name": list(batch["name"]), "strong_logits": self(batch["audio"]).float().cpu()},
                            batch.get(SKIPPED))

    # ------------------------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------------------------
    @property
    def datamodule(self):
        module = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if module is None or not hasattr(module, "metric_classes"):
            raise RuntimeError("StrongSED needs an AudioSetStrongDataModule (metric classes, references)")
        return module

    def on_validation_epoch_start(self) -> None:
        self._outputs["val"].reset()

    def on_test_epoch_start(self) -> None:
        self._outputs["test"].reset()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._evaluate("val")

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def _evaluate(self, stage: str) -> None:
        rows = self._outputs[stage].merged()
        if not len(rows["name"]):
            return
        self._log(f"{stage}/loss", float(np.mean(rows["loss"])))
        module = self.datamodule
        ground_truth, durations = module.reference(stage)
        names = [module.class_names[c] for c in module.metric_classes]
        values = evaluate_frame_scores(rows["name"], rows["probs"], names, ground_truth, durations,
                                       timestamps=module.encoder.timestamps,
                                       median_window=self.hparams.median_window)
        for key, value in values.items():
            self._log(f"{stage}/{key}", value, prog_bar=key == "psds1")

    def _log(self, name: str, value: float, prog_bar: bool = False) -> None:
        """Logs a value every process computed identically from the merged clips (``max`` keeps Lightning's DDP
        bookkeeping exact)."""
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    # ------------------------------------------------------------------------------------------------------------
    # optimisation
    # ------------------------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.model.param_groups(hp.lr, layer_decay=hp.layer_decay, weight_decay=hp.weight_decay)
        groups = [{k: v for k, v in g.items() if k != "name"} for g in groups]
        optimizer = (torch.optim.AdamW(groups, lr=hp.lr) if hp.weight_decay > 0
                     else torch.optim.Adam(groups, lr=hp.lr))
        total = self.trainer.estimated_stepping_batches
        if not np.isfinite(total):
            raise ValueError("the cosine schedule needs a finite number of steps: set trainer.max_epochs or max_steps")
        schedule = lambda step: linear_warmup_cosine(step, hp.warmup_steps, int(total))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

