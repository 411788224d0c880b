"""FSD50K (Fonseca et al., 2022) as Zenodo ships it -> ``fsd50k_{train,val,eval}.h5`` with its 200 classes.

Layout: ``FSD50K.ground_truth/vocabulary.csv`` (no header: ``index,label,mid``), ``FSD50K.ground_truth/dev.csv``
(``fname,labels,mids,split`` with split ``train``/``val``), ``FSD50K.ground_truth/eval.csv`` (``fname,labels,mids``),
audio in ``FSD50K.dev_audio/<fname>.wav`` and ``FSD50K.eval_audio/<fname>.wav``. Clip ids are ``<fname>.wav``.
The community HDF5 files of FSD50K share the AudioSet layout and need no packing.
"""
from __future__ import annotations

import csv
import os
from typing import Dict, List, Tuple

from datamodules.format.pack import PackItem
from datamodules.format.text import open_text
from datamodules.sources.common import LayoutError, pack_set, require

GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def read_vocabulary(path: str) -> List[str]:
    """Class labels of ``vocabulary.csv`` in index order."""
    labels: Dict[int, str] = {}
    with open_text(require(path, "FSD50K vocabulary")) as f:
        for line_no, fields in enumerate(csv.reader(f), start=1):
            if not fields:
                continue
            try:
                labels[int(fields[0])] = fields[1].strip()
            except (ValueError, IndexError):
                raise LayoutError(f"{path}, line {line_no}: expected index,label,mid") from None
    if sorted(labels) != list(range(len(labels))):
        raise LayoutError(f"{path}: indices must be 0..{len(labels) - 1} without gaps")
    return [labels[i] for i in range(len(labels))]


def read_ground_truth(path: str, classes: List[str]) -> List[Tuple[str, List[int], str]]:
    """(fname, class indices, split) rows of ``dev.csv`` / ``eval.csv`` (split ``eval`` for the latter)."""
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    with open_text(require(path, "FSD50K ground truth")) as f:
        reader = csv.DictReader(f)
        missing = {"fname", "labels"} - set(reader.fieldnames or ())
        if missing:
            raise LayoutError(f"{path}, line 1: missing columns {sorted(missing)}")
        for row in reader:
            line_no = reader.line_num
            if row["fname"] is None or row["labels"] is None:
                raise LayoutError(f"{path}, line {line_no}: expected {', '.join(reader.fieldnames or ())}")
            labels = [x.strip() for x in row["labels"].split(",") if x.strip()]
            unknown = [x for x in labels if x not in index]
            if unknown:
                raise LayoutError(f"{path}, line {line_no}, field 'labels': {unknown} not in vocabulary.csv")
            split = (row.get("split") or "eval").strip()
            rows.append((row["fname"].strip(), sorted({index[x] for x in labels}), split))
    return rows


def pack_fsd50k(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
                progress: bool = True) -> Dict[str, str]:
    """Packs the train/val splits of the development set and the evaluation set; returns split -> path."""
    classes = read_vocabulary(os.path.join(root, GROUND_TRUTH, "vocabulary.csv"))
    written = {}
    for part, table in (("dev", "dev.csv"), ("eval", "eval.csv")):
        rows = read_ground_truth(os.path.join(root, GROUND_TRUTH, table), classes)
        audio_dir = require(os.path.join(root, AUDIO[part]), "FSD50K audio folder")
        for split in sorted({r[2] for r in rows}):
            if split not in ("train", "val", "eval"):
                raise LayoutError(f"{root}/{GROUND_TRUTH}/{table}: unknown split {split!r} (train, val)")
            items = [PackItem(path=os.path.join(audio_dir, f"{fname}.wav"), name=f"{fname}.wav", weak=weak)
                     for fname, weak, s in rows if s == split]
            written[split] = pack_set(items, os.path.join(out_dir, f"fsd50k_{split}.h5"), workers, progress,
                                      codec=codec, sample_rate=sample_rate, class_names=classes)
    return written
