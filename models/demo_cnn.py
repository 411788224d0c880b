"""A small CNN tagger for the demo task and tests (not a published model)."""
from __future__ import annotations

import torch
from torch import nn

from models.registry import register_model


class DemoCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU-pool) and a linear head on (B, 1, F, T) spectrograms.

    Args:
        num_classes: Output classes.
        channels: Channels of the four blocks' first conv.
        dropout: Dropout before the head.
    """

    def __init__(self, num_classes: int = 10, channels: int = 32, dropout: float = 0.2) -> None:
        super().__init__()
        widths = [1, channels, channels * 2, channels * 4, channels * 4]
        blocks = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2, ceil_mode=True)]
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, F, T) -> (logits (B, num_classes), embedding (B, 4 * channels))."""
        h = self.features(x)
        embedding = h.mean(dim=(2, 3))
        return self.classifier(self.dropout(embedding)), embedding


register_model(
    "demo_cnn",
    DemoCNN,
    frontend="efficientat_mel",
    frontend_kwargs={"n_mels": 64},
    input_shape=(1, 1, 64, 200),
    description="4-block CNN for the generated demo data",
    num_classes=10,
)
