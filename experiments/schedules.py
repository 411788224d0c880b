"""Learning-rate schedules as multipliers of the peak rate (pure functions of the epoch or step)."""
from __future__ import annotations

import math


def exp_rampup(progress: float, length: float) -> float:
    """exp(-5 (1 - progress / length)^2) until ``length``, then 1 (the DCASE/EfficientAT warm-up curve)."""
    if length <= 0 or progress >= length:
        return 1.0
    return math.exp(-5.0 * (1.0 - max(0.0, progress) / length) ** 2)


def exp_warmup_linear_down(epoch: int, warmup: int, rampdown_start: int, rampdown_length: int,
                           last_value: float) -> float:
    """EfficientAT: exp(-5 (1 - e / warmup)^2) while e < warmup, 1 until ``rampdown_start``, then linear to
    ``last_value`` over ``rampdown_length`` epochs, and ``last_value`` after that."""
    if epoch < warmup:
        return exp_rampup(epoch, warmup)
    if epoch < rampdown_start:
        return 1.0
    if epoch < rampdown_start + rampdown_length:
        return 1.0 - (1.0 - last_value) * (epoch - rampdown_start) / rampdown_length
    return last_value


def exp_warmup_cosine(step: int, warmup: int, flat_until: int, total: int, last_value: float = 0.0) -> float:
    """Exponential warm-up over ``warmup`` units, flat until ``flat_until``, cosine to ``last_value`` at ``total``."""
    if step < warmup:
        return exp_rampup(step, warmup)
    if step < flat_until:
        return 1.0
    progress = min(1.0, (step - flat_until) / max(1, total - flat_until))
    return last_value + (1.0 - last_value) * 0.5 * (1.0 + math.cos(math.pi * progress))
