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

import os
import shutil
from typing import Dict, List, Set, Tuple

from datamodules.format.label_tables import read_table
from datamodules.format.pack import PackItem
from datamodules.sources.common import LayoutError, pack_set, require
from metrics.asc import DEVICES

STORAGE_RATE = 44100
SPLIT_PERCENTS = (5, 10, 25, 50, 100)
TRAIN_FILE, TEST_FILE = "tau_train.h5", "tau_test.h5"
TAU22_LAYOUT = "the TAU22 development layout: meta.csv, audio/, split5.csv ... split100.csv, test.csv"


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
    if len(parts) != 6 or not all(parts[:4]) or not parts[5]:
        raise LayoutError(f"{filename!r} is not a TAU file name <scene>-<city>-<location>-<segment>[-<snippet>]-"
                          "<device>")
    keys = ("scene", "city", "location", "segment", "snippet", "device")
    return dict(zip(keys, parts))


def _filename_rows(path: str) -> List[Tuple[int, str]]:
    """(line number, file name) of the non-empty ``filename`` fields of a TAU table."""
    table = read_table(path)
    table.require("filename")
    return [(line_no, row["filename"]) for line_no, row in table.rows if row["filename"]]


def read_filenames(path: str) -> List[str]:
    """The ``filename`` column of a tab-separated TAU table (``split25.csv``, ``test.csv``, ``meta.csv``).

    Raises:
        LabelTableError: Not UTF-8 text, no header with a ``filename`` column, or a row longer than the header.
    """
    return [name for _, name in _filename_rows(path)]


def read_tau_meta(meta_csv: str) -> Dict[str, Dict[str, str]]:
    """filename -> {scene, device, city} from ``meta.csv`` (device from the file name, checked against source_label).

    Raises:
        LayoutError: An empty field, a file name that is no TAU name, a repeated file, or a contradicting
            ``source_label`` (naming the line); LabelTableError: a missing column or malformed text.
    """
    table = read_table(meta_csv)
    table.require("filename", "scene_label", "identifier")
    meta: Dict[str, Dict[str, str]] = {}
    for line_no, row in table.rows:
        where = f"{meta_csv}, line {line_no}"
        for col in ("filename", "scene_label", "identifier"):
            if not row[col]:
                raise LayoutError(f"{where}, field {col!r}: empty")
        name = row["filename"]
        try:
            device = parse_tau_filename(name)["device"]
        except LayoutError as err:
            raise LayoutError(f"{where}, field 'filename': {err}") from None
        source = row.get("source_label", "")
        if source and source != device:
            raise LayoutError(f"{where}, field 'source_label': {source!r} but the file name says {device!r}")
        if name in meta:
            raise LayoutError(f"{where}, field 'filename': {name!r} is listed twice")
        meta[name] = {"scene": row["scene_label"], "device": device, "city": row["identifier"].split("-", 1)[0]}
    if not meta:
        raise LayoutError(f"{meta_csv}: no rows below the header")
    return meta


def tau_pack_items(tau_dir: str, subset_csv: str, meta: Dict[str, Dict[str, str]],
                   vocab: Dict[str, List[str]]) -> List[PackItem]:
    """Pack items of the clips listed in ``subset_csv`` (in that order) with integer scene/device/city labels.

    Raises:
        LayoutError: A listed file that is not in meta.csv (naming the line), or listed audio files that are missing.
    """
    items, absent = [], []
    for line_no, name in _filename_rows(subset_csv):
        if name not in meta:
            raise LayoutError(f"{subset_csv}, line {line_no}, field 'filename': {name!r} is not in meta.csv")
        if not os.path.isfile(os.path.join(tau_dir, name)):
            absent.append(name)
        m = meta[name]
        items.append(PackItem(path=os.path.join(tau_dir, name), name=name, scene=vocab["scene"].index(m["scene"]),
                              device=vocab["device"].index(m["device"]), city=vocab["city"].index(m["city"])))
    if absent:
        raise LayoutError(f"{subset_csv}: {len(absent)} of {len(items)} listed audio files are missing under "
                          f"{tau_dir}, e.g. {', '.join(absent[:3])} (were all audio archives unpacked into audio/?)")
    if not items:
        raise LayoutError(f"{subset_csv}: lists no files")
    return items


def tau_vocabularies(meta: Dict[str, Dict[str, str]]) -> Dict[str, List[str]]:
    """Scene names sorted (= label index), devices a, b, c, s1-s6 (+ any others, sorted), cities sorted."""
    devices = list(DEVICES) + sorted({m["device"] for m in meta.values()} - set(DEVICES))
    return {"scene": sorted({m["scene"] for m in meta.values()}), "device": devices,
            "city": sorted({m["city"] for m in meta.values()})}


def _check_splits(tau_dir: str, train_names: Set[str]) -> None:
    """The smaller ``split{N}.csv`` select rows of ``tau_train.h5``: each of their files must be in split100.csv."""
    for percent in SPLIT_PERCENTS[:-1]:
        path = os.path.join(tau_dir, f"split{percent}.csv")
        if os.path.isfile(path):
            for line_no, name in _filename_rows(path):
                if name not in train_names:
                    raise LayoutError(f"{path}, line {line_no}, field 'filename': {name!r} is not in split100.csv")


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
    for name in ("meta.csv", "split100.csv", "test.csv"):
        require(os.path.join(tau_dir, name), f"TAU22 {name}", TAU22_LAYOUT)
    meta = read_tau_meta(os.path.join(tau_dir, "meta.csv"))
    vocab = tau_vocabularies(meta)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    parts = {part: (tau_pack_items(tau_dir, os.path.join(tau_dir, table), meta, vocab), out_name)
             for part, table, out_name in (("train", "split100.csv", TRAIN_FILE), ("test", "test.csv", TEST_FILE))}
    _check_splits(tau_dir, {item.name for item in parts["train"][0]})  # every table is checked before packing
    for part, (items, out_name) in parts.items():
        written[part] = pack_set(items, os.path.join(out_dir, out_name), workers, progress, codec=codec,
                                 sample_rate=STORAGE_RATE, scene_names=vocab["scene"], device_names=vocab["device"],
                                 city_names=vocab["city"])
    for name in sorted(os.listdir(tau_dir)):
        if (name.startswith("split") and name.endswith(".csv")) or name == "test.csv":
            if os.path.abspath(os.path.join(tau_dir, name)) != os.path.abspath(os.path.join(out_dir, name)):
                shutil.copyfile(os.path.join(tau_dir, name), os.path.join(out_dir, name))
    return written
