"""TieBreakCheckpoint: equal monitored values are decided by the tie-break metric; otherwise the monitor decides."""
import os

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from callbacks.tie_break_checkpoint import TieBreakCheckpoint


class Scripted(pl.LightningModule):
    """Logs given ``val/psds1`` and ``val/loss`` values, one pair per epoch."""

    def __init__(self, psds, loss) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.psds, self.loss = psds, loss

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        epoch = self.current_epoch
        self.log("val/psds1", float(self.psds[epoch]))
        if self.loss[epoch] is not None:
            self.log("val/loss", float(self.loss[epoch]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _best_epoch(tmp_path, psds, loss, **kwargs) -> int:
    loader = DataLoader(TensorDataset(torch.ones(2, 1)), batch_size=2)
    checkpoint = TieBreakCheckpoint(dirpath=str(tmp_path), filename="best", monitor="val/psds1", mode="max", **kwargs)
    trainer = pl.Trainer(max_epochs=len(psds), accelerator="cpu", logger=False, callbacks=[checkpoint],
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(Scripted(psds, loss), loader, loader)
    assert os.listdir(tmp_path) == ["best.ckpt"]
    assert checkpoint.best_model_path == str(tmp_path / "best.ckpt")
    return torch.load(checkpoint.best_model_path, weights_only=True)["epoch"]


@pytest.mark.slow
@pytest.mark.parametrize("psds, loss, expected", [
    ([0.0, 0.0, 0.0, 0.0], [0.9, 0.8, 0.7, 0.6], 3),  # PSDS 0 throughout (a short SED run): the lowest loss wins
    ([0.0, 0.0, 0.0, 0.0], [0.9, 0.5, 0.7, 0.5], 1),  # an equal loss does not replace the kept epoch
    ([0.1, 0.3, 0.2, 0.2], [0.9, 0.8, 0.1, 0.0], 1),  # PSDS differs: PSDS decides, whatever the loss
    ([0.2, 0.2, 0.0, 0.2], [0.5, 0.9, 0.1, 0.4], 3),  # ties only against the kept value
    ([0.0, 0.0, 0.0, 0.0], [None, 0.9, None, 0.8], 3),  # epochs without the tie-break metric never win a tie
])
def test_ties_go_to_the_better_tie_break_metric(tmp_path, psds, loss, expected):
    assert _best_epoch(tmp_path, psds, loss) == expected


@pytest.mark.slow
def test_max_mode_tie_break(tmp_path):
    assert _best_epoch(tmp_path, [0.0, 0.0, 0.0], [0.1, 0.3, 0.2], tie_break_monitor="val/loss",
                       tie_break_mode="max") == 1


def test_tie_break_scores_survive_a_checkpoint(tmp_path):
    checkpoint = TieBreakCheckpoint(dirpath=str(tmp_path), monitor="val/psds1", mode="max")
    checkpoint.best_k_models = {"a.ckpt": torch.tensor(0.0)}
    checkpoint.tie_break_scores = {"a.ckpt": 0.25, "gone.ckpt": 0.1}
    restored = TieBreakCheckpoint(dirpath=str(tmp_path), monitor="val/psds1", mode="max")
    restored.load_state_dict(checkpoint.state_dict())
    assert restored.tie_break_scores == {"a.ckpt": 0.25}


@pytest.mark.bad_input
def test_bad_tie_break_mode():
    with pytest.raises(ValueError, match="tie_break_mode must be 'min' or 'max', got 'lowest'"):
        TieBreakCheckpoint(monitor="val/psds1", tie_break_mode="lowest")
