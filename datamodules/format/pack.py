"""Packs audio files and their labels into one sonolab HDF5 file (format: docs/hdf5-format.md).

Worker processes read, resample and encode; the main process alone writes. Finished clips are flushed to a work
directory ``OUT.parts/`` in chunk files written atomically (every ``chunk_items`` clips, every ``flush_seconds``,
and on Ctrl-C/SIGTERM), so a rerun with the same arguments resumes where an interrupted one stopped. The final file
is assembled in item order into ``OUT.tmp`` and renamed onto ``OUT``. ``OUT.lock`` keeps a second packer off the
same output; a full disk stops with one line (:class:`DiskFullError`) and the finished work kept.

``OUT.errors.tsv`` (``filename``, ``kind``, ``message``; one line per problem) lists what was skipped (``skipped``:
unreadable audio, or a truncated file without ``allow_truncated``) and what was packed with a change: ``truncated``
(packed as far as it decodes), ``clipped_audio`` (float samples beyond [-1, 1] clipped), ``duration_mismatch`` (a
declared duration more than :func:`time_tolerance` away from the audio; the declared value is stored),
``clipped_event`` (an event ending after the clip, cut at its end) and ``dropped_event`` (an event starting at or
after the end). With ``strict``, the last three are errors instead.

Modules: :mod:`datamodules.format.encoding` (worker side), :mod:`datamodules.format.parts` (the work directory);
the command line is ``sonolab pack`` (``experiments/commands/pack.py``).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from datamodules.format.audio_io import CODECS
from datamodules.format.checks import (
    ERRORS_SUFFIX,
    Event,
    PackError,
    check_output_is_not_an_input,
    check_sample_rate,
    fit_events,
)
from datamodules.format.encoding import EncodeResult, one_line, run_tasks, start_executor
from datamodules.format.hdf5 import ClipRecord, write_h5
from datamodules.format.parts import (
    WORK_DIR_SUFFIX,
    DiskFullError,
    Flusher,
    WorkDir,
    disk_full_error,
    is_disk_full,
    output_lock,
    source_signature,
)

LABEL_KINDS = ("duration_mismatch", "clipped_event", "dropped_event")  # the problems ``strict`` turns into errors


@dataclass
class PackItem:
    """One clip to pack: where its audio is and what is known about it.

    Attributes:
        path: Audio file on disk (any format soundfile or PyAV reads).
        name: Clip id stored in ``audio_name`` (usually the file name as the label table writes it); unique.
        weak: Indices of the positive classes (into ``class_names``).
        events: Strong events as (onset, offset, class index, confidence).
        scene, device, city: Indices into ``scene_names``, ``device_names``, ``city_names`` (-1: unknown).
        captions: Free-text captions.
        start: Seconds into ``path`` where the clip begins (a window of a long recording, e.g. a MAESTRO chunk).
        end: Seconds into ``path`` where the clip ends (exclusive; None: the end of the file). Sample indices are
            ``round(seconds * rate)`` at the file's rate; a window reaching past the end of the file is cut there,
            not zero-padded (the stored ``duration`` tells the real length), and one that starts at or after the
            end of the file is an unreadable clip (listed in the errors log).
        duration: Declared duration to store instead of the measured one (e.g. from a DESED durations table).
    """

    path: str
    name: str
    weak: List[int] = field(default_factory=list)
    events: List[Tuple[float, float, int, float]] = field(default_factory=list)
    scene: int = -1
    device: int = -1
    city: int = -1
    captions: List[str] = field(default_factory=list)
    start: float = 0.0
    end: Optional[float] = None
    duration: Optional[float] = None

    def record(self, audio: np.ndarray, duration: float, events: Optional[List[Event]] = None) -> ClipRecord:
        """The :class:`ClipRecord` of this item with its encoded audio (and its events fitted to it, when given)."""
        return ClipRecord(
            name=self.name,
            audio=audio,
            duration=duration if self.duration is None else float(self.duration),
            weak=list(self.weak),
            events=list(self.events if events is None else events),
            scene=self.scene,
            device=self.device,
            city=self.city,
            captions=list(self.captions),
        )


@dataclass
class PackReport:
    """What a :func:`pack` call did.

    Attributes:
        out_path: The HDF5 file written.
        packed: Clips in the file.
        skipped: Clips left out because their audio could not be read or is truncated (listed in ``errors``).
        encoded: Clips read and encoded by this call (failures included).
        reused: Clips taken from the work directory of an earlier, interrupted call.
        errors: (clip name, error message) of every skipped clip.
        errors_path: The ``OUT.errors.tsv`` log, or None when nothing was skipped or changed.
        seconds: Wall time of the call.
        warnings: (clip name, kind, message) of every change made to a packed clip (see the module docstring).
    """

    out_path: str
    packed: int
    skipped: int
    encoded: int
    reused: int
    errors: List[Tuple[str, str]]
    errors_path: Optional[str]
    seconds: float
    warnings: List[Tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        text = (
            f"{self.out_path}: packed {self.packed} clips ({self.encoded} encoded now, {self.reused} resumed), "
            f"skipped {self.skipped} in {self.seconds:.1f} s"
        )
        if self.warnings:
            kinds = [kind for _, kind, _ in self.warnings]
            counts = ", ".join(f"{kinds.count(k)} {k}" for k in dict.fromkeys(kinds))
            text += f"; packed with changes: {counts}"
        return text + (f"; details in {self.errors_path}" if self.errors_path else "")


class PackInterrupted(KeyboardInterrupt):
    """SIGTERM arrived while packing; the work done so far is saved and a rerun resumes."""


def item_signature(item: PackItem) -> str:
    """Resume signature of an item: its source file's signature, plus the window when it is not the whole file."""
    signature = source_signature(item.path)
    if item.start == 0.0 and item.end is None:
        return signature  # as before windows existed, so older work directories stay valid
    return f"{signature}|{float(item.start)!r}|{item.end if item.end is None else float(item.end)!r}"


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turns SIGTERM into :class:`PackInterrupted` so that it saves work like Ctrl-C does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the final flush short
        raise PackInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------------------------
# The packer
# ---------------------------------------------------------------------------------------------------------------
def pack(
    items: Sequence[PackItem],
    out_path: str,
    *,
    codec: str = "mp3",
    sample_rate: int = 32000,
    class_names: Sequence[str] = (),
    scene_names: Sequence[str] = (),
    device_names: Sequence[str] = (),
    city_names: Sequence[str] = (),
    workers: Optional[int] = None,
    progress: bool = True,
    quality: float = 0.9,
    chunk_items: int = 64,
    flush_seconds: float = 5.0,
    strict: bool = False,
    allow_truncated: bool = False,
) -> PackReport:
    """Packs ``items`` into the HDF5 file ``out_path``, resuming an interrupted earlier call.

    Args:
        items: Clips in the order the file stores them.
        out_path: Output file; written atomically (``OUT.tmp`` then rename), locked by ``OUT.lock`` meanwhile.
        codec: Stored codec, one of ``mp3``, ``flac``, ``ogg``, ``pcm16``.
        sample_rate: Every clip is resampled to this rate (see :func:`check_sample_rate`).
        class_names, scene_names, device_names, city_names: Vocabularies of the items' label indices.
        workers: Encoding processes (0: in this process; None: all CPU cores).
        progress: Show a tqdm progress bar.
        quality: 0..1 quality of lossy codecs.
        chunk_items: Clips per work-directory chunk file.
        flush_seconds: Also flush at least this often.
        strict: Events past the end of their clip and declared durations that disagree with the audio are errors
            (default: events are cut or dropped, and everything is reported in ``OUT.errors.tsv``).
        allow_truncated: Pack truncated files as far as they decode (reported) instead of skipping them.

    Returns:
        A :class:`PackReport`.

    Raises:
        ValueError: Bad arguments, duplicate clip names, no clip could be read; :class:`PackError`: an output
            that is an input, or (``strict``) labels that do not fit the audio; :class:`OutputLockedError`:
            another process packs to ``out_path``.
        DiskFullError: The disk filled up; the work so far is kept in ``OUT.parts/`` and a rerun resumes.
        KeyboardInterrupt: Ctrl-C or SIGTERM (:class:`PackInterrupted`); the work so far is saved in ``OUT.parts/``.
    """
    start = time.monotonic()
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
    sample_rate = check_sample_rate(sample_rate, codec)
    if not items:
        raise ValueError("nothing to pack: no items")
    names = [it.name for it in items]
    if len(set(names)) != len(names):
        seen: Set[str] = set()
        dups = sorted({n for n in names if n in seen or seen.add(n)})
        raise ValueError(f"duplicate clip names: {dups[:10]}")
    for it in items:
        if it.start < 0 or (it.end is not None and it.end <= it.start):
            raise ValueError(f"clip {it.name!r}: bad window start={it.start}, end={it.end} (need 0 <= start < end)")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    out_path = os.path.abspath(out_path)
    check_output_is_not_an_input(items, out_path)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)

    with output_lock(out_path):
        signatures = {it.name: item_signature(it) for it in items}
        work = WorkDir(out_path + WORK_DIR_SUFFIX, codec, sample_rate, quality)
        try:
            work.open(signatures)
            reused = len(work.done) + len(work.failed)
            todo = [i for i, it in enumerate(items) if it.name not in work.done and it.name not in work.failed]
            _encode(items, todo, signatures, work, out_path, codec, sample_rate, quality, workers, progress,
                    chunk_items, flush_seconds, reused)
            packed, events, rows = _review(items, work, sample_rate, class_names, allow_truncated)
            errors_path = out_path + ERRORS_SUFFIX
            _write_errors(errors_path, rows)
            label_rows = [r for r in rows if r[1] in LABEL_KINDS]
            if strict and label_rows:
                name, _, message = label_rows[0]
                n = len(label_rows)
                raise PackError(f"clip {name!r}: {message} (strict: {n} such problem{'s' * (n != 1)} in {errors_path})")
            if not packed:
                raise ValueError(f"no clip could be read; see {errors_path}")
            _assemble(packed, events, work, out_path, codec, sample_rate, class_names, scene_names, device_names,
                      city_names)
        except DiskFullError as err:
            kept = len(work.done) + len(work.failed)
            raise DiskFullError(f"{err}; free some space and run the same command again: the {kept} clips "
                                f"finished so far are kept in {work.path}") from None
        work.remove()
    errors = [(name, message) for name, kind, message in rows if kind == "skipped"]
    return PackReport(
        out_path=out_path,
        packed=len(packed),
        skipped=len(errors),
        encoded=len(todo),
        reused=reused,
        errors=errors,
        errors_path=errors_path if rows else None,
        seconds=time.monotonic() - start,
        warnings=[r for r in rows if r[1] != "skipped"],
    )


def _encode(items: Sequence[PackItem], todo: List[int], signatures: Dict[str, str], work: WorkDir, out_path: str,
            codec: str, sample_rate: int, quality: float, workers: int, progress: bool, chunk_items: int,
            flush_seconds: float, done_before: int) -> None:
    """Encodes the items ``todo`` in ``workers`` processes into the work directory (saved also when interrupted)."""
    from tqdm import tqdm

    tasks = [
        (i, items[i].path, int(sample_rate), codec, float(quality), float(items[i].start), items[i].end) for i in todo
    ]
    flusher = Flusher(work, chunk_items, flush_seconds)

    def consume(result: EncodeResult) -> None:
        index, audio, duration, error, notes = result
        name = items[index].name
        flusher.add((name, signatures[name], audio, duration, error, notes))
        bar.update(1)

    with _sigterm_raises():
        workers = min(workers, len(tasks))
        executor = start_executor(workers)
        try:
            desc = os.path.basename(out_path)
            with tqdm(total=len(items), initial=done_before, desc=desc, unit="clip", disable=not progress) as bar:
                run_tasks(tasks, executor, 4 * workers, consume)
        finally:  # also on Ctrl-C/SIGTERM/a full disk: what is finished is kept for the next call
            try:
                flusher.flush()
            finally:
                if executor is not None:
                    executor.shutdown(wait=True, cancel_futures=True)


def _review(items: Sequence[PackItem], work: WorkDir, sample_rate: int, class_names: Sequence[str],
            allow_truncated: bool) -> Tuple[List[PackItem], Dict[str, List[Event]], List[Tuple[str, str, str]]]:
    """(items to pack, their fitted events, the rows of ``OUT.errors.tsv`` in item order)."""
    packed, events, rows = [], {}, []
    for it in items:
        if it.name in work.failed:
            rows.append((it.name, "skipped", work.failed[it.name]))
            continue
        notes = list(work.notes.get(it.name, ()))
        truncated = [message for kind, message in notes if kind == "truncated"]
        if truncated and not allow_truncated:
            rows.append((it.name, "skipped", f"{truncated[0]}; skipped (--allow-truncated packs what decodes)"))
            continue
        events[it.name], label_notes = fit_events(it, work.durations[it.name], sample_rate, class_names)
        rows += [(it.name, kind, message) for kind, message in notes + label_notes]
        packed.append(it)
    return packed, events, rows


def _write_errors(path: str, rows: List[Tuple[str, str, str]]) -> None:
    """Writes ``OUT.errors.tsv`` (``filename``, ``kind``, ``message``), or removes a stale one when all went well."""
    if not rows:
        if os.path.exists(path):  # a stale log from an earlier pack would mislead
            os.remove(path)
        return
    text = "filename\tkind\tmessage\n" + "".join(f"{one_line(n)}\t{k}\t{one_line(m)}\n" for n, k, m in rows)
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as err:
        if is_disk_full(err):
            raise disk_full_error(path, len(text.encode())) from None
        raise


def _assemble(
    items: List[PackItem],
    events: Dict[str, List[Event]],
    work: WorkDir,
    out_path: str,
    codec: str,
    sample_rate: int,
    class_names: Sequence[str],
    scene_names: Sequence[str],
    device_names: Sequence[str],
    city_names: Sequence[str],
) -> None:
    """Writes the final file from the work directory, in item order, to ``OUT.tmp`` and renames it onto ``OUT``."""

    def records() -> Iterator[ClipRecord]:
        for it in items:
            yield it.record(*work.audio(it.name), events=events[it.name])

    tmp = out_path + ".tmp"
    try:
        write_h5(
            tmp,
            records(),
            len(items),
            codec=codec,
            sample_rate=sample_rate,
            class_names=class_names,
            scene_names=scene_names,
            device_names=device_names,
            city_names=city_names,
            name_width=max(len(it.name.encode("utf-8")) for it in items),
        )
        os.replace(tmp, out_path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.remove(tmp)
        if is_disk_full(err):  # h5py reports it as OSError or RuntimeError, the errno inside the message
            raise disk_full_error(out_path, work.size()) from None
        raise
