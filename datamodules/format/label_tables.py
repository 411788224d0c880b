"""Tab-separated label tables (DESED, TAU, Clotho-like) -> :class:`datamodules.format.pack.PackItem` lists.

Every table has a header row. Recognised columns (others are ignored, e.g. ``duration``):

    filename (or file_name)          required; the audio file, relative to the audio folder; the clip id
    event_labels                     weak labels, comma-separated
    onset, offset, event_label       strong events, one row per event (all three empty: a clip without events)
    confidence                       optional soft label of a strong event in [0, 1] (default 1)
    scene_label                      acoustic scene
    device or source_label           recording device
    city, or identifier              city; from an identifier ``<city>-<location>`` the text before the first '-'
    caption, or caption_1..caption_N captions (several ``caption`` rows per file are all kept)

Several tables are merged by filename (first appearance fixes the order). Weak labels are the union of the weak
column and the classes of the clip's strong events with confidence >= 0.5, so strong-only tables get weak labels.
Every error names the table, the line and the field.
"""
from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from datamodules.format.pack import PackItem

_CAPTION_N = re.compile(r"caption_\d+$")
_STRONG = ("onset", "offset", "event_label")
WEAK_FROM_STRONG_MIN_CONFIDENCE = 0.5


class LabelTableError(ValueError):
    """A label table is malformed or inconsistent (the message names file, line and field)."""


@dataclass
class LabelSet:
    """The merged content of some label tables.

    Attributes:
        items: One :class:`PackItem` per clip, in table order (or subset order).
        class_names: Event/tag vocabulary (explicit list, or the sorted labels found in all tables).
        scene_names, device_names, city_names: Sorted values found in all tables (before any subset, so that
            files packed from different subsets of one table share the vocabularies).
        missing: File names skipped because their audio is missing (only with ``skip_missing=True``).
    """

    items: List[PackItem]
    class_names: List[str]
    scene_names: List[str] = field(default_factory=list)
    device_names: List[str] = field(default_factory=list)
    city_names: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)


_Where = Tuple[str, int, str]  # table path, line number, column


def _at(where: _Where) -> str:
    return f"{where[0]}, line {where[1]}, field {where[2]!r}"


@dataclass
class _Clip:
    """What the tables say about one file, with where they said it (for error messages)."""

    weak: List[Tuple[str, _Where]] = field(default_factory=list)
    events: List[Tuple[float, float, str, float, _Where]] = field(default_factory=list)
    scalars: Dict[str, Tuple[str, _Where]] = field(default_factory=dict)  # scene/device/city
    captions: List[str] = field(default_factory=list)


def read_class_list(path: str) -> List[str]:
    """Class names, one per line (blank lines ignored; duplicates are an error)."""
    names: List[str] = []
    with open(path, encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, start=1):
            name = line.strip()
            if not name:
                continue
            if name in names:
                raise LabelTableError(f"{path}, line {line_no}: class {name!r} is listed twice")
            names.append(name)
    if not names:
        raise LabelTableError(f"{path}: the class list is empty")
    return names


def _read_rows(path: str) -> Tuple[List[str], List[Tuple[int, Dict[str, str]]]]:
    """Header and (line number, row dict) of a tab-separated table; short rows are padded with empty fields."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        # QUOTE_NONE: captions contain quote characters that are text, not CSV quoting.
        lines = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not lines or not any(h.strip() for h in lines[0]):
        raise LabelTableError(f"{path}, line 1: missing header row")
    header = [h.strip() for h in lines[0]]
    if "file_name" in header and "filename" not in header:
        header[header.index("file_name")] = "filename"
    rows = []
    for line_no, fields in enumerate(lines[1:], start=2):
        if not any(x.strip() for x in fields):
            continue
        if len(fields) > len(header):
            raise LabelTableError(f"{path}, line {line_no}: {len(fields)} fields but the header has {len(header)}")
        fields = [x.strip() for x in fields] + [""] * (len(header) - len(fields))
        rows.append((line_no, dict(zip(header, fields))))
    return header, rows


def _number(text: str, where: _Where) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelTableError(f"{_at(where)}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LabelTableError(f"{_at(where)}: {text!r} is not a finite number")
    return value


def _parse_table(path: str, clips: Dict[str, _Clip]) -> None:
    """Adds what table ``path`` says to ``clips`` (filename -> _Clip)."""
    header, rows = _read_rows(path)
    if "filename" not in header:
        raise LabelTableError(f"{path}, line 1: missing column 'filename' (header: {', '.join(header)})")
    strong_cols = [c for c in _STRONG if c in header]
    if strong_cols and len(strong_cols) != len(_STRONG):
        missing = [c for c in _STRONG if c not in header]
        raise LabelTableError(f"{path}, line 1: strong labels need columns {_STRONG}; missing column {missing[0]!r}")
    caption_cols = [c for c in header if c == "caption" or _CAPTION_N.match(c)]
    scalar_cols = [("scene", "scene_label"), ("device", "device"), ("device", "source_label"), ("city", "city")]
    for line_no, row in rows:
        name = row["filename"]
        if not name:
            raise LabelTableError(f"{path}, line {line_no}, field 'filename': empty file name")
        clip = clips.setdefault(name, _Clip())
        if "event_labels" in row:
            where = (path, line_no, "event_labels")
            clip.weak.extend((label.strip(), where) for label in row["event_labels"].split(",") if label.strip())
        if strong_cols:
            _parse_event(row, path, line_no, clip)
        for kind, col in scalar_cols:
            if row.get(col):
                _set_scalar(clip, kind, row[col], (path, line_no, col))
        if row.get("identifier"):
            _set_scalar(clip, "city", row["identifier"].split("-", 1)[0], (path, line_no, "identifier"))
        clip.captions.extend(row[c] for c in caption_cols if row[c])


def _parse_event(row: Dict[str, str], path: str, line_no: int, clip: _Clip) -> None:
    values = [row[c] for c in _STRONG]
    if not any(values):  # DESED writes clips without events as rows with empty fields
        return
    for col, value in zip(_STRONG, values):
        if not value:
            raise LabelTableError(f"{path}, line {line_no}, field {col!r}: empty while the other event fields are set")
    onset = _number(row["onset"], (path, line_no, "onset"))
    offset = _number(row["offset"], (path, line_no, "offset"))
    if onset < 0:
        raise LabelTableError(f"{path}, line {line_no}, field 'onset': negative onset {onset}")
    if offset < onset:
        raise LabelTableError(f"{path}, line {line_no}, field 'offset': offset {offset} is before onset {onset}")
    confidence = 1.0
    if row.get("confidence"):
        confidence = _number(row["confidence"], (path, line_no, "confidence"))
        if not 0.0 <= confidence <= 1.0:
            raise LabelTableError(f"{path}, line {line_no}, field 'confidence': {confidence} is outside [0, 1]")
    clip.events.append((onset, offset, row["event_label"], confidence, (path, line_no, "event_label")))


def _set_scalar(clip: _Clip, kind: str, value: str, where: _Where) -> None:
    if kind in clip.scalars and clip.scalars[kind][0] != value:
        old, old_where = clip.scalars[kind]
        raise LabelTableError(f"{_at(where)}: {kind} {value!r} contradicts {old!r} at {_at(old_where)}")
    clip.scalars.setdefault(kind, (value, where))


def _read_subset(path: str, clips: Dict[str, _Clip]) -> List[str]:
    header, rows = _read_rows(path)
    if "filename" not in header:
        raise LabelTableError(f"{path}, line 1: missing column 'filename' (header: {', '.join(header)})")
    names = list(dict.fromkeys(row["filename"] for _, row in rows if row["filename"]))
    unknown = [n for n in names if n not in clips]
    if unknown:
        raise LabelTableError(f"{path}: {len(unknown)} files are in no label table, e.g. {_listing(unknown)}")
    return names


def _listing(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def read_label_tables(
    tables: Sequence[str],
    audio_dir: str,
    *,
    classes: Optional[Sequence[str]] = None,
    subset: Optional[str] = None,
    skip_missing: bool = False,
) -> LabelSet:
    """Reads and merges label tables into pack items.

    Args:
        tables: Tab-separated tables with a header (see the module docstring for the columns).
        audio_dir: Folder the ``filename`` values are relative to.
        classes: Explicit class vocabulary; a label outside it is an error. Default: sorted labels found.
        subset: A table whose ``filename`` column selects (and orders) the clips to pack, e.g. TAU ``split25.csv``.
            Vocabularies still come from all rows of ``tables``.
        skip_missing: Skip clips whose audio file does not exist (listed in ``LabelSet.missing``) instead of
            failing.

    Returns:
        A :class:`LabelSet`.

    Raises:
        LabelTableError: Malformed tables, unknown classes, contradictions, or missing audio files.
    """
    if not tables:
        raise LabelTableError("no label table given")
    clips: Dict[str, _Clip] = {}
    for path in tables:
        _parse_table(path, clips)
    if not clips:
        raise LabelTableError(f"the tables {', '.join(tables)} list no files")

    found: Set[str] = {label for c in clips.values() for label, _ in c.weak} | {
        e[2] for c in clips.values() for e in c.events
    }
    if classes is not None:
        class_names = list(classes)
        known = set(class_names)
        for clip in clips.values():
            for label, where in clip.weak + [(e[2], e[4]) for e in clip.events]:
                if label not in known:
                    raise LabelTableError(f"{_at(where)}: unknown class {label!r} (not in the class list)")
    else:
        class_names = sorted(found)
    vocab = {
        kind: sorted({c.scalars[kind][0] for c in clips.values() if kind in c.scalars})
        for kind in ("scene", "device", "city")
    }

    names = _read_subset(subset, clips) if subset else list(clips)
    missing = [n for n in names if not os.path.isfile(os.path.join(audio_dir, n))]
    if missing and not skip_missing:
        raise LabelTableError(
            f"{len(missing)} of {len(names)} audio files listed in {', '.join(tables)} are missing under "
            f"{audio_dir!r}: {_listing(missing)} (use skip_missing / --skip-missing to pack the rest)"
        )
    absent = set(missing)
    class_index = {c: i for i, c in enumerate(class_names)}
    items = [_item(n, clips[n], audio_dir, class_index, vocab) for n in names if n not in absent]
    return LabelSet(
        items=items,
        class_names=class_names,
        scene_names=vocab["scene"],
        device_names=vocab["device"],
        city_names=vocab["city"],
        missing=missing,
    )


def _item(name: str, clip: _Clip, audio_dir: str, class_index: Dict[str, int], vocab: Dict[str, List[str]]) -> PackItem:
    weak = {class_index[label] for label, _ in clip.weak}
    weak |= {class_index[e[2]] for e in clip.events if e[3] >= WEAK_FROM_STRONG_MIN_CONFIDENCE}
    scalars = {kind: vocab[kind].index(value) for kind, (value, _) in clip.scalars.items()}
    return PackItem(
        path=os.path.join(audio_dir, name),
        name=name,
        weak=sorted(weak),
        events=[(on, off, class_index[label], conf) for on, off, label, conf, _ in clip.events],
        scene=scalars.get("scene", -1),
        device=scalars.get("device", -1),
        city=scalars.get("city", -1),
        captions=list(clip.captions),
    )
