"""Catalogue entries of the transformer zoo: the published backbones and the PretrainedSED frame-level models.

Backbones (input: the registered frontend's output for 10 s; M2D takes the 16 kHz waveform):

* ``beats_iter3_as2m``, ``beats_iter3plus_as2m``: Microsoft BEATs iter3 / iter3+ (AS2M, self-supervised), one
  architecture; weights from the URLs of microsoft/unilm ``beats/README.md`` (``BEATs_iter3.pt``,
  ``BEATs_iter3_plus_AS2M.pt``; Microsoft's ``{"cfg", "model"}`` files, mapped by ``beats_state_dict_filter``).
* ``atst_frame_base``: ATST-Frame base (Audio-WestlakeU/audiossl). Its checkpoint is only on Google Drive, which
  ``torch.hub`` cannot fetch: download ``atstframe_base.ckpt`` and pass ``checkpoint=PATH``.
* ``fpasst_deit_b_frame``: frame-level PaSST. Its initialisation is the ImageNet DeiT-B distilled 384 model, which
  lacks the conv stem: no strict load exists (see :func:`~models.transformers.checkpoints.deit_to_frame_passt`).
* ``passt_s_swa_p16_128_ap476``: PaSST-S clip tagger (kkoutini/PaSST release v0.0.1-audioset, 32 kHz).
* ``m2d_clap_vit_base_80x1001p16x16``: M2D-CLAP ViT-B (PretrainedSED's configuration). nttcslab/m2d ships it as a
  zip (weights + config) that ``torch.hub`` cannot read as one state dict: pass ``checkpoint=PATH``.
* ``asit_vit_base_128x592p16``: ASiT ViT-B/16 (weights from the ASiT authors, no direct URL: ``checkpoint=PATH``).

PretrainedSED (fschmid56/PretrainedSED release v0.0.1): ``pretrainedsed_<model>_strong`` is :class:`FrameSED` with
447-class strong and weak heads and no sequence model, loading ``<File>_strong_1.pt`` strictly;
``pretrainedsed_<model>_teacher`` adds the teachers' 2-layer BiGRU (2048 units per direction; no weights published).
"""
from __future__ import annotations

from typing import Dict, Tuple

from models.registry import register_model
from models.transformers.asit import ASiT
from models.transformers.atst_frame import ATSTFrame
from models.transformers.beats import BEATs, beats_state_dict_filter
from models.transformers.checkpoints import (
    atst_frame_upstream,
    hear21passt,
    pretrainedsed_asit,
    pretrainedsed_atst,
    pretrainedsed_beats,
    pretrainedsed_fpasst,
    pretrainedsed_m2d,
)
from models.transformers.frame_sed import FrameSED
from models.transformers.m2d import M2D
from models.transformers.passt import FramePaSST, PaSST

_BEATS_BLOB = "https://valle.blob.core.windows.net/share/BEATs/{}.pt"
_BEATS_SAS = ("?sv=2020-08-04&st=2023-03-01T07%3A51%3A05Z&se=2033-03-02T07%3A51%3A00Z&sr=c&sp=rl"
              "&sig=QJXmSJG9DbMKf48UDIU1MfzIro8HQOf3sqlNXiflY1I%3D")
PASST_S_URL = "https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt"
DEIT_B_DISTILLED_384_URL = "https://dl.fbaipublicfiles.com/deit/deit_base_distilled_patch16_384-d0272ac0.pth"
ATST_FRAME_BASE_URL = "https://drive.google.com/file/d/1bGJSZWlAIIJ6GL5Id5dW0PTB72DL-QDQ/view?usp=sharing"
M2D_URL = ("https://github.com/nttcslab/m2d/releases/download/v0.3.0/"
           "m2d_clap_vit_base-80x1001p16x16-240128_AS-FT_enconly.zip")
PRETRAINEDSED_URL = "https://github.com/fschmid56/PretrainedSED/releases/download/v0.0.1/"
CLIP_SAMPLES = 160000  # 10 s at 16 kHz
AUDIOSET_STRONG_CLASSES = 447


def beats_url(file: str) -> str:
    """Direct URL of a Microsoft BEATs release file (``BEATs_iter3_plus_AS2M``)."""
    return _BEATS_BLOB.format(file) + _BEATS_SAS


# PretrainedSED model -> (backbone name, release file prefix, filter, parameters of the released student).
PRETRAINEDSED: Dict[str, Tuple[str, str, object, int]] = {
    "beats": ("beats_iter3plus_as2m", "BEATs", pretrainedsed_beats, 90_999_278),
    "atst_frame": ("atst_frame_base", "ATST-F", pretrainedsed_atst, 86_106_750),
    "fpasst": ("fpasst_deit_b_frame", "fpasst", pretrainedsed_fpasst, 89_109_118),
    "m2d": ("m2d_clap_vit_base_80x1001p16x16", "M2D", pretrainedsed_m2d, 88_926_848),
    "asit": ("asit_vit_base_128x592p16", "ASIT", pretrainedsed_asit, 86_169_726),
}


def register_all() -> None:
    """Registers every name above (called once on import of :mod:`models.transformers`)."""
    for name, file, what in (("beats_iter3_as2m", "BEATs_iter3", "iter3"),
                             ("beats_iter3plus_as2m", "BEATs_iter3_plus_AS2M", "iter3+")):
        register_model(name, BEATs, frontend="beats_fbank", input_shape=(1, 1, 128, 998), url=beats_url(file),
                       state_dict_filter=beats_state_dict_filter,
                       description=f"BEATs {what} (AS2M, self-supervised), 90,311,792 params, 10 s -> 496 tokens")
    register_model("atst_frame_base", ATSTFrame, frontend="atst_mel", input_shape=(1, 1, 64, 1001),
                   state_dict_filter=atst_frame_upstream,
                   description="ATST-Frame base (audiossl), 85,419,264 params, 10 s -> 250 frames; weights: "
                               f"download atstframe_base.ckpt ({ATST_FRAME_BASE_URL}), pass checkpoint=PATH")
    register_model("fpasst_deit_b_frame", FramePaSST, frontend="fpasst_mel",
                   input_shape=(1, 1, 128, 1000),
                   description="frame-level PaSST, 88,421,632 params, 10 s -> 250 frames; init: DeiT-B distilled "
                               f"384 ({DEIT_B_DISTILLED_384_URL}) via checkpoints.deit_to_frame_passt, strict=False "
                               "(no conv stem in the file)")
    register_model("passt_s_swa_p16_128_ap476", PaSST, frontend="passt_mel", input_shape=(1, 1, 128, 1000),
                   url=PASST_S_URL, state_dict_filter=hear21passt,
                   description="PaSST-S SWA (AudioSet mAP .476, 32 kHz), 86,153,758 params, clip logits (527)")
    register_model("m2d_clap_vit_base_80x1001p16x16", M2D, input_shape=(1, CLIP_SAMPLES),
                   description="M2D-CLAP ViT-B/16 80x1001 (waveform in), 85,492,994 params, 10 s -> 62 x 3840; "
                               f"weights: unzip {M2D_URL}, pass checkpoint=PATH")
    register_model("asit_vit_base_128x592p16", ASiT, frontend="asit_fbank", input_shape=(1, 1, 128, 998),
                   description="ASiT ViT-B/16 (128 x 592 pre-training), 85,482,240 params, 10 s -> 497 tokens; "
                               "weights: the ASiT authors' file (no direct URL), pass checkpoint=PATH")
    for model, (backbone, file, state_filter, params) in PRETRAINEDSED.items():
        register_model(f"pretrainedsed_{model}_strong", FrameSED, input_shape=(1, CLIP_SAMPLES),
                       url=f"{PRETRAINEDSED_URL}{file}_strong_1.pt", state_dict_filter=state_filter,
                       description=f"PretrainedSED {backbone} + 447-class strong/weak heads, AudioSet strong, "
                                   f"{params:,} params, 16 kHz -> 40 ms frames",
                       backbone=backbone, n_classes_strong=AUDIOSET_STRONG_CLASSES,
                       n_classes_weak=AUDIOSET_STRONG_CLASSES, seq_model="none")
        register_model(f"pretrainedsed_{model}_teacher", FrameSED, input_shape=(1, CLIP_SAMPLES),
                       state_dict_filter=state_filter,
                       description=f"PretrainedSED teacher: {backbone} + BiGRU (2 x 2048) + 447-class heads "
                                   "(no published weights)",
                       backbone=backbone, n_classes_strong=AUDIOSET_STRONG_CLASSES,
                       n_classes_weak=AUDIOSET_STRONG_CLASSES, seq_model="gru", seq_hidden=2048, seq_layers=2)


register_all()
