"""The packer's worker side: read a window of an audio file, check it, resample and encode it, in a pool of processes.

Each task is about one file only: any failure comes back as an error message for that clip, and the pack goes on.
What had to change on the way comes back as notes (kind, message): ``truncated`` (the file decodes shorter than its
header declares; the packer decides whether such a clip is kept) and ``clipped_audio`` (float samples beyond
[-1, 1], clipped).
"""
from __future__ import annotations

import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, List, Optional, Set, Tuple

import numpy as np

from datamodules.format.audio_io import encode_audio, read_audio_window, resample
from datamodules.format.integrity import float_clipping_message, truncation_message

EncodeTask = Tuple[int, str, int, str, float, float, Optional[float]]
Note = Tuple[str, str]  # (kind, message)
EncodeResult = Tuple[int, Optional[np.ndarray], float, str, Tuple[Note, ...]]


def init_worker() -> None:
    """Initialiser of every pool process."""
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


def encode_file(task: EncodeTask) -> EncodeResult:
    """(item index, path, rate, codec, quality, start, end) -> (index, audio or None, duration, error, notes)."""
    index, path, sample_rate, codec, quality, start, end = task
    try:
        wave, rate = read_audio_window(path, start, end)
        notes = []
        truncated = truncation_message(path, start, end, wave.size, rate)
        if truncated:
            notes.append(("truncated", truncated))
        clipped = float_clipping_message(path, wave)
        if clipped:  # clipped before resampling, so that the stored clip is the clipped source
            notes.append(("clipped_audio", clipped))
            wave = np.clip(wave, -1.0, 1.0)
        wave = resample(wave, rate, sample_rate)
        if wave.size == 0:
            raise ValueError("no samples after resampling")
        encoded = encode_audio(wave, sample_rate, codec, quality)
        return index, encoded, wave.size / sample_rate, "", tuple((k, one_line(m)) for k, m in notes)
    except Exception as err:  # any failure is about this file only; the pack goes on without it
        message = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return index, None, 0.0, one_line(message), ()


def one_line(text: str) -> str:
    """``text`` on one line without tabs (it goes into a TSV)."""
    return " ".join(text.split())


def start_executor(workers: int) -> Optional[ProcessPoolExecutor]:
    """A started pool of ``workers`` encoding processes (None for 0: encode in this process)."""
    if workers <= 0:
        return None
    import multiprocessing

    # fork starts workers in milliseconds and needs no importable __main__; where it is missing, use the default.
    ctx = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker)
    # Launch every worker now, before the progress bar starts its monitor thread (fork and threads do not mix).
    executor.submit(_noop).result()
    return executor


def run_tasks(
    tasks: List[EncodeTask],
    executor: Optional[ProcessPoolExecutor],
    window: int,
    consume: Callable[[EncodeResult], None],
) -> None:
    """Runs :func:`encode_file` on every task (in the pool, or inline without one) and consumes the results.

    At most ``window`` tasks are in flight, so memory stays flat for millions of clips.
    """
    if executor is None:
        for task in tasks:
            consume(encode_file(task))
        return
    pending: Set[Future] = set()
    queue = iter(tasks)
    try:
        for task in queue:
            pending.add(executor.submit(encode_file, task))
            if len(pending) >= window:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                consume(future.result())
                task = next(queue, None)
                if task is not None:
                    pending.add(executor.submit(encode_file, task))
    finally:
        for future in pending:
            future.cancel()
