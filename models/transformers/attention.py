"""Multi-head attention maths shared by the transformer zoo.

Every attention module of the zoo has a boolean attribute ``sdpa``. When it is true the heads go through
:func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels on GPU, memory-efficient on CPU); when it is
false they go through :func:`plain_attention`, the textbook form (explicit logits, softmax, weighted sum) that the
published code computes. Both give the same numbers to float rounding; tests and ``benchmarks/transformer_speed.py``
compare them with :func:`set_sdpa`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def plain_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor] = None,
                    dropout_p: float = 0.0, scale: Optional[float] = None) -> torch.Tensor:
    """softmax(q k^T * scale + bias) v for (B, H, S, Dh) heads; ``scale`` defaults to Dh^-0.5."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = torch.matmul(q * scale, k.transpose(-2, -1))
    if bias is not None:
        logits = logits + bias
    weights = logits.softmax(dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return torch.matmul(weights, v)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor] = None,
           dropout_p: float = 0.0, scale: Optional[float] = None, sdpa: bool = True) -> torch.Tensor:
    """Attention over (B, H, S, Dh) heads with an optional additive ``bias`` broadcastable to (B, H, S, S).

    Args:
        q: Queries (B, H, S, Dh).
        k: Keys (B, H, S, Dh).
        v: Values (B, H, S, Dh).
        bias: Additive logit bias (float), or ``None``.
        dropout_p: Attention dropout (pass 0.0 in eval mode).
        scale: Logit scale; ``None`` gives Dh^-0.5.
        sdpa: Use PyTorch's fused kernel; ``False`` gives :func:`plain_attention`.
    """
    if sdpa:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=scale)
    return plain_attention(q, k, v, bias=bias, dropout_p=dropout_p, scale=scale)


def set_sdpa(model: nn.Module, enabled: bool) -> int:
    """Switches every attention module of ``model`` between the fused and the plain form.

    Returns:
        The number of attention modules switched (0 means ``model`` has none: a caller comparing the two forms on it
        would compare a model with itself).
    """
    count = 0
    for module in model.modules():
        if isinstance(getattr(module, "sdpa", None), bool):
            module.sdpa = bool(enabled)
            count += 1
    return count
