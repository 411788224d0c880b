"""Audio tagging: a catalogue model on its catalogue frontend, trained with BCE on weak multi-hot labels."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics.classification import MultilabelAUROC, MultilabelAveragePrecision

from models import create_frontend, create_model


class AudioTagging(pl.LightningModule):
    """Multi-label tagging of clips (AudioSet, FSD50K, the demo data).

    Args:
        model: Catalogue name (``sonolab`` knows its architecture and frontend, see ``models.list_models()``).
        num_classes: Output classes (linked from the datamodule).
        checkpoint: Weights to start from (a published state dict or a Lightning checkpoint); a head whose shape
            does not match ``num_classes`` is re-initialised.
        model_overrides: Constructor arguments replacing the catalogue's (primitive values only).
        frontend_overrides: Frontend arguments replacing the catalogue's (e.g. ``{"freqm": 48}``).
        lr: Peak learning rate of Adam.
        weight_decay: Adam weight decay.
        warmup_epochs: Epochs of exponential warm-up exp(-5 (1 - e / warmup)^2).
        mixup_alpha: Spectrogram mixup Beta(alpha, alpha) with lambda = max(l, 1 - l); 0 disables it.
    """

    def __init__(
        self,
        model: str = "demo_cnn",
        num_classes: int = 10,
        checkpoint: Optional[str] = None,
        model_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_epochs: int = 0,
        mixup_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.frontend = create_frontend(model, **(frontend_overrides or {}))
        self.model = create_model(model, num_classes=num_classes, **(model_overrides or {}))
        if checkpoint is not None:
            self._load_backbone(checkpoint)
        self.loss = nn.BCEWithLogitsLoss()
        self.metrics = nn.ModuleDict({
            stage: nn.ModuleDict({
                "mAP": MultilabelAveragePrecision(num_labels=num_classes, average="macro"),
                "auroc": MultilabelAUROC(num_labels=num_classes, average="macro"),
            })
            for stage in ("val", "test")
        })

    def _load_backbone(self, checkpoint: str) -> None:
        from models.registry import get_entry, read_state_dict

        state = read_state_dict(checkpoint)
        entry = get_entry(self.hparams.model)
        if entry.state_dict_filter is not None:
            state = entry.state_dict_filter(state)
        own = self.model.state_dict()
        mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
        for key in mismatched:  # a new head for a new label set
            del state[key]
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - set(mismatched):
            raise ValueError(f"{checkpoint}: keys do not match {self.hparams.model} "
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

    def _mixup(self, spec: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = self.hparams.mixup_alpha
        lam = torch.distributions.Beta(alpha, alpha).sample((spec.shape[0],)).to(spec.device)
        lam = torch.maximum(lam, 1 - lam)
        perm = torch.randperm(spec.shape[0], device=spec.device)
        mix = lambda x: lam.view(-1, *[1] * (x.dim() - 1)) * x + (1 - lam.view(-1, *[1] * (x.dim() - 1))) * x[perm]
        return mix(spec), mix(target)

    def _shared_step(self, batch: Dict[str, Any], stage: str) -> torch.Tensor:
        spec = self.frontend(batch["audio"])
        target = batch["target"]
        if stage == "train" and self.hparams.mixup_alpha > 0:
            spec, target = self._mixup(spec, target)
        logits, _ = self.model(spec)
        loss = self.loss(logits, target)
        self.log(f"{stage}/loss", loss, prog_bar=stage == "train", on_step=stage == "train", on_epoch=True,
                 batch_size=spec.shape[0], sync_dist=stage != "train")
        if stage in self.metrics:
            for metric in self.metrics[stage].values():
                metric.update(logits.float(), batch["target"].long())
        return loss

    def training_step(self, batch: Dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Dict[str, Any], batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def _log_metrics(self, stage: str) -> None:
        for name, metric in self.metrics[stage].items():
            value = metric.compute()
            self.log(f"{stage}/{name}", value, prog_bar=name == "mAP")
            if name == "auroc":
                self.log(f"{stage}/d_prime", math.sqrt(2.0) * torch.special.ndtri(value.clamp(1e-6, 1 - 1e-6)))
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: Dict[str, Any], batch_idx: int) -> Dict[str, Any]:
        return {"name": list(batch["name"]), "probs": torch.sigmoid(self(batch["audio"])).cpu()}

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        warmup = self.hparams.warmup_epochs
        if warmup <= 0:
            return optimizer
        schedule = lambda epoch: math.exp(-5.0 * (1.0 - epoch / warmup) ** 2) if epoch < warmup else 1.0
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)}
