"""Packs the DCASE'24 Task 4 data (DESED and MAESTRO real) into sonolab HDF5 files (docs/sed-data.md).

``sonolab sed-pack --desed-root DIR --maestro-root DIR --out-dir OUT`` writes one file per set:

    DESED (10 classes, :data:`DESED_CLASSES` order)      MAESTRO real (17 classes, :data:`MAESTRO_REAL_CLASSES`)
    desed_synth_train.h5   strong, synthetic            maestro_real_train.h5    10 s chunks, hop 1 s, 90 % split
    desed_weak.h5          weak (event_labels)          maestro_real_val.h5      10 s chunks, hop 1 s, 10 % split
    desed_unlabeled.h5     no labels (folder listing)   maestro_real_devtest.h5  10 s chunks, hop 5 s
    desed_strong_real.h5   strong, AudioSet strong
    desed_synth_val.h5     strong + durations table
    desed_validation.h5    strong + durations table (the DESED dev-test set)
    desed_public_eval.h5   strong (DESED public evaluation set)
    desed_eval24.h5        no labels (DCASE'24 evaluation audio)

Folder and table names follow the DCASE'24 baseline (DCASE-REPO/DESED_task,
``recipes/dcase2024_task4_baseline/confs/pretrained.yaml``); the MAESTRO chunking, the train / dev-test recording
lists and the 90/10 split follow its ``dprep/download_prep_maestro.py``, ``dprep/{train,validation}_split.csv`` and
``train_pretrained.py:split_maestro``. MAESTRO chunks are packed as windows of the original recordings
(:class:`~datamodules.pack.PackItem` ``start``/``end``): no chunk wav files are written.
"""
from __future__ import annotations

import argparse
import csv
import glob
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from datamodules.audio_io import CODECS
from datamodules.label_tables import LabelTableError, read_label_tables
from datamodules.pack import WORK_DIR_SUFFIX, PackItem, PackReport, pack
from datamodules.sed.label_encoder import DESED_CLASSES, MAESTRO_REAL_CLASSES

DEFAULT_SAMPLE_RATE = 16000
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
_WEAK_MIN_CONFIDENCE = 0.5  # as datamodules.label_tables: strong events with this confidence make a weak label

Event = Tuple[float, float, int, float]  # onset, offset (s), class index, confidence


class SedPackError(ValueError):
    """The DESED/MAESTRO folders are incomplete or a table is malformed (the message names file, line, field)."""


# ---------------------------------------------------------------------------------------------------------------
# DESED: the sets of the DCASE'24 layout
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DesedSet:
    """Where one DESED set lives below the dataset root (``data/dcase/dataset`` in the baseline).

    Candidate paths are tried in order; the first that exists is used.

    Attributes:
        name: Set name for ``--sets``.
        out_file: Output file name.
        kind: ``strong`` (onset/offset/event_label), ``weak`` (event_labels) or ``none`` (no table: every audio
            file of the folder is packed).
        audio_16k: The baseline's resampled 16 kHz folders.
        audio_orig: The downloaded (44.1 kHz) folders.
        labels: Label tables (empty for ``none``).
        durations: Durations tables (``filename``, ``duration``); optional.
    """

    name: str
    out_file: str
    kind: str
    audio_16k: Tuple[str, ...]
    audio_orig: Tuple[str, ...]
    labels: Tuple[str, ...] = ()
    durations: Tuple[str, ...] = ()


def _synth(split: str) -> Dict[str, Tuple[str, ...]]:
    """Paths of ``synthetic21_<split>``: at the root (the baseline's symlinks) and in the unpacked ``dcase_synth``."""
    sub = f"{split}/synthetic21_{split}"
    roots = ("", "dcase_synth/")
    return {
        "audio_16k": tuple(f"{r}audio/{sub}/soundscapes_16k" for r in roots),
        "audio_orig": tuple(f"{r}audio/{sub}/soundscapes" for r in roots),
        "labels": tuple(f"{r}metadata/{sub}/soundscapes.tsv" for r in roots),
        "durations": tuple(f"{r}metadata/{sub}/durations.tsv" for r in roots),
    }


_SYNTH_TRAIN, _SYNTH_VAL = _synth("train"), _synth("validation")

DESED_SETS: Dict[str, DesedSet] = {
    s.name: s
    for s in (
        DesedSet("synth_train", "desed_synth_train.h5", "strong", _SYNTH_TRAIN["audio_16k"],
                 _SYNTH_TRAIN["audio_orig"], _SYNTH_TRAIN["labels"]),
        DesedSet("weak", "desed_weak.h5", "weak", ("audio/train/weak_16k",), ("audio/train/weak",),
                 ("metadata/train/weak.tsv",)),
        DesedSet("unlabeled", "desed_unlabeled.h5", "none", ("audio/train/unlabel_in_domain_16k",),
                 ("audio/train/unlabel_in_domain",)),
        DesedSet("strong_real", "desed_strong_real.h5", "strong", ("audio/train/strong_label_real_16k",),
                 ("audio/train/strong_label_real",), ("metadata/train/audioset_strong.tsv",)),
        DesedSet("synth_val", "desed_synth_val.h5", "strong", _SYNTH_VAL["audio_16k"], _SYNTH_VAL["audio_orig"],
                 _SYNTH_VAL["labels"], _SYNTH_VAL["durations"]),
        DesedSet("validation", "desed_validation.h5", "strong", ("audio/validation/validation_16k",),
                 ("audio/validation/validation",), ("metadata/validation/validation.tsv",),
                 ("metadata/validation/validation_durations.tsv",)),
        DesedSet("public_eval", "desed_public_eval.h5", "strong", ("audio/eval/public_16k",), ("audio/eval/public",),
                 ("metadata/eval/public.tsv",), ("metadata/eval/public_durations.tsv",)),
        DesedSet("eval24", "desed_eval24.h5", "none", ("audio/eval24_16k",), ("audio/eval24",)),
    )
}


@dataclass(frozen=True)
class LocatedSet:
    """The folders and tables of a :class:`DesedSet` found below a root."""

    spec: DesedSet
    audio_dir: str
    labels: Optional[str]
    durations: Optional[str]


def _first_existing(root: str, candidates: Iterable[str], isdir: bool) -> Optional[str]:
    for rel in candidates:
        path = os.path.join(root, rel)
        if (os.path.isdir(path) if isdir else os.path.isfile(path)):
            return path
    return None


def audio_dir_candidates(spec: DesedSet, sample_rate: int) -> Tuple[str, ...]:
    """Audio folders in order of preference: the 16 kHz copies when packing at <= 16 kHz (no resampling needed),
    the full-band originals first for higher rates."""
    if sample_rate <= 16000:
        return spec.audio_16k + spec.audio_orig
    return spec.audio_orig + spec.audio_16k


def locate_desed_set(root: str, spec: DesedSet, sample_rate: int) -> Tuple[Optional[LocatedSet], str]:
    """Finds the audio folder and tables of ``spec`` below ``root``.

    Returns:
        (the located set, "") or (None, why it is incomplete).
    """
    audio_dir = _first_existing(root, audio_dir_candidates(spec, sample_rate), isdir=True)
    if audio_dir is None:
        tried = ", ".join(audio_dir_candidates(spec, sample_rate))
        return None, f"no audio folder (looked for {tried} under {root})"
    labels = None
    if spec.kind != "none":
        labels = _first_existing(root, spec.labels, isdir=False)
        if labels is None:
            return None, f"no label table (looked for {', '.join(spec.labels)} under {root})"
    durations = _first_existing(root, spec.durations, isdir=False)
    return LocatedSet(spec, audio_dir, labels, durations), ""


def read_durations(path: str) -> Dict[str, float]:
    """``filename`` -> ``duration`` (seconds) of a DESED durations table (tab-separated, with a header).

    Raises:
        SedPackError: A missing column, an empty file name, or a duration that is not a positive number.
    """
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip() for h in rows[0]] if rows else []
    for col in ("filename", "duration"):
        if col not in header:
            raise SedPackError(f"{path}, line 1: missing column {col!r} (header: {', '.join(header) or 'none'})")
    i_name, i_dur = header.index("filename"), header.index("duration")
    durations: Dict[str, float] = {}
    for line_no, fields in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in fields):
            continue
        fields = [x.strip() for x in fields] + [""] * (len(header) - len(fields))
        if not fields[i_name]:
            raise SedPackError(f"{path}, line {line_no}, field 'filename': empty file name")
        durations[fields[i_name]] = _positive_seconds(fields[i_dur], path, line_no, "duration")
    return durations


def _positive_seconds(text: str, path: str, line_no: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SedPackError(f"{path}, line {line_no}, field {field!r}: {text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise SedPackError(f"{path}, line {line_no}, field {field!r}: expected a positive duration, got {text!r}")
    return value


def list_audio_files(folder: str) -> List[str]:
    """Sorted names of the audio files directly in ``folder`` (unlabeled sets have no table)."""
    return sorted(
        n for n in os.listdir(folder)
        if not n.startswith(".") and n.lower().endswith(AUDIO_EXTENSIONS) and os.path.isfile(os.path.join(folder, n))
    )


def desed_items(located: LocatedSet, skip_missing: bool = True) -> Tuple[List[PackItem], List[str]]:
    """Pack items of a located DESED set, and the table rows skipped for missing audio.

    Class indices are into :data:`DESED_CLASSES`; a label outside it is an error naming the table, line and field.
    Clips listed in the set's durations table store that duration.
    """
    if located.spec.kind == "none":
        names = list_audio_files(located.audio_dir)
        items = [PackItem(path=os.path.join(located.audio_dir, n), name=n) for n in names]
        missing: List[str] = []
    else:
        labels = read_label_tables([located.labels], located.audio_dir, classes=DESED_CLASSES,
                                   skip_missing=skip_missing)
        items, missing = labels.items, labels.missing
    if located.durations:
        durations = read_durations(located.durations)
        for item in items:
            item.duration = durations.get(item.name)
    return items, missing


def select_desed_sets(root: str, sets: Optional[Sequence[str]], sample_rate: int) -> List[LocatedSet]:
    """The DESED sets to pack: ``sets`` (each must be complete), or every complete set when ``sets`` is None.

    Raises:
        SedPackError: An unknown or incomplete set named explicitly, or no complete set at all.
    """
    if not os.path.isdir(root):
        raise SedPackError(f"DESED root {root!r} is not a folder")
    unknown = [s for s in sets or () if s not in DESED_SETS]
    if unknown:
        raise SedPackError(f"unknown DESED sets {unknown}; known: {', '.join(DESED_SETS)}")
    found = []
    for name in sets if sets is not None else list(DESED_SETS):
        located, why = locate_desed_set(root, DESED_SETS[name], sample_rate)
        if located is None:
            if sets is not None:
                raise SedPackError(f"DESED set {name!r}: {why}")
            print(f"skipping DESED set {name!r}: {why}", file=sys.stderr)
            continue
        found.append(located)
    if not found:
        raise SedPackError(f"no DESED set found under {root!r} (expected the DCASE'24 layout, see docs/sed-data.md)")
    return found


def pack_desed(
    desed_root: str,
    out_dir: str,
    sets: Optional[Sequence[str]] = None,
    *,
    codec: str = "flac",
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    workers: Optional[int] = None,
    skip_missing: bool = True,
    progress: bool = True,
) -> Dict[str, PackReport]:
    """Packs the DESED sets found under ``desed_root`` into ``out_dir/desed_<set>.h5``.

    Args:
        desed_root: The DCASE'24 dataset folder (holding ``audio/`` and ``metadata/``, maybe ``dcase_synth/``).
        out_dir: Output folder (created).
        sets: Names from :data:`DESED_SETS`; an explicitly named set that is missing is an error. Default: every
            set found (the others are skipped with a message).
        codec: Stored codec.
        sample_rate: Rate of the stored audio.
        workers: Encoding processes (None: all cores).
        skip_missing: Skip table rows whose audio file was never downloaded (reported) instead of failing.
        progress: Progress bars.

    Returns:
        Set name -> :class:`PackReport`, in table order.

    Raises:
        SedPackError: Missing folders/tables (see ``sets``); LabelTableError: malformed tables, unknown classes,
            or (``skip_missing=False``) missing audio.
    """
    reports = {}
    for located in select_desed_sets(desed_root, sets, sample_rate):
        items, missing = desed_items(located, skip_missing)
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            print(f"DESED {located.spec.name}: {len(missing)} files of {located.labels} are missing under "
                  f"{located.audio_dir} and skipped: {shown}", file=sys.stderr)
        if not items:
            raise SedPackError(f"DESED set {located.spec.name!r}: no audio files in {located.audio_dir}")
        out = os.path.join(out_dir, located.spec.out_file)
        reports[located.spec.name] = pack(items, out, codec=codec, sample_rate=sample_rate,
                                          class_names=DESED_CLASSES, workers=workers, progress=progress)
    return reports


# ---------------------------------------------------------------------------------------------------------------
# MAESTRO real: recordings -> 10 s chunks
# ---------------------------------------------------------------------------------------------------------------
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
_MAESTRO_INDEX = {c: i for i, c in enumerate(MAESTRO_REAL_CLASSES)}
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
        SedPackError: None of them has both sub-folders.
    """
    for rel in _MAESTRO_DEV_CANDIDATES:
        folder = os.path.join(root, rel)
        if all(os.path.isdir(os.path.join(folder, sub)) for sub in ("development_audio", "development_annotation")):
            return folder
    tried = ", ".join(os.path.join(root, rel) or root for rel in _MAESTRO_DEV_CANDIDATES)
    raise SedPackError(f"no MAESTRO real development data: none of {tried} holds development_audio/ and "
                       "development_annotation/")


def _files_by_stem(folder: str, extension: str) -> Dict[str, str]:
    """stem -> path of every ``*extension`` file below ``folder`` (recursive); a repeated stem is an error."""
    found: Dict[str, str] = {}
    for path in sorted(glob.glob(os.path.join(folder, "**", f"*{extension}"), recursive=True)):
        stem = os.path.splitext(os.path.basename(path))[0]
        if stem in found:
            raise SedPackError(f"two MAESTRO files named {stem!r}: {found[stem]} and {path}")
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
            raise SedPackError(f"MAESTRO recording {audio[name]} has no annotation {name}.txt under "
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
        raise SedPackError(f"{audio}: unreadable audio ({err})") from err
    return Recording(name, audio, annotation, int(info.frames), int(info.samplerate))


def read_maestro_annotation(path: str) -> List[Tuple[float, float, str, float]]:
    """(onset, offset, label, confidence) rows of a MAESTRO annotation (``onset offset label confidence``, tabs,
    no header; a header line starting with ``onset`` is tolerated).

    Raises:
        SedPackError: Wrong field count, non-numbers, offset before onset, confidence outside [0, 1], or a label
            outside :data:`MAESTRO_REAL_CLASSES`, naming the file, line and field.
    """
    events = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        for line_no, line in enumerate(f, start=1):
            fields = [x.strip() for x in line.rstrip("\r\n").split("\t")]
            if not any(fields) or (line_no == 1 and fields[0].lower() == "onset"):
                continue
            events.append(_annotation_row(fields, path, line_no))
    return events


def _annotation_row(fields: List[str], path: str, line_no: int) -> Tuple[float, float, str, float]:
    if len(fields) != 4:
        raise SedPackError(f"{path}, line {line_no}: expected 4 tab-separated fields (onset, offset, event_label, "
                           f"confidence), got {len(fields)}")
    onset, offset = (_non_negative(fields[i], path, line_no, col) for i, col in ((0, "onset"), (1, "offset")))
    if offset < onset:
        raise SedPackError(f"{path}, line {line_no}, field 'offset': offset {offset} is before onset {onset}")
    label = fields[2]
    if label not in MAESTRO_REAL_CLASSES:
        raise SedPackError(f"{path}, line {line_no}, field 'event_label': unknown class {label!r} (expected one of "
                           f"the 17 MAESTRO real classes)")
    confidence = _non_negative(fields[3], path, line_no, "confidence")
    if confidence > 1.0:
        raise SedPackError(f"{path}, line {line_no}, field 'confidence': {confidence} is outside [0, 1]")
    return onset, offset, label, confidence


def _non_negative(text: str, path: str, line_no: int, field: str) -> float:
    """The finite number >= 0 in ``text`` (a time or a confidence), or an error naming file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise SedPackError(f"{path}, line {line_no}, field {field!r}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise SedPackError(f"{path}, line {line_no}, field {field!r}: expected a number >= 0, got {text!r}")
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


def chunk_events(events: Sequence[Tuple[float, float, str, float]], start: float, end: float) -> List[Event]:
    """The events overlapping [start, end) s, clipped to it and shifted to the chunk start.

    An event overlaps when ``onset < end`` and ``offset > start``; confidences are kept. Sorted by onset.
    """
    inside = [
        (max(0.0, on - start), min(end - start, off - start), _MAESTRO_INDEX[label], conf)
        for on, off, label, conf in events
        if on < end and off > start
    ]
    return sorted(inside)


def recording_chunks(recording: Recording, hop: float, window: float = MAESTRO_WINDOW) -> List[PackItem]:
    """One :class:`PackItem` window per chunk of ``recording`` (events relative to the chunk; weak labels are the
    classes of events with confidence >= 0.5)."""
    events = read_maestro_annotation(recording.annotation)
    items = []
    for first, last in chunk_bounds(recording.frames, recording.rate, window, hop):
        start, end = first / recording.rate, last / recording.rate
        chunk = chunk_events(events, start, end)
        items.append(PackItem(
            path=recording.audio,
            name=chunk_name(recording.name, first, last, recording.rate),
            weak=sorted({e[2] for e in chunk if e[3] >= _WEAK_MIN_CONFIDENCE}),
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
        SedPackError: A recording of an unknown scene.
    """
    unknown = [r for r in recordings if scene_of(r) not in MAESTRO_SCENES]
    if unknown:
        raise SedPackError(f"MAESTRO recordings of unknown scenes {unknown[:5]}; known: {', '.join(MAESTRO_SCENES)}")
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
) -> Dict[str, List[PackItem]]:
    """Pack items of the MAESTRO sets ``maestro_train``, ``maestro_val`` (hop 1 s chunks of the baseline's training
    recordings, split 90/10 per scene) and ``maestro_devtest`` (hop 5 s chunks of its validation recordings).

    Args:
        maestro_root: See :func:`find_maestro_dev`.
        sets: Which sets to build.
        keep_empty: Keep chunks without any event (the baseline's tables have no row for them, so it drops them).
        fraction: Share of each scene's training recordings that train.
        seed: Seed of the split.
    """
    unknown = [s for s in sets if s not in MAESTRO_FILES]
    if unknown:
        raise SedPackError(f"unknown MAESTRO sets {unknown}; known: {', '.join(MAESTRO_FILES)}")
    dev_dir = find_maestro_dev(maestro_root)
    stray = unlisted_recordings(dev_dir)
    if stray:
        print(f"MAESTRO: recordings in neither baseline list ignored: {', '.join(stray)}", file=sys.stderr)
    result: Dict[str, List[PackItem]] = {}
    if {"maestro_train", "maestro_val"} & set(sets):
        recordings = find_recordings(dev_dir, MAESTRO_TRAIN_RECORDINGS)
        chunks = {name: recording_chunks(rec, MAESTRO_TRAIN_HOP) for name, rec in recordings.items()}
        train, val = split_train_recordings(table_order(chunks), fraction, seed)
        result["maestro_train"] = _set_items(chunks, train, keep_empty)
        result["maestro_val"] = _set_items(chunks, val, keep_empty)
    if "maestro_devtest" in sets:
        recordings = find_recordings(dev_dir, MAESTRO_DEVTEST_RECORDINGS)
        chunks = {name: recording_chunks(rec, MAESTRO_DEVTEST_HOP) for name, rec in recordings.items()}
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

    Returns:
        Set name -> :class:`PackReport`.
    """
    wanted = list(sets) if sets is not None else list(MAESTRO_FILES)
    reports = {}
    for name, items in maestro_items(maestro_root, wanted, keep_empty=keep_empty).items():
        if not items:
            print(f"MAESTRO {name}: no chunks (no recordings found), nothing written", file=sys.stderr)
            continue
        out = os.path.join(out_dir, MAESTRO_FILES[name])
        reports[name] = pack(items, out, codec=codec, sample_rate=sample_rate, class_names=MAESTRO_REAL_CLASSES,
                             workers=workers, progress=progress)
    return reports


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
ALL_SETS: Tuple[str, ...] = tuple(DESED_SETS) + tuple(MAESTRO_FILES)


def build_parser() -> argparse.ArgumentParser:
    """The ``sonolab sed-pack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sonolab sed-pack",
        description="Pack DESED (DCASE'24 Task 4 layout) and MAESTRO real into sonolab HDF5 files, one per set. "
        "An interrupted run resumes when started again with the same arguments.",
    )
    parser.add_argument("--desed-root", help="DCASE'24 dataset folder with audio/ and metadata/ (data/dcase/dataset)")
    parser.add_argument("--maestro-root", help="folder with development_audio/ and development_annotation/ (or "
                        "its parent maestro_dev/ or MAESTRO_original/maestro_dev/)")
    parser.add_argument("--out-dir", required=True, help="output folder")
    parser.add_argument("--sets", nargs="+", choices=ALL_SETS, metavar="SET",
                        help=f"sets to pack (default: all found): {', '.join(ALL_SETS)}")
    parser.add_argument("--codec", default="flac", choices=CODECS, help="stored codec (default flac, lossless)")
    parser.add_argument("--sample-rate", type=int, default=DEFAULT_SAMPLE_RATE, help="output rate (default 16000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    parser.add_argument("--strict", action="store_true",
                        help="a DESED table row whose audio is missing is an error (default: skipped, reported)")
    parser.add_argument("--maestro-keep-empty", action="store_true",
                        help="also pack MAESTRO chunks without events (the baseline drops them)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _split_sets(args: argparse.Namespace) -> Tuple[Optional[List[str]], Optional[List[str]]]:
    """(DESED sets, MAESTRO sets) to pack: None = all found, [] = none."""
    if args.sets is None:
        return (None if args.desed_root else []), (None if args.maestro_root else [])
    desed = [s for s in args.sets if s in DESED_SETS]
    maestro = [s for s in args.sets if s in MAESTRO_FILES]
    if desed and not args.desed_root:
        raise SedPackError(f"--sets {' '.join(desed)} needs --desed-root")
    if maestro and not args.maestro_root:
        raise SedPackError(f"--sets {' '.join(maestro)} needs --maestro-root")
    return desed, maestro


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab sed-pack``: 0 on success, 1 on bad input, 130 when interrupted (rerun to resume)."""
    args = build_parser().parse_args(argv)
    if not args.desed_root and not args.maestro_root:
        print("error: give --desed-root and/or --maestro-root", file=sys.stderr)
        return 1
    progress = not args.no_progress
    reports: Dict[str, PackReport] = {}
    try:
        desed_sets, maestro_sets = _split_sets(args)
        if desed_sets != []:
            reports.update(pack_desed(args.desed_root, args.out_dir, desed_sets, codec=args.codec,
                                      sample_rate=args.sample_rate, workers=args.workers,
                                      skip_missing=not args.strict, progress=progress))
        if maestro_sets != []:
            reports.update(pack_maestro(args.maestro_root, args.out_dir, maestro_sets, codec=args.codec,
                                        sample_rate=args.sample_rate, workers=args.workers,
                                        keep_empty=args.maestro_keep_empty, progress=progress))
    except KeyboardInterrupt:
        print(f"interrupted; finished clips are kept in {args.out_dir}/*.h5{WORK_DIR_SUFFIX}/, rerun to resume",
              file=sys.stderr)
        return 130
    except (SedPackError, LabelTableError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for report in reports.values():
        print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
