"""Sound event detection with a mean teacher (DCASE'24 Task 4 baseline, specs/sed.md).

One step function serves training, validation and test. Training: frontend and mixup (``mixup_mode``) -> student and
EMA teacher -> supervised masked BCE (strong rows on frame targets, weak rows on clip targets) plus
consistency MSE between student and teacher on the rows of the consistency domains, weighted by
``consistency_weight`` x the exponential warm-up factor. Evaluation: per-clip frame scores of student and teacher,
class-wise median filter, then PSDS1/PSDS2/intersection F1 with the native engine (equal to psds_eval) every
validation epoch and at test (``test_engine="psds_eval"``: the official toolkit as a slow cross-check), plus sed_eval
F1 at test, where the post-processed score files are written as well.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
import torch.nn.functional as F

from datamodules.augment.mixing import draw_baseline_group_mix, draw_group_mix, mix
from datamodules.datasets import SKIPPED, drop_skipped, log_skipped_clips
from datamodules.sed.mixup_groups import resolve_mixup_groups
from experiments.schedules import exp_warmup_cosine
from losses.consistency import masked_mse
from losses.masked_bce import masked_bce
from metrics.sed import PSDS1, PSDS2, ClipScores, ReferenceSet, evaluate_scores, match_scores, median_filter
from metrics.sed import PSDS_THRESHOLDS, audio_id, preset_windows, psds_eval_cost_warning, restrict_to_clips
from metrics.sed import write_score_dir
from metrics.clip_outputs import ClipOutputs
from models import create_frontend, create_model
from models.ema import EMATeacher
from models.registry import load_weights

MODELS = ("student", "teacher")
# Warm-up end, cosine start and cosine end (epochs) of the 300-epoch DCASE'24 recipe: the ratios of derived schedules.
RECIPE_SCHEDULE = (50.0, 100.0, 300.0)


def _check_schedule(warmup_epochs: Optional[float], cosine_start: Optional[float],
                    cosine_end: Optional[float], note: str = "") -> None:
    """Raises ValueError unless the schedule epochs that are set are non-negative and in order."""
    given = [value for value in (warmup_epochs, cosine_start, cosine_end) if value is not None]
    if any(value < 0 for value in given) or given != sorted(given):
        raise ValueError(f"need 0 <= warmup_epochs <= cosine_start <= cosine_end, got {warmup_epochs}, "
                         f"{cosine_start}, {cosine_end}{note}")


class SoundEventDetection(pl.LightningModule):
    """Frame-level SED of a catalogue CRNN with a mean teacher.

    Batches follow the contract of :class:`datamodules.sed.datamodule.SEDDataModule` (``audio``, ``strong``,
    ``weak``, ``mask``, ``has_strong``, ``has_weak``, ``source``, ``name``, optional ``embeddings``).

    Logged: ``train/loss``, ``train/strong_loss``, ``train/weak_loss``, ``train/consistency_loss``,
    ``train/consistency_weight``; ``{stage}/loss``; per evaluation, for the student and (suffix ``_teacher``) the
    teacher: ``{stage}/psds1``, ``{stage}/psds2``, ``{stage}/f1_intersection``, and at test also
    ``test/f1_event_macro`` and ``test/f1_segment_macro``. Evaluation values are computed at epoch end on every
    clip exactly once: under DDP the processes' scores are merged by clip id, identically on every process.
    ``{stage}/skipped_clips``: the epoch's undecodable clips (replaced in training, left out of the scores, the ground
    truth and the predictions of evaluations: the datamodule's ``on_decode_error``).

    Args:
        model: Catalogue name of the network (``crnn_dcase24``, ``crnn_dcase24_beats``).
        num_classes: Output classes (linked from the datamodule).
        checkpoint: Weights to start from (a state dict, or a DESED Lightning checkpoint through the catalogue's
            filter).
        model_overrides: Constructor arguments replacing the catalogue's.
        frontend_overrides: Frontend arguments replacing the catalogue's.
        lr: Peak learning rate of Adam.
        weight_decay: Adam weight decay.
        warmup_epochs: Exponential warm-up exp(-5 (1 - t / T)^2) of the learning rate (fractional epochs, stepped
            per batch; the first step runs at the full ``lr``, as in the baseline). The consistency weight follows
            the same factor (warm-up, flat, cosine), as the baseline's does. ``None``: ``trainer.max_epochs`` x
            50 / 300, the recipe's ratio (50 of 300 epochs), so that a short run is not stuck in the warm-up.
        cosine_start: Epoch where the quarter-cosine decay begins (flat before); ``None``: ``max_epochs`` x 100 / 300.
        cosine_end: Epoch where the cosine reaches its floor (1e-5 x ``lr``, the baseline's 1e-8); ``None``:
            ``max_epochs``.
        consistency_weight: Maximum weight of the consistency loss.
        consistency_domains: Source domains whose rows get the consistency loss.
        ema_max_alpha: Upper bound of the teacher's averaging coefficient.
        mixup_p: Probability of mixup (0: off): of the batch (``baseline``) or of each source (``per_source``).
        mixup_alpha: Beta(alpha, alpha) of the mixing coefficient.
        mixup_mode: ``baseline``, the DCASE'24 baseline's (:func:`draw_baseline_group_mix`): one coin per batch;
            each group mixes its rows' linear mels (before dB, clamp, min-max) and targets with its own ``c`` and
            permutation, then its embeddings with a second draw, mixing the targets again; soft targets, but weak
            rows' clip targets become the union (the baseline's "any frame > 0"); unlabeled rows never mix.
            ``per_source`` (former behaviour): a coin per source, mixing after the frontend, embeddings with the
            features' draw.
        mixup_groups: Source names per ``baseline`` group, drawn in the listed order, one label kind per group;
            ``None``: one per (label kind, domain) of the labelled sources, the last in batch order first (the
            baseline's weak, synthetic + strong, MAESTRO).
        median_windows: Median-filter windows in frames: a preset (``dcase2024``, ``desed``, ``maestro``), one
            window for every class, or one per class; 1 disables the filter.
        test_engine: ``native`` (equal to psds_eval, seconds) or ``psds_eval`` (the official toolkit, minutes on
            large sets; warns first) for the test PSDS and intersection F1.
    """

    # Hyper-parameters of evaluation: `sonolab test/validate/predict --ckpt_path` takes them from its own config and
    # command line, not from the checkpoint (experiments.cli).
    EVAL_OPTIONS: Tuple[str, ...] = ("median_windows", "test_engine")

    def __init__(
        self,
        model: str = "crnn_dcase24",
        num_classes: int = 27,
        checkpoint: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_epochs: Optional[float] = None,
        cosine_start: Optional[float] = None,
        cosine_end: Optional[float] = None,
        consistency_weight: float = 2.0,
        consistency_domains: Sequence[str] = ("desed",),
        ema_max_alpha: float = 0.999,
        mixup_p: float = 0.5,
        mixup_alpha: float = 0.2,
        mixup_mode: Literal["baseline", "per_source"] = "baseline",
        mixup_groups: Optional[List[List[str]]] = None,
        median_windows: Union[int, List[int], str] = "dcase2024",
        test_engine: Literal["native", "psds_eval"] = "native",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_schedule(warmup_epochs, cosine_start, cosine_end)
        if mixup_mode not in ("baseline", "per_source"):
            raise ValueError(f"mixup_mode must be 'baseline' or 'per_source', got {mixup_mode!r}")
        self.frontend = create_frontend(model, **(frontend_overrides or {}))
        if mixup_mode == "baseline" and mixup_p > 0 and not hasattr(self.frontend, "linear"):
            raise ValueError(f"mixup_mode 'baseline' mixes linear mels: the frontend of {model!r} "
                             f"({type(self.frontend).__name__}) has no linear/finish split; use 'per_source'")
        self.model = create_model(model, n_classes=num_classes, **(model_overrides or {}))
        if checkpoint is not None:
            load_weights(self.model, model, checkpoint)
        self.teacher = EMATeacher(self.model, ema_max_alpha)
        self._outputs = {stage: ClipOutputs() for stage in ("val", "test")}
        self._references: Dict[str, Tuple[Tuple[str, ...], ReferenceSet]] = {}

    # ------------------------------------------------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------------------------------------------------
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
        if stage == "fit" and self.hparams.mixup_mode == "baseline":
            resolve_mixup_groups(self.datamodule.sources, self.hparams.mixup_groups)

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
        """Features and targets, mixed in training (``mixup_mode``)."""
        if train and self.hparams.mixup_p > 0 and self.hparams.mixup_mode == "baseline":
            return self._baseline_mixup(batch)
        out = {"features": self.frontend(batch["audio"]), "strong": batch["strong"].float(),
               "weak": batch["weak"].float(), "mask": batch["mask"].bool(), "embeddings": batch.get("embeddings")}
        if train and self.hparams.mixup_p > 0:
            lam, perm = draw_group_mix(batch["source"], self.hparams.mixup_p, self.hparams.mixup_alpha)
            for key in ("features", "strong", "weak", "embeddings"):
                if out[key] is not None:
                    out[key] = mix(out[key], lam, perm)
            out["mask"] = out["mask"] & out["mask"][perm]
        return out

    def _baseline_mixup(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """The baseline's mixup (see ``mixup_mode``) on the linear mel, then the rest of the frontend."""
        sources = batch["source"]
        groups = [torch.nonzero(torch.isin(sources, torch.tensor(g, device=sources.device))).flatten()
                  for g in resolve_mixup_groups(self.datamodule.sources, self.hparams.mixup_groups)]
        linear = self.frontend.linear(batch["audio"])
        out = {key: batch[key].float() for key in ("strong", "weak")}
        out.update(mask=batch["mask"].bool(), embeddings=batch.get("embeddings"))
        draws = draw_baseline_group_mix(groups, linear.shape[0], self.hparams.mixup_p, self.hparams.mixup_alpha,
                                        draws=1 if out["embeddings"] is None else 2, device=linear.device)
        for k, (lam, perm) in enumerate(draws or ()):
            if k == 0:
                linear = mix(linear, lam, perm)
            else:
                out["embeddings"] = mix(out["embeddings"], lam, perm)
            out["strong"], out["weak"] = mix(out["strong"], lam, perm), mix(out["weak"], lam, perm)
            out["mask"] = out["mask"] & out["mask"][perm]
        if draws is not None:
            weak_rows = batch["has_weak"].bool().unsqueeze(-1)
            out["weak"] = torch.where(weak_rows, (out["weak"] > 0).to(out["weak"].dtype), out["weak"])
        out["features"] = self.frontend.finish(linear)
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
        log_skipped_clips(self, batch, "train")
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
        weight = self.hparams.consistency_weight * self._schedule_factor(self._scheduler_count())
        loss = strong_loss + weak_loss + weight * consistency
        size = batch["audio"].shape[0]
        for name, value in (("strong_loss", strong_loss), ("weak_loss", weak_loss),
                            ("consistency_loss", consistency), ("consistency_weight", weight)):
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        return loss

    def _scheduler_count(self) -> int:
        """The baseline scheduler's counter at the current batch: 1 at the first batch (DESED_task's
        ``ExponentialWarmup.step_num``); the EMA coefficient and the consistency weight are read at it."""
        return self.global_step + 1

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # As the baseline (on_before_zero_grad): the teacher moves towards the student's weights of this batch,
        # before the optimizer changes them, so it lags by one step; the first coefficient is 0.5.
        self.teacher.update(self.model, self._scheduler_count())

    def _eval_step(self, batch: Dict[str, Any], stage: str) -> None:
        log_skipped_clips(self, batch, stage)
        x = self._inputs(batch, train=False)
        outputs = {"student": self.model(x["features"], x["embeddings"]),
                   "teacher": self.teacher(x["features"], x["embeddings"])}
        strong = outputs["student"][0]
        self._check_frames(strong, x["strong"])
        # per-clip mean BCE (NaN without strong labels): its mean over clips is masked_bce over the strong rows
        loss = F.binary_cross_entropy(strong.float(), x["strong"], reduction="none").mean(dim=(1, 2))
        loss = loss.masked_fill(~batch["has_strong"].bool(), float("nan"))
        scores = {m: probs.float().transpose(1, 2) for m, (probs, _) in outputs.items()}  # (B, T', C) per model
        # undecodable clips (silent placeholders) are left out, so the reference leaves out their events too
        rows = drop_skipped({"name": batch["name"], "loss": loss, **scores}, batch.get(SKIPPED))
        self._outputs[stage].add(rows["name"], loss=rows["loss"], **{m: rows[m] for m in MODELS})

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        strong, weak = self(batch["audio"], batch.get("embeddings"))
        return drop_skipped({"name": list(batch["name"]), "strong": strong.cpu(), "weak": weak.cpu()},
                            batch.get(SKIPPED))

    # ------------------------------------------------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._outputs["val"].reset()

    def on_test_epoch_start(self) -> None:
        self._outputs["test"].reset()

    def clip_scores(self, stage: str, model_name: str = "student",
                    postprocess: bool = True) -> Dict[str, ClipScores]:
        """Frame scores of the last ``stage`` epoch keyed by audio id, median-filtered unless ``postprocess`` is
        False (all processes' clips under DDP, each clip once; a collective there: every process calls it)."""
        rows = self._outputs[stage].merged()
        if not len(rows["name"]):
            return {}
        encoder, names = self.datamodule.encoder, tuple(self.datamodule.class_names)
        windows = self.windows() if postprocess else 1
        return {audio_id(name): ClipScores(encoder.timestamps, median_filter(scores, windows), names)
                for name, scores in zip(rows["name"], rows[model_name])}

    def _log(self, name: str, value: float, prog_bar: bool = False) -> None:
        """Logs an evaluation value that every process computed identically (from the merged clips); the max
        "reduction" only keeps Lightning's DDP bookkeeping exact."""
        self.log(name, value, prog_bar=prog_bar, sync_dist=True, reduce_fx="max")

    def _log_loss(self, stage: str) -> None:
        """``{stage}/loss``: mean BCE over the frames of the clips with strong labels, every clip once."""
        losses = self._outputs[stage].merged().get("loss")
        if losses is not None and np.isfinite(losses).any():
            self._log(f"{stage}/loss", float(np.nanmean(losses)))

    def _reference(self, stage: str, clip_ids: Sequence[str]) -> Tuple[Any, Any]:
        """Ground truth and durations of the clips that were scored (all of them, unless ``limit_*_batches``)."""
        return restrict_to_clips(*self.datamodule.reference(stage), clip_ids)

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self._log_loss("val")
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
            self._log(f"val/psds1{suffix}", reference.psds(scores, PSDS1), prog_bar=model_name == "student")
            if len(reference.class_names) > 1:  # PSDS2 weighs cross-triggers between classes
                self._log(f"val/psds2{suffix}", reference.psds(scores, PSDS2))
            self._log(f"val/f1_intersection{suffix}", reference.intersection_f1(scores))

    def on_test_epoch_end(self) -> None:
        self._log_loss("test")
        for model_name in MODELS:
            scores = self.clip_scores("test", model_name)
            ground_truth, durations = self._reference("test", list(scores))
            if self.trainer.is_global_zero and self.trainer.log_dir:
                write_score_dir(os.path.join(self.trainer.log_dir, "scores", model_name), scores)
            if self.hparams.test_engine == "psds_eval" and model_name == MODELS[0]:
                n_classes = ground_truth["event_label"].nunique()
                warning = psds_eval_cost_warning(len(PSDS_THRESHOLDS), n_classes, len(scores))
                if warning:
                    rank_zero_warn(warning)
            result = evaluate_scores(scores, ground_truth, durations, engine=self.hparams.test_engine)
            suffix = "" if model_name == "student" else "_teacher"
            for key in ("psds1", "psds2", "f1_intersection", "f1_event_macro", "f1_segment_macro"):
                self._log(f"test/{key}{suffix}", getattr(result, key))

    # ------------------------------------------------------------------------------------------------------------
    # optimisation
    # ------------------------------------------------------------------------------------------------------------
    def _steps_per_epoch(self) -> float:
        trainer = self.trainer
        total, epochs = trainer.estimated_stepping_batches, trainer.max_epochs
        return max(1.0, float(total) / epochs) if epochs and epochs > 0 and np.isfinite(total) else 1.0

    def schedule_epochs(self) -> Tuple[float, float, float]:
        """(warm-up end, cosine start, cosine end) in epochs: the set values, the others derived from
        ``trainer.max_epochs`` with the recipe's ratios (exactly 50, 100, 300 at 300 epochs)."""
        hp = self.hparams
        given = (hp.warmup_epochs, hp.cosine_start, hp.cosine_end)
        if all(value is not None for value in given):
            return tuple(float(value) for value in given)
        epochs = self.trainer.max_epochs
        if not epochs or epochs < 0:
            raise ValueError("warmup_epochs/cosine_start/cosine_end left unset derive from trainer.max_epochs, which "
                             f"is {epochs}: set trainer.max_epochs or the three schedule epochs")
        derived = tuple(float(value) if value is not None else epochs * ratio / RECIPE_SCHEDULE[-1]
                        for value, ratio in zip(given, RECIPE_SCHEDULE))
        _check_schedule(*derived, note=f" (unset ones derived from trainer.max_epochs {epochs})")
        return derived

    def _schedule_factor(self, count: int) -> float:
        """The baseline's scaling factor (warm-up, flat, quarter cosine) at scheduler counter ``count`` (steps); it
        scales both the learning rate and the consistency weight."""
        warmup, cosine_start, cosine_end = self.schedule_epochs()
        return exp_warmup_cosine(count / self._steps_per_epoch(), warmup, cosine_start, cosine_end)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        self.schedule_epochs()  # checks the schedule before the first step
        # The baseline's scheduler sets the rate only after the first optimizer step, which thus runs at the full lr;
        # the rate of step k >= 1 is the factor at the scheduler's counter k + 1.
        schedule = lambda step: 1.0 if step == 0 else self._schedule_factor(step + 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
