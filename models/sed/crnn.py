"""The DCASE'24 Task 4 baseline CRNN (DESED + MAESTRO), with optional frame-embedding fusion (BEATs).

Layout, reconstructed from ``DCASE-REPO/DESED_task`` (``desed_task/nnet/{CNN,RNN,CRNN}.py`` and
``recipes/dcase2024_task4_baseline/confs/pretrained.yaml``, commit c6bcb45, June 2024):

* log-mel (B, 128, T), transposed to (B, 1, T, 128);
* :class:`~models.sed.cnn.CNN`: 7 blocks Conv3x3 -> BN(eps 1e-3, PyTorch momentum 0.99) -> GLU -> Dropout(0.2)
  -> AvgPool, channels 16, 32, 64, 128 x 4, (time, freq) pooling (2, 2), (2, 2), (1, 2) x 5: (B, 128, T // 4, 1);
* fusion (``embedding_dim > 0``): the embeddings are aligned to the CNN frames (adaptive average pooling, the
  baseline's ``pool1d``, or ``nearest-exact`` interpolation), concatenated with the CNN output, dropped out and
  mapped by ``cat_tf`` = Linear(128 + D -> 128); no normalisation layer;
* 2-layer bidirectional GRU, 192 units (the yaml's ``rnn_layers: 1`` is not a CRNN argument and is ignored, so the
  CRNN default ``n_layers_RNN=2`` applies), then Dropout(0.2);
* strong head ``dense`` = Linear(384 -> C) + sigmoid per frame; attention head ``dense_softmax`` = Linear(384 -> C)
  with a softmax over *classes* clamped to [1e-7, 1]; weak = sum_t(strong * att) / sum_t(att).

Training-time regularisation as in the baseline: "dropstep" (a random time mask of up to 16 frames, at most 30 % of
the sequence, one per example, drawn independently for the CNN features and the embeddings) before the GRU. The
yaml's SpecAugment probabilities are 0, so the baseline never masks the input; we leave it out.

Parameters: 1,670,278 without fusion (``crnn_dcase24``); 1,785,094 with the BEATs fusion layer
(``crnn_dcase24_beats``, BEATs itself not counted), the spec's "about 1.79 M".

State-dict keys equal the baseline's (``cnn.cnn.conv0.weight`` ... ``rnn.rnn.weight_ih_l0`` ... ``dense.weight``,
``dense_softmax.weight``, ``cat_tf.weight``), in the same order. The published Lightning checkpoint
(https://zenodo.org/records/11280943, ``baseline_pretrained_2024/epoch=259-step=30680.ckpt``) stores them under
``sed_student.`` and ``sed_teacher.``; :func:`desed_state_dict` (the catalogue's ``state_dict_filter``) picks the
student, so ``create_model("crnn_dcase24_beats", checkpoint=PATH)`` loads it strictly.

Input range: the baseline's instance min-max scaler maps each clip's dB mel to [-1, 1]; the ``mel`` frontend's
``normalize="minmax"`` (the :data:`DCASE24_SED_MEL` preset) does exactly that, so published weights see the features
they were trained on.

``sonolab complexity crnn_dcase24_beats`` cannot run: the complexity tool feeds a single tensor and this model
requires embeddings (it raises rather than guessing them).
"""
from __future__ import annotations

import math
from typing import Dict, Literal, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from models.registry import register_model
from models.sed.cnn import CNN

# The baseline's features (``feats`` of pretrained.yaml and SEDTask4.take_log/scaler) for ``models.frontends.mel``.
DCASE24_SED_MEL: Dict[str, object] = {
    "sample_rate": 16000,
    "n_fft": 2048,
    "win_length": 2048,
    "hop_length": 256,
    "n_mels": 128,
    "fmin": 0.0,
    "fmax": 8000.0,
    "window": "hamming_symmetric",
    "power": 1.0,
    "scale": "htk",
    "log": "db",
    "amin": 1e-5,
    "db_range": (-50.0, 80.0),
    "normalize": "minmax",
}

Aggregation = Literal["pool", "interpolate"]
SEDOutput = Union[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def desed_state_dict(state: Dict[str, torch.Tensor], network: str = "sed_student") -> Dict[str, torch.Tensor]:
    """Takes the ``network`` (``sed_student`` or ``sed_teacher``) weights out of a DESED Lightning state dict.

    A state dict without keys under ``network + "."`` (already ours) is returned unchanged.
    """
    prefix = f"{network}."
    if not any(k.startswith(prefix) for k in state):
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def drop_time_steps(x: torch.Tensor, max_len: int, max_ratio: float) -> torch.Tensor:
    """Zeroes one random span of time steps per example of a (B, T, D) sequence ("dropstep").

    Span length ``floor(u1 * L)`` with ``L = min(max_len, floor(T * max_ratio))`` (``max_len`` when the ratio is
    1), start ``floor(u2 * (T - u1 * L))``, the same for every feature; torchaudio's ``TimeMasking(max_len,
    iid_masks=True, p=max_ratio)`` on the (B, D, T) transpose, which the baseline uses.
    """
    n_steps = x.shape[1]
    limit = max_len if max_ratio >= 1.0 else min(max_len, int(n_steps * max_ratio))
    if limit < 1:
        return x
    length = torch.rand(x.shape[0], device=x.device) * limit
    start = torch.rand(x.shape[0], device=x.device) * (n_steps - length)
    begin, end = start.long(), start.long() + length.long()
    steps = torch.arange(n_steps, device=x.device)
    mask = (steps >= begin[:, None]) & (steps < end[:, None])  # (B, T)
    return x.masked_fill(mask[:, :, None], 0.0)


def attention_pool(
    strong: torch.Tensor, att_logits: torch.Tensor, classes_mask: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The baseline's weak head: class-softmax attention over frames.

    Args:
        strong: (B, T, C) frame probabilities.
        att_logits: (B, T, C) attention logits.
        classes_mask: (B, C) bool, ``True`` for the classes annotated in each example's dataset, or ``None``.
            Other classes get no attention mass (their logits are set to the dtype's minimum before the softmax)
            and zero strong and weak outputs.

    Returns:
        (strong (B, T, C), weak (B, C)): ``att = clamp(softmax_C(att_logits), 1e-7, 1)``,
        ``weak = sum_t(strong * att) / sum_t(att)``.
    """
    invalid = None
    if classes_mask is not None:
        invalid = ~classes_mask[:, None, :].expand_as(strong)
        att_logits = att_logits.masked_fill(invalid, torch.finfo(att_logits.dtype).min)
    att = torch.softmax(att_logits, dim=-1).clamp(min=1e-7, max=1.0)
    weak = (strong * att).sum(1) / att.sum(1)
    if invalid is not None:
        strong = strong.masked_fill(invalid, 0.0)
        weak = weak.masked_fill(invalid[:, 0], 0.0)
    return strong, weak


class BiGRU(nn.Module):
    """Bidirectional, batch-first GRU returning its output sequence (B, T, 2 * hidden).

    Args:
        input_size: Features per step.
        hidden_size: Units per direction.
        num_layers: Stacked layers.
        dropout: Dropout between layers.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.rnn = nn.GRU(input_size, hidden_size, num_layers=num_layers, dropout=dropout, bidirectional=True,
                          batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_size) -> (B, T, 2 * hidden_size)."""
        return self.rnn(x)[0]


class CRNN(nn.Module):
    """The DCASE'24 Task 4 baseline CRNN; see the module docstring for the layout.

    Forward: ``(features, embeddings=None, classes_mask=None, return_logits=False)``.

    * ``features``: log-mel (B, n_mels, T) or the frontend's (B, 1, n_mels, T), at least 4 frames (10 s at
      16 kHz / hop 256: T = 626 -> T' = 156 output frames).
    * ``embeddings``: (B, D, T_emb) frame embeddings, channels first like the baseline's HDF5 files (BEATs:
      (B, 768, 496)); required exactly when ``embedding_dim > 0``.
    * ``classes_mask``: optional (B, n_classes) bool of valid classes (see :func:`attention_pool`).

    Returns ``(strong (B, C, T'), weak (B, C))`` probabilities, and with ``return_logits=True`` additionally the
    pre-sigmoid strong logits (B, C, T') (unmasked), e.g. for pseudo labels stored as logits.

    Args:
        n_classes: Output classes (27 = 10 DESED + 17 MAESTRO).
        n_mels: Mel bins of the input; the CNN must pool them down to 1.
        in_channels: Input channels of the first convolution.
        channels: CNN block widths.
        pooling: (time, freq) pooling of each CNN block.
        dropout: Dropout in the CNN blocks, before ``cat_tf`` and after the GRU.
        bn_eps: BatchNorm epsilon.
        bn_momentum: BatchNorm momentum in PyTorch's sense. The baseline passes 0.99 to ``nn.BatchNorm2d``
            (running statistics follow the latest batch), not the Keras-equivalent 0.01; kept for exactness.
        rnn_hidden: GRU units per direction.
        rnn_layers: GRU layers.
        rnn_dropout: Dropout between GRU layers.
        dropstep_prob: Longest dropped span as a fraction of the sequence (0: no dropstep), training only.
        dropstep_len: Longest dropped span in frames.
        embedding_dim: Dimension D of fused frame embeddings (0: no fusion; 768 for BEATs).
        embedding_aggregation: How the embeddings are aligned to the CNN frames: "pool" (adaptive average
            pooling, the baseline's ``pool1d``) or "interpolate" (``nearest-exact``).
    """

    def __init__(
        self,
        n_classes: int = 27,
        n_mels: int = 128,
        in_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 128, 128, 128),
        pooling: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
        dropout: float = 0.2,
        bn_eps: float = 1e-3,
        bn_momentum: float = 0.99,
        rnn_hidden: int = 192,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        dropstep_prob: float = 0.3,
        dropstep_len: int = 16,
        embedding_dim: int = 0,
        embedding_aggregation: Aggregation = "pool",
    ) -> None:
        super().__init__()
        if embedding_aggregation not in ("pool", "interpolate"):
            raise ValueError(f"embedding_aggregation must be 'pool' or 'interpolate', got {embedding_aggregation!r}")
        if embedding_dim < 0:
            raise ValueError(f"embedding_dim must be >= 0, got {embedding_dim}")
        self.n_classes, self.n_mels, self.in_channels = n_classes, n_mels, in_channels
        self.dropstep_prob, self.dropstep_len = dropstep_prob, dropstep_len
        self.embedding_dim, self.embedding_aggregation = embedding_dim, embedding_aggregation
        # Registration order = state-dict order of the baseline: cnn, rnn, dense, dense_softmax, cat_tf.
        self.cnn = CNN(in_channels, channels, pooling, dropout=dropout, bn_eps=bn_eps, bn_momentum=bn_momentum)
        out_freq = self.cnn.output_size(1 << 20, n_mels)[1]
        if out_freq != 1:
            raise ValueError(f"the CNN pools n_mels={n_mels} down to {out_freq} bins; the GRU needs exactly 1")
        n_feat = self.cnn.out_channels
        self.rnn = BiGRU(n_feat, rnn_hidden, num_layers=rnn_layers, dropout=rnn_dropout)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * rnn_hidden, n_classes)
        self.dense_softmax = nn.Linear(2 * rnn_hidden, n_classes)
        if embedding_dim:
            self.cat_tf = nn.Linear(n_feat + embedding_dim, n_feat)

    def output_frames(self, n_frames: int) -> int:
        """Output frames T' for T input frames (each time pooling floors)."""
        return self.cnn.output_size(n_frames, self.n_mels)[0]

    def forward(
        self,
        features: torch.Tensor,
        embeddings: Optional[torch.Tensor] = None,
        classes_mask: Optional[torch.Tensor] = None,
        return_logits: bool = False,
    ) -> SEDOutput:
        """Strong and weak class probabilities; see the class docstring for shapes."""
        x = self._check_features(features)
        x = self.cnn(x.transpose(2, 3))  # (B, C, T, F) -> (B, 128, T', 1)
        x = x.squeeze(-1).transpose(1, 2)  # (B, T', 128)
        dropstep = self.training and self.dropstep_prob > 0
        if self.embedding_dim:
            emb = self._align_embeddings(embeddings, x)
            if dropstep:
                x = drop_time_steps(x, self.dropstep_len, self.dropstep_prob)
                emb = drop_time_steps(emb, self.dropstep_len, self.dropstep_prob)
            x = self.cat_tf(self.dropout(torch.cat((x, emb), dim=-1)))
        else:
            if embeddings is not None:
                raise ValueError("embeddings were given to a CRNN built without fusion (embedding_dim=0)")
            if dropstep:  # the baseline drops out here only together with dropstep
                x = self.dropout(drop_time_steps(x, self.dropstep_len, self.dropstep_prob))
        x = self.dropout(self.rnn(x))
        strong_logits = self.dense(x)  # (B, T', C)
        if classes_mask is not None and classes_mask.shape != (x.shape[0], self.n_classes):
            raise ValueError(f"classes_mask must be ({x.shape[0]}, {self.n_classes}), got {tuple(classes_mask.shape)}")
        mask = classes_mask.bool() if classes_mask is not None else None
        strong, weak = attention_pool(torch.sigmoid(strong_logits), self.dense_softmax(x), mask)
        if return_logits:
            return strong.transpose(1, 2), weak, strong_logits.transpose(1, 2)
        return strong.transpose(1, 2), weak

    def _check_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) or (B, C_in, n_mels, T) -> (B, C_in, n_mels, T), with a clear error otherwise."""
        if features.dim() == 3 and self.in_channels == 1:
            features = features.unsqueeze(1)
        if features.dim() != 4 or features.shape[1] != self.in_channels or features.shape[2] != self.n_mels:
            raise ValueError(
                f"features must be (B, {self.n_mels}, T) or (B, {self.in_channels}, {self.n_mels}, T) log-mels, "
                f"got {tuple(features.shape)}"
            )
        if self.output_frames(features.shape[-1]) < 1:
            factor = math.prod(t for t, _ in self.cnn.pooling)
            raise ValueError(f"features have {features.shape[-1]} frames; the CNN pools time by {factor}, "
                             f"so it needs at least {factor}")
        return features

    def _align_embeddings(self, embeddings: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """(B, D, T_emb) embeddings -> (B, T', D) aligned with the (B, T', C) CNN sequence ``x``."""
        if embeddings is None:
            raise ValueError(f"this CRNN fuses {self.embedding_dim}-d embeddings; pass embeddings (B, D, T_emb)")
        if embeddings.dim() != 3 or embeddings.shape[0] != x.shape[0] or embeddings.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings must be (B={x.shape[0]}, D={self.embedding_dim}, T_emb), channels first, "
                f"got {tuple(embeddings.shape)}"
            )
        if self.embedding_aggregation == "pool":
            aligned = F.adaptive_avg_pool1d(embeddings, x.shape[1])
        else:
            aligned = F.interpolate(embeddings, size=x.shape[1], mode="nearest-exact")
        return aligned.transpose(1, 2).to(x.dtype)


_DOC_URL = "https://zenodo.org/records/11280943"  # zip holding the Lightning checkpoint, not a plain state dict

register_model(
    "crnn_dcase24",
    CRNN,
    frontend="mel",
    frontend_kwargs=DCASE24_SED_MEL,
    input_shape=(1, 1, 128, 626),
    macs_convention="aten",
    state_dict_filter=desed_state_dict,
    description="DCASE'24 Task 4 baseline CRNN, no embeddings (1,670,278 params, 10 s -> 156 frames)",
    n_classes=27,
    embedding_dim=0,
)

register_model(
    "crnn_dcase24_beats",
    CRNN,
    frontend="mel",
    frontend_kwargs=DCASE24_SED_MEL,
    input_shape=(1, 1, 128, 626),
    macs_convention="aten",
    state_dict_filter=desed_state_dict,
    description=f"DCASE'24 Task 4 baseline CRNN + BEATs (768-d) fusion, pooled (1,785,094 params; {_DOC_URL})",
    n_classes=27,
    embedding_dim=768,
    embedding_aggregation="pool",
)
