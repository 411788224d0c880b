"""FilterAugment (Nam et al., ICASSP 2022) as used by PretrainedSED and the CP-JKU DCASE'24 system.

A random frequency response, piecewise linear (or piecewise constant) in dB over a few frequency bands, is applied
to every example. The published code multiplies the features it is given by ``10 ** (gain_db / 20)`` whatever they
are: the linear-amplitude mel of the CRNN (a true filter there) and the log-mel / normalised inputs of the
transformers (there a per-bin scaling of the log values). ``mode="multiply"`` reproduces that; ``mode="add"`` adds
the dB curve instead, the same filter for features that are in dB.
"""
from __future__ import annotations

from typing import Literal, Tuple

import torch
from torch import nn

from datamodules.augment.mixing import AugmentInputError


def draw_band_edges(n_freq: int, n_bands: int, min_bandwidth: int) -> torch.Tensor:
    """(n_bands + 1,) increasing bin edges from 0 to ``n_freq``, every band at least ``min_bandwidth`` bins wide.

    ``min_bandwidth`` is lowered until ``n_bands`` such bands fit in ``n_freq`` (the published loop stops one step
    early and then fails in ``randint(0, 0)`` when ``n_bands * min_bandwidth == n_freq + 1``); the ``n_bands - 1``
    inner edges are ``sort(randint(0, n_freq - n_bands * min_bandwidth + 1, (n_bands - 1,)))
    + min_bandwidth * (1, ..., n_bands - 1)``.
    """
    while min_bandwidth > 0 and n_bands * min_bandwidth > n_freq:
        min_bandwidth -= 1
    inner = torch.sort(torch.randint(0, n_freq - n_bands * min_bandwidth + 1, (n_bands - 1,))).values
    inner = inner + torch.arange(1, n_bands) * min_bandwidth
    return torch.cat([torch.zeros(1, dtype=torch.long), inner, torch.tensor([n_freq])])


def band_gains(edges: torch.Tensor, values: torch.Tensor, kind: Literal["linear", "step"]) -> torch.Tensor:
    """Per-bin gains (B, F) from band ``edges`` (n + 1,) and per-example ``values``.

    ``kind="step"``: ``values`` (B, n), band ``i`` takes ``values[:, i]``. ``kind="linear"``: ``values`` (B, n + 1),
    band ``i`` (``L`` bins) runs linearly from ``values[:, i]`` at its first bin to ``values[:, i + 1]`` at its last
    (``torch.linspace(values[:, i], values[:, i + 1], L)``; a one-bin band takes ``values[:, i]``).
    """
    n_freq = int(edges[-1])
    bins = torch.arange(n_freq)
    band = torch.bucketize(bins, edges[1:], right=True)  # edges[band] <= bin < edges[band + 1]
    if kind == "step":
        return values[:, band]
    width = (edges[band + 1] - edges[band]).to(values.dtype)
    position = (bins - edges[band]).to(values.dtype) / (width - 1).clamp(min=1)
    return values[:, band] + (values[:, band + 1] - values[:, band]) * position


class FilterAugment(nn.Module):
    """Random band-wise gains on the frequency axis of (B, C, F, T) features, in training mode only.

    Random draws from torch's global CPU generator, in this order: one coin ``torch.rand(())`` per batch (applied
    when below ``p``); the number of bands ``n`` uniform in ``n_bands`` (inclusive); the band edges
    (:func:`draw_band_edges`, shared by the batch); gains uniform in ``db_range`` per example, ``n + 1`` band-edge
    values (linear) or ``n`` band values (step), ``torch.rand(B, ...)``. With ``n == 1`` the features pass unchanged,
    as in the published code.

    Args:
        p: Probability of filtering a batch (0.8 in PretrainedSED and CP-JKU DCASE'24).
        db_range: (low, high) gain in dB, or a single ``r`` meaning (-r, r).
        n_bands: (low, high) number of bands, both inclusive. The references' ``n_band=(3, 6)`` is
            ``randint``'s half-open range: 3 to 5 bands.
        min_bandwidth: Smallest band in bins (6 in the references; lowered if the bands do not fit).
        kind: ``"linear"`` (the references' 'updated' FilterAugment) or ``"step"`` (piecewise constant).
        mode: ``"multiply"`` by ``10 ** (gain / 20)`` (the references) or ``"add"`` the gain in dB.
    """

    def __init__(
        self,
        p: float = 0.8,
        db_range: float | Tuple[float, float] = (-6.0, 6.0),
        n_bands: Tuple[int, int] = (3, 5),
        min_bandwidth: int = 6,
        kind: Literal["linear", "step"] = "linear",
        mode: Literal["multiply", "add"] = "multiply",
    ) -> None:
        super().__init__()
        low, high = (-abs(float(db_range)), abs(float(db_range))) if isinstance(db_range, (int, float)) \
            else (float(db_range[0]), float(db_range[1]))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if low > high:
            raise ValueError(f"db_range must be (low, high) with low <= high, got {db_range}")
        if not 1 <= n_bands[0] <= n_bands[1]:
            raise ValueError(f"n_bands must be (low, high) with 1 <= low <= high, got {n_bands}")
        if min_bandwidth < 0:
            raise ValueError(f"min_bandwidth must be >= 0, got {min_bandwidth}")
        if kind not in ("linear", "step") or mode not in ("multiply", "add"):
            raise ValueError(f"kind must be 'linear' or 'step' and mode 'multiply' or 'add', got {kind!r}, {mode!r}")
        self.p, self.low, self.high = float(p), low, high
        self.n_bands, self.min_bandwidth = (int(n_bands[0]), int(n_bands[1])), int(min_bandwidth)
        self.kind, self.mode = kind, mode

    def draw_gains(self, batch: int, n_freq: int) -> torch.Tensor:
        """(B, F) CPU gains in dB for one batch (the draws after the coin), or an empty tensor when ``n == 1``."""
        n = int(torch.randint(self.n_bands[0], self.n_bands[1] + 1, ()))
        if n < 2:
            return torch.empty(0)
        edges = draw_band_edges(n_freq, n, self.min_bandwidth)
        values = self.low + (self.high - self.low) * torch.rand(batch, n + 1 if self.kind == "linear" else n)
        return band_gains(edges, values, self.kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, F, T) features -> filtered features of the same shape and dtype."""
        if not self.training or self.p == 0.0:
            return x
        if x.dim() != 4:
            raise AugmentInputError(f"filter augmentation: expected (B, C, F, T) features, got shape "
                                    f"{tuple(x.shape)}")
        if float(torch.rand(())) >= self.p:
            return x
        gains = self.draw_gains(x.shape[0], x.shape[2])
        if gains.numel() == 0:
            return x
        gains = gains.to(device=x.device, dtype=x.dtype)[:, None, :, None]
        return x + gains if self.mode == "add" else x * 10.0 ** (gains / 20.0)

    def extra_repr(self) -> str:
        return f"p={self.p}, db_range=({self.low}, {self.high}), n_bands={self.n_bands}, " \
               f"min_bandwidth={self.min_bandwidth}, kind={self.kind!r}, mode={self.mode!r}"
