"""TAU Urban Acoustic Scenes 2020 Mobile (DCASE'20 Task 1a) as downloaded: ``meta.csv``, ``audio/`` and
``evaluation_setup/fold1_{train,evaluate}.csv`` -> ``tau20_{train,test}.h5`` at 44.1 kHz with scene/device/city
labels (train with ``label: scene``). File names and meta.csv follow TAU22 (:mod:`datamodules.sources.tau22`).
"""
from __future__ import annotations

import os
from typing import Dict

from datamodules.sources.common import pack_set, require
from datamodules.sources.tau22 import STORAGE_RATE, read_tau_meta, tau_pack_items, tau_vocabularies


def pack_tau20(root: str, out_dir: str, codec: str = "pcm16", workers: int = 2,
               progress: bool = True) -> Dict[str, str]:
    """Packs TAU Urban Acoustic Scenes 2020 Mobile (official fold 1) at 44.1 kHz."""
    meta = read_tau_meta(require(os.path.join(root, "meta.csv"), "TAU20 meta.csv"))
    vocab = tau_vocabularies(meta)
    written = {}
    for part, table in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        subset = require(os.path.join(root, "evaluation_setup", table), "TAU20 evaluation setup")
        items = tau_pack_items(root, subset, meta, vocab)
        written[part] = pack_set(items, os.path.join(out_dir, f"tau20_{part}.h5"), workers, progress, codec=codec,
                              sample_rate=STORAGE_RATE, scene_names=vocab["scene"], device_names=vocab["device"],
                              city_names=vocab["city"])
    return written
