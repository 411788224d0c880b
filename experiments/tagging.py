"""Audio tagging and clip classification: a catalogue model on its catalogue frontend, BCE on weak labels (or CE on
single labels, or masked BCE on soft labels), optional teacher distillation."""
from __future__ import annotations

import math
from typing import Any, Dict, Literal, Optional, Tuple

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multilabel_auroc, multilabel_average_precision

from datamodules.augment.mixing import WaveformMix, draw_mix, mix
from datamodules.augment.waveform import Gain, Roll
from datamodules.datasets import SKIPPED, drop_skipped, log_skipped_clips
from experiments.schedules import exp_warmup_linear_down
from losses.bce_distillation import BCEDistillationLoss
from losses.masked_bce import masked_bce
from metrics.clip_outputs import ClipOutputs
from models import create_frontend, create_model
from models.registry import get_entry, read_state_dict


class AudioTagging(pl.LightningModule):
    """Tagging and classification of clips as in EfficientAT (AudioSet, FSD50K, ESC-50, OpenMIC, DCASE'20 ASC).

    Losses (``loss``): ``"bce"`` on multi-hot labels (tagging); ``"ce"`` on single labels (ESC-50, scenes; every clip
    must have exactly one positive, mixup gives soft targets); ``"masked_bce"`` on soft labels where the batch's
    ``mask`` says which labels are known (OpenMIC), averaged over the known entries.

    With ``"bce"``, training batches may carry ``teacher`` logits and a ``teacher_weight`` (see
    ``TaggingDataModule``); then the loss is ``kd_lambda * BCE(labels) + (1 - kd_lambda) * BCE(sigmoid(teacher / T))``,
    mixup-consistent.

    Metrics: ``{stage}/loss``, ``{stage}/mAP`` and ``{stage}/auroc`` (macro, over known labels only: soft labels
    count as positive above 0.5), ``{stage}/d_prime``, and with ``"ce"`` also ``{stage}/acc`` (fraction of clips
    whose top class is the label). They are computed once per epoch on every clip exactly once: under DDP the
    clips of all processes are merged by clip id (:class:`~metrics.clip_outputs.ClipOutputs`), so the values equal
    a single-process run. ``train/teacher_coverage`` is the fraction of training clips with teacher logits;
    ``{stage}/skipped_clips`` counts the epoch's undecodable clips (replaced in training, left out of evaluations and
    predictions: the datamodule's ``on_decode_error``).

    Args:
        model: Catalogue name (its architecture and frontend come with it; ``sonolab models`` lists them).
        num_classes: Output classes (linked from the datamodule).
        checkpoint: Weights to start from (published state dict or Lightning checkpoint); a head whose shape differs
            from ``num_classes`` is re-initialised.
        pretrained: Catalogue name whose published weights initialise the network (e.g. ``mn10_im`` for AudioSet
            training from ImageNet, ``mn10_as`` for fine-tuning); needs the network once.
        model_overrides: Constructor arguments replacing the catalogue's.
        frontend_overrides: Frontend arguments replacing the catalogue's (e.g. ``{"freqm": 48, "timem": 192}``).
        lr: Peak learning rate of Adam.
        weight_decay: Adam weight decay.
        warmup_epochs: Epochs of exponential warm-up.
        rampdown_start: Epoch where the linear ramp-down starts (0: no ramp-down).
        rampdown_epochs: Length of the ramp-down.
        last_lr_factor: Final LR multiplier after the ramp-down.
        mixup_alpha: Spectrogram mixup Beta(alpha, alpha), lambda = max(l, 1 - l) (0: off).
        wavmix_p: Probability of waveform mixing a batch (Beta(2, 2), zero-mean; 0: off).
        roll_samples: Random circular shift of each waveform by up to this many samples (0: off).
        gain_db: Random gain in [-gain_db, gain_db] dB (0: off).
        kd_lambda: Weight of the label loss when teacher logits are present (the teacher gets 1 - kd_lambda).
        kd_temperature: Teacher temperature.
        loss: ``"bce"``, ``"ce"`` or ``"masked_bce"`` (see above).
    """

    # Hyper-parameters of evaluation that `sonolab test/predict --ckpt_path` would take from its own config instead
    # of the checkpoint (experiments.cli): none, tagging evaluates the trained network as it is.
    EVAL_OPTIONS: Tuple[str, ...] = ()

    def __init__(
        self,
        model: str = "demo_cnn",
        num_classes: int = 10,
        checkpoint: Optional[str] = None,
        pretrained: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        rampdown_start: int = 0,
        rampdown_epochs: int = 0,
        last_lr_factor: float = 1.0,
        mixup_alpha: float = 0.0,
        wavmix_p: float = 0.0,
        roll_samples: int = 0,
        gain_db: float = 0.0,
        kd_lambda: float = 0.1,
        kd_temperature: float = 1.0,
        loss: Literal["bce", "ce", "masked_bce"] = "bce",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.frontend = create_frontend(model, **(frontend_overrides or {}))
        self.model = create_model(model, num_classes=num_classes, **(model_overrides or {}))
        if checkpoint is not None and pretrained is not None:
            raise ValueError("pass either checkpoint or pretrained, not both")
        if checkpoint is not None or pretrained is not None:
            self._load_backbone(checkpoint, pretrained)
        self.roll = Roll(roll_samples)
        self.gain = Gain(gain_db)
        self.wavmix = WaveformMix(p=wavmix_p)
        if loss not in ("bce", "ce", "masked_bce"):
            raise ValueError(f"loss must be 'bce', 'ce' or 'masked_bce', got {loss!r}")
        self.kd_loss = BCEDistillationLoss(kd_lambda, kd_temperature)
        self.outputs = {stage: ClipOutputs() for stage in ("val", "test")}

    def _load_backbone(self, checkpoint: Optional[str], pretrained: Optional[str]) -> None:
        if pretrained is not None:
            source = create_model(pretrained, pretrained=True)
            state, origin = source.state_dict(), f"published weights of {pretrained!r}"
        else:
            entry = get_entry(self.hparams.model)
            state, origin = read_state_dict(checkpoint), checkpoint
            if entry.state_dict_filter is not None:
                state = entry.state_dict_filter(state)
        own = self.model.state_dict()
        mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        for key in mismatched:  # a new head for a new label set
            del state[key]
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - set(mismatched):
            raise ValueError(f"{origin}: keys do not match {self.hparams.model} "
                             f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) waveform -> (B, num_classes) logits."""
        logits, _ = self.model(self.frontend(audio))
        return logits

    def on_fit_start(self) -> None:
        expected = getattr(self.frontend, "sample_rate", None)
        data_rate = getattr(self.trainer.datamodule, "hparams", {}).get("sample_rate")
        if expected is not None and data_rate is not None and expected != data_rate:
            raise ValueError(f"model {self.hparams.model!r} expects {expected} Hz audio, data.sample_rate is {data_rate}")

    def on_train_epoch_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        dataset = getattr(datamodule, "_datasets", {}).get("train")
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)
        coverage = getattr(datamodule, "teacher_coverage", None)
        if coverage is not None:
            self.log("train/teacher_coverage", float(coverage))

    def _train_inputs(self, batch: Dict[str, Any]) -> tuple:
        """Augmented spectrograms, label targets, teacher targets (or None) and KD weights, mixed consistently."""
        wave = self.gain(self.roll(batch["audio"]))
        target = batch["target"].float()
        teacher = self.kd_loss.teacher_targets(batch["teacher"]) if "teacher" in batch else None
        kd_weight = batch.get("teacher_weight")
        wave, mixed = self.wavmix(wave)
        spec = self.frontend(wave)
        if mixed is None and self.hparams.mixup_alpha > 0:
            mixed = draw_mix(spec.shape[0], self.hparams.mixup_alpha, spec.device)
            spec = mix(spec, *mixed)
        if mixed is not None:
            target = mix(target, *mixed)
            if teacher is not None:
                teacher, kd_weight = mix(teacher, *mixed), kd_weight * kd_weight[mixed[1]]
        return spec, target, teacher, kd_weight

    def _shared_step(self, batch: Dict[str, Any], stage: str) -> torch.Tensor:
        log_skipped_clips(self, batch, stage)
        if stage == "train":
            spec, target, teacher, kd_weight = self._train_inputs(batch)
        else:
            spec, target, teacher, kd_weight = self.frontend(batch["audio"]), batch["target"].float(), None, None
        logits, _ = self.model(spec)
        batch_size = spec.shape[0]
        if teacher is not None:
            if self.hparams.loss != "bce":
                raise ValueError(f"teacher distillation needs loss='bce', not {self.hparams.loss!r}")
            terms = self.kd_loss.components(logits, target, kd_weight=kd_weight, teacher_probs=teacher)
            loss = terms["loss"]
            self.log(f"{stage}/distillation_loss", terms["distillation_loss"], batch_size=batch_size)
        else:
            loss = self._label_loss(logits, target, batch)
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        else:  # scored at epoch end, every clip once; undecodable clips (silent placeholders) are left out
            fields = {"name": batch["name"], "logits": logits.float(), "target": batch["target"].float()}
            if "mask" in batch:
                fields["mask"] = batch["mask"].bool()
            fields = drop_skipped(fields, batch.get(SKIPPED))
            self.outputs[stage].add(fields.pop("name"), **fields)
        return loss

    def _label_loss(self, logits: torch.Tensor, target: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        kind = self.hparams.loss
        if kind == "ce":
            positives = batch["target"].sum(dim=1)
            if not torch.all(positives == 1):
                row = int(torch.nonzero(positives != 1)[0])
                raise ValueError(f"loss='ce' needs exactly one label per clip; clip {batch['name'][row]!r} has "
                                 f"{int(positives[row])} (use loss='bce' for multi-label data)")
            return F.cross_entropy(logits, target)
        if kind == "masked_bce":
            if "mask" not in batch:
                raise ValueError("loss='masked_bce' needs a label mask: the data has no soft labels "
                                 "(datamodules.format.hdf5.attach_soft_labels)")
            return masked_bce(logits, target, batch["mask"], normalize="valid")
        return masked_bce(logits, target)

    def evaluate(self, stage: str) -> Dict[str, float]:
        """Loss and metrics of the clips scored in the last ``stage`` epoch (all processes' clips, each once);
        empty when no clip was scored."""
        rows = {k: torch.from_numpy(v) for k, v in self.outputs[stage].merged().items() if k != "name"}
        if not rows:
            return {}
        logits, target = rows["logits"], rows["target"]
        loss = self._label_loss(logits, target, rows)
        hard = (target > 0.5).long()
        if "mask" in rows:
            hard = hard.masked_fill(~rows["mask"], -1)
        classes = logits.shape[1]
        auroc = multilabel_auroc(logits, hard, num_labels=classes, average="macro", ignore_index=-1)
        result = {
            "loss": float(loss),
            "mAP": float(multilabel_average_precision(logits, hard, num_labels=classes, average="macro",
                                                      ignore_index=-1)),
            "auroc": float(auroc),
            "d_prime": float(math.sqrt(2.0) * torch.special.ndtri(auroc.clamp(1e-6, 1 - 1e-6))),  # sqrt(2) Phi^-1(AUC)
        }
        if self.hparams.loss == "ce":
            result["acc"] = float((logits.argmax(dim=1) == target.argmax(dim=1)).float().mean())
        return result

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self.outputs["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.outputs["test"].reset()

    def _log_metrics(self, stage: str) -> None:
        for name, value in self.evaluate(stage).items():
            # identical on every process: the max "reduction" only keeps Lightning's DDP bookkeeping exact
            self.log(f"{stage}/{name}", value, prog_bar=name == "mAP", sync_dist=True, reduce_fx="max")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        logits = self(batch["audio"])
        probs = torch.softmax(logits, dim=1) if self.hparams.loss == "ce" else torch.sigmoid(logits)
        return drop_skipped({"name": list(batch["name"]), "probs": probs.cpu()}, batch.get(SKIPPED))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.warmup_epochs <= 0 and hp.rampdown_epochs <= 0:
            return optimizer
        rampdown_start = hp.rampdown_start if hp.rampdown_epochs > 0 else 10**9
        schedule = lambda epoch: exp_warmup_linear_down(epoch, hp.warmup_epochs, rampdown_start,
                                                        max(1, hp.rampdown_epochs), hp.last_lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)}
