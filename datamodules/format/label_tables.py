"""Label tables (DESED, TAU, Clotho-like) -> :class:`datamodules.format.pack.PackItem` lists.

Every table has a header row. The delimiter is read from it: a tab when the header has one (fields are taken
literally, quotes are text), else a comma when it has one (CSV quoting, so ``"dog,cat"`` is one field). Text is
UTF-8 (BOM optional) or UTF-16 with BOM (:mod:`datamodules.format.text`). Recognised columns (others are ignored,
e.g. ``duration``):

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
File names must stay inside the audio folder (checked on real paths: ``../x.wav``, absolute paths and symlinks
leading out of it are refused unless ``allow_outside``). Every error names the table, the line and the field.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from datamodules.format.pack import PackItem
from datamodules.format.text import TableTextError, open_text

_CAPTION_N = re.compile(r"caption_\d+$")
_STRONG = ("onset", "offset", "event_label")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a split value becomes part of an output file name
_SCALARS = ("scene", "device", "city")
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
        splits: With ``split_column``: split value -> its items (same objects as ``items``), in order of first
            appearance.
    """

    items: List[PackItem]
    class_names: List[str]
    scene_names: List[str] = field(default_factory=list)
    device_names: List[str] = field(default_factory=list)
    city_names: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    splits: Dict[str, List[PackItem]] = field(default_factory=dict)


_Where = Tuple[str, int, str]  # table path, line number, column


def _at(where: _Where) -> str:
    return f"{where[0]}, line {where[1]}, field {where[2]!r}"


@dataclass
class _Clip:
    """What the tables say about one file, with where they said it (for error messages)."""

    weak: List[Tuple[str, _Where]] = field(default_factory=list)
    events: List[Tuple[float, float, str, float, _Where]] = field(default_factory=list)
    scalars: Dict[str, Tuple[str, _Where]] = field(default_factory=dict)  # scene/device/city/split
    captions: List[str] = field(default_factory=list)
    first: Optional[_Where] = None  # the first row naming the file


def read_class_list(path: str) -> List[str]:
    """Class names, one per line (blank lines ignored; duplicates are an error)."""
    names: List[str] = []
    with _open_table(path) as f:
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


def _open_table(path: str) -> io.StringIO:
    """:func:`~datamodules.format.text.open_text`, its encoding error raised as a LabelTableError."""
    try:
        return open_text(path)
    except TableTextError as err:
        raise LabelTableError(str(err)) from None


@dataclass
class Table:
    """A table read by :func:`read_table`.

    Attributes:
        path: The file.
        kind: ``tab-separated`` or ``comma-separated`` (named in messages).
        header: Column names (stripped; ``file_name`` is renamed ``filename``).
        rows: (line number, column -> stripped value) of every non-blank row; short rows are padded with "".
    """

    path: str
    kind: str
    header: List[str]
    rows: List[Tuple[int, Dict[str, str]]]

    def require(self, *columns: str) -> None:
        """Raises a LabelTableError naming the table, its delimiter and its columns if one of ``columns`` is absent."""
        for col in columns:
            if col not in self.header:
                raise LabelTableError(f"{self.path} ({self.kind}), line 1: no {col!r} column; columns: "
                                      f"{', '.join(self.header)}")


def read_table(path: str) -> Table:
    """A table with a header row whose delimiter is read from the header (tab, else comma; see the module docstring).

    Raises:
        LabelTableError: Not UTF-8 text, CSV quoting errors, no header, or a row with more fields than the header.
    """
    with _open_table(path) as f:
        header_line = f.readline()
        f.seek(0)
        if "\t" in header_line or "," not in header_line:
            # QUOTE_NONE: captions contain quote characters that are text, not CSV quoting.
            kind, reader = "tab-separated", csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            kind, reader = "comma-separated", csv.reader(f, delimiter=",")
        try:
            lines = [(reader.line_num, fields) for fields in reader]
        except csv.Error as err:
            raise LabelTableError(f"{path} ({kind}), line {reader.line_num}: {err}") from None
    if not lines or not any(h.strip() for h in lines[0][1]):
        raise LabelTableError(f"{path}, line 1: missing header row")
    header = [h.strip() for h in lines[0][1]]
    if "file_name" in header and "filename" not in header:
        header[header.index("file_name")] = "filename"
    rows = []
    for line_no, fields in lines[1:]:
        if not any(x.strip() for x in fields):
            continue
        if len(fields) > len(header):
            raise LabelTableError(f"{path} ({kind}), line {line_no}: {len(fields)} fields but the header has "
                                  f"{len(header)}")
        fields = [x.strip() for x in fields] + [""] * (len(header) - len(fields))
        rows.append((line_no, dict(zip(header, fields))))
    return Table(path, kind, header, rows)


def _number(text: str, where: _Where) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabelTableError(f"{_at(where)}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LabelTableError(f"{_at(where)}: {text!r} is not a finite number")
    return value


def _parse_table(path: str, clips: Dict[str, _Clip], split_column: Optional[str] = None) -> Table:
    """Adds what table ``path`` says to ``clips`` (filename -> _Clip); returns the table read."""
    table = read_table(path)
    header, rows = table.header, table.rows
    table.require("filename")
    strong_cols = [c for c in _STRONG if c in header]
    if strong_cols:
        table.require(*_STRONG)
    caption_cols = [c for c in header if c == "caption" or _CAPTION_N.match(c)]
    scalar_cols = [("scene", "scene_label"), ("device", "device"), ("device", "source_label"), ("city", "city")]
    for line_no, row in rows:
        name = row["filename"]
        if not name:
            raise LabelTableError(f"{path}, line {line_no}, field 'filename': empty file name")
        clip = clips.setdefault(name, _Clip())
        if clip.first is None:
            clip.first = (path, line_no, "filename")
        if split_column and row.get(split_column):
            where = (path, line_no, split_column)
            if not _SPLIT_NAME.match(row[split_column]):
                raise LabelTableError(f"{_at(where)}: split {row[split_column]!r} must be letters, digits, '_', '.' "
                                      f"or '-' (it becomes part of the output file name)")
            _set_scalar(clip, "split", row[split_column], where)
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
    return table


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
    table = read_table(path)
    table.require("filename")
    names = list(dict.fromkeys(row["filename"] for _, row in table.rows if row["filename"]))
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
    allow_outside: bool = False,
    split_column: Optional[str] = None,
) -> LabelSet:
    """Reads and merges label tables into pack items.

    Args:
        tables: Tab- or comma-separated tables with a header (see the module docstring for the columns).
        audio_dir: Folder the ``filename`` values are relative to.
        classes: Explicit class vocabulary; a label outside it is an error. Default: sorted labels found.
        subset: A table whose ``filename`` column selects (and orders) the clips to pack, e.g. TAU ``split25.csv``.
            Vocabularies still come from all rows of ``tables``.
        skip_missing: Skip clips whose audio file does not exist (listed in ``LabelSet.missing``) instead of
            failing.
        allow_outside: Accept file names that resolve outside ``audio_dir`` (``../x.wav``, absolute paths, symlinks
            leading out of it); by default they are an error naming the table line.
        split_column: A column whose value (``train``, ``val``, ...) assigns every clip to a split
            (``LabelSet.splits``); it must be in at least one table and set for every packed clip.

    Returns:
        A :class:`LabelSet`.

    Raises:
        LabelTableError: Malformed tables (or not UTF-8 text), unknown classes, contradictions, file names outside
            ``audio_dir``, clips without a split, or missing audio files.
    """
    if not tables:
        raise LabelTableError("no label table given")
    clips: Dict[str, _Clip] = {}
    parsed = [_parse_table(path, clips, split_column) for path in tables]
    if not clips:
        raise LabelTableError(f"the tables {', '.join(tables)} list no files")
    if split_column and not any(split_column in t.header for t in parsed):
        parsed[0].require(split_column)

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
        kind: sorted({c.scalars[kind][0] for c in clips.values() if kind in c.scalars}) for kind in _SCALARS
    }

    names = _read_subset(subset, clips) if subset else list(clips)
    if not allow_outside:
        for name in names:
            _check_inside(audio_dir, name, clips[name].first)
    if split_column:
        unsplit = [n for n in names if "split" not in clips[n].scalars]
        if unsplit:
            raise LabelTableError(f"{_at(clips[unsplit[0]].first)}: {unsplit[0]!r} has no {split_column!r} value "
                                  f"({len(unsplit)} files have none, e.g. {_listing(unsplit, 3)})")
    missing = [n for n in names if not os.path.isfile(os.path.join(audio_dir, n))]
    if missing and not skip_missing:
        raise LabelTableError(
            f"{len(missing)} of {len(names)} audio files listed in {', '.join(tables)} are missing under "
            f"{audio_dir!r}: {_listing(missing)} (use skip_missing / --skip-missing to pack the rest)"
        )
    absent = set(missing)
    class_index = {c: i for i, c in enumerate(class_names)}
    kept = [n for n in names if n not in absent]
    items = [_item(n, clips[n], audio_dir, class_index, vocab) for n in kept]
    splits: Dict[str, List[PackItem]] = {}
    if split_column:
        for name, item in zip(kept, items):
            splits.setdefault(clips[name].scalars["split"][0], []).append(item)
    return LabelSet(
        items=items,
        class_names=class_names,
        scene_names=vocab["scene"],
        device_names=vocab["device"],
        city_names=vocab["city"],
        missing=missing,
        splits=splits,
    )


def _check_inside(audio_dir: str, name: str, where: Optional[_Where]) -> None:
    """Raises a LabelTableError naming the table line when ``name`` resolves (real paths) outside ``audio_dir``."""
    root = os.path.realpath(audio_dir)
    real = os.path.realpath(os.path.join(audio_dir, name))
    if os.path.commonpath([root, real]) != root:
        place = _at(where) if where else "a label table"
        raise LabelTableError(f"{place}: {name!r} resolves to {real}, outside the audio folder {audio_dir} "
                              f"(--allow-outside-audio-dir / allow_outside=True accepts it)")


def split_output_path(out: str, split: str) -> str:
    """Output file of one split: ``data/clips.h5`` + ``train`` -> ``data/clips_train.h5``."""
    stem, ext = os.path.splitext(out)
    return f"{stem}_{split}{ext}"


def _item(name: str, clip: _Clip, audio_dir: str, class_index: Dict[str, int], vocab: Dict[str, List[str]]) -> PackItem:
    weak = {class_index[label] for label, _ in clip.weak}
    weak |= {class_index[e[2]] for e in clip.events if e[3] >= WEAK_FROM_STRONG_MIN_CONFIDENCE}
    scalars = {kind: vocab[kind].index(value) for kind, (value, _) in clip.scalars.items() if kind in vocab}
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
