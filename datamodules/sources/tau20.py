"""TAU Urban Acoustic Scenes 2020 Mobile (DCASE'20 Task 1a) as downloaded: ``meta.csv``, ``audio/`` and
``evaluation_setup/fold1_{train,evaluate}.csv`` -> ``tau20_{train,test}.h5`` at 44.1 kHz with scene/device/city
labels (train with ``label: scene``). File names and meta.csv follow TAU22 (:mod:`datamodules.sources.tau22`);
:func:`tau_layout` tells the two development layouts apart (``sonolab asc-pack`` packs either).
"""
from __future__ import annotations

import os
from typing import Dict

from datamodules.sources.common import LayoutError, pack_set, require
from datamodules.sources.tau22 import STORAGE_RATE, TAU22_LAYOUT, read_tau_meta, tau_pack_items, tau_vocabularies

TAU20_LAYOUT = "the TAU20 layout: meta.csv, audio/, evaluation_setup/fold1_train.csv, fold1_evaluate.csv"


def tau_layout(root: str) -> str:
    """``"tau20"`` when ``root`` has ``evaluation_setup/``, ``"tau22"`` otherwise (both need meta.csv and audio/).

    Raises:
        LayoutError: ``root`` is no folder, or has no ``meta.csv`` or ``audio/`` (naming both layouts).
    """
    both = f"{TAU22_LAYOUT}; or {TAU20_LAYOUT}"
    if not os.path.isdir(root):
        raise LayoutError(f"{root} is not a folder (expected {both})")
    for name in ("meta.csv", "audio"):
        if not os.path.exists(os.path.join(root, name)):
            raise LayoutError(f"{os.path.join(root, name)} not found (expected {both})")
    return "tau20" if os.path.isdir(os.path.join(root, "evaluation_setup")) else "tau22"


def pack_tau20(root: str, out_dir: str, codec: str = "pcm16", workers: int = 2,
               progress: bool = True) -> Dict[str, str]:
    """Packs TAU Urban Acoustic Scenes 2020 Mobile (official fold 1) at 44.1 kHz."""
    meta = read_tau_meta(require(os.path.join(root, "meta.csv"), "TAU20 meta.csv", TAU20_LAYOUT))
    vocab = tau_vocabularies(meta)
    tables = {part: require(os.path.join(root, "evaluation_setup", name), f"TAU20 {name}", TAU20_LAYOUT)
              for part, name in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv"))}
    parts = {part: tau_pack_items(root, table, meta, vocab) for part, table in tables.items()}  # all checked first
    written = {}
    for part, items in parts.items():
        written[part] = pack_set(items, os.path.join(out_dir, f"tau20_{part}.h5"), workers, progress, codec=codec,
                                 sample_rate=STORAGE_RATE, scene_names=vocab["scene"], device_names=vocab["device"],
                                 city_names=vocab["city"])
    return written
