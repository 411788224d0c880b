"""An AudioSet-strong look-alike of the demo event clips, in the real formats (:mod:`datamodules.sources.demo`).

``DIR/audioset_strong/`` (from ``DIR/events``)::

    mid_to_display_name.tsv           /m/demo_<k> <TAB> name: the 8 demo classes, then 2 classes only in the map
    audioset_train_strong.tsv         the first train clips with events, without the class EVAL_ONLY
    audioset_eval_strong.tsv          the first val clips with events, without the class TRAIN_ONLY
    balanced_train_segments_mp3.hdf   community-format audio (``Y<ytid>.mp3``, mp3 at 32 kHz, weak targets over the
    eval_segments_mp3.hdf             map), packed with the real packer: the first TRAIN_CLIPS / EVAL_CLIPS clips

Segment ids are ``<ytid>_0`` with an 11-character id derived from the clip's split and name (URL-safe base64, so ids
may hold ``-`` and ``_`` as real ones do). What the tables exercise: the last few clips of each table have no audio
(segments skipped with a warning), packed clips without events have no strong labels (left out), every 4th labelled
clip has its first event written as two overlapping rows (merged back on reading), and one class is only in each
table (trained 7, evaluated 7, metric 6, map 10).
"""
from __future__ import annotations

import base64
import csv
import hashlib
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from datamodules.format.pack import PackItem, pack
from datamodules.sources import synth
from datamodules.sources.audioset_strong import TABLE_COLUMNS, default_paths

FOLDER = "audioset_strong"
TRAIN_CLIPS, EVAL_CLIPS = 64, 32
ABSENT = 3  # labelled clips past the packed ones: in a table, not in the audio files
TRAIN_ONLY, EVAL_ONLY = synth.EVENT_CLASSES[0], synth.EVENT_CLASSES[-1]
MAP_ONLY = ("Silence", "Vibration")
SAMPLE_RATE = 32000


@dataclass
class StrongDemo:
    """Paths (and clip counts) of the AudioSet-strong demo."""

    class_map: str
    train_table: str
    eval_table: str
    h5_files: Dict[str, str] = field(default_factory=dict)
    counts: Dict[str, int] = field(default_factory=dict)


def demo_ytid(split: str, name: str) -> str:
    """The 11-character YouTube-like id of a demo clip."""
    digest = hashlib.sha1(f"{split}/{name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def _desed_events(path: str) -> Dict[str, List[Tuple[float, float, str]]]:
    """Events per clip of a demo ``{split}_strong.tsv`` (every clip listed, possibly without events)."""
    clips: Dict[str, List[Tuple[float, float, str]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            events = clips.setdefault(row["filename"], [])
            if row["event_label"]:
                events.append((float(row["onset"]), float(row["offset"]), row["event_label"]))
    return clips


def _table_rows(clips: Sequence[Tuple[str, List[Tuple[float, float, str]]]], mids: Dict[str, str],
                dropped: str) -> List[Tuple[str, str, str, str]]:
    rows, labelled = [], 0
    for segment, events in clips:
        events = [e for e in events if e[2] != dropped]
        if not events:
            continue
        for k, (onset, offset, label) in enumerate(events):
            if k == 0 and labelled % 4 == 0 and offset - onset > 0.2:  # one event as two overlapping rows
                middle = round((onset + offset) / 2, 3)
                rows.append((segment, f"{onset:.3f}", f"{middle + 0.1:.3f}", mids[label]))
                onset = middle
            rows.append((segment, f"{onset:.3f}", f"{offset:.3f}", mids[label]))
        labelled += 1
    return rows


def _write(path: str, rows: Sequence[Sequence[str]], header: Sequence[str] = ()) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in ([header] if header else []) + list(rows):
            f.write("\t".join(row) + "\n")


def write_audioset_strong(out_dir: str, workers: int = 2, progress: bool = False) -> StrongDemo:
    """Writes ``out_dir/audioset_strong`` from the demo event clips in ``out_dir/events`` (see the module docstring).

    Args:
        out_dir: A demo folder whose ``events`` part is written.
        workers: Packing processes (0: in this process).
        progress: Progress bars while packing.
    """
    root = os.path.join(out_dir, FOLDER)
    os.makedirs(root, exist_ok=True)
    paths = default_paths(root)
    classes = list(synth.EVENT_CLASSES) + list(MAP_ONLY)
    mids = {name: f"/m/demo_{k}" for k, name in enumerate(classes)}
    _write(paths["class_map"], [(mids[name], name) for name in classes])
    demo = StrongDemo(paths["class_map"], paths["train_table"], paths["eval_table"])
    for part, split, count, dropped, table, h5_name in (
            ("train", "train", TRAIN_CLIPS, EVAL_ONLY, paths["train_table"], "balanced_train_segments_mp3.hdf"),
            ("eval", "val", EVAL_CLIPS, TRAIN_ONLY, paths["eval_table"], "eval_segments_mp3.hdf")):
        events = _desed_events(os.path.join(out_dir, "events", "metadata", f"{split}_strong.tsv"))
        names = sorted(events)[:count + ABSENT]
        segments = [(f"{demo_ytid(split, n)}_0", events[n]) for n in names]
        _write(table, _table_rows(segments, mids, dropped), TABLE_COLUMNS)
        packed = names[:count]
        items = [PackItem(path=os.path.join(out_dir, "events", "audio", split, n), name=f"Y{demo_ytid(split, n)}.mp3",
                          weak=sorted({classes.index(e[2]) for e in events[n]})) for n in packed]
        if not items:
            continue
        out = os.path.join(root, h5_name)
        report = pack(items, out, codec="mp3", sample_rate=SAMPLE_RATE, class_names=classes, workers=workers,
                      progress=progress)
        if report.skipped:  # our own files: any failure is a bug
            raise RuntimeError(f"demo packing skipped clips: {report.errors[:3]}")
        demo.h5_files[f"as_strong_{part}"] = out
        demo.counts[f"as_strong_{part}"] = len(items)
    return demo
