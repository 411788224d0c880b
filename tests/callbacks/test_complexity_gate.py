"""The DCASE Task 1 complexity gate: figures, messages, and a tiny Trainer run."""
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

import models
from callbacks.complexity_gate import ComplexityGate, check_complexity


def test_baseline_passes_in_fp16():
    report = check_complexity(models.create_model("cp_mobile_dcase24"), (1, 1, 256, 65), "fp16", "cp_mobile_dcase24")
    assert (report.params, report.param_bytes, report.macs) == (61_148, 122_296, 29_419_156)
    assert report.violations == []


def test_grn_model_needs_int8():
    model = models.create_model("cp_mobile_grn_dcase23")
    assert check_complexity(model, (1, 1, 256, 64), "int8").param_bytes == 126_952
    with pytest.raises(ValueError, match=r"'cp_mobile_grn_dcase23'.*253,904 B.*128,000 B"):
        check_complexity(model, (1, 1, 256, 64), "fp16", name="cp_mobile_grn_dcase23")


def test_mac_limit_names_figure_and_limit():
    model = models.create_model("cp_mobile_grn_dcase23")
    with pytest.raises(ValueError, match=r"31,684,192 MACs.*30,000,000"):
        check_complexity(model, (1, 1, 256, 65), "int8")
    report = check_complexity(model, (1, 1, 256, 65), "int8", raise_on_violation=False)
    assert len(report.violations) == 1


def test_macs_are_per_clip():
    model = models.create_model("cp_mobile_dcase24")
    assert check_complexity(model, (2, 1, 256, 65)).macs == 29_419_156


class _Task(pl.LightningModule):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def training_step(self, batch, _):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x)[0], y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _trainer(tmp_path, gate):
    return pl.Trainer(max_steps=1, logger=CSVLogger(str(tmp_path)), callbacks=[gate], enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


def _loader(frames):
    data = TensorDataset(torch.randn(2, 1, 256, frames), torch.tensor([0, 1]))
    return DataLoader(data, batch_size=2)


@pytest.mark.slow
def test_callback_passes_baseline_and_logs(tmp_path):
    gate = ComplexityGate(input_shape=(1, 1, 256, 65), precision="fp16")
    _trainer(tmp_path, gate).fit(_Task(models.create_model("cp_mobile_dcase24")), _loader(65))
    assert gate.report.param_bytes == 122_296 and gate.report.macs == 29_419_156
    logged = next(tmp_path.rglob("metrics.csv")).read_text()
    assert "complexity/macs" in logged and "29419156" in logged


@pytest.mark.slow
def test_callback_stops_an_oversized_model(tmp_path):
    task = _Task(models.create_model("cp_mobile_grn_dcase23"))
    task.model_name = "cp_mobile_grn_dcase23"
    gate = ComplexityGate(input_shape=(1, 1, 256, 64), precision="fp16")
    with pytest.raises(ValueError, match=r"'cp_mobile_grn_dcase23'.*exceeds the limit of 128,000 B"):
        _trainer(tmp_path, gate).fit(task, _loader(64))
    assert gate.report is None


def test_callback_rejects_unknown_precision():
    with pytest.raises(ValueError):
        ComplexityGate(precision="int4")
