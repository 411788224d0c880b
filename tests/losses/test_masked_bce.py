"""Masked BCE against a hand computation."""
import math

import pytest
import torch

from losses.masked_bce import MaskedBCELoss, masked_bce


def _bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_masked_entries_do_not_count():
    probs = torch.tensor([[0.9, 0.2, 0.6], [0.3, 0.5, 0.99]])
    target = torch.tensor([[1.0, 0.0, 0.7], [0.0, 1.0, 0.0]])
    mask = torch.tensor([[True, False, True], [True, True, False]])
    known = [(0.9, 1.0), (0.6, 0.7), (0.3, 0.0), (0.5, 1.0)]
    total = sum(_bce(p, y) for p, y in known)
    assert masked_bce(probs, target, mask, logits=False, normalize="valid").item() == pytest.approx(total / 4)
    assert masked_bce(probs, target, mask, logits=False, normalize="all").item() == pytest.approx(total / 6)
    # "all" equals an unmasked BCE where masked predictions and targets are zeroed (the DCASE baselines)
    zeroed = torch.nn.functional.binary_cross_entropy(probs * mask, target * mask)
    assert masked_bce(probs, target, mask, logits=False).item() == pytest.approx(zeroed.item(), rel=1e-6)
    logits = torch.logit(probs)
    assert MaskedBCELoss(normalize="valid")(logits, target, mask).item() == pytest.approx(total / 4, rel=1e-5)


def test_class_mask_broadcasts_over_frames():
    probs, target = torch.rand(2, 3, 5) * 0.98 + 0.01, torch.rand(2, 3, 5)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    expanded = mask.unsqueeze(-1).expand(-1, -1, 5)
    a = masked_bce(probs, target, mask.unsqueeze(-1), logits=False, normalize="valid")
    b = torch.nn.functional.binary_cross_entropy(probs[expanded], target[expanded])
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


def test_shape_mismatch_and_bad_normalize_raise():
    with pytest.raises(ValueError, match="differ in shape"):
        masked_bce(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="normalize"):
        masked_bce(torch.zeros(2, 3), torch.zeros(2, 3), normalize="mean")
