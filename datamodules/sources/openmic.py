"""OpenMIC-2018 as downloaded: ``openmic-2018.npz`` (``Y_true``, ``Y_mask``, ``sample_key``), ``class-map.json``,
``audio/<key[:3]>/<key>.ogg`` and ``partitions/split01_{train,test}.csv`` -> ``openmic_{train,test}.h5`` with the
soft labels and label masks (:func:`datamodules.format.hdf5.attach_soft_labels`); clip ids are the sample keys.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

import numpy as np

from datamodules.format.hdf5 import attach_soft_labels
from datamodules.format.pack import PackItem
from datamodules.sources.common import pack_set, require


def _read_keys(path: str) -> List[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def pack_openmic(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
                 progress: bool = True, partition: str = "split01") -> Dict[str, str]:
    """Packs OpenMIC-2018 (train/test partition ``partition``) with soft labels and masks."""
    data = np.load(require(os.path.join(root, "openmic-2018.npz"), "OpenMIC labels"), allow_pickle=True)
    for key in ("Y_true", "Y_mask", "sample_key"):
        if key not in data:
            raise ValueError(f"{root}/openmic-2018.npz: missing array {key!r}")
    keys = [str(k) for k in data["sample_key"]]
    with open(require(os.path.join(root, "class-map.json"), "OpenMIC class map"), encoding="utf-8") as f:
        class_map: Dict[str, int] = json.load(f)
    classes = sorted(class_map, key=class_map.get)
    soft, mask = np.asarray(data["Y_true"], dtype=np.float32), np.asarray(data["Y_mask"], dtype=bool)
    if soft.shape != (len(keys), len(classes)) or mask.shape != soft.shape:
        raise ValueError(f"{root}/openmic-2018.npz: Y_true {soft.shape} / Y_mask {mask.shape} must be "
                         f"({len(keys)}, {len(classes)})")
    row = {k: i for i, k in enumerate(keys)}
    written = {}
    for part in ("train", "test"):
        table = require(os.path.join(root, "partitions", f"{partition}_{part}.csv"), "OpenMIC partition")
        subset = _read_keys(table)
        unknown = [k for k in subset if k not in row]
        if unknown:
            raise ValueError(f"{table}: {len(unknown)} keys not in openmic-2018.npz, e.g. {unknown[:3]}")
        items = [PackItem(path=os.path.join(root, "audio", k[:3], f"{k}.ogg"), name=k,
                          weak=list(np.flatnonzero(mask[row[k]] & (soft[row[k]] > 0.5)))) for k in subset]
        out = pack_set(items, os.path.join(out_dir, f"openmic_{part}.h5"), workers, progress, codec=codec,
                    sample_rate=sample_rate, class_names=classes)
        index = [row[k] for k in subset]
        attach_soft_labels(out, subset, soft[index], mask[index])
        written[part] = out
    return written
