"""BEATs (iter3 / iter3+ AS2M configuration) as a plain-torch backbone of the transformer zoo.

The module reproduces the state-dict layout of Microsoft's BEATs code as used by PretrainedSED and cpjku_dcase24
(specs/checkpoints/beats_iter3plus_as2m.json: 250 ordered keys, 90,311,792 parameters), so the published
encoders load strictly. Its pieces:

- 16x16 patches (stride 16, no bias, 512 channels) of the time-first fbank, flattened time-major (token = t * 8 + f
  for 128 bands), LayerNorm(512), Linear 512 -> 768;
- a convolutional position embedding (weight-normed grouped Conv1d, kernel 128, the last step dropped, GELU) added
  once, then ``encoder.layer_norm`` (a post-LN model normalises before its layers);
- post-LN DeepNorm layers (``x = LN(alpha * x + f(x))``, ``alpha = (2 * depth) ** 0.25``) whose attention adds a
  bucketed relative position bias (T5-style, bidirectional), gated per query by the query itself. The bias table is
  one ``Embedding(num_buckets, num_heads)`` owned by layer 0 and shared by every layer; the raw bias is computed once
  per forward and handed to every layer, which applies its own gate.

The published attention scales q by an extra 1/32, subtracts the row maximum and multiplies by 32 again for fp16
stability; that is ordinary scaled dot-product attention, which :func:`attend` computes (fused or plain).
The AS2M fine-tuned ``predictor`` head is not part of the backbone; :func:`beats_state_dict_filter` drops it.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict

import torch
import torch.nn.functional as F
from torch import nn

from models.transformers.attention import attend

_GATE_UNITS = 8  # grep_linear outputs: two gates (a, b), each the sum of 4 units


class BEATsInputError(ValueError):
    """A BEATs input or state dict that does not have the expected shape or keys."""


def deep_norm_alpha(depth: int) -> float:
    """The DeepNorm residual scale of a post-LN encoder with ``depth`` layers: ``(2 * depth) ** (1 / 4)``."""
    return math.pow(2 * depth, 0.25)


def relative_position_buckets(relative_positions: torch.Tensor, num_buckets: int = 320,
                              max_distance: int = 800) -> torch.Tensor:
    """Bidirectional T5-style buckets of ``relative_positions`` (key index minus query index).

    Half of the buckets hold positive offsets (index ``num_buckets // 2`` upwards), half zero and negative ones. Within
    a half, offsets below a quarter of ``num_buckets`` get a bucket each; larger ones share logarithmically spaced
    buckets up to ``max_distance``, beyond which all fall into the last bucket of their half.

    Returns:
        Bucket indices (long) of the same shape.
    """
    half = num_buckets // 2
    max_exact = half // 2
    offset = (relative_positions > 0).long() * half
    distance = relative_positions.abs()
    # float32 and this operation order match the published buckets at the boundaries
    ratio = distance.clamp(min=max_exact).float() / max_exact
    log_bucket = max_exact + (torch.log(ratio) / math.log(max_distance / max_exact) * (half - max_exact)).long()
    log_bucket = log_bucket.clamp(max=half - 1)
    return offset + torch.where(distance < max_exact, distance, log_bucket)


class DropLastStep(nn.Module):
    """Drops the last time step of (B, C, T): an even-kernel convolution with padding k // 2 yields one step more."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-1]


class GatedRelativeAttention(nn.Module):
    """Self-attention with separate q/k/v/out projections and a gated relative position bias.

    The gate of query row i in head h is ``a * (b * grep_a[h] - 1) + 2`` with ``(a, b) = sigmoid`` of the two
    4-unit sums of ``grep_linear`` applied to that head's unscaled query; the bias added to the logits is
    ``gate * position_bias``.

    Args:
        embed_dim: Model width.
        num_heads: Attention heads (``embed_dim`` must divide evenly).
        attention_dropout: Dropout on the attention weights (training only).
        num_buckets: Rows of the relative position table; ``0`` when another layer owns the (shared) table.
    """

    def __init__(self, embed_dim: int, num_heads: int, attention_dropout: float = 0.1, num_buckets: int = 0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.attention_dropout = attention_dropout
        self.sdpa = True
        # registration order = the published key order (the shared table of later layers is attached last)
        if num_buckets:
            self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.grep_linear = nn.Linear(self.head_dim, _GATE_UNITS)
        self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        """(B, S, D) tokens and the raw (H, S, S) position bias -> (B, S, D)."""
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        units = self.grep_linear(q).unflatten(-1, (2, _GATE_UNITS // 2)).sum(-1)
        gate_a, gate_b = torch.sigmoid(units).chunk(2, dim=-1)  # (B, H, S, 1) each
        gate = gate_a * (gate_b * self.grep_a - 1.0) + 2.0
        bias = (gate * position_bias).to(q.dtype)
        dropout_p = self.attention_dropout if self.training else 0.0
        out = attend(q, k, v, bias=bias, dropout_p=dropout_p, sdpa=self.sdpa)
        return self.out_proj(out.transpose(1, 2).flatten(2))


class DeepNormLayer(nn.Module):
    """Post-LN encoder layer: ``x = LN(alpha * x + attn(x))``, then ``x = LN(alpha * x + FFN(x))`` (exact GELU).

    Args:
        embed_dim: Model width.
        num_heads: Attention heads.
        mlp_dim: Hidden width of the feed-forward block.
        alpha: DeepNorm residual scale (:func:`deep_norm_alpha`).
        dropout: Dropout on the attention and feed-forward outputs (training only).
        attention_dropout: Dropout on the attention weights.
        activation_dropout: Dropout after the GELU.
        num_buckets: Size of the relative position table this layer owns (``0``: shared from layer 0).
    """

    def __init__(self, embed_dim: int, num_heads: int, mlp_dim: int, alpha: float, dropout: float = 0.1,
                 attention_dropout: float = 0.1, activation_dropout: float = 0.0, num_buckets: int = 0) -> None:
        super().__init__()
        self.alpha = alpha
        self.dropout = dropout
        self.activation_dropout = activation_dropout
        self.self_attn = GatedRelativeAttention(embed_dim, num_heads, attention_dropout, num_buckets)
        self.self_attn_layer_norm = nn.LayerNorm(embed_dim)
        self.fc1 = nn.Linear(embed_dim, mlp_dim)
        self.fc2 = nn.Linear(mlp_dim, embed_dim)
        self.final_layer_norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, position_bias: torch.Tensor) -> torch.Tensor:
        attn = F.dropout(self.self_attn(x, position_bias), self.dropout, self.training)
        x = self.self_attn_layer_norm(self.alpha * x + attn)
        hidden = F.dropout(F.gelu(self.fc1(x)), self.activation_dropout, self.training)
        x = self.final_layer_norm(self.alpha * x + F.dropout(self.fc2(hidden), self.dropout, self.training))
        return x


class BEATsEncoder(nn.Module):
    """Convolutional position embedding, ``layer_norm`` and the DeepNorm layers (see :class:`BEATs`)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_dim: int, conv_pos: int, conv_pos_groups: int,
                 num_buckets: int, max_distance: int, dropout: float, attention_dropout: float,
                 activation_dropout: float, layer_drop: float) -> None:
        super().__init__()
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.dropout = dropout
        self.layer_drop = layer_drop
        conv = nn.Conv1d(embed_dim, embed_dim, kernel_size=conv_pos, padding=conv_pos // 2, groups=conv_pos_groups)
        nn.init.normal_(conv.weight, mean=0.0, std=math.sqrt(4.0 / (conv_pos * embed_dim)))
        nn.init.zeros_(conv.bias)
        conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.pos_conv = nn.Sequential(conv, DropLastStep() if conv_pos % 2 == 0 else nn.Identity(), nn.GELU())
        alpha = deep_norm_alpha(depth)
        self.layers = nn.ModuleList(
            DeepNormLayer(embed_dim, num_heads, mlp_dim, alpha, dropout, attention_dropout, activation_dropout,
                          num_buckets if i == 0 else 0)
            for i in range(depth))
        for layer in self.layers[1:]:  # one table for all layers, listed under each (after grep_linear)
            layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(embed_dim)

    def position_bias(self, length: int, device: torch.device) -> torch.Tensor:
        """The raw (H, S, S) relative position bias of ``length`` tokens (entry [h, i, j]: query i, key j)."""
        steps = torch.arange(length, device=device)
        buckets = relative_position_buckets(steps[None, :] - steps[:, None], self.num_buckets, self.max_distance)
        return self.layers[0].self_attn.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        x = F.dropout(self.layer_norm(x), self.dropout, self.training)
        position_bias = self.position_bias(x.shape[1], x.device)
        for layer in self.layers:
            if self.training and self.layer_drop > 0 and torch.rand(()).item() < self.layer_drop:
                continue
            x = layer(x, position_bias)
        return x


class BEATs(nn.Module):
    """BEATs encoder: (B, 1, F, T) normalised Kaldi fbank -> (B, T // 16 * F // 16, D) time-major tokens.

    Defaults are the iter3 / iter3+ AS2M model (and PretrainedSED's ``BEATsConfig``): 128 bands x 998 frames (10 s)
    give 62 x 8 = 496 tokens of 768. Frames (and bands) beyond a multiple of ``patch_size`` are cut, as the patch
    convolution does. No norm follows the last layer.

    Args:
        embed_dim: Encoder width D.
        depth: Encoder layers.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width as a multiple of ``embed_dim``.
        patch_size: Square patch side and stride, in frames and bands.
        patch_dim: Channels of the patch embedding (projected to ``embed_dim`` by ``post_extract_proj``).
        conv_pos: Kernel size of the convolutional position embedding.
        conv_pos_groups: Groups of that convolution.
        num_buckets: Relative position buckets (both directions together).
        max_distance: Offset from which all relative positions share the outermost bucket.
        dropout: Dropout after the position embedding and on attention/feed-forward outputs (training only).
        attention_dropout: Dropout on the attention weights.
        activation_dropout: Dropout after the feed-forward GELU.
        dropout_input: Dropout on the projected patch embeddings.
        layer_drop: Probability of skipping each layer in a training forward.
    """

    TOP_NORM: tuple[str, ...] = ()

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 patch_size: int = 16, patch_dim: int = 512, conv_pos: int = 128, conv_pos_groups: int = 16,
                 num_buckets: int = 320, max_distance: int = 800, dropout: float = 0.1,
                 attention_dropout: float = 0.1, activation_dropout: float = 0.0, dropout_input: float = 0.1,
                 layer_drop: float = 0.05) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_size = patch_size
        self.dropout_input = dropout_input
        self.post_extract_proj = nn.Linear(patch_dim, embed_dim)
        self.patch_embedding = nn.Conv2d(1, patch_dim, kernel_size=patch_size, stride=patch_size, bias=False)
        self.encoder = BEATsEncoder(embed_dim, depth, num_heads, int(embed_dim * mlp_ratio), conv_pos,
                                    conv_pos_groups, num_buckets, max_distance, dropout, attention_dropout,
                                    activation_dropout, layer_drop)
        self.layer_norm = nn.LayerNorm(patch_dim)
        self._init_weights(depth)

    @torch.no_grad()
    def _init_weights(self, depth: int) -> None:
        """BERT-style N(0, 0.02) linears and table, then DeepNorm's xavier gains (beta for v, out and the FFN)."""
        for module in self.encoder.layers.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        beta = math.pow(8 * depth, -0.25)
        for layer in self.encoder.layers:
            attn = layer.self_attn
            for linear, gain in ((attn.k_proj, 1.0), (attn.v_proj, beta), (attn.q_proj, 1.0),
                                 (attn.out_proj, beta), (layer.fc1, beta), (layer.fc2, beta)):
                nn.init.xavier_normal_(linear.weight, gain=gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, F, T) fbank (frequency first) -> (B, S, embed_dim) tokens, S = (T // 16) * (F // 16)."""
        if x.dim() != 4 or x.shape[1] != 1 or min(x.shape[2:]) < self.patch_size:
            raise BEATsInputError(f"BEATs input has shape {tuple(x.shape)}; expected (batch, 1, bands, frames) with "
                                  f"at least {self.patch_size} bands and frames")
        patches = self.patch_embedding(x.transpose(2, 3))  # (B, C, T', F')
        tokens = self.layer_norm(patches.flatten(2).transpose(1, 2))  # token t * F' + f
        tokens = F.dropout(self.post_extract_proj(tokens), self.dropout_input, self.training)
        return self.encoder(tokens)


def beats_state_dict_filter(state: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """Maps a Microsoft BEATs release (``{"cfg": ..., "model": state}``) or a BEATs state dict onto :class:`BEATs`.

    Old weight-norm keys (``weight_g`` / ``weight_v``) become ``parametrizations.weight.original0`` / ``original1``,
    the fine-tuned ``predictor.*`` head is dropped, and a relative position table stored only under layer 0 is
    listed under every layer (the model shares one table).
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    renames = {"encoder.pos_conv.0.weight_g": "encoder.pos_conv.0.parametrizations.weight.original0",
               "encoder.pos_conv.0.weight_v": "encoder.pos_conv.0.parametrizations.weight.original1"}
    out = {renames.get(key, key): value for key, value in state.items() if not key.startswith("predictor.")}
    table_key = "encoder.layers.{}.self_attn.relative_attention_bias.weight"
    layers = {int(m.group(1)) for m in map(re.compile(r"encoder\.layers\.(\d+)\.").match, out) if m}
    if layers and table_key.format(0) not in out:
        raise BEATsInputError(f"BEATs state dict has no {table_key.format(0)!r}: not a BEATs encoder with a "
                              "relative position table")
    for index in sorted(layers):
        out.setdefault(table_key.format(index), out[table_key.format(0)])
    return out
