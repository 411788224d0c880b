"""RNG states survive a checkpoint round trip (loaded with weights_only) and reproduce the draws that followed."""
import io
import random

import numpy as np
import torch

from callbacks.rng_state import RNGStateCheckpoint


def _draws() -> tuple:
    return random.random(), float(np.random.standard_normal()), np.random.randint(1 << 30), torch.rand(4).tolist()


def test_restored_states_repeat_the_draws_after_a_checkpoint():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in NumPy's state
    buffer = io.BytesIO()
    torch.save({"callbacks": {"RNGStateCheckpoint": RNGStateCheckpoint().state_dict()}}, buffer)
    expected = _draws()
    assert _draws() != expected  # the generators moved on
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)  # checkpoints must stay loadable without pickled objects
    RNGStateCheckpoint().load_state_dict(checkpoint["callbacks"]["RNGStateCheckpoint"])
    assert _draws() == expected
