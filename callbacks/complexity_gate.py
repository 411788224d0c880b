"""The DCASE Task 1 complexity limits as a check and a Lightning callback.

A submission's network may use at most 128,000 bytes of parameter memory at its deployed precision and
30,000,000 multiply-accumulates (torchinfo's mult-adds) for one 1 s clip. The DCASE'24 baseline (61,148 parameters,
29,419,156 MACs) passes in fp16 (122,296 bytes); the DCASE'23 CP-Mobile with GRN (126,952 parameters) only in int8.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_info
from torch import nn

from models.complexity import count_macs, count_params

MAX_PARAM_BYTES = 128_000
MAX_MACS = 30_000_000
BYTES_PER_PARAM: Dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}


@dataclass(frozen=True)
class ComplexityReport:
    """Complexity of one network for one clip at its deployed precision."""

    model: str
    params: int
    precision: str
    param_bytes: int
    macs: int
    input_shape: Tuple[int, ...]
    max_param_bytes: int
    max_macs: int

    @property
    def violations(self) -> list[str]:
        """One sentence per exceeded limit (empty when the model is within both)."""
        found = []
        if self.param_bytes > self.max_param_bytes:
            found.append(f"parameter memory {self.param_bytes:,} B ({self.params:,} params at {self.precision}) "
                         f"exceeds the limit of {self.max_param_bytes:,} B")
        if self.macs > self.max_macs:
            found.append(f"{self.macs:,} MACs per clip (input {list(self.input_shape)}) exceed the limit of "
                         f"{self.max_macs:,}")
        return found

    def raise_if_violated(self) -> None:
        """Raises ``ValueError`` naming the model, each exceeded figure and its limit."""
        if self.violations:
            raise ValueError(f"model {self.model!r} is over the complexity limits: " + "; ".join(self.violations))

    def metrics(self) -> Dict[str, float]:
        """Loggable figures under ``complexity/``."""
        return {"complexity/params": float(self.params), "complexity/param_bytes": float(self.param_bytes),
                "complexity/macs": float(self.macs)}

    def __str__(self) -> str:
        return (f"{self.model}: {self.params:,} params = {self.param_bytes:,} B at {self.precision} "
                f"(limit {self.max_param_bytes:,}), {self.macs:,} MACs per clip (limit {self.max_macs:,})")


def check_complexity(
    model: nn.Module,
    input_shape: Sequence[int],
    precision: str = "fp16",
    name: Optional[str] = None,
    max_param_bytes: int = MAX_PARAM_BYTES,
    max_macs: int = MAX_MACS,
    convention: str = "torchinfo",
    raise_on_violation: bool = True,
) -> ComplexityReport:
    """Measures ``model`` and, by default, raises when it exceeds a limit.

    Args:
        model: The network alone (no frontend); it is measured on a CPU copy, so its device and mode don't matter.
        input_shape: Its input for one clip, batch included (e.g. (1, 1, 256, 65)); MACs are divided by the batch.
        precision: Deployed parameter precision: "fp32", "fp16", "bf16" or "int8".
        name: Model name for messages (default: its class name).
        max_param_bytes: Parameter-memory limit in bytes.
        max_macs: MAC limit per clip.
        convention: MAC convention of :func:`models.complexity.count_macs`.
        raise_on_violation: Raise ``ValueError`` naming the model, the figure and the limit.

    Returns:
        The report.
    """
    if precision not in BYTES_PER_PARAM:
        raise ValueError(f"precision must be one of {sorted(BYTES_PER_PARAM)}, got {precision!r}")
    shape = tuple(int(s) for s in input_shape)
    probe = copy.deepcopy(model).cpu().float()
    params = count_params(probe)
    report = ComplexityReport(
        model=name or type(model).__name__,
        params=params,
        precision=precision,
        param_bytes=params * BYTES_PER_PARAM[precision],
        macs=count_macs(probe, shape, convention) // shape[0],
        input_shape=shape,
        max_param_bytes=int(max_param_bytes),
        max_macs=int(max_macs),
    )
    if raise_on_violation:
        report.raise_if_violated()
    return report


class ComplexityGate(pl.Callback):
    """Checks ``pl_module.<model_attr>`` against the limits when fitting or testing starts, and logs the figures.

    Raises ``ValueError`` (stopping the run before any training step) when the network is over a limit.

    Args:
        input_shape: Network input for one 1 s clip, batch 1 (the DCASE'24 baseline: (1, 1, 256, 65)).
        precision: Deployed parameter precision ("fp16": 2 B/param, "int8": 1 B/param, ...).
        max_param_bytes: Parameter-memory limit in bytes.
        max_macs: MAC limit per clip.
        model_attr: Attribute of the LightningModule holding the network.
        model_name: Name for messages (default: the module's ``model_name`` attribute, else the class name).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 1, 256, 65),
        precision: str = "fp16",
        max_param_bytes: int = MAX_PARAM_BYTES,
        max_macs: int = MAX_MACS,
        model_attr: str = "model",
        model_name: Optional[str] = None,
    ) -> None:
        super().__init__()
        if precision not in BYTES_PER_PARAM:
            raise ValueError(f"precision must be one of {sorted(BYTES_PER_PARAM)}, got {precision!r}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.precision, self.max_param_bytes, self.max_macs = precision, int(max_param_bytes), int(max_macs)
        self.model_attr, self.model_name = model_attr, model_name
        self.report: Optional[ComplexityReport] = None

    def check(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> ComplexityReport:
        """Measures, logs to every logger (step 0) and raises on violation; cached after the first call."""
        if self.report is None:
            network = getattr(pl_module, self.model_attr, None)
            if not isinstance(network, nn.Module):
                raise AttributeError(f"{type(pl_module).__name__} has no network at .{self.model_attr}")
            name = self.model_name or getattr(pl_module, "model_name", None) or type(network).__name__
            report = check_complexity(network, self.input_shape, self.precision, name, self.max_param_bytes,
                                      self.max_macs, raise_on_violation=False)
            rank_zero_info(f"Complexity: {report}")
            for logger in trainer.loggers:
                logger.log_metrics(report.metrics(), step=0)
            report.raise_if_violated()
            self.report = report
        return self.report

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer, pl_module)
