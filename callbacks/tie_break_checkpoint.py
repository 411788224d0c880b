"""``ModelCheckpoint`` that breaks ties of the monitored metric with a second metric.

A metric that stays flat for several epochs (SED's ``val/psds1`` is exactly 0 until the detector finds events at
the 0.7 intersection criteria, often for the whole of a short run) makes the plain callback keep the first epoch:
a later epoch only replaces it when strictly better. Here an epoch with an equal monitored value replaces a kept
checkpoint when its ``tie_break_monitor`` is strictly better (e.g. a lower ``val/loss``).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Literal, Optional

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint


class TieBreakCheckpoint(ModelCheckpoint):
    """Keeps the top-k checkpoints by ``monitor``, then by ``tie_break_monitor`` among equal ``monitor`` values.

    Takes every argument of :class:`~pytorch_lightning.callbacks.ModelCheckpoint`, plus:

    Args:
        tie_break_monitor: Logged metric compared when the ``monitor`` values are equal. An epoch without it never
            wins a tie, and a kept checkpoint without it loses every tie.
        tie_break_mode: ``"min"`` (e.g. a loss) or ``"max"`` (e.g. the teacher's PSDS).
    """

    def __init__(self, *args: Any, tie_break_monitor: str = "val/loss",
                 tie_break_mode: Literal["min", "max"] = "min", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if tie_break_mode not in ("min", "max"):
            raise ValueError(f"tie_break_mode must be 'min' or 'max', got {tie_break_mode!r}")
        self.tie_break_monitor = tie_break_monitor
        self.tie_break_mode = tie_break_mode
        self.tie_break_scores: Dict[str, float] = {}  # checkpoint path -> its tie-break value

    def _secondary(self, trainer: "pl.Trainer") -> float:
        """This epoch's tie-break value; the worst possible one when it was not logged (or is NaN)."""
        value = trainer.callback_metrics.get(self.tie_break_monitor)
        value = float(value) if value is not None else math.nan
        if math.isnan(value):
            return math.inf if self.tie_break_mode == "min" else -math.inf
        return value

    def _better(self, a: float, b: Optional[float]) -> bool:
        if b is None:
            return True
        return a < b if self.tie_break_mode == "min" else a > b

    def check_monitor_top_k(self, trainer: "pl.Trainer", current: Optional[torch.Tensor] = None) -> bool:
        if super().check_monitor_top_k(trainer, current):
            return True
        if current is None or self.save_top_k == -1 or not self.kth_best_model_path:
            return False
        kth = self.best_k_models[self.kth_best_model_path]
        tie = bool(current == kth) and self._better(self._secondary(trainer),
                                                     self.tie_break_scores.get(self.kth_best_model_path))
        return trainer.strategy.reduce_boolean_decision(tie)

    def _update_best_and_save(self, current: torch.Tensor, trainer: "pl.Trainer",
                              monitor_candidates: Dict[str, torch.Tensor]) -> None:
        super()._update_best_and_save(current, trainer, monitor_candidates)
        new_path = next(reversed(self.best_k_models))  # the parent inserts the new checkpoint last
        self.tie_break_scores = {path: score for path, score in self.tie_break_scores.items()
                                 if path in self.best_k_models and path != new_path}
        self.tie_break_scores[new_path] = self._secondary(trainer)
        self._order_ties()

    def _order_ties(self) -> None:
        """Best and k-th checkpoint by (monitor, tie-break) instead of by the monitor alone."""
        sign = 1.0 if self.mode == "max" else -1.0
        tie_sign = 1.0 if self.tie_break_mode == "max" else -1.0
        worst = -tie_sign * math.inf

        def rank(path: str):  # larger is better; a checkpoint without a tie-break value ranks last among equals
            return sign * float(self.best_k_models[path]), tie_sign * self.tie_break_scores.get(path, worst)

        self.best_model_path = max(self.best_k_models, key=rank)
        self.best_model_score = self.best_k_models[self.best_model_path]
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        if len(self.best_k_models) == k:
            self.kth_best_model_path = min(self.best_k_models, key=rank)
            self.kth_value = self.best_k_models[self.kth_best_model_path]

    def state_dict(self) -> Dict[str, Any]:
        return {**super().state_dict(), "tie_break_scores": dict(self.tie_break_scores)}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        scores = state_dict.get("tie_break_scores", {})
        self.tie_break_scores = {path: score for path, score in scores.items() if path in self.best_k_models}
