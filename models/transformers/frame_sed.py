"""Frame-level sound event detection on top of a transformer-zoo backbone (PretrainedSED's ``PredictionsWrapper``).

One 10 s chunk of 16 kHz audio goes through the backbone's frontend and the backbone, whose native sequence is
brought to 250 frames (40 ms) as the published wrapper does it: a longer sequence is adaptive-average-pooled (BEATs'
496 and ASiT's 497 tokens), a shorter one linearly interpolated (M2D's 62 steps, ``align_corners=False``), one of 250
frames (ATST-F, fPaSST) is kept. An optional bidirectional GRU (the teachers: 2 layers of 2048 units, 4096 features)
follows, then ``strong_head`` (per frame) and ``weak_head`` (on the time mean), both ``Linear(D, C)``.

Audio of any length is cut into 10 s chunks (the last one, and a clip shorter than 10 s, zero-padded to 10 s as
PretrainedSED's ``inference.py`` does); every chunk runs alone through the backbone and the sequence model, the
frames are concatenated along time and trimmed to the ``ceil(n / 640)`` frames that cover the ``n`` real samples
(the published script keeps the padded frames; trimming drops only frames of padding). The weak head sees the mean
over the kept frames, which for one 10 s clip is exactly the published weak output.

State-dict keys are the published wrapper's: ``model.<attr>.<backbone keys>`` (``attr`` = ``beats``, ``atst``,
``fpasst``, ``m2d`` or ``asit``), then ``seq_model.rnn.*``, ``strong_head.*``, ``weak_head.*``. The frontend sits at
``model.frontend`` and holds no persistent buffers, so it adds no keys (M2D's frontend is part of the backbone).
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Literal, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import create_frontend, get_entry

SAMPLE_RATE = 16000  # every frame-level backbone of the zoo takes 16 kHz audio
FRAME_HOP = 640  # samples per output frame (40 ms)
# Backbone class -> attribute under ``model`` (the published wrapper's key prefix).
FRAME_BACKBONES: Dict[str, str] = {"BEATs": "beats", "ATSTFrame": "atst", "FramePaSST": "fpasst", "M2D": "m2d",
                                   "ASiT": "asit"}
_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers)\.(\d+)\.")

SEDOutput = Union[torch.Tensor, Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]]


class FrameSEDInputError(ValueError):
    """A FrameSED configuration or input that cannot work (names the argument and what was expected)."""


def to_frame_rate(sequence: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, S, D) -> (B, n_frames, D): adaptive average pooling if S > n_frames, linear interpolation if shorter."""
    if sequence.shape[1] > n_frames:
        return F.adaptive_avg_pool1d(sequence.transpose(1, 2), n_frames).transpose(1, 2)
    if sequence.shape[1] < n_frames:
        return F.interpolate(sequence.transpose(1, 2), size=n_frames, mode="linear",
                             align_corners=False).transpose(1, 2)
    return sequence


def block_index(name: str) -> Optional[int]:
    """The block a backbone parameter belongs to (``blocks.<k>.`` / ``layers.<k>.`` in its name), else ``None``."""
    match = _BLOCK.search(name)
    return None if match is None else int(match.group(1))


def _build_frontend(backbone: str, overrides: Optional[Dict[str, Any]]) -> nn.Module:
    """The backbone's registered frontend. Its filter banks are computed from numbers, which the meta device cannot
    hold, so a meta-device build (layout checks) makes the frontend on the CPU; it has no state-dict entries."""
    if torch.get_default_device().type == "meta":
        with torch.device("cpu"):
            return create_frontend(backbone, **(overrides or {}))
    return create_frontend(backbone, **(overrides or {}))


class BackboneWithFrontend(nn.Module):
    """Waveform (B, n) -> native backbone sequence (B, S, D): ``frontend`` (if any), then the backbone at ``attr``."""

    def __init__(self, attr: str, backbone: nn.Module, frontend: Optional[nn.Module]) -> None:
        super().__init__()
        self.attr = attr
        self.frontend = frontend
        setattr(self, attr, backbone)

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.attr)

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) -> the backbone's input spectrogram (B, 1, F, T) (M2D: its own ``to_spec``)."""
        return self.backbone.mel(wave) if self.frontend is None else self.frontend(wave)

    def forward_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Spectrogram (B, 1, F, T) -> native sequence (B, S, D)."""
        return self.backbone.encode_mel(mel) if self.frontend is None else self.backbone(mel)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.forward_mel(self.mel(wave))


class BiGRU(nn.Module):
    """Bidirectional GRU over (B, T, D) -> (B, T, 2 * hidden); the module is ``rnn`` as in PretrainedSED."""

    def __init__(self, n_in: int, hidden: int, layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(n_in, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class FrameSED(nn.Module):
    """A transformer-zoo backbone with 40 ms frame outputs, optional BiGRU and strong/weak heads.

    Args:
        backbone: Catalogue name of a frame-level backbone (``beats_iter3plus_as2m``, ``atst_frame_base``,
            ``fpasst_deit_b_frame``, ``m2d_clap_vit_base_80x1001p16x16``, ``asit_vit_base_128x592p16``, ...).
        n_classes_strong: Classes of the per-frame head (``None``: no strong head).
        n_classes_weak: Classes of the clip head (``None``: no weak head).
        seq_model: ``"none"`` (the released students) or ``"gru"`` (the teachers: a bidirectional GRU).
        seq_hidden: GRU units per direction (the heads then see ``2 * seq_hidden`` features).
        seq_layers: GRU layers.
        seq_dropout: Dropout between GRU layers (training only).
        chunk_seconds: Length of the pieces the audio is cut into (the backbones are trained on 10 s).
        backbone_overrides: Constructor arguments replacing the catalogue's (e.g. a tiny test version).
        frontend_overrides: Frontend arguments replacing the catalogue's.
    """

    sample_rate = SAMPLE_RATE
    frame_hop = FRAME_HOP

    def __init__(
        self,
        backbone: str,
        n_classes_strong: Optional[int] = 447,
        n_classes_weak: Optional[int] = 447,
        seq_model: Literal["none", "gru"] = "none",
        seq_hidden: int = 2048,
        seq_layers: int = 2,
        seq_dropout: float = 0.0,
        chunk_seconds: float = 10.0,
        backbone_overrides: Optional[Dict[str, Any]] = None,
        frontend_overrides: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__()
        entry = get_entry(backbone)
        attr = FRAME_BACKBONES.get(getattr(entry.builder, "__name__", ""))
        if attr is None:
            raise FrameSEDInputError(
                f"FrameSED backbone {backbone!r} ({getattr(entry.builder, '__name__', entry.builder)}) has no "
                f"frame-level sequence; expected a backbone of class {', '.join(FRAME_BACKBONES)}")
        chunk_samples = chunk_seconds * SAMPLE_RATE
        if chunk_samples <= 0 or chunk_samples % FRAME_HOP:
            raise FrameSEDInputError(f"FrameSED chunk_seconds={chunk_seconds} must be a positive multiple of "
                                     f"{FRAME_HOP / SAMPLE_RATE} s (one 40 ms frame)")
        if seq_model not in ("none", "gru"):
            raise FrameSEDInputError(f"FrameSED seq_model={seq_model!r}; expected 'none' or 'gru'")
        self.backbone_name = backbone
        self.chunk_samples = int(chunk_samples)
        self.chunk_frames = self.chunk_samples // FRAME_HOP
        net = entry.builder(**{**entry.kwargs, **(backbone_overrides or {})})
        frontend = None if entry.frontend is None else _build_frontend(backbone, frontend_overrides)
        for name in getattr(net, "UNUSED_PARAMETERS", ()):  # never reached by a gradient (DDP would complain)
            net.get_parameter(name).requires_grad_(False)
        self.model = BackboneWithFrontend(attr, net, frontend)
        self.embed_dim = int(net.embed_dim)
        if seq_model == "gru":
            self.seq_model: nn.Module = BiGRU(self.embed_dim, seq_hidden, seq_layers, seq_dropout)
            features = 2 * seq_hidden
        else:
            self.seq_model = nn.Identity()
            features = self.embed_dim
        self.num_features = features
        self.strong_head = None if n_classes_strong is None else nn.Linear(features, n_classes_strong)
        self.weak_head = None if n_classes_weak is None else nn.Linear(features, n_classes_weak)

    @property
    def backbone(self) -> nn.Module:
        """The transformer (``model.<attr>``)."""
        return self.model.backbone

    @staticmethod
    def n_frames(n_samples: int) -> int:
        """Output frames of ``n_samples`` of audio: ``ceil(n / 640)``, the 40 ms frames that cover them."""
        return -(-int(n_samples) // FRAME_HOP)

    # ------------------------------------------------------------------------------------------------------------
    # forward
    # ------------------------------------------------------------------------------------------------------------
    def sequence(self, wave: torch.Tensor) -> torch.Tensor:
        """The backbone's native sequence (B, S, D) of one chunk (B, chunk samples), e.g. BEATs (B, 496, 768)."""
        return self.model(wave)

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) audio -> (B, ceil(n / 640), D) backbone frames (40 ms), before the sequence model and heads."""
        keep = self.n_frames(self._check(wave))
        return torch.cat([self._chunk_frames(chunk) for chunk in self._chunks(wave)], dim=1)[:, :keep]

    def forward(self, wave: torch.Tensor) -> SEDOutput:
        """(B, n) audio at 16 kHz -> ``(strong (B, C, T), weak (B, C))`` logits, T = ceil(n / 640).

        A missing head gives ``None`` in its place; without both heads the (B, T, features) sequence after the
        sequence model is returned.
        """
        keep = self.n_frames(self._check(wave))
        x = torch.cat([self.seq_model(self._chunk_frames(chunk)) for chunk in self._chunks(wave)], dim=1)[:, :keep]
        return self._heads(x)

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """The backbone's input spectrogram (B, 1, F, T) of one chunk of audio (B, chunk samples): the place for
        spectrogram augmentations in training (see :meth:`forward_mel`)."""
        return self.model.mel(wave)

    def forward_mel(self, mel: torch.Tensor) -> SEDOutput:
        """:meth:`forward` of one chunk from its (possibly augmented) spectrogram :meth:`mel`."""
        frames = to_frame_rate(self.model.forward_mel(mel), self.chunk_frames)
        return self._heads(self.seq_model(frames))

    def _heads(self, x: torch.Tensor) -> SEDOutput:
        if self.strong_head is None and self.weak_head is None:
            return x
        strong = None if self.strong_head is None else self.strong_head(x).transpose(1, 2)
        weak = None if self.weak_head is None else self.weak_head(x.mean(dim=1))
        return strong, weak

    def _check(self, wave: torch.Tensor) -> int:
        if wave.dim() != 2 or wave.shape[1] == 0:
            raise FrameSEDInputError(f"FrameSED input has shape {tuple(wave.shape)}; expected (batch, samples) of "
                                     f"{SAMPLE_RATE} Hz audio")
        return wave.shape[1]

    def _chunks(self, wave: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        n_chunks = -(-wave.shape[1] // self.chunk_samples)
        padded = F.pad(wave, (0, n_chunks * self.chunk_samples - wave.shape[1]))
        return padded.split(self.chunk_samples, dim=1)

    def _chunk_frames(self, chunk: torch.Tensor) -> torch.Tensor:
        return to_frame_rate(self.model(chunk), self.chunk_frames)

    # ------------------------------------------------------------------------------------------------------------
    # optimisation
    # ------------------------------------------------------------------------------------------------------------
    def param_groups(self, lr: float, layer_decay: float = 1.0, weight_decay: float = 0.0) -> List[Dict[str, Any]]:
        """Optimizer groups with layer-wise lr decay, as PretrainedSED's ``separate_params`` + ``get_optimizer``.

        Backbone group ``i`` (0 = top) holds block ``depth - 1 - i``; the top group also holds the parameters under
        the backbone's ``TOP_NORM`` prefixes, the bottom group every other backbone parameter (embeddings, stem,
        position tables). Group ``i`` gets ``lr * layer_decay ** (i + 1)``; the heads and the sequence model get
        ``lr``. Each group is split into tensors with >= 2 dims (``weight_decay``) and the rest (no weight decay).
        Order: heads, backbone groups top to bottom, sequence model; empty groups are left out.

        Returns:
            Dicts with ``name``, ``params``, ``lr`` and ``weight_decay`` for ``torch.optim.AdamW``.
        """
        backbone = self.backbone
        depth = 1 + max((block_index(n) for n, _ in backbone.named_parameters() if block_index(n) is not None),
                        default=0)
        top = tuple(getattr(backbone, "TOP_NORM", ()))
        layers: List[List[nn.Parameter]] = [[] for _ in range(depth)]
        for name, param in self.model.named_parameters():
            name = name[len(self.model.attr) + 1:] if name.startswith(self.model.attr + ".") else name
            index = block_index(name)
            if index is not None:
                layers[depth - 1 - index].append(param)
            elif name.startswith(top):
                layers[0].append(param)
            else:
                layers[depth - 1].append(param)
        heads = [p for head in (self.strong_head, self.weak_head) if head is not None for p in head.parameters()]
        named = [("heads", heads, lr)]
        named += [(f"backbone_{i}", params, lr * layer_decay ** (i + 1)) for i, params in enumerate(layers)]
        named.append(("seq_model", list(self.seq_model.parameters()), lr))
        groups = []
        for name, params, group_lr in named:
            matrices = [p for p in params if p.dim() >= 2]
            vectors = [p for p in params if p.dim() < 2]
            if matrices:
                groups.append({"name": f"{name}/decay", "params": matrices, "lr": group_lr,
                               "weight_decay": weight_decay})
            if vectors:
                groups.append({"name": f"{name}/no_decay", "params": vectors, "lr": group_lr, "weight_decay": 0.0})
        return groups
