"""The packer's resumable work directory ``OUT.parts/``: finished clips in chunk files written atomically.

A rerun of an interrupted pack loads every finished clip whose source signature (path, size, mtime, window) still
matches and encodes only the rest.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np

WORK_DIR_SUFFIX = ".parts"
_MANIFEST = "manifest.json"
_WORK_FORMAT = 1
Result = Tuple[str, str, Optional[np.ndarray], float, str]  # name, signature, audio or None, duration, error


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

    def write_chunk(self, results: List[Result]) -> None:
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
