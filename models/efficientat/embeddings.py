"""General-purpose embeddings from MN/DyMN (the EfficientAT_HEAR recipes, specs/tagging.md "General-purpose
embeddings").

An embedding concatenates *parts* of one forward pass:

* ``"mel"``: the mean over time of the normalised log-mel (n_mels values);
* ``"b<i>"``: the global average of feature map ``i`` (the output of ``features[i]``; for DyMN ``in_c``,
  ``layers[i - 1]`` or ``out_c``), i = 0..16;
* ``"embedding"``: the model's own embedding (global average of the last feature map, same as ``"b16"``);
* ``"logits"``: the classifier output.

The best recipe of the paper, ``"blocks+mel"``, is ``mel, b5, b11, b13, b15`` in that order (the reference
concatenates the mel means first): 600-d for mn10, 184 for mn01, 320 for mn04, 2016 for mn40.

Scene embeddings run one pass over clips up to 10 s, otherwise average 10 s windows taken every 2.5 s from the
clip reflect-padded by half a window. Timestamp embeddings embed 160 ms windows every 50 ms from the clip
reflect-padded by half a window; timestamp ``i`` (window centre in the unpadded clip) is ``i * hop`` in ms.
The functions switch model and frontend to eval mode for the call and restore their modes afterwards.

Only models whose ``forward`` takes ``return_fmaps`` (MN, DyMN) expose the feature maps the recipes read;
:func:`embeddable_models` lists their catalogue names and :func:`check_embeddable` names them when another is asked.
"""
from __future__ import annotations

import contextlib
import fnmatch
import inspect
import re
from typing import Dict, Iterator, List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

RECIPES: Dict[str, Tuple[str, ...]] = {
    "blocks+mel": ("mel", "b5", "b11", "b13", "b15"),
    "blocks": ("b5", "b11", "b13", "b15"),
    "final": ("embedding",),
    "final+mel": ("mel", "embedding"),
    "logits": ("logits",),
    "mel": ("mel",),
}
Recipe = Union[str, Sequence[str]]
_BLOCK = re.compile(r"b(\d+)$")
N_FEATURE_MAPS = 17


def recipe_parts(recipe: Recipe) -> Tuple[str, ...]:
    """A recipe name from :data:`RECIPES`, a ``"+"``-joined string of parts or a sequence of parts -> parts."""
    if isinstance(recipe, str):
        parts = RECIPES.get(recipe, tuple(recipe.split("+")))
    else:
        parts = tuple(recipe)
    for part in parts:
        match = _BLOCK.match(part)
        if part not in ("mel", "embedding", "logits") and not (match and int(match.group(1)) < N_FEATURE_MAPS):
            raise ValueError(
                f"unknown embedding part {part!r}; use 'mel', 'embedding', 'logits', 'b0'..'b16' "
                f"or a recipe from {sorted(RECIPES)}"
            )
    return parts


def has_feature_maps(model: Union[nn.Module, type]) -> bool:
    """Whether a model (or model class) returns its feature maps: its ``forward`` takes ``return_fmaps``."""
    forward = getattr(model, "forward", None)
    return forward is not None and "return_fmaps" in inspect.signature(forward).parameters


def embeddable_models() -> List[str]:
    """Catalogue names whose architecture exposes feature maps (judged from the class, nothing is built)."""
    from models import get_entry, list_models

    return [name for name in list_models() if isinstance(get_entry(name).builder, type)
            and has_feature_maps(get_entry(name).builder)]


def check_embeddable(name: str) -> None:
    """Raises ``ValueError`` naming ``name`` and the embeddable models unless ``name`` is one of them."""
    from models import list_models

    names = embeddable_models()
    if name in names:
        return
    # Short patterns (``mn*``) for families whose every name is embeddable, the names themselves otherwise.
    shown = []
    for prefix in sorted({re.match(r"[a-z]*", n).group(0) for n in names}):
        family = [n for n in names if n.startswith(prefix)]
        everyone = fnmatch.filter(list_models(), f"{prefix}*")
        shown += [f"{prefix}*"] if prefix and family == everyone else family
    what = ("is not in the catalogue" if name not in list_models()
            else "exposes no feature maps (its forward has no return_fmaps)")
    raise ValueError(f"model {name!r} cannot be embedded: it {what}; models that can be embedded: "
                     f"{', '.join(shown)} ({len(names)} names, see `sonolab models`)")


def _check_fmaps(model: nn.Module) -> None:
    if not has_feature_maps(model):
        raise ValueError(f"{type(model).__name__} exposes no feature maps (its forward has no return_fmaps); "
                         "embed an MN or DyMN model")


@contextlib.contextmanager
def _eval_mode(*modules: nn.Module) -> Iterator[None]:
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def _check_rate(frontend: nn.Module, sample_rate: int) -> None:
    expected = getattr(frontend, "sample_rate", sample_rate)
    if sample_rate != expected:
        raise ValueError(f"the frontend expects {expected} Hz audio, got {sample_rate} Hz; resample first")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _embed(model: nn.Module, frontend: nn.Module, audio: torch.Tensor, parts: Tuple[str, ...]) -> torch.Tensor:
    """(B, n) waveforms -> (B, D) for the given parts (no mode or grad handling)."""
    spec = frontend(audio)
    logits, embedding, fmaps = model(spec, return_fmaps=True)
    pieces = []
    for part in parts:
        if part == "mel":
            pieces.append(spec.mean(dim=3).flatten(1))
        elif part == "embedding":
            pieces.append(embedding)
        elif part == "logits":
            pieces.append(logits)
        else:
            pieces.append(fmaps[int(part[1:])].mean(dim=(2, 3)))
    return torch.cat(pieces, dim=1)


def embed(
    model: nn.Module, frontend: nn.Module, audio: torch.Tensor, sample_rate: int, recipe: Recipe = "blocks+mel"
) -> torch.Tensor:
    """One forward pass: (B, n) waveforms -> (B, D) embeddings."""
    _check_rate(frontend, sample_rate)
    _check_fmaps(model)
    parts = recipe_parts(recipe)
    with _eval_mode(model, frontend):
        return _embed(model, frontend, audio.to(_device(model)), parts)


def sliding_windows(audio: torch.Tensor, window: int, hop: int) -> torch.Tensor:
    """(B, n) -> (B, N, window): frames of the clip reflect-padded by half a window on both sides."""
    pad = window // 2
    if audio.shape[1] <= pad:
        raise ValueError(f"clips of {audio.shape[1]} samples are too short to reflect-pad by {pad} samples")
    padded = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    if padded.shape[1] < window:
        raise ValueError(f"clips of {audio.shape[1]} samples give no full window of {window} samples")
    return padded.unfold(1, window, hop)


def _embed_windows(
    model: nn.Module, frontend: nn.Module, audio: torch.Tensor, window: int, hop: int, parts: Tuple[str, ...],
    batch_size: int,
) -> torch.Tensor:
    windows = sliding_windows(audio, window, hop)
    b, n, _ = windows.shape
    flat = windows.reshape(b * n, window)
    out = torch.cat([_embed(model, frontend, chunk, parts) for chunk in flat.split(batch_size)], dim=0)
    return out.view(b, n, -1)


def scene_embeddings(
    model: nn.Module,
    frontend: nn.Module,
    audio: torch.Tensor,
    sample_rate: int,
    recipe: Recipe = "blocks+mel",
    max_window_s: float = 10.0,
    hop_s: float = 2.5,
    batch_size: int = 16,
) -> torch.Tensor:
    """(B, n) waveforms -> (B, D): one pass up to ``max_window_s``, else the mean over windows of that length.

    Args:
        model: MN or DyMN (forward with ``return_fmaps``).
        frontend: Its frontend (waveform -> (B, 1, F, T)).
        audio: Mono waveforms of equal length.
        sample_rate: Rate of ``audio``; must equal the frontend's.
        recipe: Embedding parts (see the module docstring).
        max_window_s: Longest clip embedded in one pass, and the window length beyond it.
        hop_s: Hop between windows for long clips.
        batch_size: Windows per forward pass.
    """
    _check_rate(frontend, sample_rate)
    _check_fmaps(model)
    parts = recipe_parts(recipe)
    window = int(max_window_s * sample_rate)
    with _eval_mode(model, frontend):
        audio = audio.to(_device(model))
        if audio.shape[1] <= window:
            return _embed(model, frontend, audio, parts)
        return _embed_windows(model, frontend, audio, window, int(hop_s * sample_rate), parts, batch_size).mean(dim=1)


def timestamp_embeddings(
    model: nn.Module,
    frontend: nn.Module,
    audio: torch.Tensor,
    sample_rate: int,
    recipe: Recipe = "blocks+mel",
    window_s: float = 0.16,
    hop_s: float = 0.05,
    batch_size: int = 256,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, n) waveforms -> embeddings (B, N, D) of short windows and their centre times (B, N) in ms.

    Args:
        model: MN or DyMN.
        frontend: Its frontend.
        audio: Mono waveforms of equal length.
        sample_rate: Rate of ``audio``; must equal the frontend's.
        recipe: Embedding parts (see the module docstring).
        window_s: Window length.
        hop_s: Hop between windows.
        batch_size: Windows per forward pass.
    """
    _check_rate(frontend, sample_rate)
    _check_fmaps(model)
    parts = recipe_parts(recipe)
    window, hop = int(window_s * sample_rate), int(hop_s * sample_rate)
    with _eval_mode(model, frontend):
        audio = audio.to(_device(model))
        embeddings = _embed_windows(model, frontend, audio, window, hop, parts, batch_size)
    n_windows = embeddings.shape[1]
    timestamps = torch.arange(n_windows, dtype=torch.float32) * (hop * 1000.0 / sample_rate)
    return embeddings, timestamps.unsqueeze(0).expand(audio.shape[0], -1).to(embeddings.device)
