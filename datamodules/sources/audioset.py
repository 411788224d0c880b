"""AudioSet (Gemmeke et al., 2017) as Google publishes its lists -> pack items and one sonolab HDF5 file per list.

The lists are ``balanced_train_segments.csv``, ``unbalanced_train_segments.csv`` and ``eval_segments.csv``: comment
lines start with ``#``, then one row per segment ``YTID, start_seconds, end_seconds, "mid1,mid2,..."``.
``class_labels_indices.csv`` (header ``index,mid,display_name``) fixes the 527 classes and their order. Audio must be
downloaded separately (YouTube); each segment's file is found in ``audio_dir`` by ``name_format`` (default
``Y{ytid}.wav``, the community naming; ``{start}``/``{end}`` give the seconds as written in the list). Clip ids are
stored as ``Y<ytid>.mp3`` like the community files (docs/hdf5-format.md), so teacher logits keyed by those ids match.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from datamodules.format.pack import PackItem
from datamodules.format.text import open_text
from datamodules.sources.common import LayoutError, pack_set, require

DEFAULT_NAME_FORMAT = "Y{ytid}.wav"


@dataclass(frozen=True)
class Segment:
    """One row of a segments list."""

    ytid: str
    start: str
    end: str
    mids: Tuple[str, ...]


def read_class_indices(path: str) -> Tuple[List[str], List[str]]:
    """(mids, display names) of ``class_labels_indices.csv`` in index order.

    Raises:
        LayoutError: A missing column, or indices that are not 0..N-1 in order.
    """
    with open_text(require(path, "AudioSet class list")) as f:
        reader = csv.DictReader(f)
        missing = {"index", "mid", "display_name"} - set(reader.fieldnames or ())
        if missing:
            raise LayoutError(f"{path}, line 1: missing columns {sorted(missing)}")
        mids, names = [], []
        for row in reader:
            line_no = reader.line_num
            if None in (row["index"], row["mid"], row["display_name"]):
                raise LayoutError(f"{path}, line {line_no}: expected index, mid, display_name")
            if row["index"].strip() != str(len(mids)):
                raise LayoutError(f"{path}, line {line_no}, field 'index': expected {len(mids)}, got {row['index']!r}")
            mids.append(row["mid"].strip())
            names.append(row["display_name"].strip())
    return mids, names


def read_segments(path: str) -> List[Segment]:
    """The rows of a segments list (``#`` lines skipped).

    Raises:
        LayoutError: A row without four fields or with non-numeric times (names the line).
    """
    segments = []
    with open_text(require(path, "AudioSet segments list")) as f:
        for line_no, fields in enumerate(csv.reader(f, skipinitialspace=True), start=1):
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 4:
                raise LayoutError(f"{path}, line {line_no}: expected YTID, start_seconds, end_seconds, "
                                  f"positive_labels; got {len(fields)} fields")
            ytid, start, end, labels = (x.strip() for x in fields)
            try:
                float(start), float(end)
            except ValueError:
                raise LayoutError(f"{path}, line {line_no}: start/end {start!r}, {end!r} are not numbers") from None
            segments.append(Segment(ytid, start, end, tuple(m.strip() for m in labels.split(",") if m.strip())))
    return segments


def audioset_items(segments_csv: str, mids: Sequence[str], audio_dir: str,
                   name_format: str = DEFAULT_NAME_FORMAT) -> Tuple[List[PackItem], List[str]]:
    """Pack items of the segments whose audio exists, and the ids of those whose audio is missing.

    Raises:
        LayoutError: A label mid outside the class list (names the list and the segment).
    """
    index: Dict[str, int] = {m: i for i, m in enumerate(mids)}
    items, missing = [], []
    for seg in read_segments(segments_csv):
        unknown = [m for m in seg.mids if m not in index]
        if unknown:
            raise LayoutError(f"{segments_csv}: segment {seg.ytid!r} has labels {unknown} outside the class list")
        path = os.path.join(audio_dir, name_format.format(ytid=seg.ytid, start=seg.start, end=seg.end))
        if not os.path.isfile(path):
            missing.append(seg.ytid)
            continue
        items.append(PackItem(path=path, name=f"Y{seg.ytid}.mp3", weak=sorted({index[m] for m in seg.mids})))
    return items, missing


def pack_audioset(segments_csv: str, class_csv: str, audio_dir: str, out: str, *, codec: str = "mp3",
                  sample_rate: int = 32000, name_format: str = DEFAULT_NAME_FORMAT, workers: int = 2,
                  progress: bool = True) -> Tuple[str, List[str]]:
    """Packs the segments of one list whose audio was downloaded; returns (output path, ids of missing audio).

    Raises:
        LayoutError: Malformed lists, or no audio found at all.
    """
    mids, names = read_class_indices(class_csv)
    items, missing = audioset_items(segments_csv, mids, audio_dir, name_format)
    if not items:
        raise LayoutError(f"{audio_dir}: no audio of {segments_csv} found as {name_format!r}")
    return pack_set(items, out, workers, progress, codec=codec, sample_rate=sample_rate, class_names=names), missing
