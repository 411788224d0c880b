"""Sound event detection with a mean teacher (DCASE'24 Task 4 baseline, specs/sed.md).

One step function serves training, validation and test. Training: frontend -> mixup inside each data source ->
student and EMA teacher -> supervised masked BCE (strong rows on frame targets, weak rows on clip targets) plus
consistency MSE between student and teacher on the rows of the consistency domains, weighted by
``consistency_weight`` x the exponential warm-up factor. Evaluation: per-clip frame scores of student and teacher,
class-wise median filter, then PSDS1/PSDS2/intersection F1 with the native engine every validation epoch and the
official toolkits (psds_eval, sed_eval) at test, where the post-processed score files are written as well.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import pytorch_lightning as pl
import torch

from datamodules.augment.mixing import draw_group_mix, mix
from experiments.schedules import exp_rampup, exp_warmup_cosine
from losses.consistency import masked_mse
from losses.masked_bce import masked_bce
from metrics.sed import PSDS1, PSDS2, ClipScores, ReferenceSet, evaluate_scores, match_scores, median_filter
from metrics.sed import audio_id, preset_windows, write_score_dir
from models import create_frontend, create_model
from models.ema import EMATeacher
from models.registry import get_entry, read_state_dict

MODELS = ("student", "teacher")


class SoundEventDetection(pl.LightningModule):
    """Frame-level SED of a catalogue CRNN with a mean teacher.

    Batches follow the contract of :class:`datamodules.sed.datamodule.SEDDataModule` (``audio``, ``strong``,
    ``weak``, ``mask``, ``has_strong``, ``has_weak``, ``source``, ``name``, optional ``embeddings``).

    Logged: ``train/loss``, ``train/strong_loss``, ``train/weak_loss``, ``train/consistency_loss``,
    ``train/consistency_weight``; ``val/loss``; per evaluation, for the student and (suffix ``_teacher``) the
    teacher: ``{stage}/psds1``, ``{stage}/psds2``, ``{stage}/f1_intersection``, and at test also
    ``test/f1_event_macro`` and ``test/f1_segment_macro``.

    Args:
        model: Catalogue name of the network (``crnn_dcase24``, ``crnn_dcase24_beats``).
        num_classes: Output classes (linked from the datamodule).
        checkpoint: Weights to start from (a state dict, or a DESED Lightning checkpoint through the catalogue's
            filter).
        model_overrides: Constructor arguments replacing the catalogue's.
        frontend_overrides: Frontend arguments replacing the catalogue's.
        lr: Peak learning rate of Adam.
        weight_decay: Adam weight decay.
        warmup_epochs: Exponential warm-up exp(-5 (1 - t / T)^2) of the learning rate and of the consistency
            weight (fractional epochs, stepped per batch).
        cosine_start: Epoch where the cosine decay begins (flat before).
        cosine_end: Epoch where the learning rate reaches zero.
        consistency_weight: Maximum weight of the consistency loss.
        consistency_domains: Source domains whose rows get the consistency loss.
        ema_max_alpha: Upper bound of the teacher's averaging coefficient.
        mixup_p: Probability of mixing each source's rows (features, targets, embeddings; 0: off).
        mixup_alpha: Beta(alpha, alpha) of the mixing coefficient.
        median_windows: Median-filter windows in frames: a preset (``dcase2024``, ``desed``, ``maestro``), one
            window for every class, or one per class; 1 disables the filter.
        test_engine: ``psds_eval`` (the official toolkit, slow) or ``native`` for the test metrics.
    """

    def __init__(
        self,
        model: str = "crnn_dcase24",
        num_classes: int = 27,
        checkpoint: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_epochs: float = 50.0,
        cosine_start: float = 100.0,
        cosine_end: float = 300.0,
        consistency_weight: float = 2.0,
        consistency_domains: Sequence[str] = ("desed",),
        ema_max_alpha: float = 0.999,
        mixup_p: float = 0.5,
        mixup_alpha: float = 0.2,
        median_windows: Union[int, List[int], str] = "dcase2024",
        test_engine: Literal["psds_eval", "native"] = "psds_eval",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not 0 <= warmup_epochs <= cosine_start <= cosine_end:
            raise ValueError(f"need 0 <= warmup_epochs <= cosine_start <= cosine_end, got {warmup_epochs}, "
                             f"{cosine_start}, {cosine_end}")
        self.frontend = create_frontend(model, **(frontend_overrides or {}))
        self.model = create_model(model, n_classes=num_classes, **(model_overrides or {}))
        if checkpoint is not None:
            self._load_weights(checkpoint)
        self.teacher = EMATeacher(self.model, ema_max_alpha)
        self._scores: Dict[str, Dict[str, Dict[str, np.ndarray]]] = {}
        self._examples: List[Tuple[np.ndarray, np.ndarray]] = []
        self._references: Dict[str, Tuple[Tuple[str, ...], ReferenceSet]] = {}

    # ------------------------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------------------------
    def _load_weights(self, checkpoint: str) -> None:
        state = read_state_dict(checkpoint)
        entry = get_entry(self.hparams.model)
        if entry.state_dict_filter is not None:
            state = entry.state_dict_filter(state)
        self.model.load_state_dict(state, strict=True)

    @property
    def datamodule(self):
        module = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if module is None or not hasattr(module, "encoder"):
            raise RuntimeError("SoundEventDetection needs an SEDDataModule (class names, frame encoder, references)")
        return module

    def setup(self, stage: str) -> None:
        expected = getattr(self.frontend, "sample_rate", None)
        rate = self.datamodule.hparams.get("sample_rate")
        if expected is not None and rate is not None and expected != rate:
            raise ValueError(f"model {self.hparams.model!r} expects {expected} Hz audio, data.sample_rate is {rate}")
        self.windows()  # a bad median-filter setting fails now, not after the first training epoch

    def windows(self) -> Tuple[int, ...]:
        """Median-filter window of every class of the datamodule's label space."""
        names, spec = self.datamodule.class_names, self.hparams.median_windows
        if isinstance(spec, str):
            return preset_windows(spec, names)
        if isinstance(spec, int):
            return (spec,) * len(names)
        if len(spec) != len(names):
            raise ValueError(f"median_windows has {len(spec)} entries, the label space {len(names)} classes")
        return tuple(int(w) for w in spec)

    # ------------------------------------------------------------------------------------------------------------
    # the step
    # ------------------------------------------------------------------------------------------------------------
    def forward(self, audio: torch.Tensor, embeddings: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, ...]:
        """(B, n) waveform -> (strong (B, C, T'), weak (B, C)) probabilities of the student."""
        return self.model(self.frontend(audio), embeddings)

    def _inputs(self, batch: Dict[str, Any], train: bool) -> Dict[str, Any]:
        """Features and targets, mixed inside each source in training."""
        out = {"features": self.frontend(batch["audio"]), "strong": batch["strong"].float(),
               "weak": batch["weak"].float(), "mask": batch["mask"].bool(), "embeddings": batch.get("embeddings")}
        if train and self.hparams.mixup_p > 0:
            lam, perm = draw_group_mix(batch["source"], self.hparams.mixup_p, self.hparams.mixup_alpha)
            for key in ("features", "strong", "weak", "embeddings"):
                if out[key] is not None:
                    out[key] = mix(out[key], lam, perm)
            out["mask"] = out["mask"] & out["mask"][perm]
        return out

    def _consistency_rows(self, batch: Dict[str, Any]) -> torch.Tensor:
        domains = list(getattr(self.datamodule, "source_domains", []))
        wanted = [i for i, d in enumerate(domains) if d in self.hparams.consistency_domains]
        return torch.isin(batch["source"], torch.tensor(wanted, device=batch["source"].device, dtype=torch.long))

    def _supervised(self, strong: torch.Tensor, weak: torch.Tensor, x: Dict[str, Any],
                    batch: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
        rows_s, rows_w = batch["has_strong"].bool(), batch["has_weak"].bool()
        zero = strong.sum() * 0.0
        strong_loss = (masked_bce(strong[rows_s], x["strong"][rows_s], x["mask"][rows_s].unsqueeze(-1), logits=False)
                       if rows_s.any() else zero)
        weak_loss = (masked_bce(weak[rows_w], x["weak"][rows_w], x["mask"][rows_w], logits=False)
                     if rows_w.any() else zero)
        return strong_loss, weak_loss

    def _check_frames(self, strong: torch.Tensor, target: torch.Tensor) -> None:
        if strong.shape[-1] != target.shape[-1]:
            raise ValueError(f"the model outputs {strong.shape[-1]} frames, the data encodes {target.shape[-1]}: make "
                             "data.clip_seconds/hop_length/pooling match the model's frontend and time pooling")

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        x = self._inputs(batch, train=True)
        strong, weak = self.model(x["features"], x["embeddings"], x["mask"])
        self._check_frames(strong, x["strong"])
        strong_loss, weak_loss = self._supervised(strong, weak, x, batch)
        t_strong, t_weak = self.teacher(x["features"], x["embeddings"], x["mask"])
        rows = self._consistency_rows(batch)
        consistency = strong.sum() * 0.0
        if rows.any():
            mask = x["mask"][rows]
            consistency = (masked_mse(strong[rows], t_strong[rows], mask.unsqueeze(-1))
                           + masked_mse(weak[rows], t_weak[rows], mask))
        weight = self.hparams.consistency_weight * exp_rampup(self._epoch_progress(), self.hparams.warmup_epochs)
        loss = strong_loss + weak_loss + weight * consistency
        size = batch["audio"].shape[0]
        for name, value in (("strong_loss", strong_loss), ("weak_loss", weak_loss),
                            ("consistency_loss", consistency), ("consistency_weight", weight)):
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self.teacher.update(self.model, self.global_step - 1)  # global_step counts the step just taken

    def _eval_step(self, batch: Dict[str, Any], stage: str) -> None:
        x = self._inputs(batch, train=False)
        outputs = {"student": self.model(x["features"], x["embeddings"]),
                   "teacher": self.teacher(x["features"], x["embeddings"])}
        strong = outputs["student"][0]
        self._check_frames(strong, x["strong"])
        rows = batch["has_strong"].bool()
        if rows.any():
            loss = masked_bce(strong[rows], x["strong"][rows], logits=False)
            self.log(f"{stage}/loss", loss, batch_size=int(rows.sum()), sync_dist=True)
        store = self._scores.setdefault(stage, {m: {} for m in MODELS})
        for model_name, (probs, _) in outputs.items():
            for name, clip in zip(batch["name"], probs.float().cpu().numpy()):
                store[model_name][name] = clip.T  # (T', C)
        if stage == "val" and len(self._examples) < 8:
            for target, probs in zip(x["strong"].cpu().numpy(), strong.float().cpu().numpy()):
                self._examples.append((target, probs))

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        strong, weak = self(batch["audio"], batch.get("embeddings"))
        return {"name": list(batch["name"]), "strong": strong.cpu(), "weak": weak.cpu()}

    # ------------------------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._scores.pop("val", None)
        self._examples = []

    def on_test_epoch_start(self) -> None:
        self._scores.pop("test", None)

    def clip_scores(self, stage: str, model_name: str = "student",
                    postprocess: bool = True) -> Dict[str, ClipScores]:
        """Frame scores of the last ``stage`` epoch keyed by audio id, median-filtered unless ``postprocess`` is
        False (all processes' clips under DDP)."""
        raw = _gather(self._scores.get(stage, {}).get(model_name, {}))
        encoder, names = self.datamodule.encoder, tuple(self.datamodule.class_names)
        windows = self.windows() if postprocess else 1
        return {audio_id(name): ClipScores(encoder.timestamps, median_filter(scores, windows), names)
                for name, scores in raw.items()}

    def _reference(self, stage: str, clip_ids: Sequence[str]) -> Tuple[Any, Any]:
        """Ground truth and durations of the clips that were scored (all of them, unless ``limit_*_batches``)."""
        ground_truth, durations = self.datamodule.reference(stage)
        keep = set(clip_ids)
        if len(keep) < len(durations):
            durations = durations[durations["filename"].map(audio_id).isin(keep)]
            ground_truth = ground_truth[ground_truth["filename"].map(audio_id).isin(keep)]
        return ground_truth.reset_index(drop=True), durations.reset_index(drop=True)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or "val" not in self._scores:
            return
        by_model = {name: self.clip_scores("val", name) for name in MODELS}
        ground_truth, durations = self._reference("val", list(by_model["student"]))
        if ground_truth["event_label"].dropna().empty:
            return
        key = tuple(durations["filename"])
        if self._references.get("val", (None,))[0] != key:
            self._references["val"] = (key, ReferenceSet(ground_truth, durations))
        reference = self._references["val"][1]
        for model_name in MODELS:
            scores = match_scores(by_model[model_name], ground_truth, durations)
            suffix = "" if model_name == "student" else "_teacher"
            self.log(f"val/psds1{suffix}", reference.psds(scores, PSDS1), prog_bar=model_name == "student",
                     rank_zero_only=True)
            if len(reference.class_names) > 1:  # PSDS2 weighs cross-triggers between classes
                self.log(f"val/psds2{suffix}", reference.psds(scores, PSDS2), rank_zero_only=True)
            self.log(f"val/f1_intersection{suffix}", reference.intersection_f1(scores), rank_zero_only=True)

    def on_test_epoch_end(self) -> None:
        for model_name in MODELS:
            scores = self.clip_scores("test", model_name)
            ground_truth, durations = self._reference("test", list(scores))
            if self.trainer.is_global_zero and self.trainer.log_dir:
                write_score_dir(os.path.join(self.trainer.log_dir, "scores", model_name), scores)
            result = evaluate_scores(scores, ground_truth, durations, engine=self.hparams.test_engine)
            suffix = "" if model_name == "student" else "_teacher"
            for key in ("psds1", "psds2", "f1_intersection", "f1_event_macro", "f1_segment_macro"):
                self.log(f"test/{key}{suffix}", getattr(result, key), rank_zero_only=True)

    def example_clips(self, count: int) -> List[Tuple[np.ndarray, np.ndarray]]:
        """(target (C, T'), student probabilities (C, T')) of the first validation clips, classes with events."""
        pairs = self._examples[:count]
        if not pairs:
            return []
        present = np.flatnonzero(np.any([t.max(axis=1) > 0 for t, _ in self._examples], axis=0))
        return [(t[present], p[present]) for t, p in pairs] if present.size else pairs

    # ------------------------------------------------------------------------------------------------------------
    # optimisation
    # ------------------------------------------------------------------------------------------------------------
    def _steps_per_epoch(self) -> float:
        trainer = self.trainer
        total, epochs = trainer.estimated_stepping_batches, trainer.max_epochs
        return max(1.0, float(total) / epochs) if epochs and epochs > 0 and np.isfinite(total) else 1.0

    def _epoch_progress(self) -> float:
        """Fractional epochs done (the unit of the warm-up and the cosine)."""
        return self.global_step / self._steps_per_epoch()

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        per_epoch = self._steps_per_epoch()
        schedule = lambda step: exp_warmup_cosine(step / per_epoch, hp.warmup_epochs, hp.cosine_start,
                                                  hp.cosine_end)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _gather(scores: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Every process's scores merged (a no-op without torch.distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return scores
    parts: List[Optional[Dict[str, np.ndarray]]] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, scores)
    merged: Dict[str, np.ndarray] = {}
    for part in parts:
        merged.update(part or {})
    return merged
