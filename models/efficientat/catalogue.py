"""Catalogue entries of every published EfficientAT checkpoint (fschmid56/EfficientAT, release v0.0.1).

Each name fixes the architecture, the frontend settings it was trained with and the input shape its complexity is
quoted for (10 s at 32 kHz). File names are those of the public repository's ``pretrained_models`` tables.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from models.efficientat.dymn import DyMN
from models.efficientat.mn import MN
from models.registry import register_model

RELEASE_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
FRONTEND = "efficientat_mel"
SAMPLE_RATE = 32000
CLIP_SECONDS = 10
AUDIOSET_CLASSES = 527
IMAGENET_CLASSES = 1000

MN_WIDTHS: Dict[str, float] = {
    "mn01": 0.1, "mn02": 0.2, "mn04": 0.4, "mn05": 0.5, "mn06": 0.6, "mn08": 0.8, "mn10": 1.0,
    "mn12": 1.2, "mn14": 1.4, "mn16": 1.6, "mn20": 2.0, "mn30": 3.0, "mn40": 4.0,
}
DYMN_WIDTHS: Dict[str, float] = {"dymn04": 0.4, "dymn10": 1.0, "dymn20": 2.0}

# AudioSet-trained MNs: name -> weight file (the mAP in the file name is the published AudioSet eval mAP).
MN_AUDIOSET_FILES: Dict[str, str] = {
    "mn01_as": "mn01_as_mAP_298.pt",
    "mn02_as": "mn02_as_mAP_378.pt",
    "mn04_as": "mn04_as_mAP_432.pt",
    "mn05_as": "mn05_as_mAP_443.pt",
    "mn10_as": "mn10_as_mAP_471.pt",
    "mn20_as": "mn20_as_mAP_478.pt",
    "mn30_as": "mn30_as_mAP_482.pt",
    "mn40_as": "mn40_as_mAP_484.pt",
    "mn40_as_ext": "mn40_as_ext_mAP_487.pt",
    "mn40_as_no_im_pre": "mn40_as_no_im_pre_mAP_483.pt",
    # Further members of the published ensembles; the repository names them "mn40_as(2)" etc.
    "mn40_as_2": "mn40_as_mAP_483.pt",
    "mn40_as_3": "mn40_as_mAP_483(2).pt",
    "mn40_as_ext_2": "mn40_as_ext_mAP_486.pt",
    "mn40_as_ext_3": "mn40_as_ext_mAP_485.pt",
    "mn40_as_no_im_pre_2": "mn40_as_no_im_pre_mAP_483(2).pt",
    "mn40_as_no_im_pre_3": "mn40_as_no_im_pre_mAP_482.pt",
}
# mn10 at other time resolutions: name -> (hop in samples, weight file).
MN10_HOP_VARIANTS: Dict[str, Tuple[int, str]] = {
    "mn10_as_hop_5": (160, "mn10_as_hop_5_mAP_475.pt"),
    "mn10_as_hop_15": (480, "mn10_as_hop_15_mAP_463.pt"),
    "mn10_as_hop_20": (640, "mn10_as_hop_20_mAP_456.pt"),
    "mn10_as_hop_25": (800, "mn10_as_hop_25_mAP_447.pt"),
}
# mn10 at other frequency resolutions: name -> (mel bins, weight file).
MN10_MEL_VARIANTS: Dict[str, Tuple[int, str]] = {
    "mn10_as_mels_40": (40, "mn10_as_mels_40_mAP_453.pt"),
    "mn10_as_mels_64": (64, "mn10_as_mels_64_mAP_461.pt"),
    "mn10_as_mels_256": (256, "mn10_as_mels_256_mAP_474.pt"),
}
# mn10 with the fully-convolutional head: name -> (strides, weight file).
MN10_FC_VARIANTS: Dict[str, Tuple[Tuple[int, int, int, int], str]] = {
    "mn10_as_fc": ((2, 2, 2, 2), "mn10_as_fc_mAP_465.pt"),
    "mn10_as_fc_s2221": ((2, 2, 2, 1), "mn10_as_fc_s2221_mAP_466.pt"),
    "mn10_as_fc_s2211": ((2, 2, 1, 1), "mn10_as_fc_s2211_mAP_466.pt"),
}
# ImageNet-pretrained starting points (1-channel stem). ``mn10_im_pytorch`` is torchvision's model converted by the
# authors, shipped with a random 527-class classifier; the self-trained ones keep their 1000-class classifier.
MN_IMAGENET = ("mn01_im", "mn02_im", "mn04_im", "mn05_im", "mn10_im", "mn20_im", "mn30_im", "mn40_im")
DYMN_AUDIOSET_FILES: Dict[str, Tuple[str, str]] = {
    # name -> (use_dy_blocks, weight file)
    "dymn04_as": ("all", "dymn04_as.pt"),
    "dymn10_as": ("all", "dymn10_as.pt"),
    "dymn20_as": ("all", "dymn20_as_mAP_493.pt"),
    "dymn20_as_1": ("all", "dymn20_as.pt"),
    "dymn20_as_2": ("all", "dymn20_as_mAP_489.pt"),
    "dymn20_as_3": ("all", "dymn20_as_mAP_490.pt"),
    "dymn04_replace_se_as": ("replace_se", "dymn04_replace_se_as.pt"),
    # The repository's URL for this file has a stray leading space; the release asset has none.
    "dymn10_replace_se_as": ("replace_se", "dymn10_replace_se_as.pt"),
}
DYMN_IMAGENET = ("dymn04_im", "dymn10_im", "dymn20_im")
DYMN_IMAGENET_TEMPERATURE = 30.0  # the kernel-attention temperature the ImageNet stage ends with


def _frames(hop_size: int) -> int:
    """Frames of a 10 s clip (pre-emphasis drops a sample, centred STFT adds one frame)."""
    return (SAMPLE_RATE * CLIP_SECONDS - 1) // hop_size + 1


def _register(
    name: str,
    builder: Any,
    url_file: Optional[str],
    description: str,
    n_mels: int = 128,
    hop_size: int = 320,
    **kwargs: Any,
) -> None:
    frontend_kwargs: Dict[str, Any] = {}
    if n_mels != 128:
        frontend_kwargs["n_mels"] = n_mels
    if hop_size != 320:
        frontend_kwargs["hop_size"] = hop_size
    register_model(
        name,
        builder,
        frontend=FRONTEND,
        frontend_kwargs=frontend_kwargs,
        input_shape=(1, 1, n_mels, _frames(hop_size)),
        macs_convention="aten",
        url=None if url_file is None else RELEASE_URL + url_file,
        description=description,
        **kwargs,
    )


def _width(name: str) -> float:
    prefix = name.split("_")[0]
    return DYMN_WIDTHS[prefix] if prefix.startswith("dymn") else MN_WIDTHS[prefix]


def register_all() -> None:
    """Registers every name above (called once on import of :mod:`models.efficientat`)."""
    for name, file in MN_AUDIOSET_FILES.items():
        _register(name, MN, file, f"MN width {_width(name)}, AudioSet", width_mult=_width(name),
                  num_classes=AUDIOSET_CLASSES)
    for name, (hop, file) in MN10_HOP_VARIANTS.items():
        _register(name, MN, file, f"MN width 1.0, AudioSet, hop {hop / SAMPLE_RATE * 1000:g} ms", hop_size=hop,
                  width_mult=1.0, num_classes=AUDIOSET_CLASSES, input_dim_t=_frames(hop))
    for name, (n_mels, file) in MN10_MEL_VARIANTS.items():
        _register(name, MN, file, f"MN width 1.0, AudioSet, {n_mels} mel bins", n_mels=n_mels, width_mult=1.0,
                  num_classes=AUDIOSET_CLASSES, input_dim_f=n_mels)
    for name, (strides, file) in MN10_FC_VARIANTS.items():
        _register(name, MN, file, f"MN width 1.0, AudioSet, fully-convolutional head, strides {strides}",
                  width_mult=1.0, num_classes=AUDIOSET_CLASSES, head_type="fully_convolutional", strides=strides)
    for name in MN_IMAGENET:
        _register(name, MN, f"{name}.pt", f"MN width {_width(name)}, ImageNet (starting point for AudioSet)",
                  width_mult=_width(name), num_classes=IMAGENET_CLASSES)
    _register("mn10_im_pytorch", MN, "mn10_im_pytorch.pt",
              "MN width 1.0, torchvision ImageNet weights adapted to 1 channel (random 527-class classifier)",
              width_mult=1.0, num_classes=AUDIOSET_CLASSES)
    for prefix in ("mn06", "mn08", "mn12", "mn14", "mn16"):
        _register(prefix, MN, None, f"MN width {MN_WIDTHS[prefix]}, architecture only (no published weights)",
                  width_mult=MN_WIDTHS[prefix], num_classes=AUDIOSET_CLASSES)
    for name, (dy_blocks, file) in DYMN_AUDIOSET_FILES.items():
        _register(name, DyMN, file, f"DyMN width {_width(name)} ({dy_blocks} dynamic), AudioSet",
                  width_mult=_width(name), num_classes=AUDIOSET_CLASSES, use_dy_blocks=dy_blocks, temperature=1.0)
    for name in DYMN_IMAGENET:
        _register(name, DyMN, f"{name}.pt", f"DyMN width {_width(name)}, ImageNet (starting point for AudioSet)",
                  width_mult=_width(name), num_classes=IMAGENET_CLASSES, temperature=DYMN_IMAGENET_TEMPERATURE)


register_all()
