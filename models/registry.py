"""Model and frontend catalogue.

Every published model is one registered *name* that carries its whole configuration: the architecture's
constructor arguments, the frontend it expects (with that frontend's settings), the input shape its complexity is
quoted for, the MAC-counting convention of its paper, and where its published weights live. Nobody passes widths,
heads or mel settings by hand::

    model = create_model("mn10_as", checkpoint="mn10_as.pt")
    frontend = create_frontend("mn10_as")

Architectures register entries with :func:`register_model`; frontends with :func:`register_frontend`.
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

StateDictFilter = Callable[[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue entry.

    Attributes:
        name: Catalogue name, e.g. ``mn10_as``.
        builder: Callable that builds the architecture from keyword arguments.
        kwargs: Constructor arguments fixed by the name.
        frontend: Name of the frontend in the frontend registry (``None``: the model takes waveforms).
        frontend_kwargs: Arguments of that frontend fixed by the name (e.g. ``n_mels=64``).
        input_shape: (B, C, F, T) input at which the paper quotes complexity.
        macs_convention: ``"aten"`` (torch's FlopCounterMode / 2, the EfficientAT convention) or ``"torchinfo"``
            (torchinfo's mult-adds, the DCASE Task 1 convention).
        url: Published weights (``pretrained=True``), or ``None``.
        state_dict_filter: Maps a published state dict onto ours (key renames, dropped buffers).
        description: One line for ``list_models``.
    """

    name: str
    builder: Callable[..., nn.Module]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    frontend: Optional[str] = None
    frontend_kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_shape: Tuple[int, ...] = (1, 1, 128, 1000)
    macs_convention: str = "aten"
    url: Optional[str] = None
    state_dict_filter: Optional[StateDictFilter] = None
    description: str = ""


@dataclass(frozen=True)
class FrontendEntry:
    """A registered frontend: a builder and its default arguments."""

    name: str
    builder: Callable[..., nn.Module]
    kwargs: Mapping[str, Any] = field(default_factory=dict)


_MODELS: Dict[str, ModelEntry] = {}
_FRONTENDS: Dict[str, FrontendEntry] = {}
_MACS_CONVENTIONS = ("aten", "torchinfo")


def register_model(
    name: str,
    builder: Callable[..., nn.Module],
    *,
    frontend: Optional[str] = None,
    frontend_kwargs: Optional[Mapping[str, Any]] = None,
    input_shape: Sequence[int] = (1, 1, 128, 1000),
    macs_convention: str = "aten",
    url: Optional[str] = None,
    state_dict_filter: Optional[StateDictFilter] = None,
    description: str = "",
    **kwargs: Any,
) -> ModelEntry:
    """Registers a catalogue name; see :class:`ModelEntry` for the arguments. Returns the entry."""
    if name in _MODELS:
        raise ValueError(f"model name {name!r} is registered twice")
    if macs_convention not in _MACS_CONVENTIONS:
        raise ValueError(f"macs_convention must be one of {_MACS_CONVENTIONS}, got {macs_convention!r}")
    entry = ModelEntry(
        name=name,
        builder=builder,
        kwargs=dict(kwargs),
        frontend=frontend,
        frontend_kwargs=dict(frontend_kwargs or {}),
        input_shape=tuple(int(s) for s in input_shape),
        macs_convention=macs_convention,
        url=url,
        state_dict_filter=state_dict_filter,
        description=description,
    )
    _MODELS[name] = entry
    return entry


def register_frontend(name: str, builder: Callable[..., nn.Module], **kwargs: Any) -> FrontendEntry:
    """Registers a frontend name with default constructor arguments."""
    if name in _FRONTENDS:
        raise ValueError(f"frontend name {name!r} is registered twice")
    entry = FrontendEntry(name=name, builder=builder, kwargs=dict(kwargs))
    _FRONTENDS[name] = entry
    return entry


def _unknown(kind: str, name: str, known: Sequence[str]) -> KeyError:
    close = [k for k in known if name.split("_")[0] in k][:8]
    hint = f" Similar: {', '.join(close)}." if close else ""
    return KeyError(f"unknown {kind} {name!r}.{hint} See `list_{kind}s()` for all {len(known)} names.")


def get_entry(name: str) -> ModelEntry:
    """Returns the catalogue entry of ``name`` (``KeyError`` naming close matches if unknown)."""
    try:
        return _MODELS[name]
    except KeyError:
        raise _unknown("model", name, sorted(_MODELS)) from None


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered model names matching a shell-style ``pattern``."""
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def list_frontends(pattern: str = "*") -> list[str]:
    """Sorted registered frontend names matching a shell-style ``pattern``."""
    return sorted(n for n in _FRONTENDS if fnmatch.fnmatch(n, pattern))


def create_frontend(name: str, **overrides: Any) -> nn.Module:
    """Builds a frontend by frontend name, or the frontend that model ``name`` expects.

    Args:
        name: A frontend name (``efficientat_mel``) or a model name (``mn10_as_mels_64``).
        **overrides: Constructor arguments that replace the registered ones (e.g. ``freqm=48``).
    """
    if name in _MODELS:
        model = _MODELS[name]
        if model.frontend is None:
            raise ValueError(f"model {name!r} takes raw waveforms and has no frontend")
        entry = _FRONTENDS[model.frontend]
        kwargs = {**entry.kwargs, **model.frontend_kwargs, **overrides}
    elif name in _FRONTENDS:
        entry = _FRONTENDS[name]
        kwargs = {**entry.kwargs, **overrides}
    else:
        raise _unknown("frontend", name, sorted(_FRONTENDS) + sorted(_MODELS))
    return entry.builder(**kwargs)


def create_model(
    name: str,
    *,
    checkpoint: Optional[str] = None,
    pretrained: bool = False,
    strict: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Builds a catalogue model, optionally with weights.

    Args:
        name: Catalogue name (see :func:`list_models`).
        checkpoint: Path to a state dict (published ``.pt`` or a Lightning ``.ckpt``) loaded with ``strict``.
        pretrained: Download the published weights of ``name`` (needs the network).
        strict: Passed to ``load_state_dict``.
        **overrides: Constructor arguments that replace the registered ones (e.g. ``num_classes=50``).

    Returns:
        The model in train mode.
    """
    entry = get_entry(name)
    model = entry.builder(**{**entry.kwargs, **overrides})
    if checkpoint is not None and pretrained:
        raise ValueError("pass either checkpoint=PATH or pretrained=True, not both")
    if pretrained:
        _load_filtered(model, entry, _download_state_dict(entry), strict)
    elif checkpoint is not None:
        load_weights(model, name, checkpoint, strict)
    return model


def load_weights(module: nn.Module, name: str, path: str, strict: bool = True) -> None:
    """Loads the weights file ``path`` (published state dict or Lightning checkpoint) into ``module``, a network of
    catalogue entry ``name``, through that entry's state-dict filter."""
    _load_filtered(module, get_entry(name), read_state_dict(path), strict)


def _load_filtered(module: nn.Module, entry: ModelEntry, state: Dict[str, torch.Tensor], strict: bool) -> None:
    if entry.state_dict_filter is not None:
        state = entry.state_dict_filter(state)
    module.load_state_dict(state, strict=strict)


def read_state_dict(path: str, prefix: str = "model.") -> Dict[str, torch.Tensor]:
    """Reads a plain state dict, or the model part of a Lightning checkpoint (keys under ``prefix``)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file {path!r} does not exist")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
        if any(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items() if k.startswith(prefix)}
    if not isinstance(obj, dict):
        raise ValueError(f"{path!r} holds a {type(obj).__name__}, expected a state dict")
    return obj


def _download_state_dict(entry: ModelEntry) -> Dict[str, torch.Tensor]:
    if entry.url is None:
        raise ValueError(f"model {entry.name!r} has no published weights; train it or pass checkpoint=PATH")
    try:
        return torch.hub.load_state_dict_from_url(entry.url, map_location="cpu", weights_only=True)
    except OSError as err:  # URLError and socket errors are OSErrors
        raise RuntimeError(
            f"could not download the weights of {entry.name!r} from {entry.url} ({err}). "
            "Offline? Download the file elsewhere and pass checkpoint=PATH."
        ) from err
