"""Writes a DCASE Task 1 submission at the end of ``sonolab test``.

Files in ``output_dir`` (relative paths resolve against the trainer's log directory)::

    output.csv          tab-separated: filename (without "audio/"), scene_label (argmax), one softmax-probability
                        column per class, named by class, in label order; one row per clip, sorted by file name
                        (under DDP the ranks' rows are gathered and the sampler's padded repeats dropped)
    model_state_dict.pt the state dict of the evaluated network: the fp32 ``model``, the fp16 copy when
                        ``test_precision`` is fp16, or the :class:`~experiments.asc.DeviceEnsemble` (general +
                        per-device networks, DCASE'25)
    info.json           model name, parameters, parameter bytes at the deployed precision, MACs per 1 s clip,
                        test precision, every ``test/*`` metric and ``validation``: the set the checkpoints were
                        selected on (``ASCDataModule.validation_source``, e.g. "the test set tau_test.h5", as the
                        DCASE'24 baseline does, or a held-out part of the training split)

The int8 network is not saved as a state dict (its packed parameters are not portable); info.json still names it.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Dict, List, Optional, Tuple

import pytorch_lightning as pl
import torch

from callbacks.complexity_gate import check_complexity
from datamodules.datasets import SKIPPED, drop_skipped
from metrics.clip_outputs import all_gather_objects
from models.registry import get_entry


def strip_audio_prefix(name: str) -> str:
    """``audio/airport-...-a.wav`` -> ``airport-...-a.wav`` (the submission's file names)."""
    return name[len("audio/"):] if name.startswith("audio/") else name


def write_output_csv(path: str, names: List[str], probs: torch.Tensor, class_names: List[str]) -> None:
    """The ``output.csv`` table of a submission (probabilities with 6 decimals)."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(["filename", "scene_label", *class_names])
        for name, row in zip(names, probs.tolist()):
            best = max(range(len(row)), key=row.__getitem__)
            writer.writerow([strip_audio_prefix(name), class_names[best], *(f"{p:.6f}" for p in row)])


class ASCSubmissionWriter(pl.Callback):
    """Collects test-step logits and writes ``output.csv``, the state dict and ``info.json`` at test end.

    Expects the task's ``test_step`` to return ``{"logits": (B, C)}`` and batches with ``name``.

    Args:
        output_dir: Submission folder.
    """

    def __init__(self, output_dir: str = "submission") -> None:
        super().__init__()
        self.output_dir = output_dir
        self.written_dir: Optional[str] = None
        self._names: List[str] = []
        self._probs: List[torch.Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._names, self._probs = [], []

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        rows = drop_skipped({"name": list(batch["name"]), "logits": outputs["logits"]}, batch.get(SKIPPED))
        self._names.extend(rows["name"])  # silent placeholders of undecodable clips (eval_on_decode_error: skip) drop
        self._probs.append(rows["logits"].float().softmax(dim=-1).cpu())

    def _resolve(self, trainer: pl.Trainer) -> str:
        if os.path.isabs(self.output_dir):
            return self.output_dir
        return os.path.join(trainer.log_dir or ".", self.output_dir)

    def _gathered(self, num_classes: int) -> Tuple[List[str], torch.Tensor]:
        """Every rank's (names, probabilities), one row per clip (first occurrence), sorted by name."""
        probs = torch.cat(self._probs) if self._probs else torch.zeros(0, num_classes)
        rows: Dict[str, torch.Tensor] = {}
        for names, part in all_gather_objects((list(self._names), probs)):  # a collective: every rank calls it
            for name, row in zip(names, part):
                rows.setdefault(name, row)
        names = sorted(rows)
        return names, torch.stack([rows[n] for n in names]) if names else probs[:0]

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        class_names = list(getattr(trainer.datamodule, "class_names", None) or pl_module.metrics["test"].classes)
        names, probs = self._gathered(len(class_names))
        if not trainer.is_global_zero:
            return
        out = self._resolve(trainer)
        os.makedirs(out, exist_ok=True)
        write_output_csv(os.path.join(out, "output.csv"), names, probs, class_names)
        deployed = pl_module.deployed_network() if hasattr(pl_module, "deployed_network") else pl_module.model
        precision = pl_module.hparams.get("test_precision", "fp32")
        if precision != "int8" or deployed is pl_module.model:
            torch.save(deployed.state_dict(), os.path.join(out, "model_state_dict.pt"))
        info = self._info(trainer, pl_module, precision)
        with open(os.path.join(out, "info.json"), "w") as f:
            json.dump(info, f, indent=2, sort_keys=True)
        self.written_dir = out
        print(f"submission of {len(names)} clips written to {out}")

    @staticmethod
    def _info(trainer: pl.Trainer, pl_module: pl.LightningModule, precision: str) -> Dict[str, Any]:
        name = pl_module.hparams.get("model", type(pl_module.model).__name__)
        try:
            shape = get_entry(name).input_shape
        except KeyError:
            shape = (1, 1, 256, 65)
        report = check_complexity(pl_module.model, shape, precision, name, raise_on_violation=False)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        return {
            "model": name, "params": report.params, "precision": precision, "param_bytes": report.param_bytes,
            "macs": report.macs, "input_shape": list(shape), "within_limits": not report.violations,
            "device_models": sorted((pl_module.hparams.get("device_checkpoints") or {}).keys()),
            "test": {k: v for k, v in sorted(metrics.items()) if not math.isnan(v)},
            "validation": getattr(trainer.datamodule, "validation_source", "unknown"),
        }
