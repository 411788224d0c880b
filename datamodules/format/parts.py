"""The files the packer keeps next to its output: the resumable work directory ``OUT.parts/`` (finished clips in
chunk files written atomically) and the lock ``OUT.lock`` (one packer per output).

A rerun of an interrupted pack loads every finished clip whose source signature (path, size, mtime, window) still
matches and encodes only the rest. A full disk stops the pack with :class:`DiskFullError`; what was published stays.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

WORK_DIR_SUFFIX = ".parts"
LOCK_SUFFIX = ".lock"
_MANIFEST = "manifest.json"
_WORK_FORMAT = 1
Note = Tuple[str, str]  # (kind, message) about a clip packed with a change
# name, signature, audio or None, duration, error, notes
Result = Tuple[str, str, Optional[np.ndarray], float, str, Tuple[Note, ...]]


class DiskFullError(OSError):
    """The disk (or the quota) filled up while the packer wrote a file; the message names it and the space needed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.ENOSPC


class OutputLockedError(ValueError):
    """Another process is packing to the same output."""


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk or the quota is full (h5py puts the errno into the message text only)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return isinstance(err, (OSError, RuntimeError)) and any(
        key in text for key in ("errno = 28,", "errno = 122,", "No space left on device", "Disk quota exceeded")
    )


def human_size(n: float) -> str:
    """``1.2 GB``, ``340 MB``, ``12 kB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def disk_full_error(path: str, needed: int) -> DiskFullError:
    """The error for a write of about ``needed`` bytes to ``path`` that found the disk full."""
    try:
        free = f", {human_size(shutil.disk_usage(os.path.dirname(path) or '.').free)} free"
    except OSError:
        free = ""
    return DiskFullError(f"no space left on the disk writing {path} (needs about {human_size(needed)}{free})")


def source_signature(path: str) -> str:
    """Identifies the content of an audio file cheaply (path, size, mtime): a changed file is packed anew."""
    try:
        st = os.stat(path)
    except OSError:
        return f"{os.path.abspath(path)}|missing"
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


class WorkDir:
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
        self.durations: Dict[str, float] = {}  # clip name -> encoded seconds (done clips)
        self.notes: Dict[str, Tuple[Note, ...]] = {}  # clip name -> what changed on encoding (done clips)
        self.failed: Dict[str, str] = {}  # clip name -> error message
        self._next_chunk = 0
        self._cache: "OrderedDict[str, Tuple[np.ndarray, np.ndarray, np.ndarray]]" = OrderedDict()

    def open(self, signatures: Dict[str, str]) -> None:
        """Creates the directory, or loads the finished clips whose source signature still matches."""
        manifest_path = os.path.join(self.path, _MANIFEST)
        if os.path.isdir(self.path):
            strangers = [e for e in os.listdir(self.path) if not e.startswith(("chunk-", _MANIFEST))]
            if strangers:  # never delete what the packer did not write
                raise ValueError(f"{self.path} is not a packer work folder (it holds {strangers[0]!r}); move it "
                                 "away or choose another output file")
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
                names, sources, durations = z["names"], z["sources"], z["durations"]
                err_names, err_sources, err_msgs = z["err_names"], z["err_sources"], z["err_msgs"]
                notes = z["notes"].tolist() if "notes" in z.files else [""] * len(names)  # older chunks: none
        except Exception as err:  # unreadable despite atomic writes (disk trouble): redo its clips
            print(f"warning: ignoring unreadable work file {path}: {err}", file=sys.stderr)
            return
        for pos, (name, source) in enumerate(zip(names.tolist(), sources.tolist())):
            if signatures.get(name) == source:
                self.done[name] = (path, pos)
                self.durations[name] = float(durations[pos])
                self.notes[name] = _parse_notes(notes[pos])
                self.failed.pop(name, None)
        for name, source, msg in zip(err_names.tolist(), err_sources.tolist(), err_msgs.tolist()):
            if signatures.get(name) == source and name not in self.done:
                self.failed[name] = msg

    @staticmethod
    def _write_atomic(path: str, write, size: int = 0) -> None:
        """Writes ``path`` through ``path.tmp`` + rename; a failed write leaves no tmp file behind."""
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as err:
            if os.path.exists(tmp):
                os.remove(tmp)
            if is_disk_full(err):
                raise disk_full_error(path, size) from None
            raise

    def write_chunk(self, results: List[Result]) -> None:
        """Publishes (name, signature, audio or None, duration, error, notes) results as one chunk file."""
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
            "notes": np.array(["\n".join(f"{k}\t{m}" for k, m in r[5]) for r in ok], dtype=str),
            "err_names": np.array([r[0] for r in bad], dtype=str),
            "err_sources": np.array([r[1] for r in bad], dtype=str),
            "err_msgs": np.array([r[4] for r in bad], dtype=str),
        }
        path = os.path.join(self.path, f"chunk-{self._next_chunk:06d}.npz")
        self._write_atomic(path, lambda f: save_arrays(f, arrays), sum(a.nbytes for a in arrays.values()))
        self._next_chunk += 1
        for pos, r in enumerate(ok):
            self.done[r[0]] = (path, pos)
            self.durations[r[0]] = float(r[3])
            self.notes[r[0]] = tuple(r[5])
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

    def size(self) -> int:
        """Bytes of the chunk files (about the size of the audio the final file will hold)."""
        return sum(e.stat().st_size for e in os.scandir(self.path) if e.name.startswith("chunk-"))

    def remove(self) -> None:
        self._cache.clear()
        shutil.rmtree(self.path, ignore_errors=True)


def save_arrays(f, arrays: Dict[str, np.ndarray]) -> None:
    """Writes a chunk's arrays as ``.npz`` (one place, so that tests can make the disk run full here)."""
    np.savez(f, **arrays)


def _parse_notes(text: str) -> Tuple[Note, ...]:
    return tuple(tuple(line.split("\t", 1)) for line in text.split("\n") if "\t" in line)  # type: ignore[misc]


class Flusher:
    """Buffers finished clips and publishes them every ``chunk_items`` clips or ``flush_seconds``."""

    def __init__(self, work: WorkDir, chunk_items: int, flush_seconds: float) -> None:
        self.work = work
        self.chunk_items = max(1, chunk_items)
        self.flush_seconds = flush_seconds
        self.buffer: List[Result] = []
        self._last = time.monotonic()

    def add(self, result: Result) -> None:
        self.buffer.append(result)
        if len(self.buffer) >= self.chunk_items or time.monotonic() - self._last >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.work.write_chunk(self.buffer)
            self.buffer = []  # cleared only once published, so an interrupted write is retried
        self._last = time.monotonic()


# ---------------------------------------------------------------------------------------------------------------
# One packer per output
# ---------------------------------------------------------------------------------------------------------------
@contextmanager
def output_lock(out_path: str) -> Iterator[None]:
    """Holds ``OUT.lock`` while packing to ``out_path``; a second packer of the same output stops at once.

    The lock is an ``fcntl.flock`` on the file, which the kernel releases when its process ends however it ends:
    a crashed or killed packer leaves the file behind (holding its pid, host and start time, for the message) but
    never a lock that blocks. The file is removed on exit. Where ``flock`` is missing (not POSIX) or refused (some
    network file systems), packing goes on unlocked with a warning.

    Raises:
        OutputLockedError: Another process holds the lock; the message names it.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = out_path + LOCK_SUFFIX
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputLockedError(f"{out_path} is being packed by {holder}; wait for it or stop it") from None
        except OSError as err:
            os.close(fd)
            print(f"warning: cannot lock {path} ({err}); make sure no other pack writes {out_path}", file=sys.stderr)
            fd = -1
            break
        try:  # the holder we raced with may have removed the file since we opened it: lock the one that is there
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    if fd < 0:
        yield
        return
    try:
        try:
            holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
            os.ftruncate(fd, 0)
            os.pwrite(fd, holder, 0)
        except OSError:  # a full disk: the lock works without its note
            pass
        yield
    finally:
        try:
            os.remove(path)
        except OSError:
            pass
        os.close(fd)


def _lock_holder(fd: int) -> str:
    """"process 1234 (started 2024-05-01 12:00:00)" (plus " on HOST" when another host holds it) from a lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode())
        where = "" if info["host"] == socket.gethostname() else f" on {info['host']}"
        return f"process {int(info['pid'])}{where} (started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):  # written at this very moment, or not by us
        return "another process"
