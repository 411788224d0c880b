"""Low-complexity acoustic scene classification (DCASE'24 Task 1 baseline; DCASE'25 device-specific models).

Pipeline of one shared step (training-only pieces are inert in eval mode)::

    waveform @ 44.1 kHz --DIR (device 'a' only)--> --roll +-4410--> --resample 32 kHz--> frontend (mel, freqm)
        --Freq-MixStyle--> CP-Mobile --> logits

DIR and roll act at the storage rate (the impulse responses are resampled to 44.1 kHz), as the spec orders them:
on the waveform, before roll and the frontend. Loss: cross-entropy, or ``kd_lambda * CE + (1 - kd_lambda) * KD``
when the batch carries raw teacher logits (converted here with ``teacher_log_probs`` at ``kd_temperature``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.asc import STORAGE_RATE, Resample
from datamodules.augment.dir import DeviceImpulseResponse
from datamodules.augment.freq_mixstyle import FreqMixStyle
from datamodules.augment.waveform import Roll
from datamodules.datasets import SKIPPED, drop_skipped, log_skipped_clips
from losses.kl_distillation import DistillationLoss, teacher_log_probs
from metrics.asc import DEVICES, SCENE_CLASSES, ASCAccuracy, DeviceGroupPreset, default_group_preset, device_groups
from models import create_frontend, create_model
from models.quantization import fp16_forward, quantize_int8, to_fp16
from models.registry import read_state_dict

TestPrecision = Literal["fp32", "fp16", "int8"]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """LR multiplier: linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class DeviceEnsemble(nn.Module):
    """DCASE'25 inference: one network per known device, a general network for every other device.

    Each clip of a batch goes to the network of its device id (an index into ``device_names``); clips of devices
    without their own network (e.g. the unseen s4-s6) go to ``general``. All networks share one architecture and
    one frontend; the complexity limits apply to each network alone.

    Args:
        general: The network trained on all devices.
        experts: Device name -> network fine-tuned on that device.
        device_names: The device vocabulary that the ids index (default TAU22's a, b, c, s1-s6).
    """

    def __init__(self, general: nn.Module, experts: Dict[str, nn.Module],
                 device_names: Sequence[str] = DEVICES) -> None:
        super().__init__()
        self.device_names = tuple(device_names)
        unknown = [d for d in experts if d not in self.device_names]
        if unknown:
            raise ValueError(f"unknown devices {unknown}; known: {list(self.device_names)}")
        self.general = general
        self.experts = nn.ModuleDict(experts)

    @classmethod
    def from_checkpoints(cls, model: str, general: str, experts: Dict[str, str], **overrides: Any) -> "DeviceEnsemble":
        """Builds catalogue ``model`` networks from state dicts or Lightning checkpoints (device -> path)."""
        def load(path: str) -> nn.Module:
            net = create_model(model, **overrides)
            net.load_state_dict(read_state_dict(path))
            return net
        return cls(load(general), {d: load(p) for d, p in experts.items()})

    def forward(self, spec: torch.Tensor, devices: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) spectrograms and (B,) device ids -> (B, C) logits."""
        logits = self.general(spec)[0]
        for name, expert in self.experts.items():
            rows = torch.nonzero(devices.to(spec.device) == self.device_names.index(name)).flatten()
            if rows.numel():
                logits[rows] = expert(spec[rows])[0].to(logits.dtype)
        return logits


class SceneClassification(pl.LightningModule):
    """Single-label scene classification of 1 s clips with device ids (TAU22 Mobile).

    Logged per evaluation: ``{stage}/loss`` and the accuracies of :mod:`metrics.asc` (``macro_acc``, ``acc/<device>``,
    ...), computed at epoch end on every clip exactly once (under DDP the processes' clips are merged by clip id);
    ``train/teacher_coverage`` when the data carries teacher logits; ``{stage}/skipped_clips``: the epoch's undecodable
    clips (replaced in training, left out of the metrics and predictions of evaluations: the datamodule's
    ``on_decode_error``).

    Args:
        model: Catalogue name (architecture and frontend come with it), e.g. ``cp_mobile_dcase24``.
        num_classes: Scene classes (linked from the datamodule).
        checkpoint: Weights to start from (state dict or Lightning checkpoint), e.g. the general model for
            device-specific fine-tuning.
        model_overrides: Constructor arguments replacing the catalogue's.
        frontend_overrides: Frontend arguments replacing the catalogue's (e.g. ``{"freqm": 0}``).
        storage_rate: Rate of the stored clips; resampled to the frontend's rate inside the step.
        roll_samples: Largest random circular shift at the storage rate (4410 = 0.1 s at 44.1 kHz; 0: off).
        dir_dir: Folder of device impulse responses (``None``: no DIR augmentation).
        dir_p: Probability of convolving a device-'a' clip with a random impulse response.
        mixstyle_p: Freq-MixStyle probability per batch (0: off).
        mixstyle_alpha: Freq-MixStyle Beta concentration.
        kd_lambda: Weight of the label loss when teacher logits are in the batch (0.02 in CP-JKU's recipe).
        kd_temperature: Distillation temperature.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps of the per-batch cosine schedule.
        total_steps: Steps of the schedule (``None``: the trainer's estimate).
        test_precision: Precision of the evaluated network at test time: "fp32", "fp16" (the baseline's) or "int8"
            (post-training static quantisation, CPU).
        calibration_batches: Batches (of the datamodule's batch size) of training clips that calibrate the int8
            activation ranges: a fixed draw (seeded, in file order, not augmented; see
            ``ASCDataModule.calibration_dataloader``), so two int8 tests of one checkpoint give the same results.
        calibration_seed: Seed of that draw.
        device_checkpoints: DCASE'25: device name -> fine-tuned weights; at test time clips of these devices are
            classified by their own network, the rest by this module's (general) network.
        device_groups: Groups of the grouped device accuracies: ``"tau22"`` (``acc/real``, ``acc/seen``,
            ``acc/unseen``: a-c, s1-s3, s4-s6) or ``"from_training"`` (``acc/seen_devices``, ``acc/unseen_devices``:
            the devices of the training clips and the others; no groups without training data); ``None``: ``"tau22"``
            for TAU22's devices, else ``"from_training"``. Scene and device names come from the datamodule's files
            (``acc/<scene>``, ``acc/<device>``), see :meth:`setup`.
    """

    # Hyper-parameters of evaluation: `sonolab test/validate/predict --ckpt_path` takes them from its own config and
    # command line, not from the checkpoint (experiments.cli).
    EVAL_OPTIONS: Tuple[str, ...] = ("test_precision", "calibration_batches", "calibration_seed", "device_checkpoints",
                                     "device_groups")

    def __init__(
        self,
        model: str = "cp_mobile_dcase24",
        num_classes: int = 10,
        checkpoint: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
        storage_rate: int = STORAGE_RATE,
        roll_samples: int = 4410,
        dir_dir: Optional[str] = None,
        dir_p: float = 0.6,
        mixstyle_p: float = 0.4,
        mixstyle_alpha: float = 0.3,
        kd_lambda: float = 0.02,
        kd_temperature: float = 2.0,
        lr: float = 0.005,
        weight_decay: float = 1e-4,
        warmup_steps: int = 2000,
        total_steps: Optional[int] = None,
        test_precision: TestPrecision = "fp16",
        calibration_batches: int = 4,
        calibration_seed: int = 0,
        device_checkpoints: Optional[Dict[str, str]] = None,
        device_groups: Optional[DeviceGroupPreset] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if test_precision not in ("fp32", "fp16", "int8"):
            raise ValueError(f"test_precision must be fp32, fp16 or int8, got {test_precision!r}")
        self.model_name = model
        self.frontend = create_frontend(model, **(frontend_overrides or {}))
        self.model = create_model(model, num_classes=num_classes, **(model_overrides or {}))
        if checkpoint is not None:
            self.model.load_state_dict(read_state_dict(checkpoint))
        self.resample = Resample(storage_rate, getattr(self.frontend, "sample_rate", 32000))
        self.dir = DeviceImpulseResponse(dir_dir, storage_rate, dir_p, target_device=DEVICES.index("a")) \
            if dir_dir else None
        self.roll = Roll(roll_samples)
        self.mixstyle = FreqMixStyle(mixstyle_p, mixstyle_alpha) if mixstyle_p > 0 else nn.Identity()
        self.loss = DistillationLoss(kd_lambda, kd_temperature)
        classes = SCENE_CLASSES if num_classes == len(SCENE_CLASSES) else tuple(str(i) for i in range(num_classes))
        self.metrics = nn.ModuleDict({stage: ASCAccuracy(classes) for stage in ("val", "test")})
        # The test-time network (fp16/int8/ensemble), rebuilt at every test start; a list keeps it out of the
        # state dict. Read it with :meth:`deployed_network`.
        self._deployed: List[nn.Module] = []

    # ----------------------------------------------------------------------------------------------------------
    def spectrogram(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Waveforms of a batch -> log-mel spectrograms (augmented in training mode)."""
        wave = batch["audio"]
        if self.dir is not None:
            wave = self.dir(wave, batch["device"])
        wave = self.resample(self.roll(wave))
        return self.mixstyle(self.frontend(wave))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) waveforms at the storage rate -> (B, C) logits (fp32 network)."""
        return self.model(self.frontend(self.resample(audio)))[0]

    def _classify(self, spec: torch.Tensor, devices: torch.Tensor, stage: str) -> torch.Tensor:
        if stage != "test" or not self._deployed:
            return self.model(spec)[0]
        net = self._deployed[0]
        if isinstance(net, DeviceEnsemble):
            return net(spec, devices).float()
        if self.hparams.test_precision == "fp16":
            return fp16_forward(net, spec)[0]
        return net(spec.float().cpu())[0].to(spec.device)  # int8: quantised CPU kernels

    def _shared_step(self, batch: Dict[str, Any], stage: str) -> Dict[str, torch.Tensor]:
        log_skipped_clips(self, batch, stage)
        spec = self.spectrogram(batch)
        logits = self._classify(spec, batch["device"], stage)
        target = batch["target"].long()
        size = target.shape[0]
        if stage == "train" and "teacher" in batch and self.loss.kd_lambda < 1.0:
            has = batch["teacher_weight"] > 0
            label_loss = F.cross_entropy(logits.float(), target)
            kd = self.loss.kd(logits[has], teacher_log_probs(batch["teacher"][has], self.loss.kd.temperature)) \
                if has.any() else label_loss.new_zeros(())
            loss = self.loss.kd_lambda * label_loss + (1.0 - self.loss.kd_lambda) * kd
            self.log("train/label_loss", label_loss, batch_size=size)
            self.log("train/kd_loss", kd, batch_size=size)
        else:
            loss = F.cross_entropy(logits.float(), target)
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=size)
        else:  # loss and accuracies at epoch end, every clip once (ASCAccuracy merges the processes' clips by id);
            # undecodable clips (silent placeholders) are left out
            rows = drop_skipped({"preds": logits.detach().float(), "targets": target, "devices": batch["device"],
                                 "names": batch["name"]}, batch.get(SKIPPED))
            self.metrics[stage].update(**rows)
        return {"loss": loss, "logits": logits.detach()}

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")["loss"]

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, torch.Tensor]:
        return self._shared_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, torch.Tensor]:
        return self._shared_step(batch, "test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        logits = self._classify(self.spectrogram(batch), batch["device"], "test")
        return drop_skipped({"name": list(batch["name"]), "probs": logits.float().softmax(dim=-1).cpu()},
                            batch.get(SKIPPED))

    # ----------------------------------------------------------------------------------------------------------
    # Metrics are reset at epoch start so that callbacks (confusion image, submission) read full counts at epoch end.
    def on_validation_epoch_start(self) -> None:
        self.metrics["val"].reset()

    def on_test_epoch_start(self) -> None:
        self.metrics["test"].reset()

    def on_train_epoch_start(self) -> None:
        coverage = getattr(getattr(self.trainer, "datamodule", None), "teacher_coverage", None)
        if coverage is not None:
            self.log("train/teacher_coverage", float(coverage))

    def evaluate(self, stage: str) -> Dict[str, float]:
        """Loss and accuracies of the clips scored in the last ``stage`` epoch (all processes' clips, each once)."""
        metric = self.metrics[stage]
        rows = metric.clips.merged()
        if not len(rows["name"]):
            return {}
        loss = F.cross_entropy(torch.from_numpy(rows["preds"]), torch.from_numpy(rows["target"]))
        return {"loss": float(loss), **metric.compute()}

    def _log_metrics(self, stage: str) -> None:
        for name, value in self.evaluate(stage).items():
            if not math.isnan(value):  # e.g. unseen devices absent from a device-specific evaluation
                # identical on every process: the max "reduction" only keeps Lightning's DDP bookkeeping exact
                self.log(f"{stage}/{name}", value, prog_bar=name == "macro_acc", sync_dist=True, reduce_fx="max")

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def setup(self, stage: str) -> None:
        """Names the metrics after the datamodule's scene and device vocabularies (``acc/forest_day``, not
        ``acc/4``) and groups the devices (``device_groups``); points DIR at the data's device 'a'."""
        dm = getattr(self.trainer, "datamodule", None)
        classes, devices = getattr(dm, "class_names", None), getattr(dm, "device_names", None)
        if classes is None or devices is None:
            return
        if len(classes) != self.hparams.num_classes:
            raise ValueError(f"the data has {len(classes)} scene classes {list(classes)}, the model "
                             f"num_classes={self.hparams.num_classes} outputs")
        preset = self.hparams.device_groups or default_group_preset(devices)
        groups = device_groups(devices, preset, dm.train_device_names if preset == "from_training" else None)
        self.metrics = nn.ModuleDict({s: ASCAccuracy(classes, devices, groups) for s in ("val", "test")})
        if self.dir is not None:
            if "a" not in devices:
                raise ValueError(f"dir_dir: DIR augments the clips of device 'a', which the data's devices {devices} "
                                 "lack; set dir_dir to null")
            self.dir.target_device = list(devices).index("a")

    def on_fit_start(self) -> None:
        """Says on which set the checkpoints are selected (one line, rank 0)."""
        dm = getattr(self.trainer, "datamodule", None)
        if not self.trainer.is_global_zero or not hasattr(dm, "validation_source"):
            return
        if dm.validates_on_test:
            print(f"validating on {dm.validation_source}, as the DCASE'24 baseline does; set "
                  "data.init_args.val_fraction=0.1 (val_group: recording|city) for a held-out split")
        else:
            print(f"validating on {dm.validation_source}")

    def on_test_start(self) -> None:
        self._build_deployed()

    def on_predict_start(self) -> None:
        self._build_deployed()  # predictions come from the network a test evaluates (test_precision, ensemble)

    def _build_deployed(self) -> None:
        """Builds the deployed network: fp16 copy, int8 (calibrated on fixed training clips) or device ensemble."""
        hp = self.hparams
        self._deployed.clear()
        if hp.device_checkpoints:
            experts = {}
            for device, path in hp.device_checkpoints.items():
                net = create_model(hp.model, num_classes=hp.num_classes, **(hp.model_overrides or {}))
                net.load_state_dict(read_state_dict(path))
                experts[device] = net
            ensemble = DeviceEnsemble(self.model, experts, self.metrics["test"].devices).to(self.device).eval()
            self._deployed.append(ensemble)
        elif hp.test_precision == "fp16":
            self._deployed.append(to_fp16(self.model))
        elif hp.test_precision == "int8":
            self._deployed.append(quantize_int8(self.model, self._calibration_specs()))

    def deployed_network(self) -> nn.Module:
        """The network of the last test run (fp16 copy, int8 model or :class:`DeviceEnsemble`), else ``model``."""
        return self._deployed[0] if self._deployed else self.model

    @torch.no_grad()
    def _calibration_specs(self) -> List[torch.Tensor]:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "calibration_dataloader"):
            raise ValueError("int8 testing calibrates on training clips: pass an ASCDataModule with train_h5")
        specs = []
        was_training = self.training
        self.eval()  # the frontend without masking; DIR, roll and Freq-MixStyle are not applied here
        for batch in datamodule.calibration_dataloader(self.hparams.calibration_batches, self.hparams.calibration_seed):
            specs.append(self.frontend(self.resample(batch["audio"].to(self.device))).cpu())
        self.train(was_training)
        return specs

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        total = hp.total_steps or int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, hp.warmup_steps, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
