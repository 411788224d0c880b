"""TAU Urban Acoustic Scenes 2022 Mobile (DCASE'24/'25 Task 1): the official layout on disk -> pack items.

The development folder (``meta.csv``, ``audio/``, ``split{5,10,25,50,100}.csv``, ``test.csv``) becomes two files of
the common HDF5 format at 44.1 kHz::

    OUT/tau_train.h5     the rows of split100.csv (every training clip)
    OUT/tau_test.h5      the rows of test.csv (the dev-test set; also the validation set, as in the baseline)
    OUT/split*.csv, OUT/test.csv   copies of the split lists

The smaller splits are *not* packed separately: ``datamodules.asc.ASCDataModule`` selects the rows of
``tau_train.h5`` whose ``audio_name`` appears in ``split{N}.csv`` (the splits are nested subsets of split100, so one
file serves all five).

Stored labels: ``scene`` indexes the alphabetical scene names (airport ... tram), ``device`` the fixed list
a, b, c, s1-s6 (parsed from the last '-' field of the file name, so train and test files share ids even though
s4-s6 only occur in test), ``city`` the sorted city names (text of ``identifier`` before the first '-').
"""
from __future__ import annotations

import csv
import os
import shutil
from typing import Dict, List

from datamodules.format.pack import PackItem
from datamodules.sources.common import pack_set
from metrics.asc import DEVICES

STORAGE_RATE = 44100
SPLIT_PERCENTS = (5, 10, 25, 50, 100)
TRAIN_FILE, TEST_FILE = "tau_train.h5", "tau_test.h5"


# ---------------------------------------------------------------------------------------------------------------
def parse_tau_filename(filename: str) -> Dict[str, str]:
    """Fields of ``audio/<scene>-<city>-<location>-<segment>-<snippet>-<device>.wav`` (TAU22; TAU20 file names lack
    the snippet and get ``snippet=""``).

    Scene names contain underscores, never '-', so splitting on '-' is unambiguous.
    """
    stem = os.path.splitext(os.path.basename(filename))[0]
    parts = stem.split("-")
    if len(parts) == 5:
        parts = parts[:4] + [""] + parts[4:]
    if len(parts) != 6:
        raise ValueError(f"{filename!r} is not a TAU file name <scene>-<city>-<location>-<segment>[-<snippet>]-<device>")
    keys = ("scene", "city", "location", "segment", "snippet", "device")
    return dict(zip(keys, parts))


def read_filenames(path: str) -> List[str]:
    """The ``filename`` column of a tab-separated TAU table (``split25.csv``, ``test.csv``, ``meta.csv``)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or "filename" not in [h.strip() for h in rows[0]]:
        raise ValueError(f"{path}: missing header with a 'filename' column")
    col = [h.strip() for h in rows[0]].index("filename")
    return [r[col].strip() for r in rows[1:] if len(r) > col and r[col].strip()]


def read_tau_meta(meta_csv: str) -> Dict[str, Dict[str, str]]:
    """filename -> {scene, device, city} from ``meta.csv`` (device from the file name, checked against source_label)."""
    with open(meta_csv, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = {"filename", "scene_label", "identifier"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{meta_csv}: missing columns {sorted(missing)}")
        meta = {}
        for line_no, row in enumerate(reader, start=2):
            name = row["filename"].strip()
            device = parse_tau_filename(name)["device"]
            source = (row.get("source_label") or "").strip()
            if source and source != device:
                raise ValueError(f"{meta_csv}, line {line_no}: source_label {source!r} but the file name says {device!r}")
            meta[name] = {"scene": row["scene_label"].strip(), "device": device,
                          "city": row["identifier"].strip().split("-", 1)[0]}
    return meta


def tau_pack_items(tau_dir: str, subset_csv: str, meta: Dict[str, Dict[str, str]],
                   vocab: Dict[str, List[str]]) -> List[PackItem]:
    """Pack items of the clips listed in ``subset_csv`` (in that order) with integer scene/device/city labels."""
    items = []
    for name in read_filenames(subset_csv):
        if name not in meta:
            raise ValueError(f"{subset_csv}: {name!r} is not in meta.csv")
        m = meta[name]
        items.append(PackItem(path=os.path.join(tau_dir, name), name=name, scene=vocab["scene"].index(m["scene"]),
                              device=vocab["device"].index(m["device"]), city=vocab["city"].index(m["city"])))
    return items


def tau_vocabularies(meta: Dict[str, Dict[str, str]]) -> Dict[str, List[str]]:
    """Scene names sorted (= label index), devices a, b, c, s1-s6 (+ any others, sorted), cities sorted."""
    devices = list(DEVICES) + sorted({m["device"] for m in meta.values()} - set(DEVICES))
    return {"scene": sorted({m["scene"] for m in meta.values()}), "device": devices,
            "city": sorted({m["city"] for m in meta.values()})}


def pack_tau(tau_dir: str, out_dir: str, codec: str = "pcm16", workers: int = 2,
             progress: bool = False) -> Dict[str, str]:
    """Packs a TAU22 development folder into ``out_dir/tau_{train,test}.h5`` and copies the split lists.

    Args:
        tau_dir: Folder with ``meta.csv``, ``audio/``, ``split*.csv`` and ``test.csv``.
        out_dir: Output folder (created).
        codec: ``pcm16`` (lossless, fastest to read) or ``flac``.
        workers: Packing processes.
        progress: Progress bars.

    Returns:
        ``{"train": path, "test": path}``.
    """
    if codec not in ("pcm16", "flac"):
        raise ValueError(f"codec must be 'pcm16' or 'flac', got {codec!r}")
    meta = read_tau_meta(os.path.join(tau_dir, "meta.csv"))
    vocab = tau_vocabularies(meta)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for part, table, out_name in (("train", "split100.csv", TRAIN_FILE), ("test", "test.csv", TEST_FILE)):
        items = tau_pack_items(tau_dir, os.path.join(tau_dir, table), meta, vocab)
        out = os.path.join(out_dir, out_name)
        written[part] = pack_set(items, out, workers, progress, codec=codec, sample_rate=STORAGE_RATE,
                                 scene_names=vocab["scene"], device_names=vocab["device"], city_names=vocab["city"])
    for name in sorted(os.listdir(tau_dir)):
        if (name.startswith("split") and name.endswith(".csv")) or name == "test.csv":
            if os.path.abspath(os.path.join(tau_dir, name)) != os.path.abspath(os.path.join(out_dir, name)):
                shutil.copyfile(os.path.join(tau_dir, name), os.path.join(out_dir, name))
    return written
