"""DESED as the DCASE'24 Task 4 baseline lays it out (``data/dcase/dataset``) -> one sonolab HDF5 file per set
(docs/sed-data.md), 10 classes in :data:`~datamodules.sed.label_encoder.DESED_CLASSES` order::

    desed_synth_train.h5   strong, synthetic            desed_strong_real.h5   strong, AudioSet strong
    desed_weak.h5          weak (event_labels)          desed_synth_val.h5     strong + durations table
    desed_unlabeled.h5     no labels (folder listing)   desed_validation.h5    strong + durations (the dev-test set)
    desed_public_eval.h5   strong (public evaluation)   desed_eval24.h5        no labels (DCASE'24 evaluation audio)

Folder and table names follow the DCASE'24 baseline (DCASE-REPO/DESED_task,
``recipes/dcase2024_task4_baseline/confs/pretrained.yaml``). ``sonolab sed-pack`` is the command line.
"""
from __future__ import annotations

import csv
import math
import os
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from datamodules.format.label_tables import read_label_tables
from datamodules.format.pack import PackItem, PackReport, pack
from datamodules.format.text import open_text
from datamodules.sed.label_encoder import DESED_CLASSES
from datamodules.sources.common import LayoutError, list_audio_files

DEFAULT_SAMPLE_RATE = 16000  # the rate of the DCASE'24 Task 4 data and models


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
        LayoutError: A missing column, an empty file name, or a duration that is not a positive number.
    """
    with open_text(path) as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip() for h in rows[0]] if rows else []
    for col in ("filename", "duration"):
        if col not in header:
            raise LayoutError(f"{path}, line 1: missing column {col!r} (header: {', '.join(header) or 'none'})")
    i_name, i_dur = header.index("filename"), header.index("duration")
    durations: Dict[str, float] = {}
    for line_no, fields in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in fields):
            continue
        fields = [x.strip() for x in fields] + [""] * (len(header) - len(fields))
        if not fields[i_name]:
            raise LayoutError(f"{path}, line {line_no}, field 'filename': empty file name")
        durations[fields[i_name]] = _positive_seconds(fields[i_dur], path, line_no, "duration")
    return durations


def _positive_seconds(text: str, path: str, line_no: int, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LayoutError(f"{path}, line {line_no}, field {field!r}: {text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise LayoutError(f"{path}, line {line_no}, field {field!r}: expected a positive duration, got {text!r}")
    return value


def desed_items(located: LocatedSet, skip_missing: bool = True,
                classes: Optional[Sequence[str]] = None) -> Tuple[List[PackItem], List[str]]:
    """Pack items of a located DESED set, and the table rows skipped for missing audio.

    Class indices are into ``classes`` (default :data:`DESED_CLASSES`); a label outside it is an error naming the
    table, line and field.
    Clips listed in the set's durations table store that duration.
    """
    if located.spec.kind == "none":
        names = list_audio_files(located.audio_dir)
        items = [PackItem(path=os.path.join(located.audio_dir, n), name=n) for n in names]
        missing: List[str] = []
    else:
        labels = read_label_tables([located.labels], located.audio_dir, classes=classes or DESED_CLASSES,
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
        LayoutError: An unknown or incomplete set named explicitly, or no complete set at all.
    """
    if not os.path.isdir(root):
        raise LayoutError(f"DESED root {root!r} is not a folder")
    unknown = [s for s in sets or () if s not in DESED_SETS]
    if unknown:
        raise LayoutError(f"unknown DESED sets {unknown}; known: {', '.join(DESED_SETS)}")
    found = []
    for name in sets if sets is not None else list(DESED_SETS):
        located, why = locate_desed_set(root, DESED_SETS[name], sample_rate)
        if located is None:
            if sets is not None:
                raise LayoutError(f"DESED set {name!r}: {why}")
            print(f"skipping DESED set {name!r}: {why}", file=sys.stderr)
            continue
        found.append(located)
    if not found:
        raise LayoutError(f"no DESED set found under {root!r} (expected the DCASE'24 layout, see docs/sed-data.md)")
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
    strict: bool = False,
    allow_truncated: bool = False,
    classes: Optional[Sequence[str]] = None,
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
        strict: Events past the end of their clip and durations-table values that disagree with the audio are
            errors (default: cut or dropped, and reported; see :func:`~datamodules.format.pack.pack`).
        allow_truncated: Pack truncated audio files as far as they decode instead of skipping them.
        classes: The label space of DESED-layout tables with other classes (default :data:`DESED_CLASSES`).

    Returns:
        Set name -> :class:`PackReport`, in table order.

    Raises:
        LayoutError: Missing folders/tables (see ``sets``); LabelTableError: malformed tables, unknown classes,
            or (``skip_missing=False``) missing audio.
    """
    reports = {}
    for located in select_desed_sets(desed_root, sets, sample_rate):
        items, missing = desed_items(located, skip_missing, classes)
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            print(f"DESED {located.spec.name}: {len(missing)} files of {located.labels} are missing under "
                  f"{located.audio_dir} and skipped: {shown}", file=sys.stderr)
        if not items:
            raise LayoutError(f"DESED set {located.spec.name!r}: no audio files in {located.audio_dir}")
        out = os.path.join(out_dir, located.spec.out_file)
        reports[located.spec.name] = pack(items, out, codec=codec, sample_rate=sample_rate,
                                          class_names=list(classes or DESED_CLASSES), workers=workers,
                                          progress=progress, strict=strict, allow_truncated=allow_truncated)
    return reports
