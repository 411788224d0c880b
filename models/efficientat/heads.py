"""Classification heads on the last feature map (B, C, F, T) -> (B, classes)."""
from __future__ import annotations

import torch
from torch import nn

HEAD_TYPES = ("mlp", "fully_convolutional", "multihead_attention_pooling")


class MultiHeadAttentionPooling(nn.Module):
    """PSLA-style attention pooling over time with several heads.

    The map is averaged over frequency; one Linear projects every frame to ``2 * num_heads * classes`` values:
    per head an attention track (sigmoid, clamped, normalised over time) and a value track; heads are combined
    with learned weights (initialised to ``1 / num_heads``).

    Args:
        in_dim: Channels of the input map.
        num_classes: Output classes.
        num_heads: Attention heads.
        eps: Clamp of the sigmoid attention away from 0 and 1.
    """

    def __init__(self, in_dim: int, num_classes: int, num_heads: int = 4, eps: float = 1e-7) -> None:
        super().__init__()
        self.num_classes, self.num_heads, self.eps = num_classes, num_heads, eps
        self.head_weight = nn.Parameter(torch.full((1, num_heads, 1), 1.0 / num_heads))
        self.subspace_proj = nn.Linear(in_dim, num_classes * 2 * num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=2).transpose(1, 2)  # (B, T, C)
        b, n, _ = x.shape
        proj = self.subspace_proj(x).reshape(b, n, 2, self.num_heads, self.num_classes).permute(2, 0, 3, 1, 4)
        att, val = proj[0], proj[1]  # (B, heads, T, classes)
        att = torch.sigmoid(att).clamp(self.eps, 1.0 - self.eps)
        att = att / att.sum(dim=2, keepdim=True)
        return ((att * val).sum(dim=2) * self.head_weight).sum(dim=1)


def build_head(
    head_type: str, in_channels: int, last_channel: int, num_classes: int, dropout: float = 0.2, num_heads: int = 4
) -> nn.Module:
    """The classifier module; its child indices match the published ``classifier.*`` keys.

    Args:
        head_type: ``"mlp"``: pool -> Linear(in -> last_channel) -> Hardswish -> Dropout -> Linear;
            ``"fully_convolutional"``: 1x1 conv (no bias) -> BN -> pool;
            ``"multihead_attention_pooling"``: see :class:`MultiHeadAttentionPooling`.
        in_channels: Channels of the last feature map.
        last_channel: Hidden width of the MLP head.
        num_classes: Output classes.
        dropout: Dropout of the MLP head.
        num_heads: Heads of the attention-pooling head.
    """
    if head_type == "mlp":
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
            nn.Linear(in_channels, last_channel),
            nn.Hardswish(),
            nn.Dropout(p=dropout),
            nn.Linear(last_channel, num_classes),
        )
    if head_type == "fully_convolutional":
        return nn.Sequential(
            nn.Conv2d(in_channels, num_classes, kernel_size=1, bias=False),
            nn.BatchNorm2d(num_classes),  # default eps/momentum, unlike the backbone (as published)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(start_dim=1),
        )
    if head_type == "multihead_attention_pooling":
        return MultiHeadAttentionPooling(in_channels, num_classes, num_heads=num_heads)
    raise ValueError(f"head_type must be one of {HEAD_TYPES}, got {head_type!r}")
