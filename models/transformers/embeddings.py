"""General-purpose embeddings of the transformer zoo, and the sliding windows of the HEAR 2021 recipes.

Two ways of embedding a clip (``sonolab embed`` uses both):

:class:`WindowedEmbedder` wraps a *one-pass* embedding function ``(B, n) waveforms -> (B, D)`` and cuts the audio
as the HEAR 2021 wrapper of PaSST (kkoutini/passt_hear21, ``wrapper.py``) does; :class:`TimeOptions` holds its
defaults (hear21passt ``base``):

* scene: a clip up to ``scene_window_ms`` (10 s) in one pass; a longer one is reflect-padded by half a window and
  cut into windows of that length every ``scene_hop_ms`` (2.5 s), whose embeddings are averaged;
* timestamps: windows of ``window_ms`` (160 ms) every ``hop_ms`` (50 ms) from the clip reflect-padded by half a
  window, so embedding ``i`` belongs to the window centred at ``i * hop_ms`` in the clip. Several window lengths at
  the one hop are concatenated in the given order (hear21passt ``base2level``: 160 and 800 ms);
  ``mel_window_ms`` appends the flattened frontend output of windows of that length (``base2levelmel``: 160 and
  640 ms, then the 60 ms mel: 128 bands x 6 frames, band-major). Scene embeddings never carry these parts.

PaSST-S (``passt_s_swa_p16_128_ap476``) is embedded that way with the HEAR ``mode`` as recipe
(:data:`CLIP_RECIPES`): ``all`` = logits (527) then the mean of the cls and dist tokens (768): 1295 values;
``embed_only``: 768; ``logits``: 527. hear21passt's 20 s / 30 s weights (``base20sec`` / ``base30sec``:
``input_tdim`` 2000 / 3000, scene hops 5 s / 10 s) are embedded with ``scene_window_ms`` 20000 / 30000: the model
is then built with a time position table for that window (:func:`load_embedder`). MN/DyMN go through the same
windows with :func:`models.efficientat.embeddings.embed` as their one-pass function.

:class:`FrameEmbedder` serves the frame-level backbones (BEATs, ATST-F, fPaSST, M2D, ASiT) and the
``pretrainedsed_*`` wrappers: timestamp embeddings are the 40 ms frames of :meth:`FrameSED.frames` (10 s chunks,
``ceil(n / 640)`` frames; frame ``k`` at ``40 k + 20`` ms, its centre), the scene embedding is their mean
(:data:`FRAME_RECIPES`). The wrappers also offer ``logits`` (the strong head per frame; for the scene the weak head,
the model's own clip output) and ``all`` (logits, then frames).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from models.efficientat.embeddings import sliding_windows
from models.registry import create_frontend, create_model, get_entry, list_models
from models.transformers.frame_sed import FRAME_BACKBONES, FRAME_HOP, SAMPLE_RATE, FrameSED
from models.transformers.passt import PaSST

EmbedFn = Callable[[torch.Tensor], torch.Tensor]
Stamps = Tuple[torch.Tensor, torch.Tensor]

CLIP_RECIPES: Dict[str, Tuple[str, ...]] = {"all": ("logits", "embedding"), "embed_only": ("embedding",),
                                            "logits": ("logits",)}
FRAME_RECIPES: Dict[str, Tuple[str, ...]] = {"frames": ("frames",)}
SED_RECIPES: Dict[str, Tuple[str, ...]] = {"frames": ("frames",), "logits": ("logits",), "all": ("logits", "frames")}
RECIPES_BY_KIND = {"clip": CLIP_RECIPES, "frame": FRAME_RECIPES, "sed": SED_RECIPES}
DEFAULT_RECIPE = {"clip": "all", "frame": "frames", "sed": "frames"}
FRAME_MS = FRAME_HOP * 1000 // SAMPLE_RATE  # 40


class EmbeddingOptionError(ValueError):
    """A recipe, time option or model a transformer embedding cannot take (the message names it and what fits)."""


class ClipTooShortError(ValueError):
    """A clip too short for the requested windows (``sonolab embed`` logs and skips it)."""


@dataclasses.dataclass(frozen=True)
class TimeOptions:
    """Time resolution of :class:`WindowedEmbedder`; the defaults are hear21passt ``base``'s.

    Attributes:
        window_ms: Timestamp window length(s); several are concatenated (HEAR 2-level: ``(160, 800)``).
        hop_ms: Hop between timestamps.
        scene_window_ms: Longest clip embedded in one pass, and the window length beyond it.
        scene_hop_ms: Hop between scene windows of a longer clip.
        mel_window_ms: Length of the windows whose flattened frontend output ends each timestamp embedding
            (0: none; HEAR ``base2levelmel``: 60).
    """

    window_ms: Tuple[int, ...] = (160,)
    hop_ms: int = 50
    scene_window_ms: int = 10000
    scene_hop_ms: int = 2500
    mel_window_ms: int = 0


def to_samples(ms: int, sample_rate: int, option: str) -> int:
    """``ms`` milliseconds as a whole, positive number of samples (``EmbeddingOptionError`` naming ``option``)."""
    if ms <= 0 or (ms * sample_rate) % 1000:
        raise EmbeddingOptionError(f"{option}={ms} ms: expected a positive duration of whole samples at "
                                   f"{sample_rate} Hz")
    return ms * sample_rate // 1000


def sliding(embed: EmbedFn, audio: torch.Tensor, window: int, hop: int, batch_size: int) -> torch.Tensor:
    """(B, n) -> (B, N, D): ``embed`` of windows every ``hop`` of the clip reflect-padded by half a window."""
    if audio.shape[1] <= window // 2:
        raise ClipTooShortError(f"a clip of {audio.shape[1]} samples is too short for windows of {window} samples "
                                f"(reflect padding by {window // 2} needs a longer clip)")
    windows = sliding_windows(audio, window, hop)
    b, n, _ = windows.shape
    flat = windows.reshape(b * n, window)
    return torch.cat([embed(chunk) for chunk in flat.split(batch_size)], dim=0).view(b, n, -1)


class WindowedEmbedder:
    """Scene and timestamp embeddings of a one-pass embedding function, windowed as the module docstring says.

    Args:
        embed: (B, n) waveforms -> (B, D) in one forward pass (on the model's device; eval mode is the caller's).
        sample_rate: Rate ``embed`` expects.
        options: Windows and hops.
        mel: (B, n) -> (B, F * T) flattened frontend output, required when ``options.mel_window_ms`` is set.
        device: Where ``embed`` runs; inputs are moved there.
        scene_batch: Scene windows per pass.
        stamp_batch: Timestamp windows per pass.
    """

    def __init__(self, embed: EmbedFn, sample_rate: int, options: TimeOptions = TimeOptions(),
                 mel: Optional[EmbedFn] = None, device: Union[str, torch.device] = "cpu", scene_batch: int = 16,
                 stamp_batch: int = 256) -> None:
        if not options.window_ms:
            raise EmbeddingOptionError("window_ms: expected at least one timestamp window length")
        self.embed, self.mel, self.sample_rate, self.options = embed, mel, sample_rate, options
        self.device, self.scene_batch, self.stamp_batch = torch.device(device), scene_batch, stamp_batch
        self.windows = [to_samples(ms, sample_rate, "window_ms") for ms in options.window_ms]
        self.hop = to_samples(options.hop_ms, sample_rate, "hop_ms")
        self.scene_window = to_samples(options.scene_window_ms, sample_rate, "scene_window_ms")
        self.scene_hop = to_samples(options.scene_hop_ms, sample_rate, "scene_hop_ms")
        self.parts: List[Tuple[EmbedFn, int]] = [(embed, w) for w in self.windows]
        if options.mel_window_ms:
            if mel is None:
                raise EmbeddingOptionError("mel_window_ms needs a frontend: this model takes waveforms")
            self.parts.append((mel, to_samples(options.mel_window_ms, sample_rate, "mel_window_ms")))
        odd = [w for _, w in self.parts if w % 2]
        if odd:  # reflect padding by w // 2 then gives one window fewer: the parts would not line up
            raise EmbeddingOptionError(f"timestamp windows of {odd[0]} samples: expected even window lengths")

    def scene(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, n) -> (B, D): one pass up to the scene window, else the mean over scene windows."""
        audio = audio.to(self.device)
        with torch.no_grad():
            if audio.shape[1] <= self.scene_window:
                return self.embed(audio)
            return sliding(self.embed, audio, self.scene_window, self.scene_hop, self.scene_batch).mean(dim=1)

    def timestamps(self, audio: torch.Tensor) -> Stamps:
        """(B, n) -> embeddings (B, N, D) of the timestamp windows (concatenated parts) and centres (B, N) in ms."""
        audio = audio.to(self.device)
        with torch.no_grad():
            parts = [sliding(fn, audio, window, self.hop, self.stamp_batch) for fn, window in self.parts]
        embeddings = torch.cat(parts, dim=-1)
        times = torch.arange(embeddings.shape[1], dtype=torch.float32) * float(self.options.hop_ms)
        return embeddings, times.unsqueeze(0).expand(audio.shape[0], -1).to(embeddings.device)

    def check_windows(self) -> None:
        """Runs every timestamp part once on silence of its window length, so that a window the model cannot take
        (e.g. shorter than one PaSST patch) is one clear error before any clip is embedded."""
        for fn, window in self.parts:
            with torch.no_grad():
                try:
                    fn(torch.zeros(1, window, device=self.device))
                except ValueError as err:
                    raise EmbeddingOptionError(f"timestamp windows of {window * 1000 // self.sample_rate} ms do "
                                               f"not fit the model ({err})") from None

    def __call__(self, audio: torch.Tensor, timestamps: bool = False) -> Tuple[torch.Tensor, Optional[Stamps]]:
        """Scene embeddings, and the timestamp embeddings if asked for."""
        return self.scene(audio), self.timestamps(audio) if timestamps else None


class FrameEmbedder:
    """40 ms frame embeddings of a :class:`FrameSED` (see the module docstring).

    Args:
        sed: The frame model (a wrapper with heads, or a backbone wrapped without heads).
        recipe: A key of :data:`SED_RECIPES` (``logits`` and ``all`` need both heads) or ``frames``.
        device: Where the model runs; inputs are moved there.
    """

    def __init__(self, sed: FrameSED, recipe: str = "frames", device: Union[str, torch.device] = "cpu") -> None:
        if recipe not in SED_RECIPES:
            raise EmbeddingOptionError(f"frame recipe {recipe!r}: expected one of {sorted(SED_RECIPES)}")
        self.parts = SED_RECIPES[recipe]
        if "logits" in self.parts and (sed.strong_head is None or sed.weak_head is None):
            raise EmbeddingOptionError(f"recipe {recipe!r} needs the strong and weak heads; "
                                       f"{sed.backbone_name} has none: use 'frames'")
        self.sed, self.sample_rate, self.device = sed, sed.sample_rate, torch.device(device)

    def __call__(self, audio: torch.Tensor, timestamps: bool = False) -> Tuple[torch.Tensor, Optional[Stamps]]:
        """(B, n) -> scene (B, D) and, if asked for, frame embeddings (B, T, D) with centres (B, T) in ms."""
        audio = audio.to(self.device)
        with torch.no_grad():
            frames = self.sed.frames(audio)
            frame_parts = {"frames": frames}
            scene_parts = {"frames": frames.mean(dim=1)}
            if "logits" in self.parts:
                if isinstance(self.sed.seq_model, nn.Identity):  # the heads see the frames: reuse them
                    strong, weak = self.sed.strong_head(frames), self.sed.weak_head(frames.mean(dim=1))
                else:  # a sequence model runs per 10 s chunk: the wrapper's own forward
                    strong, weak = self.sed(audio)
                    strong = strong.transpose(1, 2)
                frame_parts["logits"], scene_parts["logits"] = strong, weak
        scene = torch.cat([scene_parts[p] for p in self.parts], dim=-1)
        if not timestamps:
            return scene, None
        embeddings = torch.cat([frame_parts[p] for p in self.parts], dim=-1)
        times = torch.arange(embeddings.shape[1], dtype=torch.float32) * FRAME_MS + FRAME_MS / 2
        return scene, (embeddings, times.unsqueeze(0).expand(audio.shape[0], -1).to(embeddings.device))


Embedder = Union[WindowedEmbedder, FrameEmbedder]


def model_kind(name: str) -> Optional[str]:
    """``"clip"`` (PaSST-S), ``"frame"`` (a frame-level backbone), ``"sed"`` (a ``pretrainedsed_*`` wrapper) or
    ``None`` (not a transformer-zoo model); judged from the catalogue entry, nothing is built."""
    builder = get_entry(name).builder
    if isinstance(builder, type) and issubclass(builder, PaSST):
        return "clip"
    if builder is FrameSED:
        return "sed"
    return "frame" if getattr(builder, "__name__", "") in FRAME_BACKBONES else None


def embeddable_models() -> List[str]:
    """Catalogue names of the transformer zoo that :func:`load_embedder` embeds."""
    return [name for name in list_models() if model_kind(name) is not None]


def recipes(name: str) -> Dict[str, Tuple[str, ...]]:
    """The recipes model ``name`` offers (raw frame backbones: ``frames`` only)."""
    kind = model_kind(name)
    if kind is None:
        raise EmbeddingOptionError(f"model {name!r} is not a transformer-zoo model; embeddable ones: "
                                   f"{', '.join(embeddable_models())}")
    return RECIPES_BY_KIND[kind]


def clip_embedding(model: PaSST, frontend: nn.Module, recipe: str = "all") -> EmbedFn:
    """PaSST-S one-pass embedding: waveform -> frontend -> ``(logits, embedding)`` -> the recipe's parts (HEAR
    ``mode``: ``all`` concatenates logits then embedding)."""
    if recipe not in CLIP_RECIPES:
        raise EmbeddingOptionError(f"PaSST recipe {recipe!r}: expected one of {sorted(CLIP_RECIPES)}")
    parts = CLIP_RECIPES[recipe]

    def embed(audio: torch.Tensor) -> torch.Tensor:
        logits, embedding = model(frontend(audio))
        found = {"logits": logits, "embedding": embedding}
        return torch.cat([found[p] for p in parts], dim=1)

    return embed


def flat_frontend(frontend: nn.Module) -> EmbedFn:
    """(B, n) -> the frontend's (B, 1, F, T) output flattened band-major to (B, F * T) (the HEAR ``+mel`` part)."""
    return lambda audio: frontend(audio).flatten(1)


def passt_model_args(name: str, frontend: nn.Module, scene_window_ms: int,
                     args: Mapping[str, Any]) -> Dict[str, Any]:
    """``args`` plus the ``input_tdim`` of a time position table that covers one scene window, if the catalogue's is
    shorter (hear21passt's 20 s / 30 s models: 2000 / 3000 frames). Sizes are read from a meta-device build."""
    args = dict(args)
    if "input_tdim" in args:
        return args
    with torch.device("meta"):
        probe = create_model(name, **args)
    frames = frontend.frames(scene_window_ms * frontend.sample_rate // 1000)
    kernel, stride = probe.patch_embed.proj.kernel_size[1], probe.patch_embed.proj.stride[1]
    if (frames - kernel) // stride + 1 > probe.time_new_pos_embed.shape[3]:
        args["input_tdim"] = frames
    return args


def frame_model(name: str, checkpoint: Optional[str] = None, pretrained: bool = False,
                model_args: Optional[Mapping[str, Any]] = None) -> FrameSED:
    """A ``pretrainedsed_*`` wrapper as published, or a frame-level backbone (with its weights) inside a
    :class:`FrameSED` without heads, so that both give 40 ms frames the same way."""
    model_args = dict(model_args or {})
    if model_kind(name) == "sed":
        return create_model(name, checkpoint=checkpoint, pretrained=pretrained, **model_args)
    net = create_model(name, checkpoint=checkpoint, pretrained=pretrained, **model_args)
    with torch.device("meta"):  # the wrapper's own backbone is replaced at once: do not initialise it
        sed = FrameSED(name, n_classes_strong=None, n_classes_weak=None, backbone_overrides=model_args)
    setattr(sed.model, sed.model.attr, net)
    return sed


def load_embedder(name: str, recipe: Optional[str] = None, checkpoint: Optional[str] = None,
                  pretrained: bool = False, options: Optional[TimeOptions] = None,
                  model_args: Optional[Mapping[str, Any]] = None, device: Union[str, torch.device] = "cpu"
                  ) -> Embedder:
    """The embedder of a transformer-zoo model, its weights loaded, in eval mode on ``device``.

    Args:
        name: Catalogue name (see :func:`embeddable_models`).
        recipe: One of :func:`recipes` (``None``: ``all`` for PaSST, ``frames`` for frame models).
        checkpoint: Weights file (loaded strictly through the entry's filter); ``None`` with ``pretrained`` False:
            random initialisation.
        pretrained: Download the published weights.
        options: Time resolution of PaSST (``None``: the HEAR defaults); frame models take none.
        model_args: Constructor arguments replacing the catalogue's (e.g. a tiny test version, or
            ``num_classes`` of a fine-tuned PaSST).
        device: Where the model runs.
    """
    kind = model_kind(name)
    recipe = DEFAULT_RECIPE[kind] if kind is not None and recipe is None else recipe
    if recipe not in recipes(name):
        raise EmbeddingOptionError(f"recipe {recipe!r} does not fit {name}; expected one of "
                                   f"{', '.join(recipes(name))}")
    if kind != "clip":
        if options is not None:
            raise EmbeddingOptionError(f"{name} gives {FRAME_MS} ms frames: window and hop options apply to "
                                       "windowed models (PaSST, MN, DyMN) only")
        sed = frame_model(name, checkpoint, pretrained, model_args)
        return FrameEmbedder(sed.to(device).eval(), recipe, device)
    options = options or TimeOptions()
    frontend = create_frontend(name).to(device).eval()
    model_args = passt_model_args(name, frontend, options.scene_window_ms, model_args or {})
    model = create_model(name, checkpoint=checkpoint, pretrained=pretrained, **model_args).to(device).eval()
    return WindowedEmbedder(clip_embedding(model, frontend, recipe), frontend.sample_rate, options,
                            mel=flat_frontend(frontend), device=device)
