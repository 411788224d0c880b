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


def exp_warmup_cosine(step: float, warmup: float, flat_until: float, total: float, floor: float = 1e-5) -> float:
    """The DCASE'24 Task 4 baseline (DESED_task ``ExponentialWarmup`` with annealing): exponential warm-up over
    ``warmup`` units, 1 until ``flat_until``, then a quarter cosine ``max(floor, cos(pi / 2 * p))`` with ``p`` going
    from 0 at ``flat_until`` to 1 at ``total`` (``floor`` = min_lr / max_lr = 1e-8 / 1e-3; it holds after ``total``)."""
    if step >= flat_until:
        progress = (step - flat_until) / max(1e-12, total - flat_until)
        return max(floor, math.cos(0.5 * math.pi * progress))
    return exp_rampup(step, warmup)


def linear_warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then a half cosine from 1 to 0 at ``total_steps`` (the
    ``get_cosine_schedule_with_warmup`` of Hugging Face transformers that PretrainedSED trains with); 0 after."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))
