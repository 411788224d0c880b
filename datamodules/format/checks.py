"""What the packer checks before and after encoding: sample rates a codec can store, outputs that would overwrite an
input, and events and declared durations against the audio (the ``OUT.errors.tsv`` notes)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

from datamodules.format.encoding import Note
from datamodules.format.parts import LOCK_SUFFIX

if TYPE_CHECKING:  # pack.py imports this module
    from datamodules.format.pack import PackItem

ERRORS_SUFFIX = ".errors.tsv"
MAX_SAMPLE_RATE = 384000
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)  # what MPEG-1/2/2.5 can hold
OGG_MAX_SAMPLE_RATE = 192000  # libvorbis crashes (segmentation fault) on rates far above
Event = Tuple[float, float, int, float]


class PackError(ValueError):
    """Bad input to :func:`pack` that only shows once the audio is read (``strict``), or an output that would
    overwrite an input."""



def check_sample_rate(sample_rate: object, codec: Optional[str] = None) -> int:
    """``sample_rate`` as an int, when it is a whole number of Hz in 1..384000 that ``codec`` can store (mp3: the
    MPEG rates 8000..48000, ogg: up to 192000).

    Raises:
        ValueError: One line saying what is wrong.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ValueError(f"sample rate must be a whole number of Hz, got {sample_rate!r}")
    rate = int(sample_rate)
    if not 0 < rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample rate must be 1..{MAX_SAMPLE_RATE} Hz, got {rate}")
    if codec == "mp3" and rate not in MP3_SAMPLE_RATES:
        raise ValueError(f"codec mp3 stores only {', '.join(map(str, MP3_SAMPLE_RATES))} Hz, got {rate} "
                         "(flac and pcm16 store any rate)")
    if codec == "ogg" and rate > OGG_MAX_SAMPLE_RATE:
        raise ValueError(f"codec ogg stores at most {OGG_MAX_SAMPLE_RATE} Hz, got {rate} (flac and pcm16 store any "
                         "rate)")
    return rate


def check_output_is_not_an_input(items: Sequence[PackItem], out_path: str) -> None:
    """Refuses an output that would overwrite an input: ``out_path`` (or its ``.tmp``, ``.errors.tsv``, ``.lock``)
    being the audio of an item, compared as files (symbolic and hard links resolve to the same file), or a folder.

    Only existing outputs can be inputs, so a new output costs nothing; otherwise one ``stat`` per item.

    Raises:
        PackError: Naming the output and the clip.
    """
    if os.path.isdir(out_path):
        raise PackError(f"output {out_path} is a folder; give the path of the .h5 file to write")
    outputs = {}
    for suffix in ("", ".tmp", ERRORS_SUFFIX, LOCK_SUFFIX):
        try:
            st = os.stat(out_path + suffix)
        except OSError:
            continue
        outputs[(st.st_dev, st.st_ino)] = out_path + suffix
    if not outputs:
        return
    for it in items:
        try:
            st = os.stat(it.path)
        except OSError:
            continue
        hit = outputs.get((st.st_dev, st.st_ino))
        if hit:
            raise PackError(f"output {hit} is the audio of clip {it.name!r} ({it.path}); choose another output file")


def time_tolerance(sample_rate: int) -> float:
    """Seconds by which a declared duration or an event offset may exceed the audio unreported: max(one sample,
    10 ms) (a duration table rounded to the millisecond, a resampled length)."""
    return max(1.0 / sample_rate, 0.01)


def fit_events(item: PackItem, seconds: float, sample_rate: int, class_names: Sequence[str]
               ) -> Tuple[List[Event], List[Note]]:
    """The item's events fitted to its clip, and what had to change.

    The clip lasts its declared duration when there is one, else ``seconds`` (the encoded audio). An event starting
    at or after the end is dropped; one ending after it is cut there (reported when by more than
    :func:`time_tolerance`). A declared duration that disagrees with the audio by more than that is reported too.
    """
    tolerance = time_tolerance(sample_rate)
    notes: List[Note] = []
    clip = seconds if item.duration is None else float(item.duration)
    if item.duration is not None and abs(clip - seconds) > tolerance:
        notes.append(("duration_mismatch", f"declared duration {_s(clip)} s, the audio lasts {_s(seconds)} s (the "
                                           "declared value is stored)"))
    events = []
    for onset, offset, cls, confidence in item.events:
        label = class_names[cls] if 0 <= cls < len(class_names) else str(cls)
        where = f"event {label!r} {_s(onset)}-{_s(offset)} s"
        if onset >= clip:
            notes.append(("dropped_event", f"{where} dropped: it starts at or after the end of the {_s(clip)} s clip"))
            continue
        if offset > clip + tolerance:
            notes.append(("clipped_event", f"{where} clipped to the {_s(clip)} s clip"))
        events.append((onset, min(offset, clip), cls, confidence))
    return events, notes


def _s(seconds: float) -> str:
    """Seconds for messages: up to 3 decimals, at least one (``10.0``, ``8.25``, ``9.998``)."""
    text = f"{seconds:.3f}".rstrip("0")
    return text + "0" if text.endswith(".") else text
