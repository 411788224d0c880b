"""Packs audio files and their labels into one sonolab HDF5 file (format: docs/hdf5-format.md).

Worker processes read, resample and encode; the main process alone writes. Finished clips are flushed to a work
directory ``OUT.parts/`` in chunk files written atomically (every ``chunk_items`` clips, every ``flush_seconds``,
and on Ctrl-C/SIGTERM), so a rerun with the same arguments resumes where an interrupted one stopped. The final file
is assembled in item order into ``OUT.tmp`` and renamed onto ``OUT``; unreadable audio is listed in
``OUT.errors.tsv`` and skipped.

Command line (``sonolab pack``)::

    sonolab pack --audio-dir DIR --labels strong.tsv --labels captions.tsv --out train.h5 --codec mp3
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from datamodules.audio_io import CODECS, AudioDecodeError, encode_audio, read_audio_file, resample, to_mono_float32
from datamodules.h5format import ClipRecord, write_h5

WORK_DIR_SUFFIX = ".parts"
ERRORS_SUFFIX = ".errors.tsv"
_MANIFEST = "manifest.json"
_WORK_FORMAT = 1


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

    def record(self, audio: np.ndarray, duration: float) -> ClipRecord:
        """The :class:`ClipRecord` of this item with its encoded audio."""
        return ClipRecord(
            name=self.name,
            audio=audio,
            duration=duration if self.duration is None else float(self.duration),
            weak=list(self.weak),
            events=list(self.events),
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
        skipped: Clips left out because their audio could not be read (listed in ``errors``).
        encoded: Clips read and encoded by this call (failures included).
        reused: Clips taken from the work directory of an earlier, interrupted call.
        errors: (clip name, error message) of every skipped clip.
        errors_path: The ``OUT.errors.tsv`` log, or None when nothing failed.
        seconds: Wall time of the call.
    """

    out_path: str
    packed: int
    skipped: int
    encoded: int
    reused: int
    errors: List[Tuple[str, str]]
    errors_path: Optional[str]
    seconds: float

    def summary(self) -> str:
        """One line for people."""
        text = (
            f"{self.out_path}: packed {self.packed} clips ({self.encoded} encoded now, {self.reused} resumed), "
            f"skipped {self.skipped} in {self.seconds:.1f} s"
        )
        return text + (f"; errors in {self.errors_path}" if self.errors_path else "")


class PackInterrupted(KeyboardInterrupt):
    """SIGTERM arrived while packing; the work done so far is saved and a rerun resumes."""


# ---------------------------------------------------------------------------------------------------------------
# Worker side: read, resample, encode one file
# ---------------------------------------------------------------------------------------------------------------
def _init_worker() -> None:
    # Ctrl-C goes to the whole process group: only the main process should react (it saves and stops workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:  # Linux: die with the parent even when it is SIGKILLed, instead of lingering as an orphan.
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # best effort only; other platforms lack prctl
        pass


def _noop() -> None:
    return None


def _window_samples(path: str, start: float, end: Optional[float], rate: int, frames: int) -> Tuple[int, int]:
    """First and one-past-last sample of the window [start, end) seconds in a file of ``frames`` samples."""
    first = int(round(start * rate))
    last = frames if end is None else min(int(round(end * rate)), frames)
    if first >= last:
        raise ValueError(
            f"{path}: the window {start:g}-{'end' if end is None else f'{end:g}'} s holds no samples "
            f"(the file has {frames / rate:.3f} s)"
        )
    return first, last


def read_audio_window(path: str, start: float = 0.0, end: Optional[float] = None) -> Tuple[np.ndarray, int]:
    """Reads the seconds [start, end) of an audio file as mono float32 (the whole file by default).

    soundfile seeks to the window, so a 10 s chunk of a 5 min recording costs 10 s of reading; files soundfile
    cannot open are read whole (PyAV) and cut. The window is cut at the end of the file, never zero-padded.

    Returns:
        (waveform, rate of the file).

    Raises:
        ValueError: The window holds no samples of the file; unreadable audio (:class:`AudioDecodeError`).
    """
    if start == 0.0 and end is None:
        return read_audio_file(path)
    import soundfile as sf

    try:
        handle = sf.SoundFile(path)
    except Exception:  # a format libsndfile does not read (e.g. m4a): decode it all, then cut
        wave, rate = read_audio_file(path)
        first, last = _window_samples(path, start, end, rate, wave.size)
        return wave[first:last], rate
    with handle as f:
        rate = int(f.samplerate)
        first, last = _window_samples(path, start, end, rate, f.frames)
        f.seek(first)
        wave = to_mono_float32(f.read(last - first, dtype="float32", always_2d=False))
    if wave.size == 0:
        raise AudioDecodeError(f"{path}: no samples in the window {start:g}-{end} s")
    if not np.all(np.isfinite(wave)):
        raise AudioDecodeError(f"{path}: non-finite samples")
    return wave, rate


def item_signature(item: PackItem) -> str:
    """Resume signature of an item: its source file's signature, plus the window when it is not the whole file."""
    signature = source_signature(item.path)
    if item.start == 0.0 and item.end is None:
        return signature  # as before windows existed, so older work directories stay valid
    return f"{signature}|{float(item.start)!r}|{item.end if item.end is None else float(item.end)!r}"


def _encode_file(
    task: Tuple[int, str, int, str, float, float, Optional[float]]
) -> Tuple[int, Optional[np.ndarray], float, str]:
    """(item index, path, rate, codec, quality, start, end) -> (index, audio or None, duration, error message)."""
    index, path, sample_rate, codec, quality, start, end = task
    try:
        wave, rate = read_audio_window(path, start, end)
        wave = resample(wave, rate, sample_rate)
        if wave.size == 0:
            raise ValueError("no samples after resampling")
        return index, encode_audio(wave, sample_rate, codec, quality), wave.size / sample_rate, ""
    except Exception as err:  # any failure is about this file only; the pack goes on without it
        message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return index, None, 0.0, " ".join(message.split())  # one line, no tabs: it goes into a TSV


# ---------------------------------------------------------------------------------------------------------------
# Main side: the work directory of finished clips
# ---------------------------------------------------------------------------------------------------------------
def source_signature(path: str) -> str:
    """Identifies the content of an audio file cheaply (path, size, mtime): a changed file is packed anew."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{os.path.abspath(path)}|missing"
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


class _WorkDir:
    """Chunk files of finished clips in ``OUT.parts/``, written atomically (tmp file + ``os.replace``).

    A chunk is an ``.npz`` (no pickles) with the clips' names, source signatures, concatenated audio with CSR
    offsets, durations, and the names/signatures/messages of failed clips.
    """

    def __init__(self, path: str, codec: str, sample_rate: int, quality: float) -> None:
        self.path = path
        self.codec = codec
        self.manifest = {
            "work_format": _WORK_FORMAT, "codec": codec, "sample_rate": int(sample_rate), "quality": quality
        }
        self.done: Dict[str, Tuple[str, int]] = {}  # clip name -> (chunk file, position)
        self.failed: Dict[str, str] = {}  # clip name -> error message
        self._next_chunk = 0
        self._cache: "OrderedDict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]" = OrderedDict()

    def open(self, signatures: Dict[str, str]) -> None:
        """Creates the directory, or loads the finished clips whose source signature still matches."""
        manifest_path = os.path.join(self.path, _MANIFEST)
        if os.path.isdir(self.path):
            try:
                with open(manifest_path) as f:
                    same = json.load(f) == self.manifest
            except (OSError, ValueError):
                same = False
            if not same:  # other codec/rate: nothing in there is usable
                shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        if not os.path.isfile(manifest_path):
            self._write_atomic(manifest_path, lambda f: f.write(json.dumps(self.manifest).encode()))
        for entry in sorted(os.listdir(self.path)):
            full = os.path.join(self.path, entry)
            if entry.endswith(".tmp"):  # a write cut short by a kill; its chunk was never published
                os.remove(full)
            elif entry.startswith("chunk-") and entry.endswith(".npz"):
                self._next_chunk = max(self._next_chunk, int(entry[6:-4]) + 1)
                self._index_chunk(full, signatures)

    def _index_chunk(self, path: str, signatures: Dict[str, str]) -> None:
        try:
            with np.load(path, allow_pickle=False) as z:
                names, sources = z["names"], z["sources"]
                err_names, err_sources, err_msgs = z["err_names"], z["err_sources"], z["err_msgs"]
        except Exception as err:  # unreadable despite atomic writes (disk trouble): redo its clips
            print(f"warning: ignoring unreadable work file {path}: {err}", file=sys.stderr)
            return
        for pos, (name, source) in enumerate(zip(names.tolist(), sources.tolist())):
            if signatures.get(name) == source:
                self.done[name] = (path, pos)
                self.failed.pop(name, None)
        for name, source, msg in zip(err_names.tolist(), err_sources.tolist(), err_msgs.tolist()):
            if signatures.get(name) == source and name not in self.done:
                self.failed[name] = msg

    @staticmethod
    def _write_atomic(path: str, write) -> None:
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def write_chunk(self, results: List[Tuple[str, str, Optional[np.ndarray], float, str]]) -> None:
        """Publishes (name, signature, audio or None, duration, error) results as one chunk file."""
        ok = [r for r in results if r[2] is not None]
        bad = [r for r in results if r[2] is None]
        dtype = np.int16 if self.codec == "pcm16" else np.uint8
        offsets = np.cumsum([0] + [len(r[2]) for r in ok]).astype(np.int64)
        arrays = {
            "names": np.array([r[0] for r in ok], dtype=str),
            "sources": np.array([r[1] for r in ok], dtype=str),
            "offsets": offsets,
            "audio": np.concatenate([r[2] for r in ok]).astype(dtype) if ok else np.zeros(0, dtype),
            "durations": np.array([r[3] for r in ok], dtype=np.float64),
            "err_names": np.array([r[0] for r in bad], dtype=str),
            "err_sources": np.array([r[1] for r in bad], dtype=str),
            "err_msgs": np.array([r[4] for r in bad], dtype=str),
        }
        path = os.path.join(self.path, f"chunk-{self._next_chunk:06d}.npz")
        self._write_atomic(path, lambda f: np.savez(f, **arrays))
        self._next_chunk += 1
        for pos, r in enumerate(ok):
            self.done[r[0]] = (path, pos)
        for r in bad:
            self.failed[r[0]] = r[4]

    def audio(self, name: str) -> Tuple[np.ndarray, float]:
        """Encoded audio and duration of a finished clip (a few chunks stay cached: reads are nearly in order)."""
        path, pos = self.done[name]
        if path not in self._cache:
            with np.load(path, allow_pickle=False) as z:
                self._cache[path] = (z["offsets"], z["audio"], z["durations"])
            if len(self._cache) > 8:
                self._cache.popitem(last=False)
        self._cache.move_to_end(path)
        offsets, audio, durations = self._cache[path]
        return audio[offsets[pos] : offsets[pos + 1]], float(durations[pos])

    def remove(self) -> None:
        self._cache.clear()
        shutil.rmtree(self.path, ignore_errors=True)


class _Flusher:
    """Buffers finished clips and publishes them every ``chunk_items`` clips or ``flush_seconds``."""

    def __init__(self, work: _WorkDir, chunk_items: int, flush_seconds: float) -> None:
        self.work = work
        self.chunk_items = max(1, chunk_items)
        self.flush_seconds = flush_seconds
        self.buffer: List[Tuple[str, str, Optional[np.ndarray], float, str]] = []
        self._last = time.monotonic()

    def add(self, result: Tuple[str, str, Optional[np.ndarray], float, str]) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.chunk_items or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.work.write_chunk(self.buffer)
            self.buffer = []  # cleared only once published, so an interrupted write is retried
        self._last = time.monotonic()


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


def _start_executor(workers: int) -> Optional[ProcessPoolExecutor]:
    """A started pool of ``workers`` encoding processes (None for 0: encode in this process)."""
    if workers <= 0:
        return None
    import multiprocessing

    # fork starts workers in milliseconds and needs no importable __main__; where it is missing, use the default.
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    # Launch every worker now, before the progress bar starts its monitor thread (fork and threads do not mix).
    executor.submit(_noop).result()
    return executor


def _run_tasks(
    tasks: List[Tuple[int, str, int, str, float, float, Optional[float]]],
    executor: Optional[ProcessPoolExecutor],
    window: int,
    consume,
) -> None:
    """Runs :func:`_encode_file` on every task (in the pool, or inline without one) and consumes the results.

    At most ``window`` tasks are in flight, so memory stays flat for millions of clips.
    """
    if executor is None:
        for task in tasks:
            consume(_encode_file(task))
        return
    pending: Set[Future] = set()
    queue = iter(tasks)
    try:
        for task in queue:
            pending.add(executor.submit(_encode_file, task))
            if len(pending) >= window:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                consume(future.result())
                task = next(queue, None)
                if task is not None:
                    pending.add(executor.submit(_encode_file, task))
    finally:
        for future in pending:
            future.cancel()


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
) -> PackReport:
    """Packs ``items`` into the HDF5 file ``out_path``, resuming an interrupted earlier call.

    Args:
        items: Clips in the order the file stores them.
        out_path: Output file; written atomically (``OUT.tmp`` then rename).
        codec: Stored codec, one of ``mp3``, ``flac``, ``ogg``, ``pcm16``.
        sample_rate: Every clip is resampled to this rate.
        class_names, scene_names, device_names, city_names: Vocabularies of the items' label indices.
        workers: Encoding processes (0: in this process; None: all CPU cores).
        progress: Show a tqdm progress bar.
        quality: 0..1 quality of lossy codecs.
        chunk_items: Clips per work-directory chunk file.
        flush_seconds: Also flush at least this often.

    Returns:
        A :class:`PackReport`.

    Raises:
        ValueError: Bad arguments, duplicate clip names, or no clip could be read.
        KeyboardInterrupt: Ctrl-C or SIGTERM (:class:`PackInterrupted`); the work so far is saved in ``OUT.parts/``.
    """
    start = time.monotonic()
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}, got {codec!r}")
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
    os.makedirs(os.path.dirname(out_path), exist_ok=True)

    signatures = {it.name: item_signature(it) for it in items}
    work = _WorkDir(out_path + WORK_DIR_SUFFIX, codec, sample_rate, quality)
    work.open(signatures)
    reused = len(work.done) + len(work.failed)
    todo = [i for i, it in enumerate(items) if it.name not in work.done and it.name not in work.failed]
    tasks = [
        (i, items[i].path, int(sample_rate), codec, float(quality), float(items[i].start), items[i].end)
        for i in todo
    ]

    from tqdm import tqdm

    flusher = _Flusher(work, chunk_items, flush_seconds)

    def consume(result: Tuple[int, Optional[np.ndarray], float, str]) -> None:
        index, audio, duration, error = result
        name = items[index].name
        flusher.add((name, signatures[name], audio, duration, error))
        bar.update(1)

    with _sigterm_raises():
        workers = min(workers, len(tasks))
        executor = _start_executor(workers)
        try:
            desc = os.path.basename(out_path)
            with tqdm(total=len(items), initial=reused, desc=desc, unit="clip", disable=not progress) as bar:
                _run_tasks(tasks, executor, 4 * workers, consume)
        finally:  # also on Ctrl-C/SIGTERM: what is finished is kept for the next call
            flusher.flush()
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    errors = [(it.name, work.failed[it.name]) for it in items if it.name in work.failed]
    errors_path = out_path + ERRORS_SUFFIX
    if errors:
        _write_errors(errors_path, errors)
    elif os.path.exists(errors_path):  # a stale log from an earlier pack would mislead
        os.remove(errors_path)
    packed = [it for it in items if it.name in work.done]
    if not packed:
        raise ValueError(f"no clip could be read; see {errors_path}")
    _assemble(packed, work, out_path, codec, sample_rate, class_names, scene_names, device_names, city_names)
    work.remove()
    return PackReport(
        out_path=out_path,
        packed=len(packed),
        skipped=len(errors),
        encoded=len(tasks),
        reused=reused,
        errors=errors,
        errors_path=errors_path if errors else None,
        seconds=time.monotonic() - start,
    )


def _write_errors(path: str, errors: List[Tuple[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("filename\terror\n")
        for name, message in errors:
            f.write(f"{name}\t{message}\n")


def _assemble(
    items: List[PackItem],
    work: _WorkDir,
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
            yield it.record(*work.audio(it.name))

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
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``sonolab pack`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sonolab pack",
        description="Pack audio files and tab-separated label tables into one sonolab HDF5 file. "
        "An interrupted run resumes when started again with the same arguments.",
    )
    parser.add_argument("--audio-dir", required=True, help="folder the table file names are relative to")
    parser.add_argument(
        "--labels", action="append", required=True, metavar="TSV",
        help="label table (repeat to merge tables by filename)",
    )
    parser.add_argument("--out", required=True, metavar="OUT.h5", help="output HDF5 file")
    parser.add_argument("--codec", default="mp3", choices=CODECS, help="stored codec (default mp3; pcm16 is lossless)")
    parser.add_argument("--sample-rate", type=int, default=32000, help="output sample rate (default 32000)")
    parser.add_argument("--classes", metavar="FILE", help="class list, one per line (default: sorted labels found)")
    parser.add_argument(
        "--subset", metavar="TSV", help="pack only the files in this table's filename column, in its order"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="encoding processes (default: all cores)"
    )
    parser.add_argument("--skip-missing", action="store_true", help="skip table rows whose audio file is missing")
    parser.add_argument("--chunk-items", type=int, default=64, help="clips per resumable work chunk (default 64)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """``sonolab pack``: returns 0 on success, 1 on bad input, 130 when interrupted (rerun to resume)."""
    # Imported here: label_tables builds PackItems, so a module-level import would be circular.
    from datamodules.label_tables import LabelTableError, read_class_list, read_label_tables

    args = build_parser().parse_args(argv)
    try:
        classes = read_class_list(args.classes) if args.classes else None
        labels = read_label_tables(
            args.labels, args.audio_dir, classes=classes, subset=args.subset, skip_missing=args.skip_missing
        )
    except (LabelTableError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for name in labels.missing:
        print(f"skipped (missing audio): {name}", file=sys.stderr)
    try:
        report = pack(
            labels.items,
            args.out,
            codec=args.codec,
            sample_rate=args.sample_rate,
            class_names=labels.class_names,
            scene_names=labels.scene_names,
            device_names=labels.device_names,
            city_names=labels.city_names,
            workers=args.workers,
            progress=not args.no_progress,
            chunk_items=args.chunk_items,
        )
    except KeyboardInterrupt:
        print(f"interrupted; finished clips are kept in {args.out}{WORK_DIR_SUFFIX}/, rerun to resume", file=sys.stderr)
        return 130
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.summary())
    if labels.missing:
        print(f"{len(labels.missing)} table rows skipped for missing audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
