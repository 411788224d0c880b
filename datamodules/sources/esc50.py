"""ESC-50 (Piczak 2015) as downloaded: ``meta/esc50.csv`` (filename, fold, target, category, ...) and
``audio/*.wav`` -> ``esc50_fold{1..5}.h5``, one file per official fold, classes ordered by ``target``
(the EfficientAT fine-tuning recipe, specs/tagging.md).
"""
from __future__ import annotations

import csv
import os
from typing import Dict, List

from datamodules.format.pack import PackItem
from datamodules.format.text import open_text
from datamodules.sources.common import LayoutError, pack_set, require

ESC50_FOLDS = 5


def read_esc50_meta(path: str) -> tuple[List[Dict[str, object]], List[str]]:
    """Rows (filename, fold, target) of ``esc50.csv`` and the class names ordered by target."""
    rows: List[Dict[str, object]] = []
    names: Dict[int, str] = {}
    with open_text(path) as f:
        reader = csv.DictReader(f)
        missing = {"filename", "fold", "target", "category"} - set(reader.fieldnames or ())
        if missing:
            raise LayoutError(f"{path}, line 1: missing columns {sorted(missing)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                fold, target = int(row["fold"]), int(row["target"])
            except (TypeError, ValueError):  # TypeError: a short row
                raise LayoutError(f"{path}, line {line_no}: fields 'fold' and 'target' must be integers, got "
                                 f"{row['fold']!r}, {row['target']!r}") from None
            if not 1 <= fold <= ESC50_FOLDS:
                raise LayoutError(f"{path}, line {line_no}, field 'fold': expected 1..{ESC50_FOLDS}, got {fold}")
            if names.setdefault(target, row["category"]) != row["category"]:
                raise LayoutError(f"{path}, line {line_no}, field 'category': target {target} is already "
                                 f"{names[target]!r}, not {row['category']!r}")
            rows.append({"filename": row["filename"], "fold": fold, "target": target})
    if sorted(names) != list(range(len(names))):
        raise LayoutError(f"{path}: targets must be 0..{len(names) - 1} without gaps, got {sorted(names)}")
    return rows, [names[t] for t in range(len(names))]


def pack_esc50(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
               progress: bool = True) -> List[str]:
    """Packs ESC-50 into one file per fold; returns their paths (fold 1 first)."""
    rows, classes = read_esc50_meta(require(os.path.join(root, "meta", "esc50.csv"), "ESC-50 table"))
    paths = []
    for fold in range(1, ESC50_FOLDS + 1):
        items = [PackItem(path=os.path.join(root, "audio", str(r["filename"])), name=str(r["filename"]),
                          weak=[int(r["target"])]) for r in rows if r["fold"] == fold]
        if not items:
            raise ValueError(f"{root}: fold {fold} has no clips")
        paths.append(pack_set(items, os.path.join(out_dir, f"esc50_fold{fold}.h5"), workers, progress, codec=codec,
                           sample_rate=sample_rate, class_names=classes))
    return paths
