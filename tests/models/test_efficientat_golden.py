"""Golden-value regression of mn04 and dymn04 outputs (golden/efficientat_outputs.json, rtol 1e-3, atol 1e-4).

The values come from this implementation: fixed seeds, BN statistics calibrated on the input itself (the default
init alone leaves eval-mode activations vanishingly small). Regenerate deliberately after an intended change:
``python tests/models/test_efficientat_golden.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import models  # noqa: F401
from models import create_model

GOLDEN_PATH = Path(__file__).parent / "golden" / "efficientat_outputs.json"
NAMES = ("mn04_as", "dymn04_as")
N_VALUES = 8


def golden_outputs(name: str) -> dict:
    torch.manual_seed(0)
    model = create_model(name)
    torch.manual_seed(1)
    x = torch.randn(2, 1, 64, 100)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average: one pass sets the batch statistics
    with torch.no_grad():
        model.train()
        model(x)
        model.eval()
        logits, embedding, fmaps = model(x, return_fmaps=True)
    return {
        "logits": logits[:, :N_VALUES].tolist(),
        "logits_mean": logits.mean(dim=1).tolist(),
        "embedding": embedding[:, :N_VALUES].tolist(),
        "embedding_mean": embedding.mean(dim=1).tolist(),
        "fmap_means": [f.mean().item() for f in fmaps],
    }


@pytest.mark.parametrize("name", NAMES)
def test_golden_outputs(name: str) -> None:
    expected = json.loads(GOLDEN_PATH.read_text())[name]
    actual = golden_outputs(name)
    for key, value in expected.items():
        torch.testing.assert_close(torch.tensor(actual[key]), torch.tensor(value), rtol=1e-3, atol=1e-4, msg=key)


if __name__ == "__main__":
    GOLDEN_PATH.write_text(json.dumps({n: golden_outputs(n) for n in NAMES}, indent=1) + "\n")
    print(f"wrote {GOLDEN_PATH}")
