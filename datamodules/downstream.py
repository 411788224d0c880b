"""Packers for the downstream sets of the EfficientAT fine-tuning recipes (specs/tagging.md, "Downstream
fine-tuning recipes"): ESC-50, OpenMIC-2018 and TAU Urban Acoustic Scenes 2020 Mobile (DCASE'20 Task 1a).
FSD50K needs none: its community HDF5 files share the AudioSet layout.

``sonolab downstream-pack {esc50,openmic,tau20} --root DIR --out-dir OUT``:

* ESC-50 (``meta/esc50.csv``: filename, fold, target, category, ...; ``audio/*.wav``) -> ``esc50_fold{1..5}.h5``,
  one file per official fold, classes ordered by ``target``.
* OpenMIC-2018 (``openmic-2018.npz`` with ``Y_true``, ``Y_mask``, ``sample_key``; ``class-map.json``;
  ``audio/<key[:3]>/<key>.ogg``; ``partitions/split01_{train,test}.csv``) -> ``openmic_{train,test}.h5`` with the
  soft labels and label masks (:func:`datamodules.h5format.attach_soft_labels`); clip ids are the sample keys.
* TAU20 (``meta.csv``, ``audio/``, ``evaluation_setup/fold1_{train,evaluate}.csv``) -> ``tau20_{train,test}.h5``
  with scene/device/city labels (train with ``label: scene``).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import numpy as np

from datamodules.asc import STORAGE_RATE, read_tau_meta, tau_pack_items, tau_vocabularies
from datamodules.h5format import attach_soft_labels
from datamodules.pack import PackItem, pack

ESC50_FOLDS = 5


def _require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _pack(items: Sequence[PackItem], out: str, workers: int, progress: bool, **kwargs) -> str:
    report = pack(items, out, workers=workers, progress=progress, **kwargs)
    if report.skipped:
        print(f"warning: {report.skipped} unreadable clips skipped, see {report.errors_path}", file=sys.stderr)
    return out


def read_esc50_meta(path: str) -> tuple[List[Dict[str, object]], List[str]]:
    """Rows (filename, fold, target) of ``esc50.csv`` and the class names ordered by target."""
    rows: List[Dict[str, object]] = []
    names: Dict[int, str] = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"filename", "fold", "target", "category"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                fold, target = int(row["fold"]), int(row["target"])
            except ValueError:
                raise ValueError(f"{path}, line {line_no}: fields 'fold' and 'target' must be integers, got "
                                 f"{row['fold']!r}, {row['target']!r}") from None
            if not 1 <= fold <= ESC50_FOLDS:
                raise ValueError(f"{path}, line {line_no}, field 'fold': expected 1..{ESC50_FOLDS}, got {fold}")
            if names.setdefault(target, row["category"]) != row["category"]:
                raise ValueError(f"{path}, line {line_no}, field 'category': target {target} is already "
                                 f"{names[target]!r}, not {row['category']!r}")
            rows.append({"filename": row["filename"], "fold": fold, "target": target})
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: targets must be 0..{len(names) - 1} without gaps, got {sorted(names)}")
    return rows, [names[t] for t in range(len(names))]


def pack_esc50(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
               progress: bool = True) -> List[str]:
    """Packs ESC-50 into one file per fold; returns their paths (fold 1 first)."""
    rows, classes = read_esc50_meta(_require(os.path.join(root, "meta", "esc50.csv"), "ESC-50 table"))
    paths = []
    for fold in range(1, ESC50_FOLDS + 1):
        items = [PackItem(path=os.path.join(root, "audio", str(r["filename"])), name=str(r["filename"]),
                          weak=[int(r["target"])]) for r in rows if r["fold"] == fold]
        if not items:
            raise ValueError(f"{root}: fold {fold} has no clips")
        paths.append(_pack(items, os.path.join(out_dir, f"esc50_fold{fold}.h5"), workers, progress, codec=codec,
                           sample_rate=sample_rate, class_names=classes))
    return paths


def _read_keys(path: str) -> List[str]:
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def pack_openmic(root: str, out_dir: str, codec: str = "mp3", sample_rate: int = 32000, workers: int = 2,
                 progress: bool = True, partition: str = "split01") -> Dict[str, str]:
    """Packs OpenMIC-2018 (train/test partition ``partition``) with soft labels and masks."""
    data = np.load(_require(os.path.join(root, "openmic-2018.npz"), "OpenMIC labels"), allow_pickle=True)
    for key in ("Y_true", "Y_mask", "sample_key"):
        if key not in data:
            raise ValueError(f"{root}/openmic-2018.npz: missing array {key!r}")
    keys = [str(k) for k in data["sample_key"]]
    with open(_require(os.path.join(root, "class-map.json"), "OpenMIC class map"), encoding="utf-8") as f:
        class_map: Dict[str, int] = json.load(f)
    classes = sorted(class_map, key=class_map.get)
    soft, mask = np.asarray(data["Y_true"], dtype=np.float32), np.asarray(data["Y_mask"], dtype=bool)
    if soft.shape != (len(keys), len(classes)) or mask.shape != soft.shape:
        raise ValueError(f"{root}/openmic-2018.npz: Y_true {soft.shape} / Y_mask {mask.shape} must be "
                         f"({len(keys)}, {len(classes)})")
    row = {k: i for i, k in enumerate(keys)}
    written = {}
    for part in ("train", "test"):
        table = _require(os.path.join(root, "partitions", f"{partition}_{part}.csv"), "OpenMIC partition")
        subset = _read_keys(table)
        unknown = [k for k in subset if k not in row]
        if unknown:
            raise ValueError(f"{table}: {len(unknown)} keys not in openmic-2018.npz, e.g. {unknown[:3]}")
        items = [PackItem(path=os.path.join(root, "audio", k[:3], f"{k}.ogg"), name=k,
                          weak=list(np.flatnonzero(mask[row[k]] & (soft[row[k]] > 0.5)))) for k in subset]
        out = _pack(items, os.path.join(out_dir, f"openmic_{part}.h5"), workers, progress, codec=codec,
                    sample_rate=sample_rate, class_names=classes)
        index = [row[k] for k in subset]
        attach_soft_labels(out, subset, soft[index], mask[index])
        written[part] = out
    return written


def pack_tau20(root: str, out_dir: str, codec: str = "pcm16", workers: int = 2,
               progress: bool = True) -> Dict[str, str]:
    """Packs TAU Urban Acoustic Scenes 2020 Mobile (official fold 1) at 44.1 kHz."""
    meta = read_tau_meta(_require(os.path.join(root, "meta.csv"), "TAU20 meta.csv"))
    vocab = tau_vocabularies(meta)
    written = {}
    for part, table in (("train", "fold1_train.csv"), ("test", "fold1_evaluate.csv")):
        subset = _require(os.path.join(root, "evaluation_setup", table), "TAU20 evaluation setup")
        items = tau_pack_items(root, subset, meta, vocab)
        written[part] = _pack(items, os.path.join(out_dir, f"tau20_{part}.h5"), workers, progress, codec=codec,
                              sample_rate=STORAGE_RATE, scene_names=vocab["scene"], device_names=vocab["device"],
                              city_names=vocab["city"])
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab downstream-pack {esc50,openmic,tau20} --root DIR --out-dir OUT``."""
    parser = argparse.ArgumentParser(prog="sonolab downstream-pack",
                                     description="Pack ESC-50, OpenMIC-2018 or TAU20 into sonolab HDF5 files.")
    parser.add_argument("dataset", choices=("esc50", "openmic", "tau20"))
    parser.add_argument("--root", required=True, help="the dataset folder as downloaded")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--codec", default=None, help="mp3 (default; pcm16 for tau20), flac, ogg or pcm16")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    if args.dataset == "esc50":
        paths = pack_esc50(args.root, args.out_dir, args.codec or "mp3", workers=args.workers, progress=progress)
    elif args.dataset == "openmic":
        paths = list(pack_openmic(args.root, args.out_dir, args.codec or "mp3", workers=args.workers,
                                  progress=progress).values())
    else:
        paths = list(pack_tau20(args.root, args.out_dir, args.codec or "pcm16", workers=args.workers,
                                progress=progress).values())
    for path in paths:
        print(path)
    return 0
