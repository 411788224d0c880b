"""State-dict filters of the transformer zoo: one small function per published file format.

Each maps a loaded file onto the keys of our module and is what a catalogue entry's ``state_dict_filter`` names, so
``create_model(name, checkpoint=PATH)`` / ``pretrained=True`` load strictly. Each also accepts our own keys
unchanged (a file saved from our module, or a Lightning checkpoint whose ``model.`` prefix
:func:`models.registry.read_state_dict` already removed). A file of another layout raises
:class:`CheckpointLayoutError` naming the first key that does not fit.

Formats:

* PretrainedSED release files (``<Model>_{ssl,weak,strong_1}.pt``): plain ``PredictionsWrapper`` state dicts whose
  backbone prefixes predate the public wrapper (:func:`pretrainedsed_beats`, ``..._atst``, ``..._fpasst``,
  ``..._m2d``, ``..._asit``); torchaudio ``mel_transform`` buffers are dropped (ours are not in the state dict).
* ATST-Frame upstream (Audio-WestlakeU/audiossl Lightning checkpoints): :func:`atst_frame_upstream`.
* PaSST-S as released by kkoutini/PaSST or wrapped by the ``hear21passt`` package: :func:`hear21passt`.
* DeiT-B distilled 384 (ImageNet), the fPaSST initialisation: :func:`deit_to_frame_passt` (not strict: the conv
  stem is not in the file).
* Microsoft BEATs releases: :func:`models.transformers.beats.beats_state_dict_filter`.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping

import torch
import torch.nn.functional as F

StateDict = Dict[str, torch.Tensor]
SED_HEAD_PREFIXES = ("seq_model.", "strong_head.", "weak_head.")


class CheckpointLayoutError(ValueError):
    """A checkpoint whose keys do not match the format its filter expects."""


def unwrap_lightning(state: Mapping[str, Any]) -> StateDict:
    """The ``state_dict`` of a Lightning checkpoint, or ``state`` itself when it is already a state dict."""
    inner = state.get("state_dict") if isinstance(state, Mapping) else None
    return dict(inner) if isinstance(inner, Mapping) else dict(state)


def _first(keys: Iterable[str], limit: int = 3) -> str:
    keys = list(keys)
    return ", ".join(repr(k) for k in keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


# ----------------------------------------------------------------------------------------------------------------
# PretrainedSED
# ----------------------------------------------------------------------------------------------------------------
def _pretrainedsed(state: Mapping[str, Any], attr: str, old_prefix: str) -> StateDict:
    """Renames ``old_prefix`` to ``model.<attr>.``, drops torchaudio mel buffers, checks every key is a wrapper key."""
    new_prefix = f"model.{attr}."
    out = {}
    for key, value in unwrap_lightning(state).items():
        if "mel_transform" in key:
            continue
        if old_prefix != new_prefix and key.startswith(old_prefix) and not key.startswith(new_prefix):
            key = new_prefix + key[len(old_prefix):]
        out[key] = value
    unexpected = [k for k in out if not k.startswith((new_prefix,) + SED_HEAD_PREFIXES)]
    if unexpected:
        raise CheckpointLayoutError(f"PretrainedSED {attr} checkpoint: unexpected keys {_first(unexpected)}; "
                                    f"expected keys under {new_prefix}, seq_model., strong_head., weak_head.")
    if not any(k.startswith(new_prefix) for k in out):
        raise CheckpointLayoutError(f"PretrainedSED {attr} checkpoint has no backbone keys (none under "
                                    f"{new_prefix!r} or {old_prefix!r}); first keys: {_first(out)}")
    return out


def pretrainedsed_beats(state: Mapping[str, Any]) -> StateDict:
    """PretrainedSED BEATs files: ``model.model.*`` -> ``model.beats.*``."""
    return _pretrainedsed(state, "beats", "model.model.")


def pretrainedsed_atst(state: Mapping[str, Any]) -> StateDict:
    """PretrainedSED ATST-F files: keys already ``model.atst.*``; torchaudio ``mel_transform`` buffers dropped."""
    return _pretrainedsed(state, "atst", "model.atst.")


def pretrainedsed_fpasst(state: Mapping[str, Any]) -> StateDict:
    """PretrainedSED fPaSST files: ``model.*`` -> ``model.fpasst.*``."""
    return _pretrainedsed(state, "fpasst", "model.")


def pretrainedsed_m2d(state: Mapping[str, Any]) -> StateDict:
    """PretrainedSED M2D files: ``model.*`` -> ``model.m2d.*`` (files already under ``model.m2d.`` are kept)."""
    return _pretrainedsed(state, "m2d", "model.")


def pretrainedsed_asit(state: Mapping[str, Any]) -> StateDict:
    """PretrainedSED ASiT files: ``model.*`` -> ``model.asit.*``."""
    return _pretrainedsed(state, "asit", "model.")


# ----------------------------------------------------------------------------------------------------------------
# upstream backbones
# ----------------------------------------------------------------------------------------------------------------
def atst_frame_upstream(state: Mapping[str, Any]) -> StateDict:
    """ATST-Frame checkpoints of Audio-WestlakeU/audiossl (and their fine-tuned forms) -> :class:`ATSTFrame` keys.

    * pre-training checkpoints: the teacher encoder ``model.teacher.encoder.*`` (``teacher.encoder.*`` once the
      registry has removed the Lightning ``model.`` prefix); its ``norm`` becomes ``norm_frame``, its unused
      ``cls_token`` is dropped, the student and projection heads are ignored;
    * fine-tuned checkpoints: ``...encoder.encoder.frame_encoder.*`` (C2F) or ``...encoder.encoder.*``, with
      ``encoder.encoder.teacher_module.*`` dropped;
    * our own keys pass unchanged.
    """
    state = unwrap_lightning(state)
    out: StateDict = {}
    for key, value in state.items():
        if key.startswith(("model.teacher.encoder.", "teacher.encoder.")):
            rest = key.split("teacher.encoder.", 1)[1]
            if rest.startswith("cls_token"):
                continue
            out["norm_frame." + rest[len("norm."):] if rest.startswith("norm.") else rest] = value
        elif "encoder.encoder.frame_encoder." in key:
            out[key.split("encoder.encoder.frame_encoder.", 1)[1]] = value
        elif "encoder.encoder.teacher_module." in key:
            continue
        elif "encoder.encoder." in key:
            out[key.split("encoder.encoder.", 1)[1]] = value
    if not out and "pos_embed" in state:  # already ours
        out = dict(state)
    if "pos_embed" not in out or "norm_frame.weight" not in out:
        raise CheckpointLayoutError(
            "ATST-Frame checkpoint: no teacher encoder (model.teacher.encoder.*), fine-tuned encoder "
            f"(encoder.encoder.*) or ATSTFrame keys (pos_embed, norm_frame.*) found; first keys: {_first(state)}")
    return out


def hear21passt(state: Mapping[str, Any]) -> StateDict:
    """PaSST-S files of kkoutini/PaSST (plain) or of the ``hear21passt`` wrapper (``net.`` prefix, ``device_proxy``)."""
    out = {}
    for key, value in unwrap_lightning(state).items():
        key = key[len("net."):] if key.startswith("net.") else key
        if key != "device_proxy":
            out[key] = value
    if "cls_token" not in out or "time_new_pos_embed" not in out:
        raise CheckpointLayoutError("PaSST checkpoint: expected cls_token and time_new_pos_embed (optionally under "
                                    f"net.); first keys: {_first(out)}")
    return out


def deit_to_frame_passt(state: Mapping[str, Any], in_channels: int = 16, kernel: tuple = (128, 2),
                        time_positions: int = 250) -> StateDict:
    """DeiT (distilled) ImageNet weights -> fPaSST keys, as PaSST's ``checkpoint_filter_fn`` adapts them.

    ``pos_embed`` (cls, dist, square grid) becomes ``new_pos_embed`` (the two token rows), and the grid, bicubically
    resized to 1 x ``time_positions`` (``align_corners=False``), gives ``time_new_pos_embed`` and its mean over time
    ``freq_new_pos_embed``. The RGB patch kernel (E, 3, 16, 16) is tiled over ``in_channels`` channels, scaled by
    3 / ``in_channels`` and reshaped to (E, in_channels, *kernel). The classifier heads are dropped.

    The result does not load strictly: the fPaSST conv stem (``conv_in_1..3``) is not in an ImageNet file and keeps
    its initialisation (load with ``strict=False``; the missing keys are exactly the six stem tensors).
    """
    state = dict(state.get("model", state)) if isinstance(state.get("model"), Mapping) else dict(state)
    if "pos_embed" not in state or "patch_embed.proj.weight" not in state:
        raise CheckpointLayoutError("DeiT checkpoint: expected pos_embed and patch_embed.proj.weight (optionally "
                                    f"under 'model'); first keys: {_first(state)}")
    out = {k: v for k, v in state.items() if not k.startswith(("head.", "head_dist.", "pos_embed"))}
    pos = state["pos_embed"]
    side = math.isqrt(pos.shape[1] - 2)
    if side * side != pos.shape[1] - 2:
        raise CheckpointLayoutError(f"DeiT checkpoint: pos_embed has shape {tuple(pos.shape)}; expected 2 token rows "
                                    "plus a square grid")
    grid = pos[0, 2:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(1, time_positions), mode="bicubic", align_corners=False)
    out["new_pos_embed"] = pos[:, :2]
    out["freq_new_pos_embed"] = grid.mean(dim=3, keepdim=True)
    out["time_new_pos_embed"] = grid.mean(dim=2, keepdim=True)
    weight = state["patch_embed.proj.weight"]
    if weight.shape[2] * weight.shape[3] != kernel[0] * kernel[1]:
        raise CheckpointLayoutError(f"DeiT checkpoint: patch kernel {tuple(weight.shape[2:])} cannot be reshaped to "
                                    f"{kernel}")
    repeats = -(-in_channels // weight.shape[1])
    tiled = weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels)
    out["patch_embed.proj.weight"] = tiled.reshape(weight.shape[0], in_channels, *kernel)
    return out
