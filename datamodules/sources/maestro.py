"""MAESTRO real (development set) as the DCASE'24 Task 4 baseline downloads it -> 10 s chunks in one sonolab HDF5
file per set, 17 classes in :data:`~datamodules.sed.label_encoder.MAESTRO_REAL_CLASSES` order::

    maestro_real_train.h5    10 s chunks, hop 1 s, 90 % split
    maestro_real_val.h5      10 s chunks, hop 1 s, 10 % split
    maestro_real_devtest.h5  10 s chunks, hop 5 s

The chunking, the train / dev-test recording lists and the 90/10 split follow the baseline's
``dprep/download_prep_maestro.py``, ``dprep/{train,validation}_split.csv`` and ``train_pretrained.py:split_maestro``.
Chunks are packed as windows of the original recordings (:class:`~datamodules.format.pack.PackItem`
``start``/``end``): no chunk wav files are written.
"""
from __future__ import annotations

import glob
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from datamodules.format.label_tables import WEAK_FROM_STRONG_MIN_CONFIDENCE
from datamodules.format.pack import PackItem, PackReport, pack
from datamodules.format.text import open_text
from datamodules.sed.label_encoder import MAESTRO_REAL_CLASSES
from datamodules.sources.common import LayoutError
from datamodules.sources.desed import DEFAULT_SAMPLE_RATE

Event = Tuple[float, float, int, float]  # onset, offset (s), class index, confidence


MAESTRO_SCENES: Tuple[str, ...] = (
    "cafe_restaurant", "city_center", "grocery_store", "metro_station", "residential_area",
)
# The baseline's fixed recording lists (dprep/train_split.csv, dprep/validation_split.csv).
MAESTRO_TRAIN_RECORDINGS: Tuple[str, ...] = tuple(
    f"{scene}_{n:02d}"
    for scene, numbers in (
        ("cafe_restaurant", (0, 6, 7, 8, 11, 12, 14)),
        ("city_center", (2, 4, 6, 7, 11, 12, 14)),
        ("grocery_store", (0, 2, 3, 8, 9, 11)),
        ("metro_station", (0, 2, 5, 7, 10, 12)),
        ("residential_area", (0, 1, 4, 7, 8, 9, 14)),
    )
    for n in numbers
)
MAESTRO_DEVTEST_RECORDINGS: Tuple[str, ...] = tuple(
    f"{scene}_{n:02d}"
    for scene, numbers in (
        ("cafe_restaurant", (4, 10, 13)),
        ("city_center", (5, 9, 10)),
        ("grocery_store", (1, 4, 12)),
        ("metro_station", (1, 4, 11)),
        ("residential_area", (3, 5, 6, 12)),
    )
    for n in numbers
)
MAESTRO_WINDOW = 10.0
MAESTRO_TRAIN_HOP = 1.0
MAESTRO_DEVTEST_HOP = 5.0
MAESTRO_SPLIT_SEED = 42
MAESTRO_TRAIN_FRACTION = 0.9
MAESTRO_FILES = {
    "maestro_train": "maestro_real_train.h5",
    "maestro_val": "maestro_real_val.h5",
    "maestro_devtest": "maestro_real_devtest.h5",
}
_MAESTRO_DEV_CANDIDATES = ("", "maestro_dev", os.path.join("MAESTRO_original", "maestro_dev"))


@dataclass(frozen=True)
class Recording:
    """One MAESTRO real recording: its audio and annotation files, length and rate."""

    name: str
    audio: str
    annotation: str
    frames: int
    rate: int


def find_maestro_dev(root: str) -> str:
    """The folder holding ``development_audio/`` and ``development_annotation/``: ``root`` itself, ``root/maestro_dev``
    or ``root/MAESTRO_original/maestro_dev`` (where the DCASE'24 baseline downloads it).

    Raises:
        LayoutError: None of them has both sub-folders.
    """
    for rel in _MAESTRO_DEV_CANDIDATES:
        folder = os.path.join(root, rel)
        if all(os.path.isdir(os.path.join(folder, sub)) for sub in ("development_audio", "development_annotation")):
            return folder
    tried = ", ".join(os.path.join(root, rel) or root for rel in _MAESTRO_DEV_CANDIDATES)
    raise LayoutError(f"no MAESTRO real development data: none of {tried} holds development_audio/ and "
                       "development_annotation/")


def _files_by_stem(folder: str, extension: str) -> Dict[str, str]:
    """stem -> path of every ``*extension`` file below ``folder`` (recursive); a repeated stem is an error."""
    found: Dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", f"*{extension}"), recursive=True)):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in found:
            raise LayoutError(f"two MAESTRO files named {stem!r}: {found[stem]} and {path}")
        found[stem] = path
    return found


def find_recordings(dev_dir: str, wanted: Sequence[str]) -> Dict[str, Recording]:
    """The recordings of ``wanted`` present under ``dev_dir`` (audio ``.wav`` + annotation ``.txt``, any depth).

    A wanted recording without audio is reported and left out; audio without its annotation is an error.
    """
    audio = _files_by_stem(os.path.join(dev_dir, "development_audio"), ".wav")
    notes = _files_by_stem(os.path.join(dev_dir, "development_annotation"), ".txt")
    absent = [r for r in wanted if r not in audio]
    if absent:
        print(f"MAESTRO: {len(absent)} of {len(wanted)} listed recordings have no audio under {dev_dir}, left out: "
              f"{', '.join(absent[:8])}{' ...' if len(absent) > 8 else ''}", file=sys.stderr)
    recordings = {}
    for name in wanted:
        if name not in audio:
            continue
        if name not in notes:
            raise LayoutError(f"MAESTRO recording {audio[name]} has no annotation {name}.txt under "
                               f"{os.path.join(dev_dir, 'development_annotation')}")
        recordings[name] = _recording(name, audio[name], notes[name])
    return recordings


def unlisted_recordings(dev_dir: str) -> List[str]:
    """Recordings under ``dev_dir`` in neither baseline list (the baseline ignores them, and so do we)."""
    listed = set(MAESTRO_TRAIN_RECORDINGS) | set(MAESTRO_DEVTEST_RECORDINGS)
    return sorted(set(_files_by_stem(os.path.join(dev_dir, "development_audio"), ".wav")) - listed)


def _recording(name: str, audio: str, annotation: str) -> Recording:
    import soundfile as sf

    try:
        info = sf.info(audio)
    except Exception as err:
        raise LayoutError(f"{audio}: unreadable audio ({err})") from err
    return Recording(name, audio, annotation, int(info.frames), int(info.samplerate))


def read_maestro_annotation(path: str, classes: Sequence[str] = MAESTRO_REAL_CLASSES
                            ) -> List[Tuple[float, float, str, float]]:
    """(onset, offset, label, confidence) rows of a MAESTRO annotation (``onset offset label confidence``, tabs,
    no header; a header line starting with ``onset`` is tolerated).

    Raises:
        LayoutError: Wrong field count, non-numbers, offset before onset, confidence outside [0, 1], or a label
            outside ``classes`` (default :data:`MAESTRO_REAL_CLASSES`), naming the file, line and field.
    """
    events = []
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            fields = [x.strip() for x in line.rstrip("\r\n").split("\t")]
            if not any(fields) or (line_no == 1 and fields[0].lower() == "onset"):
                continue
            events.append(_annotation_row(fields, path, line_no, classes))
    return events


def _annotation_row(fields: List[str], path: str, line_no: int,
                    classes: Sequence[str]) -> Tuple[float, float, str, float]:
    if len(fields) != 4:
        raise LayoutError(f"{path}, line {line_no}: expected 4 tab-separated fields (onset, offset, event_label, "
                           f"confidence), got {len(fields)}")
    onset, offset = (_non_negative(fields[i], path, line_no, col) for i, col in ((0, "onset"), (1, "offset")))
    if offset < onset:
        raise LayoutError(f"{path}, line {line_no}, field 'offset': offset {offset} is before onset {onset}")
    label = fields[2]
    if label not in classes:
        raise LayoutError(f"{path}, line {line_no}, field 'event_label': unknown class {label!r} (not one of the "
                          f"{len(classes)} classes)")
    confidence = _non_negative(fields[3], path, line_no, "confidence")
    if confidence > 1.0:
        raise LayoutError(f"{path}, line {line_no}, field 'confidence': {confidence} is outside [0, 1]")
    return onset, offset, label, confidence


def _non_negative(text: str, path: str, line_no: int, field: str) -> float:
    """The finite number >= 0 in ``text`` (a time or a confidence), or an error naming file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise LayoutError(f"{path}, line {line_no}, field {field!r}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise LayoutError(f"{path}, line {line_no}, field {field!r}: expected a number >= 0, got {text!r}")
    return value


def chunk_bounds(frames: int, rate: int, window: float, hop: float) -> List[Tuple[int, int]]:
    """Sample ranges [first, last) of the chunks of a recording, as the DCASE'24 baseline cuts them.

    Full windows of ``int(window * rate)`` samples start every ``int(hop * rate)`` samples; when the last full
    window ends before the recording does, one shorter chunk follows, from one hop after the last full window's
    start to the end. A recording shorter than one window is a single chunk (the baseline yields none when it is
    shorter than window - hop; every MAESTRO recording is minutes long).
    """
    size, stride = int(window * rate), int(hop * rate)
    if size <= 0 or stride <= 0:
        raise ValueError(f"window {window} s and hop {hop} s must both be at least one sample at {rate} Hz")
    if frames <= 0:
        return []
    if frames < size:
        return [(0, frames)]
    n_full = (frames - size) // stride + 1
    bounds = [(k * stride, k * stride + size) for k in range(n_full)]
    if bounds[-1][1] < frames:
        bounds.append((n_full * stride, frames))
    return bounds


def chunk_name(recording: str, first: int, last: int, rate: int, extension: str = ".wav") -> str:
    """``<recording>-<start * 100, 6 digits>-<end * 100, 6 digits>.wav``, times in seconds (truncated)."""
    return f"{recording}-{int(first / rate * 100):06d}-{int(last / rate * 100):06d}{extension}"


def chunk_events(events: Sequence[Tuple[float, float, str, float]], start: float, end: float,
                 classes: Sequence[str] = MAESTRO_REAL_CLASSES) -> List[Event]:
    """The events overlapping [start, end) s, clipped to it and shifted to the chunk start, labels as indices into
    ``classes``.

    An event overlaps when ``onset < end`` and ``offset > start``; confidences are kept. Sorted by onset.
    """
    inside = [
        (max(0.0, on - start), min(end - start, off - start), classes.index(label), conf)
        for on, off, label, conf in events
        if on < end and off > start
    ]
    return sorted(inside)


def recording_chunks(recording: Recording, hop: float, window: float = MAESTRO_WINDOW,
                     classes: Sequence[str] = MAESTRO_REAL_CLASSES) -> List[PackItem]:
    """One :class:`PackItem` window per chunk of ``recording`` (events relative to the chunk; weak labels are the
    classes of events with confidence >= 0.5)."""
    events = read_maestro_annotation(recording.annotation, classes)
    items = []
    for first, last in chunk_bounds(recording.frames, recording.rate, window, hop):
        start, end = first / recording.rate, last / recording.rate
        chunk = chunk_events(events, start, end, classes)
        items.append(PackItem(
            path=recording.audio,
            name=chunk_name(recording.name, first, last, recording.rate),
            weak=sorted({e[2] for e in chunk if e[3] >= WEAK_FROM_STRONG_MIN_CONFIDENCE}),
            events=chunk,
            start=start,
            end=end,
        ))
    return items


def scene_of(recording: str) -> str:
    """Scene of a recording name ``<scene>_<number>`` (the text before the last '_')."""
    return recording.rsplit("_", 1)[0]


def split_train_recordings(
    recordings: Sequence[str], fraction: float = MAESTRO_TRAIN_FRACTION, seed: int = MAESTRO_SPLIT_SEED
) -> Tuple[List[str], List[str]]:
    """The baseline's per-scene train/validation split of the training recordings (``split_maestro``).

    For each scene in :data:`MAESTRO_SCENES` order, the scene's recordings (in the given order, which must be the
    order of their first rows in the baseline's filename-sorted chunk table) are shuffled in place by one
    ``numpy.random.RandomState(seed)`` shared by all scenes (the legacy global ``np.random.seed`` +
    ``np.random.shuffle`` sequence); the first ``int(fraction * n)`` train, the rest validate. Python's
    ``random.shuffle`` draws differently and would give another split.

    Raises:
        LayoutError: A recording of an unknown scene.
    """
    unknown = [r for r in recordings if scene_of(r) not in MAESTRO_SCENES]
    if unknown:
        raise LayoutError(f"MAESTRO recordings of unknown scenes {unknown[:5]}; known: {', '.join(MAESTRO_SCENES)}")
    rng = np.random.RandomState(seed)
    train: List[str] = []
    val: List[str] = []
    for scene in MAESTRO_SCENES:
        names = np.array([r for r in recordings if scene_of(r) == scene], dtype=object)
        rng.shuffle(names)
        pivot = int(fraction * len(names))
        train += names[:pivot].tolist()
        val += names[pivot:].tolist()
    return train, val


def table_order(chunks: Dict[str, List[PackItem]]) -> List[str]:
    """Recordings in the order the baseline meets them: by their first chunk with events in name order.

    Recordings without any event are not in the baseline's table and are left out (with a message).
    """
    first_named = {rec: min(it.name for it in items if it.events) for rec, items in chunks.items()
                   if any(it.events for it in items)}
    silent = sorted(set(chunks) - set(first_named))
    if silent:
        print(f"MAESTRO: recordings without any event left out: {', '.join(silent)}", file=sys.stderr)
    return sorted(first_named, key=first_named.get)


def _set_items(chunks: Dict[str, List[PackItem]], recordings: Iterable[str], keep_empty: bool) -> List[PackItem]:
    """The chunks of ``recordings`` in name order (the baseline's table order), without event-less chunks unless
    ``keep_empty``."""
    items = [it for rec in recordings for it in chunks[rec] if keep_empty or it.events]
    return sorted(items, key=lambda it: it.name)


def maestro_items(
    maestro_root: str,
    sets: Sequence[str] = tuple(MAESTRO_FILES),
    *,
    keep_empty: bool = False,
    fraction: float = MAESTRO_TRAIN_FRACTION,
    seed: int = MAESTRO_SPLIT_SEED,
    classes: Sequence[str] = MAESTRO_REAL_CLASSES,
) -> Dict[str, List[PackItem]]:
    """Pack items of the MAESTRO sets ``maestro_train``, ``maestro_val`` (hop 1 s chunks of the baseline's training
    recordings, split 90/10 per scene) and ``maestro_devtest`` (hop 5 s chunks of its validation recordings).

    Args:
        maestro_root: See :func:`find_maestro_dev`.
        sets: Which sets to build.
        keep_empty: Keep chunks without any event (the baseline's tables have no row for them, so it drops them).
        fraction: Share of each scene's training recordings that train.
        seed: Seed of the split.
        classes: Label space of the annotations (default the 17 :data:`MAESTRO_REAL_CLASSES`).
    """
    unknown = [s for s in sets if s not in MAESTRO_FILES]
    if unknown:
        raise LayoutError(f"unknown MAESTRO sets {unknown}; known: {', '.join(MAESTRO_FILES)}")
    dev_dir = find_maestro_dev(maestro_root)
    stray = unlisted_recordings(dev_dir)
    if stray:
        print(f"MAESTRO: recordings in neither baseline list ignored: {', '.join(stray)}", file=sys.stderr)
    result: Dict[str, List[PackItem]] = {}
    if {"maestro_train", "maestro_val"} & set(sets):
        recordings = find_recordings(dev_dir, MAESTRO_TRAIN_RECORDINGS)
        chunks = {name: recording_chunks(rec, MAESTRO_TRAIN_HOP, classes=classes) for name, rec in recordings.items()}
        train, val = split_train_recordings(table_order(chunks), fraction, seed)
        result["maestro_train"] = _set_items(chunks, train, keep_empty)
        result["maestro_val"] = _set_items(chunks, val, keep_empty)
    if "maestro_devtest" in sets:
        recordings = find_recordings(dev_dir, MAESTRO_DEVTEST_RECORDINGS)
        chunks = {name: recording_chunks(rec, MAESTRO_DEVTEST_HOP, classes=classes)
                  for name, rec in recordings.items()}
        result["maestro_devtest"] = _set_items(chunks, sorted(chunks), keep_empty)
    return {s: result[s] for s in sets}


def pack_maestro(
    maestro_root: str,
    out_dir: str,
    sets: Optional[Sequence[str]] = None,
    *,
    codec: str = "flac",
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    workers: Optional[int] = None,
    keep_empty: bool = False,
    progress: bool = True,
    strict: bool = False,
    allow_truncated: bool = False,
    classes: Optional[Sequence[str]] = None,
) -> Dict[str, PackReport]:
    """Packs MAESTRO real into ``out_dir/maestro_real_{train,val,devtest}.h5`` (class vocabulary: the 17
    :data:`MAESTRO_REAL_CLASSES`; events with their soft confidences, times relative to each chunk).

    Args:
        maestro_root: See :func:`find_maestro_dev`.
        out_dir: Output folder (created).
        sets: Names from :data:`MAESTRO_FILES` (default all three).
        codec: Stored codec.
        sample_rate: Rate of the stored audio.
        workers: Encoding processes (None: all cores).
        keep_empty: Also pack chunks without events.
        progress: Progress bars.
        strict, allow_truncated: As in :func:`~datamodules.format.pack.pack` (chunk events are already cut to
            their chunk; a recording cut short is reported with its last chunk).
        classes: Label space of the annotations (default the 17 :data:`MAESTRO_REAL_CLASSES`).

    Returns:
        Set name -> :class:`PackReport`.
    """
    wanted = list(sets) if sets is not None else list(MAESTRO_FILES)
    reports = {}
    classes = list(classes) if classes else MAESTRO_REAL_CLASSES
    for name, items in maestro_items(maestro_root, wanted, keep_empty=keep_empty, classes=classes).items():
        if not items:
            print(f"MAESTRO {name}: no chunks (no recordings found), nothing written", file=sys.stderr)
            continue
        out = os.path.join(out_dir, MAESTRO_FILES[name])
        reports[name] = pack(items, out, codec=codec, sample_rate=sample_rate, class_names=list(classes),
                             workers=workers, progress=progress, strict=strict, allow_truncated=allow_truncated)
    return reports
