"""Device impulse response (DIR) augmentation (Morocutti et al., EUSIPCO 2023, arXiv 2305.07499).

Clips recorded with the reference device 'a' are convolved with the impulse response of another microphone
(the 66 MicIRP responses in CP-JKU's setup) to simulate unseen recording devices. Applied on the waveform at the
pipeline rate, before time rolling and the frontend.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from datamodules.format.audio_io import read_audio_file, resample

IR_EXTENSIONS = (".wav", ".flac")
DeviceIds = Union[torch.Tensor, Sequence[Union[int, str]]]


def find_impulse_responses(folder: str, extensions: Sequence[str] = IR_EXTENSIONS) -> List[str]:
    """Audio files under ``folder`` (recursively) with one of ``extensions`` (any case), sorted by path."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"impulse-response folder {folder!r} does not exist")
    exts = tuple(e.lower() for e in extensions)
    paths = [os.path.join(root, f) for root, _, files in os.walk(folder) for f in files if f.lower().endswith(exts)]
    if not paths:
        raise FileNotFoundError(f"no {'/'.join(exts)} files under {folder!r}")
    return sorted(paths)


def load_impulse_responses(folder: str, sample_rate: int) -> List[torch.Tensor]:
    """Reads every impulse response under ``folder`` (sorted by path) as mono float32 at ``sample_rate``."""
    irs = []
    for path in find_impulse_responses(folder):
        wave, rate = read_audio_file(path)
        irs.append(torch.from_numpy(np.ascontiguousarray(resample(wave, rate, sample_rate), dtype=np.float32)))
    return irs


def convolve_truncated(x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Full linear convolution of each row of ``x`` (N, n) with the matching row of ``h`` (N, L), first n samples.

    ``out[i, t] = sum_k h[i, k] x[i, t - k]`` for ``t < n``; computed by FFT (zero padding of ``h`` changes nothing).
    """
    n, length = x.shape[-1], h.shape[-1]
    size = n + length - 1
    dtype = torch.promote_types(x.dtype, torch.float32)
    spec = torch.fft.rfft(x.to(dtype), n=size) * torch.fft.rfft(h.to(device=x.device, dtype=dtype), n=size)
    return torch.fft.irfft(spec, n=size)[..., :n].to(x.dtype)


class DeviceImpulseResponse(nn.Module):
    """Convolves device-'a' examples of a waveform batch with a random device impulse response.

    Per example: a uniform ``u`` and an index ``k`` (uniform over the responses) are drawn from torch's global CPU
    generator (``torch.rand(B)`` then ``torch.randint(K, (B,))``); examples whose device is ``target_device`` and
    ``u < p`` are replaced by ``(x * h_k)[:n]`` (full convolution truncated to the input length, no
    renormalisation). Other examples, and every example in eval mode, pass unchanged.

    Args:
        ir_dir: Folder of impulse responses (wav/flac, any rates; read recursively and sorted by path).
        sample_rate: Rate of the waveforms the module sees; the responses are resampled to it.
        p: Probability of convolving a device-'a' example (CP-JKU's DCASE'23 setting: 0.6).
        target_device: The device id that means 'a', as it appears in the ``devices`` passed to ``forward``
            (a name, or an integer index such as 0 in the alphabetical a, b, c, s1, ... encoding).
        impulse_responses: The responses as 1-D tensors at ``sample_rate``, instead of ``ir_dir``.
    """

    def __init__(
        self,
        ir_dir: Optional[str] = None,
        sample_rate: int = 32000,
        p: float = 0.6,
        target_device: Union[int, str] = "a",
        impulse_responses: Optional[Sequence[torch.Tensor]] = None,
    ) -> None:
        super().__init__()
        if (ir_dir is None) == (impulse_responses is None):
            raise ValueError("pass exactly one of ir_dir and impulse_responses")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        irs = load_impulse_responses(ir_dir, sample_rate) if ir_dir is not None else \
            [torch.as_tensor(h, dtype=torch.float32).reshape(-1) for h in impulse_responses]
        if not irs:
            raise ValueError("no impulse responses given")
        self.ir_dir, self.sample_rate, self.p, self.target_device = ir_dir, sample_rate, float(p), target_device
        longest = max(h.numel() for h in irs)
        bank = torch.zeros(len(irs), longest)
        for i, h in enumerate(irs):
            bank[i, : h.numel()] = h
        self.register_buffer("bank", bank, persistent=False)

    @property
    def num_responses(self) -> int:
        return self.bank.shape[0]

    def target_mask(self, devices: DeviceIds, batch: int) -> torch.Tensor:
        """(B,) bool CPU tensor: which examples come from ``target_device``."""
        if isinstance(devices, torch.Tensor):
            if isinstance(self.target_device, str):
                raise TypeError(f"devices is a tensor of ids but target_device is the name {self.target_device!r}; "
                                "pass its integer id")
            mask = devices.reshape(-1).cpu() == self.target_device
        else:
            mask = torch.tensor([d == self.target_device for d in devices], dtype=torch.bool)
        if mask.numel() != batch:
            raise ValueError(f"got {mask.numel()} device ids for a batch of {batch}")
        return mask

    def forward(self, wave: torch.Tensor, devices: DeviceIds) -> torch.Tensor:
        """(B, n) or (B, 1, n) waveforms and their B device ids -> augmented waveforms of the same shape."""
        if not self.training or self.p == 0.0:
            return wave
        if not (wave.dim() == 2 or (wave.dim() == 3 and wave.shape[1] == 1)):
            raise ValueError(f"expected (B, n) or (B, 1, n) waveforms, got shape {tuple(wave.shape)}")
        batch = wave.shape[0]
        mask = self.target_mask(devices, batch)
        u = torch.rand(batch)
        index = torch.randint(self.num_responses, (batch,))
        chosen = torch.nonzero(mask & (u < self.p)).flatten()
        if chosen.numel() == 0:
            return wave
        flat = wave.reshape(batch, -1)
        rows = chosen.to(wave.device)
        out = flat.clone()
        out[rows] = convolve_truncated(flat[rows], self.bank[index[chosen].to(self.bank.device)])
        return out.view_as(wave)

    def extra_repr(self) -> str:
        return f"responses={self.num_responses}, sample_rate={self.sample_rate}, p={self.p}, " \
               f"target_device={self.target_device!r}"
