"""The ASC task: schedule, device routing, a tiny fit above chance, the complexity gate, KD and int8/fp16 tests."""
import os

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from callbacks.complexity_gate import ComplexityGate
from datamodules.asc import ASCDataModule
from datamodules.h5format import AudioH5
from datamodules.teacher import write_teacher_logits
from experiments.asc import DeviceEnsemble, SceneClassification, warmup_cosine
from metrics.asc import DEVICES

pytestmark = pytest.mark.usefixtures("one_thread")

# A small CP-Mobile on a cheap frontend: a few CPU seconds per epoch on the demo scenes.
TINY = dict(
    model_overrides=dict(base_channels=8, channels_multiplier=2.0, n_blocks=[1, 1, 1],
                         strides={"b2": [2, 2], "b3": [2, 2]}),
    frontend_overrides=dict(n_mels=64, n_fft=1024, win_length=1024, hop_length=1000, freqm=0),
)


def datamodule(root: str, **kwargs) -> ASCDataModule:
    args = dict(split_dir=os.path.join(root, "scenes"), batch_size=20, num_workers=0)
    args.update(kwargs)
    return ASCDataModule(os.path.join(root, "scenes_train.h5"), os.path.join(root, "scenes_test.h5"), **args)


def trainer(tmp_path, **kwargs) -> pl.Trainer:
    args = dict(accelerator="cpu", devices=1, logger=pl.loggers.TensorBoardLogger(str(tmp_path), name="asc"),
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0)
    args.update(kwargs)
    return pl.Trainer(**args)


def test_warmup_cosine():
    values = [warmup_cosine(s, 10, 110) for s in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.5) and values[110] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


class Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.tensor(value))

    def forward(self, x):
        return self.value.expand(x.shape[0], 3).clone(), x


def test_device_ensemble_routes_by_device():
    ensemble = DeviceEnsemble(Constant(0.0), {"b": Constant(1.0), "s2": Constant(2.0)})
    devices = torch.tensor([DEVICES.index(d) for d in ("a", "b", "s2", "s5", "b")])
    out = ensemble(torch.zeros(5, 1, 4, 4), devices)
    assert out[:, 0].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="unknown devices"):
        DeviceEnsemble(Constant(0.0), {"zz": Constant(1.0)})


@pytest.mark.slow
def test_tiny_fit_beats_chance(demo_scenes, tmp_path):
    pl.seed_everything(0)
    task = SceneClassification(lr=0.02, warmup_steps=3, mixstyle_p=0.4, dir_dir=os.path.join(demo_scenes, "dirs"),
                               test_precision="fp32", **TINY)
    fit = trainer(tmp_path, max_epochs=5)
    fit.fit(task, datamodule(demo_scenes))
    metrics = fit.callback_metrics
    assert float(metrics["val/macro_acc"]) > 0.25  # chance: 0.1 (10 balanced classes)
    for key in ("val/micro_acc", "val/acc/a", "val/acc/s4", "val/acc/airport", "val/acc/real", "val/acc/unseen"):
        assert key in metrics


@pytest.mark.slow
def test_complexity_gate_passes_in_fit_and_int8_test(demo_scenes, tmp_path):
    gate = ComplexityGate(input_shape=(1, 1, 256, 65), precision="fp16")
    task = SceneClassification(warmup_steps=1, test_precision="int8", calibration_batches=1)
    run = trainer(tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=1, limit_test_batches=1,
                  callbacks=[gate])
    dm = datamodule(demo_scenes, batch_size=4)
    run.fit(task, dm)
    assert gate.report.params == 61_148 and gate.report.macs == 29_419_156 and not gate.report.violations
    run.test(task, dm, verbose=False)
    assert any("quantized" in type(m).__module__ for m in task.deployed_network().modules())
    assert 0.0 <= float(run.callback_metrics["test/macro_acc"]) <= 1.0


@pytest.mark.slow
def test_distillation_and_fp16_test(demo_scenes, tmp_path):
    names = list(AudioH5(os.path.join(demo_scenes, "scenes_train.h5")).names)
    teacher = str(tmp_path / "teacher.h5")
    write_teacher_logits(teacher, names, np.random.default_rng(0).standard_normal((len(names), 10)) * 3)
    task = SceneClassification(warmup_steps=1, test_precision="fp16", **TINY)
    run = trainer(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1, limit_test_batches=2,
                  log_every_n_steps=1)
    dm = datamodule(demo_scenes, teacher_logits=teacher, batch_size=8)
    run.fit(task, dm)
    assert "train/kd_loss" in run.callback_metrics and "train/label_loss" in run.callback_metrics
    run.test(task, dm, verbose=False)
    assert next(task.deployed_network().parameters()).dtype == torch.float16
    assert 0.0 <= float(run.callback_metrics["test/macro_acc"]) <= 1.0
