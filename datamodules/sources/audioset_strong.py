"""AudioSet strong labels (Hershey et al., ICASSP 2021) as Google publishes them, and PretrainedSED's class sets.

Files of the release:
    ``audioset_train_strong.tsv``, ``audioset_eval_strong.tsv``: tab-separated, header
        ``segment_id  start_time_seconds  end_time_seconds  label``, one row per event. ``segment_id`` is
        ``<ytid>_<start_ms>``: the 11-character YouTube id (it may itself hold ``_`` or ``-``, or start with ``Y``)
        and the start of the 10 s AudioSet segment in milliseconds; times are seconds from the segment start;
        ``label`` is a mid such as ``/m/09x0r``.
    ``mid_to_display_name.tsv``: no header, ``mid<TAB>display name`` (456 classes). PretrainedSED ships the same
        map comma-separated (``class_labels_indices_strong.csv``); both are read.

Events of one class that overlap or touch in a segment are merged into one (as PretrainedSED's
``merge_overlapping_events``: an event starting at or before the end of the previous one of its class extends it).

Class sets (PretrainedSED ``data_util/audioset_classes.py``; counts of the real release):
    map (456)        :func:`map_classes`: every class of the class map, in map order.
    trained (447)    :func:`trained_classes`: display names of the labels that occur in the train table, sorted
                     (Python string order): the model's output columns.
    evaluated (416)  :func:`evaluated_classes`: the same for the eval table.
    metric (407)     :func:`metric_classes`: trained and evaluated, sorted: the classes PSDS is computed on (a
                     model cannot be scored on a class it never learned, nor on one the eval set never shows).

Clip ids of the audio HDF5 files (:func:`audio_name_key`): the community files name clips ``Y<ytid>.mp3``
(balanced, eval) or ``NN/Y<ytid>.mp3`` (unbalanced, ``NN`` = part 00-40); some tools write
``Y<ytid>_<start>_<end>.mp3``, cut to 20 bytes in ``S20`` fields (``Y--PJHxphWEs_30000_4``). Segments are matched
to rows by YouTube id and, when the name carries one, start time (:func:`match_segments`).
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from datamodules.format.text import open_text
from datamodules.sources.common import LayoutError, require

TABLE_COLUMNS = ("segment_id", "start_time_seconds", "end_time_seconds", "label")
YTID_LENGTH = 11
_SEGMENT_ID = re.compile(r"^(.+)_(\d+)$")
_AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg")

Event = Tuple[float, float, str]  # onset, offset (seconds from the segment start), mid
ClipKey = Tuple[str, Optional[int]]  # YouTube id, segment start in ms (None: the name does not say)


@dataclass
class StrongTable:
    """One strong-label table: the merged events of every segment.

    Attributes:
        path: The table file.
        events: Segment id -> its events ``(onset, offset, mid)``, overlapping/touching events of one class merged,
            sorted by onset; segments in the order of their first row.
    """

    path: str
    events: Dict[str, List[Event]] = field(default_factory=dict)

    @property
    def mids(self) -> set:
        """The labels that occur in the table."""
        return {mid for events in self.events.values() for _, _, mid in events}


def read_class_map(path: str) -> Dict[str, str]:
    """The class map ``mid -> display name`` in file order (``mid_to_display_name.tsv``, or a comma-separated copy).

    Raises:
        LayoutError: A row without exactly two fields, an empty mid or name, a mid or display name listed twice, or
            an empty map (names file and line).
    """
    text = open_text(require(path, "AudioSet class map (mid_to_display_name.tsv)")).read()
    delimiter = "\t" if "\t" in text.split("\n", 1)[0] else ","
    mapping: Dict[str, str] = {}
    names: Dict[str, int] = {}
    for line_no, fields in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not fields or not any(x.strip() for x in fields):
            continue
        if len(fields) != 2:
            raise LayoutError(f"{path}, line {line_no}: expected 'mid<TAB>display name', got {len(fields)} fields")
        mid, name = (x.strip() for x in fields)
        if not mid or not name:
            raise LayoutError(f"{path}, line {line_no}, field {'mid' if not mid else 'display name'!r}: empty")
        if mid in mapping:
            raise LayoutError(f"{path}, line {line_no}, field 'mid': {mid!r} is listed twice")
        if name in names:
            raise LayoutError(f"{path}, line {line_no}, field 'display name': {name!r} is already the name of "
                              f"line {names[name]}")
        mapping[mid], names[name] = name, line_no
    if not mapping:
        raise LayoutError(f"{path}: the class map is empty")
    return mapping


def parse_segment_id(segment_id: str) -> Tuple[str, int]:
    """``(ytid, start_ms)`` of a segment id ``<ytid>_<start_ms>``.

    Raises:
        ValueError: Not of that form.
    """
    match = _SEGMENT_ID.match(segment_id)
    if match is None:
        raise ValueError(f"segment id {segment_id!r} is not <youtube id>_<start in ms>")
    return match.group(1), int(match.group(2))


def audio_name_key(name: str) -> ClipKey:
    """``(ytid, start_ms or None)`` of an HDF5 clip id in one of the community forms (module docstring).

    A folder prefix and an audio extension are dropped, then the leading ``Y``. A name of exactly 11 characters is
    the YouTube id; a longer one whose 12th character is ``_`` is ``<ytid>_<start>[_<end>]`` (start in ms, or in
    seconds when it has a decimal point). Anything else is its own id (start unknown).
    """
    stem = name.rsplit("/", 1)[-1]
    if stem.lower().endswith(_AUDIO_SUFFIXES):
        stem = stem.rsplit(".", 1)[0]
    if stem.startswith("Y"):
        stem = stem[1:]
    if len(stem) > YTID_LENGTH and stem[YTID_LENGTH] == "_":
        start = stem[YTID_LENGTH + 1:].split("_", 1)[0]
        try:
            return stem[:YTID_LENGTH], int(round(float(start) * 1000)) if "." in start else int(start)
        except ValueError:
            pass
    return stem, None


def merge_events(events: Sequence[Event]) -> List[Event]:
    """Events with every group of overlapping or touching events of one class merged into one, sorted by
    ``(onset, offset, label)``."""
    merged: List[Event] = []
    last: Dict[str, int] = {}  # label -> index in merged of its latest event
    for onset, offset, label in sorted(events, key=lambda e: (e[0], e[1])):
        k = last.get(label)
        if k is not None and onset <= merged[k][1]:
            merged[k] = (merged[k][0], max(merged[k][1], offset), label)
        else:
            last[label] = len(merged)
            merged.append((onset, offset, label))
    return sorted(merged)


def read_strong_table(path: str, class_map: Optional[Mapping[str, str]] = None) -> StrongTable:
    """Reads a strong-label table (header ``segment_id start_time_seconds end_time_seconds label``); events are
    merged per class (:func:`merge_events`).

    Args:
        path: ``audioset_train_strong.tsv`` or ``audioset_eval_strong.tsv``.
        class_map: When given, every label must be one of its mids.

    Raises:
        LayoutError: A wrong header, a row without four fields, a bad segment id, a time that is not a number, a
            negative onset, an offset before its onset, an empty label or one outside ``class_map`` (names file,
            line and field).
    """
    rows: Dict[str, List[Event]] = {}
    with open_text(require(path, "AudioSet strong-label table")) as f:
        reader = csv.reader(f, delimiter="\t")
        header = [x.strip() for x in next(reader, [])]
        if tuple(header) != TABLE_COLUMNS:
            raise LayoutError(f"{path}, line 1: expected the header {' '.join(TABLE_COLUMNS)!r} (tab-separated), "
                              f"got {' '.join(header)!r}")
        for fields in reader:
            line_no = reader.line_num
            if not fields or not any(x.strip() for x in fields):
                continue
            if len(fields) != len(TABLE_COLUMNS):
                raise LayoutError(f"{path}, line {line_no}: expected {len(TABLE_COLUMNS)} tab-separated fields, got "
                                  f"{len(fields)}")
            segment, start, end, label = (x.strip() for x in fields)
            if segment not in rows:
                try:
                    parse_segment_id(segment)
                except ValueError as err:
                    raise LayoutError(f"{path}, line {line_no}, field 'segment_id': {err}") from None
            onset = _seconds(start, path, line_no, "start_time_seconds")
            offset = _seconds(end, path, line_no, "end_time_seconds")
            if onset < 0:
                raise LayoutError(f"{path}, line {line_no}, field 'start_time_seconds': negative time {onset}")
            if offset < onset:
                raise LayoutError(f"{path}, line {line_no}, field 'end_time_seconds': {offset} is before the start "
                                  f"{onset}")
            if not label:
                raise LayoutError(f"{path}, line {line_no}, field 'label': empty")
            if class_map is not None and label not in class_map:
                raise LayoutError(f"{path}, line {line_no}, field 'label': {label!r} is not in the class map")
            rows.setdefault(segment, []).append((onset, offset, label))
    return StrongTable(path, {segment: merge_events(events) for segment, events in rows.items()})


def _seconds(text: str, path: str, line_no: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise LayoutError(f"{path}, line {line_no}, field {column!r}: {text!r} is not a number of seconds")
    return value


def map_classes(class_map: Mapping[str, str]) -> List[str]:
    """Display names of every class of the map, in map order (456 in the real release)."""
    return list(class_map.values())


def _table_classes(table: StrongTable, class_map: Mapping[str, str]) -> List[str]:
    unknown = sorted(table.mids - set(class_map))
    if unknown:
        raise LayoutError(f"{table.path}: labels {unknown[:5]} are not in the class map")
    return sorted(class_map[mid] for mid in table.mids)


def trained_classes(train: StrongTable, class_map: Mapping[str, str]) -> List[str]:
    """Sorted display names of the labels occurring in the train table (447): the trained output columns."""
    return _table_classes(train, class_map)


def evaluated_classes(evaluation: StrongTable, class_map: Mapping[str, str]) -> List[str]:
    """Sorted display names of the labels occurring in the eval table (416)."""
    return _table_classes(evaluation, class_map)


def metric_classes(trained: Sequence[str], evaluated: Sequence[str]) -> List[str]:
    """The classes scored (407): trained and evaluated, sorted."""
    return sorted(set(trained) & set(evaluated))


@dataclass
class SegmentMatch:
    """Where the segments of a table are among the rows of one or more audio files.

    Attributes:
        rows: ``(file index, row, segment id)`` of every matched segment, in the files' row order.
        missing: Segment ids without a row (audio never downloaded), in table order.
        unlabeled: Per file, the number of rows whose clip is not in the table.
        duplicates: Rows holding a segment that an earlier row already holds (the first one is used).
    """

    rows: List[Tuple[int, int, str]]
    missing: List[str]
    unlabeled: List[int]
    duplicates: List[Tuple[int, int]]


def match_segments(segment_ids: Sequence[str], names_per_file: Sequence[Sequence[str]],
                   files: Optional[Sequence[str]] = None) -> SegmentMatch:
    """Matches segment ids ``<ytid>_<start_ms>`` to the clip ids of audio files (:func:`audio_name_key`).

    A clip id with a start time matches the segment with that id and start; one without matches the segment of
    its YouTube id.

    Args:
        segment_ids: The segments of a table.
        names_per_file: Clip ids (``audio_name``) of every file.
        files: File paths, for error messages.

    Raises:
        LayoutError: A clip id without a start time whose video has several segments in the table (it cannot be
            told which one it holds).
    """
    by_segment: Dict[Tuple[str, int], str] = {}
    by_video: Dict[str, List[str]] = {}
    for segment in segment_ids:
        ytid, start = parse_segment_id(segment)
        by_segment[(ytid, start)] = segment
        by_video.setdefault(ytid, []).append(segment)
    seen: set = set()
    rows, unlabeled, duplicates = [], [0] * len(names_per_file), []
    for f, names in enumerate(names_per_file):
        for row, name in enumerate(names):
            ytid, start = audio_name_key(name)
            if start is not None:
                segment = by_segment.get((ytid, start))
            else:
                candidates = by_video.get(ytid, [])
                if len(candidates) > 1:
                    where = files[f] if files else f"file {f}"
                    raise LayoutError(f"{where}: clip {name!r} (row {row}) has no start time and its video has "
                                      f"{len(candidates)} segments in the table ({candidates[:3]}); cannot tell which")
                segment = candidates[0] if candidates else None
            if segment is None:
                unlabeled[f] += 1
            elif segment in seen:
                duplicates.append((f, row))
            else:
                seen.add(segment)
                rows.append((f, row, segment))
    missing = [s for s in segment_ids if s not in seen]
    return SegmentMatch(rows, missing, unlabeled, duplicates)


def default_paths(root: str) -> Dict[str, str]:
    """The release's file names under ``root``: ``class_map``, ``train_table``, ``eval_table``."""
    return {"class_map": os.path.join(root, "mid_to_display_name.tsv"),
            "train_table": os.path.join(root, "audioset_train_strong.tsv"),
            "eval_table": os.path.join(root, "audioset_eval_strong.tsv")}
