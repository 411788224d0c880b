"""Per-epoch attention-temperature schedule of dynamic MobileNets (DyMN)."""
from __future__ import annotations

import pytorch_lightning as pl


def dymn_temperature(epoch: int, t_max: float = 30.0) -> float:
    """tau = max(T_max - e, 1 + 0.02 (T_max - 1) - 0.02 e, 1): fast linear decay, then a slow tail to 1."""
    return max(t_max - epoch, 1.0 + 0.02 * (t_max - 1.0) - 0.02 * epoch, 1.0)


class DyMNTemperature(pl.Callback):
    """Sets the DyMN attention temperature at every training epoch start (and logs it as ``train/temperature``).

    Training from ImageNet weights uses ``t_max=30``; fine-tuning from AudioSet weights keeps 1
    (``t_max=1`` gives a constant 1).

    Args:
        t_max: Temperature at epoch 0.
    """

    def __init__(self, t_max: float = 30.0) -> None:
        super().__init__()
        self.t_max = t_max

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = getattr(pl_module, "model", pl_module)
        if not hasattr(model, "set_temperature"):
            raise TypeError(f"{type(model).__name__} has no set_temperature(); DyMNTemperature needs a DyMN model")
        temperature = dymn_temperature(trainer.current_epoch, self.t_max)
        model.set_temperature(temperature)
        pl_module.log("train/temperature", temperature, on_epoch=True, on_step=False)
