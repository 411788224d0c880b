import math

import pytest

from callbacks.dymn_temperature import dymn_temperature
from experiments.schedules import exp_warmup_cosine, exp_warmup_linear_down
from experiments.schedules import linear_warmup_cosine


def test_efficientat_schedule_values():
    f = lambda e: exp_warmup_linear_down(e, warmup=8, rampdown_start=80, rampdown_length=95, last_value=0.01)
    assert f(0) == pytest.approx(math.exp(-5))
    assert f(4) == pytest.approx(math.exp(-5 * 0.25))
    assert f(8) == f(79) == 1.0
    assert f(80 + 95 // 2) == pytest.approx(1 - 0.99 * 47 / 95)
    assert f(175) == f(199) == 0.01


def test_cosine_schedule_values():
    """A quarter cosine after the flat part, floored at min_lr / max_lr = 1e-5 (DESED_task ExponentialWarmup)."""
    f = lambda s: exp_warmup_cosine(s, warmup=50, flat_until=100, total=300)
    assert f(0) == pytest.approx(math.exp(-5)) and f(25) == pytest.approx(math.exp(-5 * 0.25))
    assert f(50) == f(99) == f(100) == 1.0
    assert f(200) == pytest.approx(math.cos(math.pi / 4))
    assert f(299.9) == pytest.approx(math.cos(0.5 * math.pi * 199.9 / 200))
    assert f(300) == f(400) == 1e-5


def test_dymn_temperature_schedule():
    assert dymn_temperature(0) == 30
    assert dymn_temperature(10) == 20
    # the slow tail takes over at 1 + 0.58 - 0.02 e > 30 - e, i.e. from e = 29
    assert dymn_temperature(29) == pytest.approx(1 + 0.58 - 0.58)  # both branches give 1.0 there
    assert dymn_temperature(28) == 2.0
    assert dymn_temperature(100) == 1.0
    assert dymn_temperature(5, t_max=1.0) == 1.0
def test_linear_warmup_cosine_matches_the_transformers_schedule():
    # values of get_cosine_schedule_with_warmup(num_warmup_steps=4, num_training_steps=12), by its formula
    expected = [0.0, 0.25, 0.5, 0.75, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(1, 9)] + [0.0]
    got = [linear_warmup_cosine(step, 4, 12) for step in range(14)]
    assert got == [float(v) for v in expected[:13]] + [0.0]
    assert got[8] == 0.5 and got[12] == 0.0
